"""What the segmentation networks here share: padding an input to a size its strides divide (the prediction is
cropped back), bilinear upsampling of score maps, the output contract, and torchvision's encoder + classifier
layout with its FCN head (used by fcn_resnet*, deeplabv3_* and pspnet_*).

The contract, torchvision's: in every mode `model(x)` returns a dict, {"out": logits} with logits
(N, num_classes, H, W) at the input's size, and "aux": the auxiliary head's logits where one is built, so the
training loop can weight the auxiliary loss (`protocol.main_output` reads "out").
"""
from __future__ import annotations

from typing import Callable, Dict, Optional, Sequence

import torch
import torch.fx
import torch.nn.functional as F
from torch import Tensor, nn

from ..features import apply_multi_grid
from ..network import Network
from .backbones import create_backbone

SegmentationOutput = Dict[str, Tensor]


def pad_to_multiple(x: Tensor, multiple: int, mode: str = "constant") -> Tensor:
    """Pad the bottom and right of a (N, C, H, W) batch so H and W become multiples of `multiple`.

    Only the bottom and right grow, so pixel (i, j) stays at (i, j) and `x[..., :h, :w]` undoes the padding.
    `mode` is F.pad's: "constant" (zeros, as a padded conv sees the border) or "reflect" (mirroring, as
    Dilation8 extends its input). Networks whose skips or decoders need sizes their stride divides use it
    (unet_padded, deeplabv3plus, dilated8); those that upsample their scores to the input's size need not."""
    h, w = x.shape[-2:]
    pad_h, pad_w = -h % multiple, -w % multiple
    if pad_h == 0 and pad_w == 0:
        return x
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)


def upsample_to(x: Tensor, size: tuple[int, int] | torch.Size) -> Tensor:
    """Bilinear resize of score maps to `size`, with torchvision's align_corners=False."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


def crop_to(x: Tensor, reference: Tensor) -> Tensor:
    """The top-left corner of `x` of `reference`'s height and width: undoes pad_to_multiple."""
    return x[..., :reference.shape[-2], :reference.shape[-1]]


# Leaves for torch.fx: these read sizes off tensors, which a symbolic trace cannot; traced networks call
# them as single nodes, so torch.fx (and torchvision's create_feature_extractor) can trace every network.
torch.fx.wrap("pad_to_multiple")
torch.fx.wrap("upsample_to")
torch.fx.wrap("crop_to")


def segmentation_output(out: Tensor, aux: Optional[Tensor] = None) -> SegmentationOutput:
    """{"out": logits}, with "aux" where the network has an auxiliary head (torchvision's contract)."""
    if aux is None:
        return {"out": out}
    return {"out": out, "aux": aux}


class SegmentationModel(Network):
    """An encoder, a classifier on its last feature map, and optionally an auxiliary classifier on the one
    before: torchvision's _SimpleSegmentationModel layout (`backbone`, `classifier`, `aux_classifier`), so
    its checkpoints load with strict=True. Both predictions are bilinearly upsampled to the input's size.

    `backbone` returns a list of feature maps (models/features.py): the classifier reads the last, the
    auxiliary classifier the one before. The auxiliary head runs in every mode, as torchvision's;
    `aux_weight` is the weight of its loss (0.5 in torchvision's reference training, 0.4 in PSPNet)."""

    def __init__(self, backbone: nn.Module, classifier: nn.Module, aux_classifier: nn.Module | None = None,
                 aux_weight: float = 0.5):
        super().__init__()
        self.backbone = backbone
        self.classifier = classifier
        self.aux_classifier = aux_classifier
        self.aux_weight = aux_weight

    def forward(self, x: Tensor) -> SegmentationOutput:
        size = x.shape[-2:]
        features = self.backbone(x)
        out = upsample_to(self.classifier(features[-1]), size)
        if self.aux_classifier is None:
            return {"out": out}
        return {"out": out, "aux": upsample_to(self.aux_classifier(features[-2]), size)}


class FCNHead(nn.Sequential):
    """torchvision's FCN head: 3x3 conv to a quarter of the channels, BN, ReLU, dropout 0.1, 1x1 conv to the
    classes. A flat Sequential, so its keys are torchvision's (`0.weight`, `1.running_mean`, `4.bias`)."""

    def __init__(self, in_chans: int, num_classes: int):
        inner = in_chans // 4
        super().__init__(
            nn.Conv2d(in_chans, inner, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(inner),
            nn.ReLU(),
            nn.Dropout(0.1),
            nn.Conv2d(inner, num_classes, kernel_size=1),
        )


def resnet_segmenter(backbone_name: str, classifier: nn.Module, num_classes: int, in_chans: int,
                     aux_loss: bool, aux_weight: float = 0.5, output_stride: int = 8,
                     multi_grid: Sequence[int] | None = None, **backbone_kwargs) -> SegmentationModel:
    """A torchvision-layout segmentation network on a dilated ResNet: layer4 feeds `classifier`, layer3 an
    FCNHead as the auxiliary classifier when `aux_loss`. `multi_grid` sets layer4's unit rates as DeepLab v3
    (backbones.apply_multi_grid). Other keyword arguments go to the ResNet."""
    backbone = create_backbone(backbone_name, out_indices=(3, 4), output_stride=output_stride,
                               in_chans=in_chans, **backbone_kwargs)
    if multi_grid is not None:
        apply_multi_grid(backbone.layer4, multi_grid)
    aux_classifier = FCNHead(backbone.channels[0], num_classes) if aux_loss else None
    return SegmentationModel(backbone, classifier, aux_classifier, aux_weight)


def builder_for_backbone(name: str, builders: dict[str, Callable[..., nn.Module]],
                         backbone: str) -> Callable[..., nn.Module]:
    """The builder of network `name` on `backbone` (a bare name such as `pspnet` taking `backbone=`), or an
    error listing the backbones the paper used."""
    if backbone not in builders:
        raise ValueError(f"{name} is built on {' or '.join(map(repr, builders))} (the paper's backbones), "
                         f"not {backbone!r}; for another encoder use create_backbone")
    return builders[backbone]
