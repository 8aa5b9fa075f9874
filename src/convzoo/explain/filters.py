"""Filters: a convolution's kernels as pictures (Krizhevsky et al. 2012, figure 3, from any trained network).

The first convolution's kernels are drawn in colour when they read three channels (grey when they read one);
for a deeper convolution (--layer) each kernel is drawn as the mean over its input channels. Each kernel is
scaled symmetrically about zero by its own largest magnitude, so grey (or mid-colour) is a zero weight. No
image is needed.
"""
from __future__ import annotations

from torch import nn

from .layers import ExplainError
from .output import Explanation, image_grid, rounded
from .subject import Subject

MAX_FILTERS = 96  # AlexNet's first layer: its figure shows all 96
_COLUMNS = 12


def compute(subject: Subject, *, layer: str | None = None, max_filters: int = MAX_FILTERS,
            image_size: tuple[int, int, int] | None = None) -> Explanation:
    """The kernels of `layer` (default: the first convolution, found by tracing the network at `image_size`,
    default its input size)."""
    layer_map = subject.layers(image_size or subject.input_size)
    path = layer or layer_map.first_conv
    modules = dict(subject.model.named_modules())
    if path is None:
        raise ExplainError(f"{subject.name} has no convolution to draw")
    conv = modules.get(path)
    if not isinstance(conv, nn.Conv2d):
        inside = [name for name, m in modules.items() if name.startswith(f"{path}.") and isinstance(m, nn.Conv2d)]
        hint = f", e.g. {inside[0]}" if inside else ""
        raise ExplainError(f"filters draws a convolution's kernels; {path!r} is a {type(conv).__name__}: name one "
                           f"of its convolutions{hint}")
    weight = conv.weight.detach().float().cpu()          # out x in/groups x kh x kw
    colour = path == layer_map.first_conv and weight.shape[1] == 3
    kernels = weight if colour else weight.mean(dim=1, keepdim=True)
    shown = kernels[:max_filters]
    scale = shown.flatten(1).abs().amax(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
    pictures = (shown / scale / 2 + 0.5).permute(0, 2, 3, 1).numpy()   # n x kh x kw x (3 or 1), 0..1
    numbers = {"layer": path, "weight_shape": list(weight.shape), "groups": conv.groups,
               "drawn_as": "colour (RGB kernels)" if colour else "mean over input channels",
               "filters_drawn": len(shown), "l2_norms": rounded(weight.flatten(1).norm(dim=1).numpy()),
               "scaling": "each kernel divided by twice its largest magnitude, plus 0.5 (0.5 = a zero weight)"}

    def draw() -> dict:
        fig, axes = image_grid(len(pictures), _COLUMNS,
                               f"{subject.name}: {path} kernels ({'x'.join(map(str, weight.shape))}), "
                               f"{numbers['drawn_as']}")
        for k, (ax, picture) in enumerate(zip(axes, pictures)):
            ax.imshow(picture if colour else picture[..., 0], cmap=None if colour else "gray", vmin=0, vmax=1,
                      interpolation="nearest")
            ax.set_title(f"#{k}", fontsize=6)
        return {path.replace(".", "-"): fig}

    return Explanation("filters", subject.name, numbers, {"weight": weight.numpy()}, draw)
