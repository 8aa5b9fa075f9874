"""The effective receptive field (Luo et al. 2016): how much each input pixel moves one unit of a layer.

The gradient of the centre unit of a layer's map (summed over its channels) with respect to the input, its
magnitude summed over the input channels and averaged over the images, is drawn as a map at the input's size,
with the theoretical receptive field of that unit, from `convzoo.summary`'s rules, as a box around it. The
gradient cannot reach outside the box (no path leads there); inside it Luo et al. found it concentrated near
the centre, roughly Gaussian, so the *effective* field is a fraction of the theoretical one. The pass stops
at the layer: nothing after it runs.

Numbers: the box (top, left, bottom, right in input pixels, inclusive; it may reach past the image into the
padding), the support (the smallest box holding every pixel with a non-zero gradient), the share of the
gradient inside the box, the share of the box's area that holds 90% of the gradient, and the gradient's
standard deviation about the unit's centre along each axis.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from .layers import ExplainError, LayerInfo
from .output import Explanation, pyplot
from .subject import Subject

MASS_SHARE = 0.9


class _Reached(Exception):
    """Raised by the hook once the layer has run: the rest of the network is not needed."""


def input_gradient(subject: Subject, batch: Tensor, info: LayerInfo, unit: tuple[int, int]) -> Tensor:
    """|d unit / d input| summed over input channels, per image: N x H x W."""
    x = batch.detach().clone().requires_grad_(True)
    modules = dict(subject.model.named_modules())
    seen = {}

    def stop(module, args, output):
        seen["out"] = output
        raise _Reached

    handle = modules[info.path].register_forward_hook(stop)
    try:
        with torch.enable_grad():
            try:
                subject.model(x)
            except _Reached:
                pass
    finally:
        handle.remove()
    if "out" not in seen:
        raise ExplainError(f"{info.path} did not run in {subject.name}'s forward")
    seen["out"][:, :, unit[0], unit[1]].sum().backward()
    return x.grad.detach().abs().sum(dim=1).cpu()


def compute(subject: Subject, batch: Tensor, *, layer: str | None = None, names: Sequence[str] | None = None
            ) -> Explanation:
    batch = subject.check_batch(batch)
    layer_map = subject.layers(batch.shape[1:])
    info = layer_map.get(layer) if layer else layer_map.default_target()
    unit = (info.shape[1] // 2, info.shape[2] // 2)
    gradients = input_gradient(subject, batch, info, unit)
    erf = gradients.mean(dim=0).numpy().astype(np.float64)
    box = info.unit_box(*unit)
    numbers = {"layer": info.to_dict(), "unit": list(unit), "images": list(names or range(len(batch))),
               **measure(erf, box)}

    def draw() -> dict:
        return {f"{_safe(info.path)}": _draw(subject.name, info, unit, erf, box, numbers)}

    return Explanation("erf", subject.name, numbers, {"erf": erf, "per_image": gradients.numpy()}, draw)


def measure(erf: np.ndarray, box: Sequence[float]) -> dict:
    """The ERF's numbers against the theoretical box (see the module docstring)."""
    top, left, bottom, right = box
    rows, cols = np.nonzero(erf > 0)
    total = float(erf.sum())
    inside = np.zeros_like(erf, dtype=bool)
    inside[max(0, int(np.ceil(top))):int(np.floor(bottom)) + 1, max(0, int(np.ceil(left))):int(np.floor(right)) + 1] = True
    result = {"theoretical_box": [top, left, bottom, right],
              "support_box": None if len(rows) == 0 else [int(rows.min()), int(cols.min()), int(rows.max()),
                                                          int(cols.max())],
              "gradient_inside_box": float(erf[inside].sum() / total) if total > 0 else None}
    if total > 0:
        ordered = np.sort(erf.ravel())[::-1]
        needed = int(np.searchsorted(np.cumsum(ordered), MASS_SHARE * total) + 1)
        box_area = (bottom - top + 1) * (right - left + 1)
        result["box_share_holding_90_percent"] = needed / box_area
        centre = ((top + bottom) / 2, (left + right) / 2)
        grid_r, grid_c = np.indices(erf.shape)
        result["spread_pixels"] = [float(np.sqrt((erf * (grid_r - centre[0]) ** 2).sum() / total)),
                                   float(np.sqrt((erf * (grid_c - centre[1]) ** 2).sum() / total))]
    return result


def _draw(model: str, info: LayerInfo, unit: tuple[int, int], erf: np.ndarray, box: Sequence[float],
          numbers: dict):
    plt = pyplot()
    from matplotlib.patches import Rectangle

    fig, ax = plt.subplots(figsize=(5.2, 5.4))
    shown = ax.imshow(erf, cmap="inferno", interpolation="nearest")
    top, left, bottom, right = box
    ax.add_patch(Rectangle((left - 0.5, top - 0.5), right - left + 1, bottom - top + 1, fill=False,
                           edgecolor="cyan", linewidth=1.5, linestyle="--", label="theoretical receptive field"))
    height, width = erf.shape
    ax.set_xlim(min(-0.5, left - 1.5), max(width - 0.5, right + 1.5))
    ax.set_ylim(max(height - 0.5, bottom + 1.5), min(-0.5, top - 1.5))
    ax.add_patch(Rectangle((-0.5, -0.5), width, height, fill=False, edgecolor="white", linewidth=0.8))
    ax.legend(loc="lower right", fontsize=7)
    share = numbers.get("box_share_holding_90_percent")
    ax.set_title(f"{model}: effective receptive field of {info.path} unit {unit}\n"
                 f"theoretical {info.receptive_field[0]:g}x{info.receptive_field[1]:g} px"
                 + (f"; 90% of the gradient in {share:.0%} of it" if share is not None else ""), fontsize=8)
    fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.02, label="mean |d unit / d pixel|")
    fig.tight_layout()
    return fig


def _safe(path: str) -> str:
    return path.replace(".", "-") or "model"
