"""How long the explorer of the whole zoo takes to build, and how large it is.

    PYTHONPATH=src python benchmarks/bench_explore.py [--workers N] [--out DIR]

Prints the wall time, the CPU seconds of this process and its workers, the site's size and file count, and the
load average before and after (the machine is shared: state it with every figure). The goal: under 60 s."""
from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    from convzoo.explore import build_site

    out = args.out or os.path.join(tempfile.mkdtemp(prefix="bench-explore-"), "site")
    load_before = os.getloadavg()
    start = time.perf_counter()
    site = build_site([], out=out, workers=args.workers, progress=True)
    wall = time.perf_counter() - start
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
    size = sum(f.stat().st_size for f in site.out.rglob("*") if f.is_file())
    print(f"{len(site.networks)} networks in {wall:.1f} s wall, {cpu:.1f} CPU-s (this process and its workers, "
          f"imports included); {site.files} files, {size / 2**20:.1f} MiB; load average "
          f"{'/'.join(f'{v:.1f}' for v in load_before)} before, {'/'.join(f'{v:.1f}' for v in os.getloadavg())} after; "
          f"{out}")


if __name__ == "__main__":
    main()
