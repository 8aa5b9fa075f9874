"""Fine-tuning against training from scratch on a new 5-class image folder (issue 18's target).

A ResNet-20 trained on the embedded digits (SOURCE, a run folder) is fine-tuned to the rotated digits of
make_rotated_digits.py with --init and the early stages frozen (--freeze, default stem layer1); the same network is trained from scratch
with the same seed, recipe (quick), batch and epochs. The held-out images are the validation split as well
as the test split (DATA/val -> DATA/test), so the per-epoch validation accuracy is the held-out accuracy.

    python benchmarks/make_rotated_digits.py /tmp/rotated-digits
    python benchmarks/bench_finetune.py --source runs/resnet20-digits --data /tmp/rotated-digits --target 90
"""
from __future__ import annotations

import argparse
import io
import os
from pathlib import Path

from rich.console import Console

from convzoo.training import make_config, train


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--source", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--input-size", type=int, default=16)
    parser.add_argument("--target", type=float, default=90.0, help="held-out top-1 accuracy to reach (%%)")
    parser.add_argument("--out", default="/tmp/finetune-bench")
    parser.add_argument("--freeze", nargs="*", default=["stem", "layer1"], help="none: fine-tune everything")
    parser.add_argument("--skip-scratch", action="store_true", help="only the fine-tuned run")
    parser.add_argument("--lr-body", type=float, default=None, help="the unfrozen body's rate (the head: 0.02)")
    args = parser.parse_args()
    val = Path(args.data) / "val"
    if not val.exists():
        val.symlink_to((Path(args.data) / "test").resolve(), target_is_directory=True)
    quiet = Console(file=io.StringIO())
    common = dict(data=args.data, epochs=args.epochs, batch_size=16, seed=0, threads=1, amp=False,
                  channels_last=False, input_size=(args.input_size, args.input_size))
    runs = {"scratch": {}, "fine-tuned": dict(init=args.source, freeze=tuple(args.freeze), lr_body=args.lr_body)}
    if args.skip_scratch:
        del runs["scratch"]
    for name, extra in runs.items():
        result = train(make_config("resnet20", out=str(Path(args.out) / name), **common, **extra), console=quiet)
        curve = [round(row["val_top1_accuracy"], 1) for row in result.history]
        reached = next((row["epoch"] for row in result.history if row["val_top1_accuracy"] >= args.target), None)
        print(f"{name:>10}: held-out top-1 by epoch {curve}; reaches {args.target:g}% at epoch {reached}; "
              f"best-checkpoint test top-1 {result.test['top1_accuracy']:.1f}%; train "
              f"{result.test['train_seconds']:.0f} s; load {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    main()
