"""ZFNet against Zeiler & Fergus 2013, Figure 3 and Table 2, and the course's description."""
import torch
from torch import nn

import convzoo
from convzoo.layers import LocalResponseNorm

# Figure 3: a 224x224x3 crop; each layer's output (C, H, W).
FIGURE_3 = [
    ("conv1 7x7/2", nn.Conv2d, (96, 110, 110)),
    ("pool1 3x3/2", nn.MaxPool2d, (96, 55, 55)),
    ("contrast norm", LocalResponseNorm, (96, 55, 55)),
    ("conv2 5x5/2", nn.Conv2d, (256, 26, 26)),
    ("pool2 3x3/2", nn.MaxPool2d, (256, 13, 13)),
    ("contrast norm", LocalResponseNorm, (256, 13, 13)),
    ("conv3 3x3/1", nn.Conv2d, (384, 13, 13)),
    ("conv4 3x3/1", nn.Conv2d, (384, 13, 13)),
    ("conv5 3x3/1", nn.Conv2d, (256, 13, 13)),
    ("pool3 3x3/2", nn.MaxPool2d, (256, 6, 6)),
]


def meta_model(name, **kwargs):
    with torch.device("meta"):
        return convzoo.create_model(name, **kwargs).eval()


def test_figure_3_sizes():
    model = meta_model("zfnet")
    x = torch.empty(1, 3, 224, 224, device="meta")
    shapes = []
    for module in model.features:
        x = module(x)
        if not isinstance(module, nn.ReLU):
            shapes.append((type(module), tuple(x.shape[1:])))
    assert shapes == [(kind, shape) for _, kind, shape in FIGURE_3]
    # "taking features from the top convolutional layer as input in vector form (6 * 6 * 256 = 9216)"
    assert model.avgpool(x).flatten(1).shape == (1, 9216)
    assert model.classifier[0].in_features == 9216


def test_first_layers_follow_the_course_and_every_conv_is_dense():
    convs = [m for m in meta_model("zfnet").features if isinstance(m, nn.Conv2d)]
    # The course: "CONV1: change from (11x11 stride 4) to (7x7 stride 2)"; the paper also strides conv2 by 2.
    assert [(c.kernel_size[0], c.stride[0]) for c in convs] == [(7, 2), (5, 2), (3, 1), (3, 1), (3, 1)]
    # Section 3: Krizhevsky's sparse (two-GPU) connections are replaced with dense ones.
    assert all(c.groups == 1 for c in convs)


def test_wide_variant_has_the_course_widths_and_its_hand_count():
    convs = [m for m in meta_model("zfnet_wide").features if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [96, 256, 512, 1024, 512]
    # Counted by hand: k*k*c_in*c_out + c_out per conv, in*out + out per FC layer.
    conv_layers = [(7, 3, 96), (5, 96, 256), (3, 256, 512), (3, 512, 1024), (3, 1024, 512)]
    fc_layers = [(6 * 6 * 512, 4096), (4096, 4096), (4096, 1000)]
    by_hand = sum(k * k * c_in * c_out + c_out for k, c_in, c_out in conv_layers)
    by_hand += sum(n_in * n_out + n_out for n_in, n_out in fc_layers)
    assert by_hand == 107_627_624 == convzoo.model_card("zfnet_wide").params
    model = meta_model("zfnet_wide")
    assert sum(p.numel() for p in model.parameters()) == by_hand


def test_papers_initialisation_zero_biases():
    # "All weights are initialized to 10^-2 and biases are set to 0" (section 3); hidden FC narrowed to build fast.
    model = convzoo.create_model("zfnet", hidden_units=32)
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert all(m.bias.abs().sum() == 0 for m in layers)
    conv3_weight = layers[2].weight
    assert abs(conv3_weight.std().item() - 0.01) < 1e-3


def test_dropout_in_fc6_and_fc7():
    classifier = meta_model("zfnet").classifier
    assert [type(m) for m in classifier] == [nn.Linear, nn.ReLU, nn.Dropout, nn.Linear, nn.ReLU, nn.Dropout, nn.Linear]
    assert all(m.p == 0.5 for m in classifier if isinstance(m, nn.Dropout))
