"""How convzoo runs on this machine: the CPU threads of every command that computes, by one policy.

What the engine learned: PyTorch's OpenMP threads meet at a barrier after every operation, so a thread whose
core another program takes stalls all the others until the scheduler gives it its core back. On 2 shared cores
ENAS ran 3.5 s an epoch with one thread and 150 s with two while another process held one core (a 40x
collapse: its operations are small, so every one of them waits a scheduler slice). The policy therefore uses
half the cores this process may run on (its CPU affinity and cgroup quota), at least one: as many cores stay
free for other programs as the run uses, so one or two busy programs beside it cost it at most its share, never
a stall. On 2 cores that is one thread, the quick recipe's long-standing choice. It does not look at the load
average, so the same command on the same machine always uses the same threads (and rounds the same way).
`--threads N` (or `threads=N`) overrides it.

And the memory the inference path allocates (`reuse_freed_memory`): glibc's malloc serves every block over
32 MiB with a fresh mmap and unmaps it on free, so a network whose feature maps exceed that (MobileNet v2's
first stage at batch 8: 38.5 MB) page-faults and zero-fills every one of them on every call: 16,000 page faults
and a third of its time. The inference engines keep their own arenas; `reuse_freed_memory` has malloc keep
freed memory for the next allocation instead.
"""
from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass(frozen=True)
class ThreadChoice:
    threads: int
    cores: int
    chosen_by: str   # "policy" or "--threads"

    def __str__(self) -> str:
        plural = "s" if self.threads != 1 else ""
        if self.chosen_by == "policy":
            return (f"{self.threads} CPU thread{plural} (half of the {self.cores} usable cores, so another busy "
                    f"program does not stall it; --threads N overrides)")
        return f"{self.threads} CPU thread{plural} (--threads; {self.cores} usable cores)"


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity, capped by a cgroup v2 CPU quota (a container)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cores = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, int(int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def choose_threads(requested: int | None = None) -> ThreadChoice:
    """The CPU threads a command computes with: `requested` if given, else half the usable cores (at least 1)."""
    cores = usable_cores()
    if requested is not None:
        if isinstance(requested, bool) or not isinstance(requested, int) or requested < 1:
            raise ValueError(f"threads must be a whole number of at least 1, got {requested!r}")
        return ThreadChoice(requested, cores, "--threads")
    return ThreadChoice(max(1, cores // 2), cores, "policy")


def use_threads(requested: int | None = None) -> ThreadChoice:
    """Choose the threads (`choose_threads`) and set them for this process's PyTorch; returns the choice, to show."""
    choice = choose_threads(requested)
    if torch.get_num_threads() != choice.threads:
        torch.set_num_threads(choice.threads)
    return choice


DEVICE_NAMES = "auto, cpu, cuda, cuda:N (e.g. cuda:1) or mps"


def check_device(name: str) -> str:
    """`name` if PyTorch knows the device ('auto' picks the GPU when there is one); else DeviceError naming the
    names it takes. Whether this machine has the device is checked when it is used (`resolve_device`)."""
    from .errors import DeviceError

    if name == "auto":
        return name
    try:
        torch.device(name)
    except (RuntimeError, TypeError) as err:
        raise DeviceError(f"unknown device {name!r}: use {DEVICE_NAMES}") from err
    return name


# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_reusing_freed_memory = False


def reuse_freed_memory() -> bool:
    """Have this process's malloc (glibc's) keep the memory it frees for its next allocations, as the inference
    engines' arenas do, instead of returning it to the kernel: blocks of any size come from the heap (never a
    fresh mmap, which page-faults and zero-fills every page on first touch) and the heap is not trimmed. The
    peak memory is the same; what is freed stays with the process, ready, until it exits. A forward pass that
    allocates the same feature maps call after call then makes no page faults: MobileNet v2 at batch 8 went from
    about 16,000 page faults and 128 ms a call to none and 89 ms (`docs/performance.md`).

    Process-wide and for the rest of the process (malloc cannot hand the memory back selectively). True where
    it is in effect (glibc, e.g. Linux); False elsewhere (another C library: nothing changes)."""
    global _reusing_freed_memory
    if _reusing_freed_memory:
        return True
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # only glibc has it; mallopt's parameters are glibc's
    except (OSError, AttributeError):
        return False
    # No block from a fresh mmap; -1: never trim the heap.
    _reusing_freed_memory = bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, -1))
    return _reusing_freed_memory
