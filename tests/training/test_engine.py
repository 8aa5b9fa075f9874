"""The engine end to end on a tiny PNG data set: the run folder, resume bit for bit, divergence, bad input."""
from __future__ import annotations

import csv
import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from convzoo.errors import DataError, RunFolderError, TrainingDivergedError
from convzoo.training import make_config, read_checkpoint_description, train
from convzoo.training.checkpoint import RunFolder
from convzoo.training.tasks import Classification

CLASSES = ("cross", "hbar", "vbar")  # the shapes fixture's classes, sorted as folder names


def _config(shapes, out, **overrides):
    # Fixed layout and precision: runs that are compared with each other must not measure (training/speed.py).
    # No explain/ gallery (most of a tiny run's time): tests/explain checks the engine writes it.
    settings = dict(data=str(shapes), out=str(out), epochs=2, batch_size=16, threads=1, amp=False, channels_last=False,
                    explain=False)
    settings.update(overrides)
    return make_config(settings.pop("model", "lenet5"), **settings)


def _tensors(path):
    return load_file(str(path))


def _assert_same_tensors(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def _optimizer_tensors(resume_file) -> dict:
    state = torch.load(resume_file, weights_only=True)["optimizer"]["state"]
    return {f"{index}.{name}": value for index, entry in state.items() for name, value in entry.items()
            if isinstance(value, torch.Tensor)}


def _whole_and_resumed(shapes, tmp_path, quiet, settings, first: int = 1) -> tuple[RunFolder, RunFolder]:
    """Train in one go ("whole") and `first` epochs then --resume for the rest ("split"); check that the
    weights, the best checkpoint and the optimizer state are the same tensors."""
    train(_config(shapes, tmp_path / "whole", **settings), console=quiet)
    train(_config(shapes, tmp_path / "split", **{**settings, "epochs": first}), console=quiet)
    train(_config(shapes, tmp_path / "split", **settings), resume=True, console=quiet)
    whole, split = RunFolder(tmp_path / "whole"), RunFolder(tmp_path / "split")
    _assert_same_tensors(_tensors(whole.last), _tensors(split.last))
    _assert_same_tensors(_tensors(whole.best), _tensors(split.best))
    _assert_same_tensors(_optimizer_tensors(whole.resume), _optimizer_tensors(split.resume))
    return whole, split


def test_run_folder_holds_everything(shapes, tmp_path, quiet):
    result = train(_config(shapes, tmp_path / "run", epochs=3), console=quiet)
    run = RunFolder(tmp_path / "run")
    for path in (run.config, run.metrics, run.results, run.last, run.best, run.resume, run.curves, run.confusion):
        assert path.is_file(), path.name
    assert run.curves.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    config = json.loads(run.config.read_text())
    assert config["config"]["model"] == "lenet5" and config["config"]["recipe"] == "quick"
    assert config["data"]["classes"] == list(CLASSES)
    assert config["resolved"]["input_size"] == [1, 32, 32] and config["resolved"]["border"] == 2
    # no explain/ gallery (explain=False): the memory estimate counts none either
    assert "explain gallery" not in config["resolved"]["memory"]["phases"] and not (run.path / "explain").exists()

    rows = list(csv.DictReader(run.metrics.open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert {"lr", "train_loss", "val_top1_accuracy", "val_top5_accuracy"} <= set(rows[0])

    results = json.loads(run.results.read_text())
    assert results["split"] == "test" and results["images"] == 3 * 8
    assert 0 <= results["top1_accuracy"] <= results["top5_accuracy"] == 100.0  # 3 classes: top-5 is all of them
    assert results["top1_error"] == pytest.approx(100 - results["top1_accuracy"])
    assert set(results["per_class_accuracy"]) == set(CLASSES)
    assert sum(map(sum, results["confusion_matrix"])) == 24
    assert results == result.test

    # the best checkpoint is the epoch with the best validation accuracy (ties: the later one)
    val = [float(r["val_top1_accuracy"]) for r in rows]
    best_epoch = max(range(len(val)), key=lambda i: (val[i], i)) + 1
    assert results["epoch"] == best_epoch == result.best_epoch

    description = read_checkpoint_description(run.best)
    assert description["model"] == {"name": "lenet5", "num_classes": 3, "in_chans": 1}
    assert description["classes"] == list(CLASSES)
    assert description["input_size"] == [1, 32, 32] and description["border"] == 2
    assert len(description["mean"]) == len(description["std"]) == 1
    assert description["epoch"] == best_epoch
    with safe_open(str(run.last), framework="pt") as f:
        assert json.loads(f.metadata()["convzoo"])["epoch"] == 3


@pytest.mark.slow
def test_resume_continues_bit_for_bit(shapes, tmp_path, quiet):
    """4 epochs in one go == 3 epochs, then --resume for the fourth, under reduce-on-plateau: every weight, the best
    checkpoint, the optimizer tensors, the results and the schedule's state. The run is chosen so that resuming
    has something to lose: the rate was already cut (after epoch 2), and the best epoch (3) is not the last, so
    a resume that forgot the best metric so far or the schedule's state would end elsewhere."""
    settings = dict(epochs=4, lr=0.01, lr_scheduler="plateau", lr_patience=0, lr_gamma=0.5)
    whole, split = _whole_and_resumed(shapes, tmp_path, quiet, settings, first=3)
    rows = list(csv.DictReader(whole.metrics.open()))
    assert [float(r["lr"]) for r in rows][1:] == [0.01, 0.005, 0.005]  # cut once before the resume
    results = json.loads(whole.results.read_text())
    assert results["epoch"] == 3  # the best epoch is not the last
    columns = ("epoch", "lr", "train_loss", "val_loss", "val_top1_accuracy")
    assert [[r[c] for c in columns] for r in csv.DictReader(split.metrics.open())] == [[r[c] for c in columns]
                                                                                       for r in rows]
    assert results == json.loads(split.results.read_text()) | {"train_seconds": results["train_seconds"]}
    whole_state, split_state = (torch.load(r.resume, weights_only=True) for r in (whole, split))
    assert whole_state["schedule"] == split_state["schedule"]
    assert whole_state["schedule"]["plateau_reductions"] == 2  # epoch 4 was worse than 3: cut again
    assert (whole_state["best_epoch"], whole_state["best_metric"]) == (split_state["best_epoch"],
                                                                       split_state["best_metric"]) == (3, 100.0)


def test_a_resume_state_of_another_format_is_refused(shapes, tmp_path, quiet):
    config = _config(shapes, tmp_path / "run", epochs=1)
    train(config, console=quiet)
    run = RunFolder(tmp_path / "run")
    state = torch.load(run.resume, weights_only=True)
    torch.save({**state, "format": state["format"] + 1}, run.resume)
    with pytest.raises(RunFolderError, match="is not a convzoo resume state"):
        train(_config(shapes, tmp_path / "run", epochs=2), resume=True, console=quiet)
    torch.save([state], run.resume)
    with pytest.raises(RunFolderError, match="is not a convzoo resume state"):
        RunFolder(tmp_path / "run").load_resume_state()


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_same_weights(shapes, tmp_path, monkeypatch, quiet):
    """Killed right after epoch 1's checkpoint, under the default recipe (warm-up, cosine over the planned
    epochs, augmentation), with batch norm (resnet20): resuming gives exactly the uninterrupted run's weights
    and batch-norm statistics."""
    config = dict(epochs=3, random_crop_padding=1, model="resnet20", input_size=(8, 8))
    whole = make_config(data=str(shapes), out=str(tmp_path / "whole"), batch_size=16, threads=1, explain=False,
                        **config)
    train(whole, console=quiet)

    write_metrics = RunFolder.write_metrics

    def killed_after_first_epoch(self, history):
        write_metrics(self, history)
        raise KeyboardInterrupt

    killed = make_config(data=str(shapes), out=str(tmp_path / "killed"), batch_size=16, threads=1, explain=False,
                        **config)
    monkeypatch.setattr(RunFolder, "write_metrics", killed_after_first_epoch)
    with pytest.raises(KeyboardInterrupt):
        train(killed, console=quiet)
    monkeypatch.setattr(RunFolder, "write_metrics", write_metrics)
    assert torch.load(tmp_path / "killed" / "resume.pt", weights_only=True)["epoch"] == 1
    train(killed, resume=True, console=quiet)

    _assert_same_tensors(_tensors(tmp_path / "whole" / "last.safetensors"),
                         _tensors(tmp_path / "killed" / "last.safetensors"))
    _assert_same_tensors(_optimizer_tensors(tmp_path / "whole" / "resume.pt"),
                         _optimizer_tensors(tmp_path / "killed" / "resume.pt"))


def test_nan_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(shapes, tmp_path, monkeypatch, quiet):
    real_loss = Classification.loss
    calls = []
    steps_per_epoch = 66 // 16  # 3 classes x 24 training images less 2 a class for validation, full batches

    def loss_turning_nan(self, outputs, targets):
        calls.append(1)
        loss = real_loss(self, outputs, targets)
        return loss * float("nan") if len(calls) == steps_per_epoch + 2 else loss

    monkeypatch.setattr(Classification, "loss", loss_turning_nan)
    run = RunFolder(tmp_path / "run")
    with pytest.raises(TrainingDivergedError) as caught:
        train(_config(shapes, run.path, epochs=3), console=quiet)
    message = str(caught.value)
    assert f"epoch 2, step 2 of {steps_per_epoch}" in message
    assert "last.safetensors (epoch 1)" in message and "--resume" in message
    assert read_checkpoint_description(run.last)["epoch"] == 1
    assert torch.load(run.resume, weights_only=True)["epoch"] == 1
    assert not run.results.exists()


def test_nan_in_the_first_epoch_says_no_checkpoint_was_written(shapes, tmp_path, monkeypatch, quiet):
    monkeypatch.setattr(Classification, "loss", lambda self, outputs, targets: outputs.sum() * float("inf"))
    with pytest.raises(TrainingDivergedError, match=r"epoch 1, step 1 of .*No checkpoint was written"):
        train(_config(shapes, tmp_path / "run"), console=quiet)


def test_an_existing_run_is_not_overwritten_and_resume_needs_a_run(shapes, tmp_path, quiet):
    train(_config(shapes, tmp_path / "run", epochs=1), console=quiet)
    with pytest.raises(RunFolderError, match="already holds a run"):
        train(_config(shapes, tmp_path / "run", epochs=1), console=quiet)
    with pytest.raises(RunFolderError, match="nothing to resume"):
        train(_config(shapes, tmp_path / "empty", epochs=1), resume=True, console=quiet)


def test_resume_refuses_data_whose_classes_changed(tmp_path, quiet, shapes_writer):
    data = shapes_writer(tmp_path / "data", {"train": 6})
    train(_config(data, tmp_path / "run", epochs=1), console=quiet)
    (data / "train" / "cross").rename(data / "train" / "plus")
    with pytest.raises(DataError, match="do not match"):
        train(_config(data, tmp_path / "run", epochs=2), resume=True, console=quiet)


def test_resume_from_python_refuses_changed_settings_as_the_cli_does(shapes, tmp_path, quiet):
    train(_config(shapes, tmp_path / "run", epochs=1), console=quiet)
    with pytest.raises(RunFolderError, match="may change, not: lr, momentum"):
        train(_config(shapes, tmp_path / "run", epochs=2, lr=0.5, momentum=0.5), resume=True, console=quiet)
    with pytest.raises(RunFolderError, match="is a run of lenet5, not resnet20"):
        train(_config(shapes, tmp_path / "run", model="resnet20"), resume=True, console=quiet)
    assert torch.load(tmp_path / "run" / "resume.pt", weights_only=True)["epoch"] == 1


def test_missing_data_path_fails_before_training(tmp_path, quiet):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        train(_config(tmp_path / "nowhere", tmp_path / "run"), console=quiet)
    assert not (tmp_path / "run" / "config.json").exists()


def test_weights_that_overflow_on_an_epochs_last_step_are_never_checkpointed(shapes, tmp_path, monkeypatch, quiet):
    real_step = torch.optim.SGD.step
    steps_per_epoch, calls = 66 // 16, []

    def step_overflowing(self, *args, **kwargs):
        result = real_step(self, *args, **kwargs)
        calls.append(1)
        if len(calls) == 2 * steps_per_epoch:  # the last step of epoch 2: its loss was still finite
            self.param_groups[0]["params"][0].data.fill_(float("inf"))
        return result

    monkeypatch.setattr(torch.optim.SGD, "step", step_overflowing)
    run = RunFolder(tmp_path / "run")
    with pytest.raises(TrainingDivergedError,
                       match=f"the weights became infinite or NaN at epoch 2, step {steps_per_epoch} of"):
        train(_config(shapes, run.path, epochs=3, opt="sgd_nesterov"), console=quiet)
    assert read_checkpoint_description(run.last)["epoch"] == 1
    assert all(t.isfinite().all() for t in _tensors(run.last).values())


def test_bf16_autocast_and_channels_last_reach_the_network(shapes, tmp_path, monkeypatch, quiet):
    from convzoo.training import engine

    seen, create_model = [], engine.create_model

    def create_and_watch(*args, **kwargs):
        network = create_model(*args, **kwargs)

        def watch(module, inputs):
            if module.training:
                seen.append((inputs[0].is_contiguous(memory_format=torch.channels_last),
                             torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))
        network.register_forward_pre_hook(watch)
        return network

    monkeypatch.setattr(engine, "create_model", create_and_watch)
    result = train(_config(shapes, tmp_path / "run", epochs=1, model_args={}, amp=True, channels_last=True),
                   console=quiet)
    assert seen and all(entry == (True, True, torch.bfloat16) for entry in seen)
    assert 0 <= result.test["top1_accuracy"] <= 100 and result.test["loss"] is not None


def test_gradients_are_clipped_and_labels_smoothed(shapes, tmp_path, monkeypatch, quiet):
    from convzoo.training import engine

    norms, smoothing = [], []
    clip = engine.nn.utils.clip_grad_norm_

    def recording_clip(parameters, max_norm):
        norms.append(max_norm)
        return clip(parameters, max_norm)

    real_loss = Classification.loss

    def recording_loss(self, outputs, targets):
        smoothing.append(self.label_smoothing)
        return real_loss(self, outputs, targets)

    monkeypatch.setattr(engine.nn.utils, "clip_grad_norm_", recording_clip)
    monkeypatch.setattr(Classification, "loss", recording_loss)
    train(_config(shapes, tmp_path / "run", epochs=1, clip_grad_norm=0.5, label_smoothing=0.2), console=quiet)
    assert norms and set(norms) == {0.5}
    assert smoothing and set(smoothing) == {0.2}


def test_a_corrupt_image_is_named_before_training_or_skipped_and_counted(tmp_path, quiet, shapes_writer):
    from convzoo.errors import CorruptImageError

    data = shapes_writer(tmp_path / "data", {"train": 10, "test": 3})
    broken = data / "train" / "hbar" / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(CorruptImageError, match="broken.png"):
        train(_config(data, tmp_path / "strict", epochs=1), console=quiet)
    assert not (tmp_path / "strict" / "config.json").exists()

    train(_config(data, tmp_path / "lenient", epochs=1, skip_bad=True), console=quiet)
    config = json.loads((tmp_path / "lenient" / "config.json").read_text())
    assert config["data"]["skipped"] == [str(broken)]
    assert "skipped 1 unreadable images" in quiet.file.getvalue()


@pytest.mark.slow
def test_resume_is_bit_exact_with_every_practitioner_option_on(shapes, tmp_path, quiet):
    """Fine-tuning from a file (a 10-class head dropped, the stem frozen, layer-wise rates), the EMA, mixup and
    CutMix, RandAugment, random erasing, early stopping, TensorBoard and --lr auto: 2 epochs in one go == 1
    epoch, then --resume for the second."""
    from convzoo import create_model, save_weights

    torch.manual_seed(7)
    save_weights(create_model("resnet20", num_classes=10), tmp_path / "init.safetensors")
    settings = dict(model="resnet20", input_size=(8, 8), init=str(tmp_path / "init.safetensors"),
                    freeze=("stem",), lr_body=0.01, layer_decay=0.8, model_ema=0.9, mixup_alpha=0.2,
                    cutmix_alpha=1.0, auto_augment="randaugment", random_erasing=0.25, patience=4,
                    tensorboard=True, lr="auto", lr_find_steps=20)
    whole, split = _whole_and_resumed(shapes, tmp_path, quiet, settings)
    whole_ema, split_ema = (torch.load(r.resume, weights_only=True)["ema"] for r in (whole, split))
    _assert_same_tensors(whole_ema, split_ema)
    assert int(whole_ema["n_averaged"]) == 2 * (66 // 16)  # one EMA update a step
    results = json.loads(whole.results.read_text())
    assert results == json.loads(split.results.read_text()) | {"train_seconds": results["train_seconds"]}
    assert {"per_class_precision", "per_class_recall", "most_confused", "worst_predictions"} <= set(results)
    rows = list(csv.DictReader(whole.metrics.open()))
    assert {"val_ema_loss", "val_ema_top1_accuracy", "better_weights"} <= set(rows[0])
    # the finder ran once, before the first epoch, and the resumed run kept its rate
    lr = json.loads(whole.lr_find_json.read_text())["suggestion"]
    assert json.loads(split.config.read_text())["resolved"]["lr"] == lr == json.loads(whole.config.read_text())[
        "resolved"]["lr"]
    for picture in (whole.lr_find_png, whole.worst):
        assert picture.read_bytes()[:4] == b"\x89PNG"
    assert (whole.tensorboard / "events.out.tfevents.convzoo").stat().st_size > 0
    # the frozen stem is the file's; the new 3-class head is not
    initial, trained = _tensors(tmp_path / "init.safetensors"), _tensors(whole.last)
    assert torch.equal(initial["conv1.weight"], trained["conv1.weight"])
    assert torch.equal(initial["bn1.running_mean"], trained["bn1.running_mean"])
    assert trained["fc.weight"].shape == (3, 64)


def test_early_stopping_runs_no_epoch_after_patience_epochs_without_improvement(quiet):
    from types import SimpleNamespace

    from convzoo.training.engine import epochs_to_run

    run = SimpleNamespace(config=SimpleNamespace(patience=2, epochs=10), start_epoch=0, history=[], best_epoch=0,
                          ctx=SimpleNamespace(is_main=True), console=quiet,
                          task=SimpleNamespace(primary_metric="top1_accuracy"))
    ran = []
    for epoch in epochs_to_run(run):
        ran.append(epoch)
        run.history.append({})
        if epoch < 3:  # better every epoch up to the 3rd, never after
            run.best_epoch = epoch + 1
    assert ran == [0, 1, 2, 3, 4]
    assert "early stop: no better validation top1_accuracy for 2 epochs since epoch 3" in quiet.file.getvalue()
    run.start_epoch = 5  # a resumed run that had stopped stays stopped
    assert list(epochs_to_run(run)) == []


def test_the_ema_becomes_best_when_it_scores_better(quiet):
    from types import SimpleNamespace

    from convzoo.training.engine import record_epoch
    from convzoo.training.optim import LRSchedule

    task = Classification(list(CLASSES))
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    run = SimpleNamespace(task=task, schedule=LRSchedule(optimizer, "constant", epochs=2, steps_per_epoch=1),
                          optimizer=optimizer, best_metric=None, best_epoch=0, best_weights="raw", history=[],
                          ctx=SimpleNamespace(world_size=1))
    progress = SimpleNamespace(images_per_second=1.0, seconds=1.0)
    metrics = {key: 1.0 for key in ("loss", *task.row_metrics)}
    assert record_epoch(run, 0, metrics, {**metrics, "top1_accuracy": 50.0,
                                          "ema": {**metrics, "top1_accuracy": 60.0}}, progress)
    assert (run.best_weights, run.best_metric, run.history[-1]["better_weights"]) == ("ema", 60.0, "ema")
    assert not record_epoch(run, 1, metrics, {**metrics, "top1_accuracy": 55.0,
                                              "ema": {**metrics, "top1_accuracy": 40.0}}, progress)
    assert (run.best_epoch, run.best_weights, run.history[-1]["better_weights"]) == (1, "ema", "raw")


def test_a_file_corrupt_only_in_its_pixels_stops_the_run_naming_it_and_resume_with_skip_bad_goes_on(
        tmp_path, quiet, shapes_writer, monkeypatch):
    import numpy as np
    from PIL import Image

    from convzoo.data import datasets
    from convzoo.errors import CorruptImageError
    from convzoo.training import resumed_config

    data = shapes_writer(tmp_path / "data", {"train": 10, "test": 3})
    cut = data / "train" / "hbar" / "005_cut.jpg"  # a JPEG cut in half: its header reads, its pixels do not
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(cut, quality=90)
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    monkeypatch.setattr(datasets, "STATISTICS_FILES", 2)  # statistics from two files, so loading decodes neither
    with pytest.raises(CorruptImageError, match=r"005_cut\.jpg.*found in epoch 1.*continues from epoch 1 with "
                                                r"--resume") as caught:
        # 28 training images in batches of 4: none dropped. No workers here: the data tests cover them.
        train(_config(data, tmp_path / "run", epochs=2, batch_size=4, workers=0), console=quiet)
    assert caught.value.path == str(cut)
    assert RunFolder(tmp_path / "run").load_resume_state()["epoch"] == 0  # resumable from the start

    result = train(resumed_config(tmp_path / "run", skip_bad=True), resume=True, console=quiet)
    assert len(result.history) == 2 and result.test["unreadable_images"] == [str(cut)]
    assert json.loads((tmp_path / "run" / "results.json").read_text())["unreadable_images"] == [str(cut)]
    assert "skipped 1 unreadable image(s) this epoch" in quiet.file.getvalue()
