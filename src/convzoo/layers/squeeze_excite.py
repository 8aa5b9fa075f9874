"""Squeeze-and-excitation (Hu et al. 2017, "Squeeze-and-Excitation Networks", arXiv 1709.01507).

A feature map U of C channels is recalibrated channel by channel:

    squeeze     z = mean over H, W of U                       (C numbers: one per channel)
    excitation  s = sigmoid(W2 relu(W1 z + b1) + b2)          (W1: C -> C/r, W2: C/r -> C)
    scale       out = U * s                                   (each channel multiplied by its gate)

The gates depend only on the channel means, so they carry global context into every position at the
cost of 2*C*C/r + C/r + C parameters. The two fully connected layers are 1x1 convolutions on the pooled
1x1 map, as in the authors' Caffe models and in the common PyTorch ports (names fc1/fc2).
"""
from __future__ import annotations

import torch
from torch import nn


class SqueezeExcite(nn.Module):
    """Channel-wise gating by a squeeze (global average pool) and an excitation (bottleneck MLP, sigmoid).

    `reduction` is the paper's r: the hidden layer has channels // r units (the paper uses r = 16)."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = channels // reduction
        if hidden < 1:
            raise ValueError(
                f"SqueezeExcite needs channels // reduction >= 1; got channels={channels}, "
                f"reduction={reduction}. Use a reduction of at most {channels}."
            )
        self.fc1 = nn.Conv2d(channels, hidden, kernel_size=1)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, kernel_size=1)
        self.sigmoid = nn.Sigmoid()
        self.reduction = reduction

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        squeezed = x.mean(dim=(2, 3), keepdim=True)
        gates = self.sigmoid(self.fc2(self.relu(self.fc1(squeezed))))
        return x * gates

    def extra_repr(self) -> str:
        return f"reduction={self.reduction}"
