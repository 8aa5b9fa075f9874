"""The search target of issue 6: on digits, a REINFORCE search of 64 children (a small filter menu, a few
epochs each) within 15 minutes on a 2-core machine with 2 workers, and random search at the same budget, over
3 seeds.

    python benchmarks/bench_nas.py [--seeds 0 1 2] [--methods reinforce random] [--budget 64] [--epochs 5]
                                   [--workers 2] [--out runs/bench-nas] [--json FILE] [--verbose]

Each (method, seed) is one search folder OUT/METHOD-sSEED (compare them with `convzoo nas show`). Prints one row
per search: best reward and its validation accuracy, the mean reward of the last quarter of the samples (does
the controller learn?), duplicates, and the wall time against the 15-minute target. The rewards are search
accuracy (validation split, 5-epoch children): retrain a winner with `convzoo train nas --spec DIR/best.json`
for its test accuracy.
"""
from __future__ import annotations

import argparse
import io
import json
import statistics
import time
from pathlib import Path

from rich.console import Console

from convzoo.nas import SearchConfig, SearchSpace, search

TARGET_SECONDS = 15 * 60


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", choices=("reinforce", "random"), default=["reinforce", "random"])
    parser.add_argument("--budget", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=5, help="per child")
    parser.add_argument("--reward-epochs", type=int, default=3)
    parser.add_argument("--num-filters", type=int, nargs="+", default=[8, 16, 24, 32], help="the filter menu")
    parser.add_argument("--input-size", type=int, default=8, help="height and width (digits are 8x8)")
    parser.add_argument("--children-per-update", type=int, default=2, help="m")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default="runs/bench-nas")
    parser.add_argument("--json", default=None, metavar="FILE", help="also write the rows as JSON")
    parser.add_argument("--verbose", action="store_true", help="print every child's line")
    args = parser.parse_args()

    rows = []
    for seed in args.seeds:
        for method in args.methods:
            config = SearchConfig(
                method=method, data="digits", input_size=(1, args.input_size, args.input_size),
                space=SearchSpace(num_filters=tuple(args.num_filters)), budget=args.budget, epochs=args.epochs,
                reward_epochs=args.reward_epochs, children_per_update=args.children_per_update, seed=seed,
                workers=args.workers)
            out = Path(args.out) / f"{method}-s{seed}"
            resume = out.joinpath("search.json").is_file()
            started = time.perf_counter()
            result = search(config, out, resume=resume,
                            console=Console(stderr=True) if args.verbose else Console(file=io.StringIO()))
            seconds = time.perf_counter() - started
            rewards = [r["reward"] for r in result.rows]
            last = rewards[len(rewards) - max(len(rewards) // 4, 1):]
            row = {"method": method, "seed": seed, "children": len(rewards),
                   "trained": sum(bool(r["run"]) for r in result.rows),
                   "best_reward": result.best["reward"], "best_val_accuracy": result.best["val_accuracy"],
                   "best_params": result.best["params"], "mean_reward_last_quarter": statistics.mean(last),
                   "mean_reward": statistics.mean(rewards), "wall_seconds": round(seconds, 1),
                   "resumed": resume, "folder": str(out)}
            rows.append(row)
            print(f"done: {method} seed {seed}: best reward {row['best_reward']:.4f} "
                  f"(val {row['best_val_accuracy']:.2f}%) in {seconds:.0f} s", flush=True)

    print()
    print(f"digits at {args.input_size}x{args.input_size}, {args.budget} children of {args.epochs} epochs "
          f"(reward: best validation accuracy of the last {args.reward_epochs}, cubed), filter menu "
          f"{args.num_filters}, m = {args.children_per_update}, {args.workers} workers")
    print()
    print("| method | seed | children (trained) | best reward | best val acc | best params | mean reward | "
          "mean reward, last 1/4 | wall time |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['method']} | {row['seed']} | {row['children']} ({row['trained']}) | {row['best_reward']:.4f} | "
              f"{row['best_val_accuracy']:.2f}% | {row['best_params']:,} | {row['mean_reward']:.4f} | "
              f"{row['mean_reward_last_quarter']:.4f} | {row['wall_seconds']:.0f} s"
              + (" (resumed)" if row["resumed"] else "") + " |")
    for method in args.methods:
        best = [r["best_reward"] for r in rows if r["method"] == method]
        print(f"{method}: best reward over seeds {statistics.mean(best):.4f} mean "
              f"(min {min(best):.4f}, max {max(best):.4f})")
    slow = [r for r in rows if r["method"] == "reinforce" and not r["resumed"] and r["wall_seconds"] > TARGET_SECONDS]
    print(f"target: a REINFORCE search within {TARGET_SECONDS // 60} minutes: "
          + ("met" if not slow else f"MISSED by {', '.join(str(r['seed']) for r in slow)}"))
    print(f"compare: convzoo nas show {' '.join(r['folder'] for r in rows[:2])} --out {args.out}/rewards.png")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0 if not slow else 1


if __name__ == "__main__":
    raise SystemExit(main())
