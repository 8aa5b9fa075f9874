"""The inference path with and without freed memory reused (`optimize_for_inference(reuse_memory=...)`): page
faults and milliseconds a call, each setting in its own process (the setting is process-wide and for good).

    python benchmarks/bench_page_faults.py [--model mobilenet_v2] [--batch 8] [--input-size 224] [--calls 9]
                                           [--threads 1] [--eager]

Builds the compiled path (`--eager`: the fast eager one), makes 3 untimed calls, then `--calls` timed ones;
prints the median milliseconds and the page faults (`ru_minflt`) of the last call, for reuse off and on.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

_CHILD = r"""
import json, resource, statistics, sys, time
import torch
model, batch, size, calls, threads, reuse, compile = sys.argv[1:8]
torch.set_num_threads(int(threads))
import convzoo
fast = convzoo.optimize_for_inference(convzoo.create_model(model).eval(), compile=compile == "1",
                                      reuse_memory=reuse == "1")
torch.manual_seed(0)
images = torch.randn(int(batch), convzoo.model_card(model).input_size[0], int(size), int(size))
seconds, faults = [], 0
with torch.inference_mode():
    for _ in range(3):
        fast(images)
    for _ in range(int(calls)):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        start = time.perf_counter()
        fast(images)
        seconds.append(time.perf_counter() - start)
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(json.dumps({"ms": 1e3 * statistics.median(seconds), "faults": faults}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mobilenet_v2")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--calls", type=int, default=9)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--eager", action="store_true", help="the fast eager path instead of the compiled one")
    args = parser.parse_args()
    for reuse in ("0", "1"):
        done = subprocess.run([sys.executable, "-c", _CHILD, args.model, str(args.batch), str(args.input_size),
                               str(args.calls), str(args.threads), reuse, "0" if args.eager else "1"],
                              capture_output=True, text=True)
        if done.returncode != 0:
            print(done.stderr.strip().splitlines()[-1])
            return 1
        result = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{args.model} batch {args.batch} at {args.input_size}x{args.input_size}, "
              f"{'fast eager' if args.eager else 'compiled'}, reuse_memory={reuse == '1'}: "
              f"{result['ms']:.1f} ms a call, {result['faults']} page faults in the last")
    return 0


if __name__ == "__main__":
    sys.exit(main())
