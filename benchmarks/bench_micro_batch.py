"""Micro-batching measured: the compiled fast path run in whole batches against the early stages run a few
images at a time (`optimize_for_inference(..., micro_batch=...)`), per network, in one process.

    python benchmarks/bench_micro_batch.py [--models mobilenet_v2,densenet121,resnet50,googlenet_bn,shufflenet_v2_x1_0]
                                           [--batch 8] [--threads 1] [--micro-batch N] [--rounds 8]

For each network: one fast copy compiled with whole batches (micro_batch=None) and one with micro-batches of
`--micro-batch` images (default: one per thread, what "auto" takes), each called twice untimed (compiling),
then `--rounds` rounds of one timed call of each, alternating; the medians count. Prints images/s each way and
micro over whole, and what micro_batch="auto" chose in a third copy (its own timing at the first call).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="mobilenet_v2,densenet121,resnet50,googlenet_bn,shufflenet_v2_x1_0")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--micro-batch", type=int, default=0, help="images per micro-batch (default: threads)")
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()

    import torch
    torch.set_num_threads(args.threads)
    import convzoo

    micro = args.micro_batch or args.threads
    print(f"batch {args.batch}, {args.threads} thread(s), micro-batches of {micro}, compiled; "
          f"load average {os.getloadavg()[0]:.2f} at the start")
    print("| network | whole batches, images/s | micro-batches, images/s | micro x whole | auto chose |")
    print("|---|---:|---:|---:|---|")
    for name in args.models.split(","):
        model = convzoo.create_model(name).eval()
        channels, size, _ = convzoo.model_card(name).input_size
        images = torch.randn(args.batch, channels, size, size, generator=torch.Generator().manual_seed(0))
        runners = {"whole": convzoo.optimize_for_inference(model, compile=True, micro_batch=None),
                   "micro": convzoo.optimize_for_inference(model, compile=True, micro_batch=micro)}
        seconds: dict[str, list[float]] = {key: [] for key in runners}
        with torch.inference_mode():
            for runner in runners.values():
                runner(images)
                runner(images)
            for _ in range(args.rounds):
                for key, runner in runners.items():
                    start = time.perf_counter()
                    runner(images)
                    seconds[key].append(time.perf_counter() - start)
            auto = convzoo.optimize_for_inference(model, compile=True)
            auto(images)
        rate = {key: args.batch / statistics.median(times) for key, times in seconds.items()}
        choices = getattr(auto, "micro_batch_choices", None)
        if choices is None:  # compiled: the choices live on the wrapped module
            choices = getattr(getattr(auto, "_orig_mod", auto), "micro_batch_choices", {})
        chose = ("micro-batches" if next(iter(choices.values()))["micro_batching"] else "whole batches") \
            if choices else "whole batches (no stages)"
        print(f"| {name} | {rate['whole']:.2f} | {rate['micro']:.2f} | {rate['micro'] / rate['whole']:.2f} | "
              f"{chose} |", flush=True)
    print(f"load average {os.getloadavg()[0]:.2f} at the end")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
