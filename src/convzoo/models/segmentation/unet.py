"""U-Net (Ronneberger, Fischer & Brox 2015): a contracting path of 3x3 convs and 2x2 max pools, doubling the
channels at each of four steps, and a symmetric expanding path of 2x2 up-convolutions that halve them, each
followed by the concatenation of the contracting path's feature map at that scale ("copy and crop") and two
3x3 convs. A 1x1 conv maps the 64 channels to the classes.

`unet` is the network as drawn: unpadded ("valid") convs, so 572x572 in gives 388x388 out and each skip is
centre-cropped to the expanding path's size; training crops the masks to `output_size`. `unet_padded`
pads its convs and adds batch norm, keeping the input's size; that variant is not in the paper.
"""
from __future__ import annotations

import math

import torch
import torch.fx
from torch import Tensor, nn

from ...errors import InputSizeError
from ...layers.conv import ConvBnAct
from ...layers.inception import ConvReLU
from ...registry import Paper, register_model
from ..network import Network
from .base import pad_to_multiple

PAPER = Paper(
    title="U-Net: Convolutional Networks for Biomedical Image Segmentation",
    authors="Olaf Ronneberger, Philipp Fischer, Thomas Brox",
    year=2015, arxiv="1505.04597", venue="MICCAI 2015",
)

WIDTHS = (64, 128, 256, 512, 1024)  # channels at each depth; the last is the bottom of the "U"


def double_conv(in_chans: int, out_chans: int, padded: bool) -> nn.Sequential:
    """Two 3x3 convs with ReLU: unpadded with bias (the paper), or padded with batch norm (unet_padded)."""
    if padded:
        return nn.Sequential(ConvBnAct(in_chans, out_chans, 3), ConvBnAct(out_chans, out_chans, 3))
    return nn.Sequential(ConvReLU(in_chans, out_chans, 3, padding=0), ConvReLU(out_chans, out_chans, 3, padding=0))


def center_crop(x: Tensor, size: tuple[int, int]) -> Tensor:
    """The central `size` window of a feature map: the paper's crop of the contracting path's features,
    which its unpadded convs leave larger than the expanding path's."""
    h, w = x.shape[-2:]
    top, left = (h - size[0]) // 2, (w - size[1]) // 2
    return x[..., top:top + size[0], left:left + size[1]]


class UpStage(nn.Module):
    """One step of the expanding path: a 2x2 stride-2 up-convolution halving the channels, concatenation
    with the (cropped) skip, two 3x3 convs."""

    def __init__(self, in_chans: int, out_chans: int, padded: bool):
        super().__init__()
        self.upconv = nn.ConvTranspose2d(in_chans, out_chans, kernel_size=2, stride=2)
        self.convs = double_conv(2 * out_chans, out_chans, padded)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        x = self.upconv(x)
        return self.convs(torch.cat([center_crop(skip, x.shape[-2:]), x], dim=1))


class UNet(Network):
    """U-Net with `len(widths) - 1` pooling steps.

    Any input size is taken: the unpadded network mirrors the bottom and right of the input up to the next
    size whose every pooled map is even (the paper's "seamless tiling" condition; mirroring is its
    extrapolation of missing context) and crops the output back to `output_size(input)`; the padded
    network zero-pads to a multiple of 2**depth and crops to the input's size.

    Initialisation as the paper: Gaussian weights with std sqrt(2/N), N the inputs of one neuron (fan-in;
    for the 2x2 stride-2 up-convolution one tap per input channel), zero biases."""

    def __init__(self, num_classes: int = 2, in_chans: int = 1, widths: tuple[int, ...] = WIDTHS,
                 padded: bool = False, dropout: float = 0.5):
        super().__init__()
        self.padded = padded
        self.depth = len(widths) - 1
        chans = [in_chans, *widths[:-1]]
        self.encoder = nn.ModuleList(double_conv(cin, cout, padded) for cin, cout in zip(chans, widths[:-1]))
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.bottleneck = double_conv(widths[-2], widths[-1], padded)
        self.dropout = nn.Dropout(dropout)  # "at the end of the contracting path"
        self.decoder = nn.ModuleList(
            UpStage(cin, cout, padded) for cin, cout in zip(widths[:0:-1], widths[-2::-1])
        )
        self.head = nn.Conv2d(widths[0], num_classes, kernel_size=1)
        # Each pair of unpadded 3x3 convs trims 4 pixels at its scale: 2**k at encoder and decoder depth k,
        # 2**depth at the bottom (184 for four pools: 572 -> 388).
        self.border = 0 if padded else 4 * (3 * 2 ** self.depth - 2)
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.ConvTranspose2d):
                nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / module.in_channels))
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def output_size(self, input_hw: tuple[int, int]) -> tuple[int, int]:
        """The (H, W) of the prediction for an input of `input_hw`: 184 pixels less for the unpadded net."""
        return input_hw[0] - self.border, input_hw[1] - self.border

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        image = x
        x = unet_input(x, self.padded, self.depth, self.border)
        skips = []
        for stage in self.encoder:
            x = stage(x)
            skips.append(x)
            x = self.pool(x)
        x = self.dropout(self.bottleneck(x))
        for up, skip in zip(self.decoder, reversed(skips)):
            x = up(x, skip)
        return {"out": unet_output(self.head(x), image, self.border)}


def is_tile(size: int, depth: int) -> bool:
    """Every map entering a 2x2 pool has an even size, so pooling loses no row and the up-convolutions land
    exactly on the cropped skips."""
    for _ in range(depth):
        size -= 4
        if size % 2:
            return False
        size //= 2
    return True


def tile_size(size: int, depth: int) -> int:
    """The smallest tile size (572, 588, ... for four pools; every 16) at least `size`."""
    while not is_tile(size, depth):
        size += 1
    return size


def unet_input(x: Tensor, padded: bool, depth: int, border: int) -> Tensor:
    """The input as the network takes it: zero-padded to a multiple of 2**depth (padded convs), or mirrored at
    the bottom and right up to the next tile size (the paper's), after checking something is left to predict."""
    if x.shape[-2] - border < 1 or x.shape[-1] - border < 1:
        raise InputSizeError(
            f"U-Net's unpadded convs trim {border} pixels: an input of {x.shape[-2]}x{x.shape[-1]} "
            f"leaves no output; it needs at least {border + 1}x{border + 1} pixels."
        )
    if padded:
        return pad_to_multiple(x, 2 ** depth)
    tile_h, tile_w = tile_size(x.shape[-2], depth), tile_size(x.shape[-1], depth)
    return nn.functional.pad(x, (0, tile_w - x.shape[-1], 0, tile_h - x.shape[-2]), mode="reflect")


def unet_output(out: Tensor, image: Tensor, border: int) -> Tensor:
    """The prediction cropped to output_size(image): the image's size less the trimmed border."""
    return out[..., :image.shape[-2] - border, :image.shape[-1] - border]


# Leaves for torch.fx: they read sizes off tensors.
torch.fx.wrap("unet_input")
torch.fx.wrap("unet_output")


@register_model(
    family="unet", task="segmentation", paper=PAPER, input_size=(1, 572, 572), min_input_size=(185, 185),
    params=31_030_658, num_classes=2, macs=150_428_424_448,
    reported={"isbi2015_phc_u373_mean_iou": 92.03, "isbi2015_dic_hela_mean_iou": 77.56},
    notes="As Fig. 1: unpadded convs, 572 in -> 388 out (output_size()), skips centre-cropped, dropout 0.5 on "
          "the bottom of the U, no ReLU after the up-convs (the text); other sizes are mirror-padded to the "
          "next even tiling and the output cropped. Reported: ISBI cell tracking 2015 IoU (Table 2).",
)
def unet(**kwargs) -> UNet:
    return UNet(**kwargs)


@register_model(
    family="unet", task="segmentation", paper=PAPER, input_size=(1, 512, 512), min_input_size=(1, 1),
    params=31_036_546, num_classes=2, macs=192_384_335_872,
    notes="Not in the paper: padded 3x3 convs without bias, each followed by batch norm, so the output keeps "
          "the input's size (inputs zero-padded to a multiple of 16 and cropped back); the layout of most "
          "PyTorch U-Nets. Count: unet's minus the 3x3 conv biases plus two BN parameters per channel.",
)
def unet_padded(**kwargs) -> UNet:
    return UNet(padded=True, **kwargs)
