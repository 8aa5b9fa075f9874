"""`convzoo summary` and `convzoo compare`: formats, options, the chart file, and clean errors."""
import csv
import io
import json

import pytest

from convzoo.cli import main


def test_summary_json_markdown_csv(capsys):
    assert main(["summary", "resnet50", "--format", "json", "--convention", "conv_linear", "--depth", "1"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["total_macs"] == 4_089_184_256 and data["total_flops"] == 2 * 4_089_184_256
    assert data["total_params"] == 25_557_032 and max(r["depth"] for r in data["rows"]) == 1

    assert main(["summary", "alexnet", "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    assert "| features.0 | Conv2d | 96x55x55 | 34,944 | 105,415,200 | 11 | 4 | 5 |" in out

    assert main(["summary", "lenet5", "--format", "csv", "--input", "1x32x32"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert rows[1]["name"] == "c1" and rows[1]["output_shape"] == "6x28x28"


def test_summary_table_is_a_tree(capsys):
    assert main(["summary", "resnet18", "--depth", "2"]) == 0
    out = capsys.readouterr().out
    assert "layer1" in out and "    0 " in out and "11,689,512" in out and "MACs" in out


@pytest.mark.parametrize("bad", ["224", "3x224x", "3 x 224 x 224", "3x0x224", "axbxc"])
def test_a_malformed_input_shows_the_form(bad, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["summary", "resnet18", "--input", bad])
    assert exit_info.value.code == 2
    assert "3x224x224" in capsys.readouterr().err


def test_too_small_an_input_and_unknown_names_are_clean_errors(capsys):
    assert main(["summary", "alexnet", "--input", "3x32x32"]) == 2
    err = capsys.readouterr().err
    assert "at least 67x67" in err and "Traceback" not in err
    assert main(["summary", "resnet5O"]) == 2
    assert "resnet50" in capsys.readouterr().err
    assert main(["compare", "nothing*"]) == 2


def test_compare_table_and_chart(tmp_path, capsys):
    chart = tmp_path / "chart.png"
    assert main(["compare", "vgg1?", "resnet18", "resnet20", "--out", str(chart)]) == 0
    out = capsys.readouterr().out
    for name in ("vgg11", "vgg16", "vgg19", "resnet18", "resnet20"):
        assert name in out
    assert "72.12%" in out  # resnet18: 100 - 27.88 reported top-1 error
    assert "not on the chart (no reported ImageNet top-1): resnet20" in out
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
