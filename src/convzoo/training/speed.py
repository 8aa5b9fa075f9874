"""Which memory layout and precision a run trains fastest with, on the machine it runs on: measured, not guessed.

channels_last lets oneDNN run convolutions without reordering, and bf16 autocast halves the bytes moved and
uses the CPU's bf16 instructions where it has them; which of them pays depends on the processor, the network,
the batch and the input size. So the engine times a few real training steps (forward, loss, backward, an
optimizer step) of a copy of the network on the run's first batch in each combination, round-robin, and keeps
the fastest; plain float32 NCHW stays unless another combination is at least `MARGIN` faster (a close call is
not worth the rounding bf16 adds). A setting the user gave is kept and only the others are measured. The copy
and a forked random state keep the run itself untouched; the choice is written to config.json and the resume
state, so a resumed run keeps it.
"""
from __future__ import annotations

import copy
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

MARGIN = 1.10  # another combination must be this much faster than float32 NCHW to replace it
TIMED_STEPS = 3


@dataclass(frozen=True)
class SpeedChoice:
    channels_last: bool
    amp: bool
    how: str                                   # "measured", "set" (the user gave both), "resumed"
    step_ms: dict[str, float] = field(default_factory=dict)  # median step time of each measured combination

    def to_dict(self) -> dict:
        return {"channels_last": self.channels_last, "amp": self.amp, "how": self.how, "step_ms": self.step_ms}


def combination_name(channels_last: bool, amp: bool) -> str:
    return f"{'channels_last' if channels_last else 'nchw'} {'bf16' if amp else 'fp32'}"


def choose_speed_options(network: nn.Module, loss_fn: Callable, images: torch.Tensor, targets: torch.Tensor, *,
                         channels_last: bool | None, amp: bool | None, steps: int = TIMED_STEPS,
                         clock: Callable[[], float] = time.perf_counter) -> SpeedChoice:
    """Time `steps` training steps of a copy of `network` on (images, targets) in every combination of the
    settings left as None, and choose as the module docstring says. `clock` gives seconds."""
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

        for candidate in candidates:  # warm-up: first-call allocations and oneDNN's kernel choice
            step(*candidate)
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
