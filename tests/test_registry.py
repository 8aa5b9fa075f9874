import pytest
import torch
from torch import nn

import convzoo
from convzoo.errors import UnknownModelError


def test_unknown_model_suggests_close_names():
    with pytest.raises(ValueError, match="resnet50") as info:
        convzoo.create_model("resnet05")
    assert isinstance(info.value, UnknownModelError)
    assert "convzoo list" in str(info.value)


def test_list_models_wildcards_are_sorted_and_filtered():
    names = convzoo.list_models("resnet*")
    assert names == sorted(names)
    assert "resnet50" in names and "vgg16" not in names
    assert set(convzoo.list_models(["vgg1?", "alexnet"])) >= {"vgg11", "vgg16", "vgg19", "alexnet"}
    assert convzoo.list_models("vgg*", task="segmentation") == []
    with pytest.raises(ValueError, match="task"):
        convzoo.list_models(task="detection")


def test_create_model_records_its_arguments():
    model = convzoo.create_model("resnet18", num_classes=10)
    assert model.card.name == "resnet18"
    assert model.model_args == {"name": "resnet18", "num_classes": 10, "in_chans": 3}
    assert model.fc.out_features == 10


def test_input_guard_needs_a_batch_dimension():
    with torch.device("meta"):
        model = convzoo.create_model("resnet18")
        with pytest.raises(ValueError, match="unsqueeze"):
            model(torch.empty(3, 224, 224))


def test_registering_a_name_twice_is_refused():
    from convzoo.registry import register_model, Paper

    paper = Paper("t", "a", 2020)
    with pytest.raises(ValueError, match="twice"):
        register_model(family="x", paper=paper, input_size=(3, 8, 8), min_input_size=(1, 1), params=1,
                       name="resnet18")(lambda **kw: nn.Identity())
