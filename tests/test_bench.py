"""The benchmark: one row per configuration, throughput against the matmul peak measured in the same run,
markdown and JSON; `convzoo bench`."""
from __future__ import annotations

import json

import pytest

from convzoo import model_card
from convzoo.bench import matmul_peak, run_benchmark, to_markdown
from convzoo.cli import main


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
