"""What a method returns, how it is drawn, and how it is written.

Every method returns an `Explanation`: the numbers behind its pictures (plain JSON-able values), its larger
arrays (written to an .npz beside the JSON), and a `draw` function that turns it into matplotlib figures.
`write` puts them in a folder (the layout is in docs/explain.md):

    OUT/index.json                     one entry per method written here: its JSON, NPZ and PNGs
    OUT/METHOD/METHOD.json             the numbers
    OUT/METHOD/METHOD.npz              the arrays (maps at the image's size, activations, weights)
    OUT/METHOD/NAME.png                the pictures

Every file goes through the atomic writer, so a failure leaves the files that were there as they were.
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..io import atomic_write_bytes, atomic_write_text

FORMAT = 1
# Image panels are drawn at least this many screen pixels a side, so 8x8 digits and 7x7 maps stay readable.
PANEL_INCHES = 1.6


@dataclass
class Explanation:
    """What one method found for a batch of images."""

    method: str
    model: str
    numbers: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    draw: Callable[[], dict[str, Any]] | None = field(default=None, repr=False)  # name -> matplotlib Figure

    def figures(self) -> dict[str, Any]:
        return {} if self.draw is None else self.draw()


def pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed (CI, servers)
    import matplotlib.pyplot as plt

    return plt


def figure_png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    pyplot().close(fig)
    return buffer.getvalue()


def write(explanation: Explanation, out: str | Path) -> dict[str, Any]:
    """Write the explanation's PNGs, JSON and NPZ under OUT/METHOD/ and record them in OUT/index.json.
    Returns the index entry (paths relative to OUT)."""
    out = Path(out)
    folder = out / explanation.method
    pngs = []
    for name, fig in explanation.figures().items():
        atomic_write_bytes(folder / f"{name}.png", figure_png(fig))
        pngs.append(f"{explanation.method}/{name}.png")
    entry: dict[str, Any] = {"method": explanation.method, "model": explanation.model,
                             "json": f"{explanation.method}/{explanation.method}.json", "pngs": pngs}
    if explanation.arrays:
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **{key: np.asarray(value) for key, value in explanation.arrays.items()})
        atomic_write_bytes(folder / f"{explanation.method}.npz", buffer.getvalue())
        entry["npz"] = f"{explanation.method}/{explanation.method}.npz"
    document = {"format": FORMAT, "method": explanation.method, "model": explanation.model, "pngs": pngs,
                "npz": entry.get("npz"), **explanation.numbers}
    atomic_write_text(folder / f"{explanation.method}.json", json.dumps(_plain(document), indent=1) + "\n")
    index_path = out / "index.json"
    index = {"format": FORMAT, "methods": {}}
    if index_path.is_file():
        try:
            index = json.loads(index_path.read_text())
        except json.JSONDecodeError:
            pass
    index.setdefault("methods", {})[explanation.method] = entry
    atomic_write_text(index_path, json.dumps(index, indent=1) + "\n")
    return entry


def _plain(value: Any) -> Any:
    """numpy scalars and arrays as JSON values; NaN and infinities as null."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def rounded(array: np.ndarray, digits: int = 5) -> list:
    """A small array as nested lists of floats rounded for the JSON (the NPZ keeps full precision)."""
    return np.round(np.asarray(array, dtype=np.float64), digits).tolist()


def image_grid(count: int, columns: int, title: str, extra_rows: int = 0):
    """A figure with `count` image panels in rows of `columns`, axes off; returns (fig, axes list)."""
    plt = pyplot()
    columns = max(1, min(columns, count))
    rows = -(-count // columns) + extra_rows
    fig, axes = plt.subplots(rows, columns, figsize=(PANEL_INCHES * columns, PANEL_INCHES * rows + 0.6),
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    return fig, list(axes.flat)


def heat_overlay(ax, pixels: np.ndarray, heat: np.ndarray, title: str, alpha: float = 0.5) -> None:
    """The image with a heat map over it (jet, the CAM papers' colours), scaled to its own range."""
    ax.imshow(pixels, interpolation="nearest")
    span = float(heat.max() - heat.min())
    scaled = (heat - heat.min()) / span if span > 0 else np.zeros_like(heat)
    ax.imshow(scaled, cmap="jet", alpha=alpha, vmin=0, vmax=1, interpolation="bilinear")
    ax.set_title(title, fontsize=7)
    ax.axis("off")
