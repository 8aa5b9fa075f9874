"""Yu & Koltun (2016), "Multi-Scale Context Aggregation by Dilated Convolutions": a front end and a context
module, both dilated instead of pooled, so the class scores come out at output stride 8 without skip layers
or deconvolutions.

The front end is VGG16 as the authors' released Caffe model: unpadded convs, pool4 and pool5 removed, conv5
at dilation 2 and fc6 a 7x7 conv at dilation 4 (each removed pool's stride becomes dilation for what
follows), fc7, and a 1x1 `final` conv to the classes. Without padding, every output pixel needs 186 pixels of
context on each side: the image is padded by reflection by that margin, as the authors train and test. The
context module (layers/context.py) then refines the class scores with exponentially growing dilations.
"""
from __future__ import annotations

import torch.nn.functional as F
import torch.fx
from torch import Tensor, nn

from ...layers.context import ContextModule
from ...layers.init import init_he_fan_out_
from ...registry import Paper, register_model
from ..classification.vgg import CONFIGS, make_features
from ..network import Network
from .base import crop_to, pad_to_multiple, upsample_to

for _leaf in ("crop_to", "pad_to_multiple", "upsample_to"):  # torch.fx leaves here too (wrap is per module)
    torch.fx.wrap(_leaf)

PAPER = Paper(
    title="Multi-Scale Context Aggregation by Dilated Convolutions",
    authors="Fisher Yu, Vladlen Koltun",
    year=2015, arxiv="1511.07122", venue="ICLR 2016",
)

OUTPUT_STRIDE = 8
# The context every output pixel of the unpadded front end needs on each side: its receptive field is
# 2 * 186 + 8 input pixels (the authors' `margin`).
MARGIN = 186
HIDDEN = 4096
CONV5 = (24, 26, 28)  # indices of conv5_1..3 in VGG16's `features`
POOL4, POOL5 = 23, 30


class Dilation8(Network):
    """The dilated front end followed by the context module (`context` "large", the VOC model's, or "basic").

    `features` keeps torchvision vgg16's indices (pool4 and pool5 are nn.Identity), so its `features.*`
    weights load; fc6/fc7 take VGG's fully connected weights reshaped, as in FCN. The input is
    reflection-padded to a multiple of 8 and by the 186-pixel margin; the 1/8-resolution scores are
    bilinearly upsampled (the authors interpolate their probabilities) and cropped to the input's size."""

    def __init__(self, num_classes: int = 21, in_chans: int = 3, context: str = "large", dropout: float = 0.5):
        super().__init__()
        features, chans = make_features(CONFIGS["D"], in_chans, batch_norm=False)
        for index, layer in enumerate(features):
            if isinstance(layer, nn.Conv2d):
                layer.padding = (0, 0)
                if index in CONV5:
                    layer.dilation = (2, 2)
        features[POOL4] = nn.Identity()
        features[POOL5] = nn.Identity()
        self.features = features
        self.fc6 = nn.Conv2d(chans, HIDDEN, kernel_size=7, dilation=4)
        self.fc7 = nn.Conv2d(HIDDEN, HIDDEN, kernel_size=1)
        self.relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(dropout)
        self.final = nn.Conv2d(HIDDEN, num_classes, kernel_size=1)
        init_he_fan_out_(self)
        nn.init.normal_(self.final.weight, 0.0, 0.001)  # the authors' filler for the new class scores
        self.context = ContextModule(num_classes, kind=context)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        image = x
        padded = pad_to_multiple(x, OUTPUT_STRIDE, mode="reflect")
        x = F.pad(padded, (MARGIN,) * 4, mode="reflect")
        x = self.features(x)
        x = self.dropout(self.relu(self.fc6(x)))
        x = self.dropout(self.relu(self.fc7(x)))
        x = self.context(self.final(x))
        return {"out": crop_to(upsample_to(x, padded.shape[-2:]), image)}


@register_model(
    family="dilated", task="segmentation", paper=PAPER, input_size=(3, 500, 500), min_input_size=(185, 185),
    params=141_149_720, num_classes=21, macs=756_955_763_406,
    notes="The released Dilation8 VOC model: unpadded VGG16 front end at output stride 8 and the large context "
          "module (2C..32C channels), inputs reflection-padded by 186. The context module pads each conv "
          "(the authors pad its input by 33 once), and starts as the identity. Smallest input 185: the margin "
          "is reflected, which needs a (multiple-of-8) side over 186. Not in torchvision.",
)
def dilated8(**kwargs) -> Dilation8:
    return Dilation8(**kwargs)
