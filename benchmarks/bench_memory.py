"""The memory guard's estimates beside the measured peaks: each command runs in a fresh process, whose peak
resident set (ru_maxrss of that child, from os.wait4) is compared with the estimate it recorded in config.json.

    python benchmarks/bench_memory.py [--only resnet18,unet] [--markdown FILE]

The commands train for one epoch on a tiny generated data set (two steps: the memory of a step does not depend
on how many there are), so the whole benchmark takes a few minutes. The ratio measured/estimate is what
convzoo.memory.ESTIMATE_FACTOR bounds: the estimate errs high, by at most that factor.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

# (name, network, extra flags, data kind)
CASES = [
    ("lenet5", "lenet5", ["-b", "16"], "classes"),
    ("resnet18-64", "resnet18", ["--input-size", "64", "-b", "16"], "classes"),
    ("mobilenet_v2-96", "mobilenet_v2", ["--input-size", "96", "-b", "16"], "classes"),
    ("vgg11-32", "vgg11", ["--input-size", "32", "-b", "8"], "classes"),
    ("unet-64", "unet_padded", ["--input-size", "64", "-b", "8", "--model-arg", "widths=[16,32,64,128,256]"],
     "masks"),
    ("unet-full-64", "unet_padded", ["--input-size", "64", "-b", "4", "--model-arg", "widths=[64,128,256,512,1024]",
                                     "--no-amp", "--no-channels-last"], "masks"),
]


def write_tiny_data(root: Path, kind: str, images: int = 40, size: int = 48, seed: int = 0) -> Path:
    """`classes`: an ImageFolder of two classes; `masks`: images/ + masks/ of three classes. 40 images: with 20%
    held out, two full batches of 16 (a smaller training split would train at a smaller batch than estimated)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder = root / kind
    if kind == "classes":
        for label in ("a", "b"):
            (folder / label).mkdir(parents=True, exist_ok=True)
            for i in range(images // 2):
                pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / label / f"{i}.png")
    else:
        (folder / "images").mkdir(parents=True, exist_ok=True)
        (folder / "masks").mkdir(parents=True, exist_ok=True)
        for i in range(images):
            pixels = rng.integers(0, 256, (size, size), dtype=np.uint8)
            mask = (pixels // 86).astype(np.uint8)
            Image.fromarray(pixels).save(folder / "images" / f"{i}.png")
            Image.fromarray(mask).save(folder / "masks" / f"{i}.png")
    return folder


# A child's ru_maxrss starts at its parent's resident set (fork copies the parent's mappings, and exec keeps the
# larger high-water mark): a command started straight from a 3 GB test worker would be "measured" at 3 GB. So a
# small launcher process (a fresh interpreter, ~10 MB) starts the command and reports the command's own peak.
_LAUNCHER = """
import os, subprocess, sys
child = subprocess.Popen(sys.argv[2:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
_, status, usage = os.wait4(child.pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(f"{os.waitstatus_to_exitcode(status)} {usage.ru_maxrss}")
"""


def run_and_measure(command: list[str], env: dict | None = None) -> tuple[int, int]:
    """(exit status, peak resident bytes) of `command`, run by a small launcher process (see _LAUNCHER)."""
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "peak"
        subprocess.run([sys.executable, "-c", _LAUNCHER, str(report), *command], env=env, check=True)
        status, peak_kib = report.read_text().split()
    return int(status), int(peak_kib) * 1024  # ru_maxrss is in KiB on Linux


def measure_training(network: str, flags: list[str], data: Path, out: Path) -> dict:
    command = [sys.executable, "-m", "convzoo", "train", network, "--data", str(data), "--epochs", "1",
               "--val-split", "0.2", "--out", str(out), *flags]
    status, peak = run_and_measure(command)
    if status != 0:
        raise RuntimeError(f"{' '.join(command)} failed with status {status}")
    memory = json.loads((out / "config.json").read_text())["resolved"]["memory"]
    estimate = memory["estimated_peak_bytes"]
    return {"network": network, "flags": " ".join(flags), "estimate_mib": round(estimate / 2**20),
            "measured_mib": round(peak / 2**20), "ratio": round(peak / estimate, 3), "peak_phase": memory["peak_phase"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=None, help="comma-separated case names")
    parser.add_argument("--markdown", default=None)
    args = parser.parse_args(argv)
    wanted = set(args.only.split(",")) if args.only else None
    load = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = {kind: write_tiny_data(root, kind) for kind in ("classes", "masks")}
        for name, network, flags, kind in CASES:
            if wanted and name not in wanted:
                continue
            row = {"case": name, **measure_training(network, flags, data[kind], root / f"run-{name}")}
            print(row, file=sys.stderr)
            rows.append(row)
    lines = [f"load average at the start: {', '.join(f'{v:.2f}' for v in load)}; at the end: "
             f"{', '.join(f'{v:.2f}' for v in os.getloadavg())}", "",
             "| case | flags | estimate MiB | measured peak MiB | measured / estimate | peak phase |",
             "|---|---|---:|---:|---:|---|"]
    lines += [f"| {r['case']} | {r['flags']} | {r['estimate_mib']} | {r['measured_mib']} | {r['ratio']:.2f} | "
              f"{r['peak_phase']} |" for r in rows]
    print("\n".join(lines))
    if args.markdown:
        Path(args.markdown).write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
