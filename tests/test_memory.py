"""The memory guard (convzoo/memory.py): what the machine has, what a command needs, and the one-line refusals of
issue 11 (a U-Net at 512x512, LeNet-5 at 2000x2000, a NAS layer of 10,000,000 filters), each before anything
large is allocated. The estimates are checked against the measured peak of real runs in fresh processes."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from convzoo import memory
from convzoo.cli import command_with, main
from convzoo.data.facts import source_facts
from convzoo.errors import MemoryEstimateError
from convzoo.memory import GIB, MIB, Available, TrainingPlan, cgroup_headroom, mem_available, training_guard

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_memory.py"


HELD = 300 * 2**20


def _machine_with(monkeypatch, total: int) -> Available:
    """A machine where this process holds HELD bytes and could reach `total`."""
    available = Available(held=HELD, free=total - HELD, source="MemAvailable")
    monkeypatch.setattr(memory, "available_memory", lambda: available)
    monkeypatch.setattr(memory, "resident_bytes", lambda: HELD)
    return available


# --- what the machine has ---------------------------------------------------------------------------------------

def test_mem_available_is_read_from_meminfo(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24683772 kB\nMemFree:  100 kB\nMemAvailable:   19132188 kB\n")
    assert mem_available(meminfo) == 19132188 * 1024


def test_cgroup_v2_headroom_is_the_tightest_level_of_the_path(tmp_path):
    (tmp_path / "cgroup").write_text("0::/outer/inner\n")
    outer, inner = tmp_path / "root" / "outer", tmp_path / "root" / "outer" / "inner"
    inner.mkdir(parents=True)
    (outer / "memory.max").write_text(f"{8 * GIB}\n")
    (outer / "memory.current").write_text(f"{7 * GIB}\n")      # 1 GiB left above
    (inner / "memory.max").write_text("max\n")                  # no limit of its own
    (inner / "memory.current").write_text(f"{GIB // 2}\n")
    headroom, source = cgroup_headroom(tmp_path / "root", tmp_path / "cgroup")
    assert headroom == GIB and "outer/memory.max" in source


def test_cgroup_v1_limit_and_no_limit(tmp_path):
    (tmp_path / "cgroup").write_text("4:memory:/job\n0::/\n")
    job = tmp_path / "root" / "memory" / "job"
    job.mkdir(parents=True)
    (job / "memory.limit_in_bytes").write_text(f"{4 * GIB}\n")
    (job / "memory.usage_in_bytes").write_text(f"{GIB}\n")
    assert cgroup_headroom(tmp_path / "root", tmp_path / "cgroup")[0] == 3 * GIB
    (job / "memory.limit_in_bytes").write_text("9223372036854771712\n")  # v1's "unlimited"
    assert cgroup_headroom(tmp_path / "root", tmp_path / "cgroup") is None


def test_available_memory_adds_what_this_process_holds():
    available = memory.available_memory()
    assert available.held == pytest.approx(memory.resident_bytes(), rel=0.2)
    assert available.total == available.held + available.free > available.held


# --- the refusals of issue 11 --------------------------------------------------------------------------------------

def test_unet_at_512_refused_with_the_largest_batch_and_size_that_fit(monkeypatch, tmp_path, capsys):
    available = _machine_with(monkeypatch, 7.5 * GIB)
    out = tmp_path / "run"
    code = main(["train", "unet_padded", "--data", "digits-seg", "--input-size", "512", "--out", str(out)])
    message = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in message
    assert "would need about" in message and "7.50 GiB is available" in message
    assert "convzoo train unet_padded --data digits-seg --input-size 512 --out" in message and "-b " in message
    assert not out.exists()  # refused before the run folder, the data or the network
    # The batch it names is the largest that fits: one more does not.
    batch = int(message.split(" -b ")[1].split()[0])
    plan = TrainingPlan(model="unet_padded", model_args={"widths": [16, 32, 64, 128, 256]},
                        input_size=(1, 512, 512), batch_size=16, num_classes=11, optimizer_states=2,
                        segmentation=True, data_bytes=source_facts("digits-seg").memory_bytes)
    guard = training_guard(plan)
    assert guard.estimate_at(batch, (512, 512)).fits(available)
    assert not guard.estimate_at(batch + 1, (512, 512)).fits(available)


def test_lenet5_at_2000_refused_before_allocating(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "lenet5", "--data", "digits", "--input-size", "2000", "--out", str(out)])
    message = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in message and "32x32" in message
    assert not out.exists()


def test_nas_spec_with_ten_million_filters_refused_before_it_is_built(tmp_path, capsys):
    spec = {"format": "convzoo-nas-spec", "version": 1, "input_size": [1, 16, 16], "layers": [
        {"num_filters": 24, "filter_height": 3, "filter_width": 3, "stride": 1, "inputs": []},
        {"num_filters": 10_000_000, "filter_height": 3, "filter_width": 3, "stride": 1, "inputs": [0]}]}
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    code = main(["train", "nas", "--spec", str(path), "--out", str(tmp_path / "run")])  # the real machine's memory
    message = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in message
    assert "the network itself is too large" in message and "2,160,000,000 parameters" in message  # 24 x 9 x 1e7
    assert not (tmp_path / "run").exists()


def test_a_model_arg_building_an_absurd_network_is_refused(tmp_path):
    from convzoo.training import make_config, train

    config = make_config("unet_padded", "segmentation", data="digits-seg", out=str(tmp_path / "run"),
                         model_args={"widths": [16, 32, 64, 128, 10_000_000]})
    with pytest.raises(MemoryEstimateError, match="too large"):
        train(config)


def test_force_runs_over_the_limit_and_says_so(monkeypatch):
    _machine_with(monkeypatch, HELD + 2**20)
    plan = TrainingPlan(model="lenet5", model_args={}, input_size=(1, 32, 32), batch_size=64)
    with pytest.raises(MemoryEstimateError):
        training_guard(plan).check()
    estimate = training_guard(plan).check(force=True)
    assert estimate.forced and "--force" in estimate.text() and estimate.to_dict()["forced"] is True


def test_evaluation_refused_with_a_smaller_batch(monkeypatch, tmp_path):
    from convzoo.registry import create_model
    from convzoo.training import evaluate_checkpoints
    from convzoo.training.checkpoint import describe_checkpoint, save_checkpoint

    data = {"classes": [str(d) for d in range(10)], "input_size": [1, 224, 224], "mean": [0.5], "std": [0.25],
            "source": "digits"}
    network = create_model("resnet18", num_classes=10, in_chans=1)
    path = save_checkpoint(network, tmp_path / "best.safetensors",
                           describe_checkpoint(network.model_args, "classification", data, 1, {}))
    monkeypatch.setattr(memory, "resident_bytes", lambda: HELD)
    args = {key: value for key, value in network.model_args.items() if key != "name"}
    fixed = memory.inference_guard([("resnet18", args)], (1, 224, 224), 1,
                                   num_classes=10).estimate_at(0, (224, 224)).total
    _machine_with(monkeypatch, fixed + 100 * 2**20)  # room for a few images, not 256
    with pytest.raises(MemoryEstimateError, match=r"It fits with -b \d+"):
        evaluate_checkpoints([path], "digits", batch_size=256)


def test_search_of_an_absurd_space_refused_before_writing(tmp_path):
    from convzoo.nas import SearchConfig, SearchSpace, search

    for method in ("random", "enas"):
        config = SearchConfig.for_method({"method": method, "space": SearchSpace(num_filters=(10_000_000,)),
                                          "budget": 2, "epochs": 1, "reward_epochs": 1})
        with pytest.raises(MemoryEstimateError, match="too large"):
            search(config, tmp_path / method)
        assert not (tmp_path / method).exists()


def test_bench_refuses_a_batch_that_does_not_fit(monkeypatch):
    from convzoo.bench import _configurations, check_bench_memory

    _machine_with(monkeypatch, GIB)
    with pytest.raises(MemoryEstimateError, match=r"--batch-sizes \d+"):
        check_bench_memory(["resnet18"], [512], [None], _configurations(["inference"], ["nchw"], ["eager"], False))


def test_the_refused_command_is_rewritten_with_the_fix():
    argv = ["train", "unet_padded", "--data", "digits-seg", "--batch-size", "16", "--input-size", "512", "512"]
    assert command_with(argv, [("-b", "4")]) == ("convzoo train unet_padded --data digits-seg --input-size 512 512 "
                                                 "-b 4")
    assert command_with(argv, [("--input-size", "200 200")]) == ("convzoo train unet_padded --data digits-seg "
                                                                 "--batch-size 16 --input-size 200 200")


# --- the estimate against measured peaks --------------------------------------------------------------------------

def _bench():
    spec = importlib.util.spec_from_file_location("bench_memory", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_commands_measured_peak_is_its_own_not_that_of_the_test_process_that_starts_it():
    # A child's ru_maxrss starts at its parent's resident set: measured straight from a test worker grown to
    # gigabytes, every training run "peaked" above its estimate (the three cases below failed in full runs only).
    held = np.ones(768 * MIB // 8)  # touched: 768 MiB resident in this process
    status, peak = _bench().run_and_measure([sys.executable, "-c", "pass"])
    assert status == 0 and held.sum() > 0
    assert peak < 200 * MIB, peak


@pytest.mark.slow
@pytest.mark.parametrize("network, flags, kind", [
    ("resnet18", ["--input-size", "64", "-b", "16"], "classes"),
    ("mobilenet_v2", ["--input-size", "96", "-b", "16"], "classes"),
    ("unet_padded", ["--input-size", "64", "-b", "8", "--model-arg", "widths=[16,32,64,128,256]"], "masks"),
])
def test_estimate_bounds_the_measured_peak_within_its_factor(network, flags, kind, tmp_path):
    bench = _bench()
    data = bench.write_tiny_data(tmp_path, kind)
    row = bench.measure_training(network, [*flags, "--no-amp", "--no-channels-last"], data, tmp_path / "run")
    assert 1 / memory.ESTIMATE_FACTOR <= row["ratio"] <= 1.0, row
