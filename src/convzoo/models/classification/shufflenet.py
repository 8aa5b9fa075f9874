"""ShuffleNet v1 (Zhang et al. 2018) and ShuffleNet v2 (Ma et al. 2018).

Both share the plan conv1 (3x3/2) -> max pool (3x3/2) -> stage2..stage4 (each starting with a stride-2
unit) -> global average pool -> fc. v2 follows torchvision's layout key for key (`conv1.0`,
`stage2.0.branch1.0`, `conv5`, `fc`), so its checkpoints load with strict=True; v1, which torchvision lacks,
uses the same attribute names.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from ...layers.conv import ConvBnAct
from ...layers.init import init_he_fan_out_
from ...layers.shuffle_units import ShuffleV1Unit, ShuffleV2Unit
from ...protocol import Stage
from ...registry import Paper, register_model
from ..features import stages_by_reduction
from ..network import ClassifierNetwork

SHUFFLENET_V1_PAPER = Paper(
    title="ShuffleNet: An Extremely Efficient Convolutional Neural Network for Mobile Devices",
    authors="Xiangyu Zhang, Xinyu Zhou, Mengxiao Lin, Jian Sun",
    year=2018, arxiv="1707.01083", venue="CVPR 2018",
)
SHUFFLENET_V2_PAPER = Paper(
    title="ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture Design",
    authors="Ningning Ma, Xiangyu Zhang, Hai-Tao Zheng, Jian Sun",
    year=2018, arxiv="1807.11164", venue="ECCV 2018",
)

STAGE_NAMES = ("stage2", "stage3", "stage4")
STAGE_REPEATS = (4, 8, 4)  # both papers: one stride-2 unit, then 3, 7, 3 stride-1 units

# v1 Table 1: output channels of stages 2-4 for each number of groups g, at scale 1x.
SHUFFLENET_V1_STAGE_CHANNELS: dict[int, tuple[int, int, int]] = {
    1: (144, 288, 576),
    2: (200, 400, 800),
    3: (240, 480, 960),
    4: (272, 544, 1088),
    8: (384, 768, 1536),
}
SHUFFLENET_V1_STEM = 24


def _round_to_multiple(value: float, multiple: int) -> int:
    """The nearest multiple of `multiple` to `value` (halves round up), at least `multiple`."""
    return max(multiple, int(value / multiple + 0.5) * multiple)


class ShuffleNetV1(ClassifierNetwork):
    """ShuffleNet v1 (Table 1): pointwise group convolutions with channel shuffle.

    Each unit's bottleneck is a quarter of its output channels; the first 1x1 conv of stage 2 is dense.
    `scale` is the paper's "ShuffleNet s x": the stage widths times s, rounded to the nearest multiple of 4g
    (Table 1's widths all are, and the group convs need it). The stem's 24 channels follow the authors'
    released widths instead: scaled by the largest power of two not above s, at least 12, rounded to a
    multiple of g (12 at 0.5x, 16 for g=8; 24 at 1.5x; 48 at 2x). With these the published complexities
    of other scales come out too: ~13 M MACs at 0.25x (Table 2), and 38/40, 292/290, 524/522 M at
    0.5x/1.5x/2x for g=3/g=8 (the authors' ShuffleNet-Series README)."""

    def __init__(self, groups: int, num_classes: int = 1000, in_chans: int = 3, scale: float = 1.0,
                 stage_repeats: Sequence[int] = STAGE_REPEATS, global_pool: str = "avg", drop_rate: float = 0.0):
        super().__init__()
        self._head_settings(num_classes, global_pool, drop_rate)
        self.in_chans = in_chans
        if groups not in SHUFFLENET_V1_STAGE_CHANNELS:
            raise ValueError(f"ShuffleNetV1 groups must be one of {sorted(SHUFFLENET_V1_STAGE_CHANNELS)} "
                             f"(the paper's Table 1), got {groups}")
        if scale <= 0:
            raise ValueError(f"ShuffleNetV1 scale must be positive, got {scale}")
        stem_scale = max(0.5, 2.0 ** math.floor(math.log2(scale)))
        chans = _round_to_multiple(SHUFFLENET_V1_STEM * stem_scale, groups)
        self.conv1 = ConvBnAct(in_chans, chans, 3, stride=2)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        for stage_index, (name, repeats, base_chans) in enumerate(
                zip(STAGE_NAMES, stage_repeats, SHUFFLENET_V1_STAGE_CHANNELS[groups])):
            out_chans = _round_to_multiple(base_chans * scale, 4 * groups)
            mid_chans = out_chans // 4
            units = [ShuffleV1Unit(chans, out_chans, mid_chans, groups, stride=2,
                                   group_input_conv=stage_index > 0)]
            units += [ShuffleV1Unit(out_chans, out_chans, mid_chans, groups) for _ in range(repeats - 1)]
            setattr(self, name, nn.Sequential(*units))
            chans = out_chans
        self.num_features = chans
        self.avgpool = self._pool()
        self.fc = self._new_classifier(num_classes)
        # The paper gives no initialisation; He (fan_out) as for the other convnets here.
        init_he_fan_out_(self)

    def feature_stages(self) -> list[Stage]:
        return stages_by_reduction(self, ["conv1", "maxpool", *STAGE_NAMES], self.in_chans)

    def forward_features(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.conv1(x))
        if self.grad_checkpointing and not torch.jit.is_scripting():
            x = self.run_stages([self.stage2, self.stage3, self.stage4], x)
        else:
            x = self.stage4(self.stage3(self.stage2(x)))
        return x


class ShuffleNetV2(ClassifierNetwork):
    """ShuffleNet v2 (Table 5) in torchvision's layout. `stage_chans` = (conv1, stage2, stage3, stage4, conv5)
    output channels. Initialisation is PyTorch's default, as in torchvision. timm's global_pool and drop_rate
    (dropout before fc) apply."""

    def __init__(self, stage_chans: Sequence[int], num_classes: int = 1000, in_chans: int = 3,
                 stage_repeats: Sequence[int] = STAGE_REPEATS, global_pool: str = "avg", drop_rate: float = 0.0):
        super().__init__()
        self._head_settings(num_classes, global_pool, drop_rate)
        self.in_chans = in_chans
        if len(stage_chans) != 5 or len(stage_repeats) != 3:
            raise ValueError(f"ShuffleNetV2 needs 5 stage widths and 3 repeat counts, got {list(stage_chans)} "
                             f"and {list(stage_repeats)}")
        stem_chans, *unit_chans, last_chans = stage_chans
        self.conv1 = ConvBnAct(in_chans, stem_chans, 3, stride=2)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        chans = stem_chans
        for name, repeats, out_chans in zip(STAGE_NAMES, stage_repeats, unit_chans):
            units = [ShuffleV2Unit(chans, out_chans, stride=2)]
            units += [ShuffleV2Unit(out_chans, out_chans, stride=1) for _ in range(repeats - 1)]
            setattr(self, name, nn.Sequential(*units))
            chans = out_chans
        self.conv5 = ConvBnAct(chans, last_chans, 1)
        self.num_features = last_chans
        self.avgpool = self._pool()  # torchvision takes the mean in forward; a module here, so it can be chosen
        self.fc = self._new_classifier(num_classes)

    def feature_stages(self) -> list[Stage]:
        return stages_by_reduction(self, ["conv1", "maxpool", *STAGE_NAMES, "conv5"], self.in_chans)

    def forward_features(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.conv1(x))
        if self.grad_checkpointing and not torch.jit.is_scripting():
            x = self.run_stages([self.stage2, self.stage3, self.stage4], x)
        else:
            x = self.stage4(self.stage3(self.stage2(x)))
        return self.conv5(x)


def _shufflenet_v1_card(params: int, conv_macs: int, fc_macs: int, table1_mmacs: int,
                        top1_error: float) -> dict[str, Any]:
    return dict(
        family="shufflenet", paper=SHUFFLENET_V1_PAPER, input_size=(3, 224, 224), min_input_size=(1, 1),
        params=params, macs=conv_macs + fc_macs, reported={"imagenet_top1_error": top1_error},
        notes=f"Table 1's complexity counts convolutions only: ours is {conv_macs / 1e6:.2f} M conv MACs at 224 "
              f"(paper {table1_mmacs} M), {(conv_macs + fc_macs) / 1e6:.2f} M with the FC; torchvision has no v1. "
              f"Error: 1x, single 224 center crop (Table 2 of the CVPR version).",
    )


@register_model(**_shufflenet_v1_card(1_531_936, 142_502_976, 576_000, 143, 33.6))
def shufflenet_v1_g1(**kwargs: Any) -> ShuffleNetV1:
    return ShuffleNetV1(groups=1, **kwargs)


@register_model(**_shufflenet_v1_card(1_733_848, 140_036_512, 800_000, 140, 32.7))
def shufflenet_v1_g2(**kwargs: Any) -> ShuffleNetV1:
    return ShuffleNetV1(groups=2, **kwargs)


@register_model(**_shufflenet_v1_card(1_865_728, 136_500_672, 960_000, 137, 32.6))
def shufflenet_v1_g3(**kwargs: Any) -> ShuffleNetV1:
    return ShuffleNetV1(groups=3, **kwargs)


@register_model(**_shufflenet_v1_card(1_968_344, 133_251_776, 1_088_000, 133, 32.8))
def shufflenet_v1_g4(**kwargs: Any) -> ShuffleNetV1:
    return ShuffleNetV1(groups=4, **kwargs)


@register_model(**_shufflenet_v1_card(2_434_768, 136_829_952, 1_536_000, 137, 32.4))
def shufflenet_v1_g8(**kwargs: Any) -> ShuffleNetV1:
    return ShuffleNetV1(groups=8, **kwargs)


def _shufflenet_v2_card(params: int, macs: int, paper_mflops: int, top1_error: float) -> dict[str, Any]:
    return dict(
        family="shufflenet", paper=SHUFFLENET_V2_PAPER, input_size=(3, 224, 224), min_input_size=(1, 1),
        params=params, macs=macs, reported={"imagenet_top1_error": top1_error},
        notes=f"torchvision's layout and key names. Conv+FC MACs at 224 are {macs / 1e6:.1f} M (torchvision's "
              f"figure) against the paper's {paper_mflops} M. Error: single 224 center crop (Table 8).",
    )


@register_model(**_shufflenet_v2_card(1_366_792, 40_476_448, 41, 39.7))
def shufflenet_v2_x0_5(**kwargs: Any) -> ShuffleNetV2:
    return ShuffleNetV2((24, 48, 96, 192, 1024), **kwargs)


@register_model(**_shufflenet_v2_card(2_278_604, 144_907_992, 146, 30.6))
def shufflenet_v2_x1_0(**kwargs: Any) -> ShuffleNetV2:
    return ShuffleNetV2((24, 116, 232, 464, 1024), **kwargs)


@register_model(**_shufflenet_v2_card(3_503_624, 295_759_392, 299, 27.4))
def shufflenet_v2_x1_5(**kwargs: Any) -> ShuffleNetV2:
    return ShuffleNetV2((24, 176, 352, 704, 1024), **kwargs)


@register_model(**_shufflenet_v2_card(7_393_996, 583_253_464, 591, 25.1))
def shufflenet_v2_x2_0(**kwargs: Any) -> ShuffleNetV2:
    return ShuffleNetV2((24, 244, 488, 976, 2048), **kwargs)
