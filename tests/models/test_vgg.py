"""VGG against Simonyan & Zisserman (Table 1; only 3x3/1 pad-1 convs and 2x2/2 max pools), and vgg16(_bn)
against torchvision.

Key names and shapes checked against torchvision/models/vgg.py (pytorch/vision): `features` is one flat
Sequential of Conv2d(3x3, padding=1) [BatchNorm2d] ReLU per number of cfg "D" and MaxPool2d(2, 2) per "M";
avgpool = AdaptiveAvgPool2d((7, 7)); classifier = Linear(512*7*7, 4096), ReLU, Dropout, Linear(4096, 4096),
ReLU, Dropout, Linear(4096, num_classes)."""
import pytest
import torch
from torch import nn

import convzoo

NAMES = ["vgg11", "vgg13", "vgg16", "vgg19"]
# Table 1: convolutional layers of configurations A, B, D, E (the three FC layers make 11, 13, 16, 19).
CONV_LAYERS = {"vgg11": 8, "vgg13": 10, "vgg16": 13, "vgg19": 16}


def meta_model(name, **kwargs):
    with torch.device("meta"):
        return convzoo.create_model(name, **kwargs).eval()


@pytest.mark.parametrize("name", NAMES + [n + "_bn" for n in NAMES])
def test_only_3x3_stride_1_pad_1_convs_and_2x2_max_pools(name):
    model = meta_model(name)
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    pools = [m for m in model.features if isinstance(m, nn.MaxPool2d)]
    assert len(convs) == CONV_LAYERS[name.removesuffix("_bn")]
    assert all((c.kernel_size, c.stride, c.padding) == ((3, 3), (1, 1), (1, 1)) for c in convs)
    assert len(pools) == 5 and all((p.kernel_size, p.stride) == (2, 2) for p in pools)
    allowed = (nn.Conv2d, nn.ReLU, nn.MaxPool2d) + ((nn.BatchNorm2d,) if name.endswith("_bn") else ())
    assert all(isinstance(m, allowed) for m in model.features)
    x = model.features(torch.empty(1, 3, 224, 224, device="meta"))
    assert x.shape == (1, 512, 7, 7)  # the adaptive 7x7 pool is the identity at 224


@pytest.mark.parametrize("name", NAMES)
def test_batch_norm_adds_two_parameters_a_channel(name):
    plain = sum(p.numel() for p in meta_model(name).parameters())
    bn = sum(p.numel() for p in meta_model(name + "_bn").parameters())
    channels = sum(c.out_channels for c in meta_model(name).features if isinstance(c, nn.Conv2d))
    assert bn - plain == 2 * channels


# vgg16 (configuration D): the convs' output channels, and where they sit in torchvision's `features`.
VGG16_CHANNELS = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
VGG16_CONV_INDEX = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
VGG16_BN_CONV_INDEX = [0, 3, 7, 10, 14, 17, 20, 24, 27, 30, 34, 37, 40]
CLASSIFIER = {
    "classifier.0.weight": (4096, 25088), "classifier.0.bias": (4096,),
    "classifier.3.weight": (4096, 4096), "classifier.3.bias": (4096,),
    "classifier.6.weight": (1000, 4096), "classifier.6.bias": (1000,),
}


def torchvision_vgg16_keys(batch_norm: bool) -> dict[str, tuple[int, ...]]:
    expected = dict(CLASSIFIER)
    in_chans = 3
    for index, out_chans in zip(VGG16_BN_CONV_INDEX if batch_norm else VGG16_CONV_INDEX, VGG16_CHANNELS):
        expected[f"features.{index}.weight"] = (out_chans, in_chans, 3, 3)
        expected[f"features.{index}.bias"] = (out_chans,)
        if batch_norm:
            for stat in ("weight", "bias", "running_mean", "running_var"):
                expected[f"features.{index + 1}.{stat}"] = (out_chans,)
            expected[f"features.{index + 1}.num_batches_tracked"] = ()
        in_chans = out_chans
    return expected


@pytest.mark.parametrize("name, batch_norm", [("vgg16", False), ("vgg16_bn", True)])
def test_vgg16_state_dict_is_torchvisions(name, batch_norm):
    state = meta_model(name).state_dict()
    assert {key: tuple(value.shape) for key, value in state.items()} == torchvision_vgg16_keys(batch_norm)
    model = meta_model(name)
    assert isinstance(model.avgpool, nn.AdaptiveAvgPool2d) and model.avgpool.output_size == (7, 7)
    assert [type(m) for m in model.classifier] == [
        nn.Linear, nn.ReLU, nn.Dropout, nn.Linear, nn.ReLU, nn.Dropout, nn.Linear]


def test_torchvision_initialisation():
    # Build a narrow stack on CPU with the VGG class: He fan-out convs, zero biases, N(0, 0.01) FC, unit BN.
    from convzoo.models.classification.vgg import VGG

    model = VGG([64, "M", 64, "M"], num_classes=10, batch_norm=True)
    conv = model.features[4]
    expected_std = (2 / (conv.out_channels * 9)) ** 0.5
    assert abs(conv.weight.std().item() - expected_std) / expected_std < 0.05
    assert conv.bias.abs().sum() == 0
    bn = model.features[1]
    assert bn.weight.eq(1).all() and bn.bias.eq(0).all()
    assert abs(model.classifier[6].weight.std().item() - 0.01) < 1e-3


def test_other_sizes_classes_and_channels():
    model = meta_model("vgg11", num_classes=7, in_chans=1)
    assert model(torch.empty(2, 1, 64, 48, device="meta")).shape == (2, 7)
