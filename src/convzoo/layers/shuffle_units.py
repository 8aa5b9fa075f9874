"""The ShuffleNet units: v1 (Zhang et al. 2018, Fig. 2) and v2 (Ma et al. 2018, Fig. 3)."""
from __future__ import annotations

import torch
import torch.fx
from torch import Tensor, nn

from .channel_shuffle import ChannelShuffle, channel_shuffle
from .conv import ConvBnAct, conv1x1, conv3x3

torch.fx.wrap("channel_shuffle")  # a torch.fx leaf here too (wrap is per module): it reads the shape


class ShuffleV1Unit(nn.Module):
    """ShuffleNet v1 unit: 1x1 group conv -> BN-ReLU -> channel shuffle -> 3x3 depthwise (stride) -> BN ->
    1x1 group conv -> BN, joined with the shortcut, then ReLU.

    Stride 1 (Fig. 2b): the shortcut is the identity and is added, so `in_chans == out_chans`.
    Stride 2 (Fig. 2c): the shortcut is a 3x3 average pool (stride 2) and is concatenated, so the branch
    makes only `out_chans - in_chans` channels; widening costs no extra 1x1 work.
    The paper leaves the activation out after the depthwise conv. `group_input_conv=False` makes the first
    1x1 conv dense (the paper does this for the first unit of stage 2, whose input has only 24 channels);
    with nothing grouped before it, the shuffle is left out there too."""

    def __init__(self, in_chans: int, out_chans: int, mid_chans: int, groups: int, stride: int = 1,
                 group_input_conv: bool = True):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"ShuffleV1Unit stride must be 1 or 2, got {stride}")
        if stride == 1 and in_chans != out_chans:
            raise ValueError(f"a stride-1 ShuffleV1Unit adds its shortcut, so in_chans ({in_chans}) must equal "
                             f"out_chans ({out_chans})")
        branch_chans = out_chans - in_chans if stride == 2 else out_chans
        input_groups = groups if group_input_conv else 1
        for what, chans, divisor in (("in_chans", in_chans, input_groups), ("mid_chans", mid_chans, groups),
                                     ("the branch's output channels", branch_chans, groups)):
            if chans < 1 or chans % divisor:
                raise ValueError(f"ShuffleV1Unit: {what} ({chans}) must be a positive multiple of the "
                                 f"{divisor} groups")
        self.stride = stride
        self.out_chans = out_chans
        self.compress = ConvBnAct(in_chans, mid_chans, 1, groups=input_groups)
        self.shuffle = ChannelShuffle(groups) if input_groups > 1 else nn.Identity()
        self.depthwise = ConvBnAct(mid_chans, mid_chans, 3, stride=stride, groups=mid_chans, act=None)
        self.expand = ConvBnAct(mid_chans, branch_chans, 1, groups=groups, act=None)
        self.shortcut = nn.AvgPool2d(3, stride=2, padding=1) if stride == 2 else nn.Identity()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        branch = self.expand(self.depthwise(self.shuffle(self.compress(x))))
        if self.stride == 2:
            out = torch.cat([self.shortcut(x), branch], dim=1)
        else:
            out = x + branch
        return self.relu(out)


class ShuffleV2Unit(nn.Module):
    """ShuffleNet v2 unit, in torchvision's layout (its `InvertedResidual` in shufflenetv2.py): keys
    `branch1.{0..4}` and `branch2.{0..7}` are raw Sequential indices, so the layers are listed flat here
    rather than grouped into ConvBnAct.

    Stride 1 (Fig. 3c): split the channels in half; one half passes untouched, the other goes through
    1x1-BN-ReLU, 3x3 depthwise-BN, 1x1-BN-ReLU; concatenate, shuffle with 2 groups.
    Stride 2 (Fig. 3d): no split; both branches see the whole input and each makes half the output."""

    def __init__(self, in_chans: int, out_chans: int, stride: int):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"ShuffleV2Unit stride must be 1 or 2, got {stride}")
        branch_chans = out_chans // 2
        if out_chans % 2 or (stride == 1 and in_chans != out_chans):
            raise ValueError(f"ShuffleV2Unit needs an even out_chans, equal to in_chans at stride 1; got "
                             f"in_chans={in_chans}, out_chans={out_chans}, stride={stride}")
        self.stride = stride
        self.out_chans = out_chans
        self.split = branch_chans  # at stride 1 the first `split` channels pass untouched
        if stride == 2:
            self.branch1 = nn.Sequential(
                conv3x3(in_chans, in_chans, stride=stride, groups=in_chans),
                nn.BatchNorm2d(in_chans),
                conv1x1(in_chans, branch_chans),
                nn.BatchNorm2d(branch_chans),
                nn.ReLU(inplace=True),
            )
        else:
            self.branch1 = nn.Sequential()  # torchvision keeps the attribute, empty, at stride 1
        self.branch2 = nn.Sequential(
            conv1x1(in_chans if stride == 2 else branch_chans, branch_chans),
            nn.BatchNorm2d(branch_chans),
            nn.ReLU(inplace=True),
            conv3x3(branch_chans, branch_chans, stride=stride, groups=branch_chans),
            nn.BatchNorm2d(branch_chans),
            conv1x1(branch_chans, branch_chans),
            nn.BatchNorm2d(branch_chans),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: Tensor) -> Tensor:
        if self.stride == 1:
            # Slices of a fixed width rather than x.chunk(2): torch.fx can trace them (no tuple to unpack).
            out = torch.cat([x[:, :self.split], self.branch2(x[:, self.split:])], dim=1)
        else:
            out = torch.cat([self.branch1(x), self.branch2(x)], dim=1)
        return channel_shuffle(out, 2)
