"""`convzoo nas search` and `convzoo nas show` on tiny settings."""
from __future__ import annotations

import json

import pytest

from convzoo.cli import main

TINY = ["--data", "digits", "--input-size", "1x8x8", "--filter-sizes", "1", "3", "--num-filters", "4", "8",
        "--start-layers", "2", "--budget", "2", "-m", "2", "--epochs", "1", "--reward-epochs", "1", "-b", "16"]


def test_nas_search_and_show(tmp_path, capsys):
    reinforce, random_search = tmp_path / "reinforce", tmp_path / "random"
    assert main(["nas", "search", *TINY, "--out", str(reinforce)]) == 0
    out = capsys.readouterr().out
    assert "reinforce search on digits at 1x8x8: 2 architectures" in out and "[2/2]" in out
    assert "convzoo train nas --spec" in out
    assert main(["nas", "search", *TINY, "--method", "random", "--out", str(random_search)]) == 0
    capsys.readouterr()
    saved = json.loads((reinforce / "search.json").read_text())
    assert saved["space"] == {"filter_sizes": [1, 3], "num_filters": [4, 8], "strides": [1]}
    assert saved["input_size"] == [1, 8, 8] and saved["children_per_update"] == 2 and saved["batch_size"] == 16

    chart = tmp_path / "rewards.png"
    assert main(["nas", "show", str(reinforce), str(random_search), "--top", "2", "--out", str(chart)]) == 0
    out = capsys.readouterr().out
    rows = json.loads((reinforce / "leaderboard.json").read_text())
    best = max(rows, key=lambda r: r["reward"])
    assert "reinforce" in out and "random" in out and f"{best['reward']:.4f}" in out
    assert "Search accuracy is not final accuracy" in out
    assert chart.read_bytes()[:4] == b"\x89PNG"

    # resuming with another setting names it; a larger budget is allowed
    assert main(["nas", "search", "--resume", str(reinforce), "--lr", "0.5"]) == 2
    assert "lr (saved 0.1, given 0.5)" in capsys.readouterr().err
    assert main(["nas", "search", "--resume", str(reinforce), "--budget", "3"]) == 0
    assert len(json.loads((reinforce / "leaderboard.json").read_text())) == 3


def test_nas_search_refuses_a_zero_budget(tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:  # refused when the command line is parsed
        main(["nas", "search", *TINY, "--budget", "0", "--out", str(tmp_path / "s")])
    assert exited.value.code == 2 and "--budget: expected a whole number of at least 1" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_nas_show_of_a_folder_without_a_search(tmp_path, capsys):
    assert main(["nas", "show", str(tmp_path)]) == 2
    assert "holds no leaderboard.json" in capsys.readouterr().err
