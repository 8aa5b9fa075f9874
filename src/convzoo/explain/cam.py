"""Class activation maps: CAM, Grad-CAM, Grad-CAM++ and Score-CAM, laid over the image.

Grad-CAM (Selvaraju et al. 2017), Grad-CAM++ (Chattopadhay et al. 2018) and Score-CAM (Wang et al. 2020)
come from torchcam (`pip install torchcam`; it needs only torch, numpy, Pillow and matplotlib). convzoo adds
what torchcam leaves to its user: the target layer chosen from the network (layers.py), the network run as a
copy with in-place activations off (subject.py) and the watched output copied for the layers after it, the
per-class targets of segmentation networks (targets.py), and each map placed on the image by its layer's
receptive-field geometry rather than stretched.

CAM (Zhou et al. 2016) is computed here: it weights the map that the network averages globally (by default the
last map a layer with parameters makes, layers.py) by the classifier's weights, and that map need not be any module's output (DenseNet applies a functional ReLU between
`features` and the pooling). So CAM checks, on the image itself, that the logits are the last linear layer
applied to the global average of the target map (or of its ReLU), and refuses networks whose head is not
(VGG, AlexNet, ZFNet and LeNet-5 flatten a grid into fully connected layers; `nas` pools a concatenation its
forward makes): Grad-CAM generalises it there.

Maps are kept raw (the JSON and NPZ hold the numbers before any scaling); pictures scale each map to its own
range. Score-CAM runs the network once per channel of the target layer (in batches), so it costs channels x
one forward pass: name an earlier layer (--layer) for networks with thousands of channels.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..protocol import main_output
from .layers import ExplainError, LayerInfo, place_on_image, protect, watch
from .output import Explanation, heat_overlay, image_grid, rounded
from .subject import Subject
from .targets import Target, describe, find_targets

CAM_METHODS = ("cam", "gradcam", "gradcam++", "scorecam")
_TORCHCAM = {"gradcam": "GradCAM", "gradcam++": "GradCAMpp", "scorecam": "ScoreCAM"}
# CAM's check that the head is linear in the global average: relative tolerance on the logits.
_HEAD_TOLERANCE = 1e-3


def compute(subject: Subject, batch: Tensor, method: str = "gradcam", *, layer: str | None = None,
            target: int | str | Sequence[int | str] | None = None, targets: Sequence[Target] | None = None,
            batch_size: int = 32, names: Sequence[str] | None = None) -> Explanation:
    """The `method` map of each target (targets.py) of each image at `layer` (default: the map's default target,
    layers.py), as raw maps on the layer's grid and placed on the image. `targets` (Target(image, class) each)
    gives the targets one by one instead of `target`'s classes for every image."""
    if method not in CAM_METHODS:
        raise ExplainError(f"unknown class activation method {method!r}; one of {', '.join(CAM_METHODS)}")
    batch = subject.check_batch(batch)
    layer_map = subject.layers(batch.shape[1:])
    if layer is None and method == "cam" and layer_map.last_with_params is not None:
        layer = layer_map.last_with_params  # the map the head averages, even where it is 1x1 (small inputs)
    info = layer_map.get(layer) if layer else layer_map.default_target()
    model = subject.model
    with torch.no_grad():
        output = main_output(model(batch))
    targets = list(targets) if targets is not None else find_targets(subject, output, target)
    if method == "cam":
        maps = _cam(subject, batch, info, output, targets, layer_map.last_linear)
    else:
        maps = _torchcam(subject, batch, info, targets, method, batch_size)
    placed = place_on_image(maps, info, batch.shape[-2:])
    entries = []
    for k, (t, raw, on_image) in enumerate(zip(targets, maps, placed)):
        peak = divmod(int(on_image.argmax()), on_image.shape[1])
        entries.append({**describe(subject, t, float(t.probability(output[t.image:t.image + 1])[0])),
                        "map": rounded(raw.numpy()), "peak_pixel": list(peak)})
    names = list(names or [f"image{i}" for i in range(len(batch))])
    pixels = subject.pixels(batch)
    numbers = {"layer": info.to_dict(), "images": names, "targets": entries,
               "map_placement": "unit i of the layer's grid centred on input pixel start + i * jump, bilinear"}

    def draw() -> dict:
        return _draw(method, subject.name, info, names, pixels, targets, placed.numpy(), entries)

    return Explanation(method, subject.name, numbers, {"maps": placed.numpy()}, draw)


def _torchcam(subject: Subject, batch: Tensor, info: LayerInfo, targets: list[Target], method: str,
              batch_size: int) -> Tensor:
    """Raw maps (targets x h x w) from torchcam, `batch_size` targets at a time (an image with several targets,
    a segmentation image's classes, is repeated), with the watched output protected from in-place calls
    downstream."""
    try:
        from torchcam import methods
    except ImportError as err:
        raise ExplainError(f"{method} comes from torchcam, which is not installed: pip install torchcam") from err

    model = subject.model
    maps = []
    for start in range(0, len(targets), batch_size):
        chunk = targets[start:start + batch_size]
        images = batch[[t.image for t in chunk]]
        options = {"batch_size": batch_size} if method == "scorecam" else {}
        extractor = getattr(methods, _TORCHCAM[method])(model, target_layer=info.path,
                                                        input_shape=tuple(images.shape[1:]), **options)
        handle = protect(model, info.path)
        try:
            with torch.set_grad_enabled(method != "scorecam"):
                scores = main_output(model(images))
            if chunk[0].region is None:
                cams = extractor(class_idx=[t.cls for t in chunk], scores=scores, normalized=False)
            else:
                cams = extractor(scores=scores, normalized=False, targets=[t.score for t in chunk])
        finally:
            handle.remove()
            extractor.remove_hooks()
        maps.append(cams[0].detach().float().cpu())
    return torch.cat(maps)


def _cam(subject: Subject, batch: Tensor, info: LayerInfo, output: Tensor, targets: list[Target],
         last_linear: str | None) -> Tensor:
    """Zhou et al.'s CAM: sum_k w_ck A_k(x, y) with w the classifier's weights, after checking that the logits
    are that classifier on the global average of A (or of ReLU(A))."""
    if subject.segmentation or last_linear is None:
        raise ExplainError(f"cam needs a classifier ending in global average pooling and one linear layer; "
                           f"{subject.name} has none: use gradcam")
    linear = dict(subject.model.named_modules())[last_linear]
    with torch.no_grad(), watch(subject.model, [info.path]) as seen:
        logits = main_output(subject.model(batch))
    activation = seen[info.path]
    for name, shaped in (("identity", activation), ("relu", F.relu(activation))):
        if shaped.shape[1] != linear.in_features:
            break
        predicted = linear(shaped.mean(dim=(2, 3)))
        tolerance = _HEAD_TOLERANCE * float(logits.abs().max())
        if predicted.shape == logits.shape and torch.allclose(predicted, logits, rtol=_HEAD_TOLERANCE, atol=tolerance):
            weights = linear.weight.detach()
            return torch.stack([torch.einsum("k,khw->hw", weights[t.cls], shaped[t.image]) for t in targets]).cpu()
    raise ExplainError(f"cam needs the logits to be one linear layer ({last_linear}) on the global average of the "
                       f"target map; {subject.name}'s head is not that on {info.path} "
                       f"({'x'.join(map(str, info.shape))}): use gradcam, which generalises CAM")


_TITLES = {"cam": "CAM", "gradcam": "Grad-CAM", "gradcam++": "Grad-CAM++", "scorecam": "Score-CAM"}


def _draw(method: str, model: str, info: LayerInfo, names: list[str], pixels: np.ndarray, targets: list[Target],
          placed: np.ndarray, entries: list[dict]) -> dict:
    figures = {}
    for i, name in enumerate(names):
        mine = [k for k, t in enumerate(targets) if t.image == i]
        fig, axes = image_grid(len(mine) + 1, len(mine) + 1, f"{_TITLES[method]} of {model}\n{info.title()}")
        axes[0].imshow(pixels[i], interpolation="nearest")
        axes[0].set_title(name, fontsize=7)
        for ax, k in zip(axes[1:], mine):
            entry = entries[k]
            heat_overlay(ax, pixels[i], placed[k], f"{entry['class']} (p={entry['probability']:.2f})")
            ax.plot(entry["peak_pixel"][1], entry["peak_pixel"][0], marker="+", color="white", markersize=8)
        figures[name] = fig
    return figures
