"""Multi-scale context for dense prediction: modules that look far around each pixel without losing resolution.

- `ContextModule`: Yu & Koltun (2016)'s stack of 3x3 convs with dilations 1, 1, 2, 4, 8, 16, 1 and a 1x1,
  "basic" (C channels throughout) or "large" (widening to 32C), identity-initialised.
- `ASPPv2`: DeepLab v2's atrous spatial pyramid pooling: parallel 3x3 branches at rates 6, 12, 18, 24 whose
  class scores are summed (Chen et al. 2017, "DeepLab", TPAMI).
- `ASPP`: DeepLab v3's: a 1x1 branch, three atrous 3x3 branches and image-level pooling, each with batch
  norm, concatenated and projected by a 1x1 conv (Chen et al. 2017, "Rethinking Atrous Convolution"), in
  torchvision's layout and key names (convs.0..4, project).
- `PyramidPooling`: PSPNet's pyramid pooling module (Zhao et al. 2017): average pooling to 1x1, 2x2, 3x3 and
  6x6 bins, a 1x1 conv each, upsampled and concatenated with the input.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .conv import ConvBnAct

# Table 1 of Yu & Koltun: the dilation of each 3x3 layer (layers 1-7); layer 8 is a 1x1 conv.
CONTEXT_DILATIONS = (1, 1, 2, 4, 8, 16, 1)
# Output channels of layers 1-8 of the large module, in multiples of C (the basic module keeps C).
LARGE_CONTEXT_WIDTHS = (2, 2, 4, 8, 16, 32, 32, 1)
CONTEXT_KINDS = ("basic", "large")


class ContextModule(nn.Module):
    """The dilated context module of Yu & Koltun, "Multi-Scale Context Aggregation by Dilated Convolutions"
    (ICLR 2016), Table 1: seven 3x3 convs with dilations 1, 1, 2, 4, 8, 16, 1, each followed by a ReLU
    ("truncation"), then a 1x1 conv; the receptive field grows exponentially to 67x67 while the resolution
    stays. It takes and returns C feature maps (C = the number of classes: it refines the front end's
    class scores).

    kind="basic": C channels in every layer, 64 C^2 weights. kind="large": 2C, 2C, 4C, 8C, 16C, 32C, 32C, C.

    Initialisation (section 3): the paper found random initialisation ineffective and starts the module
    as the identity. Basic: each 3x3 filter passes its own channel through its centre tap. Large: between
    c_in and c_out channels, the centre tap from input a to output b is C / c_out when a and b belong to the
    same class group (floor(a C / c_in) == floor(b C / c_out)), so each class's value is split evenly over
    its copies and summed back by the last layer; every other weight is N(0, sigma^2) with
    sigma = `init_noise` * C / c_out (the paper: sigma << C / c_out; init_noise=0 is the exact identity on
    non-negative input). Biases start at zero.

    The paper pads the image (by reflection) and runs the module without padding; here every conv is padded
    to keep the size, so the module fits any network that feeds it."""

    def __init__(self, num_classes: int, kind: str = "basic", init_noise: float = 1e-3):
        super().__init__()
        if kind not in CONTEXT_KINDS:
            raise ValueError(f"context module kind must be one of {CONTEXT_KINDS}, got {kind!r}")
        if init_noise < 0:
            raise ValueError(f"init_noise must be non-negative, got {init_noise}")
        widths = LARGE_CONTEXT_WIDTHS if kind == "large" else (1,) * len(LARGE_CONTEXT_WIDTHS)
        chans = [num_classes] + [w * num_classes for w in widths]
        layers: list[nn.Module] = []
        for index, dilation in enumerate(CONTEXT_DILATIONS):
            layers += [nn.Conv2d(chans[index], chans[index + 1], 3, padding=dilation, dilation=dilation),
                       nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(chans[-2], chans[-1], 1))
        self.layers = nn.Sequential(*layers)
        self.kind = kind
        self.num_classes = num_classes
        self.reset_parameters(init_noise)

    @torch.no_grad()
    def reset_parameters(self, init_noise: float = 1e-3) -> None:
        """The identity initialisation described in the class docstring."""
        classes = self.num_classes
        for conv in (m for m in self.layers if isinstance(m, nn.Conv2d)):
            c_out, c_in, k, _ = conv.weight.shape
            scale = classes / c_out
            if init_noise > 0:
                conv.weight.normal_(0.0, init_noise * scale)
            else:
                conv.weight.zero_()
            group_out = torch.arange(c_out) * classes // c_out
            group_in = torch.arange(c_in) * classes // c_in
            same_class = group_out[:, None] == group_in[None, :]
            conv.weight[:, :, k // 2, k // 2][same_class] = scale
            nn.init.zeros_(conv.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


class ASPPv2(nn.Module):
    """DeepLab v2's atrous spatial pyramid pooling: parallel branches on the same features, one per atrous
    rate, each ending in class scores; the scores are summed (the paper's Fig. 4 and its Caffe model's
    fc8_*_c0..c3 fused by an Eltwise sum).

    hidden=None: each branch is one 3x3 atrous conv to the classes (DeepLab-v2 ResNet-101).
    hidden=1024: each branch is fc6 (3x3 atrous, `hidden` channels), ReLU, dropout, fc7 (1x1), ReLU,
    dropout, fc8 (1x1 to the classes): DeepLab-v2 VGG-16's ASPP-L with rates (6, 12, 18, 24).
    Weights start from N(0, 0.01), biases at zero, as the released models' fc8 layers (there fc6 and fc7 of
    the VGG variant start from the ImageNet classifier's fc layers, subsampled; load them to do the same)."""

    def __init__(self, in_chans: int, num_classes: int, rates: Sequence[int] = (6, 12, 18, 24),
                 hidden: int | None = None, dropout: float = 0.5):
        super().__init__()
        if not rates:
            raise ValueError("ASPPv2 needs at least one atrous rate")
        self.branches = nn.ModuleList(self._branch(in_chans, num_classes, rate, hidden, dropout) for rate in rates)
        self.rates = tuple(rates)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, 0.0, 0.01)
                nn.init.zeros_(module.bias)

    @staticmethod
    def _branch(in_chans: int, num_classes: int, rate: int, hidden: int | None, dropout: float) -> nn.Module:
        if hidden is None:
            return nn.Conv2d(in_chans, num_classes, 3, padding=rate, dilation=rate)
        return nn.Sequential(
            nn.Conv2d(in_chans, hidden, 3, padding=rate, dilation=rate), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Conv2d(hidden, hidden, 1), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Conv2d(hidden, num_classes, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return torch.stack([branch(x) for branch in self.branches]).sum(0)


class ASPPPooling(nn.Sequential):
    """ASPP's image-level branch: global average pool, 1x1 conv, BN, ReLU, then spread back over the map.

    Keys as torchvision's (0 pool, 1 conv, 2 bn, 3 relu). In training mode it needs more than one image:
    its batch norm sees one value per image and channel."""

    def __init__(self, in_chans: int, out_chans: int):
        super().__init__(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(in_chans, out_chans, 1, bias=False),
            nn.BatchNorm2d(out_chans),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: Tensor) -> Tensor:
        # Sizes by index, not unpacked from x.shape[-2:]: torch.fx can trace it.
        pooled = super().forward(x)
        return pooled.expand(pooled.shape[0], pooled.shape[1], x.shape[2], x.shape[3])


class ASPP(nn.Module):
    """DeepLab v3's atrous spatial pyramid pooling (section 3.3 of "Rethinking Atrous Convolution for
    Semantic Image Segmentation", Chen et al. 2017): five parallel branches of `out_chans` (256) channels,
    each conv-BN-ReLU: a 1x1 conv, three 3x3 convs at `rates`, and image pooling; concatenated, then a 1x1
    conv-BN-ReLU projection and dropout.

    Rates: (6, 12, 18) at output stride 16, the paper's; doubled, (12, 24, 36), at output stride 8
    (torchvision's DeepLabHead uses those). Key names are torchvision's (`convs.0` 1x1, `convs.1..3` atrous,
    `convs.4` pooling, `project`), so its deeplabv3 checkpoints load."""

    def __init__(self, in_chans: int, rates: Sequence[int] = (6, 12, 18), out_chans: int = 256,
                 dropout: float = 0.5):
        super().__init__()
        branches: list[nn.Module] = [ConvBnAct(in_chans, out_chans, 1)]
        branches += [ConvBnAct(in_chans, out_chans, 3, dilation=rate) for rate in rates]
        branches.append(ASPPPooling(in_chans, out_chans))
        self.convs = nn.ModuleList(branches)
        self.project = nn.Sequential(
            nn.Conv2d(len(branches) * out_chans, out_chans, 1, bias=False),
            nn.BatchNorm2d(out_chans),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
        )
        self.rates = tuple(rates)
        self.out_chans = out_chans

    def forward(self, x: Tensor) -> Tensor:
        return self.project(torch.cat([branch(x) for branch in self.convs], dim=1))


class PyramidPooling(nn.Module):
    """PSPNet's pyramid pooling module (Zhao et al., "Pyramid Scene Parsing Network", CVPR 2017, Fig. 3):
    the feature map is average-pooled to each of `bins` (1x1, 2x2, 3x3, 6x6), each pooled map goes through
    a 1x1 conv to in_chans / len(bins) channels with BN and ReLU (the paper's 1/N reduction), is upsampled
    bilinearly back to the map's size, and all are concatenated with the input: 2 * in_chans channels out
    for four bins (`out_chans`).

    Adaptive pooling gives the bins at any input size (the released model pools its 60x60 map with fixed
    kernels, which is the same at that size). Upsampling aligns corners, as the authors' code (Caffe's
    Interp layer, and align_corners=True in their PyTorch semseg)."""

    def __init__(self, in_chans: int, bins: Sequence[int] = (1, 2, 3, 6), branch_chans: int | None = None):
        super().__init__()
        if not bins:
            raise ValueError("PyramidPooling needs at least one bin size")
        branch_chans = in_chans // len(bins) if branch_chans is None else branch_chans
        self.branches = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(bin_size), ConvBnAct(in_chans, branch_chans, 1)) for bin_size in bins
        )
        self.bins = tuple(bins)
        self.out_chans = in_chans + len(bins) * branch_chans

    def forward(self, x: Tensor) -> Tensor:
        size = x.shape[-2:]
        pooled = [F.interpolate(branch(x), size=size, mode="bilinear", align_corners=True) for branch in self.branches]
        return torch.cat([x, *pooled], dim=1)
