"""The course's complexity chart: reported ImageNet top-1 accuracy against operations, bubble area
proportional to parameters, one labelled bubble per network (after Canziani et al. 2016, "An Analysis
of Deep Neural Network Models for Practical Applications").

Accuracy comes from the model cards (`100 - reported["imagenet_top1_error"]`, as the paper reports it);
operations and parameters are measured by `summary()` at each card's input size, in the "conv_linear"
convention that published figures use. Networks whose card reports no ImageNet top-1 error (CIFAR
networks, or papers that give only top-5) stay in the table but not on the chart, and the chart says so.

A folder written by `convzoo train` can stand wherever a name does: its row is the trained network measured
at the run's input size, with the test top-1 accuracy from its results.json, and its label names the data
it was trained on (so a digits run is never mistaken for an ImageNet figure).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from ..errors import UnknownModelError
from ..io import atomic_write_with
from ..registry import list_models, model_card
from .summary import summary


@dataclass(frozen=True)
class CompareRow:
    name: str
    input_size: tuple[int, ...]
    params: int
    macs: int  # at input_size, in the convention compare() was given
    top1_accuracy: float | None  # percent, as reported; None when the card reports no ImageNet top-1 error
    trained_on: str | None = None  # data set of a trained run's accuracy; None for a card's reported figure

    @property
    def label(self) -> str:
        return self.name if self.trained_on is None else f"{self.name} ({self.trained_on})"


def expand_names(patterns: Iterable[str]) -> list[str]:
    """Names and shell-style wildcards ('resnet*') to registered names, in the order given, each once."""
    names: list[str] = []
    for pattern in patterns:
        if any(char in pattern for char in "*?["):
            matched = list_models(pattern)
            if not matched:
                raise UnknownModelError(f"no registered model matches {pattern!r}; `convzoo list` shows them all")
        else:
            matched = [model_card(pattern).name]
        names += [name for name in matched if name not in names]
    return names


def compare(names: Iterable[str], convention: str = "conv_linear") -> list[CompareRow]:
    """One row per network (wildcards allowed): parameters, MACs at its card's input size, reported top-1;
    and one per trained run folder: the run's network and input size, its test top-1."""
    rows: list[CompareRow] = []
    for item in names:
        if Path(item).is_dir():
            rows.append(run_row(item, convention))
            continue
        for name in expand_names([item]):
            if any(row.name == name and row.trained_on is None for row in rows):
                continue
            card = model_card(name)
            report = summary(name, depth=0, convention=convention)
            error = card.reported.get("imagenet_top1_error")
            rows.append(CompareRow(name=name, input_size=tuple(card.input_size), params=report.total_params,
                                   macs=report.total_macs,
                                   top1_accuracy=None if error is None else round(100 - error, 2)))
    return rows


def run_row(run_dir: str | Path, convention: str = "conv_linear") -> CompareRow:
    """The row of a `convzoo train` run folder: its network rebuilt (on the meta device) from the checkpoint's
    description, measured at the run's input size, and the test top-1 accuracy of its results.json."""
    import json

    import torch

    from ..registry import create_model
    from ..training.checkpoint import read_checkpoint_description  # run folders are the engine's format

    run_dir = Path(run_dir)
    results_path = run_dir / "results.json"
    if not results_path.is_file():
        raise FileNotFoundError(f"{str(run_dir)!r} has no results.json: give a finished `convzoo train` run folder")
    results = json.loads(results_path.read_text())
    if "top1_accuracy" not in results:
        raise ValueError(f"{str(results_path)!r} has no top1_accuracy: compare charts classification runs only")
    description = read_checkpoint_description(run_dir)
    model_args = dict(description["model"])
    name = model_args.pop("name")
    input_size = tuple(description["input_size"])
    with torch.device("meta"):
        model = create_model(name, **model_args)
    report = summary(model, input_size=input_size, depth=0, convention=convention)
    return CompareRow(name=name, input_size=input_size, params=report.total_params, macs=report.total_macs,
                      top1_accuracy=round(float(results["top1_accuracy"]), 2),
                      trained_on=description.get("data", {}).get("source", "trained"))


def complexity_chart(rows: list[CompareRow], path: str | Path, title: str | None = None) -> list[str]:
    """Draw the chart to `path` (PNG, SVG or PDF by its suffix); returns the names left off it."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed, and no window opens on a desktop
    import matplotlib.pyplot as plt

    plotted = [r for r in rows if r.top1_accuracy is not None]
    left_off = [r.label for r in rows if r.top1_accuracy is None]
    figure, axes = plt.subplots(figsize=(10, 6.5), dpi=120)
    if plotted:
        largest = max(r.params for r in plotted)
        # Area, not radius, proportional to parameters (matplotlib's `s` is an area in points^2).
        area_per_param = 2500 / largest
        colours = plt.get_cmap("tab20")
        radii = []  # in points: sqrt(area / pi)
        for i, row in enumerate(plotted):
            area = row.params * area_per_param
            # A trained run's accuracy is on its own data, not ImageNet: a dashed edge sets it apart.
            axes.scatter(row.macs / 1e9, row.top1_accuracy, s=area, color=colours(i % 20), alpha=0.55,
                         edgecolors="black", linewidths=0.6 if row.trained_on is None else 1.2,
                         linestyles="solid" if row.trained_on is None else "dashed", zorder=2)
            radii.append((area / math.pi) ** 0.5)
        for millions in _reference_sizes(largest):
            axes.scatter([], [], s=millions * 1e6 * area_per_param, color="grey", alpha=0.4, edgecolors="black",
                         label=f"{millions:g}M parameters")
        # Spacing grows with the largest reference bubble so the three never overlap.
        biggest_radius = (max(_reference_sizes(largest)) * 1e6 * area_per_param / math.pi) ** 0.5
        axes.legend(loc="best", labelspacing=max(2.2, biggest_radius / 6), borderpad=1.4, frameon=True,
                    fontsize=8, title="bubble area", title_fontsize=8, handletextpad=2.5)
        axes.set_xscale("log")
        accuracies = [r.top1_accuracy for r in plotted]
        axes.set_ylim(min(accuracies) - 3, max(accuracies) + 3)
        axes.margins(x=0.15)
        _label(figure, axes, plotted, radii)
    axes.set_xlabel("operations (G-MACs, conv + linear, at each network's input size; log scale)")
    trained = any(r.trained_on is not None for r in plotted)
    axes.set_ylabel("top-1 accuracy (%): ImageNet as reported; trained runs (dashed) on their own data"
                    if trained else "reported ImageNet top-1 accuracy (%)")
    axes.set_title(title or "Accuracy, operations and parameters")
    axes.grid(True, which="both", alpha=0.3, zorder=0)
    if left_off:
        figure.text(0.01, 0.01, "not shown (no reported ImageNet top-1): " + ", ".join(left_off), fontsize=7,
                    wrap=True)
    figure.tight_layout(rect=(0, 0.04 if left_off else 0, 1, 1))
    try:
        # savefig picks the format from the name: the temp file keeps `path`'s suffix.
        atomic_write_with(path, figure.savefig)
    finally:
        plt.close(figure)
    return left_off


def _label(figure, axes, rows: list[CompareRow], radii: list[float]) -> None:
    """Name each bubble just outside its edge: above it, or below, right or left of it when that spot
    would cover a label already placed (networks of similar cost and accuracy cluster)."""
    renderer = figure.canvas.get_renderer()
    placed = []
    for row, radius in zip(rows, radii):
        gap = radius + 2
        for offset, ha, va in (((0, gap), "center", "bottom"), ((0, -gap), "center", "top"),
                               ((gap, 0), "left", "center"), ((-gap, 0), "right", "center")):
            label = axes.annotate(row.label, (row.macs / 1e9, row.top1_accuracy), xytext=offset,
                                  textcoords="offset points", ha=ha, va=va, fontsize=8, zorder=3)
            box = label.get_window_extent(renderer)
            if not any(box.overlaps(other) for other in placed):
                break
            label.remove()
        else:  # crowded on every side: keep it above
            label = axes.annotate(row.label, (row.macs / 1e9, row.top1_accuracy), xytext=(0, gap),
                                  textcoords="offset points", ha="center", va="bottom", fontsize=8, zorder=3)
            box = label.get_window_extent(renderer)
        placed.append(box)


def _reference_sizes(largest: int) -> list[float]:
    """Three round parameter counts for the legend's reference bubbles, up to the largest network."""
    candidates = [1, 5, 10, 25, 50, 100, 150]
    fitting = [m for m in candidates if m * 1e6 <= largest] or [round(largest / 1e6, 1)]
    return fitting[-3:] if len(fitting) >= 3 else fitting
