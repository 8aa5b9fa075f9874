"""Two processes on the CPU under torchrun (gloo): sharded data, rank-0 files, the same results contract."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file


@pytest.mark.slow
def test_torchrun_two_processes_on_cpu(shapes, tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "convzoo", "train", "lenet5", "--data", str(shapes), "--epochs", "3", "-b", "8",
               "--out", str(out), "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    config = json.loads((out / "config.json").read_text())
    assert config["resolved"]["processes"] == 2 and config["resolved"]["global_batch_size"] == 16
    # 66 training images (72 less the stratified val split of 2 a class), sharded: 33 a process, 4 full batches of 8
    assert config["resolved"]["steps_per_epoch"] == 4
    # only rank 0 logs: one summary line per epoch, not two
    assert done.stdout.count("epoch 2/3") == 1

    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    results = json.loads((out / "results.json").read_text())
    assert results["images"] == 24  # every test image counted once across the two shards
    assert sum(map(sum, results["confusion_matrix"])) == 24
    assert results["top1_accuracy"] > 100 / 3  # it learned something

    weights = load_file(str(out / "last.safetensors"))
    resume = torch.load(out / "resume.pt", weights_only=True)
    for key, tensor in weights.items():  # the checkpoint and the resume state agree
        assert torch.equal(tensor, resume["model"][key]), key
    assert not any(name.startswith(".") for name in os.listdir(out))  # no temp files left by either rank
