"""How long `convzoo summary resnet152` takes, end to end and the analysis alone, against fvcore.

    python benchmarks/bench_summary.py [--model resnet152] [--repeats 5]

Prints:
- the command `convzoo summary MODEL` as a user runs it (a new Python process each time), next to the
  cost of merely starting Python and importing torch, which no command using torch can avoid;
- in one process: `convzoo.summary(name)` (builds the network on the meta device and analyses it),
  `convzoo.summary(model)` on an already built model, and fvcore's `FlopCountAnalysis(model, x)` on the
  same model (fvcore needs real tensors: the model gets uninitialised CPU storage, which is enough to count).

Best and median of `--repeats` runs; one thread, so the figures do not depend on what else the machine runs.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from typing import Callable


def timed(run: Callable[[], object], repeats: int) -> tuple[float, float]:
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - start)
    return min(seconds), statistics.median(seconds)


def command(args: list[str]) -> Callable[[], object]:
    return lambda: subprocess.run(args, check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet152")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    def report(label: str, figures: tuple[float, float]) -> None:
        print(f"{label:<58} best {figures[0]:7.3f} s   median {figures[1]:7.3f} s")

    python = sys.executable
    print(f"end to end, new process each run ({args.repeats} runs):")
    report("python -c 'import torch'", timed(command([python, "-c", "import torch"]), args.repeats))
    report("python -c 'import convzoo.cli'", timed(command([python, "-c", "import convzoo.cli"]), args.repeats))
    report(f"convzoo summary {args.model}",
           timed(command([python, "-m", "convzoo", "summary", args.model]), args.repeats))

    import torch
    from fvcore.nn import FlopCountAnalysis

    import convzoo

    torch.set_num_threads(1)
    card = convzoo.model_card(args.model)
    with torch.device("meta"):
        model = convzoo.create_model(args.model)
    model.to_empty(device="cpu").eval()
    x = torch.zeros(1, *card.input_size)

    def fvcore_count() -> int:
        analysis = FlopCountAnalysis(model, x)
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        return analysis.total()

    convzoo.summary(model)  # warm up imports and caches for both
    fvcore_count()
    print(f"\nin one process, {args.model} at {'x'.join(map(str, card.input_size))}, one thread:")
    ours = timed(lambda: convzoo.summary(model), args.repeats)
    report(f"convzoo.summary('{args.model}')  (build on meta + analyse)",
           timed(lambda: convzoo.summary(args.model), args.repeats))
    report("convzoo.summary(model)  (meta copy + analyse)", ours)
    theirs = timed(fvcore_count, max(2, args.repeats // 2))
    report("fvcore FlopCountAnalysis(model, x).total()", theirs)
    print(f"\nconvzoo.summary(model) is {theirs[0] / ours[0]:.1f}x faster than fvcore (best against best)")


if __name__ == "__main__":
    main()
