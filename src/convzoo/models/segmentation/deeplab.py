"""DeepLab v1, v2, v3 and v3+ (Chen et al. 2015-2018): atrous convolution keeps a classifier's feature maps
dense, at output stride 8 or 16, while its filters keep their ImageNet field of view.

- `deeplab_v1`: DeepLab-LargeFOV. VGG16 with 3x3 pools (stride 2 up to pool3; pool4 and pool5 at stride 1),
  conv5 at rate 2, fc6 as a 3x3 conv of 1024 channels at rate 12, fc7 1x1, fc8 to the classes (ASPP-L's
  branch, so an `ASPPv2` with one rate); scores at output stride 8, bilinearly upsampled. The paper refines
  them with a dense CRF (layers/crf.py).
- `deeplab_v2_vgg16`, `deeplab_v2_resnet101`: atrous spatial pyramid pooling (ASPP-L): four branches at rates
  6, 12, 18, 24 whose class scores are summed, on the same VGG16 or on ResNet-101 at output stride 8; also
  refined by the CRF in the paper.
- `deeplabv3_resnet50`, `deeplabv3_resnet101`: torchvision's: ResNet at output stride 8, DeepLabHead (ASPP
  with batch norm and image pooling at rates 12/24/36, a 3x3 conv, a 1x1 classifier).
- `deeplabv3plus`: v3's encoder on ResNet-101 at output stride 16 (ASPP rates 6/12/18) and a decoder: the
  ASPP output upsampled 4x, concatenated with layer1's features projected to 48 channels, two 3x3 convs,
  a 1x1 classifier, upsampled 4x.

The CRF is post-processing, not part of the networks: `layers.crf` takes their softmax and the image.
"""
from __future__ import annotations

import torch
import torch.fx
from torch import Tensor, nn

from ...layers.context import ASPP, ASPPv2
from ...layers.conv import ConvBnAct
from ...layers.init import init_he_fan_out_
from ...registry import Paper, register_model
from ..features import apply_multi_grid
from ..network import Network
from .backbones import create_backbone
from .base import SegmentationModel, builder_for_backbone, crop_to, pad_to_multiple, resnet_segmenter, upsample_to

for _leaf in ("crop_to", "pad_to_multiple", "upsample_to"):  # torch.fx leaves here too (wrap is per module)
    torch.fx.wrap(_leaf)

V1_PAPER = Paper(
    title="Semantic Image Segmentation with Deep Convolutional Nets and Fully Connected CRFs",
    authors="Liang-Chieh Chen, George Papandreou, Iasonas Kokkinos, Kevin Murphy, Alan L. Yuille",
    year=2014, arxiv="1412.7062", venue="ICLR 2015",
)

V2_PAPER = Paper(
    title="DeepLab: Semantic Image Segmentation with Deep Convolutional Nets, Atrous Convolution, and Fully "
          "Connected CRFs",
    authors="Liang-Chieh Chen, George Papandreou, Iasonas Kokkinos, Kevin Murphy, Alan L. Yuille",
    year=2016, arxiv="1606.00915", venue="TPAMI 2017",
)
V3_PAPER = Paper(
    title="Rethinking Atrous Convolution for Semantic Image Segmentation",
    authors="Liang-Chieh Chen, George Papandreou, Florian Schroff, Hartwig Adam",
    year=2017, arxiv="1706.05587",
)
V3PLUS_PAPER = Paper(
    title="Encoder-Decoder with Atrous Separable Convolution for Semantic Image Segmentation",
    authors="Liang-Chieh Chen, Yukun Zhu, George Papandreou, Florian Schroff, Hartwig Adam",
    year=2018, arxiv="1802.02611", venue="ECCV 2018",
)

LARGE_FOV_CHANNELS = 1024
ASPP_L_RATES = (6, 12, 18, 24)


def deeplab_vgg16(in_chans: int) -> nn.Module:
    """VGG16 at output stride 8 as DeepLab's prototxt: every max pool 3x3 with padding 1 (stride 2 for pool1-3,
    1 for pool4-5, in Caffe's ceil mode) and conv5 at rate 2. Keys are torchvision vgg16's `features.*`."""
    backbone = create_backbone("vgg16", out_indices=(-1,), output_stride=8, in_chans=in_chans)
    for layer in backbone.features:
        if isinstance(layer, nn.MaxPool2d) and layer.stride == 2:
            layer.kernel_size, layer.padding, layer.ceil_mode = 3, 1, True
    return backbone


def _deeplab_card(paper: Paper, params: int, macs: int, notes: str, reported: dict | None = None,
                  input_size: int = 513) -> dict:
    return dict(family="deeplab", task="segmentation", paper=paper, input_size=(3, input_size, input_size),
                min_input_size=(1, 1), params=params, num_classes=21, macs=macs, reported=reported or {},
                notes=notes)


@register_model(**_deeplab_card(
    V1_PAPER, 20_505_429, 128_584_633_024,
    "DeepLab-LargeFOV as the authors' prototxt: 3x3 pools, pool4/pool5 at stride 1, conv5 at rate 2, fc6 a 3x3 "
    "conv at rate 12 with 1024 channels (an ASPPv2 of one branch); bilinear upsampling without the Caffe "
    "Interp layer's corner alignment. Reported: VOC 2012 val, without and with the dense CRF (Table 2).",
    {"voc2012_val_miou": 62.25, "voc2012_val_miou_crf": 67.64}))
def deeplab_v1(num_classes: int = 21, in_chans: int = 3, dropout: float = 0.5) -> SegmentationModel:
    head = ASPPv2(512, num_classes, rates=(12,), hidden=LARGE_FOV_CHANNELS, dropout=dropout)
    return SegmentationModel(deeplab_vgg16(in_chans), head)


@register_model(**_deeplab_card(
    V2_PAPER, 37_877_652, 201_956_050_624,
    "DeepLab-ASPP-L on VGG16: deeplab_v1's trunk, four fc6-fc7-fc8 branches (3x3 at rates 6/12/18/24, 1024 "
    "channels) summed. Multi-scale input fusion (MSC) is a training recipe, not built in. Reported: VOC 2012 "
    "val, without and with the dense CRF (Table 3).",
    {"voc2012_val_miou": 68.96, "voc2012_val_miou_crf": 71.57}))
def deeplab_v2_vgg16(num_classes: int = 21, in_chans: int = 3, dropout: float = 0.5) -> SegmentationModel:
    head = ASPPv2(512, num_classes, rates=ASPP_L_RATES, hidden=LARGE_FOV_CHANNELS, dropout=dropout)
    return SegmentationModel(deeplab_vgg16(in_chans), head)


@register_model(**_deeplab_card(
    V2_PAPER, 44_048_532, 188_885_763_264,
    "ResNet-101 at output stride 8 (layer3 at rate 2, layer4 at 4) with ASPP-L: four 3x3 convs to the classes "
    "at rates 6/12/18/24, summed. Stride on the bottleneck's first 1x1 as the original (MSRA) ResNet the "
    "paper used (stride_in_1x1=False gives torchvision's); the count does not change. Reported: VOC 2012 "
    "test mIoU with multi-scale inputs, COCO pre-training and the CRF.",
    {"voc2012_test_miou_crf": 79.7}))
def deeplab_v2_resnet101(num_classes: int = 21, in_chans: int = 3, stride_in_1x1: bool = True) -> SegmentationModel:
    backbone = create_backbone("resnet101", out_indices=(4,), output_stride=8, in_chans=in_chans,
                               stride_in_1x1=stride_in_1x1)
    return SegmentationModel(backbone, ASPPv2(2048, num_classes, rates=ASPP_L_RATES))


DEEPLAB_V2_BACKBONES = {"resnet101": deeplab_v2_resnet101, "vgg16": deeplab_v2_vgg16}


@register_model(**_deeplab_card(
    V2_PAPER, 44_048_532, 188_885_763_264,
    "The paper's main network, deeplab_v2_resnet101 (ResNet-101 at output stride 8, ASPP-L at rates "
    "6/12/18/24, summed); backbone='vgg16' builds deeplab_v2_vgg16 (37,877,652 parameters). Other keyword "
    "arguments go to that builder. Reported: VOC 2012 test mIoU with multi-scale inputs, COCO pre-training "
    "and the CRF.",
    {"voc2012_test_miou_crf": 79.7}), same_as="deeplab_v2_resnet101")
def deeplab_v2(num_classes: int = 21, in_chans: int = 3, backbone: str = "resnet101", **kwargs) -> SegmentationModel:
    return builder_for_backbone("deeplab_v2", DEEPLAB_V2_BACKBONES, backbone)(num_classes=num_classes, in_chans=in_chans,
                                                                       **kwargs)


class DeepLabHead(nn.Sequential):
    """torchvision's DeepLab v3 head: ASPP (rates 12/24/36 at output stride 8), a 3x3 conv-BN-ReLU, a 1x1 conv
    to the classes. Flat, so its keys are torchvision's (`0.convs.0.0.weight`, `1.weight`, `4.bias`)."""

    def __init__(self, in_chans: int, num_classes: int, rates: tuple[int, ...] = (12, 24, 36)):
        aspp = ASPP(in_chans, rates)
        super().__init__(
            aspp,
            nn.Conv2d(aspp.out_chans, aspp.out_chans, 3, padding=1, bias=False),
            nn.BatchNorm2d(aspp.out_chans),
            nn.ReLU(),
            nn.Conv2d(aspp.out_chans, num_classes, 1),
        )


_V3_NOTES = ("torchvision's deeplabv3_{depth} (same keys; returns its result['out']): ResNet at output stride 8, "
             "ASPP at rates 12/24/36 (the paper's 6/12/18 doubled, as the paper evaluates at stride 8), no "
             "multi-grid by default. output_stride=16 takes the ASPP to 6/12/18 and multi_grid=(1, 2, 4) gives "
             "layer4's units rates 2/4/8 (at stride 16), the paper's best setting (Table 3); neither changes "
             "the count. {aux:,} parameters with aux_loss=True (FCNHead on layer3). No error reported: the "
             "paper's numbers are for its own training recipe.")

# DeepLab v3's ASPP rates are 6/12/18 at output stride 16 and doubled at 8, so that they cover the same field
V3_RATES = {16: (6, 12, 18), 8: (12, 24, 36)}


def _deeplabv3(depth: str, num_classes: int, in_chans: int, aux_loss: bool, output_stride: int,
               multi_grid: tuple[int, ...] | None, **kwargs) -> SegmentationModel:
    if output_stride not in V3_RATES:
        raise ValueError(f"deeplabv3 takes output_stride 8 or 16 (the paper's), got {output_stride}")
    head = DeepLabHead(2048, num_classes, rates=V3_RATES[output_stride])
    return resnet_segmenter(depth, head, num_classes, in_chans, aux_loss, output_stride=output_stride,
                            multi_grid=multi_grid, **kwargs)


@register_model(**_deeplab_card(V3_PAPER, 39_638_869, 168_731_205_888,
                                _V3_NOTES.format(depth="resnet50", aux=42_004_074), input_size=520))
def deeplabv3_resnet50(num_classes: int = 21, in_chans: int = 3, aux_loss: bool = False, output_stride: int = 8,
                       multi_grid: tuple[int, ...] | None = None, **kwargs) -> SegmentationModel:
    return _deeplabv3("resnet50", num_classes, in_chans, aux_loss, output_stride, multi_grid, **kwargs)


@register_model(**_deeplab_card(V3_PAPER, 58_630_997, 248_752_300_288,
                                _V3_NOTES.format(depth="resnet101", aux=60_996_202), input_size=520))
def deeplabv3_resnet101(num_classes: int = 21, in_chans: int = 3, aux_loss: bool = False, output_stride: int = 8,
                        multi_grid: tuple[int, ...] | None = None, **kwargs) -> SegmentationModel:
    return _deeplabv3("resnet101", num_classes, in_chans, aux_loss, output_stride, multi_grid, **kwargs)


LOW_LEVEL_CHANNELS = 48
DECODER_CHANNELS = 256


class DeepLabV3Plus(Network):
    """DeepLab v3+: an atrous encoder with ASPP, and a decoder that refines its output with low-level features.

    The encoder is ResNet-101 at `output_stride` 16 (layer4 at rate 2) with ASPP at rates 6/12/18 (the
    paper's for stride 16; dropout 0.1 after the projection, as its code). The decoder upsamples the ASPP's
    256 channels 4x, concatenates layer1's features (stride 4) reduced to 48 channels by a 1x1 conv-BN-ReLU
    (`project`; fewer than the 256 ASPP channels so they do not outweigh them), runs two 3x3 conv-BN-ReLUs of
    256 channels (`fuse`) and a 1x1 `classifier`, then upsamples 4x. The input is zero-padded to a multiple
    of the output stride, so both 4x upsamplings are exact, and the prediction is cropped back. The new
    layers get the backbone's He initialisation."""

    def __init__(self, num_classes: int = 21, in_chans: int = 3, backbone: str = "resnet101",
                 output_stride: int = 16, rates: tuple[int, ...] = (6, 12, 18),
                 multi_grid: tuple[int, ...] | None = None, **backbone_kwargs):
        super().__init__()
        self.output_stride = output_stride
        self.backbone = create_backbone(backbone, out_indices=(1, 4), output_stride=output_stride,
                                        in_chans=in_chans, **backbone_kwargs)
        if multi_grid is not None:
            apply_multi_grid(self.backbone.layer4, multi_grid)
        low_chans, high_chans = self.backbone.channels
        self.aspp = ASPP(high_chans, rates, dropout=0.1)
        self.project = ConvBnAct(low_chans, LOW_LEVEL_CHANNELS, 1)
        self.fuse = nn.Sequential(
            ConvBnAct(self.aspp.out_chans + LOW_LEVEL_CHANNELS, DECODER_CHANNELS, 3),
            ConvBnAct(DECODER_CHANNELS, DECODER_CHANNELS, 3),
        )
        self.classifier = nn.Conv2d(DECODER_CHANNELS, num_classes, 1)
        for head in (self.aspp, self.project, self.fuse, self.classifier):
            init_he_fan_out_(head)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        image = x
        x = pad_to_multiple(x, self.output_stride)
        low_level, high_level = self.backbone(x)
        encoded = upsample_to(self.aspp(high_level), low_level.shape[-2:])
        decoded = self.fuse(torch.cat([encoded, self.project(low_level)], dim=1))
        out = upsample_to(self.classifier(decoded), x.shape[-2:])
        return {"out": crop_to(out, image)}


@register_model(**_deeplab_card(
    V3PLUS_PAPER, 59_344_309, 94_242_897_920,
    "ResNet-101 encoder at output stride 16 with ASPP rates 6/12/18, decoder with a 48-channel layer1 "
    "projection and two 3x3 convs of 256 (the paper's best decoder, Tables 1-2); plain convs, not the "
    "separable ones of its Xception variant; torchvision's ResNet stem and no multi-grid. Inputs are padded "
    "to a multiple of 16, not resized. No error reported: the paper's VOC numbers use Xception or JFT."))
def deeplabv3plus(num_classes: int = 21, in_chans: int = 3, **kwargs) -> DeepLabV3Plus:
    return DeepLabV3Plus(num_classes, in_chans, **kwargs)
