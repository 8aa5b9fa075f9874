"""Does the learning-rate finder's suggestion lie within a factor of 3 of the best rate of a sweep?

The finder (`convzoo lr-find`, 100 steps from 1e-6 to 10) on NETWORK/digits under the quick recipe, then the
same configuration trained for EPOCHS epochs at rates 3x apart; the best rate is the one with the highest test
top-1 accuracy (ties: the lower test loss). One thread a run.

    python benchmarks/bench_lr_finder.py --model lenet5 --epochs 5 --out /tmp/lr-bench
"""
from __future__ import annotations

import argparse
import io
import json
import os
from pathlib import Path

from rich.console import Console

from convzoo.io import atomic_write_text
from convzoo.training import find_lr, make_config, train

RATES = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="lenet5")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--input-size", type=int, default=None)
    parser.add_argument("--data", default="digits")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--out", default="/tmp/lr-bench")
    args = parser.parse_args()
    quiet = Console(file=io.StringIO())
    settings = dict(data=args.data, epochs=args.epochs, threads=1, amp=False, channels_last=False)
    if args.batch_size:
        settings["batch_size"] = args.batch_size
    if args.input_size:
        settings["input_size"] = (args.input_size, args.input_size)
    found = find_lr(make_config(args.model, **settings), out=Path(args.out) / "finder", console=quiet)
    rows = []
    for lr in RATES:
        result = train(make_config(args.model, lr=lr, out=str(Path(args.out) / f"lr{lr:g}"), **settings), console=quiet)
        rows.append((lr, result.test["top1_accuracy"], result.test["loss"]))
        print(f"lr {lr:<6g} test top-1 {result.test['top1_accuracy']:6.2f}%  loss {result.test['loss']:.4f}", flush=True)
    best = max(rows, key=lambda r: (r[1], -r[2]))[0]
    ratio = max(found.suggestion / best, best / found.suggestion)
    print(f"finder: suggestion {found.suggestion:.3g} (steepest: {found.steepest:.3g}); best swept rate {best:g}; "
          f"factor {ratio:.2f} [target <= 3: {'met' if ratio <= 3 else 'missed'}]; load {os.getloadavg()[0]:.1f}")
    atomic_write_text(Path(args.out) / "summary.json", json.dumps(
        {"suggestion": found.suggestion, "steepest": found.steepest, "sweep": rows, "best": best,
         "factor": ratio}, indent=2))


if __name__ == "__main__":
    main()
