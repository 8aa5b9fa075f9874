"""Convolution helpers shared by every family: 3x3 and 1x1 convs, conv-BN-activation, depthwise separable."""
from __future__ import annotations

from typing import Callable

from torch import nn


def conv3x3(in_chans: int, out_chans: int, stride: int = 1, groups: int = 1, dilation: int = 1) -> nn.Conv2d:
    """3x3 convolution, no bias (a batch norm follows), padded to keep the size at stride 1."""
    return nn.Conv2d(in_chans, out_chans, 3, stride=stride, padding=dilation, groups=groups, bias=False,
                     dilation=dilation)


def conv1x1(in_chans: int, out_chans: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution, no bias."""
    return nn.Conv2d(in_chans, out_chans, 1, stride=stride, bias=False)


class ConvBnAct(nn.Sequential):
    """Conv -> BatchNorm -> activation, as an nn.Sequential so checkpoint keys are `0.weight`, `1.weight`
    (the layout of torchvision's Conv2dNormActivation, used by its MobileNet and ShuffleNet).

    `padding=None` pads to keep the spatial size at stride 1 ("same" for odd kernels, dilation included).
    `act=None` leaves the activation out (a linear bottleneck)."""

    def __init__(self, in_chans: int, out_chans: int, kernel_size: int = 3, stride: int = 1,
                 padding: int | None = None, groups: int = 1, dilation: int = 1,
                 act: Callable[..., nn.Module] | None = nn.ReLU):
        if padding is None:
            padding = (kernel_size - 1) // 2 * dilation
        layers: list[nn.Module] = [
            nn.Conv2d(in_chans, out_chans, kernel_size, stride=stride, padding=padding, groups=groups,
                      dilation=dilation, bias=False),
            nn.BatchNorm2d(out_chans),
        ]
        if act is not None:
            layers.append(act(inplace=True) if act in (nn.ReLU, nn.ReLU6) else act())
        super().__init__(*layers)
        self.out_chans = out_chans


class DepthwiseSeparableConv(nn.Sequential):
    """A depthwise 3x3 conv (one filter per channel) then a pointwise 1x1 conv, each followed by BN and ReLU:
    MobileNet v1's building block. It costs H*W*C*(9 + C_out) MACs against H*W*C*9*C_out for a full 3x3."""

    def __init__(self, in_chans: int, out_chans: int, stride: int = 1, act: Callable[..., nn.Module] = nn.ReLU):
        super().__init__(
            ConvBnAct(in_chans, in_chans, 3, stride=stride, groups=in_chans, act=act),
            ConvBnAct(in_chans, out_chans, 1, act=act),
        )
