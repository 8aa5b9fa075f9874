"""The benchmark: one row per configuration, throughput against the matmul peak measured in the same run,
markdown and JSON; `convzoo bench`."""
from __future__ import annotations

import importlib.util
import json
import time

import pytest
import torch

from convzoo import create_model, model_card
from convzoo.bench import (against_markdown, fastest_runners, matmul_peak, run_against, run_benchmark, time_round_robin,
                           to_markdown)
from convzoo.cli import main
from convzoo.engines import ENGINES, engine_runner, missing
from convzoo.export import export


def test_rows_speedups_and_fractions_of_the_peak():
    result = run_benchmark(["resnet20"], [2], [32], layouts=["nchw", "channels_last"], backends=["eager"],
                           warmup=1, repeats=2, matmul_sizes=(256,))
    rows = result["rows"]
    assert [(r["mode"], r["path"], r["layout"]) for r in rows] == [
        ("inference", "plain", "nchw"), ("inference", "plain", "channels_last"),
        ("inference", "optimized", "channels_last"), ("training", "plain", "nchw"),
        ("training", "plain", "channels_last")]
    baseline = rows[0]
    assert baseline["speedup"] == 1.0 and rows[3]["speedup"] == 1.0
    # The card's conv + linear MACs at 32x32 an image; a training step counts three times that.
    macs = model_card("resnet20").macs
    assert baseline["gmacs_per_s"] == pytest.approx(macs * baseline["images_per_s"] / 1e9, rel=1e-6)
    assert rows[3]["gmacs_per_s"] == pytest.approx(3 * macs * rows[3]["images_per_s"] / 1e9, rel=1e-6)
    for row in rows:
        assert row["of_peak"] == pytest.approx(row["gmacs_per_s"] / result["peak_gmacs"])
        assert row["images_per_s"] > 0 and row["peak_rss_mb"] > 0 and row["compile_s"] is None
    assert result["peak_gmacs"] == max(*result["matmul_gmacs"]["start"].values(), *result["matmul_gmacs"]["end"].values())
    table = to_markdown(result)
    assert "| resnet20 | inference | optimized | channels_last | eager | 2 | 32 |" in table
    assert "matmul peak" in table and "load average" in table
    json.dumps(result)


def test_matmul_peak_is_a_rate_per_size():
    rates = matmul_peak(sizes=(64, 128), repeats=2)
    assert set(rates) == {"64", "128"} and all(rate > 0 for rate in rates.values())


def test_cli_bench_writes_json_and_markdown(tmp_path, capsys):
    args = ["bench", "--models", "resnet20", "--batch-sizes", "2", "--input-sizes", "32", "--modes", "inference",
            "--layouts", "nchw", "--backends", "eager", "--no-optimized", "--warmup", "1", "--repeats", "1",
            "--matmul-sizes", "128", "--json", str(tmp_path / "b.json"), "--markdown", str(tmp_path / "b.md")]
    assert main(args) == 0
    assert "| resnet20 | inference | plain | nchw | eager | 2 | 32 |" in capsys.readouterr().out
    result = json.loads((tmp_path / "b.json").read_text())
    assert len(result["rows"]) == 1 and list(result["matmul_gmacs"]["start"]) == ["128"]
    assert (tmp_path / "b.md").read_text().count("| resnet20 |") == 1


def test_cli_bench_refuses_unknown_choices(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "--layouts", "nhwc"])
    assert "nchw, channels_last" in capsys.readouterr().err


def test_against_an_engine_every_path_is_timed_round_robin_and_rated_against_the_best_engine():
    result = run_against(["resnet18"], ["onnxruntime"], batch_sizes=[2], thread_counts=[1], input_size=32,
                         paths=("eager", "fast eager"), warmup=1, repeats=2)
    rows = result["rows"]
    assert [row["runner"] for row in rows] == ["eager", "fast eager", "onnxruntime"]
    engine = rows[-1]
    assert engine["vs_best_engine"] == 1.0 and result["skipped"] == {}
    for row in rows:
        assert (row["model"], row["batch"], row["input_size"], row["threads"]) == ("resnet18", 2, 32, 1)
        assert row["images_per_s"] == pytest.approx(2e3 / row["ms_per_batch"])
        assert row["vs_best_engine"] == pytest.approx(row["images_per_s"] / engine["images_per_s"])
    assert "onnxruntime" in result["machine"]["engines"]
    markdown = against_markdown(result)
    assert "| resnet18 | 2 | 32 | 1 | fast eager |" in markdown
    fastest = max(rows, key=lambda row: row["images_per_s"])["runner"]
    assert f"- resnet18, batch 2, 1 thread: {fastest} (" in markdown.split("Fastest here:")[1]


def test_round_robin_runs_each_step_in_turn_and_pauses_untimed_before_each_run_when_asked():
    calls = []

    def step(name, seconds):
        def run():
            calls.append((name, time.perf_counter()))
            time.sleep(seconds)
        return run

    timed = time_round_robin([("a", step("a", 0.01)), ("b", step("b", 0.02))], warmup=2, repeats=3, settle_s=0.2)
    assert [name for name, _ in calls] == ["a", "b"] * 4   # one untimed round, then three timed
    starts = [start for _, start in calls]
    assert min(later - earlier for earlier, later in zip(starts, starts[1:])) >= 0.2 + 0.01
    assert len(timed["a"]) == len(timed["b"]) == 3
    # The pause is not timed: each run counts its own sleep, not the 0.2 s before it.
    assert all(0.01 <= t < 0.2 for t in timed["a"]) and all(0.02 <= t < 0.2 for t in timed["b"])


def _row(model, runner, images_per_s, batch=8, size=224, threads=1):
    return {"model": model, "runner": runner, "batch": batch, "input_size": size, "threads": threads,
            "images_per_s": images_per_s, "ms_per_batch": batch * 1e3 / images_per_s, "setup_s": 1.0,
            "vs_best_engine": None}


def test_the_fastest_runner_of_each_group_is_named_with_how_to_run_the_network_that_way():
    result = {"rows": [
        _row("resnet50", "compiled", 12.5), _row("resnet50", "onnxruntime", 12.84),
        _row("resnet50", "openvino", 13.21),
        _row("deeplabv3_resnet50", "compiled", 2.46, size=160),
        _row("deeplabv3_resnet50", "onnxruntime", 2.32, size=160),
        _row("resnet50", "compiled", 25.0, threads=2), _row("resnet50", "onnxruntime", 24.0, threads=2)]}
    fastest = {(best["model"], best["input_size"], best["threads"]): best for best in fastest_runners(result)}
    engine = fastest[("resnet50", 224, 1)]
    assert engine["runner"] == "openvino" and engine["lead"] == pytest.approx(13.21 / 12.84)
    assert engine["compiled_share"] == pytest.approx(12.5 / 13.21)
    # At the card's size the export needs no --input; elsewhere it is given, with the card's channels.
    assert engine["how"] == ("convzoo export resnet50 --format onnx --out resnet50.onnx, "
                             "then openvino.Core().compile_model")
    own = fastest[("deeplabv3_resnet50", 160, 1)]
    assert own["runner"] == "compiled" and own["how"] == "convzoo.optimize_for_inference(model, compile=True)"
    assert fastest[("resnet50", 224, 2)]["runner"] == "compiled"
    result["rows"] = [_row("deeplabv3_resnet50", "onnxruntime", 3.0, size=160)]
    assert fastest_runners(result)[0]["how"].startswith(
        "convzoo export deeplabv3_resnet50 --format onnx --out deeplabv3_resnet50.onnx --input 3x160x160, then")


def test_engines_run_the_exported_file_with_pytorchs_outputs(tmp_path):
    torch.manual_seed(0)
    model = create_model("resnet18", num_classes=10).eval()
    out = export(model, format="onnx", out=tmp_path / "r18.onnx", input_size=(3, 32, 32), check=False)
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = model(images)
    for engine in ENGINES:
        if missing(engine):
            continue
        got = engine_runner(engine, out, threads=1, input_shape=(2, 3, 32, 32))(images.numpy())[0]
        assert torch.allclose(torch.from_numpy(got), expected, atol=1e-4 * expected.abs().max().item())


def test_an_engine_that_is_not_installed_is_skipped_with_its_reason(monkeypatch, capsys):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *rest: None if name == "openvino" else real_find_spec(name, *rest))
    assert missing("openvino") == "openvino is not installed: skipped (pip install 'convzoo[openvino]')"
    assert main(["bench", "--against", "openvino", "--models", "lenet5", "--batch-sizes", "1", "--backends",
                 "eager", "--warmup", "1", "--repeats", "1", "--thread-counts", "1"]) == 0
    out = capsys.readouterr().out
    assert "openvino is not installed" in out and "| lenet5 | 1 | 32 | 1 | fast eager |" in out
    assert "compiled" not in out and "| openvino |" not in out


def test_against_refuses_unknown_engines(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "--against", "tensorrt"])
    assert "onnxruntime, openvino" in capsys.readouterr().err
