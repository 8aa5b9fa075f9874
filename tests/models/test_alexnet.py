"""AlexNet as the course draws it (Krizhevsky et al. 2012), and alexnet_owt against torchvision.

Key names and shapes checked against torchvision/models/alexnet.py (pytorch/vision; AlexNet.features,
avgpool = AdaptiveAvgPool2d((6, 6)), classifier = Dropout, Linear(256*6*6, 4096), ReLU, Dropout,
Linear(4096, 4096), ReLU, Linear(4096, num_classes))."""
import pytest
import torch
from torch import nn

import convzoo
from convzoo.layers import LocalResponseNorm
from convzoo.models.classification.alexnet import ALEXNET_LAYERS, AlexNet

# The course's table: [227x227x3] INPUT, then each layer's output volume (H, W, C) and its kind.
COURSE_VOLUMES = [
    ("CONV1", nn.Conv2d, (55, 55, 96)),
    ("MAX POOL1", nn.MaxPool2d, (27, 27, 96)),
    ("NORM1", LocalResponseNorm, (27, 27, 96)),
    ("CONV2", nn.Conv2d, (27, 27, 256)),
    ("MAX POOL2", nn.MaxPool2d, (13, 13, 256)),
    ("NORM2", LocalResponseNorm, (13, 13, 256)),
    ("CONV3", nn.Conv2d, (13, 13, 384)),
    ("CONV4", nn.Conv2d, (13, 13, 384)),
    ("CONV5", nn.Conv2d, (13, 13, 256)),
    ("MAX POOL3", nn.MaxPool2d, (6, 6, 256)),
]


def meta_model(name, **kwargs):
    with torch.device("meta"):
        return convzoo.create_model(name, **kwargs).eval()


def layer_outputs(sequential, x):
    """(module, output) for each module of a Sequential but the ReLUs (which keep the shape)."""
    outputs = []
    for module in sequential:
        x = module(x)
        if not isinstance(module, nn.ReLU):
            outputs.append((module, x))
    return outputs, x


def test_course_output_volumes_layer_by_layer():
    model = meta_model("alexnet")
    outputs, x = layer_outputs(model.features, torch.empty(1, 3, 227, 227, device="meta"))
    assert len(outputs) == len(COURSE_VOLUMES)
    for (module, out), (layer, kind, (h, w, c)) in zip(outputs, COURSE_VOLUMES):
        assert isinstance(module, kind), layer
        assert tuple(out.shape[1:]) == (c, h, w), layer
    # The adaptive pool is the identity at 227: POOL3's 6x6x256 goes to the FC layers unchanged.
    assert model.avgpool(x).shape == x.shape
    fc_outputs, logits = layer_outputs(model.classifier, x.flatten(1))
    assert [out.shape[1] for module, out in fc_outputs if isinstance(module, nn.Linear)] == [4096, 4096, 1000]
    assert logits.shape == (1, 1000)


def test_conv_filters_and_strides_are_the_courses():
    convs = [m for m in meta_model("alexnet").features if isinstance(m, nn.Conv2d)]
    assert [(c.kernel_size[0], c.stride[0], c.padding[0]) for c in convs] == [
        (11, 4, 0), (5, 1, 2), (3, 1, 1), (3, 1, 1), (3, 1, 1)]
    pools = [m for m in meta_model("alexnet").features if isinstance(m, nn.MaxPool2d)]
    assert all((p.kernel_size, p.stride) == (3, 2) for p in pools)


def test_conv2_4_5_are_split_in_two_groups_as_on_two_gpus():
    convs = [m for m in meta_model("alexnet").features if isinstance(m, nn.Conv2d)]
    # Section 3.5: conv2 kernels are 5x5x48, conv4 3x3x192 and conv5 3x3x192 (half the input maps each);
    # conv3 reads all 256 maps of conv2.
    assert [tuple(c.weight.shape) for c in convs] == [
        (96, 3, 11, 11), (256, 48, 5, 5), (384, 256, 3, 3), (384, 192, 3, 3), (256, 192, 3, 3)]
    assert [c.groups for c in convs] == [1, 2, 1, 2, 2]


def test_grouped_conv_output_halves_read_only_their_own_input_half():
    # conv2 on CPU: the first 128 output maps must not depend on the last 48 input maps.
    conv2 = [m for m in AlexNet(hidden_units=8).features if isinstance(m, nn.Conv2d)][1]
    x = torch.randn(1, 96, 9, 9, requires_grad=True)
    (grad,) = torch.autograd.grad(conv2(x)[:, :128].sum(), x)
    assert grad[:, 48:].abs().sum() == 0 and grad[:, :48].abs().sum() > 0


def test_lrn_has_the_papers_constants():
    lrns = [m for m in meta_model("alexnet").features if isinstance(m, LocalResponseNorm)]
    assert len(lrns) == 2
    assert all((m.size, m.paper_alpha, m.beta, m.k) == (5, 1e-4, 0.75, 2.0) for m in lrns)


def test_dropout_follows_the_two_hidden_fc_layers():
    classifier = meta_model("alexnet").classifier
    kinds = [type(m) for m in classifier]
    assert kinds == [nn.Linear, nn.ReLU, nn.Dropout, nn.Linear, nn.ReLU, nn.Dropout, nn.Linear]
    assert all(m.p == 0.5 for m in classifier if isinstance(m, nn.Dropout))


def test_paper_initialisation():
    # Section 5: weights N(0, 0.01^2); biases 1 in conv2, conv4, conv5 and the hidden FC layers, 0 elsewhere.
    model = AlexNet(ALEXNET_LAYERS, hidden_units=64)
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    fcs = [m for m in model.classifier if isinstance(m, nn.Linear)]
    assert [m.bias.unique().tolist() for m in convs + fcs] == [[0.0], [1.0], [0.0], [1.0], [1.0], [1.0], [1.0], [0.0]]
    conv3_weight = convs[2].weight
    assert conv3_weight.mean().abs() < 1e-3 and abs(conv3_weight.std().item() - 0.01) < 1e-3


def test_other_input_sizes_and_class_counts():
    model = meta_model("alexnet", num_classes=10, in_chans=1)
    assert model(torch.empty(2, 1, 224, 224, device="meta")).shape == (2, 10)
    assert model.features[0].weight.shape == (96, 1, 11, 11)


def test_too_small_input_names_the_network_and_its_minimum():
    with pytest.raises(ValueError, match="alexnet needs an input of at least 67x67"):
        meta_model("alexnet")(torch.empty(1, 3, 32, 32, device="meta"))


# torchvision's AlexNet state dict, key by key.
TORCHVISION_ALEXNET = {
    "features.0.weight": (64, 3, 11, 11), "features.0.bias": (64,),
    "features.3.weight": (192, 64, 5, 5), "features.3.bias": (192,),
    "features.6.weight": (384, 192, 3, 3), "features.6.bias": (384,),
    "features.8.weight": (256, 384, 3, 3), "features.8.bias": (256,),
    "features.10.weight": (256, 256, 3, 3), "features.10.bias": (256,),
    "classifier.1.weight": (4096, 9216), "classifier.1.bias": (4096,),
    "classifier.4.weight": (4096, 4096), "classifier.4.bias": (4096,),
    "classifier.6.weight": (1000, 4096), "classifier.6.bias": (1000,),
}


def test_alexnet_owt_state_dict_is_torchvisions():
    state = meta_model("alexnet_owt").state_dict()
    assert {key: tuple(value.shape) for key, value in state.items()} == TORCHVISION_ALEXNET


def test_alexnet_owt_modules_are_torchvisions():
    model = meta_model("alexnet_owt")
    assert [type(m) for m in model.features] == [
        nn.Conv2d, nn.ReLU, nn.MaxPool2d, nn.Conv2d, nn.ReLU, nn.MaxPool2d,
        nn.Conv2d, nn.ReLU, nn.Conv2d, nn.ReLU, nn.Conv2d, nn.ReLU, nn.MaxPool2d]
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    assert [(c.kernel_size[0], c.stride[0], c.padding[0], c.groups) for c in convs] == [
        (11, 4, 2, 1), (5, 1, 2, 1), (3, 1, 1, 1), (3, 1, 1, 1), (3, 1, 1, 1)]
    assert all((m.kernel_size, m.stride) == (3, 2) for m in model.features if isinstance(m, nn.MaxPool2d))
    assert isinstance(model.avgpool, nn.AdaptiveAvgPool2d) and model.avgpool.output_size == (6, 6)
    assert [type(m) for m in model.classifier] == [
        nn.Dropout, nn.Linear, nn.ReLU, nn.Dropout, nn.Linear, nn.ReLU, nn.Linear]

