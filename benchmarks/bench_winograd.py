"""Winograd F(2x2, 3x3) against oneDNN's direct convolution, both compiled as the fast path compiles
(inductor's freezing and C++ wrapper, freed memory reused): per 3x3 convolution shape, and on whole networks.

    python benchmarks/bench_winograd.py [--threads 1] [--batch 8] [--rounds 5]
                                        [--models resnet50] [--shapes 256x14,128x28,...]

Shapes are channels x map side (channels in = out, stride 1, padding 1, then ReLU); networks run through
`optimize_for_inference(compile=True, micro_batch=None)` with winograd=False and True. Each round times
both ways (median of 9 calls each, after 3 untimed), alternating, so a change in the machine's load touches
both; prints the medians over rounds and direct / Winograd (above 1: Winograd faster), and the largest
relative difference of the outputs.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

DEFAULT_SHAPES = "64x56,128x56,128x28,256x28,256x14,512x14,512x8"


def median_call(function, x, calls: int = 9) -> float:
    for _ in range(3):
        function(x)
    seconds = []
    for _ in range(calls):
        start = time.perf_counter()
        function(x)
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def compare(ways: dict, x, rounds: int) -> tuple[float, float, float]:
    """(direct s, Winograd s, relative difference) of the two compiled callables on x."""
    import torch
    with torch.inference_mode():
        outputs = {name: way(x) for name, way in ways.items()}
        seconds = {name: [] for name in ways}
        for _ in range(rounds):
            for name, way in ways.items():
                seconds[name].append(median_call(way, x))
    direct, winograd = outputs["direct"], outputs["winograd"]
    difference = ((direct - winograd).abs().max() / direct.abs().max()).item()
    return statistics.median(seconds["direct"]), statistics.median(seconds["winograd"]), difference


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--models", default="resnet50", help="networks, comma-separated ('' for none)")
    parser.add_argument("--shapes", default=DEFAULT_SHAPES, help="channels x map side, comma-separated")
    args = parser.parse_args()

    import torch
    from torch import nn
    torch.set_num_threads(args.threads)
    import convzoo
    from convzoo.deploy import optimize_for_inference

    print(f"batch {args.batch}, {args.threads} thread(s), {args.rounds} rounds; load average "
          f"{os.getloadavg()[0]:.2f} at the start")
    print("| convolution | direct ms | Winograd ms | direct / Winograd | output difference |")
    print("|---|--:|--:|--:|--:|")
    import convzoo.winograd as rule
    # Every shape takes Winograd here (the shape, not the rule, is under test): the rule's bounds lifted while
    # the shapes build, compile and run, and put back for the networks.
    bounds = rule.WINOGRAD_MIN_CHANNELS, rule.WINOGRAD_MAX_MAP
    rule.WINOGRAD_MIN_CHANNELS, rule.WINOGRAD_MAX_MAP = 1, 10**9
    try:
        for shape in filter(None, args.shapes.split(",")):
            channels, side = (int(part) for part in shape.split("x"))
            # Each shape's graphs afresh: every layer here shares nn.Sequential.forward's code, and dynamo runs a
            # code object eagerly after 8 graphs (its recompile limit).
            torch._dynamo.reset()
            torch.manual_seed(0)
            layer = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU()).eval()
            ways = {name: optimize_for_inference(layer, compile=True, micro_batch=None, winograd=winograd)
                    for name, winograd in (("direct", False), ("winograd", True))}
            # channels_last, as a convolution inside a network of the fast path receives its input
            x = torch.randn(args.batch, channels, side, side).contiguous(memory_format=torch.channels_last)
            direct, winograd, difference = compare(ways, x, args.rounds)
            print(f"| {channels}->{channels} on {side}x{side} | {direct * 1e3:.2f} | {winograd * 1e3:.2f} | "
                  f"{direct / winograd:.2f} | {difference:.0e} |", flush=True)
    finally:
        rule.WINOGRAD_MIN_CHANNELS, rule.WINOGRAD_MAX_MAP = bounds
    for model_name in filter(None, args.models.split(",")):
        torch._dynamo.reset()
        model = convzoo.create_model(model_name).eval()
        ways = {name: optimize_for_inference(model, compile=True, micro_batch=None, winograd=winograd)
                for name, winograd in (("direct", False), ("winograd", True))}
        size = convzoo.model_card(model_name).input_size
        x = torch.randn(args.batch, *size, generator=torch.Generator().manual_seed(0))
        direct, winograd, difference = compare(ways, x, args.rounds)
        print(f"| {model_name} ({len(ways['winograd'].winograd_convolutions)} convolutions Winograd can take) | "
              f"{direct * 1e3:.1f} | {winograd * 1e3:.1f} | {direct / winograd:.3f} | {difference:.0e} |",
              flush=True)
    print(f"load average {os.getloadavg()[0]:.2f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
