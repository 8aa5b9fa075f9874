"""GoogLeNet (Szegedy et al. 2014, "Going Deeper with Convolutions"), as published and in torchvision's layout.

googlenet     the network of the paper's Table 1 and Figure 3: every convolution with bias and ReLU, no
              batch norm (it came a year later), local response normalization after the first max pool and
              after conv2's 3x3, true 5x5 convolutions, a 3x3/2 max pool after 4e, a fixed 7x7 average pool,
              dropout 0.4 and one linear layer 1024 -> classes.
googlenet_bn  torchvision's googlenet, key for key: batch norm after every convolution, a 3x3 convolution
              where the paper has the 5x5 (pytorch/vision#906), a 2x2/2 max pool after 4e, global average
              pooling, dropout 0.2, and the optional `transform_input` of its TensorFlow-trained weights.

Both take the two auxiliary classifiers of section 5 (on the outputs of 4a and 4d) with aux_logits=True.
They run in training mode only, where the network then returns GoogLeNetOutputs(logits, aux_logits2,
aux_logits1), torchvision's names and order; the paper adds each auxiliary loss with weight 0.3. In eval
mode the network returns the logits alone. The paper discards the auxiliary classifiers at inference, so
no card counts their parameters.
"""
from __future__ import annotations

from typing import Mapping, NamedTuple, Optional, Tuple

import torch
import torch.fx
from torch import Tensor, nn

from ...errors import InputSizeError
from ...layers.inception import BasicConv2d, ConvFactory, ConvReLU, Inception
from ...layers.lrn import LocalResponseNorm
from ...protocol import Stage
from ...registry import Paper, register_model
from ..features import stages_by_reduction
from ..network import ClassifierNetwork, resolve_drop_rate

PAPER = Paper(
    title="Going Deeper with Convolutions",
    authors="Christian Szegedy, Wei Liu, Yangqing Jia, Pierre Sermanet, Scott Reed, Dragomir Anguelov, "
            "Dumitru Erhan, Vincent Vanhoucke, Andrew Rabinovich",
    year=2014, arxiv="1409.4842", venue="CVPR 2015",
)

# Table 1: #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj of each Inception module.
INCEPTION_WIDTHS: dict[str, tuple[int, int, int, int, int, int]] = {
    "3a": (64, 96, 128, 16, 32, 32),
    "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64),
    "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}

# Inputs of 223 to 254 pixels reach inception 5b at exactly 7x7, the window of the paper's average pool,
# whose 1x1x1024 output the linear layer takes (with TensorFlow's "same" padding it would be 193 to 224;
# the max pools here round up as Caffe's do). tests/models/test_googlenet.py checks both ends.
PAPER_INPUT_RANGE = (223, 254)


class GoogLeNetOutputs(NamedTuple):
    """A training-mode forward with auxiliary classifiers: the main logits, the classifier on 4d's output,
    the classifier on 4a's output (torchvision's names and order)."""

    logits: Tensor
    aux_logits2: Tensor
    aux_logits1: Tensor


class InceptionAux(nn.Module):
    """An auxiliary classifier (section 5): average pool to 4x4, 1x1 conv to 128 channels with ReLU, a fully
    connected layer of 1024 with ReLU, dropout 0.7, a linear layer to the classes.

    The paper pools with a 5x5 window at stride 3 (4x4 from the 14x14 maps of 4a and 4d); torchvision pools
    adaptively to 4x4. `pool` is that choice and `conv_block` the convolution of the layout."""

    def __init__(self, in_chans: int, num_classes: int, pool: nn.Module, conv_block: ConvFactory):
        super().__init__()
        self.pool = pool
        self.conv = conv_block(in_chans, 128, 1)
        self.fc1 = nn.Linear(128 * 4 * 4, 1024)
        self.relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(0.7)
        self.fc2 = nn.Linear(1024, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = torch.flatten(self.conv(self.pool(x)), 1)
        return self.fc2(self.dropout(self.relu(self.fc1(x))))


def check_paper_input(x: Tensor) -> None:
    """googlenet as published takes inputs of PAPER_INPUT_RANGE only (its fixed 7x7 pool and 1024-input fc)."""
    if max(x.shape[-2:]) > PAPER_INPUT_RANGE[1]:
        raise InputSizeError(
            f"googlenet as published ends in a fixed 7x7 average pool and a 1024-input linear layer, so it "
            f"takes inputs of {PAPER_INPUT_RANGE[0]} to {PAPER_INPUT_RANGE[1]} pixels; got "
            f"{x.shape[-2]}x{x.shape[-1]}. Resize the images, or use googlenet_bn, which pools globally."
        )


torch.fx.wrap("check_paper_input")  # a leaf for torch.fx: it reads the input's size

_STEPS = ("conv1", "maxpool1", "lrn1", "conv2", "conv3", "lrn2", "maxpool2", "inception3a", "inception3b",
          "maxpool3", "inception4a", "inception4b", "inception4c", "inception4d", "inception4e", "maxpool4",
          "inception5a", "inception5b")


class _GoogLeNetBase(ClassifierNetwork):
    """What both layouts share: the Inception stages from 3a on, the auxiliary classifiers (run in training
    only) and the head (pool, `dropout`, `fc`; timm's drop_rate is `dropout`'s rate)."""

    def feature_stages(self) -> list[Stage]:
        steps = [name for name in _STEPS if getattr(self, name, None) is not None]
        return stages_by_reduction(self, steps, self.in_chans)

    def _stem(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def _body(self, x: Tensor) -> Tuple[Tensor, Optional[Tensor], Optional[Tensor]]:
        x = self._stem(x)
        x = self.maxpool3(self.inception3b(self.inception3a(x)))
        x = self.inception4a(x)
        aux1 = self.aux1(x) if self.aux1 is not None and self.training else None
        x = self.inception4d(self.inception4c(self.inception4b(x)))
        aux2 = self.aux2(x) if self.aux2 is not None and self.training else None
        x = self.maxpool4(self.inception4e(x))
        x = self.inception5b(self.inception5a(x))
        return x, aux1, aux2

    def forward_features(self, x: Tensor) -> Tensor:
        return self._body(x)[0]

    def head_modules(self) -> list[nn.Module]:
        return [self.dropout, self.fc]

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = self.avgpool(x)
        x = self.dropout(x.flatten(1) if self.global_pool != "" else x)
        return x if pre_logits else self.fc(x)

    def forward(self, x: Tensor) -> Tensor | GoogLeNetOutputs:
        x, aux1, aux2 = self._body(x)
        logits = self.forward_head(x)
        if aux1 is not None and aux2 is not None:
            return GoogLeNetOutputs(logits, aux2, aux1)
        return logits


class GoogLeNet(_GoogLeNetBase):
    """GoogLeNet as published (Table 1, Figure 3), with the layer names of torchvision's GoogLeNet.

    Local response normalization uses the reference Caffe model's settings (the paper gives none): window
    5, alpha 1e-4 in Caffe's convention (divided by the window, so 2e-5 in AlexNet's), beta 0.75, k 1.
    Max pools round up (Caffe's convention, torchvision's too), which gives Table 1's sizes at 224x224.
    The fixed 7x7 average pool and the 1024-input linear layer take inputs of 223 to 254 pixels only.
    Weights are initialised as the Caffe reference model does: uniform with variance 1/fan_in ("xavier"
    there), biases 0.2, the classifiers' biases 0. global_pool is "avg" (that fixed pool) or "" (none, with
    num_classes=0)."""

    pool_kinds = ("avg", "")

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, aux_logits: bool = False,
                 dropout: float = 0.4, global_pool: str = "avg", drop_rate: float | None = None):
        super().__init__()
        dropout = resolve_drop_rate("GoogLeNet", drop_rate, dropout)
        self._head_settings(num_classes, global_pool)
        self.in_chans, self.num_features, self.drop_rate = in_chans, 1024, dropout
        self.conv1 = ConvReLU(in_chans, 64, 7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.lrn1 = LocalResponseNorm(size=5, alpha=2e-5, beta=0.75, k=1.0)
        self.conv2 = ConvReLU(64, 64, 1)
        self.conv3 = ConvReLU(64, 192, 3)
        self.lrn2 = LocalResponseNorm(size=5, alpha=2e-5, beta=0.75, k=1.0)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)

        self.inception3a = Inception(192, *INCEPTION_WIDTHS["3a"])
        self.inception3b = Inception(256, *INCEPTION_WIDTHS["3b"])
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception4a = Inception(480, *INCEPTION_WIDTHS["4a"])
        self.inception4b = Inception(512, *INCEPTION_WIDTHS["4b"])
        self.inception4c = Inception(512, *INCEPTION_WIDTHS["4c"])
        self.inception4d = Inception(512, *INCEPTION_WIDTHS["4d"])
        self.inception4e = Inception(528, *INCEPTION_WIDTHS["4e"])
        self.maxpool4 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception5a = Inception(832, *INCEPTION_WIDTHS["5a"])
        self.inception5b = Inception(832, *INCEPTION_WIDTHS["5b"])

        self.aux1 = InceptionAux(512, num_classes, nn.AvgPool2d(5, stride=3), ConvReLU) if aux_logits else None
        self.aux2 = InceptionAux(528, num_classes, nn.AvgPool2d(5, stride=3), ConvReLU) if aux_logits else None

        self.avgpool = self._pool()
        self.dropout = nn.Dropout(dropout)
        self.fc = self._new_classifier(num_classes)
        self._init_weights()

    def _pool(self) -> nn.Module:
        return nn.AvgPool2d(7, stride=1) if self.global_pool else nn.Identity()

    def _init_weights(self) -> None:
        classifiers = {self.fc} | {aux.fc2 for aux in (self.aux1, self.aux2) if aux is not None}
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_uniform_(module.weight, nonlinearity="linear")
                nn.init.constant_(module.bias, 0.0 if module in classifiers else 0.2)

    def _stem(self, x: Tensor) -> Tensor:
        check_paper_input(x)
        x = self.lrn1(self.maxpool1(self.conv1(x)))
        return self.maxpool2(self.lrn2(self.conv3(self.conv2(x))))


class GoogLeNetBN(_GoogLeNetBase):
    """torchvision's GoogLeNet: the module names, shapes and forward of torchvision/models/googlenet.py.

    `transform_input=True` maps ImageNet-normalised input to the [-1, 1] range torchvision's pretrained
    weights (ported from TensorFlow) were trained on; it needs 3 input channels. Weights are initialised as
    torchvision does: truncated normal with std 0.01 for convolutions and linear layers, batch norm 1 and 0.
    timm's global_pool and drop_rate (the rate of `dropout`) apply."""

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, aux_logits: bool = False,
                 transform_input: bool = False, dropout: float = 0.2, global_pool: str = "avg",
                 drop_rate: float | None = None):
        super().__init__()
        dropout = resolve_drop_rate("GoogLeNetBN", drop_rate, dropout)
        self._head_settings(num_classes, global_pool)
        self.in_chans, self.num_features, self.drop_rate = in_chans, 1024, dropout
        if transform_input and in_chans != 3:
            raise ValueError(f"transform_input re-normalises RGB input and needs in_chans=3, got {in_chans}")
        self.transform_input = transform_input
        self.conv1 = BasicConv2d(in_chans, 64, 7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = BasicConv2d(64, 64, 1)
        self.conv3 = BasicConv2d(64, 192, 3)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)

        def inception(in_chans: int, stage: str) -> Inception:
            return Inception(in_chans, *INCEPTION_WIDTHS[stage], conv_block=BasicConv2d, branch3_kernel_size=3)

        self.inception3a = inception(192, "3a")
        self.inception3b = inception(256, "3b")
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception4a = inception(480, "4a")
        self.inception4b = inception(512, "4b")
        self.inception4c = inception(512, "4c")
        self.inception4d = inception(512, "4d")
        self.inception4e = inception(528, "4e")
        self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.inception5a = inception(832, "5a")
        self.inception5b = inception(832, "5b")

        self.aux1 = InceptionAux(512, num_classes, nn.AdaptiveAvgPool2d(4), BasicConv2d) if aux_logits else None
        self.aux2 = InceptionAux(528, num_classes, nn.AdaptiveAvgPool2d(4), BasicConv2d) if aux_logits else None

        self.avgpool = self._pool()
        self.dropout = nn.Dropout(dropout)
        self.fc = self._new_classifier(num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(module.weight, mean=0.0, std=0.01, a=-2, b=2)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def remap_state_dict(self, state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """torchvision's googlenet checkpoint holds the auxiliary classifiers (its builder loads the file into
        a model that has them, then removes them); a model built without them leaves those keys out too."""
        if self.aux1 is not None:
            return dict(state_dict)
        return {key: value for key, value in state_dict.items() if not key.startswith(("aux1.", "aux2."))}

    def _transform(self, x: Tensor) -> Tensor:
        # (x * std + mean) undoes ImageNet normalisation; (y - 0.5) / 0.5 maps [0, 1] to [-1, 1].
        mean = torch.tensor([0.485, 0.456, 0.406], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        return (x * std + mean - 0.5) / 0.5

    def feature_stages(self) -> list[Stage]:
        if self.transform_input:
            raise ValueError("googlenet_bn with transform_input=True re-normalises input for torchvision's "
                             "classifier weights; build the encoder with transform_input=False and normalise "
                             "the images to [-1, 1] yourself.")
        return super().feature_stages()

    def _stem(self, x: Tensor) -> Tensor:
        if self.transform_input:
            x = self._transform(x)
        x = self.maxpool1(self.conv1(x))
        return self.maxpool2(self.conv3(self.conv2(x)))


@register_model(
    family="googlenet", paper=PAPER, input_size=(3, 224, 224), min_input_size=(223, 223),
    params=6_998_552, macs=1_582_671_872,
    reported={"imagenet_top5_error": 6.67},
    notes="Table 1 as published (LRN, true 5x5 branches, no batch norm, fixed 7x7 average pool, so inputs of 223 "
          "to 254 pixels), LRN settings and initialisation from the BVLC Caffe model; torchvision has only "
          "googlenet_bn's layout. Error: 7 models x 144 crops, ILSVRC14 test; one model gives 10.07% top-5 "
          "with 1 crop and 7.89% with 144 crops (Table 3, validation).",
)
def googlenet(**kwargs) -> GoogLeNet:
    return GoogLeNet(**kwargs)


@register_model(
    family="googlenet", paper=PAPER, input_size=(3, 224, 224), min_input_size=(15, 15),
    params=6_624_904, macs=1_498_376_192,
    notes="torchvision's googlenet key for key: batch norm (eps 0.001), 3x3 convolutions in the '5x5' branch "
          "(pytorch/vision#906), 2x2 max pool after 4e, global average pool, dropout 0.2; aux_logits defaults to "
          "False here (True in torchvision's class). No error of its own in the paper; torchvision's weights, "
          "ported from TensorFlow, give 30.22% top-1 and 10.47% top-5 error, single crop.",
)
def googlenet_bn(**kwargs) -> GoogLeNetBN:
    return GoogLeNetBN(**kwargs)
