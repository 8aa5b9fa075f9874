"""The inference targets of issue 7, measured with `convzoo bench` (src/convzoo/bench.py).

    python benchmarks/bench_inference.py [--models resnet50] [--batch-sizes 8] [--input-sizes 224]
                                         [--backends eager,compile] [--repeats 10] [--json FILE] [--markdown FILE]

Runs the inference rows of the benchmark (plain NCHW, plain channels_last and the inference path
`optimize_for_inference`, each eager and compiled unless --backends says otherwise), prints the table, then
checks the targets on the first model, batch size and input size: the inference path at least 1.35x the eager
NCHW throughput, and at least 0.85 of the float32 matmul peak measured in the same run. Any other flag of
`convzoo bench` may be given.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from convzoo.bench import add_bench_arguments, run_benchmark, to_markdown

SPEEDUP_TARGET = 1.35
PEAK_TARGET = 0.85


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_bench_arguments(parser)
    parser.set_defaults(models=["resnet50"], batch_sizes=[8], input_sizes=[224], modes=["inference"])
    args = parser.parse_args()
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    result = run_benchmark(args.models, args.batch_sizes, args.input_sizes, modes=args.modes, layouts=args.layouts,
                           backends=args.backends, optimized=True, warmup=args.warmup, repeats=args.repeats,
                           matmul_sizes=args.matmul_sizes, progress=lambda message: print(message, file=sys.stderr))
    table = to_markdown(result)
    print(table)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    if args.markdown:
        Path(args.markdown).write_text(table)

    first = result["rows"][0]
    fast = [r for r in result["rows"] if r["path"] == "optimized" and r["mode"] == "inference"
            and (r["model"], r["batch"], r["input_size"]) == (first["model"], first["batch"], first["input_size"])]
    met = True
    for row in fast:
        speedup_ok = row["speedup"] is not None and row["speedup"] >= SPEEDUP_TARGET
        peak_ok = row["of_peak"] >= PEAK_TARGET
        met &= speedup_ok and peak_ok
        print(f"{row['model']} batch {row['batch']} at {row['input_size']}, inference path ({row['backend']}): "
              f"{row['speedup'] or float('nan'):.2f}x eager NCHW (target {SPEEDUP_TARGET}: "
              f"{'met' if speedup_ok else 'not met'}), {row['of_peak']:.2f} of the matmul peak "
              f"(target {PEAK_TARGET}: {'met' if peak_ok else 'not met'})")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
