"""ResNet for ImageNet, and the families that keep its skeleton: pre-activation ResNet, Wide ResNet, ResNeXt.

One network class, `ResNet`: a 7x7/2 conv stem and 3x3/2 max pool, four stages of residual blocks at 64,
128, 256, 512 planes (stride 2 from the second stage on), global average pooling and one linear layer. The
builders only choose the block (layers/residual.py), the blocks per stage, and the bottleneck width.
Module names are torchvision's (conv1, bn1, relu, maxpool, layer1..layer4, avgpool, fc), so its checkpoints
load with strict=True. The CIFAR networks (3x3 stem, three stages, no max pool) are in resnet_cifar.py.

Every builder accepts, besides num_classes and in_chans:
  zero_init_residual  start every block as the identity (last BN of each branch at zero)
  drop_path           stochastic depth: drop rate of the last block (1 - p_L), decaying linearly to the first
  drop_path_mode      "batch" (the paper's: one coin per mini-batch, test-time scaling) or "sample"
  stride_in_1x1       bottleneck nets: stride the first 1x1 (the paper) instead of the 3x3 (torchvision)
  replace_stride_with_dilation  three booleans for layer2..4: keep the resolution, dilate instead
  attn_layer          attn_layer(channels) adds a module (e.g. squeeze-excitation) on every residual branch
and timm's global_pool ("avg", "max", "avgmax", "" with num_classes=0), drop_rate (dropout before fc) and
drop_path_rate (timm's name for drop_path).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ...layers.drop_path import DropPath, drop_path_schedule
from ...layers.init import init_he_fan_out_
from ...layers.residual import (AttnLayer, BasicBlock, Bottleneck, PreActBasicBlock, PreActBottleneck,
                                ResidualBlock)
from ...protocol import Stage
from ...registry import Paper, register_model
from ..network import ClassifierNetwork, resolve_drop_path

RESNET_PAPER = Paper(
    title="Deep Residual Learning for Image Recognition",
    authors="Kaiming He, Xiangyu Zhang, Shaoqing Ren, Jian Sun",
    year=2015, arxiv="1512.03385", venue="CVPR 2016",
)
PREACT_PAPER = Paper(
    title="Identity Mappings in Deep Residual Networks",
    authors="Kaiming He, Xiangyu Zhang, Shaoqing Ren, Jian Sun",
    year=2016, arxiv="1603.05027", venue="ECCV 2016",
)
WIDE_RESNET_PAPER = Paper(
    title="Wide Residual Networks",
    authors="Sergey Zagoruyko, Nikos Komodakis",
    year=2016, arxiv="1605.07146", venue="BMVC 2016",
)
RESNEXT_PAPER = Paper(
    title="Aggregated Residual Transformations for Deep Neural Networks",
    authors="Saining Xie, Ross Girshick, Piotr Dollar, Zhuowen Tu, Kaiming He",
    year=2016, arxiv="1611.05431", venue="CVPR 2017",
)

STAGE_PLANES = (64, 128, 256, 512)


def init_resnet_weights(model: nn.Module, zero_init_residual: bool = False) -> None:
    """He initialisation (normal, fan_out, as the papers' Torch code and torchvision), BN as the identity.

    zero_init_residual zeroes the last layer of each residual branch so every block starts as the identity
    (Goyal et al. 2017, "Accurate, Large Minibatch SGD")."""
    init_he_fan_out_(model, linear_std=None)
    if zero_init_residual:
        for module in model.modules():
            if isinstance(module, ResidualBlock):
                module.zero_init_last()


class ResNet(ClassifierNetwork):
    """The ImageNet ResNet skeleton with any residual block.

    With a pre-activation block (He et al. 2016) three things change, as in the paper's code (fb.resnet.torch
    preresnet.lua): projection shortcuts are a bare 1x1 conv, the first block skips its input BN-ReLU because
    the stem already ends in one, and a final BN-ReLU (`final_bn`, `relu`) follows the last addition."""

    def __init__(self, block: type[ResidualBlock], layers: Sequence[int], num_classes: int = 1000,
                 in_chans: int = 3, *, groups: int = 1, width_per_group: int = 64, stride_in_1x1: bool = False,
                 replace_stride_with_dilation: Sequence[bool] = (False, False, False),
                 zero_init_residual: bool = False, attn_layer: AttnLayer | None = None,
                 drop_path: float = 0.0, drop_path_mode: str = "batch", global_pool: str = "avg",
                 drop_rate: float = 0.0, drop_path_rate: float | None = None):
        super().__init__()
        drop_path = resolve_drop_path("ResNet", drop_path_rate, drop_path)
        self._head_settings(num_classes, global_pool, drop_rate)
        if len(layers) != 4 or len(replace_stride_with_dilation) != 3:
            raise ValueError("ResNet takes four block counts and three replace_stride_with_dilation flags, got "
                             f"{list(layers)} and {list(replace_stride_with_dilation)}")
        if stride_in_1x1 and not issubclass(block, Bottleneck):
            raise ValueError(f"stride_in_1x1 applies to Bottleneck blocks only, not {block.__name__}")
        self.block = block
        self.in_planes = 64
        self.dilation = 1
        self.block_args = dict(groups=groups, base_width=width_per_group, attn_layer=attn_layer)
        if stride_in_1x1:
            self.block_args["stride_in_1x1"] = True

        self.conv1 = nn.Conv2d(in_chans, self.in_planes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.in_planes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        drop_paths = drop_path_schedule(drop_path, sum(layers), drop_path_mode)
        stages = []
        self.stage_reductions = [2, 4]  # the stem's relu, layer1 (after the max pool)
        for stage, (planes, num_blocks) in enumerate(zip(STAGE_PLANES, layers)):
            first = sum(layers[:stage])
            stages.append(self._make_layer(
                planes, num_blocks, stride=1 if stage == 0 else 2,
                dilate=stage > 0 and replace_stride_with_dilation[stage - 1],
                drop_paths=drop_paths[first:first + num_blocks],
                follows_stem=stage == 0,
            ))
            if stage > 0:
                dilated = replace_stride_with_dilation[stage - 1]
                self.stage_reductions.append(self.stage_reductions[-1] * (1 if dilated else 2))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.num_features = self.in_planes
        self.final_bn = nn.BatchNorm2d(self.num_features) if block.pre_activation else None
        self.avgpool = self._pool()
        self.fc = self._new_classifier(num_classes)
        init_resnet_weights(self, zero_init_residual)

    def _make_layer(self, planes: int, num_blocks: int, stride: int, dilate: bool,
                    drop_paths: list[DropPath | None], follows_stem: bool) -> nn.Sequential:
        block = self.block
        first_dilation = self.dilation
        if dilate:
            self.dilation *= stride
            stride = 1
        out_chans = planes * block.expansion
        downsample = None
        if stride != 1 or self.in_planes != out_chans:
            downsample = block.projection(self.in_planes, out_chans, stride)
        first_args = dict(self.block_args)
        if block.pre_activation and follows_stem:
            first_args["activate_input"] = False  # the stem's bn1 + relu already activated the input
        blocks = [block(self.in_planes, planes, stride, downsample, dilation=first_dilation,
                        drop_path=drop_paths[0], **first_args)]
        self.in_planes = out_chans
        for drop in drop_paths[1:]:
            blocks.append(block(self.in_planes, planes, dilation=self.dilation, drop_path=drop, **self.block_args))
        return nn.Sequential(*blocks)

    def feature_stages(self) -> list[Stage]:
        widths = [64] + [planes * self.block.expansion for planes in STAGE_PLANES]
        steps = [("conv1", "bn1", "relu"), ("maxpool", "layer1"), ("layer2",), ("layer3",), ("layer4",)]
        if self.final_bn is not None:  # pre-activation: the last BN-ReLU ends the last stage
            steps[-1] += ("final_bn", "relu")
        return [Stage(s, c, r) for s, c, r in zip(steps, widths, self.stage_reductions)]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        if self.grad_checkpointing and not torch.jit.is_scripting():
            x = self.run_stages([self.layer1, self.layer2, self.layer3, self.layer4], x)
        else:
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        if self.final_bn is not None:
            x = self.relu(self.final_bn(x))
        return x


def _imagenet_card(paper: Paper, params: int, macs: int, reported: dict[str, float], notes: str) -> dict:
    # Global average pooling and padded convs/pools take any input down to 1x1 (measured on the meta device).
    return dict(family="resnet", paper=paper, input_size=(3, 224, 224), min_input_size=(1, 1), params=params,
                macs=macs, reported=reported, notes=notes)


_V15 = ("torchvision's layout (ResNet v1.5: stride on the bottleneck's 3x3; stride_in_1x1=True restores the "
        "paper's 1x1 stride); projection shortcuts only where the shape changes (the paper's option B).")
_TEN_CROP = " Reported: 10-crop validation error, the paper's Table {table}."


@register_model(**_imagenet_card(
    RESNET_PAPER, 11_689_512, 1_814_073_344, {"imagenet_top1_error": 27.88},
    "Same as torchvision's resnet18; projection shortcuts where the shape changes (option B)."
    + _TEN_CROP.format(table=2)))
def resnet18(**kwargs) -> ResNet:
    return ResNet(BasicBlock, [2, 2, 2, 2], **kwargs)


@register_model(**_imagenet_card(
    RESNET_PAPER, 21_797_672, 3_663_761_408, {"imagenet_top1_error": 24.52, "imagenet_top5_error": 7.46},
    "Same as torchvision's resnet34; projection shortcuts where the shape changes (option B)."
    + _TEN_CROP.format(table="3 (ResNet-34 B)")))
def resnet34(**kwargs) -> ResNet:
    return ResNet(BasicBlock, [3, 4, 6, 3], **kwargs)


@register_model(**_imagenet_card(
    RESNET_PAPER, 25_557_032, 4_089_184_256, {"imagenet_top1_error": 22.85, "imagenet_top5_error": 6.71},
    _V15 + " 3.86 GMACs with the paper's stride placement." + _TEN_CROP.format(table=3)))
def resnet50(**kwargs) -> ResNet:
    return ResNet(Bottleneck, [3, 4, 6, 3], **kwargs)


@register_model(**_imagenet_card(
    RESNET_PAPER, 44_549_160, 7_801_405_440, {"imagenet_top1_error": 21.75, "imagenet_top5_error": 6.05},
    _V15 + _TEN_CROP.format(table=3)))
def resnet101(**kwargs) -> ResNet:
    return ResNet(Bottleneck, [3, 4, 23, 3], **kwargs)


@register_model(**_imagenet_card(
    RESNET_PAPER, 60_192_808, 11_513_626_624, {"imagenet_top1_error": 21.43, "imagenet_top5_error": 5.71},
    _V15 + _TEN_CROP.format(table=3)))
def resnet152(**kwargs) -> ResNet:
    return ResNet(Bottleneck, [3, 8, 36, 3], **kwargs)


_PREACT = ("BN-ReLU before every conv as the paper's code (fb.resnet.torch preresnet.lua): conv-BN-ReLU stem, "
           "bare 1x1-conv projections, a final BN-ReLU (final_bn) before pooling; count computed from that "
           "layout (tests derive it from torchvision's ResNet count). Not in torchvision; no ImageNet error "
           "is recorded here (the paper trains only ResNet-152/200 on ImageNet).")


@register_model(**_imagenet_card(PREACT_PAPER, 11_687_720, 1_814_073_344, {}, _PREACT))
def preact_resnet18(**kwargs) -> ResNet:
    return ResNet(PreActBasicBlock, [2, 2, 2, 2], **kwargs)


@register_model(**_imagenet_card(PREACT_PAPER, 21_795_880, 3_663_761_408, {}, _PREACT))
def preact_resnet34(**kwargs) -> ResNet:
    return ResNet(PreActBasicBlock, [3, 4, 6, 3], **kwargs)


@register_model(**_imagenet_card(PREACT_PAPER, 25_549_352, 4_089_184_256, {}, _PREACT))
def preact_resnet50(**kwargs) -> ResNet:
    return ResNet(PreActBottleneck, [3, 4, 6, 3], **kwargs)


@register_model(**_imagenet_card(PREACT_PAPER, 44_541_480, 7_801_405_440, {}, _PREACT))
def preact_resnet101(**kwargs) -> ResNet:
    return ResNet(PreActBottleneck, [3, 4, 23, 3], **kwargs)


@register_model(**_imagenet_card(PREACT_PAPER, 60_185_128, 11_513_626_624, {}, _PREACT))
def preact_resnet152(**kwargs) -> ResNet:
    return ResNet(PreActBottleneck, [3, 8, 36, 3], **kwargs)


@register_model(**_imagenet_card(
    WIDE_RESNET_PAPER, 68_883_240, 11_398_021_120, {"imagenet_top1_error": 21.9, "imagenet_top5_error": 5.79},
    "WRN-50-2-bottleneck: ResNet-50 with the bottleneck's inner width doubled (width_per_group=128), "
    "post-activation as torchvision's wide_resnet50_2. Reported: single crop (the authors' repository)."))
def wide_resnet50_2(**kwargs) -> ResNet:
    return ResNet(Bottleneck, [3, 4, 6, 3], width_per_group=128, **kwargs)


@register_model(**_imagenet_card(
    WIDE_RESNET_PAPER, 126_886_696, 22_753_050_624, {},
    "ResNet-101 with the bottleneck's inner width doubled, as torchvision's wide_resnet101_2; "
    "the paper trains only WRN-50-2 on ImageNet."))
def wide_resnet101_2(**kwargs) -> ResNet:
    return ResNet(Bottleneck, [3, 4, 23, 3], width_per_group=128, **kwargs)


_RESNEXT = ("Cardinality as one grouped 3x3 conv (the paper's form (c)), torchvision's layout and stride "
            "placement.")


@register_model(**_imagenet_card(
    RESNEXT_PAPER, 25_028_904, 4_230_479_872, {"imagenet_top1_error": 22.2},
    _RESNEXT + " Reported: 224x224 single crop."))
def resnext50_32x4d(**kwargs) -> ResNet:
    return ResNet(Bottleneck, [3, 4, 6, 3], groups=32, width_per_group=4, **kwargs)


@register_model(**_imagenet_card(
    RESNEXT_PAPER, 88_791_336, 16_414_015_488, {},
    _RESNEXT + " The 32x8d variant is torchvision's; the paper trains 32x4d and 64x4d ResNeXt-101."))
def resnext101_32x8d(**kwargs) -> ResNet:
    return ResNet(Bottleneck, [3, 4, 23, 3], groups=32, width_per_group=8, **kwargs)


@register_model(**_imagenet_card(
    RESNEXT_PAPER, 83_455_272, 15_460_270_080, {"imagenet_top1_error": 20.4, "imagenet_top5_error": 5.3},
    _RESNEXT + " Reported: 224x224 single crop."))
def resnext101_64x4d(**kwargs) -> ResNet:
    return ResNet(Bottleneck, [3, 4, 23, 3], groups=64, width_per_group=4, **kwargs)
