"""Segmentation test protocols: multi-scale and flip averaging, sliding-window inference.

The papers report their best figures this way, not from one forward pass:
- DeepLab v3 (Chen et al. 2017, arXiv:1706.05587, section 4.3 "Inference strategy"): the image at scales
  {0.5, 0.75, 1.0, 1.25, 1.5, 1.75} and mirrored, the softmax averaged.
- PSPNet (Zhao et al. 2017, arXiv:1612.01105, section 5.2): "multiple scales {0.5, 0.75, 1.0, 1.25, 1.5,
  1.75}" with flipping, each scaled image labelled by sliding a window of the training crop (473) over it
  in steps of 2/3 of the crop (the authors' released code), the overlapping tiles' softmax averaged.
`--slide CROP,STRIDE` alone labels an image larger than the training crop tile by tile.

Every prediction is brought back to the image's size (bilinear on the probabilities) before averaging.
Networks whose output is smaller than their input (U-Net with valid convolutions) are refused: their output
covers only the centre, which neither averaging nor tiling can place.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import InputSizeError
from ..protocol import main_output

DEEPLAB_SCALES = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)


@dataclass(frozen=True)
class EvalProtocol:
    scales: tuple[float, ...] = (1.0,)
    flip: bool = False
    slide: tuple[int, int] | None = None        # (crop, stride) in pixels
    slide_crop_fraction: float | None = None    # PSPNet's: the crop is the network's input size, the stride 2/3

    def __post_init__(self) -> None:
        if not self.scales or any(s <= 0 for s in self.scales):
            raise ValueError(f"--scales must be positive factors such as 0.5,1,1.5; got {self.scales}")
        if self.slide is not None and not 0 < self.slide[1] <= self.slide[0]:
            raise ValueError(f"--slide CROP,STRIDE needs 0 < STRIDE <= CROP, got {self.slide}")

    @property
    def single(self) -> bool:
        return self.scales == (1.0,) and not self.flip and self.slide is None and self.slide_crop_fraction is None

    def describe(self) -> str:
        parts = [f"scales {','.join(f'{s:g}' for s in self.scales)}"] if self.scales != (1.0,) else []
        parts += ["flip"] if self.flip else []
        if self.slide is not None:
            parts.append(f"slide {self.slide[0]}/{self.slide[1]}")
        if self.slide_crop_fraction is not None:
            parts.append(f"slide input-size crops, stride {self.slide_crop_fraction:.2g} x crop")
        return ", ".join(parts) or "single scale"


TEST_PROTOCOLS = {
    "deeplabv3": EvalProtocol(scales=DEEPLAB_SCALES, flip=True),
    "pspnet": EvalProtocol(scales=DEEPLAB_SCALES, flip=True, slide_crop_fraction=2 / 3),
}


def make_protocol(preset: str | None = None, scales: tuple[float, ...] | None = None, flip: bool = False,
                  slide: tuple[int, int] | None = None) -> EvalProtocol:
    """A named preset (TEST_PROTOCOLS), or the given scales, flip and window; flags given with a preset are
    refused (a preset is the paper's protocol)."""
    if preset is not None:
        if preset not in TEST_PROTOCOLS:
            raise ValueError(f"unknown test protocol {preset!r}; choose from {', '.join(TEST_PROTOCOLS)}")
        if scales is not None or flip or slide is not None:
            raise ValueError(f"--protocol {preset} is the paper's protocol; give it alone, or --scales/--flip/--slide "
                             f"without it")
        return TEST_PROTOCOLS[preset]
    return EvalProtocol(scales=tuple(scales or (1.0,)), flip=flip, slide=slide)


def _probabilities(model: nn.Module, images: Tensor) -> Tensor:
    logits = main_output(model(images))
    if logits.shape[-2:] != images.shape[-2:]:
        raise InputSizeError(f"multi-scale, flip and sliding-window testing need a network whose output covers its "
                             f"input; this one maps {tuple(images.shape[-2:])} to {tuple(logits.shape[-2:])} "
                             f"(valid convolutions): evaluate it at a single scale")
    return logits.float().softmax(dim=1)


def slide_probabilities(model: nn.Module, images: Tensor, crop: int, stride: int) -> Tensor:
    """Label an image tile by tile: crop x crop windows every `stride` pixels (the last one flush with the
    edge), each pixel's softmax averaged over the windows that cover it. Images smaller than a window are
    padded with zeros (the mean colour after normalisation) and cropped back."""
    height, width = images.shape[-2:]
    padded = F.pad(images, (0, max(crop - width, 0), 0, max(crop - height, 0)))
    full_h, full_w = padded.shape[-2:]
    tops = sorted({*range(0, full_h - crop + 1, stride), full_h - crop})
    lefts = sorted({*range(0, full_w - crop + 1, stride), full_w - crop})
    total, count = None, torch.zeros(1, 1, full_h, full_w, device=images.device)
    for top in tops:
        for left in lefts:
            probs = _probabilities(model, padded[..., top:top + crop, left:left + crop])
            if total is None:
                total = torch.zeros(*probs.shape[:2], full_h, full_w, device=images.device)
            total[..., top:top + crop, left:left + crop] += probs
            count[..., top:top + crop, left:left + crop] += 1
    return (total / count)[..., :height, :width]


@torch.no_grad()
def protocol_probabilities(model: nn.Module, images: Tensor, protocol: EvalProtocol,
                           input_side: int | None = None) -> Tensor:
    """The softmax (N x classes x H x W) of `images` under `protocol`, averaged over its scales and flips.
    `input_side`: the network's training crop, for a protocol whose window is a fraction of it (PSPNet)."""
    height, width = images.shape[-2:]
    window = protocol.slide
    if protocol.slide_crop_fraction is not None:
        crop = input_side or max(height, width)
        window = (crop, max(1, round(crop * protocol.slide_crop_fraction)))
    predict: Callable[[Tensor], Tensor] = (
        (lambda x: slide_probabilities(model, x, *window)) if window is not None else
        (lambda x: _probabilities(model, x)))
    total, views = 0.0, 0
    for scale in protocol.scales:
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
        scaled = images if size == (height, width) else F.interpolate(images, size=size, mode="bilinear",
                                                                      align_corners=False)
        for mirrored in ((False, True) if protocol.flip else (False,)):
            probs = predict(scaled.flip(-1) if mirrored else scaled)
            probs = probs.flip(-1) if mirrored else probs
            if probs.shape[-2:] != (height, width):
                probs = F.interpolate(probs, size=(height, width), mode="bilinear", align_corners=False)
            total, views = total + probs, views + 1
    return total / views
