"""The ENAS target of issue 6: on digits, a weight-sharing search finishes within 10 minutes on a 2-core machine,
and its winner, retrained from scratch by the training engine, reaches >= 97% test accuracy.

    python benchmarks/bench_enas.py [--seeds 0] [--epochs 60] [--layers 4] [--input-size 8]
                                    [--retrain-epochs 20] [--out runs/bench-enas] [--json FILE] [--verbose]

Per seed: the search OUT/enas-sSEED (the command line equivalent is printed), then the retraining of its
best.json in OUT/retrain-sSEED with the default `quick` recipe (`convzoo train nas --spec OUT/enas-sSEED/best.json
--data digits --epochs N`). Prints the search's wall time and its winner's validation accuracy with the shared
weights (search accuracy), the retrained winner's test accuracy (final accuracy), and the load average, since the
machine may be shared.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import time
from pathlib import Path

import torch
from rich.console import Console

from convzoo.nas import SearchConfig, SearchSpace, search
from convzoo.training import train
from convzoo.training.recipes import make_config

SEARCH_TARGET_SECONDS = 10 * 60
TEST_TARGET = 97.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, default=60, help="epochs of the shared weights")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--input-size", type=int, default=8, help="height and width (digits are 8x8)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--controller-steps", type=int, default=10, help="controller updates an epoch")
    parser.add_argument("--budget", type=int, default=20, help="children scored at the end")
    parser.add_argument("--retrain-epochs", type=int, default=20)
    parser.add_argument("--out", default="runs/bench-enas")
    parser.add_argument("--json", default=None, metavar="FILE", help="also write the rows as JSON")
    parser.add_argument("--verbose", action="store_true", help="print the search's and the training's lines")
    args = parser.parse_args()
    torch.set_num_threads(1)  # small convolutions and one-token controller steps: threads only add contention

    rows = []
    for seed in args.seeds:
        config = SearchConfig(
            method="enas", data="digits", input_size=(1, args.input_size, args.input_size), space=SearchSpace(),
            start_layers=args.layers, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
            entropy_weight=1e-4, budget=args.budget, seed=seed, enas={"controller_steps": args.controller_steps})
        out = Path(args.out)
        console = Console(stderr=True) if args.verbose else Console(file=io.StringIO())
        print(f"search: convzoo nas search --method enas --data digits --input-size 1x{args.input_size}x"
              f"{args.input_size} --start-layers {args.layers} --epochs {args.epochs} --batch-size "
              f"{args.batch_size} --lr {args.lr} --entropy-weight 1e-4 --budget {args.budget} --seed {seed} "
              f"--enas-arg controller_steps={args.controller_steps} --out {out / f'enas-s{seed}'}", flush=True)
        load_before = os.getloadavg()[0]
        started = time.perf_counter()
        result = search(config, out / f"enas-s{seed}", resume=(out / f"enas-s{seed}" / "search.json").is_file(),
                        console=console)
        search_seconds = time.perf_counter() - started
        load_search = os.getloadavg()[0]

        best_json = out / f"enas-s{seed}" / "best.json"
        print(f"retrain: convzoo train nas --spec {best_json} --data digits --epochs {args.retrain_epochs} "
              f"--out {out / f'retrain-s{seed}'}", flush=True)
        train_config = make_config("nas", data="digits", model_args={"spec": str(best_json)},
                                   epochs=args.retrain_epochs, out=str(out / f"retrain-s{seed}"))
        started = time.perf_counter()
        trained = train(train_config, console=console)
        rows.append({
            "seed": seed, "search_seconds": round(search_seconds, 1),
            "search_val_accuracy": round(result.best["val_accuracy"], 2),
            "test_accuracy": round(trained.test["top1_accuracy"], 2),
            "retrain_seconds": round(time.perf_counter() - started, 1),
            "params": result.best["params"], "load_before": load_before, "load_after_search": load_search,
            "load_after": os.getloadavg()[0]})
        row = rows[-1]
        print(f"seed {seed}: search {row['search_seconds']:.0f} s (target {SEARCH_TARGET_SECONDS} s: "
              f"{'met' if search_seconds <= SEARCH_TARGET_SECONDS else 'MISSED'}), winner {row['params']:,} params, "
              f"validation {row['search_val_accuracy']:.2f}% with shared weights; retrained {args.retrain_epochs} "
              f"epochs in {row['retrain_seconds']:.0f} s: test {row['test_accuracy']:.2f}% (target {TEST_TARGET}%: "
              f"{'met' if row['test_accuracy'] >= TEST_TARGET else 'MISSED'}); load average "
              f"{load_before:.1f} / {load_search:.1f} / {row['load_after']:.1f}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
