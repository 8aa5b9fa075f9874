"""MobileNet v1 (Howard et al. 2017) and MobileNetV2 (Sandler et al. 2018).

v1 is a plain stack of depthwise separable convolutions (Table 1 of its paper); v2 stacks inverted residual
blocks with linear bottlenecks in torchvision's layout (`features`, `classifier`), so torchvision's
mobilenet_v2 checkpoint loads with strict=True.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from ...layers.conv import ConvBnAct, DepthwiseSeparableConv
from ...layers.init import init_he_fan_out_
from ...layers.inverted_residual import InvertedResidual
from ...registry import Paper, register_model
from ..features import SequentialBody
from ..network import ClassifierNetwork, resolve_drop_rate

MOBILENET_V1_PAPER = Paper(
    title="MobileNets: Efficient Convolutional Neural Networks for Mobile Vision Applications",
    authors="Andrew G. Howard, Menglong Zhu, Bo Chen, Dmitry Kalenichenko, Weijun Wang, Tobias Weyand, "
            "Marco Andreetto, Hartwig Adam",
    year=2017, arxiv="1704.04861",
)
MOBILENET_V2_PAPER = Paper(
    title="MobileNetV2: Inverted Residuals and Linear Bottlenecks",
    authors="Mark Sandler, Andrew Howard, Menglong Zhu, Andrey Zhmoginov, Liang-Chieh Chen",
    year=2018, arxiv="1801.04381", venue="CVPR 2018",
)

# Table 1 of the v1 paper after the 3x3 stem of 32 (stride 2): (output channels, stride) of each depthwise
# separable layer. The paper prints the last depthwise conv as "s2" on a 7x7 input that stays 7x7; it is
# stride 1, as in the authors' TF-slim code.
MOBILENET_V1_LAYERS: tuple[tuple[int, int], ...] = (
    (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1),
    (1024, 2), (1024, 1),
)
MOBILENET_V1_STEM = 32

# Table 2 of the v2 paper: expansion factor t, output channels c, repeats n, stride of the first repeat s.
MOBILENET_V2_SETTING: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
MOBILENET_V2_STEM = 32
MOBILENET_V2_LAST = 1280


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a scaled channel count to the nearest multiple of `divisor` (at least `divisor`), but never more
    than 10% below `value`: the rule of the MobileNetV2 reference code, which torchvision follows."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


class MobileNetV1(SequentialBody, ClassifierNetwork):
    """MobileNet v1: a 3x3 stem conv, 13 depthwise separable layers, global average pool, one FC layer.

    `alpha` is the paper's width multiplier: every layer gets int(alpha * channels) channels, at least 8
    (the authors' TF-slim rule). The resolution multiplier is simply the input size: the global pool takes any.
    timm's global_pool and drop_rate (dropout before the classifier) apply.
    """

    classifier_path = "classifier"

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, alpha: float = 1.0,
                 layers: Sequence[tuple[int, int]] = MOBILENET_V1_LAYERS, global_pool: str = "avg",
                 drop_rate: float = 0.0):
        super().__init__()
        self._head_settings(num_classes, global_pool, drop_rate)
        self.in_chans = in_chans
        if alpha <= 0:
            raise ValueError(f"MobileNetV1 width multiplier alpha must be positive, got {alpha}")

        def scaled(channels: int) -> int:
            return max(8, int(channels * alpha))

        chans = scaled(MOBILENET_V1_STEM)
        blocks: list[nn.Module] = [ConvBnAct(in_chans, chans, 3, stride=2)]
        for out_chans, stride in layers:
            blocks.append(DepthwiseSeparableConv(chans, scaled(out_chans), stride=stride))
            chans = scaled(out_chans)
        self.features = nn.Sequential(*blocks)
        self.num_features = chans
        self.avgpool = self._pool()
        self.classifier = self._new_classifier(num_classes)
        init_he_fan_out_(self)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = self.avgpool(x)
        x = x.flatten(1) if self.global_pool != "" else x
        if self.drop_rate > 0.0:
            x = F.dropout(x, p=self.drop_rate, training=self.training)
        return x if pre_logits else self.classifier(x)


class MobileNetV2(SequentialBody, ClassifierNetwork):
    """MobileNetV2 in torchvision's layout: `features` = [ConvBnAct stem, 17 InvertedResidual blocks,
    1x1 ConvBnAct to 1280], global average pool, `classifier` = [Dropout(0.2), Linear].

    `width_mult` scales every layer's channels, rounded with `make_divisible(.., round_nearest)`; the last
    conv is never narrowed below 1280. ReLU6 everywhere except after the projections (linear bottlenecks).
    timm's drop_rate is the classifier's `dropout`; global_pool applies."""

    classifier_path = "classifier.1"

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, width_mult: float = 1.0,
                 round_nearest: int = 8, dropout: float = 0.2,
                 setting: Sequence[tuple[int, int, int, int]] = MOBILENET_V2_SETTING, global_pool: str = "avg",
                 drop_rate: float | None = None):
        super().__init__()
        dropout = resolve_drop_rate("MobileNetV2", drop_rate, dropout)
        self._head_settings(num_classes, global_pool)
        self.in_chans = in_chans
        if width_mult <= 0:
            raise ValueError(f"MobileNetV2 width_mult must be positive, got {width_mult}")
        chans = make_divisible(MOBILENET_V2_STEM * width_mult, round_nearest)
        last_chans = make_divisible(MOBILENET_V2_LAST * max(1.0, width_mult), round_nearest)
        blocks: list[nn.Module] = [ConvBnAct(in_chans, chans, 3, stride=2, act=nn.ReLU6)]
        for expand_ratio, channels, repeats, first_stride in setting:
            out_chans = make_divisible(channels * width_mult, round_nearest)
            for index in range(repeats):
                stride = first_stride if index == 0 else 1
                blocks.append(InvertedResidual(chans, out_chans, stride, expand_ratio))
                chans = out_chans
        blocks.append(ConvBnAct(chans, last_chans, 1, act=nn.ReLU6))
        self.features = nn.Sequential(*blocks)
        self.num_features = last_chans
        self.avgpool = self._pool()
        self.classifier = nn.Sequential(nn.Dropout(dropout), self._new_classifier(num_classes))
        init_he_fan_out_(self)

    def head_modules(self) -> list[nn.Module]:
        return list(self.classifier)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = self.avgpool(x)
        x = self.classifier[0](x.flatten(1) if self.global_pool != "" else x)
        return x if pre_logits else self.classifier[1](x)


@register_model(
    family="mobilenet", paper=MOBILENET_V1_PAPER, input_size=(3, 224, 224), min_input_size=(1, 1),
    params=4_231_976, macs=568_740_352,
    reported={"imagenet_top1_error": 29.4},
    notes="Table 1 with ReLU (the TF-slim release uses ReLU6), global average pooling instead of the fixed 7x7 "
          "so the resolution multiplier is just the input size, and torchvision-style MobileNet "
          "initialisation; torchvision has no v1. Error: 1.0 MobileNet-224, single center crop (Table 8).",
)
def mobilenet_v1(**kwargs: Any) -> MobileNetV1:
    return MobileNetV1(**kwargs)


@register_model(
    family="mobilenet", paper=MOBILENET_V2_PAPER, input_size=(3, 224, 224), min_input_size=(1, 1),
    params=3_504_872, macs=300_774_272,
    reported={"imagenet_top1_error": 28.0},
    notes="torchvision's mobilenet_v2, key for key (width_mult, round_nearest=8, Dropout 0.2 before the "
          "classifier). Error: MobileNetV2 1.0 at 224, single center crop (Table 4).",
)
def mobilenet_v2(**kwargs: Any) -> MobileNetV2:
    return MobileNetV2(**kwargs)
