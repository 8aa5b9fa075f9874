"""The README's main job, `convzoo train lenet5 --data digits`, from two source trees side by side.

    python benchmarks/bench_main_job.py BEFORE_SRC AFTER_SRC [--repeats 2]

e.g. `python benchmarks/bench_main_job.py /work/main/src src`. Each run is a new process (wall time from launch
to exit: Python start-up, imports, data, the epochs, the test and the plots), the trees alternating
(before, after, before, after, ...) so both see the same machine load; images/s is the mean of the epochs'
training throughput from metrics.csv. The load average is printed before and after.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_once(src: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        env = {**os.environ, "PYTHONPATH": str(Path(src).resolve())}
        command = [sys.executable, "-m", "convzoo", "train", "lenet5", "--data", "digits", "--out", str(out)]
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, text=True, env=env, cwd=tmp)
        wall = time.perf_counter() - start
        results = json.loads((out / "results.json").read_text())
        with open(out / "metrics.csv", newline="") as f:
            rows = list(csv.DictReader(f))
    return {"wall_s": wall, "train_s": results["train_seconds"], "accuracy": results["top1_accuracy"],
            "images_per_s": statistics.mean(float(r["images_per_second"]) for r in rows)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    runs: dict[str, list[dict]] = {"before": [], "after": []}
    for _ in range(args.repeats):
        for label, src in (("before", args.before), ("after", args.after)):
            runs[label].append(run_once(src))
            print(label, {k: round(v, 4) for k, v in runs[label][-1].items()}, flush=True)
    print(f"load average after: {os.getloadavg()}")
    print(f"{'tree':8} {'wall s (median)':>16} {'train s':>8} {'images/s':>9} {'top-1':>7}")
    for label, rows in runs.items():
        print(f"{label:8} {statistics.median(r['wall_s'] for r in rows):16.1f} "
              f"{statistics.median(r['train_s'] for r in rows):8.1f} "
              f"{statistics.median(r['images_per_s'] for r in rows):9.0f} "
              f"{statistics.median(r['accuracy'] for r in rows):7.4f}")
    before, after = (statistics.median(r["images_per_s"] for r in runs[k]) for k in ("before", "after"))
    print(f"images/s after / before: {after / before:.2f}x")


if __name__ == "__main__":
    main()
