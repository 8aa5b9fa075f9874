"""SE-ResNet and SE-ResNeXt (Hu et al. 2017, "Squeeze-and-Excitation Networks", arXiv 1709.01507).

An SE network is its base network with a squeeze-and-excitation module (layers/squeeze_excite.py, r = 16)
on every residual branch, after the branch's last BN and before the addition with the shortcut (the paper's
Fig. 3). So there is no SENet class here: each builder is the `ResNet` of resnet.py with
`attn_layer=SqueezeExcite`, and the checkpoint keys are torchvision's ResNet keys plus `layerN.i.se.fc1/fc2`,
the key layout of timm's seresnet/seresnext (as read from timm's resnet.py and squeeze_excite.py).

Where the stride goes, as in the authors' released Caffe models (github.com/hujie-frank/SENet):
  SE-ResNet   on the bottleneck's first 1x1 (the original ResNet's placement): `stride_in_1x1=True`;
              this gives the paper's 3.87 GFLOPs for SE-ResNet-50, where torchvision's 3x3 placement
              gives about 4.1. `stride_in_1x1=False` gives timm's seresnet layout.
  SE-ResNeXt  on the grouped 3x3, as ResNeXt itself (4.25 GFLOPs in the paper; about 3.8 the other way).
The placement changes no parameter. Every builder also takes `reduction` (the paper's r) and the ResNet
keyword arguments (zero_init_residual, drop_path, drop_path_mode, replace_stride_with_dilation).
"""
from __future__ import annotations

from functools import partial
from typing import Sequence

from ...layers.residual import Bottleneck
from ...layers.squeeze_excite import SqueezeExcite
from ...registry import Paper, register_model
from .resnet import ResNet

SENET_PAPER = Paper(
    title="Squeeze-and-Excitation Networks",
    authors="Jie Hu, Li Shen, Samuel Albanie, Gang Sun, Enhua Wu",
    year=2017, arxiv="1709.01507", venue="CVPR 2018",
)


def se_resnet(layers: Sequence[int], reduction: int = 16, **kwargs) -> ResNet:
    """A bottleneck ResNet with squeeze-and-excitation (reduction r) on every residual branch."""
    return ResNet(Bottleneck, layers, attn_layer=partial(SqueezeExcite, reduction=reduction), **kwargs)


def _card(params: int, macs: int, top1: float, top5: float, notes: str) -> dict:
    # Global average pooling and padded convs/pools take any input down to 1x1 (measured on the meta device,
    # with either stride placement).
    return dict(family="senet", paper=SENET_PAPER, input_size=(3, 224, 224), min_input_size=(1, 1),
                params=params, macs=macs, notes=notes,
                reported={"imagenet_top1_error": top1, "imagenet_top5_error": top5})


_SE_RESNET = ("SE (r=16) before each addition and the stride on the bottleneck's first 1x1, as the authors' "
              "Caffe models (timm's seresnet strides the 3x3: stride_in_1x1=False); torchvision has no SE nets, "
              "Cadene's port renames modules (layer0, se_module, last_linear). Reported: single 224 crop, Table 2.")
_SE_RESNEXT = ("SE (r=16) before each addition, stride on the grouped 3x3 as the authors' models and timm's "
               "seresnext; torchvision has no SE nets, Cadene's port renames modules (layer0, se_module, "
               "last_linear). Reported: single 224 crop, Table 2.")
# The issue gives the 50-layer counts; the others are the base network's count plus each block's SE.
_COUNTED = " Count checked as {base} plus 2C*C/16 + C/16 + C per block (C: the block's output channels)."


@register_model(**_card(28_088_024, 3_860_488_192, 23.29, 6.62, _SE_RESNET))
def se_resnet50(*, stride_in_1x1: bool = True, **kwargs) -> ResNet:
    return se_resnet([3, 4, 6, 3], stride_in_1x1=stride_in_1x1, **kwargs)


@register_model(**_card(49_326_872, 7_574_937_600, 22.38, 6.07,
                        _SE_RESNET + _COUNTED.format(base="resnet101's 44,549,160")))
def se_resnet101(*, stride_in_1x1: bool = True, **kwargs) -> ResNet:
    return se_resnet([3, 4, 23, 3], stride_in_1x1=stride_in_1x1, **kwargs)


@register_model(**_card(66_821_848, 11_288_993_792, 21.57, 5.73,
                        _SE_RESNET + _COUNTED.format(base="resnet152's 60,192,808")))
def se_resnet152(*, stride_in_1x1: bool = True, **kwargs) -> ResNet:
    return se_resnet([3, 8, 36, 3], stride_in_1x1=stride_in_1x1, **kwargs)


@register_model(**_card(27_559_896, 4_232_994_816, 21.10, 5.49, _SE_RESNEXT))
def se_resnext50_32x4d(**kwargs) -> ResNet:
    return se_resnet([3, 4, 6, 3], groups=32, width_per_group=4, **kwargs)


@register_model(**_card(48_955_416, 7_974_739_968, 20.70, 5.01,
                        _SE_RESNEXT + _COUNTED.format(base="timm's resnext101_32x4d 44,177,704")))
def se_resnext101_32x4d(**kwargs) -> ResNet:
    return se_resnet([3, 4, 23, 3], groups=32, width_per_group=4, **kwargs)
