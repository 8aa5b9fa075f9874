"""DenseNet (Huang, Liu, van der Maaten, Weinberger 2017): inside a dense block every layer gets the
feature maps of all earlier layers, concatenated, and adds `growth_rate` (k) maps of its own.

The ImageNet networks (densenet121/161/169/201) have torchvision's layout and key names, so its
checkpoints load with strict=True (legacy `norm.1`/`conv.1` keys are renamed by `remap_state_dict`).
The CIFAR DenseNet-BC networks share the blocks, with the paper's 3x3 stem of 2k channels and three blocks."""
from __future__ import annotations

import math
import re
from collections import OrderedDict
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...layers.conv import conv3x3
from ...layers.dense import DenseBlock, Transition
from ...registry import Paper, register_model
from ..features import SequentialBody
from ..network import ClassifierNetwork

PAPER = Paper(
    title="Densely Connected Convolutional Networks",
    authors="Gao Huang, Zhuang Liu, Laurens van der Maaten, Kilian Q. Weinberger",
    year=2017,
    arxiv="1608.06993",
    venue="CVPR 2017",
)

STEMS = ("imagenet", "cifar")

# Old torchvision checkpoints (the ones still at its download URLs) named the dense layer's modules
# `norm.1`, `conv.1`, `norm.2`, `conv.2`; module names may no longer contain dots.
_LEGACY_DENSE_LAYER_KEY = re.compile(r"(denselayer\d+\.(?:norm|conv))\.([12])\.")


class DenseNet(SequentialBody, ClassifierNetwork):
    """DenseNet-BC: a stem, dense blocks of `block_config[i]` layers joined by compressing transitions,
    then BN-ReLU, global average pooling and one linear classifier.

    stem="imagenet": 7x7/2 conv of `num_init_features`, BN, ReLU, 3x3/2 max pool (torchvision's layout).
    stem="cifar": a single 3x3 conv of `num_init_features` (2k in the paper), no pooling.
    Each transition keeps floor(compression * channels) channels (theta = 0.5 in DenseNet-BC).
    `drop_rate` drops each dense layer's new maps (torchvision's placement and meaning, not timm's dropout
    before the classifier); `memory_efficient` checkpoints each layer's concatenation and bottleneck.
    timm's global_pool applies."""

    classifier_path = "classifier"
    body_final_relu = True

    def __init__(self, growth_rate: int = 32, block_config: Sequence[int] = (6, 12, 24, 16),
                 num_init_features: int = 64, bn_size: int = 4, compression: float = 0.5,
                 drop_rate: float = 0.0, num_classes: int = 1000, in_chans: int = 3,
                 memory_efficient: bool = False, stem: str = "imagenet", global_pool: str = "avg"):
        super().__init__()
        self._head_settings(num_classes, global_pool)  # no dropout before the classifier: drop_rate is per layer
        self.in_chans = in_chans
        if stem not in STEMS:
            raise ValueError(f"stem must be one of {STEMS}, got {stem!r}")
        if not 0 < compression <= 1:
            raise ValueError(f"compression must be in (0, 1], got {compression}")
        if stem == "imagenet":
            stem_layers = [
                ("conv0", nn.Conv2d(in_chans, num_init_features, kernel_size=7, stride=2, padding=3, bias=False)),
                ("norm0", nn.BatchNorm2d(num_init_features)),
                ("relu0", nn.ReLU(inplace=True)),
                ("pool0", nn.MaxPool2d(kernel_size=3, stride=2, padding=1)),
            ]
        else:
            # The first dense layer starts with BN-ReLU, so the stem conv needs neither.
            stem_layers = [("conv0", conv3x3(in_chans, num_init_features))]
        self.features = nn.Sequential(OrderedDict(stem_layers))

        chans = num_init_features
        for i, num_layers in enumerate(block_config, start=1):
            block = DenseBlock(num_layers, chans, growth_rate, bn_size=bn_size, drop_rate=drop_rate,
                               memory_efficient=memory_efficient)
            self.features.add_module(f"denseblock{i}", block)
            chans = block.out_chans
            if i < len(block_config):
                transition = Transition(chans, math.floor(compression * chans))
                self.features.add_module(f"transition{i}", transition)
                chans = transition.out_chans
        # torchvision calls the last norm norm5 whatever the number of blocks; so do we, to load its keys.
        self.features.add_module("norm5", nn.BatchNorm2d(chans))
        self.num_features = chans
        self.avgpool = self._pool()
        self.classifier = self._new_classifier(num_classes)

        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.zeros_(module.bias)

    def forward_features(self, x: Tensor) -> Tensor:
        # The last norm sits in `features`, its ReLU does not (torchvision's layout).
        return F.relu(self.features(x), inplace=True)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = self.avgpool(x)
        x = x.flatten(1) if self.global_pool != "" else x
        return x if pre_logits else self.classifier(x)

    def remap_state_dict(self, state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """A copy of `state_dict` with legacy dense-layer keys (`...denselayer3.norm.1.weight`) renamed to
        the current ones (`...denselayer3.norm1.weight`); other keys pass through unchanged, in order."""
        return {_LEGACY_DENSE_LAYER_KEY.sub(r"\1\2.", key): value for key, value in state_dict.items()}


def _cifar_densenet_bc(depth: int, growth_rate: int, **kwargs: Any) -> DenseNet:
    # Depth L counts the stem conv, two convs per bottleneck layer, two transition convs and the classifier:
    # L = 6n + 4 for n layers per block.
    if (depth - 4) % 6:
        raise ValueError(f"DenseNet-BC depth must be 6n + 4, got {depth}")
    n = (depth - 4) // 6
    return DenseNet(growth_rate=growth_rate, block_config=(n, n, n), num_init_features=2 * growth_rate,
                    stem="cifar", **kwargs)


_IMAGENET_NOTES = (
    "torchvision's DenseNet-BC layout and key names; reported errors are the paper's single-crop Table 3. "
    "memory_efficient=True checkpoints like torchvision's but keeps BN running statistics from being "
    "updated twice per step."
)
_CIFAR_NOTES = (
    "Reported errors are Table 2's C10+/C100+ (standard augmentation, no dropout); convs are bias-free with "
    "He fan-in init as torchvision (the authors' Torch code scales by fan-out). drop_rate drops each layer's "
    "new maps only, whereas the paper's no-augmentation runs drop after every conv but the first."
)


@register_model(family="densenet", paper=PAPER, input_size=(3, 224, 224), min_input_size=(29, 29),
                params=7_978_856, macs=2_834_161_664, reported={"imagenet_top1_error": 25.02, "imagenet_top5_error": 7.71},
                notes=_IMAGENET_NOTES)
def densenet121(**kwargs: Any) -> DenseNet:
    return DenseNet(growth_rate=32, block_config=(6, 12, 24, 16), num_init_features=64, **kwargs)


@register_model(family="densenet", paper=PAPER, input_size=(3, 224, 224), min_input_size=(29, 29),
                params=28_681_000, macs=7_727_907_072,
                notes="torchvision's DenseNet-161 (k=48), which the paper's Table 3 does not list (the authors' "
                      "repository reports 22.2% single-crop top-1); memory_efficient=True keeps BN running "
                      "statistics from being updated twice per step, unlike torchvision's.")
def densenet161(**kwargs: Any) -> DenseNet:
    return DenseNet(growth_rate=48, block_config=(6, 12, 36, 24), num_init_features=96, **kwargs)


@register_model(family="densenet", paper=PAPER, input_size=(3, 224, 224), min_input_size=(29, 29),
                params=14_149_480, macs=3_359_843_328, reported={"imagenet_top1_error": 23.80, "imagenet_top5_error": 6.85},
                notes=_IMAGENET_NOTES)
def densenet169(**kwargs: Any) -> DenseNet:
    return DenseNet(growth_rate=32, block_config=(6, 12, 32, 32), num_init_features=64, **kwargs)


@register_model(family="densenet", paper=PAPER, input_size=(3, 224, 224), min_input_size=(29, 29),
                params=20_013_928, macs=4_291_365_888, reported={"imagenet_top1_error": 22.58, "imagenet_top5_error": 6.34},
                notes=_IMAGENET_NOTES)
def densenet201(**kwargs: Any) -> DenseNet:
    return DenseNet(growth_rate=32, block_config=(6, 12, 48, 32), num_init_features=64, **kwargs)


@register_model(family="densenet", paper=PAPER, input_size=(3, 32, 32), min_input_size=(4, 4), num_classes=10,
                params=769_162, macs=287_929_692, reported={"cifar10_error": 4.51, "cifar100_error": 22.27}, notes=_CIFAR_NOTES)
def densenet_bc100_k12(**kwargs: Any) -> DenseNet:
    return _cifar_densenet_bc(100, 12, **kwargs)


@register_model(family="densenet", paper=PAPER, input_size=(3, 32, 32), min_input_size=(4, 4), num_classes=10,
                params=15_324_406, macs=5_418_785_724, reported={"cifar10_error": 3.62, "cifar100_error": 17.60}, notes=_CIFAR_NOTES)
def densenet_bc250_k24(**kwargs: Any) -> DenseNet:
    return _cifar_densenet_bc(250, 24, **kwargs)


@register_model(family="densenet", paper=PAPER, input_size=(3, 32, 32), min_input_size=(4, 4), num_classes=10,
                params=25_624_430, macs=9_301_945_740, reported={"cifar10_error": 3.46, "cifar100_error": 17.18}, notes=_CIFAR_NOTES)
def densenet_bc190_k40(**kwargs: Any) -> DenseNet:
    return _cifar_densenet_bc(190, 40, **kwargs)
