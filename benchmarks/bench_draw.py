"""How long `convzoo.draw` takes on the largest networks, after import (issue 15: resnet152 under 3 s), and
how large the collapsed ResNet-50 SVG is (under 200 KB).

    python benchmarks/bench_draw.py [--models resnet152 pspnet] [--repeats 3]

For each model, in one fresh process: the first call after `import convzoo` (it pays PyTorch's one-time
meta-kernel warm-up) and the best of the following calls, each split into the trace, the graph and layout,
and SVG text; wall time and this process's CPU time, with the load average, since the machine may be shared.
Runs on one thread, as the trace is Python-bound.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

CHILD = r"""
import sys, time, json
import torch
torch.set_num_threads(1)
import convzoo
name, repeats = sys.argv[1], int(sys.argv[2])
runs = []
for _ in range(repeats + 1):
    wall, cpu = time.perf_counter(), time.process_time()
    drawing = convzoo.draw(name)
    text = drawing.svg()
    runs.append((time.perf_counter() - wall, time.process_time() - cpu, len(text.encode())))
print(json.dumps(runs))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["resnet152", "pspnet", "resnet50"])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import json

    for name in args.models:
        out = subprocess.run([sys.executable, "-c", CHILD, name, str(args.repeats)], check=True,
                             capture_output=True, text=True).stdout
        runs = json.loads(out.strip().splitlines()[-1])
        first, rest = runs[0], runs[1:]
        best = min(rest, key=lambda r: r[0])
        print(f"{name:<14} first call {first[0]:6.2f} s wall {first[1]:6.2f} s CPU | "
              f"best of {len(rest)} later {best[0]:6.2f} s wall {best[1]:6.2f} s CPU | SVG {best[2] / 1024:6.1f} KB"
              f" | load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
