"""Residual blocks: y = shortcut(x) + F(x), with F a few convolutions.

He et al. 2015 ("Deep Residual Learning", arXiv 1512.03385) put the ReLU after the addition (post-activation):
BasicBlock (two 3x3 convs) and Bottleneck (1x1 reduce, 3x3, 1x1 expand by 4). He et al. 2016 ("Identity
Mappings", arXiv 1603.05027) move BN and ReLU in front of each conv so that nothing follows the addition and
the shortcut stays a pure identity: PreActBasicBlock and PreActBottleneck.

Every block takes the same arguments, in torchvision's order and meaning:
  in_chans, planes   input channels; `planes * expansion` output channels
  stride, downsample the stride of the block and the module that reshapes the shortcut (None: identity)
  groups, base_width the 3x3 conv's width is int(planes * base_width / 64) * groups, grouped `groups` ways:
                     groups=32, base_width=4 is ResNeXt's 32x4d, base_width=128 a wide ResNet
  dilation           dilation of the 3x3 convs (DeepLab-style stride replacement)
  attn_layer         attn_layer(channels) builds a module applied to the branch output before the addition,
                     stored as `self.se` (e.g. squeeze-and-excitation); None leaves it out
  drop_path          stochastic depth on the branch: a DropPath module, or a drop rate (paper's per-batch form)

Module attribute names follow torchvision (conv1, bn1, conv2, bn2, conv3, bn3, relu, downsample), so a
torchvision checkpoint loads without renaming. Absent optional parts (se, drop_path, dropout) are None and own
no keys.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .conv import conv1x1, conv3x3
from .drop_path import DropPath

AttnLayer = Callable[[int], nn.Module]


def _drop_path_module(drop_path: nn.Module | float | None) -> nn.Module | None:
    if drop_path is None or isinstance(drop_path, nn.Module):
        return drop_path
    return DropPath(float(drop_path)) if drop_path > 0 else None


def _bottleneck_width(planes: int, base_width: int, groups: int) -> int:
    return int(planes * (base_width / 64.0)) * groups


class ZeroPadShortcut(nn.Module):
    """The parameter-free shortcut of the CIFAR ResNets (He et al. 2015, option A): take every `stride`-th
    pixel and append zero channels up to `out_chans`. The identity keeps channels 0..in_chans-1."""

    def __init__(self, in_chans: int, out_chans: int, stride: int = 1):
        super().__init__()
        if out_chans < in_chans:
            raise ValueError(f"a zero-padding shortcut cannot reduce channels ({in_chans} -> {out_chans})")
        self.in_chans, self.out_chans, self.stride = in_chans, out_chans, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, ::self.stride, ::self.stride]
        # F.pad lists pads from the last dimension backwards: (W, W, H, H, C before, C after).
        return F.pad(x, (0, 0, 0, 0, 0, self.out_chans - self.in_chans))

    def extra_repr(self) -> str:
        return f"{self.in_chans}, {self.out_chans}, stride={self.stride}"


class ResidualBlock(nn.Module):
    """What every block shares: the optional attention and drop-path on the branch, and the addition.

    Each block sets `expansion` (it outputs planes * expansion channels) and `pre_activation`, and has
    `zero_init_last()`, which makes the branch output zero so the block starts as its shortcut."""

    expansion: int = 1
    pre_activation: bool = False

    def _init_branch_extras(self, out_chans: int, attn_layer: AttnLayer | None,
                            drop_path: nn.Module | float | None) -> None:
        self.se = attn_layer(out_chans) if attn_layer is not None else None
        self.drop_path = _drop_path_module(drop_path)

    def _add_shortcut(self, branch: torch.Tensor, shortcut: torch.Tensor) -> torch.Tensor:
        if self.se is not None:
            branch = self.se(branch)
        if self.drop_path is not None:
            branch = self.drop_path(branch)
        return branch + shortcut

    @staticmethod
    def projection(in_chans: int, out_chans: int, stride: int = 1) -> nn.Module:
        """The 1x1 projection shortcut (option B) of this kind of block: conv + BN (`downsample.0`/`.1`)."""
        return nn.Sequential(conv1x1(in_chans, out_chans, stride), nn.BatchNorm2d(out_chans))


class BasicBlock(ResidualBlock):
    """Two 3x3 convs, conv-BN-ReLU then conv-BN, add, ReLU (ResNet-18/34 and the CIFAR ResNets).

    With groups > 1 both 3x3 convs are grouped."""

    expansion = 1

    def __init__(self, in_chans: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 groups: int = 1, base_width: int = 64, dilation: int = 1, attn_layer: AttnLayer | None = None,
                 drop_path: nn.Module | float | None = None):
        super().__init__()
        width = _bottleneck_width(planes, base_width, groups)
        self.conv1 = conv3x3(in_chans, width, stride, groups, dilation)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(width, planes, groups=groups, dilation=dilation)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride
        self._init_branch_extras(planes, attn_layer, drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(self._add_shortcut(out, shortcut))

    def zero_init_last(self) -> None:
        """Start as the identity: the branch's last BN scales by zero (Goyal et al. 2017)."""
        nn.init.zeros_(self.bn2.weight)


class Bottleneck(ResidualBlock):
    """1x1 reduce, 3x3, 1x1 expand (x4), each followed by BN, ReLU after the addition (ResNet-50 and up).

    torchvision (ResNet v1.5) strides the 3x3 conv; `stride_in_1x1=True` strides the first 1x1 as the paper
    and the original Caffe models do, which skips 3/4 of the 3x3's work in each downsampling block."""

    expansion = 4

    def __init__(self, in_chans: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 groups: int = 1, base_width: int = 64, dilation: int = 1, attn_layer: AttnLayer | None = None,
                 drop_path: nn.Module | float | None = None, stride_in_1x1: bool = False):
        super().__init__()
        width = _bottleneck_width(planes, base_width, groups)
        out_chans = planes * self.expansion
        stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = conv1x1(in_chans, width, stride_1x1)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride_3x3, groups, dilation)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, out_chans)
        self.bn3 = nn.BatchNorm2d(out_chans)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride
        self._init_branch_extras(out_chans, attn_layer, drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(self._add_shortcut(out, shortcut))

    def zero_init_last(self) -> None:
        """Start as the identity: the branch's last BN scales by zero (Goyal et al. 2017)."""
        nn.init.zeros_(self.bn3.weight)


class _PreActBlock(ResidualBlock):
    """Shared by the pre-activation blocks: BN-ReLU of the input, and which input the shortcut sees.

    Following the Identity Mappings code (fb.resnet.torch preresnet.lua, Kaiming He's CIFAR code, and WRN's),
    a projection shortcut takes the *activated* input (the block activates "before splitting into two
    paths"), while an identity shortcut carries the raw input. `activate_input=False` leaves out the input
    BN-ReLU (bn1) for a block that directly follows a stem already ending in BN-ReLU."""

    pre_activation = True

    def _init_input_activation(self, in_chans: int, activate_input: bool) -> None:
        self.bn1 = nn.BatchNorm2d(in_chans) if activate_input else None
        self.relu = nn.ReLU(inplace=True)

    def _activate_input(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(activated input for the branch, input for the shortcut)."""
        activated = x if self.bn1 is None else self.relu(self.bn1(x))
        shortcut = x if self.downsample is None else self.downsample(activated)
        return activated, shortcut

    @staticmethod
    def projection(in_chans: int, out_chans: int, stride: int = 1) -> nn.Module:
        """The projection shortcut of a pre-activation block: a bare 1x1 conv (its input is already BN-ReLU'd)."""
        return conv1x1(in_chans, out_chans, stride)


class PreActBasicBlock(_PreActBlock):
    """BN-ReLU-conv3x3, BN-ReLU-(dropout)-conv3x3, add; nothing after the addition.

    `dropout` between the convs is Wide ResNet's (Zagoruyko & Komodakis 2016)."""

    expansion = 1

    def __init__(self, in_chans: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 groups: int = 1, base_width: int = 64, dilation: int = 1, attn_layer: AttnLayer | None = None,
                 drop_path: nn.Module | float | None = None, dropout: float = 0.0, activate_input: bool = True):
        super().__init__()
        width = _bottleneck_width(planes, base_width, groups)
        self._init_input_activation(in_chans, activate_input)
        self.conv1 = conv3x3(in_chans, width, stride, groups, dilation)
        self.bn2 = nn.BatchNorm2d(width)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else None
        self.conv2 = conv3x3(width, planes, groups=groups, dilation=dilation)
        self.downsample = downsample
        self.stride = stride
        self._init_branch_extras(planes, attn_layer, drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, shortcut = self._activate_input(x)
        out = self.relu(self.bn2(self.conv1(out)))
        if self.dropout is not None:
            out = self.dropout(out)
        out = self.conv2(out)
        return self._add_shortcut(out, shortcut)

    def zero_init_last(self) -> None:
        """Start as the identity: no BN ends the branch, so its last conv starts at zero."""
        nn.init.zeros_(self.conv2.weight)


class PreActBottleneck(_PreActBlock):
    """BN-ReLU-conv1x1, BN-ReLU-conv3x3, BN-ReLU-(dropout)-conv1x1 (x4), add; nothing after the addition."""

    expansion = 4

    def __init__(self, in_chans: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 groups: int = 1, base_width: int = 64, dilation: int = 1, attn_layer: AttnLayer | None = None,
                 drop_path: nn.Module | float | None = None, dropout: float = 0.0, activate_input: bool = True):
        super().__init__()
        width = _bottleneck_width(planes, base_width, groups)
        out_chans = planes * self.expansion
        self._init_input_activation(in_chans, activate_input)
        self.conv1 = conv1x1(in_chans, width)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride, groups, dilation)
        self.bn3 = nn.BatchNorm2d(width)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else None
        self.conv3 = conv1x1(width, out_chans)
        self.downsample = downsample
        self.stride = stride
        self._init_branch_extras(out_chans, attn_layer, drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, shortcut = self._activate_input(x)
        out = self.relu(self.bn2(self.conv1(out)))
        out = self.relu(self.bn3(self.conv2(out)))
        if self.dropout is not None:
            out = self.dropout(out)
        out = self.conv3(out)
        return self._add_shortcut(out, shortcut)

    def zero_init_last(self) -> None:
        """Start as the identity: no BN ends the branch, so its last conv starts at zero."""
        nn.init.zeros_(self.conv3.weight)

