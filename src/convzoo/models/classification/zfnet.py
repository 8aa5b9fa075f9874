"""ZFNet (Zeiler & Fergus 2013, "Visualizing and Understanding Convolutional Networks"): AlexNet with the
first layer changed from 11x11 stride 4 to 7x7 stride 2 and conv2 given stride 2, found by looking at
what the first two layers had learned; every layer is dense, as it was trained on one GPU.

Figure 3 of the paper gives the sizes 224 -> 110 (conv1) -> 55 (pool1) -> 26 (conv2) -> 13 (pool2)
-> 13 -> 13 -> 13 (conv3-5) -> 6 (pool3). Padding conv1 by 1 and rounding the pooled sizes up (cuda-convnet's
rule; the authors' code was built on it) reproduces every one of them; conv2 is unpadded.
"""
from __future__ import annotations

from ...registry import Paper, register_model
from .alexnet import LRN, AlexNet, Conv, LayerSpec, MaxPool

ZFNET_PAPER = Paper(
    title="Visualizing and Understanding Convolutional Networks",
    authors="Matthew D. Zeiler, Rob Fergus",
    year=2013,
    arxiv="1311.2901",
    venue="ECCV 2014",
)


def zfnet_layers(conv3: int, conv4: int, conv5: int) -> tuple[LayerSpec, ...]:
    """Figure 3's feature stack with the given widths of conv3-5. The paper's "contrast normalization across
    feature maps" after pools 1 and 2 is AlexNet's local response normalization, which it cites."""
    pool = MaxPool(ceil_mode=True)
    return (
        Conv(96, 7, stride=2, padding=1),
        pool, LRN(),
        Conv(256, 5, stride=2),
        pool, LRN(),
        Conv(conv3, 3, padding=1),
        Conv(conv4, 3, padding=1),
        Conv(conv5, 3, padding=1),
        pool,
    )


def _zfnet(conv3: int, conv4: int, conv5: int, **kwargs) -> AlexNet:
    # Section 3: "All weights are initialized to 10^-2 and biases are set to 0", i.e. N(0, 0.01^2) weights.
    return AlexNet(zfnet_layers(conv3, conv4, conv5), weight_std=0.01, hidden_bias_init=0.0, **kwargs)


@register_model(
    family="zfnet", paper=ZFNET_PAPER, input_size=(3, 224, 224), min_input_size=(47, 47),
    params=62_357_608, macs=1_168_032_896,
    reported={"imagenet_top1_error": 38.4, "imagenet_top5_error": 16.5},
    notes="Figure 3's network: conv1 padded by 1 and pools rounding up give its sizes, LRN is its contrast "
          "normalization, and a 6x6 adaptive pool (identity at 224) takes other sizes; the paper's clipping of "
          "filter RMS to 0.1 is a training step, not part of the model. Not in torchvision. Error: 1 convnet, "
          "ILSVRC-2012 val (Table 2).",
)
def zfnet(**kwargs) -> AlexNet:
    return _zfnet(384, 384, 256, **kwargs)


@register_model(
    family="zfnet", paper=ZFNET_PAPER, input_size=(3, 224, 224), min_input_size=(47, 47),
    params=107_627_624, macs=2_476_704_896,
    reported={"imagenet_top1_error": 37.5, "imagenet_top5_error": 16.0},
    notes="zfnet with 512, 1024, 512 maps in conv3-5 (Table 2's model (b), the widths the course quotes); "
          "107,627,624 parameters, counted layer by layer by hand and matching the pytorchcv zfnetb count. "
          "Error: 1 convnet, ILSVRC-2012 val (Table 2).",
)
def zfnet_wide(**kwargs) -> AlexNet:
    return _zfnet(512, 1024, 512, **kwargs)
