"""The training targets of issue 4, measured.

    python benchmarks/bench_training.py [--only lenet5,resnet20,throughput] [--threads N]

1. `convzoo train lenet5 --data digits` as the README runs it (a new process; wall time from launch to exit,
   so Python start-up, imports, data loading, the epochs, the test and the plots all count).
   Target: >= 98% test accuracy in under 30 s.
2. `convzoo train resnet20 --data digits --epochs 10` (digits upsampled to the network's 32x32): test accuracy and
   wall time. Target: >= 98%.
3. Training throughput of resnet18 at 64x64, batch 32 (forward, backward and an SGD step on random images,
   after warm-up steps), in images per second, with and without channels_last, with 1 and 2 CPU threads.
4. `engine`: issue 7's target, resnet50 at 224x224, batch 8: the engine's default layout and precision
   (training/speed.py, the measurement every run makes, here with 10 timed steps a combination) against plain
   float32 NCHW. Target: >= 1.15x.

The training runs use the default recipe (quick: one thread a process); `--threads N` overrides it there and
fixes the thread count of the throughput measurement. On a machine whose cores other processes also use,
1 thread is often faster than 2: an OpenMP thread that loses its core stalls the other at every parallel
region. The load average printed first says how busy the machine was.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def train_command(model: str, extra: list[str], threads: int | None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        command = [sys.executable, "-m", "convzoo", "train", model, "--data", "digits", "--out", str(out), *extra]
        if threads is not None:
            command += ["--threads", str(threads)]
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, text=True)
        wall = time.perf_counter() - start
        results = json.loads((out / "results.json").read_text())
    return {"wall_seconds": round(wall, 1), "train_seconds": results["train_seconds"],
            "top1_accuracy": round(results["top1_accuracy"], 2), "best_epoch": results["epoch"]}


def throughput(channels_last: bool, steps: int = 10, warmup: int = 3, batch: int = 32, size: int = 64) -> float:
    import torch

    from convzoo import create_model

    torch.manual_seed(0)
    model = create_model("resnet18", num_classes=10)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    images = torch.randn(batch, 3, size, size).to(memory_format=memory_format)
    labels = torch.randint(0, 10, (batch,))
    for step in range(warmup + steps):
        if step == warmup:
            start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(images), labels).backward()
        optimizer.step()
    return batch * steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="lenet5,resnet20,throughput,engine")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--resnet20-epochs", type=int, default=10)
    args = parser.parse_args()
    chosen = set(args.only.split(","))
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at the start")

    if "lenet5" in chosen:
        run = train_command("lenet5", [], args.threads)
        verdict = "PASS" if run["top1_accuracy"] >= 98 and run["wall_seconds"] < 30 else "MISS"
        print(f"lenet5 on digits: {run['top1_accuracy']:.2f}% test top-1 in {run['wall_seconds']} s wall "
              f"({run['train_seconds']} s in the epochs, best epoch {run['best_epoch']}) "
              f"[target >= 98% in < 30 s: {verdict}]")
    if "resnet20" in chosen:
        run = train_command("resnet20", ["--epochs", str(args.resnet20_epochs)], args.threads)
        verdict = "PASS" if run["top1_accuracy"] >= 98 else "MISS"
        print(f"resnet20 on digits at 32x32, {args.resnet20_epochs} epochs: {run['top1_accuracy']:.2f}% test top-1 "
              f"in {run['wall_seconds']} s wall ({run['train_seconds']} s in the epochs, best epoch "
              f"{run['best_epoch']}) [target >= 98%: {verdict}]")
    if "throughput" in chosen:
        import torch

        for threads in [args.threads] if args.threads else [1, 2]:
            torch.set_num_threads(threads)
            for channels_last in (False, True):
                rate = throughput(channels_last)
                layout = "channels_last" if channels_last else "contiguous NCHW"
                print(f"resnet18 training at 64x64, batch 32, {layout}, {threads} thread(s): {rate:.1f} images/s")
    if "engine" in chosen:
        engine_defaults(args.threads)


def engine_defaults(threads: int | None, batch: int = 8, size: int = 224, steps: int = 10) -> None:
    import torch

    from convzoo import create_model
    from convzoo.training.speed import choose_speed_options, combination_name

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = create_model("resnet50", num_classes=1000).train()
    images, labels = torch.randn(batch, 3, size, size), torch.randint(0, 1000, (batch,))
    choice = choose_speed_options(model, torch.nn.functional.cross_entropy, images, labels, channels_last=None,
                                  amp=None, steps=steps)
    chosen = combination_name(choice.channels_last, choice.amp)
    speedup = choice.step_ms["nchw fp32"] / choice.step_ms[chosen]
    rows = ", ".join(f"{name} {ms:.0f} ms ({batch * 1000 / ms:.1f} img/s)" for name, ms in choice.step_ms.items())
    verdict = "PASS" if speedup >= 1.15 else "MISS"
    print(f"resnet50 training at {size}x{size}, batch {batch}, {torch.get_num_threads()} threads, median step of {steps}: "
          f"{rows}; the engine chooses {chosen}: {speedup:.2f}x float32 NCHW [target >= 1.15x: {verdict}]; load "
          f"average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
