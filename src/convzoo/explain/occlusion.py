"""Occlusion: Zeiler & Fergus' experiment (2014, section 4.2). A grey square slides over the image; at each
position the network sees the image with that square hidden, and the target class's probability there makes
one pixel of a map. Where hiding a part lowers the probability, the network was using that part.

The square is filled with the training images' mean colour (0 after normalisation: the grey of natural image
data sets), or with `fill` (a value in the images' 0..1 intensities). Positions start at the top-left corner
and step by `stride` while the square stays inside the image. The occluded images go through the network in
batches of `batch_size` under inference mode, so a 224x224 image at stride 8 (625 positions) is a few dozen
batched passes.

Also written: the sensitivity at image resolution, each pixel's mean drop of probability (unoccluded minus
occluded) over the squares that covered it.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from ..protocol import main_output
from .layers import ExplainError
from .output import Explanation, heat_overlay, image_grid, rounded
from .subject import Subject
from .targets import Target, describe, find_targets

DEFAULT_BATCH = 64


def default_window(height: int, width: int) -> int:
    """A seventh of the shorter side (32 pixels at 224), at least 2."""
    return max(2, min(height, width) // 7)


def compute(subject: Subject, batch: Tensor, *, target: int | str | Sequence[int | str] | None = None,
            targets: Sequence[Target] | None = None, window: int | None = None, stride: int | None = None, fill: float | None = None,
            batch_size: int = DEFAULT_BATCH, names: Sequence[str] | None = None) -> Explanation:
    batch = subject.check_batch(batch)
    height, width = batch.shape[-2:]
    window = default_window(height, width) if window is None else int(window)
    stride = max(1, window // 4) if stride is None else int(stride)
    if not 1 <= window <= min(height, width):
        raise ExplainError(f"--window must be between 1 and the image's shorter side ({min(height, width)}), "
                           f"got {window}")
    if stride < 1:
        raise ExplainError(f"--stride must be at least 1, got {stride}")
    if fill is None:
        value = torch.zeros(batch.shape[1], 1, 1)
        fill_text = "the training images' mean colour"
    else:
        mean = torch.tensor(subject.mean).view(-1, 1, 1)
        std = torch.tensor(subject.std).view(-1, 1, 1)
        value = (float(fill) - mean) / std
        fill_text = f"intensity {float(fill):g}"
    tops = list(range(0, height - window + 1, stride))
    lefts = list(range(0, width - window + 1, stride))
    model = subject.model
    with torch.inference_mode():
        output = main_output(model(batch))
        targets = list(targets) if targets is not None else find_targets(subject, output, target)
        grids, drops, entries = [], [], []
        for t in targets:
            p0 = float(t.probability(output[t.image:t.image + 1])[0])
            probabilities = occluded_probabilities(model, batch[t.image], t, tops, lefts, window, value, batch_size)
            grid = probabilities.view(len(tops), len(lefts))
            drop = _drop_per_pixel(p0 - grid, tops, lefts, window, (height, width))
            grids.append(grid.numpy())
            drops.append(drop.numpy())
            lowest = divmod(int(grid.argmin()), len(lefts))
            entries.append({**describe(subject, t, p0), "probability_map": rounded(grid.numpy()),
                            "lowest_probability": float(grid.min()),
                            "lowest_at_square": [tops[lowest[0]], lefts[lowest[1]]]})
    names = list(names or [f"image{i}" for i in range(len(batch))])
    pixels = subject.pixels(batch)
    numbers = {"images": names, "window": window, "stride": stride, "fill": fill_text, "square_tops": tops,
               "square_lefts": lefts, "targets": entries,
               "probability_map": "entry [r][c]: the target's probability with the square's top-left corner at "
                                  "(square_tops[r], square_lefts[c])"}

    def draw() -> dict:
        figures = {}
        for i, name in enumerate(names):
            mine = [k for k, t in enumerate(targets) if t.image == i]
            fig, axes = image_grid(2 * len(mine) + 1, 2 * len(mine) + 1,
                                   f"occlusion of {subject.name}\n{window}x{window} square, stride {stride}")
            axes[0].imshow(pixels[i], interpolation="nearest")
            axes[0].set_title(name, fontsize=7)
            for j, k in enumerate(mine):
                entry = entries[k]
                ax = axes[1 + 2 * j]
                image = ax.imshow(grids[k], cmap="viridis", interpolation="nearest",
                                  extent=(lefts[0] + window / 2 - stride / 2, lefts[-1] + window / 2 + stride / 2,
                                          tops[-1] + window / 2 + stride / 2, tops[0] + window / 2 - stride / 2))
                ax.set_xlim(-0.5, width - 0.5)
                ax.set_ylim(height - 0.5, -0.5)
                ax.set_title(f"p({entry['class']}) with square", fontsize=7)
                ax.axis("off")
                ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.02).ax.tick_params(labelsize=6)
                heat_overlay(axes[2 + 2 * j], pixels[i], drops[k], f"drop from p={entry['probability']:.2f}")
            figures[name] = fig
        return figures

    return Explanation("occlusion", subject.name, numbers,
                       {"probability_maps": np.stack(grids), "drop_per_pixel": np.stack(drops)}, draw)


def occluded_probabilities(model: torch.nn.Module, image: Tensor, target: Target, tops: Sequence[int],
                           lefts: Sequence[int], window: int, value: Tensor, batch_size: int = DEFAULT_BATCH
                           ) -> Tensor:
    """The target's probability for each square position (row-major over tops x lefts), in batches."""
    positions = [(top, left) for top in tops for left in lefts]
    probabilities = []
    value = value.to(image.device, image.dtype)
    for start in range(0, len(positions), batch_size):
        chunk = positions[start:start + batch_size]
        occluded = image.expand(len(chunk), *image.shape).clone()
        for n, (top, left) in enumerate(chunk):
            occluded[n, :, top:top + window, left:left + window] = value
        probabilities.append(target.probability(main_output(model(occluded))).float().cpu())
    return torch.cat(probabilities)


def _drop_per_pixel(drop: Tensor, tops: Sequence[int], lefts: Sequence[int], window: int,
                    size: tuple[int, int]) -> Tensor:
    total = torch.zeros(size)
    count = torch.zeros(size)
    for r, top in enumerate(tops):
        for c, left in enumerate(lefts):
            total[top:top + window, left:left + window] += drop[r, c]
            count[top:top + window, left:left + window] += 1
    return torch.where(count > 0, total / count.clamp_min(1), torch.zeros(size))
