"""DenseNet's building blocks (Huang et al. 2017): the dense layer, the dense block that concatenates every
layer's output onto its input, and the transition that compresses and downsamples between blocks.

Attribute names follow torchvision's densenet.py (norm1/relu1/conv1/norm2/relu2/conv2, denselayerN,
norm/relu/conv/pool) so that its checkpoints load with strict=True."""
from __future__ import annotations

from collections import OrderedDict
from contextlib import contextmanager, nullcontext
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from .conv import conv1x1, conv3x3


@contextmanager
def _running_stats_kept(norm: nn.BatchNorm2d) -> Iterator[None]:
    # Checkpointing re-runs the bottleneck in the backward pass with the norm still in training mode, which
    # would update its running statistics a second time per step (torchvision's memory_efficient does).
    saved = [buffer.clone() for buffer in norm.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for buffer, value in zip(norm.buffers(), saved):
                buffer.copy_(value)


class DenseLayer(nn.Module):
    """H_l of DenseNet-BC: BN-ReLU-conv1x1 down to `bn_size * growth_rate` channels (the bottleneck), then
    BN-ReLU-conv3x3 to `growth_rate` new channels, then optional dropout on those new channels.

    It takes the feature maps of every earlier layer of its block (a tensor or a list of tensors, the list
    concatenated along channels) and returns only its `growth_rate` new maps; the block does the
    concatenation. `memory_efficient=True` recomputes the concatenation and bottleneck in the backward pass
    instead of storing them (Pleiss et al. 2017), which cuts memory from quadratic to linear in depth."""

    def __init__(self, in_chans: int, growth_rate: int, bn_size: int = 4, drop_rate: float = 0.0,
                 memory_efficient: bool = False):
        super().__init__()
        bottleneck_chans = bn_size * growth_rate
        self.norm1 = nn.BatchNorm2d(in_chans)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = conv1x1(in_chans, bottleneck_chans)
        self.norm2 = nn.BatchNorm2d(bottleneck_chans)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(bottleneck_chans, growth_rate)
        self.drop_rate = float(drop_rate)
        self.memory_efficient = memory_efficient

    def _bottleneck(self, *features: Tensor) -> Tensor:
        return self.conv1(self.relu1(self.norm1(torch.cat(features, 1))))

    def forward(self, features: Tensor | Sequence[Tensor]) -> Tensor:
        inputs = [features] if isinstance(features, Tensor) else list(features)
        if self.memory_efficient and torch.is_grad_enabled() and any(t.requires_grad for t in inputs):
            bottleneck = checkpoint(self._bottleneck, *inputs, use_reentrant=False,
                                    context_fn=lambda: (nullcontext(), _running_stats_kept(self.norm1)))
        else:
            bottleneck = self._bottleneck(*inputs)
        new_features = self.conv2(self.relu2(self.norm2(bottleneck)))
        if self.drop_rate > 0:
            new_features = F.dropout(new_features, p=self.drop_rate, training=self.training)
        return new_features


class DenseBlock(nn.ModuleDict):
    """`num_layers` dense layers, each fed the concatenation of the block input and every earlier layer's
    output. The output is that whole concatenation: the input's channels first, unchanged, then
    `growth_rate` new channels per layer, `in_chans + num_layers * growth_rate` in all."""

    def __init__(self, num_layers: int, in_chans: int, growth_rate: int, bn_size: int = 4,
                 drop_rate: float = 0.0, memory_efficient: bool = False):
        super().__init__()
        for i in range(num_layers):
            self[f"denselayer{i + 1}"] = DenseLayer(
                in_chans + i * growth_rate, growth_rate, bn_size=bn_size, drop_rate=drop_rate,
                memory_efficient=memory_efficient,
            )
        self.out_chans = in_chans + num_layers * growth_rate

    def forward(self, x: Tensor) -> Tensor:
        features = [x]
        for layer in self.values():
            features.append(layer(features))
        return torch.cat(features, 1)


class Transition(nn.Sequential):
    """Between dense blocks: BN-ReLU-conv1x1 to `out_chans` channels (the compression; DenseNet-BC halves
    them), then 2x2 average pooling with stride 2, which halves height and width (rounding down)."""

    def __init__(self, in_chans: int, out_chans: int):
        super().__init__(OrderedDict([
            ("norm", nn.BatchNorm2d(in_chans)),
            ("relu", nn.ReLU(inplace=True)),
            ("conv", conv1x1(in_chans, out_chans)),
            ("pool", nn.AvgPool2d(kernel_size=2, stride=2)),
        ]))
        self.out_chans = out_chans
