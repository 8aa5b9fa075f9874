"""The CIFAR residual networks: ResNet-20..1202, pre-activation ResNet-164/1001, Wide ResNets, ResNeXt-29,
and ResNet-110 with stochastic depth.

They share a skeleton different from the ImageNet one (resnet.py), hence their own file: a 3x3 stem conv,
three stages at 32x32, 16x16 and 8x8 (stride 2 at the start of stages 2 and 3), global average pooling and
one linear layer; no 7x7 conv, no max pool. One class, `CifarResNet`, builds all of them; the builders
choose the block, the blocks per stage, the stage widths and the shortcut.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ...layers.conv import conv3x3
from ...layers.drop_path import drop_path_schedule
from ...layers.residual import (AttnLayer, BasicBlock, Bottleneck, PreActBasicBlock, PreActBottleneck,
                                ResidualBlock, ZeroPadShortcut)
from ...protocol import Stage
from ...registry import Paper, register_model
from ..network import ClassifierNetwork, resolve_drop_path
from .resnet import PREACT_PAPER, RESNET_PAPER, RESNEXT_PAPER, WIDE_RESNET_PAPER, init_resnet_weights

STOCHASTIC_DEPTH_PAPER = Paper(
    title="Deep Networks with Stochastic Depth",
    authors="Gao Huang, Yu Sun, Zhuang Liu, Daniel Sedra, Kilian Q. Weinberger",
    year=2016, arxiv="1603.09382", venue="ECCV 2016",
)

SHORTCUTS = ("projection", "zero_pad")
CIFAR_INPUT = (3, 32, 32)


class CifarResNet(ClassifierNetwork):
    """3x3 stem conv, three stages of `blocks_per_stage` residual blocks, average pooling, linear classifier.

    shortcut="zero_pad" is the paper's option A (parameter-free, for the CIFAR ResNets); "projection" is a
    1x1 conv where the shape changes (option B). With post-activation blocks the stem is conv-BN-ReLU; with
    pre-activation blocks it is a bare conv (the first block activates its input) and a final BN-ReLU
    (`final_bn`, `relu`) precedes the pooling, as in He et al.'s and Zagoruyko's code. `dropout` (between the
    convs of a block) is Wide ResNet's and needs pre-activation blocks."""

    def __init__(self, block: type[ResidualBlock], blocks_per_stage: int, stage_planes: Sequence[int],
                 num_classes: int = 10, in_chans: int = 3, *, stem_width: int = 16, shortcut: str = "projection",
                 groups: int = 1, base_width: int = 64, dropout: float = 0.0, zero_init_residual: bool = False,
                 attn_layer: AttnLayer | None = None, drop_path: float = 0.0, drop_path_mode: str = "batch",
                 global_pool: str = "avg", drop_rate: float = 0.0, drop_path_rate: float | None = None):
        super().__init__()
        drop_path = resolve_drop_path("CifarResNet", drop_path_rate, drop_path)
        self._head_settings(num_classes, global_pool, drop_rate)
        if shortcut not in SHORTCUTS:
            raise ValueError(f"shortcut must be one of {SHORTCUTS}, got {shortcut!r}")
        if len(stage_planes) != 3:
            raise ValueError(f"CifarResNet has three stages, got stage_planes={list(stage_planes)}")
        block_args: dict = dict(groups=groups, base_width=base_width, attn_layer=attn_layer)
        if dropout > 0:
            if not block.pre_activation:
                raise ValueError(f"dropout between convs needs a pre-activation block, not {block.__name__}")
            block_args["dropout"] = dropout

        self.conv1 = conv3x3(in_chans, stem_width)
        self.bn1 = None if block.pre_activation else nn.BatchNorm2d(stem_width)
        self.relu = nn.ReLU(inplace=True)
        drop_paths = iter(drop_path_schedule(drop_path, 3 * blocks_per_stage, drop_path_mode))
        in_planes = stem_width
        stages = []
        for stage, planes in enumerate(stage_planes):
            out_chans = planes * block.expansion
            blocks = []
            for index in range(blocks_per_stage):
                stride = 2 if stage > 0 and index == 0 else 1
                blocks.append(block(in_planes, planes, stride,
                                    self._shortcut(block, shortcut, in_planes, out_chans, stride),
                                    drop_path=next(drop_paths), **block_args))
                in_planes = out_chans
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.stage_widths = (stem_width, *(planes * block.expansion for planes in stage_planes))
        self.num_features = in_planes
        self.final_bn = nn.BatchNorm2d(in_planes) if block.pre_activation else None
        self.avgpool = self._pool()
        self.fc = self._new_classifier(num_classes)
        init_resnet_weights(self, zero_init_residual)

    @staticmethod
    def _shortcut(block: type[ResidualBlock], kind: str, in_chans: int, out_chans: int,
                  stride: int) -> nn.Module | None:
        if stride == 1 and in_chans == out_chans:
            return None
        if kind == "zero_pad":
            return ZeroPadShortcut(in_chans, out_chans, stride)
        return block.projection(in_chans, out_chans, stride)

    def feature_stages(self) -> list[Stage]:
        # The stem keeps the resolution, so it and layer1 make one stage, at reduction 1.
        stem = ("conv1", "bn1", "relu") if self.bn1 is not None else ("conv1",)
        steps = [stem + ("layer1",), ("layer2",), ("layer3",)]
        if self.final_bn is not None:  # pre-activation: the last BN-ReLU ends the last stage
            steps[-1] += ("final_bn", "relu")
        return [Stage(s, c, r) for s, c, r in zip(steps, self.stage_widths[1:], (1, 2, 4))]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        if self.bn1 is not None:
            x = self.relu(self.bn1(x))
        if self.grad_checkpointing and not torch.jit.is_scripting():
            x = self.run_stages([self.layer1, self.layer2, self.layer3], x)
        else:
            x = self.layer3(self.layer2(self.layer1(x)))
        if self.final_bn is not None:
            x = self.relu(self.final_bn(x))
        return x


def _cifar_card(paper: Paper, params: int, macs: int, reported: dict[str, float], notes: str) -> dict:
    # Padded convs and global average pooling take any input down to 1x1 (measured on the meta device).
    return dict(family="resnet", paper=paper, input_size=CIFAR_INPUT, min_input_size=(1, 1), params=params,
                num_classes=10, macs=macs, reported=reported, notes=notes)


def _paper_cifar_resnet(depth: int, **kwargs) -> CifarResNet:
    """ResNet-(6n+2) of He et al. 2015, section 4.2: stages of 16, 32, 64 planes, n basic blocks each."""
    return CifarResNet(BasicBlock, (depth - 2) // 6, (16, 32, 64), shortcut="zero_pad", **kwargs)


_OPTION_A = ("Option A shortcuts: every other pixel, zero channels appended after the input's (as the stochastic "
             "depth authors' Torch code; popular PyTorch ports split the zeros on both sides). Not in torchvision. "
             "Reported: CIFAR-10 test error, the paper's Table 6")


@register_model(**_cifar_card(RESNET_PAPER, 269_722, 40_551_040, {"cifar10_error": 8.75}, _OPTION_A + "."))
def resnet20(**kwargs) -> CifarResNet:
    return _paper_cifar_resnet(20, **kwargs)


@register_model(**_cifar_card(RESNET_PAPER, 464_154, 68_862_592, {"cifar10_error": 7.51}, _OPTION_A + "."))
def resnet32(**kwargs) -> CifarResNet:
    return _paper_cifar_resnet(32, **kwargs)


@register_model(**_cifar_card(RESNET_PAPER, 658_586, 97_174_144, {"cifar10_error": 7.17}, _OPTION_A + "."))
def resnet44(**kwargs) -> CifarResNet:
    return _paper_cifar_resnet(44, **kwargs)


@register_model(**_cifar_card(RESNET_PAPER, 853_018, 125_485_696, {"cifar10_error": 6.97}, _OPTION_A + "."))
def resnet56(**kwargs) -> CifarResNet:
    return _paper_cifar_resnet(56, **kwargs)


@register_model(**_cifar_card(RESNET_PAPER, 1_727_962, 252_887_680, {"cifar10_error": 6.43},
                              _OPTION_A + " (best of 5 runs; mean 6.61)."))
def resnet110(**kwargs) -> CifarResNet:
    return _paper_cifar_resnet(110, **kwargs)


@register_model(**_cifar_card(RESNET_PAPER, 19_421_274, 2_829_238_912, {"cifar10_error": 7.93},
                              _OPTION_A + " (overfits: worse than ResNet-110)."))
def resnet1202(**kwargs) -> CifarResNet:
    return _paper_cifar_resnet(1202, **kwargs)


@register_model(**_cifar_card(
    STOCHASTIC_DEPTH_PAPER, 1_727_962, 252_887_680, {"cifar10_error": 5.25, "cifar100_error": 24.98},
    "resnet110 with drop_path=0.5 (p_L = 0.5, linear decay) in the paper's per-batch mode; a dropped branch is "
    "computed and zeroed rather than skipped, so training is not faster. Reported: CIFAR test error, 110 layers."))
def resnet110_sd(drop_path: float = 0.5, **kwargs) -> CifarResNet:
    return _paper_cifar_resnet(110, drop_path=drop_path, **kwargs)


_PREACT = ("Pre-activation bottlenecks with 1x1-conv projections fed the activated input, bare conv stem and final "
           "BN-ReLU, as the authors' code (resnet-1k-layers). Not in torchvision.")


@register_model(**_cifar_card(PREACT_PAPER, 1_703_258, 247_646_720, {"cifar10_error": 5.46, "cifar100_error": 24.33},
                              _PREACT))
def preact_resnet164(**kwargs) -> CifarResNet:
    return CifarResNet(PreActBottleneck, 18, (16, 32, 64), **kwargs)


@register_model(**_cifar_card(PREACT_PAPER, 10_327_706, 1_490_995_712,
                              {"cifar10_error": 4.62, "cifar100_error": 22.71},
                              _PREACT + " Reported CIFAR-10 error is the paper's mini-batch-64 run (4.92 at 128)."))
def preact_resnet1001(**kwargs) -> CifarResNet:
    return CifarResNet(PreActBottleneck, 111, (16, 32, 64), **kwargs)


def _wide_resnet(depth: int, widen_factor: int, **kwargs) -> CifarResNet:
    """WRN-depth-k: (depth-4)/6 pre-activation basic blocks per stage at 16k, 32k, 64k channels."""
    k = widen_factor
    return CifarResNet(PreActBasicBlock, (depth - 4) // 6, (16 * k, 32 * k, 64 * k), **kwargs)


_WRN = ("Pre-activation basic blocks, 1x1-conv shortcuts where the shape changes, as the authors' code; "
        "dropout=0.3 gives the paper's dropout variant. Not in torchvision. Reported: median of 5 runs, "
        "mean/std normalisation, no dropout")


@register_model(**_cifar_card(WIDE_RESNET_PAPER, 10_961_370, 1_548_145_664,
                              {"cifar10_error": 4.27, "cifar100_error": 20.43}, _WRN + "."))
def wrn16_8(**kwargs) -> CifarResNet:
    return _wide_resnet(16, 8, **kwargs)


@register_model(**_cifar_card(WIDE_RESNET_PAPER, 36_479_194, 5_243_328_768,
                              {"cifar10_error": 4.00, "cifar100_error": 19.25},
                              _WRN + " (with dropout 3.89 and 18.85)."))
def wrn28_10(**kwargs) -> CifarResNet:
    return _wide_resnet(28, 10, **kwargs)


@register_model(**_cifar_card(WIDE_RESNET_PAPER, 8_949_210, 1_298_582_016,
                              {"cifar10_error": 4.53, "cifar100_error": 21.18}, _WRN + "."))
def wrn40_4(**kwargs) -> CifarResNet:
    return _wide_resnet(40, 4, **kwargs)


def _resnext29(cardinality: int, bottleneck_width: int, **kwargs) -> CifarResNet:
    """ResNeXt-29 (Xie et al. section 5.3): 64-channel 3x3 stem, 3 stages of 3 bottlenecks with outputs 256,
    512, 1024; the grouped 3x3 has cardinality x bottleneck_width channels in stage 1, doubling per stage."""
    return CifarResNet(Bottleneck, 3, (64, 128, 256), stem_width=64, groups=cardinality,
                       base_width=bottleneck_width, **kwargs)


_RESNEXT = ("Post-activation grouped bottlenecks with conv+BN projections where the shape changes. Not in "
            "torchvision.")


@register_model(**_cifar_card(RESNEXT_PAPER, 34_426_698, 5_387_266_048,
                              {"cifar10_error": 3.65, "cifar100_error": 17.77}, _RESNEXT))
def resnext29_8x64d(**kwargs) -> CifarResNet:
    return _resnext29(8, 64, **kwargs)


@register_model(**_cifar_card(RESNEXT_PAPER, 68_155_210, 10_688_866_304,
                              {"cifar10_error": 3.58, "cifar100_error": 17.31}, _RESNEXT))
def resnext29_16x64d(**kwargs) -> CifarResNet:
    return _resnext29(16, 64, **kwargs)
