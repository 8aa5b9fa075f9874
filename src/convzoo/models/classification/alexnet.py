"""AlexNet (Krizhevsky, Sutskever, Hinton 2012) as the course draws it, and torchvision's AlexNet from
Krizhevsky's 2014 "one weird trick" paper.

Both are a `features` stack of convolutions, overlapping max pools and (in 2012) local response
normalization, an adaptive average pool to 6x6 and a three-layer `classifier`: torchvision's attribute names.
The stack is written as a list of layer specs (`Conv`, `MaxPool`, `LRN`), so ZFNet, AlexNet's direct
descendant (zfnet.py), is just another list.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Union

from torch import Tensor, nn

from ...layers.lrn import LocalResponseNorm
from ...registry import Paper, register_model
from ..features import SequentialBody
from ..network import ClassifierNetwork, resolve_drop_rate

ALEXNET_PAPER = Paper(
    title="ImageNet Classification with Deep Convolutional Neural Networks",
    authors="Alex Krizhevsky, Ilya Sutskever, Geoffrey E. Hinton",
    year=2012,
    venue="NeurIPS 2012",
)
OWT_PAPER = Paper(
    title="One weird trick for parallelizing convolutional neural networks",
    authors="Alex Krizhevsky",
    year=2014,
    arxiv="1404.5997",
)


@dataclass(frozen=True)
class Conv:
    """A convolution followed by ReLU. `bias_init` is the constant its bias starts at under the 2012 paper's
    initialisation (1 in some layers, to start their ReLUs with positive inputs)."""

    out_chans: int
    kernel_size: int
    stride: int = 1
    padding: int = 0
    groups: int = 1
    bias_init: float = 0.0


@dataclass(frozen=True)
class MaxPool:
    """Overlapping max pooling, 3x3 windows at stride 2 (AlexNet section 3.4). `ceil_mode` rounds the output
    size up, as cuda-convnet, the code AlexNet and ZFNet were trained with, does."""

    kernel_size: int = 3
    stride: int = 2
    ceil_mode: bool = False


@dataclass(frozen=True)
class LRN:
    """Local response normalization across channels with AlexNet's constants (n=5, k=2, alpha=1e-4,
    beta=0.75; section 3.3)."""


LayerSpec = Union[Conv, MaxPool, LRN]

# The course's AlexNet: CONV1, POOL1, NORM1, CONV2, POOL2, NORM2, CONV3, CONV4, CONV5, POOL3. conv2, conv4 and
# conv5 see only the 48 or 192 maps on their own GPU (groups=2); conv3 reads both GPUs (section 3.5).
ALEXNET_LAYERS: tuple[LayerSpec, ...] = (
    Conv(96, 11, stride=4),
    MaxPool(), LRN(),
    Conv(256, 5, padding=2, groups=2, bias_init=1.0),
    MaxPool(), LRN(),
    Conv(384, 3, padding=1),
    Conv(384, 3, padding=1, groups=2, bias_init=1.0),
    Conv(256, 3, padding=1, groups=2, bias_init=1.0),
    MaxPool(),
)

# torchvision's alexnet: the single-GPU network of cuda-convnet2's layers-imagenet-1gpu.cfg. (The paper's
# footnote gives 384 maps for conv4; torchvision and its checkpoint have 256.)
OWT_LAYERS: tuple[LayerSpec, ...] = (
    Conv(64, 11, stride=4, padding=2),
    MaxPool(),
    Conv(192, 5, padding=2),
    MaxPool(),
    Conv(384, 3, padding=1),
    Conv(256, 3, padding=1),
    Conv(256, 3, padding=1),
    MaxPool(),
)

POOLED_SIZE = 6  # the last max pool's output at the papers' input sizes; the adaptive pool keeps it for others
HIDDEN = 4096


def make_features(layers: Sequence[LayerSpec], in_chans: int) -> tuple[nn.Sequential, int]:
    """The `features` Sequential for a list of layer specs (each Conv becomes Conv2d + ReLU, so module
    indices, and checkpoint keys, follow torchvision's), and the number of channels it ends with."""
    modules: list[nn.Module] = []
    chans = in_chans
    for layer in layers:
        if isinstance(layer, Conv):
            modules.append(nn.Conv2d(chans, layer.out_chans, layer.kernel_size, stride=layer.stride,
                                     padding=layer.padding, groups=layer.groups))
            modules.append(nn.ReLU(inplace=True))
            chans = layer.out_chans
        elif isinstance(layer, MaxPool):
            modules.append(nn.MaxPool2d(layer.kernel_size, layer.stride, ceil_mode=layer.ceil_mode))
        elif isinstance(layer, LRN):
            modules.append(LocalResponseNorm())
        else:
            raise TypeError(f"unknown layer spec {layer!r}; expected Conv, MaxPool or LRN")
    return nn.Sequential(*modules), chans


class FeaturesAndMLP(SequentialBody, ClassifierNetwork):
    """What AlexNet, ZFNet, torchvision's AlexNet and VGG share: a `features` stack, an adaptive pool to a
    grid (6x6 here, 7x7 for VGG) and a three-layer `classifier` whose last layer is the final classifier. timm's arguments: `drop_rate` is the
    classifier's `dropout`; `global_pool` pools the 6x6 grid by "avg", "max" or "avgmax"; num_classes=0
    returns the second FC layer's features (`num_features`)."""

    classifier_path = "classifier.6"
    pool_kinds = ("avg", "max", "avgmax")
    pool_output_size = POOLED_SIZE

    def head_modules(self) -> list[nn.Module]:
        return list(self.classifier)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = self.avgpool(x).flatten(1)
        for index, layer in enumerate(self.classifier):
            if index < 6 or not pre_logits:  # 6: the final classifier
                x = layer(x)
        return x


class AlexNet(FeaturesAndMLP):
    """The 2012-era network: `features` from layer specs, a 6x6 adaptive average pool, and a classifier of
    FC-ReLU-Dropout, FC-ReLU-Dropout, FC (the paper drops the outputs of the two hidden FC layers).

    `hidden_units` is the width of the two hidden FC layers (4096 in the paper).
    Initialisation as the paper (section 5): every weight from N(0, weight_std^2); biases 0 except those of
    the convs whose spec says `bias_init` and of the two hidden FC layers (`hidden_bias_init`)."""

    def __init__(self, layers: Sequence[LayerSpec] = ALEXNET_LAYERS, num_classes: int = 1000, in_chans: int = 3,
                 hidden_units: int = HIDDEN, dropout: float = 0.5, weight_std: float = 0.01,
                 hidden_bias_init: float = 1.0, global_pool: str = "avg", drop_rate: float | None = None):
        super().__init__()
        dropout = resolve_drop_rate("AlexNet", drop_rate, dropout)
        self._head_settings(num_classes, global_pool)
        self.in_chans, self.num_features, self.drop_rate = in_chans, hidden_units, dropout
        self.features, chans = make_features(layers, in_chans)
        self.avgpool = self._pool()
        self.classifier = nn.Sequential(
            nn.Linear(chans * POOLED_SIZE * POOLED_SIZE, hidden_units),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden_units, hidden_units),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            self._new_classifier(num_classes),
        )
        self._init_weights(layers, weight_std, hidden_bias_init)

    def _init_weights(self, layers: Sequence[LayerSpec], weight_std: float, hidden_bias_init: float) -> None:
        convs = [m for m in self.features if isinstance(m, nn.Conv2d)]
        conv_specs = [layer for layer in layers if isinstance(layer, Conv)]
        for conv, spec in zip(convs, conv_specs):
            nn.init.normal_(conv.weight, 0.0, weight_std)
            nn.init.constant_(conv.bias, spec.bias_init)
        hidden = [m for m in self.classifier[:-1] if isinstance(m, nn.Linear)]
        for linear in hidden:
            nn.init.normal_(linear.weight, 0.0, weight_std)
            nn.init.constant_(linear.bias, hidden_bias_init)
        output = self.classifier[-1]
        if isinstance(output, nn.Linear):
            nn.init.normal_(output.weight, 0.0, weight_std)
            nn.init.zeros_(output.bias)


class AlexNetOWT(FeaturesAndMLP):
    """torchvision's alexnet, key for key: 64-192-384-256-256 convs without LRN or groups, a 6x6 adaptive
    average pool, and a classifier of Dropout-FC-ReLU, Dropout-FC-ReLU, FC (dropout before the hidden FC
    layers, unlike the 2012 paper). PyTorch's default initialisation, as torchvision."""

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.5, global_pool: str = "avg",
                 drop_rate: float | None = None):
        super().__init__()
        dropout = resolve_drop_rate("AlexNetOWT", drop_rate, dropout)
        self._head_settings(num_classes, global_pool)
        self.in_chans, self.num_features, self.drop_rate = in_chans, HIDDEN, dropout
        self.features, chans = make_features(OWT_LAYERS, in_chans)
        self.avgpool = self._pool()
        self.classifier = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(chans * POOLED_SIZE * POOLED_SIZE, HIDDEN),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(HIDDEN, HIDDEN),
            nn.ReLU(inplace=True),
            self._new_classifier(num_classes),
        )


@register_model(
    family="alexnet", paper=ALEXNET_PAPER, input_size=(3, 227, 227), min_input_size=(67, 67),
    params=60_965_224, macs=724_406_816,
    reported={"imagenet_top1_error": 40.7, "imagenet_top5_error": 18.2},
    notes="The course's AlexNet (227 input, conv2/4/5 in two groups, paper init); LRN follows each pool as "
          "the course (and Caffe's CaffeNet) draw it, where the paper normalizes before pooling. A 6x6 adaptive "
          "average pool (identity at 227) lets other sizes in; torchvision's alexnet is alexnet_owt. Error: "
          "1 CNN, ILSVRC-2012 val, 10 patches averaged (Table 2).",
)
def alexnet(**kwargs) -> AlexNet:
    return AlexNet(ALEXNET_LAYERS, **kwargs)


@register_model(
    family="alexnet", paper=OWT_PAPER, input_size=(3, 224, 224), min_input_size=(63, 63),
    params=61_100_840, macs=714_188_480,
    notes="torchvision's alexnet, key for key (its checkpoint loads with strict=True). It follows cuda-convnet2's "
          "1-GPU config: conv4 has 256 maps where the paper's footnote says 384, and dropout precedes the FC "
          "layers. No reported error: the paper's numbers are for its 384-map variant.",
)
def alexnet_owt(**kwargs) -> AlexNetOWT:
    return AlexNetOWT(**kwargs)
