"""Issue 20's target, measured with each runner alone in its own process: convzoo's compiled path against
onnxruntime and OpenVINO on one network, batch and thread count.

    python benchmarks/bench_engines_alone.py [--model resnet50] [--batch 8] [--threads 1,2] [--rounds 2]
                                             [--calls 9] [--input-size 224]

`convzoo bench --against` times every runner round-robin in one process, which cancels a change in the load
but, with more than one thread, lets the runtimes disturb each other (their worker threads, their sessions
held side by side). Here every (runner, threads) runs in a fresh interpreter: build (compile, or make the
engine's session), 3 untimed calls, then `--calls` timed calls; the median counts. The runners alternate,
round after round, so a change in the load touches all of them. Prints images/s per round and the compiled
path over onnxruntime; exits 1 when that ratio's median is below 1.0 for any thread count (the target).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

RUNNERS = ("compiled", "onnxruntime", "openvino")
TARGET = 1.0

# Runs in the fresh interpreter: argv = runner, onnx file, model, batch, input size, threads, calls.
_CHILD = r"""
import json, statistics, sys, time
import numpy as np
runner, onnx_file, model, batch, size, threads, calls = sys.argv[1:8]
batch, size, threads, calls = int(batch), int(size), int(threads), int(calls)
import torch
torch.set_num_threads(threads)
import convzoo
channels = convzoo.model_card(model).input_size[0]
images = np.random.default_rng(0).standard_normal((batch, channels, size, size), dtype=np.float32)
if runner == "compiled":
    fast = convzoo.optimize_for_inference(convzoo.create_model(model).eval(), compile=True)
    tensor = torch.from_numpy(images)
    def step():
        with torch.inference_mode():
            fast(tensor)
else:
    from convzoo.engines import engine_runner
    run = engine_runner(runner, onnx_file, threads, images.shape)
    step = lambda: run(images)
for _ in range(3):
    step()
seconds = []
for _ in range(calls):
    start = time.perf_counter()
    step()
    seconds.append(time.perf_counter() - start)
print(json.dumps({"images_per_s": batch / statistics.median(seconds)}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--threads", default="1,2", help="thread counts, e.g. 1,2")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--calls", type=int, default=9)
    args = parser.parse_args()
    from convzoo.engines import missing
    from convzoo.export import export
    from convzoo.registry import model_card

    runners = [runner for runner in RUNNERS if runner == "compiled" or not missing(runner)]
    if "onnxruntime" not in runners:
        print(missing("onnxruntime"))
        return 2
    failed = False
    with tempfile.TemporaryDirectory() as folder:
        onnx_file = Path(folder) / f"{args.model}.onnx"
        channels = model_card(args.model).input_size[0]
        export(args.model, format="onnx", out=onnx_file, input_size=(channels, args.input_size, args.input_size),
               check=False)
        print(f"{args.model}, batch {args.batch}, {args.input_size}x{args.input_size}; load average "
              f"{os.getloadavg()[0]:.2f} at the start")
        for threads in (int(part) for part in args.threads.split(",")):
            rates: dict[str, list[float]] = {runner: [] for runner in runners}
            for _ in range(args.rounds):
                for runner in runners:
                    done = subprocess.run([sys.executable, "-c", _CHILD, runner, str(onnx_file), args.model,
                                           str(args.batch), str(args.input_size), str(threads), str(args.calls)],
                                          capture_output=True, text=True)
                    if done.returncode != 0:
                        print(f"{runner}: {done.stderr.strip().splitlines()[-1]}")
                        return 1
                    rates[runner].append(json.loads(done.stdout.strip().splitlines()[-1])["images_per_s"])
            ratios = [compiled / engine for compiled, engine in zip(rates["compiled"], rates["onnxruntime"])]
            failed |= statistics.median(ratios) < TARGET
            print(f"{threads} thread(s): " + "; ".join(f"{runner} {', '.join(f'{r:.2f}' for r in rate)}"
                                                        for runner, rate in rates.items())
                  + f" images/s; compiled x onnxruntime {', '.join(f'{r:.2f}' for r in ratios)}")
        print(f"load average {os.getloadavg()[0]:.2f} at the end")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
