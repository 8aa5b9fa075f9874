"""VGG (Simonyan & Zisserman 2014): only 3x3 convolutions at stride 1 with padding 1, 2x2 max pools at
stride 2 between stages, and three FC layers. Depth is the whole idea: two stacked 3x3 convs see 5x5, three
see 7x7, with fewer parameters and more non-linearities than one large filter.

torchvision's layout and key names (`features`, `avgpool`, `classifier`), so its vgg*/vgg*_bn checkpoints
load with strict=True. The _bn variants (not in the paper, which predates batch norm) put BatchNorm2d
between each conv and its ReLU, as torchvision does.
"""
from __future__ import annotations

from typing import Any, Sequence, Union

from torch import Tensor, nn

from ...layers.init import init_he_fan_out_
from ...registry import Paper, register_model
from ..network import resolve_drop_rate
from .alexnet import FeaturesAndMLP

PAPER = Paper(
    title="Very Deep Convolutional Networks for Large-Scale Image Recognition",
    authors="Karen Simonyan, Andrew Zisserman",
    year=2014,
    arxiv="1409.1556",
    venue="ICLR 2015",
)

MAX_POOL = "M"

# Table 1 of the paper: output channels of each 3x3 conv, MAX_POOL for each 2x2 max pool.
CONFIGS: dict[str, tuple[Union[int, str], ...]] = {
    "A": (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),  # 11 weight layers
    "B": (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),  # 13
    "D": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),  # 16
    "E": (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
          512, 512, 512, 512, "M"),  # 19
}

POOLED_SIZE = 7  # the last pool's output at 224; the adaptive pool keeps it for other sizes
HIDDEN = 4096


def make_features(config: Sequence[Union[int, str]], in_chans: int, batch_norm: bool) -> tuple[nn.Sequential, int]:
    """The flat `features` Sequential of a config (conv[, bn], relu per number; a pool per MAX_POOL), and its
    output channels. Convs keep their bias even before a batch norm: torchvision's checkpoints have it."""
    modules: list[nn.Module] = []
    chans = in_chans
    for entry in config:
        if entry == MAX_POOL:
            modules.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        modules.append(nn.Conv2d(chans, int(entry), kernel_size=3, stride=1, padding=1))
        if batch_norm:
            modules.append(nn.BatchNorm2d(int(entry)))
        modules.append(nn.ReLU(inplace=True))
        chans = int(entry)
    return nn.Sequential(*modules), chans


class VGG(FeaturesAndMLP):
    """A VGG configuration: `features`, a 7x7 adaptive average pool (identity at 224) and the classifier
    FC-ReLU-Dropout, FC-ReLU-Dropout, FC.

    Initialisation as torchvision: He (fan-out) normal convs, unit BN, N(0, 0.01) FC weights, zero biases.
    (The paper initialised A from N(0, 0.01) and the deeper nets partly from A, noting later that Glorot
    initialisation works without pre-training.)

    timm's arguments: `drop_rate` is the classifier's `dropout`; `global_pool` pools the 7x7 grid the first FC
    layer reads by "avg" (the paper's), "max" or "avgmax"; num_classes=0 returns the second FC layer's 4096
    features (`num_features`)."""

    pool_output_size = POOLED_SIZE

    def __init__(self, config: Sequence[Union[int, str]] = CONFIGS["D"], num_classes: int = 1000, in_chans: int = 3,
                 batch_norm: bool = False, dropout: float = 0.5, global_pool: str = "avg",
                 drop_rate: float | None = None):
        super().__init__()
        dropout = resolve_drop_rate("VGG", drop_rate, dropout)
        self._head_settings(num_classes, global_pool)
        self.in_chans = in_chans
        self.num_features = HIDDEN
        self.features, chans = make_features(config, in_chans, batch_norm)
        self.avgpool = self._pool()
        self.classifier = nn.Sequential(
            nn.Linear(chans * POOLED_SIZE * POOLED_SIZE, HIDDEN),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(HIDDEN, HIDDEN),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            self._new_classifier(num_classes),
        )
        self.drop_rate = dropout  # in the classifier's Dropout modules, not applied again by forward_head
        init_he_fan_out_(self)


def _card(config: str, params: int, macs: int, errors: tuple[float, float] | None = None) -> dict[str, Any]:
    """register_model arguments for a configuration; `errors` (top-1, top-5) only for the paper's own nets."""
    card: dict[str, Any] = dict(family="vgg", paper=PAPER, input_size=(3, 224, 224), min_input_size=(32, 32),
                                params=params, macs=macs)
    if errors is None:
        card["notes"] = (f"Configuration {config} with batch norm after every conv, torchvision's vgg*_bn layout and "
                         f"keys. Not in the paper, which predates batch norm and so reports no error for it.")
    else:
        card["reported"] = {"imagenet_top1_error": errors[0], "imagenet_top5_error": errors[1]}
        card["notes"] = (f"Configuration {config} of Table 1, torchvision's layout and keys; a 7x7 adaptive pool "
                         f"(identity at 224) lets other sizes in. Error: ILSVRC-2012 val, trained and tested at "
                         f"smallest side 256, single scale, dense evaluation (Table 3).")
    return card


@register_model(**_card("A", 132_863_336, 7_609_090_048, (29.6, 10.4)))
def vgg11(**kwargs) -> VGG:
    return VGG(CONFIGS["A"], **kwargs)


@register_model(**_card("A", 132_868_840, 7_609_090_048))
def vgg11_bn(**kwargs) -> VGG:
    return VGG(CONFIGS["A"], batch_norm=True, **kwargs)


@register_model(**_card("B", 133_047_848, 11_308_466_176, (28.7, 9.9)))
def vgg13(**kwargs) -> VGG:
    return VGG(CONFIGS["B"], **kwargs)


@register_model(**_card("B", 133_053_736, 11_308_466_176))
def vgg13_bn(**kwargs) -> VGG:
    return VGG(CONFIGS["B"], batch_norm=True, **kwargs)


@register_model(**_card("D", 138_357_544, 15_470_264_320, (27.0, 8.8)))
def vgg16(**kwargs) -> VGG:
    return VGG(CONFIGS["D"], **kwargs)


@register_model(**_card("D", 138_365_992, 15_470_264_320))
def vgg16_bn(**kwargs) -> VGG:
    return VGG(CONFIGS["D"], batch_norm=True, **kwargs)


@register_model(**_card("E", 143_667_240, 19_632_062_464, (27.3, 9.0)))
def vgg19(**kwargs) -> VGG:
    return VGG(CONFIGS["E"], **kwargs)


@register_model(**_card("E", 143_678_248, 19_632_062_464))
def vgg19_bn(**kwargs) -> VGG:
    return VGG(CONFIGS["E"], batch_norm=True, **kwargs)
