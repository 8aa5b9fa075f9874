"""Look inside a trained network with real images: feature maps, filters, class activation maps, occlusion and
the effective receptive field.

    import convzoo
    result = convzoo.explain("runs/resnet20-digits", ["seven.png"], method="gradcam", out="explained")
    result.numbers["targets"][0]["peak_pixel"]

Each method is a small module returning an `Explanation` (numbers, arrays, a `draw` for its figures):
feature_maps.py, filters.py, cam.py (cam, gradcam, gradcam++, scorecam), occlusion.py, erf.py. `subject.py`
prepares the network (an in-place-free eval copy) and its images, `layers.py` finds the stages and the default
target layer from the analysis tracer, `targets.py` says what is explained (a class; per class for
segmentation), `output.py` writes PNGs, JSON and NPZ (docs/explain.md), `gallery.py` the run folder's gallery.
"""
from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor

from ..errors import DataError
from . import cam, erf, feature_maps, filters, occlusion
from .layers import ExplainError, LayerInfo, LayerMap
from .output import Explanation, write
from .subject import Subject, prepare

METHODS = ("feature-maps", "filters", "cam", "gradcam", "gradcam++", "scorecam", "occlusion", "erf")
# The options each method takes beyond the images, the layer and the class (explain() refuses the others).
_OPTIONS = {"feature-maps": {"channels"}, "filters": {"max_filters"}, "occlusion": {"window", "stride", "fill",
            "batch_size"}, "erf": set(), "cam": set(), "gradcam": set(), "gradcam++": set(), "scorecam": {"batch_size"}}


def explain(source: Any, images: Sequence[str | Path] | Tensor | None = None, method: str = "gradcam", *,
            layer: str | Sequence[str] | None = None, target: int | str | Sequence[int | str] | None = None,
            out: str | Path | None = None, device: str | torch.device = "cpu", names: Sequence[str] | None = None,
            **options: Any) -> Explanation:
    """Explain what `source` sees in `images` with `method`.

    source: a checkpoint (.safetensors written by `convzoo train`), a run folder, a model from `create_model`,
        or a Subject from `prepare`.
    images: image files (prepared as in training), or a normalised batch N x C x H x W; not needed by filters.
    method: one of METHODS. layer: a module path (`convzoo summary NAME` lists them); feature-maps takes several.
        Default: the stages for feature-maps, the first convolution for filters, the last stage before global
        pooling for the class activation maps and erf (a segmentation network's classifier input).
    target: a class name or index (default: each image's predicted class; per predicted class for segmentation).
    out: a folder to write the PNGs, the JSON and the NPZ into (docs/explain.md).
    options: channels (feature-maps), max_filters (filters), window / stride / fill / batch_size (occlusion),
        batch_size (scorecam).
    """
    if method not in METHODS:
        raise ExplainError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    unknown = set(options) - _OPTIONS[method]
    if unknown:
        raise ExplainError(f"{method} takes no option {', '.join(sorted(unknown))}"
                           + (f" (it takes {', '.join(sorted(_OPTIONS[method]))})" if _OPTIONS[method] else ""))
    subject = prepare(source, device)
    if method == "filters":
        if isinstance(layer, (list, tuple)):
            raise ExplainError("filters draws one layer at a time")
        size = tuple(images.shape[1:]) if isinstance(images, Tensor) else None
        result = filters.compute(subject, layer=layer, image_size=size, **options)
    else:
        if images is None:
            raise DataError(f"{method} needs images: give image files or a batch")
        if isinstance(images, Tensor):
            batch = images
        else:
            batch = subject.load_images(images)
            names = names or _stems(images)
        if method != "feature-maps" and isinstance(layer, (list, tuple)):
            raise ExplainError(f"{method} looks at one layer; only feature-maps takes several")
        if method == "feature-maps":
            result = feature_maps.compute(subject, batch, layers=layer, names=names, **options)
        elif method in cam.CAM_METHODS:
            result = cam.compute(subject, batch, method, layer=layer, target=target, names=names, **options)
        elif method == "occlusion":
            result = occlusion.compute(subject, batch, target=target, names=names, **options)
        else:
            result = erf.compute(subject, batch, layer=layer, names=names)
    result.numbers = {"source": subject.source, "task": subject.task, **result.numbers}
    if out is not None:
        result.numbers["files"] = write(result, out)
    return result


def _stems(paths: Sequence[str | Path]) -> list[str]:
    """Image names for the files: their stems, numbered where two files share one."""
    stems = [Path(p).stem for p in paths]
    return [stem if stems.count(stem) == 1 else f"{stem}-{i}" for i, stem in enumerate(stems)]


__all__ = ["METHODS", "ExplainError", "Explanation", "LayerInfo", "LayerMap", "Subject", "explain", "prepare",
           "write"]


class _CallableModule(types.ModuleType):
    """`convzoo.explain(...)` is this package called: the function `explain`, while `convzoo.explain.cam`,
    `convzoo.explain.gallery`... stay the package's modules (as `convzoo.draw`)."""

    def __call__(self, *args, **kwargs) -> Explanation:
        return explain(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
