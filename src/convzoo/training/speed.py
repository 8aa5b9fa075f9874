"""Which memory layout and precision a run trains fastest with, on the machine it runs on: measured, not guessed.

channels_last lets oneDNN run convolutions without reordering, and bf16 autocast halves the bytes moved and
uses the CPU's bf16 instructions where it has them; which of them pays depends on the processor, the network,
the batch and the input size. So the engine times a few real training steps (forward, loss, backward, an
optimizer step) of a copy of the network on the run's first batch in each combination, round-robin, and keeps
the fastest; plain float32 NCHW stays unless another combination is at least `MARGIN` faster (a close call is
not worth the rounding bf16 adds). A setting the user gave is kept and only the others are measured. The copy
and a forked random state keep the run itself untouched; the choice is written to config.json and the resume
state, so a resumed run keeps it.

A measurement's outcome depends on the machine's load at that moment, and the layout and precision change the
rounding of every step; so that the same configuration trains to the same weights run after run, the choice
is cached per machine and configuration (processor, torch version, threads, network and its arguments,
batch shape, settings the user gave) in `$CONVZOO_CACHE/speed.json` (default `~/.cache/convzoo`): the first
run measures, later ones reuse it. Delete the file to measure again.
"""
from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import platform
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

MARGIN = 1.10  # another combination must be this much faster than float32 NCHW to replace it
TIMED_STEPS = 3     # at least, after one warm-up step
MAX_STEPS = 20
MIN_SECONDS = 0.25  # of timed steps a combination, where steps are short enough


@dataclass(frozen=True)
class SpeedChoice:
    channels_last: bool
    amp: bool
    how: str                                   # "measured", "cached", "set" (the user gave both), "resumed"
    step_ms: dict[str, float] = field(default_factory=dict)  # median step time of each measured combination

    def to_dict(self) -> dict:
        return {"channels_last": self.channels_last, "amp": self.amp, "how": self.how, "step_ms": self.step_ms}


def combination_name(channels_last: bool, amp: bool) -> str:
    return f"{'channels_last' if channels_last else 'nchw'} {'bf16' if amp else 'fp32'}"


def choose_speed_options(network: nn.Module, loss_fn: Callable, images: torch.Tensor, targets: torch.Tensor, *,
                         channels_last: bool | None, amp: bool | None, steps: int | None = None,
                         clock: Callable[[], float] = time.perf_counter) -> SpeedChoice:
    """Time `steps` training steps (None: TIMED_STEPS to MAX_STEPS, as many as fill MIN_SECONDS) of a copy of
    `network` on (images, targets) in every combination of the settings left as None, and choose as the module
    docstring says. `clock` gives seconds."""
    layouts = [channels_last] if channels_last is not None else [False, True]
    precisions = [amp] if amp is not None else [False, True]
    candidates = [(layout, precision) for layout in layouts for precision in precisions]
    if len(candidates) == 1:
        return SpeedChoice(channels_last=bool(channels_last), amp=bool(amp), how="set")
    device_type = images.device.type
    times: dict[tuple[bool, bool], list[float]] = {c: [] for c in candidates}
    with torch.random.fork_rng(devices=[images.device] if device_type == "cuda" else []):
        trial = copy.deepcopy(network).train()
        optimizer = torch.optim.SGD(trial.parameters(), lr=0.0, momentum=0.9)  # an update's cost, no change

        def step(layout: bool, precision: bool) -> float:
            memory_format = torch.channels_last if layout else torch.contiguous_format
            trial.to(memory_format=memory_format)
            x = images.to(memory_format=memory_format)
            if device_type == "cuda":
                torch.cuda.synchronize()
            start = clock()
            with torch.autocast(device_type, dtype=torch.bfloat16, enabled=precision):
                outputs = trial(x)
            loss = loss_fn(outputs, targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if device_type == "cuda":
                torch.cuda.synchronize()
            return clock() - start

        warmup = [step(*candidate) for candidate in candidates]  # first-call allocations, oneDNN's kernel choice
        if steps is None:  # short steps are noisy: time enough of them to fill about MIN_SECONDS a candidate
            steps = min(MAX_STEPS, max(TIMED_STEPS, math.ceil(MIN_SECONDS / max(min(warmup), 1e-6))))
        for _ in range(steps):  # round-robin, so a change in the machine's load touches every candidate alike
            for candidate in candidates:
                times[candidate].append(step(*candidate))
    medians = {c: statistics.median(t) for c, t in times.items()}
    fastest = min(medians, key=medians.get)
    baseline = (bool(channels_last), bool(amp))  # float32 NCHW, or the setting the user gave and float32/NCHW
    if fastest != baseline and fastest != baseline and medians[baseline] < MARGIN * medians[fastest]:
        fastest = baseline
    return SpeedChoice(channels_last=fastest[0], amp=fastest[1], how="measured",
                       step_ms={combination_name(*c): round(1000 * m, 3) for c, m in medians.items()})


def cache_path() -> Path:
    return Path(os.environ.get("CONVZOO_CACHE") or Path.home() / ".cache" / "convzoo") / "speed.json"


def processor_name() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cache_key(model_args: dict[str, Any], images: torch.Tensor, task: str, channels_last: bool | None,
              amp: bool | None) -> str:
    """What the measurement's answer depends on: the machine, the network, the batch and the fixed settings."""
    what = {"processor": processor_name(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "device": str(images.device), "model": model_args, "batch": list(images.shape), "task": task,
            "channels_last": channels_last, "amp": amp}
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:20]


def cached_choice(key: str) -> SpeedChoice | None:
    try:
        entry = json.loads(cache_path().read_text()).get(key)
    except (OSError, ValueError):
        return None
    if not isinstance(entry, dict) or not {"channels_last", "amp"} <= set(entry):
        return None
    return SpeedChoice(channels_last=bool(entry["channels_last"]), amp=bool(entry["amp"]), how="cached",
                       step_ms=dict(entry.get("step_ms", {})))


def remember_choice(key: str, choice: SpeedChoice) -> None:
    """Add `choice` to the cache; a cache that cannot be written only costs the next run a measurement."""
    from ..io import atomic_write_text

    path = cache_path()
    try:
        entries = json.loads(path.read_text()) if path.exists() else {}
        if not isinstance(entries, dict):
            entries = {}
        entries[key] = {"channels_last": choice.channels_last, "amp": choice.amp, "step_ms": choice.step_ms}
        atomic_write_text(path, json.dumps(entries, indent=1, sort_keys=True))
    except (OSError, ValueError):
        pass
