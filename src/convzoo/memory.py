"""The memory guard: before a command allocates anything large, estimate its peak resident memory and compare it
with what the machine has available. A command that would not fit stops at once, with one message: the
estimate, the memory available, and the largest batch or input size that fits (`--force` runs it anyway).

    estimate = training_guard(TrainingPlan("unet_padded", {}, (1, 64, 64), batch_size=16)).check(force=False)
    estimate.total, estimate.to_dict(), estimate.text()   # over the limit: MemoryEstimateError (`fixes`: what fits)

The estimate, in bytes, is a baseline plus the largest of the command's phases:

- baseline: this process's resident set now (VmRSS: the interpreter, torch, convzoo and whatever is loaded;
  measured, not assumed) plus RUNTIME_BYTES, what torch's first operations add (oneDNN's primitive cache,
  OpenMP's thread pool, the allocator's arenas), measured on this machine kind (see RUNTIME_BYTES);
- the network: parameters and buffers; in training also the gradients and the optimizer's state (one tensor a
  parameter for SGD with momentum, two for AdamW and RMSProp with momentum), all the size of the parameters.
  The parameters come from the network built on the meta device, so an absurd network (a layer of 10,000,000
  filters) is refused before a single weight exists;
- the activations a batch keeps, from `convzoo.summary`'s trace on the meta device (analysis/trace.py): in
  training what autograd saves for the backward pass plus the forward's peak of live tensors (the backward's
  gradient buffers are of that order); in evaluation the forward's peak of live tensors. Both per image,
  times the batch;
- the data: the batch as loaded, collated and converted (three copies of its images and targets), the
  in-memory data set, and for ENAS the whole splits stacked as one tensor.

Phases whose peaks do not coincide are kept apart and the largest counts (training: the steps; the speed
trial, which trains a copy of the network; the checkpoint saves at the end of an epoch, which serialise the
resume state into memory). The estimate is compared with what this process could reach: its resident set now
plus the smaller of MemAvailable (/proc/meminfo) and the cgroup's headroom (v2 memory.max - memory.current, v1
memory.limit_in_bytes - memory.usage_in_bytes, at every level of the process's cgroup path).

How close it is: benchmarks/bench_memory.py runs real commands in fresh processes and compares the estimate
with their peak resident set (VmHWM); tests/test_memory.py asserts the same on three networks. The estimate is
meant to err high (it counts every phase's worst case at float32), within the factor ESTIMATE_FACTOR.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch

from .errors import MemoryEstimateError, ModelArgumentError

GIB = 2**30
MIB = 2**20
# What torch's operations add to a process beyond the tensors it holds (oneDNN's primitive caches, OpenMP's
# threads, the allocator's arenas, matplotlib for the run's charts): the growth of processes training LeNet-5,
# ResNet-18, a U-Net, MobileNet v2 and VGG-11 for two steps, less their parameters, gradients, momentum and
# activations as this module counts them, was 98-175 MiB (torch 2.13 CPU, 1 thread); a whole 6-epoch run of
# the U-Net in bf16 and channels_last (kernels cached for more shapes, the charts drawn) peaked exactly at the
# estimate made with 176 MiB, with no margin left. 256 MiB covers both.
RUNTIME_BYTES = 256 * MIB
# The end-of-run explain gallery's work at once: its images with backward passes, and its occlusion batches.
GALLERY_BATCH = 4
OCCLUSION_BATCH = 64  # explain/occlusion.py DEFAULT_BATCH
# Drawing the gallery's figures (matplotlib, a PNG per image, method and class): a segmentation run's gallery
# (unet_padded at 64x64, quarter widths, batch 8) peaked 871 MiB against 468 MiB with --no-explain, 400 MiB that
# the tensors above do not explain; measured once on this machine kind (benchmarks/bench_memory.py), kept whole.
GALLERY_DRAWING_BYTES = 400 * MIB
# The measured peak resident set of a command is within [estimate / ESTIMATE_FACTOR, estimate]: the estimate errs
# high, at most by this factor. benchmarks/bench_memory.py measured 0.67-0.92 of the estimate (ResNet-18 at 64,
# MobileNet v2 at 96, VGG-11 at 32, U-Nets at 64 at a quarter and at the paper's widths; one-epoch `convzoo train`
# runs in fresh processes, with the explain gallery) and LeNet-5 0.46 (its fixed parts, the runtime growth and
# the gallery's drawing, are most of its estimate: safe, and it fits in under 1 GiB), the whole no-flag
# `convzoo train unet_padded --data digits-seg` 0.90, the U-Net at 512x512 0.87; the same run varies by up to
# ~0.1 from one process to the next. It
# errs high because every phase counts its worst case (the resume state serialised twice over, each batch three
# times, the backward's buffers as large as the forward's peak): a refusal must never come from an optimistic
# estimate, and a factor of 2 at worst still lets every run through that needs less than half the memory left.
ESTIMATE_FACTOR = 2.0
# bf16 autocast keeps low-precision copies beside float32 tensors (a conv's input cast for it, the weights cast
# once a step) and channels_last converts: a U-Net at 512x512, batch 16, whose speed trial trained all four
# combinations peaked 1.07 times above its float32 activations' estimate. Activations count this much more
# whenever a run may train in bf16 (the speed trial tries it unless --no-amp).
AMP_ACTIVATION_FACTOR = 1.25
# A limit this large is no limit (cgroup v1 writes 2**63 rounded down to a page; v2 writes "max").
_NO_LIMIT = 2**60
_CGROUP_ROOT = Path("/sys/fs/cgroup")


# --------------------------------------------------------------------------------------------------------------
# What the machine has

def _status_bytes(key: str) -> int | None:
    """A VmRSS/VmHWM-style entry of /proc/self/status, in bytes (None off Linux)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def resident_bytes() -> int:
    """This process's resident set now (VmRSS); on systems without /proc, the peak so far (ru_maxrss)."""
    value = _status_bytes("VmRSS")
    return value if value is not None else peak_resident_bytes()


def peak_resident_bytes() -> int:
    """This process's peak resident set so far (VmHWM, or ru_maxrss)."""
    value = _status_bytes("VmHWM")
    if value is not None:
        return value
    import resource
    import sys

    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if text == "max":
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _cgroup_paths(cgroup_file: Path = Path("/proc/self/cgroup")) -> tuple[str | None, str | None]:
    """(v2 path, v1 memory path) of this process's cgroup, from /proc/self/cgroup."""
    v2 = v1 = None
    try:
        lines = cgroup_file.read_text().splitlines()
    except OSError:
        return None, None
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[0] == "0" and parts[1] == "":
            v2 = parts[2]
        elif "memory" in parts[1].split(","):
            v1 = parts[2]
    return v2, v1


def _levels(mount: Path, path: str) -> list[Path]:
    """The cgroup folders from the process's own up to the mount's root (a limit anywhere above applies)."""
    levels, current = [], Path(path or "/")
    while True:
        folder = mount / str(current).lstrip("/")
        if folder.is_dir():
            levels.append(folder)
        if current == current.parent:
            break
        current = current.parent
    return levels


def cgroup_headroom(root: Path = _CGROUP_ROOT, cgroup_file: Path = Path("/proc/self/cgroup")) -> tuple[int, str] | None:
    """The smallest (limit - usage) over the levels of this process's memory cgroup, v2 or v1, and which file
    said so; None when no level has a limit."""
    v2, v1 = _cgroup_paths(cgroup_file)
    found: list[tuple[int, str]] = []
    if v2 is not None:
        for folder in _levels(root, v2):
            limit, usage = _read_int(folder / "memory.max"), _read_int(folder / "memory.current")
            if limit is not None and limit < _NO_LIMIT and usage is not None:
                found.append((max(0, limit - usage), f"cgroup v2 {folder}/memory.max"))
    if v1 is not None:
        for folder in _levels(root / "memory", v1):
            limit, usage = (_read_int(folder / "memory.limit_in_bytes"), _read_int(folder / "memory.usage_in_bytes"))
            if limit is not None and limit < _NO_LIMIT and usage is not None:
                found.append((max(0, limit - usage), f"cgroup v1 {folder}/memory.limit_in_bytes"))
    return min(found) if found else None


def mem_available(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    try:
        with open(meminfo) as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


@dataclass(frozen=True)
class Available:
    """What this process could reach: what it holds now plus the free memory it may still take."""

    held: int         # this process's resident set now
    free: int         # the smaller of MemAvailable and the cgroup headroom
    source: str       # which of them

    @property
    def total(self) -> int:
        return self.held + self.free

    def to_dict(self) -> dict:
        return {"bytes": self.total, "held_by_this_process": self.held, "free": self.free, "source": self.source}


def available_memory() -> Available:
    """This process's resident set plus the smaller of MemAvailable (/proc/meminfo) and the cgroup headroom."""
    held = resident_bytes()
    candidates: list[tuple[int, str]] = []
    free = mem_available()
    if free is not None:
        candidates.append((free, "MemAvailable"))
    cgroup = cgroup_headroom()
    if cgroup is not None:
        candidates.append(cgroup)
    if not candidates:  # no /proc (macOS, Windows): the physical memory, as torch sees no better figure
        try:
            pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
            candidates.append((pages * size, "physical memory"))
        except (ValueError, OSError, AttributeError):
            candidates.append((_NO_LIMIT, "unknown"))
    free, source = min(candidates)
    return Available(held=held, free=free, source=source)


# --------------------------------------------------------------------------------------------------------------
# What a network needs

@dataclass(frozen=True)
class NetworkFootprint:
    """A network at one input size, from its meta-device trace: bytes of parameters and buffers, and bytes of
    activations per image (what a training step keeps; the forward's peak of live tensors)."""

    param_bytes: int
    buffer_bytes: int
    training_activation_bytes: int
    inference_activation_bytes: int
    largest_layer: tuple[str, int]  # (module path, parameters) of the row holding the most parameters
    # The compiled inference path's largest Winograd workspace per image (`winograd_workspace_bytes`), held
    # beside the activations while that convolution runs.
    winograd_bytes: int = 0

    @property
    def weight_bytes(self) -> int:
        return self.param_bytes + self.buffer_bytes


def network_footprint(model_name: str, input_size: Sequence[int], model_args: dict | None = None,
                      num_classes: int | None = None, build: Callable[[], torch.nn.Module] | None = None
                      ) -> NetworkFootprint:
    """Build the network on the meta device (no weight is allocated, whatever its size) and trace one image of
    `input_size` (C, H, W) through it with `convzoo.summary`. `build` replaces `create_model(model_name, ...)`
    for networks the registry does not build (ENAS's largest child)."""
    from .analysis.summary import summary

    if build is None:
        args = dict(model_args or {})
        network = build_on_meta(model_name, args, num_classes=num_classes,
                                in_chans=args.get("in_chans", int(input_size[0])))
    else:
        with torch.device("meta"):
            network = build()
    from .winograd import winograd_workspace_bytes

    report = summary(network, input_size=tuple(int(v) for v in input_size))
    largest = max(report.rows, key=lambda row: row.params)
    outputs = {row.name: row.output_shape for row in report.rows if row.call == 0}
    winograd = max((winograd_workspace_bytes(module, outputs[name]) for name, module in network.named_modules()
                    if name in outputs), default=0)
    return NetworkFootprint(param_bytes=report.param_bytes, buffer_bytes=report.buffer_bytes,
                            training_activation_bytes=report.training_activation_bytes,
                            inference_activation_bytes=report.inference_activation_bytes,
                            largest_layer=(largest.name or "(model)", largest.params), winograd_bytes=winograd)


def build_on_meta(model_name: str, model_args: dict, num_classes: int | None = None,
                  in_chans: int | None = None) -> torch.nn.Module:
    """`create_model(model_name, num_classes, in_chans, **model_args)` on the meta device: shapes without storage,
    at any size."""
    from .registry import create_model

    args = {key: value for key, value in model_args.items() if key not in ("num_classes", "in_chans")}
    num_classes = model_args.get("num_classes", num_classes)
    in_chans = model_args.get("in_chans", in_chans)
    try:
        with torch.device("meta"):
            return create_model(model_name, num_classes=num_classes, in_chans=in_chans, **args)
    except TypeError as err:  # a --model-arg the network does not take
        raise ModelArgumentError(f"{model_name} does not take the arguments {model_args}: {err}") from err


# --------------------------------------------------------------------------------------------------------------
# The estimate

@dataclass
class MemoryEstimate:
    """A command's estimated peak resident memory: `baseline` plus its largest phase. Each phase lists its parts
    (bytes). `available` is filled in by `check`."""

    what: str                                   # "training unet_padded at 64x64, batch 16"
    baseline: int
    phases: dict[str, dict[str, int]]
    batch_size: int
    input_size: tuple[int, ...]
    largest_layer: tuple[str, int] | None = None
    available: Available | None = None
    forced: bool = False

    @property
    def peak_phase(self) -> str:
        return max(self.phases, key=lambda name: sum(self.phases[name].values()))

    @property
    def total(self) -> int:
        return self.baseline + max(sum(parts.values()) for parts in self.phases.values())

    def fits(self, available: Available) -> bool:
        return self.total <= available.total

    def text(self) -> str:
        """One phrase for a run's first line: `memory ~1.23 GiB (peak: training steps; 18.2 GiB available)`."""
        where = f"; {_gib(self.available.total)} available" if self.available is not None else ""
        forced = ", over the limit: --force" if self.forced else ""
        return f"memory ~{_gib(self.total)} (peak: {self.peak_phase}{where}{forced})"

    def breakdown(self) -> str:
        parts = self.phases[self.peak_phase]
        listed = ", ".join(f"{name} {_gib(value)}" for name, value in parts.items() if value >= MIB)
        return f"{listed}, interpreter and torch {_gib(self.baseline)}"

    def to_dict(self) -> dict:
        return {"estimated_peak_bytes": self.total, "estimated_peak": _gib(self.total), "peak_phase": self.peak_phase,
                "baseline_bytes": self.baseline, "phases": {k: dict(v) for k, v in self.phases.items()},
                "batch_size": self.batch_size, "input_size": list(self.input_size),
                "available": None if self.available is None else self.available.to_dict(), "forced": self.forced,
                "method": "convzoo.memory (see its docstring): measured baseline + the largest phase"}


def _gib(value: int) -> str:
    return f"{value / GIB:.2f} GiB" if value >= GIB / 10 else f"{value / MIB:.0f} MiB"


def baseline_bytes() -> int:
    return resident_bytes() + RUNTIME_BYTES


@dataclass
class Fix:
    """A flag that changes the estimate: `name` as the user types it, `value` the formatted value, and the
    estimate with it."""

    flag: str
    value: str
    estimate: int

    def text(self) -> str:
        return f"{self.flag} {self.value}"


@dataclass
class Guard:
    """Estimates one command at any batch size and input size (H, W), and refuses it when over the limit,
    naming the largest batch (`batch_flag`) and the largest input size (`size_flag`) that fit. Either flag may be
    None: the command cannot change it (an evaluation's input size is its checkpoint's)."""

    estimate_at: Callable[[int, tuple[int, int]], MemoryEstimate]
    batch_size: int
    size: tuple[int, int]
    min_size: tuple[int, int] = (1, 1)
    batch_flag: str | None = "-b"
    size_flag: str | None = "--input-size"
    format_size: Callable[[tuple[int, int]], str] = field(default=lambda size: f"{size[0]} {size[1]}")
    smallest_batch: int = 1

    def check(self, force: bool = False, available: Available | None = None) -> MemoryEstimate:
        """The estimate at the given batch and size, with the memory available. Over the limit and not forced:
        MemoryEstimateError with the estimate, the memory available and the largest batch or size that fits."""
        estimate = self.estimate_at(self.batch_size, self.size)
        available = available or available_memory()
        estimate.available = available
        if estimate.fits(available):
            return estimate
        if force:
            estimate.forced = True
            return estimate
        fixes = self.fixes(available)
        raise MemoryEstimateError(_refusal(estimate, available, fixes), fixes=[(f.flag, f.value) for f in fixes])

    def fixes(self, available: Available) -> list[Fix]:
        found = []
        if self.batch_flag is not None and self.batch_size > self.smallest_batch:
            batch = _largest(lambda b: self.estimate_at(b, self.size).fits(available), self.smallest_batch,
                             self.batch_size - 1)
            if batch is not None:
                found.append(Fix(self.batch_flag, str(batch), self.estimate_at(batch, self.size).total))
        if self.size_flag is not None:
            height, width = self.size
            low = max(self.min_size[0], 1)
            if height > low:
                def size_at(h: int) -> tuple[int, int]:
                    return h, max(self.min_size[1], 1, round(width * h / height))

                # Activations grow about as the area: guess the side from that, then check it on the network.
                at_full = self.estimate_at(self.batch_size, self.size).total
                fixed = self.estimate_at(0, self.size).total
                share = (available.total - fixed) / max(at_full - fixed, 1)
                guess = int(height * math.sqrt(max(share, 0.0)))
                side = _largest_near(lambda h: self._fits_at(self.batch_size, size_at(h), available), low,
                                     height - 1, guess, step=8 if height >= 64 else 1)
                if side is not None:
                    found.append(Fix(self.size_flag, self.format_size(size_at(side)),
                                     self.estimate_at(self.batch_size, size_at(side)).total))
        return found

    def _fits_at(self, batch: int, size: tuple[int, int], available: Available) -> bool:
        from .errors import InputSizeError, ModelForwardError, SpecError

        try:
            return self.estimate_at(batch, size).fits(available)
        except (InputSizeError, ModelForwardError, SpecError):  # a size the network cannot take: does not fit
            return False


def _largest(fits: Callable[[int], bool], low: int, high: int) -> int | None:
    """The largest n in [low, high] with fits(n), assuming fits is monotone (true below some n); None if none."""
    if high < low or not fits(low):
        return None
    while low < high:
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    return low


def _largest_near(fits: Callable[[int], bool], low: int, high: int, guess: int, step: int) -> int | None:
    """The largest n in [low, high] with fits(n), walking from `guess` in steps of `step` (the answer is a
    multiple of `step` where it can be, a round size); bisection if the guess is far off."""
    n = min(high, max(low, guess // step * step))
    walks = 4
    if fits(n):
        for _ in range(walks):
            after = min(high, (n // step + 1) * step)
            if after == n or not fits(after):
                return n
            n = after
        return _largest(fits, n, high)
    for _ in range(walks):
        before = max(low, (n - 1) // step * step)
        if before == n:
            return None
        if fits(before):
            return before
        n = before
    return _largest(fits, low, n - 1)


def _refusal(estimate: MemoryEstimate, available: Available, fixes: list[Fix]) -> str:
    head = (f"{estimate.what} would need about {_gib(estimate.total)} at its peak ({estimate.peak_phase}: "
            f"{estimate.breakdown()}), but {_gib(available.total)} is available ({available.source} "
            f"{_gib(available.free)} + {_gib(available.held)} this process holds)")
    if fixes:
        options = " or ".join(f"{fix.text()} (about {_gib(fix.estimate)})" for fix in fixes)
        return f"{head}. It fits with {options}; --force runs it anyway"
    detail = ""
    if estimate.largest_layer is not None and estimate.largest_layer[1]:
        name, params = estimate.largest_layer
        detail = f" (its largest layer, {name}, has {params:,} parameters)"
    return (f"{head}. No smaller batch or input size fits: the network itself is too large{detail}; make it "
            f"smaller, or --force runs it anyway")


# --------------------------------------------------------------------------------------------------------------
# The commands

def _tensor_bytes(batch: int, *shape: int, itemsize: int = 4) -> int:
    return batch * math.prod(shape) * itemsize


@dataclass
class TrainingPlan:
    """What the memory of a training run depends on (plain values; the engine fills them in)."""

    model: str
    model_args: dict
    input_size: tuple[int, int, int]            # C, H, W
    batch_size: int
    num_classes: int | None = None              # None: the card's
    optimizer_states: int = 1                   # state tensors a parameter (SGD momentum 1, AdamW 2)
    segmentation: bool = False                  # targets are H x W masks (int64), not labels
    speed_trial: bool = True                    # the first batch trains a copy of the network (training/speed.py)
    resume: bool = False                        # the resume state (weights, optimizer) stays loaded
    data_bytes: int = 0                         # the data set held in memory (the raw images)
    processes: int = 1                          # runs at once, each in its own process (a search's workers)
    weight_copies: int = 0                      # more copies of the weights kept all along (an EMA of them)
    amp: bool = True                            # may train under bf16 autocast (AMP_ACTIVATION_FACTOR)
    explain: bool = True                        # draws the explain/ gallery at the end (--no-explain: not)


def batch_activation_bytes(net: "NetworkFootprint", batch: int) -> int:
    """What a forward and backward over `batch` images keep alive (float32)."""
    return batch * (net.training_activation_bytes + net.inference_activation_bytes)


def training_guard(plan: TrainingPlan, *, min_size: tuple[int, int] = (1, 1),
                   format_size: Callable[[tuple[int, int]], str] | None = None) -> Guard:
    """The guard of a training run (the engine's `train`, and every NAS child through it)."""
    channels = plan.input_size[0]
    cache: dict[tuple[int, int], NetworkFootprint] = {}

    def estimate_at(batch: int, size: tuple[int, int]) -> MemoryEstimate:
        if size not in cache:
            cache[size] = network_footprint(plan.model, (channels, *size), plan.model_args, plan.num_classes)
        net = cache[size]
        weights, params = net.weight_bytes, net.param_bytes
        states = plan.optimizer_states * params
        images = _tensor_bytes(batch, channels, *size)
        targets = _tensor_bytes(batch, *size, itemsize=8) if plan.segmentation else _tensor_bytes(batch, itemsize=8)
        batch_data = 3 * (images + targets)  # the items, the collated batch, the layout/device copy
        activations = batch * (net.training_activation_bytes + net.inference_activation_bytes)
        if plan.amp:
            activations = int(activations * AMP_ACTIVATION_FACTOR)
        eval_activations = batch * net.inference_activation_bytes
        trained = {"network weights": weights, "gradients": params, "optimizer state": states}
        if plan.weight_copies:
            trained["averaged weights (EMA)"] = plan.weight_copies * weights
        phases = {
            "training steps": {**trained, "activations": activations, "batch": batch_data,
                               "data set": plan.data_bytes},
            # the resume state serialised into memory (torch.save into a buffer, then its bytes): twice over
            "checkpoint saves": {**trained, "resume state being written":
                                 2 * ((1 + plan.weight_copies) * weights + states),
                                 "evaluation activations": eval_activations, "data set": plan.data_bytes},
        }
        # the explain/ gallery at the end of a run (explain/gallery.py): a copy of the network read from the best
        # checkpoint, with the gradients its backward passes leave (Grad-CAM, the effective receptive field), over
        # its few images, and batches of occluded images (64 at a time); the trained network, its last gradients
        # and the optimizer's state are still held (the full-width U-Net peaked 12% above an estimate without them)
        if plan.explain:
            phases["explain gallery"] = {**trained, "explained copy": weights, "explained copy's gradients": params,
                                         "activations": GALLERY_BATCH * batch_activation_bytes(net, 1)
                                         + OCCLUSION_BATCH * net.inference_activation_bytes,
                                         "figures being drawn": GALLERY_DRAWING_BYTES, "data set": plan.data_bytes}
        if plan.speed_trial:
            phases["speed trial"] = {"network weights": weights, "trial copy (weights, gradients, momentum)":
                                     weights + 2 * params, "activations": activations, "batch": batch_data,
                                     "data set": plan.data_bytes}
        if plan.resume:
            for parts in phases.values():
                parts["resume state loaded"] = weights + states
        if plan.processes > 1:  # each process holds all of it, and an interpreter with torch of its own
            n = plan.processes
            phases = {name: {f"{key} (x{n} processes)": n * value for key, value in parts.items()}
                      | {f"interpreters of {n - 1} more processes": (n - 1) * baseline_bytes()}
                      for name, parts in phases.items()}
        return MemoryEstimate(what=f"training {plan.model} at {size[0]}x{size[1]}, batch {batch}",
                              baseline=baseline_bytes(), phases=phases, batch_size=batch,
                              input_size=(channels, *size), largest_layer=net.largest_layer)

    guard = Guard(estimate_at, batch_size=plan.batch_size, size=tuple(plan.input_size[1:]), min_size=min_size)
    if format_size is not None:
        guard.format_size = format_size
    return guard


def inference_guard(networks: Sequence[tuple[str, dict]], input_size: Sequence[int], batch_size: int, *,
                    num_classes: int, segmentation: bool = False, data_bytes: int = 0, what: str = "evaluating",
                    batch_flag: str | None = "-b") -> Guard:
    """The guard of evaluation (several networks at once for an ensemble) and prediction (batch 1): every
    network's weights, the largest forward's peak of live tensors, the batch, and for segmentation each
    network's per-pixel probabilities (kept for the ensemble). `networks` are (name, arguments) pairs; the input
    size is the checkpoints', so only the batch may change."""
    channels = int(input_size[0])
    footprints = [network_footprint(name, input_size, args) for name, args in networks]
    names = sorted({name for name, _ in networks})
    largest = max(footprints, key=lambda f: f.largest_layer[1]).largest_layer
    outputs = len(networks) + (len(networks) > 1)  # each network's, and their mean

    def estimate_at(batch: int, size: tuple[int, int]) -> MemoryEstimate:
        images = _tensor_bytes(batch, channels, *size)
        targets = _tensor_bytes(batch, *size, itemsize=8) if segmentation else _tensor_bytes(batch, itemsize=8)
        parts = {"network weights": sum(f.weight_bytes for f in footprints),
                 "activations": batch * max(f.inference_activation_bytes for f in footprints),
                 "batch": 3 * (images + targets), "data set": data_bytes}
        if segmentation:
            parts["probabilities"] = outputs * _tensor_bytes(batch, num_classes, *size)
        return MemoryEstimate(what=f"{what} {', '.join(names)} at {size[0]}x{size[1]}, batch {batch}",
                              baseline=baseline_bytes(), phases={what: parts}, batch_size=batch,
                              input_size=tuple(input_size), largest_layer=largest)

    return Guard(estimate_at, batch_size=batch_size, size=(int(input_size[1]), int(input_size[2])),
                 batch_flag=batch_flag, size_flag=None)
