"""Inductor's C++ wrapper measured: the compiled fast path with its kernels called from Python against the
same path with them called from C++ (`cpp_wrapper`, in `convzoo.deploy.INDUCTOR_SETTINGS`), A/B in one
process.

    python benchmarks/bench_cpp_wrapper.py [--models mobilenet_v2,resnet50,shufflenet_v2_x1_0,googlenet_bn,densenet121]
                                           [--batch 1] [--threads 1] [--rounds 12]

For each network: two fast copies (whole batches, micro_batch=None), one compiled with cpp_wrapper off and one
with it on (each first call compiles, timed), a second call each untimed, then `--rounds` rounds alternating
between them, each round timing 10 calls at batch 1 and 2 at larger batches; the medians count. Prints
images/s each way, the ratio, the compile times and the largest difference between the two outputs.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="mobilenet_v2,resnet50,shufflenet_v2_x1_0,googlenet_bn,densenet121")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=12)
    args = parser.parse_args()

    import torch
    torch.set_num_threads(args.threads)
    import torch._inductor.config as inductor_config

    import convzoo
    from convzoo.deploy import INDUCTOR_SETTINGS

    calls = 10 if args.batch == 1 else 2
    print(f"batch {args.batch}, {args.threads} thread(s), {args.rounds} rounds of {calls} calls each way; "
          f"load average {os.getloadavg()[0]:.2f} at the start")
    print("| network | Python wrapper, images/s | C++ wrapper | C++ x Python | compile s (Python, C++) | "
          "largest difference |")
    print("|---|---:|---:|---:|---|---:|")
    for name in args.models.split(","):
        model = convzoo.create_model(name).eval()
        channels, size, _ = convzoo.model_card(name).input_size
        images = torch.randn(args.batch, channels, size, size, generator=torch.Generator().manual_seed(0))
        runners, compile_s, outputs = {}, {}, {}
        with torch.inference_mode():
            for cpp in (False, True):
                fast = convzoo.optimize_for_inference(model, compile=True, micro_batch=None)
                # The path patches INDUCTOR_SETTINGS around each call; this patch inside it decides cpp_wrapper.
                # Inside the batch buckets (fast.forward) and the settings' patch (its __wrapped__).
                forward = fast.forward.__wrapped__.__wrapped__
                with inductor_config.patch({**INDUCTOR_SETTINGS, "cpp_wrapper": cpp}):
                    start = time.perf_counter()
                    outputs[cpp] = forward(images)
                    compile_s[cpp] = time.perf_counter() - start
                    forward(images)
                runners[cpp] = forward
            seconds: dict[bool, list[float]] = {False: [], True: []}
            for _ in range(args.rounds):
                for cpp, forward in runners.items():
                    start = time.perf_counter()
                    for _ in range(calls):
                        forward(images)
                    seconds[cpp].append((time.perf_counter() - start) / calls)
        rate = {cpp: args.batch / statistics.median(times) for cpp, times in seconds.items()}
        difference = (outputs[True] - outputs[False]).abs().max().item()
        print(f"| {name} | {rate[False]:.1f} | {rate[True]:.1f} | {rate[True] / rate[False]:.3f} | "
              f"{compile_s[False]:.0f}, {compile_s[True]:.0f} | {difference:.1e} |", flush=True)
    print(f"load average {os.getloadavg()[0]:.2f} at the end")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
