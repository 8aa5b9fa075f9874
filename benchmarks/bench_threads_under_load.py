"""ENAS's epoch time with convzoo's thread policy, with the machine as it is ("idle": no extra load from this
script) and with one core kept busy by another process; the goal (issue 11): busy within 2x of idle.

    python benchmarks/bench_threads_under_load.py [--epochs 3] [--rounds 2] [--threads N] [--json FILE]

Each round runs the same ENAS search (digits, the method's defaults, `--epochs` epochs of the shared weights,
a small final budget) twice: once as the machine is, once beside a process that spins on one core. Rounds
alternate the order, so a drift in the machine's load hits both conditions. The epoch time is the median of the
time between the search's epoch lines. `--threads N` measures a fixed thread count instead of the policy (e.g. 2,
torch's default on 2 cores, to see the collapse the policy avoids; expect minutes an epoch under load). Prints
the load average (1 min) at the start and the end of every run: the machine may be shared with other work.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import tempfile
import time
from pathlib import Path

from rich.console import Console

from convzoo.nas.search import SearchConfig, search
from convzoo.runtime import choose_threads

GOAL = 2.0


class _EpochClock:
    """A file for the search's console that notes when each "epoch i/N" line is written."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def write(self, text: str) -> int:
        if text.startswith("epoch "):
            self.times.append(time.perf_counter())
        return len(text)

    def flush(self) -> None:
        pass


def _spin(stop) -> None:
    while not stop.is_set():
        for _ in range(100_000):
            pass


def epoch_seconds(epochs: int, threads: int | None, seed: int) -> float:
    config = SearchConfig.for_method({"method": "enas", "data": "digits", "epochs": epochs, "budget": 2,
                                      "seed": seed, "threads": threads})
    clock = _EpochClock()
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        search(config, Path(folder) / "search", console=Console(file=clock, width=400))
    marks = [start, *clock.times]
    return statistics.median(b - a for a, b in zip(marks, marks[1:]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="a fixed count instead of the policy")
    parser.add_argument("--json", default=None, metavar="FILE")
    args = parser.parse_args()
    print(f"threads: {choose_threads(args.threads)}; {os.cpu_count()} CPUs on the machine")
    rows = []
    for round_ in range(args.rounds):
        for condition in (("idle", "busy") if round_ % 2 == 0 else ("busy", "idle")):
            stop = multiprocessing.Event()
            spinner = multiprocessing.Process(target=_spin, args=(stop,)) if condition == "busy" else None
            if spinner:
                spinner.start()
            load_start = os.getloadavg()[0]
            try:
                seconds = epoch_seconds(args.epochs, args.threads, seed=round_)
            finally:
                if spinner:
                    stop.set()
                    spinner.join()
            row = {"round": round_, "condition": condition, "epoch_s": seconds, "load_start": load_start,
                   "load_end": os.getloadavg()[0]}
            rows.append(row)
            print(f"round {round_} {condition:4}: {seconds:6.2f} s an epoch (load average 1 min {load_start:.2f} "
                  f"-> {row['load_end']:.2f})", flush=True)
    idle = statistics.median(r["epoch_s"] for r in rows if r["condition"] == "idle")
    busy = statistics.median(r["epoch_s"] for r in rows if r["condition"] == "busy")
    print(f"median epoch: idle {idle:.2f} s, one core busy {busy:.2f} s: {busy / idle:.2f}x "
          f"(goal: within {GOAL:.0f}x) -> {'met' if busy <= GOAL * idle else 'NOT met'}")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "idle_s": idle, "busy_s": busy}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
