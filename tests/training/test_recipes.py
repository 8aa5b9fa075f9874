from __future__ import annotations

from dataclasses import fields

import pytest

from convzoo.training import RECIPES, TrainConfig, make_config

ISSUE_RECIPES = {"alexnet", "vgg", "googlenet", "resnet", "resnet_cifar", "densenet", "mobilenet"}


def test_the_issue_recipes_exist_cite_a_paper_and_only_set_known_settings():
    assert ISSUE_RECIPES <= set(RECIPES)
    known = {f.name for f in fields(TrainConfig)}
    for name, recipe in RECIPES.items():
        assert set(recipe.settings) <= known, name
        assert recipe.paper.title and recipe.paper.year and recipe.notes, name
        config = make_config("resnet18", recipe=name)
        assert config.recipe == name


def test_resnet_follows_the_paper_not_the_course_on_weight_decay():
    resnet = RECIPES["resnet"]
    assert resnet.settings["weight_decay"] == 1e-4 and resnet.settings["lr"] == 0.1
    assert resnet.settings["batch_size"] == 256 and resnet.settings["momentum"] == 0.9
    assert "1e-5" in resnet.notes and "paper" in resnet.notes
    assert resnet.paper.arxiv == "1512.03385"


def test_alexnet_as_the_course_gives_it():
    alexnet = RECIPES["alexnet"].settings
    assert (alexnet["opt"], alexnet["momentum"], alexnet["batch_size"], alexnet["lr"], alexnet["weight_decay"]) == (
        "sgd", 0.9, 128, 1e-2, 5e-4)
    assert alexnet["lr_scheduler"] == "plateau" and alexnet["lr_gamma"] == 0.1
    assert alexnet["pca_lighting"] == 0.1 and alexnet["hflip"]


def test_resnet_cifar_milestones_are_the_papers_iterations():
    settings = RECIPES["resnet_cifar"].settings
    steps_per_epoch = 45_000 // settings["batch_size"]  # the paper's 45k/5k split, full batches
    first, second = settings["lr_steps"]
    assert round(32_000 / steps_per_epoch) == first and round(48_000 / steps_per_epoch) == second
    assert round(64_000 / steps_per_epoch) == settings["epochs"]


def test_explicit_settings_override_the_recipe():
    config = make_config("resnet18", recipe="resnet", lr=0.05, epochs=3)
    assert (config.lr, config.epochs, config.weight_decay) == (0.05, 3, 1e-4)
    with pytest.raises(ValueError, match="unknown recipe"):
        make_config("resnet18", recipe="inception")
