"""REINFORCE and random search end to end on tiny settings (2-layer children on 8x8 digits, 1 epoch each):
their files, exact resume, deduplication, and the errors."""
from __future__ import annotations

import csv
import hashlib
import importlib
import io
import json
import multiprocessing
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from rich.console import Console

from convzoo.errors import RunFolderError
from convzoo.nas.executor import ExecutorError, ProcessExecutor, SerialExecutor, make_executor
from convzoo.nas.folder import SearchFolder, join_tensors, split_tensors
from convzoo.nas.config import SearchConfig
from convzoo.nas.search import search
from convzoo.nas.space import SearchSpace
from convzoo.nas.spec import load_spec, spec_key

# The module (`convzoo.nas.search` the attribute is the function, which the package exports).
search_module = importlib.import_module("convzoo.nas.search")

TINY = dict(input_size=(1, 8, 8), space=SearchSpace(filter_sizes=(1, 3), num_filters=(4, 8)), start_layers=2,
            epochs=1, reward_epochs=1, children_per_update=2, batch_size=16)

# The tests that read the reference search (the reinforce4 fixture) run in one xdist worker: it is made once.
ON_REINFORCE4 = pytest.mark.xdist_group("reinforce4")


def tiny(**overrides) -> SearchConfig:
    return SearchConfig(**{**TINY, **overrides})


def quiet() -> Console:
    return Console(file=io.StringIO())


def run(config: SearchConfig, out: Path, resume: bool = False):
    return search(config, out, resume=resume, console=quiet())


def hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def reinforce4(tmp_path_factory) -> Path:
    """The reference: an uninterrupted REINFORCE search of budget 4 (2 rounds of 2)."""
    out = tmp_path_factory.mktemp("nas") / "reinforce4"
    torch.set_num_threads(1)
    search(tiny(budget=4), out, console=quiet())
    return out


@ON_REINFORCE4
def test_reinforce_search_writes_its_folder_and_the_leaderboard_agrees_with_the_children(reinforce4):
    folder = SearchFolder(reinforce4)
    rows = json.loads(folder.leaderboard_json.read_text())
    assert [row["index"] for row in rows] == [0, 1, 2, 3]
    with folder.leaderboard_csv.open() as f:
        csv_rows = list(csv.DictReader(f))
    assert [int(r["index"]) for r in csv_rows] == [0, 1, 2, 3]
    for row, csv_row in zip(rows, csv_rows):
        assert row["method"] == "reinforce" and row["num_layers"] == 2
        assert json.loads(csv_row["spec"]) == row["spec"] and float(csv_row["reward"]) == pytest.approx(row["reward"])
        assert row["key"] == spec_key(row["spec"])
        if row["duplicate_of"] is not None:
            continue
        # The reward is read from the child's own run folder: its validation accuracy of the last epoch, cubed.
        child = reinforce4 / row["run"]
        with (child / "metrics.csv").open() as f:
            history = list(csv.DictReader(f))
        val = max(float(h["val_top1_accuracy"]) for h in history[-1:])
        assert row["val_accuracy"] == pytest.approx(val)
        assert row["reward"] == pytest.approx((val / 100) ** 3)
        config = json.loads((child / "config.json").read_text())["config"]
        assert config["model"] == "nas" and spec_key(config["model_args"]["spec"]) == row["key"]
        assert config["epochs"] == 1 and config["threads"] == 1 and config["seed"] == 0
        assert config["explain"] is False and not (child / "explain").exists()  # scored, not explained
        assert row["params"] > 0 and row["macs"] > 0
    best = max(rows, key=lambda r: (r["reward"], -r["index"]))
    saved_best = load_spec(reinforce4)  # the folder's best.json
    assert spec_key(saved_best) == best["key"] and saved_best["meta"]["reward"] == best["reward"]
    assert folder.rewards_png.read_bytes()[:4] == b"\x89PNG"
    assert json.loads(folder.config.read_text())["budget"] == 4
    state = folder.load_state()
    assert state["rounds"] == 2 and len(state["samples"]) == 4
    updater = state["sampler"]["updater"]  # two REINFORCE updates, from a baseline of the first round's mean
    assert updater["updates"] == 2 and updater["baseline"] is not None
    assert int(updater["optimizer"]["state"][0]["step"]) == 2


@pytest.fixture
def trained_children(monkeypatch) -> list[str]:
    """Counts the children trained (the run folder names), training them for real."""
    trained: list[str] = []
    real = search_module.train_child

    def train_child(job):
        trained.append(Path(job["train_config"]["out"]).name)
        return real(job)

    monkeypatch.setattr(search_module, "train_child", train_child)
    return trained


@ON_REINFORCE4
def test_resume_after_a_kill_is_exact_and_retrains_nothing(reinforce4, tmp_path, trained_children, monkeypatch):
    counting = search_module.train_child

    def dies_on_the_third_child(job):
        if len(trained_children) == 2:
            raise KeyboardInterrupt  # the search is killed as child #2 starts training
        return counting(job)

    monkeypatch.setattr(search_module, "train_child", dies_on_the_third_child)
    out = tmp_path / "killed"
    with pytest.raises(KeyboardInterrupt):
        run(tiny(budget=4), out)
    state = SearchFolder(out).load_state()
    assert state["rounds"] == 1 and [s["reward"] is None for s in state["samples"]] == [False, False, True, True]
    before = {k: v for k, v in hashes(out).items() if k.startswith("children/")}
    monkeypatch.setattr(search_module, "train_child", counting)
    trained_children.clear()
    run(tiny(budget=4), out, resume=True)
    assert trained_children == ["0002", "0003"]  # only the unscored children train
    after = hashes(out)
    assert all(after[k] == v for k, v in before.items())  # the first round's children are untouched
    _assert_same_search(out, reinforce4)


@ON_REINFORCE4
def test_extending_the_budget_on_resume_equals_the_longer_search(reinforce4, tmp_path, trained_children):
    out = tmp_path / "extended"
    run(tiny(budget=3), out)  # stops mid-round: 1 update; child #2 scored but not yet learnt from
    assert SearchFolder(out).load_state()["rounds"] == 1
    trained_children.clear()
    run(tiny(budget=4), out, resume=True)
    assert trained_children == ["0003"]
    _assert_same_search(out, reinforce4)
    assert json.loads((out / "search.json").read_text())["budget"] == 4


def _assert_same_search(out: Path, reference: Path) -> None:
    state, expected = SearchFolder(out).load_state(), SearchFolder(reference).load_state()
    assert [s["layers"] for s in state["samples"]] == [s["layers"] for s in expected["samples"]]
    assert [s["reward"] for s in state["samples"]] == [s["reward"] for s in expected["samples"]]
    assert state["rounds"] == expected["rounds"]
    ours, theirs = state["sampler"]["updater"], expected["sampler"]["updater"]
    assert ours["baseline"] == theirs["baseline"]
    for key, value in theirs["controller"].items():
        torch.testing.assert_close(ours["controller"][key], value, rtol=0, atol=0)
    assert torch.equal(state["sampler"]["generator"], expected["sampler"]["generator"])
    adam = ours["optimizer"]["state"]
    assert set(adam) == set(theirs["optimizer"]["state"])
    for index, values in theirs["optimizer"]["state"].items():
        for name, tensor in values.items():
            torch.testing.assert_close(adam[index][name], tensor, rtol=0, atol=0)


@pytest.mark.slow
def test_random_search_in_two_worker_processes(tmp_path):
    # Two spawned workers (a few seconds to start torch in each): the same architectures and the same rewards as
    # in this process, the children training in float32 NCHW whatever the machine's load.
    config = tiny(method="random", budget=3, workers=2)
    parallel = run(config, tmp_path / "parallel")
    serial = run(tiny(method="random", budget=3), tmp_path / "serial")
    assert [r["key"] for r in serial.rows] == [r["key"] for r in parallel.rows]
    assert [r["reward"] for r in serial.rows] == [r["reward"] for r in parallel.rows]
    for row in parallel.rows:
        with (tmp_path / "parallel" / row["run"] / "metrics.csv").open() as f:
            val = float(list(csv.DictReader(f))[-1]["val_top1_accuracy"])
        assert row["reward"] == pytest.approx((val / 100) ** 3) and row["method"] == "random"
    assert (tmp_path / "parallel" / "best.json").is_file()
    # random search learns nothing: its state is its random stream
    assert set(SearchFolder(tmp_path / "serial").load_state()["sampler"]) == {"rng"}


def _first_child_waits(signs: str, fn, *args):
    """Runs in a worker process, around a child: the first child to start writes its process id and run folder's
    name to signs/victim and waits there (to be killed); any other writes signs/started-PID and trains."""
    signs = Path(signs)
    try:
        victim = os.open(signs / "victim", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        (signs / f"started-{os.getpid()}").write_text("")
        return fn(*args)
    os.write(victim, f"{os.getpid()} {Path(args[0]['train_config']['out']).name}".encode())
    os.close(victim)
    time.sleep(300)  # until killed (a deadline, should that never happen)
    return fn(*args)


@pytest.mark.slow
def test_a_child_whose_worker_process_dies_is_recorded_as_failed_and_the_search_goes_on(tmp_path, monkeypatch):
    # Two worker processes, no retries: a worker is killed once both children have started. The pool breaks, taking
    # every child not finished yet with it: each is recorded as failed, with the reason, and the search completes.
    # The first child to start waits in its worker until that worker is killed, so the kill always takes a child
    # still running (waiting for both run folders to appear raced with tiny children that finish in a second).
    out = tmp_path / "killed-worker"
    signs = tmp_path / "signs"
    signs.mkdir()
    real = SearchConfig.make_executor

    def announcing(config):
        executor = real(config)
        submit = executor.submit
        executor.submit = lambda fn, *args: submit(_first_child_waits, str(signs), fn, *args)
        return executor

    def kill_the_waiting_worker_once_both_children_started():
        deadline = time.monotonic() + 120
        victim = signs / "victim"
        while time.monotonic() < deadline and not (victim.is_file() and victim.read_text()
                                                   and list(signs.glob("started-*"))):
            time.sleep(0.02)
        os.kill(int(victim.read_text().split()[0]), signal.SIGKILL)

    monkeypatch.setattr(SearchConfig, "make_executor", announcing)
    killer = threading.Thread(target=kill_the_waiting_worker_once_both_children_started)
    killer.start()
    try:
        result = run(tiny(method="random", budget=2, workers=2, retries=0), out)
    finally:
        killer.join()
    assert [row["index"] for row in result.rows] == [0, 1]  # every child accounted for
    failed = [row for row in result.rows if row["error"] is not None]
    killed = (signs / "victim").read_text().split()[1]
    assert killed in [Path(row["run"]).name for row in failed]  # at least the child of the killed process
    for row in failed:
        assert row["reward"] == 0.0 and row["attempts"] == 1
        assert row["error"].startswith("failed: its worker was lost on all 1 runs; last: a worker process died")
    for row in result.rows:
        if row not in failed:  # a child that finished before the kill keeps its score
            assert row["reward"] > 0 and row["attempts"] == 1
    best = load_spec(out)["meta"]["index"] if (out / "best.json").exists() else None
    assert best not in [row["index"] for row in failed]  # a failed child is never the best
    state = SearchFolder(out).load_state()
    assert state["rounds"] == 1 and all(sample["reward"] is not None for sample in state["samples"])


def test_a_duplicate_is_scored_without_training(tmp_path):
    # One choice for everything: every sample is the same architecture.
    config = tiny(space=SearchSpace(filter_sizes=(3,), num_filters=(4,)), start_layers=1, budget=5,
                  children_per_update=2)
    result = run(config, tmp_path / "dup")
    assert [r["duplicate_of"] for r in result.rows] == [None, 0, 0, 0, 0]
    assert len({r["reward"] for r in result.rows}) == 1 and result.rows[1]["train_seconds"] == 0.0
    assert sorted(p.name for p in (tmp_path / "dup" / "children").iterdir()) == ["0000"]


def test_a_spec_that_cannot_be_built_scores_zero_untrained(tmp_path):
    # 7x7 filters on 3x3 images: a 7-high filter centred on a 3-high image has rows that only see padding.
    config = tiny(input_size=(1, 3, 3), space=SearchSpace(filter_sizes=(7,), num_filters=(4,)), budget=2)
    result = run(config, tmp_path / "invalid")
    assert [r["reward"] for r in result.rows] == [0.0, 0.0]
    assert all("layers[0].filter_height" in r["error"] for r in result.rows)
    assert not (tmp_path / "invalid" / "children").exists() and not (tmp_path / "invalid" / "best.json").exists()


def test_the_search_memory_estimate_counts_a_gallery_only_where_its_children_draw_one():
    from convzoo.nas.search import check_search_memory

    assert "explain gallery" not in check_search_memory(tiny(budget=1)).phases  # children draw none
    assert "explain gallery" in check_search_memory(tiny(budget=1, train_settings={"explain": True})).phases


def test_budget_and_settings_errors(tmp_path):
    with pytest.raises(ValueError, match="budget must be at least 1"):
        tiny(budget=0)
    with pytest.raises(ValueError, match="reward_epochs"):
        tiny(epochs=2, reward_epochs=3)
    with pytest.raises(ValueError, match="train_settings may not set lr"):
        tiny(train_settings={"lr": 0.5})
    with pytest.raises(ValueError, match="unknown training settings: nonsense"):
        tiny(train_settings={"nonsense": 1})
    assert SearchConfig.from_dict(tiny().to_dict()) == tiny()


@ON_REINFORCE4
def test_resume_of_another_search_names_the_setting_and_touches_nothing(reinforce4, tmp_path):
    before = hashes(reinforce4)
    with pytest.raises(RunFolderError, match=r"lr \(saved 0.1, given 0.5\)"):
        run(tiny(budget=4, lr=0.5), reinforce4, resume=True)
    with pytest.raises(RunFolderError, match="space"):
        run(tiny(budget=4, space=SearchSpace(filter_sizes=(1, 3, 5), num_filters=(4, 8))), reinforce4, resume=True)
    with pytest.raises(RunFolderError, match="already holds a search"):
        run(tiny(budget=4), reinforce4)
    assert hashes(reinforce4) == before
    with pytest.raises(RunFolderError, match="no search.json"):
        run(tiny(budget=1), tmp_path / "nothing", resume=True)


def test_ray_executor_without_ray_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, as where it is not installed
    with pytest.raises(ExecutorError, match=r'pip install "convzoo\[ray\]"'):
        run(tiny(budget=1, executor="ray"), tmp_path / "ray")
    assert not (tmp_path / "ray").exists()


def test_executors_return_futures():
    with make_executor("local", 1) as serial:
        assert isinstance(serial, SerialExecutor)
        assert serial.submit(pow, 2, 10).result() == 1024
        failed = serial.submit(int, "x")
        with pytest.raises(ValueError):
            failed.result()
    with pytest.raises(ExecutorError, match="unknown executor"):
        make_executor("slurm", 2)
    with pytest.raises(ExecutorError, match="workers must be at least 1"):
        ProcessExecutor(0)


def test_state_tensors_round_trip_keeps_int_keys():
    state = {"a": torch.arange(3), "opt": {0: {"step": torch.tensor(2.0)}, 1: {}}, "b": [1.5, None, "x"]}
    tree, tensors = split_tensors(state)
    json.dumps(tree)
    back = join_tensors(json.loads(json.dumps(tree)), tensors)
    assert set(back["opt"]) == {0, 1} and torch.equal(back["a"], state["a"]) and back["b"] == [1.5, None, "x"]


def test_each_method_gets_its_own_defaults_where_the_user_says_nothing():
    from convzoo.nas.config import METHOD_DEFAULTS, SearchConfig

    enas = SearchConfig.for_method({"method": "enas"})
    assert {k: getattr(enas, k) for k in METHOD_DEFAULTS["enas"]} == METHOD_DEFAULTS["enas"]
    assert SearchConfig.for_method({"method": "enas", "epochs": 7, "input_size": (1, 16, 16)}).epochs == 7
    assert SearchConfig.for_method({"method": "enas", "input_size": (1, 16, 16)}).input_size == (1, 16, 16)
    assert SearchConfig.for_method({"method": "random"}) == SearchConfig(method="random")
