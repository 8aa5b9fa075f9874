"""Checkpoints describe themselves, load from a file or a run folder, and refuse what they cannot trust."""
from __future__ import annotations

import json
import os
import pickle

import pytest
import torch
from safetensors.torch import save_file

import convzoo
from convzoo.errors import RunFolderError, WeightsError, WeightsFileNotFoundError
from convzoo.training import load_checkpoint, read_checkpoint_description
from convzoo.training.checkpoint import RunFolder, save_checkpoint


def test_a_run_folder_stands_for_its_best_checkpoint(trained_run):
    """Loading the folder loads best.safetensors: the very tensors of the best epoch's file (results.json's
    epoch), not last.safetensors'."""
    from safetensors.torch import load_file

    from_folder = load_checkpoint(trained_run)
    assert from_folder.path == trained_run / "best.safetensors"
    assert from_folder.name == "lenet5" and from_folder.classes == ["cross", "hbar", "vbar"]
    assert from_folder.input_size == (1, 32, 32) and from_folder.border == 2
    assert not from_folder.model.training
    best_epoch = json.loads((trained_run / "results.json").read_text())["epoch"]
    assert read_checkpoint_description(trained_run / "best.safetensors")["epoch"] == best_epoch
    best = load_file(str(trained_run / "best.safetensors"))
    state = from_folder.model.state_dict()
    assert best.keys() == state.keys() and all(torch.equal(state[k], best[k]) for k in best)
    last = load_file(str(trained_run / "last.safetensors"))
    assert (best_epoch == 4) == all(torch.equal(last[k], best[k]) for k in best)
    with torch.no_grad():
        assert from_folder.model(torch.randn(2, 1, 32, 32)).shape == (2, 3)


def test_truncated_checkpoint_is_a_clear_error(trained_run, tmp_path):
    data = (trained_run / "best.safetensors").read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="truncated or corrupt"):
        load_checkpoint(cut)
    header_only = tmp_path / "header.safetensors"
    header_only.write_bytes(data[:20])
    with pytest.raises(WeightsError):
        load_checkpoint(header_only)


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_a_pickle_is_refused_without_running_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    evil = tmp_path / "best.pt"
    evil.write_bytes(pickle.dumps({"state_dict": _RunsCode()}))
    torch.save({"weights": _RunsCode()}, tmp_path / "zip.pt")
    for path in (evil, tmp_path / "zip.pt"):
        with pytest.raises(WeightsError, match="not a safetensors checkpoint"):
            load_checkpoint(path)
    assert not (tmp_path / "PWNED").exists()


def test_a_tampered_resume_state_is_refused_without_running_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = RunFolder(tmp_path / "run")
    run.path.mkdir()
    torch.save({"format": 1, "model": _RunsCode()}, run.resume)
    with pytest.raises(RunFolderError, match="refusing"):
        run.load_resume_state()
    assert not (tmp_path / "PWNED").exists()


def test_weights_of_another_network_are_refused(trained_run, tmp_path):
    description = read_checkpoint_description(trained_run)
    other = convzoo.create_model("resnet20", num_classes=3, in_chans=1)
    path = save_checkpoint(other, tmp_path / "mislabelled.safetensors", description)  # says lenet5, holds resnet20
    with pytest.raises(WeightsError, match="do not fit lenet5 as its metadata describes it") as caught:
        load_checkpoint(path)
    message = str(caught.value)
    assert "missing keys (" in message and "c1.weight" in message
    assert "unexpected keys (" in message and "layer1.0.bn1" in message


def test_weights_that_disagree_with_their_metadata_are_refused(trained_run, tmp_path):
    description = read_checkpoint_description(trained_run)
    description["classes"] = ["a", "b", "c", "d"]
    description["model"]["num_classes"] = 4
    path = save_checkpoint(load_checkpoint(trained_run).model, tmp_path / "four.safetensors", description)
    with pytest.raises(WeightsError, match="do not fit lenet5 as its metadata describes it: mis-shaped keys"):
        load_checkpoint(path)


def test_bare_weights_without_a_description_are_refused(tmp_path):
    path = tmp_path / "bare.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(WeightsError, match="does not describe itself"):
        load_checkpoint(path)
    with pytest.raises(WeightsFileNotFoundError):
        load_checkpoint(tmp_path / "missing.safetensors")
    with pytest.raises(WeightsFileNotFoundError, match="without best.safetensors"):
        load_checkpoint(tmp_path)


def test_a_failed_write_leaves_the_previous_checkpoint_intact(trained_run, tmp_path, monkeypatch):
    """A run killed while writing a checkpoint (here: the disk fails at fsync) keeps the previous file whole."""
    checkpoint = load_checkpoint(trained_run)
    path = save_checkpoint(checkpoint.model, tmp_path / "last.safetensors", checkpoint.description)
    before = path.read_bytes()

    def disk_fails(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", disk_fails)
    with torch.no_grad():
        for p in checkpoint.model.parameters():
            p.add_(1.0)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(checkpoint.model, path, checkpoint.description)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.safetensors"]
