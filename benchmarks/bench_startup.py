"""Startup of an image folder: how long `load_data` takes before the first batch, at 1k, 10k and 100k files.

    python benchmarks/bench_startup.py [--sizes 1000,10000,100000] [--baseline /work/main/src --baseline-max 1000]

Each folder holds N small JPEGs (64x48, ~2 kB; 64 distinct images written round-robin) in 10 class folders
under /tmp, written once, measured, and deleted. Each measurement is a new process (PYTHONPATH = the source
tree) timing `load_data(folder, (3, 32, 32))` alone, in wall time and in CPU time (this process and the
header readers it forks; on a shared machine the CPU time is the steadier figure): listing the files, reading
each header, the stratified split and the statistics from an evenly spread sample. The files were just
written, so they are in the page cache (as on a second run over a data set); a cold disk adds its own read
time. --baseline times another tree
(e.g. main before this change, which decoded every file) on the folders of at most --baseline-max files.
Target: 100k files ready in under 30 s. The load average is printed with every figure.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

MEASURE = """
import json, resource, sys, time
def cpu():
    return sum(getattr(resource.getrusage(who), field) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
               for field in ("ru_utime", "ru_stime"))
start = time.perf_counter()
from convzoo.data import load_data
imported, cpu_before = time.perf_counter(), cpu()
bundle = load_data(sys.argv[1], (3, 32, 32))
ready = time.perf_counter()
print(json.dumps({"import_s": imported - start, "load_s": ready - imported, "cpu_s": cpu() - cpu_before,
                  "train": len(bundle.train), "statistics": bundle.describe().get("statistics")}))
"""


def small_jpegs(count: int = 64, size: tuple[int, int] = (64, 48), seed: int = 0) -> list[bytes]:
    rng = np.random.default_rng(seed)
    encoded = []
    for _ in range(count):
        base = rng.integers(0, 256, (1, 1, 3))
        image = (base + rng.normal(0, 30, (size[1], size[0], 3))).clip(0, 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=85)
        encoded.append(buffer.getvalue())
    return encoded


def write_folder(root: Path, files: int, jpegs: list[bytes], classes: int = 10) -> float:
    start = time.perf_counter()
    for k in range(classes):
        (root / f"class_{k}").mkdir(parents=True)
    for i in range(files):
        (root / f"class_{i % classes}" / f"img_{i:07d}.jpg").write_bytes(jpegs[i % len(jpegs)])
    return time.perf_counter() - start


def measure(src: str, folder: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(Path(src).resolve())}
    out = subprocess.run([sys.executable, "-c", MEASURE, str(folder)], check=True, capture_output=True, text=True,
                         env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--src", default=str(Path(__file__).resolve().parents[1] / "src"))
    parser.add_argument("--baseline", default=None, help="another source tree to time the same way")
    parser.add_argument("--baseline-max", type=int, default=10_000)
    args = parser.parse_args()
    jpegs = small_jpegs()
    rows = []
    for files in (int(n) for n in args.sizes.split(",")):
        root = Path(tempfile.mkdtemp(prefix=f"convzoo-startup-{files}-"))
        try:
            written = write_folder(root, files, jpegs)
            trees = [("this tree", args.src)]
            if args.baseline and files <= args.baseline_max:
                trees.append(("baseline", args.baseline))
            for label, src in trees:
                load = os.getloadavg()[0]
                result = measure(src, root / "")
                rows.append((files, label, result["load_s"], result["cpu_s"], load))
                print(f"{files:>7} files ({label}): ready in {result['load_s']:.2f} s = "
                      f"{result['load_s'] / files * 1e6:.0f} us a file, {result['cpu_s']:.2f} CPU s "
                      f"(import {result['import_s']:.1f} s; "
                      f"written in {written:.1f} s; load average {load:.2f}); statistics {result.get('statistics')}",
                      flush=True)
        finally:
            shutil.rmtree(root, ignore_errors=True)
    print(f"\n{'files':>8} {'tree':10} {'ready s':>8} {'us/file':>8} {'CPU s':>7} {'CPU us/file':>12} {'load avg':>9}")
    for files, label, seconds, cpu_seconds, load in rows:
        print(f"{files:>8} {label:10} {seconds:8.2f} {seconds / files * 1e6:8.0f} {cpu_seconds:7.2f} "
              f"{cpu_seconds / files * 1e6:12.0f} {load:9.2f}")


if __name__ == "__main__":
    main()
