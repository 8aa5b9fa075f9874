"""The inverted residual block with a linear bottleneck (Sandler et al. 2018, MobileNetV2)."""
from __future__ import annotations

from typing import Callable

from torch import Tensor, nn

from .conv import ConvBnAct, conv1x1


class InvertedResidual(nn.Module):
    """1x1 expansion (x `expand_ratio`) -> 3x3 depthwise (stride) -> 1x1 linear projection, each with BN.

    The block is narrow at its ends and wide inside, the reverse of a ResNet bottleneck, and the projection
    has no activation: the paper shows a ReLU on the narrow output destroys information the linear bottleneck
    keeps. The input is added back only when it has the output's shape (stride 1, in_chans == out_chans).
    With `expand_ratio == 1` there is no expansion conv. Keys follow torchvision's MobileNetV2 block:
    `conv.0` (expand, a ConvBnAct), `conv.1` (depthwise), `conv.2` (projection conv), `conv.3` (its BN)."""

    def __init__(self, in_chans: int, out_chans: int, stride: int, expand_ratio: float,
                 act: Callable[..., nn.Module] = nn.ReLU6):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"InvertedResidual stride must be 1 or 2, got {stride}")
        hidden_chans = int(round(in_chans * expand_ratio))
        self.use_residual = stride == 1 and in_chans == out_chans
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBnAct(in_chans, hidden_chans, 1, act=act))
        layers += [
            ConvBnAct(hidden_chans, hidden_chans, 3, stride=stride, groups=hidden_chans, act=act),
            conv1x1(hidden_chans, out_chans),
            nn.BatchNorm2d(out_chans),
        ]
        self.conv = nn.Sequential(*layers)
        self.out_chans = out_chans

    def forward(self, x: Tensor) -> Tensor:
        if self.use_residual:
            return x + self.conv(x)
        return self.conv(x)
