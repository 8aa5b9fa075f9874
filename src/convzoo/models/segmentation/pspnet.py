"""PSPNet (Zhao, Shi, Qi, Wang & Jia 2017): a dilated ResNet at output stride 8 and a pyramid pooling module
that pools its last feature map into 1x1, 2x2, 3x3 and 6x6 bins, reduces each to a quarter of the channels,
upsamples them back and concatenates them with the map, so every pixel's classifier sees global and
sub-region context. A 3x3 conv, dropout and a 1x1 conv give the class scores; an auxiliary FCN head on
layer3 ("res4b22") adds a deeply supervised loss, weighted 0.4, during training.
"""
from __future__ import annotations

from torch import nn

from ...layers.context import PyramidPooling
from ...layers.conv import ConvBnAct
from ...registry import Paper, register_model
from .base import SegmentationModel, builder_for_backbone, resnet_segmenter

PAPER = Paper(
    title="Pyramid Scene Parsing Network",
    authors="Hengshuang Zhao, Jianping Shi, Xiaojuan Qi, Xiaogang Wang, Jiaya Jia",
    year=2016, arxiv="1612.01105", venue="CVPR 2017",
)

BINS = (1, 2, 3, 6)
AUX_WEIGHT = 0.4  # the paper's weight of the auxiliary loss on layer3


class PSPHead(nn.Sequential):
    """Pyramid pooling, then a 3x3 conv-BN-ReLU to 512 channels, dropout 0.1 and a 1x1 conv to the classes."""

    def __init__(self, in_chans: int, num_classes: int, bins: tuple[int, ...] = BINS, dropout: float = 0.1):
        pyramid = PyramidPooling(in_chans, bins)
        super().__init__(
            pyramid,
            ConvBnAct(pyramid.out_chans, 512, 3),
            nn.Dropout(dropout),
            nn.Conv2d(512, num_classes, kernel_size=1),
        )


def _pspnet(backbone_name: str, num_classes: int, in_chans: int, aux_loss: bool, **kwargs) -> SegmentationModel:
    return resnet_segmenter(backbone_name, PSPHead(2048, num_classes), num_classes, in_chans, aux_loss,
                            aux_weight=AUX_WEIGHT, **kwargs)


_NOTES = ("Dilated {depth} at output stride 8 (layer3 at rate 2, layer4 at 4), pyramid pooling with bins "
          "1/2/3/6 and 512-channel 1x1 reductions, auxiliary FCN head on layer3 (aux_loss=True by default; "
          "weight 0.4 as model.aux_weight; {no_aux:,} parameters without it). The aux head runs in every mode, as "
          "torchvision's do (the output is {{'out', 'aux'}}), so the MACs count it: {no_aux_macs:,} without it. "
          "Differs from the authors' Caffe model in the ResNet stem: torchvision's 7x7 conv, not three 3x3 convs. "
          "{reported}")


@register_model(
    family="pspnet", task="segmentation", paper=PAPER, input_size=(3, 473, 473), min_input_size=(1, 1),
    params=48_957_802, num_classes=21, macs=164_079_403_712,
    notes=_NOTES.format(depth="ResNet-50", no_aux=46_592_597, no_aux_macs=155_566_584_512,
                        reported="No error recorded: the paper uses ResNet-50 only in its ADE20K ablations."),
)
def pspnet_resnet50(num_classes: int = 21, in_chans: int = 3, aux_loss: bool = True, **kwargs) -> SegmentationModel:
    return _pspnet("resnet50", num_classes, in_chans, aux_loss, **kwargs)


@register_model(
    family="pspnet", task="segmentation", paper=PAPER, input_size=(3, 473, 473), min_input_size=(1, 1),
    params=67_949_930, num_classes=21, macs=232_263_058_112, reported={"voc2012_test_miou": 82.6},
    notes=_NOTES.format(depth="ResNet-101", no_aux=65_584_725, no_aux_macs=223_750_238_912,
                        reported="Reported: VOC 2012 test mIoU without COCO pre-training."),
)
def pspnet_resnet101(num_classes: int = 21, in_chans: int = 3, aux_loss: bool = True, **kwargs) -> SegmentationModel:
    return _pspnet("resnet101", num_classes, in_chans, aux_loss, **kwargs)


@register_model(
    family="pspnet", task="segmentation", paper=PAPER, input_size=(3, 473, 473), min_input_size=(1, 1),
    params=67_949_930, num_classes=21, macs=232_263_058_112, reported={"voc2012_test_miou": 82.6},
    same_as="pspnet_resnet101",
    notes="The paper's VOC network, pspnet_resnet101; backbone='resnet50' builds pspnet_resnet50 (48,957,802 "
          "parameters). Other keyword arguments go to that builder. " + _NOTES.format(
              depth="ResNet-101", no_aux=65_584_725, no_aux_macs=223_750_238_912, reported="Reported: VOC 2012 test mIoU without COCO "
                                                               "pre-training."),
)
def pspnet(num_classes: int = 21, in_chans: int = 3, backbone: str = "resnet101", **kwargs) -> SegmentationModel:
    builders = {"resnet101": pspnet_resnet101, "resnet50": pspnet_resnet50}
    return builder_for_backbone("pspnet", builders, backbone)(num_classes=num_classes, in_chans=in_chans, **kwargs)
