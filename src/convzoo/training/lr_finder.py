"""The learning-rate range test (Smith 2017, "Cyclical Learning Rates for Training Neural Networks",
arXiv:1506.01186; fastai's and Lightning's lr_find): train from the initial weights while the learning rate
grows exponentially from `start` to `end`, one step a batch, and record the loss.

The sweep stops early once the running loss (an exponential moving average, 0.98, bias-corrected, as fastai's)
exceeds 4 x its lowest value: it has diverged. For the suggestion the recorded losses are smoothed again with a
centred moving average over 10% of the steps: a trailing average lags, and on a 100-step sweep 0.98's lag moves
the curve several-fold to the right in learning rate. The suggested rate is the one at the minimum of that
curve: the largest rate at which the loss still falls, which is what Smith takes as the maximum of a cyclical
or one-cycle schedule, and what every convzoo recipe's peak is (warm-up, then decay). The rate where the curve
falls fastest (the suggestion of fastai's and Lightning's older rule, for a constant rate) is recorded beside
it as `steepest`.

`convzoo lr-find MODEL --data ...` writes lr_find.json and lr_find.png; `convzoo train --lr auto` runs the
sweep on a copy of the initial network, trains at the suggestion and records both in its run folder.
"""
from __future__ import annotations

import copy
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from torch.utils.data import DataLoader

from ..io import atomic_write_text
from .metrics import _pyplot, _save_figure

SMOOTHING = 0.98
DIVERGED = 4.0
SKIP_START = 0.1
CENTRED_WINDOW = 0.1


@dataclass
class LRFindResult:
    lrs: list[float]
    losses: list[float]        # per step, as measured
    smoothed: list[float]      # the centred moving average the suggestion is read from
    suggestion: float          # the rate at the minimum of the smoothed loss
    steepest: float            # the rate where it falls fastest, before the minimum
    diverged: bool
    png: str | None = None     # where save() drew the curve

    def to_dict(self) -> dict:
        return asdict(self)

    def save(self, json_path: str | Path, png_path: str | Path, title: str = "") -> None:
        self.png = str(png_path)
        atomic_write_text(json_path, json.dumps(self.to_dict(), indent=2) + "\n")
        plot_lr_find(self, png_path, title)


def lr_sweep(network: nn.Module, loss_fn: Callable, loader: DataLoader,
             make_optimizer: Callable[[nn.Module, float], torch.optim.Optimizer], *, start: float = 1e-6,
             end: float = 10.0, steps: int = 100, device: torch.device | str = "cpu",
             memory_format: torch.memory_format = torch.contiguous_format, amp: bool = False,
             clip_grad_norm: float | None = None, progress: Callable[[int, float, float], None] | None = None) -> LRFindResult:
    """Run the range test on a copy of `network` (the network itself is untouched): `steps` training steps,
    cycling through `loader`, at rates start x (end/start)^(i/(steps-1)); each step as the engine's (the same
    optimizer and parameter groups, loss, precision and gradient clipping)."""
    if not 0 < start < end:
        raise ValueError(f"the sweep needs 0 < start < end, got {start} and {end}")
    if steps < 10:
        raise ValueError(f"the sweep needs at least 10 steps to draw a curve, got {steps}")
    trial = copy.deepcopy(network).train()
    optimizer = make_optimizer(trial, start)
    base = [group["lr"] for group in optimizer.param_groups]  # each group's share of the rate (layer decay)
    device = torch.device(device)
    lrs, losses = [], []
    average, best, diverged = 0.0, math.inf, False
    batches = iter(loader)
    for step in range(steps):
        lr = start * (end / start) ** (step / (steps - 1))
        for group, share in zip(optimizer.param_groups, base):
            group["lr"] = lr * share / start
        try:
            images, targets = next(batches)
        except StopIteration:
            batches = iter(loader)
            images, targets = next(batches)
        images = images.to(device, memory_format=memory_format)
        targets = targets.to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            outputs = trial(images)
        loss = loss_fn(outputs, targets)
        value = float(loss.detach())
        if not math.isfinite(value):
            diverged = True
            break
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip_grad_norm is not None:
            nn.utils.clip_grad_norm_(trial.parameters(), clip_grad_norm)
        optimizer.step()
        average = SMOOTHING * average + (1 - SMOOTHING) * value
        current = average / (1 - SMOOTHING ** (step + 1))
        lrs.append(lr)
        losses.append(value)
        best = min(best, current)
        if progress is not None:
            progress(step, lr, current)
        if current > DIVERGED * best:
            diverged = True
            break
    if len(lrs) < 3:
        raise ValueError(f"the loss diverged within {len(lrs)} steps of the sweep: start it lower than {start:g}")
    smoothed = centred_average(losses)
    suggestion, steepest = suggest(lrs, smoothed)
    return LRFindResult(lrs, losses, smoothed, suggestion, steepest, diverged)


def centred_average(values: list[float], fraction: float = CENTRED_WINDOW) -> list[float]:
    """Each value averaged with its neighbours within fraction/2 of the length on either side (fewer at the ends)."""
    half = max(1, round(fraction * len(values) / 2))
    return [sum(values[max(0, i - half):i + half + 1]) / len(values[max(0, i - half):i + half + 1])
            for i in range(len(values))]


def suggest(lrs: list[float], smoothed: list[float]) -> tuple[float, float]:
    """(the rate at the minimum of the smoothed loss, the rate of its steepest descent before the minimum)."""
    lowest = min(range(len(smoothed)), key=smoothed.__getitem__)
    first = min(int(SKIP_START * len(lrs)), max(lowest - 1, 0))
    slopes = []
    for i in range(first, max(lowest, first + 1)):
        # the central difference of the smoothed loss against log(lr); one-sided at the ends
        left, right = max(i - 1, 0), min(i + 1, len(lrs) - 1)
        slopes.append(((smoothed[right] - smoothed[left]) / (math.log(lrs[right]) - math.log(lrs[left])), i))
    return lrs[lowest], lrs[min(slopes)[1]]


def plot_lr_find(result: LRFindResult, path: str | Path, title: str = "") -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.plot(result.lrs, result.losses, color="0.75", linewidth=0.8, label="loss per step")
    ax.plot(result.lrs, result.smoothed, color="C0", label="smoothed (centred)")
    ax.axvline(result.suggestion, color="C3", linestyle="--", label=f"suggestion {result.suggestion:.2g}")
    ax.axvline(result.steepest, color="C2", linestyle=":", label=f"steepest descent {result.steepest:.2g}")
    ax.set_xscale("log")
    low = min(min(result.losses), min(result.smoothed))
    ax.set_ylim(low - 0.1 * abs(low), max(result.smoothed[0], low) * 1.6 + 1e-9)
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.set_title(title or "learning-rate range test")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save_figure(fig, path)
