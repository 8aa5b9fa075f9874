"""convzoo.convolutionalize: a classifier's FC layers as convolutions (FCN, Long et al. 2015). At the training
size the scores equal the classifier's; on a larger image they form a map, each cell the classifier's
head applied to one training-size window of the feature map."""
import pytest
import torch
from torch import nn
from torch.nn.modules.utils import _pair

import convzoo
from convzoo.models.classification.resnet import ResNet
from convzoo.layers.residual import BasicBlock
from convzoo.models.classification.densenet import DenseNet


def scores_match(classifier, fcn, x):
    with torch.no_grad():
        expected = classifier(x)
        out = fcn(x)
    assert out.shape == (x.shape[0], expected.shape[1], 1, 1)
    torch.testing.assert_close(out.flatten(1), expected, rtol=1e-4, atol=1e-5 * float(expected.abs().max()))


def test_resnet_global_pool_becomes_a_sliding_pool():
    with torch.device("meta"):
        at_224 = convzoo.convolutionalize(convzoo.create_model("resnet18"))
    assert at_224.pool.kernel_size == (7, 7) and at_224.pool.stride == (1, 1)

    # The same at a small training size, with real numbers: features 2 x 2 at 64 x 64.
    classifier = convzoo.create_model("resnet18").eval()
    fcn = convzoo.convolutionalize(classifier, input_size=(64, 64)).eval()
    assert fcn.pool.kernel_size == (2, 2) and fcn.pool.stride == (1, 1)
    assert not any(isinstance(m, nn.Linear) for m in fcn.modules())
    fc = fcn.head[0]
    assert isinstance(fc, nn.Conv2d) and fc.kernel_size == (1, 1)
    scores_match(classifier, fcn, torch.randn(1, 3, 64, 64))

    x = torch.randn(1, 3, 128, 96)  # features 4 x 3: a 3 x 2 map of 2 x 2 windows
    with torch.no_grad():
        (features,) = fcn.body(x)
        scores = fcn(x)
        assert scores.shape == (1, 1000, 3, 2)
        window = features[:, :, 2:4, 1:3].mean(dim=(2, 3))
        torch.testing.assert_close(scores[:, :, 2, 1], classifier.fc(window))


def test_vgg_fc6_becomes_a_7x7_conv():
    with torch.device("meta"):
        fcn = convzoo.convolutionalize(convzoo.create_model("vgg16"))
        assert fcn(torch.empty(1, 3, 224, 224)).shape == (1, 1000, 1, 1)
        # The map of the FCN paper: a 384 x 512 image gives (384 / 32 - 6) x (512 / 32 - 6) = 6 x 10 scores.
        assert fcn(torch.empty(1, 3, 384, 512)).shape == (1, 1000, 6, 10)
    fc6, fc7, fc8 = [m for m in fcn.head if isinstance(m, nn.Conv2d)]
    assert (fc6.in_channels, fc6.out_channels, fc6.kernel_size) == (512, 4096, (7, 7))
    assert (fc7.kernel_size, fc8.out_channels) == ((1, 1), 1000)
    assert isinstance(fcn.pool, nn.Identity)  # the 7x7 adaptive pool is the identity at 224
    assert [type(m).__name__ for m in fcn.head] == ["Conv2d", "ReLU", "Dropout"] * 2 + ["Conv2d"]


def test_fc6_weights_are_the_linear_weights_reshaped():
    classifier = convzoo.create_model("alexnet_owt").eval()
    fcn = convzoo.convolutionalize(classifier).eval()
    linear = [m for m in classifier.classifier if isinstance(m, nn.Linear)][0]
    fc6 = [m for m in fcn.head if isinstance(m, nn.Conv2d)][0]
    assert fc6.kernel_size == (6, 6)
    assert torch.equal(fc6.weight.flatten(1), linear.weight)
    scores_match(classifier, fcn, torch.randn(1, 3, 224, 224))


@pytest.mark.parametrize("name", [
    "mobilenet_v2", "resnet20", "shufflenet_v2_x0_5",
    # GoogLeNet as published pools with a fixed 7x7 average pool, kept as it is.
    pytest.param("googlenet", marks=pytest.mark.slow),
])
def test_scores_equal_at_the_training_size(name):
    classifier = convzoo.create_model(name).eval()
    fcn = convzoo.convolutionalize(classifier).eval()
    size = classifier.card.input_size
    scores_match(classifier, fcn, torch.randn(1, *size))
    # Each network pools globally: on a larger image the pool slides by one feature pixel.
    x = torch.randn(1, size[0], size[1] + 32, size[2] + 16)
    with torch.no_grad():
        (features,) = fcn.body(x)
        window = _pair(fcn.pool.kernel_size)
        assert fcn(x).shape[-2:] == (features.shape[2] - window[0] + 1, features.shape[3] - window[1] + 1)


def test_densenet_pools_and_activates_in_its_forward():
    # DenseNet's final ReLU and global pool are in forward, not modules; a small DenseNet-BC keeps it quick.
    classifier = DenseNet(growth_rate=4, block_config=(2, 2), num_init_features=8, num_classes=3,
                          stem="cifar").eval()
    fcn = convzoo.convolutionalize(classifier, input_size=(16, 16)).eval()
    assert fcn.pool.kernel_size == (8, 8)
    scores_match(classifier, fcn, torch.randn(2, 3, 16, 16))
    with torch.no_grad():
        assert fcn(torch.randn(1, 3, 24, 20)).shape == (1, 3, 5, 3)


def test_the_classifier_is_left_alone():
    classifier = convzoo.create_model("resnet20")
    before = {k: v.clone() for k, v in classifier.state_dict().items()}
    fcn = convzoo.convolutionalize(classifier)
    with torch.no_grad():
        for p in fcn.parameters():
            p.add_(1.0)
    assert all(torch.equal(before[k], v) for k, v in classifier.state_dict().items())
    assert isinstance(classifier.fc, nn.Linear)


def test_input_size_and_unsupported_networks():
    bare = ResNet(BasicBlock, [1, 1, 1, 1], num_classes=3)  # built directly: no card to read a size from
    with pytest.raises(ValueError, match="input_size"):
        convzoo.convolutionalize(bare)
    assert convzoo.convolutionalize(bare, input_size=(64, 64)).pool.kernel_size == (2, 2)
    with pytest.raises(ValueError, match="cannot convolutionalize LeNet5"):
        convzoo.convolutionalize(convzoo.create_model("lenet5"))
