"""The Inception module (Szegedy et al. 2014, "Going Deeper with Convolutions", section 4, Figure 2).

Four branches look at the same input through different receptive fields, a 1x1, a 3x3 and a 5x5
convolution and a 3x3 max pool (stride 1, so every branch keeps the spatial size), and their outputs are
concatenated along the channels.

- The naive module (Figure 2a) convolves the full input depth with the 3x3 and 5x5 filters and passes the
  pool on whole, so its output is always deeper than its input: 28x28x256 in, 128 1x1 + 192 3x3 + 96 5x5
  filters, 28x28x(128 + 192 + 96 + 256) = 28x28x672 out, at 854M multiply-adds.
- The module with dimension reduction (Figure 2b) puts 1x1 "bottleneck" convolutions before the 3x3 and
  5x5 and after the pool; with reductions to 64 and a pool projection of 64 the same example gives
  28x28x480 for 271M multiply-adds (the course slide says 358M, but its six terms add up to 271M).

The convolutions come from a factory, so one module serves both layouts of GoogLeNet: the paper's
convolution with bias followed by ReLU (`ConvReLU`) and torchvision's convolution, batch norm and ReLU
(`BasicConv2d`). Attribute names (`branch1`..`branch4`, `conv`, `bn`) are torchvision's, so its
checkpoints load with strict=True.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# conv_block(in_chans, out_chans, kernel_size) -> a module that keeps the spatial size (stride 1).
ConvFactory = Callable[..., nn.Module]


def _same_padding(kernel_size: int, padding: int | None) -> int:
    return kernel_size // 2 if padding is None else padding


class ConvReLU(nn.Module):
    """Convolution with bias, then ReLU: every convolution of the paper's GoogLeNet (2014, no batch norm).

    The convolution is the attribute `conv`, as in `BasicConv2d`, so both layouts share their key names
    apart from the batch norm. `padding=None` keeps the spatial size at stride 1."""

    def __init__(self, in_chans: int, out_chans: int, kernel_size: int, stride: int = 1,
                 padding: int | None = None):
        super().__init__()
        self.conv = nn.Conv2d(in_chans, out_chans, kernel_size, stride=stride,
                              padding=_same_padding(kernel_size, padding))

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.conv(x), inplace=True)


class BasicConv2d(nn.Module):
    """Convolution without bias, batch norm (eps 0.001), ReLU: torchvision's GoogLeNet convolution.

    It computes what `ConvBnAct` computes, but torchvision's checkpoints name the parts `conv` and `bn`
    where ConvBnAct, an nn.Sequential, has `0` and `1`; the eps of 0.001 is that of TensorFlow, where
    torchvision's GoogLeNet weights were trained. `padding=None` keeps the spatial size at stride 1."""

    def __init__(self, in_chans: int, out_chans: int, kernel_size: int, stride: int = 1,
                 padding: int | None = None):
        super().__init__()
        self.conv = nn.Conv2d(in_chans, out_chans, kernel_size, stride=stride,
                              padding=_same_padding(kernel_size, padding), bias=False)
        self.bn = nn.BatchNorm2d(out_chans, eps=0.001)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


def _conv_branch(conv_block: ConvFactory, in_chans: int, reduce_chans: int | None, out_chans: int,
                 kernel_size: int) -> nn.Sequential:
    """An optional 1x1 reduction to `reduce_chans`, then the kxk convolution."""
    if reduce_chans is None:
        return nn.Sequential(conv_block(in_chans, out_chans, kernel_size))
    return nn.Sequential(conv_block(in_chans, reduce_chans, 1), conv_block(reduce_chans, out_chans, kernel_size))


class Inception(nn.Module):
    """The Inception module with dimension reduction; widths in the order of the paper's Table 1.

    branch1: 1x1 conv to `ch1x1`
    branch2: 1x1 conv to `ch3x3_reduce`, 3x3 conv to `ch3x3`
    branch3: 1x1 conv to `ch5x5_reduce`, 5x5 conv to `ch5x5`
    branch4: 3x3 max pool (stride 1, pad 1), 1x1 conv to `pool_proj`

    A reduction or projection width of None leaves that 1x1 convolution out; `Inception.naive` leaves all
    three out. `branch3_kernel_size=3` gives torchvision's GoogLeNet, whose "5x5" branch is a 3x3
    (pytorch/vision#906, kept so its checkpoints load). The output has `out_chans` channels."""

    def __init__(self, in_chans: int, ch1x1: int, ch3x3_reduce: int | None, ch3x3: int,
                 ch5x5_reduce: int | None, ch5x5: int, pool_proj: int | None,
                 conv_block: ConvFactory = ConvReLU, branch3_kernel_size: int = 5):
        super().__init__()
        self.branch1 = conv_block(in_chans, ch1x1, 1)
        self.branch2 = _conv_branch(conv_block, in_chans, ch3x3_reduce, ch3x3, 3)
        self.branch3 = _conv_branch(conv_block, in_chans, ch5x5_reduce, ch5x5, branch3_kernel_size)
        pool = nn.MaxPool2d(3, stride=1, padding=1)
        if pool_proj is None:
            self.branch4 = nn.Sequential(pool)
        else:
            self.branch4 = nn.Sequential(pool, conv_block(in_chans, pool_proj, 1))
        self.out_chans = ch1x1 + ch3x3 + ch5x5 + (in_chans if pool_proj is None else pool_proj)

    @classmethod
    def naive(cls, in_chans: int, ch1x1: int, ch3x3: int, ch5x5: int,
              conv_block: ConvFactory = ConvReLU) -> Inception:
        """The naive module (Figure 2a): no 1x1 reductions, the pool's output passed on whole."""
        return cls(in_chans, ch1x1, None, ch3x3, None, ch5x5, None, conv_block=conv_block)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], dim=1)
