"""`compare` takes a trained run folder wherever it takes a name: the run's network is measured at the run's
input size and its accuracy is the run's own test top-1, labelled with the data it was trained on."""
import json

import pytest

import convzoo
from convzoo.analysis.compare import compare, complexity_chart
from convzoo.cli import main
from convzoo.training import make_config, train


@pytest.fixture(scope="module")
def lenet_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "lenet5"
    train(make_config("lenet5", data="digits", out=str(out), epochs=1, threads=1, explain=False))
    return out


def test_a_run_row_uses_the_runs_accuracy_and_measured_cost(lenet_run):
    rows = compare(["alexnet", str(lenet_run)])
    assert [r.name for r in rows] == ["alexnet", "lenet5"]
    run = rows[1]
    results = json.loads((lenet_run / "results.json").read_text())
    assert run.top1_accuracy == round(results["top1_accuracy"], 2)
    assert run.trained_on == "digits" and run.label == "lenet5 (digits)"
    assert run.input_size == (1, 32, 32)
    assert run.params == convzoo.model_card("lenet5").params
    assert run.macs == convzoo.summary("lenet5", convention="conv_linear").total_macs
    assert rows[0].trained_on is None and rows[0].label == "alexnet"


def test_the_cli_table_and_chart_name_where_accuracy_comes_from(lenet_run, tmp_path, capsys):
    chart = tmp_path / "chart.png"
    assert main(["compare", "resnet18", str(lenet_run), "--out", str(chart)]) == 0
    out = capsys.readouterr().out
    assert "paper (ImageNet)" in out and "run, digits test" in out
    assert chart.stat().st_size > 10_000


def test_an_unfinished_run_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="results.json"):
        compare([str(tmp_path)])
