"""Fully convolutional networks (Long, Shelhamer & Darrell 2015): a classifier whose fully connected layers
are read as convolutions, run over the whole image, its coarse class scores upsampled in the network.

`fcn32s`, `fcn16s`, `fcn8s` are the paper's VGG16 networks as its Caffe reference (voc-fcn*s): conv1_1
padded by 100 so any input leaves fc6 (a 7x7 conv) something to see, Caffe's ceil-mode pools, fc6/fc7 as
4096-channel convs, a zero-initialised 1x1 scoring layer, and transposed convolutions that upsample the
scores. Skip layers add scores from pool4 (16s) and pool3 (8s) to the 2x-upsampled deeper scores: the
2x upsamplings start as bilinear interpolation and are learned, the final upsampling is fixed bilinear.
Because of the padding, every score map is cropped to align with the one it is fused with, by the offsets
Caffe's coordinate maps give (derived in `CROP`).

`fcn_resnet50` and `fcn_resnet101` are torchvision's: a ResNet at output stride 8 and `FCNHead`.
"""
from __future__ import annotations

import torch.fx
from torch import Tensor, nn

from ...layers.upsample import init_bilinear_
from ...registry import Paper, register_model
from ..classification.vgg import CONFIGS, make_features
from ..network import Network
from .base import FCNHead, SegmentationModel, resnet_segmenter

PAPER = Paper(
    title="Fully Convolutional Networks for Semantic Segmentation",
    authors="Jonathan Long, Evan Shelhamer, Trevor Darrell",
    year=2014, arxiv="1411.4038", venue="CVPR 2015",
)

HIDDEN = 4096
FIRST_PADDING = 100

# Where each score map's pixel 0 sits in the map it is fused with (Caffe's Crop offsets). With conv1_1
# padded by 100, a pixel j of a map at stride s centres on input pixel s*j + b: b = -99 after conv1_1,
# each 2x2 pool adds s/2 (pool5: b = -83.5), the 7x7 fc6 adds 3*32 (b = 12.5). A k x k stride-f transposed
# conv maps its output j to input (j - (k-1)/2) / f, so the 2x upscored fc7 scores sit at 16j - 11.5 and
# pool4's scores at 16j - 91.5: pool4's are cropped by 80/16 = 5, and so on.
CROP = {"score_pool4": 5, "score_pool3": 9, 32: 19, 16: 27, 8: 31}


def crop(x: Tensor, offset: int, size: tuple[int, int]) -> Tensor:
    return x[..., offset:offset + size[0], offset:offset + size[1]]


torch.fx.wrap("crop")  # a leaf for torch.fx: the crop's size is read off a tensor


def bilinear_deconv(num_classes: int, scale: int, learnable: bool) -> nn.ConvTranspose2d:
    """Caffe FCN's "Deconvolution": kernel 2*scale, stride `scale`, no padding (the crops align it), no bias,
    starting as bilinear interpolation of each class's scores; `learnable=False` freezes it (lr_mult 0)."""
    deconv = nn.ConvTranspose2d(num_classes, num_classes, 2 * scale, stride=scale, bias=False)
    init_bilinear_(deconv)
    deconv.weight.requires_grad_(learnable)
    return deconv


class FCN(Network):
    """FCN-VGG16 with the skips of its final upsampling stride: `stride` 32, 16 or 8.

    `features` is VGG16's (torchvision's indices, so its `features.*` weights load), with conv1_1 padded by
    100 and pools in ceil mode; `fc6`, `fc7` hold VGG's fully connected layers as convolutions (reshape
    torchvision's classifier.0/3 weights to 4096x512x7x7 and 4096x4096x1x1). Other names are Caffe's, but the
    final upsampling is `upscore` at every stride (Caffe's upscore, upscore16, upscore8)."""

    POOL3, POOL4 = 16, 23  # indices of pool3 and pool4 in VGG16's `features`

    def __init__(self, stride: int = 8, num_classes: int = 21, in_chans: int = 3, dropout: float = 0.5):
        super().__init__()
        if stride not in (32, 16, 8):
            raise ValueError(f"FCN's final upsampling stride is 32, 16 or 8 (FCN-32s/16s/8s), got {stride}")
        self.stride = stride
        self.features, chans = make_features(CONFIGS["D"], in_chans, batch_norm=False)
        self.features[0].padding = (FIRST_PADDING, FIRST_PADDING)
        for layer in self.features:
            if isinstance(layer, nn.MaxPool2d):
                layer.ceil_mode = True  # Caffe's pooling rounds up
        self.fc6 = nn.Conv2d(chans, HIDDEN, kernel_size=7)
        self.fc7 = nn.Conv2d(HIDDEN, HIDDEN, kernel_size=1)
        self.relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(dropout)
        self.score_fr = nn.Conv2d(HIDDEN, num_classes, kernel_size=1)
        if stride <= 16:
            self.score_pool4 = nn.Conv2d(512, num_classes, kernel_size=1)
            self.upscore2 = bilinear_deconv(num_classes, 2, learnable=True)
        if stride == 8:
            self.score_pool3 = nn.Conv2d(256, num_classes, kernel_size=1)
            self.upscore_pool4 = bilinear_deconv(num_classes, 2, learnable=True)
        self.upscore = bilinear_deconv(num_classes, stride, learnable=False)
        self._init_weights()

    def _init_weights(self) -> None:
        # VGG's initialisation for the trunk and fc6/fc7 (the paper starts from ImageNet weights); the
        # scoring layers start at zero, as the paper ("zero-initialize the class scoring layer").
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)
        for name in ("score_fr", "score_pool4", "score_pool3"):
            score = getattr(self, name, None)
            if score is not None:
                nn.init.zeros_(score.weight)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        size = x.shape[-2:]
        pools = {}
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in (self.POOL3, self.POOL4):
                pools[index] = x
        x = self.dropout(self.relu(self.fc6(x)))
        x = self.dropout(self.relu(self.fc7(x)))
        x = self.score_fr(x)
        if self.stride <= 16:
            x = self.upscore2(x)
            x = x + crop(self.score_pool4(pools[self.POOL4]), CROP["score_pool4"], x.shape[-2:])
        if self.stride == 8:
            x = self.upscore_pool4(x)
            x = x + crop(self.score_pool3(pools[self.POOL3]), CROP["score_pool3"], x.shape[-2:])
        return {"out": crop(self.upscore(x), CROP[self.stride], size)}


def _vgg_card(stride: int, params: int, macs: int, miou: float, notes: str) -> dict:
    return dict(family="fcn", task="segmentation", paper=PAPER, input_size=(3, 500, 500), min_input_size=(1, 1),
                num_classes=21, params=params, macs=macs, reported={"voc2011_val_miou": miou},
                notes=notes + " Count: learnable parameters; the fixed bilinear upsampling is a frozen parameter "
                              f"(requires_grad=False, Caffe's lr_mult 0) of {21 * 21 * 4 * stride ** 2:,} more. "
                              "Reported: mean IU on the paper's VOC 2011 val subset (Table 2).")


@register_model(**_vgg_card(
    32, 134_346_581, 181_365_854_976, 59.4,
    "The Caffe reference voc-fcn32s: conv1_1 padded by 100, ceil-mode pools, fc6/fc7 as convs, zero-initialised "
    "score_fr, a fixed 64x64 stride-32 bilinear deconvolution cropped at offset 19. Not in torchvision."))
def fcn32s(**kwargs) -> FCN:
    return FCN(stride=32, **kwargs)


@register_model(**_vgg_card(
    16, 134_364_410, 181_448_086_272, 62.4,
    "voc-fcn16s: fcn32s plus pool4's scores (score_pool4, zero-initialised) added to the 2x-upsampled fc7 scores "
    "(upscore2, bilinear-initialised and learned), then a fixed 16x bilinear deconvolution."))
def fcn16s(**kwargs) -> FCN:
    return FCN(stride=16, **kwargs)


@register_model(**_vgg_card(
    8, 134_376_863, 181_529_034_048, 62.7,
    "voc-fcn8s: fcn16s plus pool3's scores after a second learned 2x upsampling, then a fixed 8x bilinear "
    "deconvolution. The paper trains 32s, 16s and 8s in stages, each starting from the previous one."))
def fcn8s(**kwargs) -> FCN:
    return FCN(stride=8, **kwargs)


def _torchvision_card(params: int, aux_params: int, macs: int, notes: str, **extra) -> dict:
    return dict(task="segmentation", input_size=(3, 520, 520), min_input_size=(1, 1), num_classes=21,
                params=params, macs=macs,
                notes=notes + f" {aux_params:,} parameters with aux_loss=True (auxiliary FCNHead on layer3).",
                **extra)


@register_model(family="fcn", paper=PAPER, **_torchvision_card(
    32_957_013, 35_322_218, 142_725_772_800,
    "torchvision's fcn_resnet50 (same keys; returns its result['out']): ResNet-50 at output stride 8, FCNHead, "
    "bilinear upsampling; not in the paper, which uses VGG16 with skip layers (fcn8s)."))
def fcn_resnet50(num_classes: int = 21, in_chans: int = 3, aux_loss: bool = False, **kwargs) -> SegmentationModel:
    return resnet_segmenter("resnet50", FCNHead(2048, num_classes), num_classes, in_chans, aux_loss, **kwargs)


@register_model(family="fcn", paper=PAPER, **_torchvision_card(
    51_949_141, 54_314_346, 222_746_867_200,
    "torchvision's fcn_resnet101 (same keys; returns its result['out']): ResNet-101 at output stride 8, FCNHead; "
    "not in the paper."))
def fcn_resnet101(num_classes: int = 21, in_chans: int = 3, aux_loss: bool = False, **kwargs) -> SegmentationModel:
    return resnet_segmenter("resnet101", FCNHead(2048, num_classes), num_classes, in_chans, aux_loss, **kwargs)
