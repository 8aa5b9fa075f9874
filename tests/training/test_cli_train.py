"""`convzoo train` from the command line: the run, recipes under flags, --resume, and its errors."""
from __future__ import annotations

import csv
import json

import pytest

from convzoo.cli import main


def _train(shapes, out, *extra):
    return main(["train", "lenet5", "--data", str(shapes), "--out", str(out), "-b", "16", "--threads", "1", "--no-explain",
                 *extra])


def test_train_then_resume_for_more_epochs(shapes, tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(shapes, out, "--epochs", "1") == 0
    printed = capsys.readouterr().out
    assert "epoch 1/1" in printed and "test: top-1 accuracy" in printed
    assert main(["train", "--resume", str(out), "--epochs", "2"]) == 0
    assert "epoch 2/2" in capsys.readouterr().out
    assert [row["epoch"] for row in csv.DictReader((out / "metrics.csv").open())] == ["1", "2"]
    assert json.loads((out / "config.json").read_text())["config"]["epochs"] == 2


def test_flags_override_the_recipe(shapes, tmp_path):
    out = tmp_path / "run"
    assert _train(shapes, out, "--recipe", "resnet_cifar", "--lr", "0.05", "--epochs", "1", "--no-hflip",
                  "--lr-steps", "5", "8") == 0
    config = json.loads((out / "config.json").read_text())["config"]
    assert config["recipe"] == "resnet_cifar"
    assert (config["lr"], config["epochs"], config["batch_size"], config["hflip"]) == (0.05, 1, 16, False)
    assert (config["weight_decay"], config["random_crop_padding"], config["lr_steps"]) == (1e-4, 4, [5, 8])


def test_resume_refuses_changed_settings(shapes, tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(shapes, out, "--epochs", "1") == 0
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--lr", "0.5"]) == 2
    assert "only --epochs, --device, --workers, --threads and --no-explain may change, not: lr" in capsys.readouterr().err
    assert main(["train", "resnet20", "--resume", str(out)]) == 2
    assert "is a run of lenet5" in capsys.readouterr().err


def test_train_errors_are_messages(shapes, tmp_path, capsys):
    assert main(["train", "--data", str(shapes)]) == 2
    assert "name the network to train" in capsys.readouterr().err
    assert main(["train", "--resume", str(tmp_path / "nothing")]) == 2
    assert "not a convzoo run folder" in capsys.readouterr().err
    assert _train(shapes, tmp_path / "a", "--model-arg", "wings=2") == 2
    assert "lenet5 does not take the argument 'wings'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:  # refused when the command line is parsed
        _train(shapes, tmp_path / "b", "--epochs", "0")
    assert exited.value.code == 2 and "--epochs: expected a whole number of at least 1" in capsys.readouterr().err


def test_the_help_example_of_model_arg_builds_a_resnet(capsys):
    import re

    import convzoo
    from convzoo.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    example = re.search(r"e\.g\.\s+(\w+)=([\d.]+)\s+\(a\s+ResNet", capsys.readouterr().out)
    assert example, "train --help shows a --model-arg example for a ResNet"
    model = convzoo.create_model("resnet18", num_classes=10, **{example[1]: float(example[2])})
    assert any(type(m).__name__ == "DropPath" for m in model.modules())


def test_ctrl_c_names_the_real_run_folder_to_resume(shapes, tmp_path, capsys, monkeypatch):
    from convzoo.training import engine

    def interrupted(run, epoch):
        raise KeyboardInterrupt

    monkeypatch.setattr(engine, "train_one_epoch", interrupted)
    out = tmp_path / "run"
    assert _train(shapes, out, "--epochs", "1") == 130
    err = capsys.readouterr().err
    assert f"convzoo train --resume {out}`" in err and "RUN_FOLDER" not in err


def test_a_corrupt_config_json_on_resume_names_the_file(shapes, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text('{"config": {"model": "lenet5", ')
    assert main(["train", "--resume", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{str(out / 'config.json')!r} is not valid JSON" in err and len(err.strip().splitlines()) == 1


def test_no_validation_images_is_refused_not_trained(shapes, tmp_path, capsys, quiet):
    from convzoo.errors import DataError
    from convzoo.training import make_config, train

    with pytest.raises(SystemExit):
        main(["train", "lenet5", "--data", str(shapes), "--val-split", "0"])
    assert "between 0 and 1" in capsys.readouterr().err
    with pytest.raises(DataError, match="no validation images.*--val-split 0.1"):
        train(make_config("lenet5", data=str(shapes), out=str(tmp_path / "run"), val_split=0, epochs=1,
                          explain=False), console=quiet)
    assert not (tmp_path / "run" / "config.json").exists()


def test_lr_find_writes_the_curve_and_prints_the_suggestion(shapes, tmp_path, capsys):
    out = tmp_path / "lr"
    assert main(["lr-find", "lenet5", "--data", str(shapes), "--out", str(out), "-b", "16", "--threads", "1",
                 "--lr-find-steps", "20", "--start-lr", "1e-4", "--end-lr", "1"]) == 0
    printed = capsys.readouterr().out
    found = json.loads((out / "lr_find.json").read_text())
    assert len(found["lrs"]) <= 20 and found["lrs"][0] == 1e-4
    assert 1e-4 <= found["suggestion"] <= 1 and f"{found['suggestion']:.3g}" in printed
    assert (out / "lr_find.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(SystemExit):
        main(["train", "lenet5", "--data", str(shapes), "--lr", "fast"])
    assert "--lr takes a number above 0 or 'auto'" in capsys.readouterr().err
