"""Channel shuffle (Zhang et al. 2018, ShuffleNet): lets a stack of grouped convolutions exchange information.

A grouped 1x1 conv only sees the channels of its own group; two in a row would keep every group a separate
network. Shuffling the channels between them hands each group a slice of every other group's output."""
from __future__ import annotations

import torch.fx
from torch import Tensor, nn


def channel_shuffle(x: Tensor, groups: int) -> Tensor:
    """Reshape the C channels to (groups, C // groups), transpose to (C // groups, groups), flatten.

    Output channel k * groups + g is input channel g * (C // groups) + k: the k-th channel of every group in
    turn. Shuffling again with C // groups groups undoes it."""
    batch, channels, height, width = x.shape
    if channels % groups:
        raise ValueError(f"channel_shuffle: {channels} channels cannot be split into {groups} groups")
    # reshape, not view: a channels_last tensor cannot be viewed this way, only copied.
    grouped = x.reshape(batch, groups, channels // groups, height, width)
    return grouped.transpose(1, 2).reshape(batch, channels, height, width)


# A leaf for torch.fx: traced networks call it as one node (its shape arithmetic runs on real tensors).
torch.fx.wrap("channel_shuffle")


class ChannelShuffle(nn.Module):
    """`channel_shuffle` as a module, so it shows in the printed network (it has no parameters)."""

    def __init__(self, groups: int):
        super().__init__()
        if groups < 1:
            raise ValueError(f"ChannelShuffle needs at least one group, got {groups}")
        self.groups = groups

    def forward(self, x: Tensor) -> Tensor:
        return channel_shuffle(x, self.groups)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"
