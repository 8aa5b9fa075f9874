"""Feature maps: what a layer's channels respond to in an image, most active channels first.

One forward pass records the outputs of the chosen layers (default: one per stage, layers.py). For each image and
layer the channels are ordered by their mean activation over the map, and the first `channels` of them are drawn
as a grid beside the image, each scaled to its own range, under a title giving the layer's shape and receptive
field (from `convzoo.summary`'s rules).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from .layers import watch
from .output import Explanation, image_grid, rounded
from .subject import Subject

DEFAULT_CHANNELS = 32
_COLUMNS = 8


def compute(subject: Subject, batch: Tensor, *, layers: str | Sequence[str] | None = None,
            channels: int = DEFAULT_CHANNELS, names: Sequence[str] | None = None) -> Explanation:
    batch = subject.check_batch(batch)
    layer_map = subject.layers(batch.shape[1:])
    paths = [layers] if isinstance(layers, str) else list(layers or layer_map.stages)
    infos = [layer_map.get(path) for path in paths]
    with torch.no_grad(), watch(subject.model, paths) as seen:
        subject.model(batch)
    names = list(names or [f"image{i}" for i in range(len(batch))])
    entries, arrays = [], {}
    for info in infos:
        activation = seen[info.path].float().cpu()            # N x C x h x w
        means = activation.mean(dim=(2, 3))
        for i in range(len(batch)):
            order = means[i].argsort(descending=True)[:channels]
            key = f"{names[i]}:{info.path}"
            arrays[key] = activation[i, order].numpy()
            entries.append({"image": i, "layer": info.to_dict(), "key": key,
                            "channels_by_activation": order.tolist(),
                            "mean_activation": rounded(means[i, order].numpy()),
                            "max_activation": rounded(activation[i, order].amax(dim=(1, 2)).numpy())})
    pixels = subject.pixels(batch)
    numbers = {"images": names, "layers": [info.to_dict() for info in infos], "maps": entries,
               "order": "channels sorted by mean activation over the map, largest first"}

    def draw() -> dict:
        figures = {}
        for entry in entries:
            info = next(x for x in infos if x.path == entry["layer"]["layer"])
            maps = arrays[entry["key"]]
            fig, axes = image_grid(len(maps) + 1, _COLUMNS, f"{subject.name}: {info.title()}")
            axes[0].imshow(pixels[entry["image"]], interpolation="nearest")
            axes[0].set_title(names[entry["image"]], fontsize=7)
            for ax, channel, values in zip(axes[1:], entry["channels_by_activation"], maps):
                ax.imshow(values, cmap="viridis", interpolation="nearest")
                ax.set_title(f"#{channel}", fontsize=6)
            figures[f"{names[entry['image']]}_{_file_safe(info.path)}"] = fig
        return figures

    return Explanation("feature-maps", subject.name, numbers, arrays, draw)


def _file_safe(path: str) -> str:
    return path.replace(".", "-") or "model"
