"""Where the compiled path's time goes, convolution by convolution: oneDNN's own execution time of every
convolution shape in one forward of the compiled fast path, and the rate it reaches (GFLOP/s, 2 x
multiply-adds), so the slow shapes stand out against the machine's best.

    python benchmarks/bench_onednn_kernels.py [--model resnet50] [--batch 8] [--threads 1] [--calls 3]

The forward runs 3 times untimed, then `--calls` times with oneDNN's verbose mode on; each `exec` line
gives the primitive, its problem (mb, ic, oc, ih, oh, kh, ...) and its execution time in ms. Prints one
row per shape (summed over its calls in one forward, averaged over the calls), slowest total first, and
the sum. The rate is the shape's floating-point work over its time: on this machine (AMD EPYC, Zen 4, one
thread) oneDNN's 3x3 convolutions reach 107-127 GFLOP/s.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
import tempfile
from collections import defaultdict

_PROBLEM = re.compile(r"([a-z]+)(\d+)")


def convolution_rows(lines: list[str], calls: int) -> list[tuple[str, str, int, float, float]]:
    """(problem, post-ops, convolutions a forward, ms a forward, GFLOP/s) per convolution shape, from
    oneDNN verbose `exec` lines of `calls` forwards; slowest total first."""
    totals: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
    for line in lines:
        fields = line.strip().split(",")
        if len(fields) < 10 or fields[2] != "primitive" or fields[3] != "exec" or fields[5] != "convolution":
            continue
        problem, ms = fields[-2], float(fields[-1])
        post_ops = next((f.split(":", 1)[1] for f in fields[9].split() if f.startswith("attr-post-ops:")), "")
        size = {key: int(value) for key, value in _PROBLEM.findall(problem)}
        flops = 2 * size["mb"] * size["ic"] * size["oc"] * size["oh"] * size["ow"] * size["kh"] * size["kw"]
        flops //= size.get("g", 1)
        total = totals[(problem, post_ops)]
        total[0] += 1
        total[1] += ms
        total[2] += flops
    rows = [(problem, post_ops, round(count / calls), ms / calls, flops / ms / 1e6)
            for (problem, post_ops), (count, ms, flops) in totals.items()]
    return sorted(rows, key=lambda row: -row[3])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--calls", type=int, default=3)
    parser.add_argument("--input-size", type=int, default=224)
    args = parser.parse_args()

    import torch
    torch.set_num_threads(args.threads)
    import convzoo

    model = convzoo.create_model(args.model).eval()
    fast = convzoo.optimize_for_inference(model, compile=True, micro_batch=None)
    channels = convzoo.model_card(args.model).input_size[0]
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(args.batch, channels, args.input_size, args.input_size, generator=generator)
    with torch.inference_mode():
        for _ in range(3):
            fast(images)
        # oneDNN writes its verbose lines to the process's stdout (C's, not Python's): catch them on fd 1, in a
        # file (a pipe read after the calls would fill and block them).
        sys.stdout.flush()
        with tempfile.TemporaryFile(mode="w+") as caught:
            saved = os.dup(1)
            os.dup2(caught.fileno(), 1)
            try:
                with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):
                    for _ in range(args.calls):
                        fast(images)
            finally:
                sys.stdout.flush()
                os.dup2(saved, 1)
                os.close(saved)
            caught.seek(0)
            lines = caught.read().splitlines()

    rows = convolution_rows(lines, args.calls)
    print(f"{args.model}, batch {args.batch}, {args.threads} thread(s), compiled path, oneDNN execution times "
          f"averaged over {args.calls} forwards; load average {os.getloadavg()[0]:.2f}")
    print(f"| {'convolution (oneDNN problem)':<60} | {'post-ops':<18} | calls | ms a forward | GFLOP/s |")
    print(f"|{'-' * 62}|{'-' * 20}|------:|-------------:|--------:|")
    for problem, post_ops, count, ms, rate in rows:
        print(f"| {problem:<60} | {post_ops:<18} | {count:5d} | {ms:12.2f} | {rate:7.1f} |")
    print(f"sum: {sum(row[2] for row in rows)} convolutions, {sum(row[3] for row in rows):.1f} ms a forward")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
