"""The same REINFORCE search of 16 children on each executor: serial (this process), process (local worker
processes) and Ray (tasks on a Ray node on this machine, 127.0.0.1), round-robin, with the load average.

    python benchmarks/bench_executors.py [--budget 16] [--epochs 2] [--workers 2] [--repeats 1]
                                         [--address HOST:PORT] [--out runs/bench-executors]

Without --address the script starts a one-node Ray cluster of `--workers` CPUs on 127.0.0.1 (its start-up time is
reported apart) and stops it at the end. Every search is checked against the serial one: the same children,
the same rewards (the executor decides where children train, never what they score).
"""
from __future__ import annotations

import argparse
import io
import os
import shutil
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from convzoo.nas import SearchConfig, SearchSpace, search

SCORE = ("index", "key", "reward", "val_accuracy", "duplicate_of")


def load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=2, help="per child")
    parser.add_argument("--children-per-update", type=int, default=4, help="m")
    parser.add_argument("--workers", type=int, default=2, help="process and Ray executors")
    parser.add_argument("--repeats", type=int, default=1, help="round-robin passes over the executors")
    parser.add_argument("--address", default=None, help="an existing Ray cluster (default: start one here)")
    parser.add_argument("--out", default="runs/bench-executors")
    args = parser.parse_args()

    from convzoo.nas.executor import LOOPBACK_RAY_ENV

    if args.address is None:
        os.environ.update(LOOPBACK_RAY_ENV)  # before `import ray`: nothing leaves 127.0.0.1
    import ray

    cluster = None
    started = time.perf_counter()
    address = args.address
    if address is None:
        from ray.cluster_utils import Cluster

        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": args.workers, "node_ip_address": "127.0.0.1",
                                                                "include_dashboard": False})
        address = cluster.address
    ray.init(address=address, log_to_driver=False)
    ray_start = time.perf_counter() - started

    base = dict(method="reinforce", data="digits", input_size=(1, 8, 8), space=SearchSpace(num_filters=(8, 16, 24, 32)),
                budget=args.budget, epochs=args.epochs, reward_epochs=1, children_per_update=args.children_per_update,
                seed=0)
    executors = {"serial": dict(workers=1), "process": dict(workers=args.workers),
                 "ray": dict(workers=args.workers, executor="ray", address=address)}
    table = Table(title=f"{args.budget}-child REINFORCE search (digits 8x8, 6 layers, {args.epochs} epochs a child, "
                        f"m={args.children_per_update}); Ray start-up {ray_start:.1f} s", title_justify="left")
    for column in ("pass", "executor", "workers", "seconds", "children/min", "same as serial", "load before",
                   "load after"):
        table.add_column(column, justify="left" if column in ("executor", "load before", "load after") else "right")
    reference = None
    try:
        for repeat in range(args.repeats):
            for name, settings in executors.items():
                out = Path(args.out) / f"{name}-{repeat}"
                shutil.rmtree(out, ignore_errors=True)
                before = load()
                started = time.perf_counter()
                result = search(SearchConfig(**base, **settings), out, console=Console(file=io.StringIO()))
                seconds = time.perf_counter() - started
                scores = [{k: row[k] for k in SCORE} for row in result.rows]
                reference = reference or scores
                table.add_row(str(repeat + 1), name, str(settings["workers"]), f"{seconds:.1f}",
                              f"{60 * args.budget / seconds:.1f}", "yes" if scores == reference else "NO", before,
                              load())
                Console().print(f"{name} pass {repeat + 1}: {seconds:.1f} s (load {load()})", highlight=False)
    finally:
        ray.shutdown()
        if cluster is not None:
            cluster.shutdown()
    Console(width=200).print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
