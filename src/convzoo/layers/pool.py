"""The pooling before a classifier, chosen by name as timm's `global_pool`: "avg" (every network's default
here), "max", "avgmax" (the mean of the two) or "" (none: the map is returned unpooled, which only a headless
network can return). `output_size` is the grid the pool leaves: 1 for a global pool, 7x7 for VGG's head."""
from __future__ import annotations

from torch import Tensor, nn

from ..protocol import GLOBAL_POOLS


class AdaptiveAvgMaxPool2d(nn.Module):
    """The mean of adaptive average and adaptive max pooling to `output_size`."""

    def __init__(self, output_size: int | tuple[int, int] = 1):
        super().__init__()
        self.avg = nn.AdaptiveAvgPool2d(output_size)
        self.max = nn.AdaptiveMaxPool2d(output_size)

    def forward(self, x: Tensor) -> Tensor:
        return 0.5 * (self.avg(x) + self.max(x))


def check_global_pool(kind: str, name: str, allowed: tuple[str, ...] = GLOBAL_POOLS) -> str:
    if kind not in allowed:
        raise ValueError(f"{name} takes global_pool one of {', '.join(map(repr, allowed))}; got {kind!r}")
    return kind


def make_pool(kind: str, output_size: int | tuple[int, int] = 1) -> nn.Module:
    """The pooling module for `kind` (one of GLOBAL_POOLS) down to `output_size`."""
    if kind == "avg":
        return nn.AdaptiveAvgPool2d(output_size)
    if kind == "max":
        return nn.AdaptiveMaxPool2d(output_size)
    if kind == "avgmax":
        return AdaptiveAvgMaxPool2d(output_size)
    if kind == "":
        return nn.Identity()
    raise ValueError(f"global_pool must be one of {', '.join(map(repr, GLOBAL_POOLS))}; got {kind!r}")
