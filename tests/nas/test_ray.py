"""Searches on a real Ray cluster: a head node (no CPU: the driver's) and two worker nodes of one CPU each, all on
127.0.0.1 (ray.cluster_utils.Cluster, started once for the module), the children running as Ray tasks. One worker
node declares a GPU (Ray counts resources, it does not look for hardware; there is none here), so a child's GPU
request can be checked where Ray grants it. Nothing leaves 127.0.0.1 (executor.LOOPBACK_RAY_ENV). Tiny children:
2 layers on 8x8 digits, 1 epoch."""
from __future__ import annotations

import importlib
import io
import json
import os
import threading
import time
from pathlib import Path

import pytest
import torch
from rich.console import Console

import convzoo
from convzoo.cli import build_parser, nas_search_config
from convzoo.nas.config import SearchConfig
from convzoo.nas.executor import LOOPBACK_RAY_ENV, ExecutorError
from convzoo.nas.folder import SearchFolder
from convzoo.nas.search import search

search_module = importlib.import_module("convzoo.nas.search")
from convzoo.nas.space import SearchSpace

try:
    import ray
    from ray.cluster_utils import Cluster
except ImportError:
    if os.environ.get("CI") == "true":
        pytest.fail('ray is not installed, and CI runs the Ray cluster tests: install ".[test,ray]"', pytrace=False)
    pytest.skip('ray is not installed (pip install "convzoo[ray]"): the Ray cluster tests are skipped',
                allow_module_level=True)

# One cluster for the module, so its tests run in one pytest-xdist worker (--dist loadgroup).
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ray")]

SPACE = SearchSpace(filter_sizes=(1, 3), num_filters=(4, 8))
TINY = dict(input_size=(1, 8, 8), space=SPACE, start_layers=2, epochs=1, reward_epochs=1, batch_size=16)
# What a leaderboard row says about the architecture and its score (not how long it took, nor how often it ran).
ROUND = dict(TINY, budget=4, children_per_update=4)  # one round of REINFORCE: 4 children, then the update
SCORE = ("index", "key", "spec", "reward", "val_accuracy", "params", "macs", "duplicate_of", "run", "error")


def quiet() -> Console:
    return Console(file=io.StringIO())


def scores(rows: list[dict]) -> list[dict]:
    return [{k: row[k] for k in SCORE} for row in rows]


@pytest.fixture(scope="module")
def cluster():
    # Loopback only (executor.LOOPBACK_RAY_ENV), and the nodes' workers import this convzoo wherever the test runs.
    source = str(Path(convzoo.__file__).resolve().parents[1])
    env = {**LOOPBACK_RAY_ENV, "PYTHONPATH": os.pathsep.join(filter(None, [source, os.environ.get("PYTHONPATH")]))}
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    constants = ray._private.ray_constants  # read when ray was imported, maybe before the environment was set
    enable_cluster, constants.ENABLE_RAY_CLUSTER = constants.ENABLE_RAY_CLUSTER, False
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "node_ip_address": "127.0.0.1",
                                                            "include_dashboard": False})
    try:
        cpu_node = cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
        cluster.add_node(num_cpus=1, num_gpus=1, node_ip_address="127.0.0.1")
        ray.init(address=cluster.address, log_to_driver=False)
        yield {"cluster": cluster, "address": cluster.address, "cpu_node": cpu_node}
    finally:
        ray.shutdown()
        cluster.shutdown()
        constants.ENABLE_RAY_CLUSTER = enable_cluster
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="module")
def serial4(tmp_path_factory) -> Path:
    """The reference: a REINFORCE search of one round of 4 children, in this process."""
    out = tmp_path_factory.mktemp("serial") / "reinforce4"
    torch.set_num_threads(1)
    search(SearchConfig(**ROUND), out, console=quiet())
    return out


def test_a_ray_search_scores_every_child_as_the_serial_search_at_most_workers_at_once(cluster, serial4, tmp_path,
                                                                                      monkeypatch):
    peak = []  # children submitted and not finished, at each submission
    real = SearchConfig.make_executor

    def counting(config):
        executor = real(config)
        submit, futures = executor.submit, []

        def counted(fn, *args):
            futures.append(submit(fn, *args))
            peak.append(sum(not f.done() for f in futures))
            return futures[-1]

        executor.submit = counted
        return executor

    monkeypatch.setattr(SearchConfig, "make_executor", counting)
    config = SearchConfig(**ROUND, workers=2, executor="ray", address=cluster["address"])
    result = search(config, tmp_path / "ray", console=quiet())
    assert scores(result.rows) == scores(SearchFolder(serial4).read_leaderboard())
    assert max(peak) == 2 < config.children_per_update  # a round of 4 children, never more than 2 on the cluster
    assert all(row["attempts"] == 1 for row in result.rows if row["duplicate_of"] is None)
    assert_same_controller(tmp_path / "ray", serial4)
    for row in result.rows:  # the children's run folders came back from the nodes to the search folder
        if row["duplicate_of"] is None:
            child = tmp_path / "ray" / row["run"]
            assert json.loads((child / "config.json").read_text())["config"]["out"] == str(child)
            assert (child / "last.safetensors").is_file() and (child / "metrics.csv").is_file()


def assert_same_controller(out: Path, reference: Path) -> None:
    """The REINFORCE update after the round came out the same."""
    state, expected = SearchFolder(out).load_state(), SearchFolder(reference).load_state()
    assert state["rounds"] == expected["rounds"] == 1
    for key, tensor in expected["sampler"]["updater"]["controller"].items():
        assert torch.equal(state["sampler"]["updater"]["controller"][key], tensor), key


def test_an_interrupted_ray_search_resumes_on_the_serial_executor_to_the_same_leaderboard(cluster, serial4,
                                                                                        tmp_path, monkeypatch):
    out = tmp_path / "interrupted"
    report = search_module._report

    def interrupt_after_the_first_child(*args):
        report(*args)
        raise KeyboardInterrupt  # Ctrl-C in the driver while the other child trains on the cluster

    monkeypatch.setattr(search_module, "_report", interrupt_after_the_first_child)
    with pytest.raises(KeyboardInterrupt):
        search(SearchConfig(**ROUND, workers=2, executor="ray", address=cluster["address"]), out, console=quiet())
    monkeypatch.setattr(search_module, "_report", report)
    assert len(SearchFolder(out).read_leaderboard()) == 1
    # resumed on the serial executor: the state is the driver's; an executor only runs children
    result = search(SearchConfig(**ROUND), out, resume=True, console=quiet())
    assert scores(result.rows) == scores(SearchFolder(serial4).read_leaderboard())
    assert_same_controller(out, serial4)


def test_gpus_per_child_reaches_the_ray_task_request(cluster):
    def granted():  # runs in the Ray worker, as a child would
        import os

        import ray
        import torch

        return {"resources": ray.get_runtime_context().get_assigned_resources(), "gpu_ids": ray.get_gpu_ids(),
                "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"), "threads": torch.get_num_threads()}

    parser = build_parser()
    args = parser.parse_args(["nas", "search", "--executor", "ray", "--address", cluster["address"],
                              "--cpus-per-child", "1", "--gpus-per-child", "1", "--workers", "1"])
    config, _ = nas_search_config(args)
    with config.make_executor() as executor:
        assert executor.options == {"num_cpus": 1.0, "num_gpus": 1.0, "max_retries": 0}
        on_gpu = executor.submit(granted).result(timeout=120)
    assert on_gpu == {"resources": {"CPU": 1.0, "GPU": 1.0}, "gpu_ids": [0], "cuda_visible_devices": "0",
                      "threads": 1}
    args = parser.parse_args(["nas", "search", "--executor", "ray", "--address", cluster["address"]])
    with nas_search_config(args)[0].make_executor() as executor:
        assert executor.submit(granted).result(timeout=120)["resources"] == {"CPU": 1.0}
    # a request no node can meet is refused at once, not left pending forever
    args = parser.parse_args(["nas", "search", "--executor", "ray", "--address", cluster["address"],
                              "--gpus-per-child", "1", "--cpus-per-child", "2"])
    with pytest.raises(ExecutorError, match="no node of the Ray cluster has 2 CPUs and 1 GPUs"):
        nas_search_config(args)[0].make_executor()


def test_a_worker_node_removed_mid_search_leaves_every_child_accounted_for(cluster, serial4, tmp_path, monkeypatch):
    # Last in the module: it takes a node away. A round of 4 children, two at a time, one on each node. The first
    # child to start on the CPU node waits there, announcing itself; once another child is scored (the search is
    # under way) the CPU node goes, with the waiting child, which runs again on the other node. The child itself
    # says when it is on the node: waiting for Ray's resource view to read "both nodes busy" raced with it (that
    # view lags the nodes, so a node could be removed idle, and then no child was lost).
    out = tmp_path / "removed"
    board = SearchFolder(out).leaderboard_json
    caught = tmp_path / "caught-on-the-cpu-node"
    cpu_node = cluster["cpu_node"].node_id

    def waits_on_the_cpu_node(fn, *args):  # runs in a Ray worker (pickled by value: a function of this test)
        import ray
        import time

        if ray.get_runtime_context().get_node_id() == cpu_node and not caught.exists():
            caught.write_text(args[0]["train_config"]["out"])
            time.sleep(300)  # until the node is removed under it (a deadline, should that never happen)
        return fn(*args)

    real = SearchConfig.make_executor

    def announcing(config):
        executor = real(config)
        submit = executor.submit
        executor.submit = lambda fn, *args: submit(waits_on_the_cpu_node, fn, *args)
        return executor

    def remove_the_cpu_node_under_its_child():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (caught.exists() and board.is_file()
                                                   and json.loads(board.read_text())):
            time.sleep(0.02)
        cluster["cluster"].remove_node(cluster["cpu_node"])

    monkeypatch.setattr(SearchConfig, "make_executor", announcing)
    remover = threading.Thread(target=remove_the_cpu_node_under_its_child)
    remover.start()
    try:
        result = search(SearchConfig(**ROUND, workers=2, executor="ray", address=cluster["address"], retries=1),
                        out, console=quiet())
    finally:
        remover.join()
    lost = Path(caught.read_text()).name
    assert [row["index"] for row in result.rows] == [0, 1, 2, 3]
    assert [(Path(row["run"]).name, row["attempts"]) for row in result.rows
            if row["duplicate_of"] is None and row["attempts"] != 1] == [(lost, 2)]  # the lost child, run again
    # every child scored, the lost one as it scores undisturbed, and the controller learnt from all of them
    assert scores(result.rows) == scores(SearchFolder(serial4).read_leaderboard())
    assert_same_controller(out, serial4)
