"""Two processes on the CPU under torchrun (gloo): sharded data, rank-0 files, the same results contract."""
from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import convzoo

# The two-node test compares with the module's two-process run: one xdist worker runs both, so it runs once.
pytestmark = pytest.mark.xdist_group("torchrun")

SOURCE = str(Path(convzoo.__file__).resolve().parents[1])  # the nodes run from their own folders: this convzoo


# Loopback only: torchrun's agents advertise --local-addr, gloo listens on the interface GLOO_SOCKET_IFNAME names.
LOOPBACK = ["--local-addr=127.0.0.1"]
# float32 NCHW in both runs: the speed choice (training/speed.py) times steps, and timings differ run to run
TRAIN = ["-m", "convzoo", "train", "lenet5", "--epochs", "3", "-b", "8", "--device", "cpu", "--no-amp",
         "--no-channels-last"]


def torchrun_env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}


@pytest.fixture(scope="module")
def two_processes(shapes, tmp_path_factory):
    """LeNet-5 trained by two processes of one torchrun (one machine), with the explain/ gallery rank 0 draws at the
    end: the run folder and torchrun's output."""
    out = tmp_path_factory.mktemp("torchrun") / "run"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *LOOPBACK,
               *TRAIN, "--data", str(shapes), "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, env=torchrun_env(), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return out, done


@pytest.mark.slow
def test_torchrun_two_processes_on_cpu(two_processes):
    out, done = two_processes
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
    # the gallery, drawn by rank 0 alone while the other process has finished
    assert done.stdout.count("explained: ") == 1
    assert set(json.loads((out / "explain" / "index.json").read_text())["methods"]) == {
        "feature-maps", "filters", "gradcam", "occlusion", "erf"}


def free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_torchrun_two_nodes_on_loopback_train_as_two_processes(shapes, two_processes, tmp_path):
    # Two torchrun agents, one process each, meeting at a c10d rendezvous: two "nodes" as on two machines, here on
    # 127.0.0.1. Each works in its own folder with a relative --out, so they share no run folder, as machines
    # without a shared disk: rank 0 (whichever node it is) writes the run folder in its own.
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc_per_node=1",
               "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{free_loopback_port()}", "--rdzv-id=convzoo-test",
               *LOOPBACK, *TRAIN, "--no-explain", "--data", str(shapes), "--out", "run"]
    homes = [tmp_path / "node0", tmp_path / "node1"]
    env = {**torchrun_env(), "PYTHONPATH": os.pathsep.join(filter(None, [SOURCE, os.environ.get("PYTHONPATH")]))}
    nodes = []
    for home in homes:
        home.mkdir()
        nodes.append(subprocess.Popen(command, cwd=home, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                      env=env))
    try:
        outputs = [node.communicate(timeout=300) for node in nodes]
    finally:
        for node in nodes:
            if node.poll() is None:
                node.kill()
    for node, (_, stderr) in zip(nodes, outputs):
        assert node.returncode == 0, stderr[-3000:]
    written = [home / "run" for home in homes if (home / "run").exists()]
    assert len(written) == 1  # one run folder, on rank 0's node
    out = written[0]
    reference, _ = two_processes
    config = json.loads((out / "config.json").read_text())
    assert config["resolved"]["processes"] == 2 and config["resolved"]["global_batch_size"] == 16
    # the same weights, bit for bit, the same learning curves and the same test results
    weights, expected = load_file(str(out / "last.safetensors")), load_file(str(reference / "last.safetensors"))
    assert weights.keys() == expected.keys()
    assert all(torch.equal(weights[key], expected[key]) for key in expected)
    timing = {"images_per_second", "epoch_seconds"}

    def curves(run):
        return [{k: v for k, v in row.items() if k not in timing} for row in csv.DictReader((run / "metrics.csv").open())]

    assert curves(out) == curves(reference)
    results, expected_results = (json.loads((run / "results.json").read_text()) for run in (out, reference))
    assert results["top1_accuracy"] == expected_results["top1_accuracy"]
    assert results["confusion_matrix"] == expected_results["confusion_matrix"]
