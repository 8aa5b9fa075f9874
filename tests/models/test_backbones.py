"""Classification networks as encoders: create_model(..., features_only=True, out_indices, output_stride).

The dilation rule is checked against torchvision's replace_stride_with_dilation as our ResNet builds it
(torchvision/models/resnet.py, ResNet._make_layer: the first block of a dilated stage gets
`previous_dilation`, the rest the new one; read with read_file from pytorch/vision), and against
DeepLab-LargeFOV's VGG-16 (pool4 and pool5 3x3 stride 1 pad 1, conv5 dilation 2)."""
import pytest
import torch
from torch import nn

import convzoo
from convzoo.errors import InputSizeError
from convzoo.models.classification.resnet import ResNet
from convzoo.layers.residual import Bottleneck
from convzoo.models.features import FeatureExtractor
from convzoo.models.segmentation.backbones import create_backbone


def conv_geometry(module):
    return [(name, m.stride, m.dilation, m.padding) for name, m in module.named_modules()
            if isinstance(m, nn.Conv2d)]


def trainable(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_resnet50_stages():
    with torch.device("meta"):
        backbone = convzoo.create_model("resnet50", features_only=True)
        features = backbone(torch.empty(2, 3, 224, 224))
    assert [f.module for f in backbone.feature_info] == ["relu", "layer1", "layer2", "layer3", "layer4"]
    assert backbone.channels == (64, 256, 512, 1024, 2048)
    assert backbone.reductions == (2, 4, 8, 16, 32)
    assert [tuple(f.shape) for f in features] == [(2, c, 224 // r, 224 // r)
                                                 for c, r in zip(backbone.channels, backbone.reductions)]


@pytest.mark.parametrize("output_stride, dilate", [(8, (False, True, True)), (16, (False, False, True))])
def test_resnet_output_stride_is_torchvisions_replace_stride_with_dilation(output_stride, dilate):
    with torch.device("meta"):
        backbone = convzoo.create_model("resnet50", features_only=True, output_stride=output_stride)
        reference = ResNet(Bottleneck, [3, 4, 6, 3], replace_stride_with_dilation=dilate)
    assert conv_geometry(backbone) == conv_geometry(reference)
    assert backbone.reductions == (2, 4, 8, min(16, output_stride), output_stride)


def test_resnet_strided_in_1x1_is_dilated_as_deeplab_v2():
    # The paper's ResNet strides the first 1x1 of a stage; DeepLab-v2's ResNet-101 (its Caffe model, as
    # converted in DrSleep/tensorflow-deeplab-resnet model.py) drops that stride and dilates every 3x3 of
    # res4 by 2, res4a_branch2b included, and every 3x3 of res5 by 4.
    with torch.device("meta"):
        backbone = convzoo.create_model("resnet101", features_only=True, output_stride=8, stride_in_1x1=True)
    for layer, rate in ((backbone.layer3, 2), (backbone.layer4, 4)):
        assert all(block.conv2.dilation == (rate, rate) and block.conv2.padding == (rate, rate) for block in layer)
        assert all(conv.stride == (1, 1) for conv in layer.modules() if isinstance(conv, nn.Conv2d))
    assert backbone.layer2[0].conv1.stride == (2, 2)


def test_dilated_features_keep_the_size_of_odd_inputs():
    backbone = convzoo.create_model("resnet18", features_only=True, out_indices=(2, 4), output_stride=8).eval()
    layer2, layer4 = backbone(torch.randn(1, 3, 65, 47))
    assert layer2.shape[-2:] == layer4.shape[-2:] == (9, 6)  # ceil(65 / 8), ceil(47 / 8)


def test_state_dict_keys_are_the_classifiers_without_its_head():
    # Our resnet50's keys are torchvision's (tests/models/test_resnet.py), so the backbone's are torchvision's
    # segmentation `backbone.*` keys: a torchvision state dict loads with only fc.* unexpected.
    with torch.device("meta"):
        classifier = convzoo.create_model("resnet50")
        backbone = convzoo.create_model("resnet50", features_only=True, out_indices=(3, 4), output_stride=8)
        truncated = convzoo.create_model("resnet50", features_only=True, out_indices=(1, 3))
    classifier_keys = {k: v.shape for k, v in classifier.state_dict().items()}
    assert {k: v.shape for k, v in backbone.state_dict().items()} == {
        k: s for k, s in classifier_keys.items() if not k.startswith("fc.")}
    assert not any(k.startswith(("layer4.", "fc.")) for k in truncated.state_dict())
    assert trainable(backbone) == convzoo.model_card("resnet50").params - (2048 * 1000 + 1000)


def test_torchvision_state_dict_loads_and_features_match_the_classifier():
    classifier = convzoo.create_model("resnet18").eval()
    backbone = convzoo.create_model("resnet18", features_only=True).eval()
    result = backbone.load_state_dict(classifier.state_dict(), strict=False)
    assert result.missing_keys == [] and sorted(result.unexpected_keys) == ["fc.bias", "fc.weight"]
    x = torch.randn(2, 3, 64, 64)
    stem = classifier.relu(classifier.bn1(classifier.conv1(x)))
    layer1 = classifier.layer1(classifier.maxpool(stem))
    layer2 = classifier.layer2(layer1)
    layer3 = classifier.layer3(layer2)
    layer4 = classifier.layer4(layer3)
    with torch.no_grad():
        for ours, expected in zip(backbone(x), (stem, layer1, layer2, layer3, layer4)):
            torch.testing.assert_close(ours, expected)


def test_vgg16_output_stride_8_is_deeplab_largefov():
    with torch.device("meta"):
        backbone = convzoo.create_model("vgg16", features_only=True, output_stride=8)
    features = backbone.features
    pool4, pool5 = features[23], features[30]
    for pool in (pool4, pool5):
        assert (pool.kernel_size, pool.stride, pool.padding) == (3, 1, 1)
    assert [features[i].dilation for i in (24, 26, 28)] == [(2, 2)] * 3
    assert [features[i].padding for i in (24, 26, 28)] == [(2, 2)] * 3
    assert all(features[i].dilation == (1, 1) for i in range(23) if isinstance(features[i], nn.Conv2d))
    assert [features[i].stride for i in (4, 9, 16)] == [2, 2, 2]  # pools 1-3 keep their stride
    assert backbone.reductions == (1, 2, 4, 8, 8, 8)
    assert backbone.channels == (64, 128, 256, 512, 512, 512)
    assert backbone.min_input_size == (8, 8)
    assert convzoo.create_model("vgg16", features_only=True).min_input_size == (32, 32)


def test_mobilenet_v2_stages_and_dilation():
    backbone = convzoo.create_model("mobilenet_v2", features_only=True, output_stride=16).eval()
    assert backbone.channels == (16, 24, 32, 96, 1280)
    assert backbone.reductions == (2, 4, 8, 16, 16)
    # The stride-2 block of the last stage keeps rate 1; the depthwise convs after it are dilated by 2.
    assert backbone.features[14].conv[1][0].stride == (1, 1)
    assert backbone.features[14].conv[1][0].dilation == (1, 1)
    assert backbone.features[15].conv[1][0].dilation == (2, 2)
    shapes = [tuple(f.shape[1:]) for f in backbone(torch.randn(1, 3, 64, 64))]
    assert shapes == [(16, 32, 32), (24, 16, 16), (32, 8, 8), (96, 4, 4), (1280, 4, 4)]


def test_densenet_stages_end_activated():
    backbone = convzoo.create_model("densenet121", features_only=True, out_indices=(2, 4), output_stride=8).eval()
    assert backbone.channels == (512, 1024)
    assert backbone.reductions == (8, 8)
    transition3_pool = backbone.features.transition3.pool
    assert (transition3_pool.kernel_size, transition3_pool.stride, transition3_pool.padding) == (3, 1, 1)
    assert not transition3_pool.count_include_pad  # borders are averaged over real pixels only
    _, last = backbone(torch.randn(1, 3, 32, 32))
    assert last.shape == (1, 1024, 4, 4)
    assert (last >= 0).all()  # DenseNet's forward applies the ReLU after norm5


@pytest.mark.parametrize("name, channels", [
    ("shufflenet_v2_x1_0", (24, 24, 116, 232, 1024)),
    ("googlenet_bn", (64, 192, 480, 832, 1024)),
    ("resnet20", (16, 32, 64)),
    ("alexnet_owt", (64, 192, 256, 256)),
])
def test_other_families_serve_as_encoders(name, channels):
    with torch.device("meta"):
        backbone = convzoo.create_model(name, features_only=True)
    assert backbone.channels == channels


def test_in_chans_and_guard():
    with torch.device("meta"):
        backbone = convzoo.create_model("vgg11", features_only=True, in_chans=1, out_indices=(2,))
        assert backbone.channels == (256,)
        assert backbone(torch.empty(1, 1, 4, 4))[0].shape == (1, 256, 1, 1)
        with pytest.raises(InputSizeError, match="at least 4x4"):
            backbone(torch.empty(1, 1, 3, 3))
        with pytest.raises(InputSizeError, match="1-channel"):
            backbone(torch.empty(1, 3, 8, 8))


def test_model_args_rebuild_the_encoder():
    with torch.device("meta"):
        backbone = convzoo.create_model("resnet18", features_only=True, out_indices=(-2, -1), output_stride=16)
        rebuilt = convzoo.create_model(**backbone.model_args)
    assert backbone.model_args["out_indices"] == (3, 4)
    assert conv_geometry(rebuilt) == conv_geometry(backbone)


def test_create_backbone_has_no_input_guard():
    backbone = create_backbone("resnet18", out_indices=(4,), output_stride=8)
    assert isinstance(backbone, FeatureExtractor)
    assert not backbone._forward_pre_hooks
    assert backbone.reductions == (8,)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="features_only=True"):
        convzoo.create_model("resnet18", output_stride=8)
    with pytest.raises(ValueError, match="out_indices must pick among 0..4"):
        convzoo.create_model("resnet18", features_only=True, out_indices=(5,))
    with pytest.raises(ValueError, match="increasing"):
        convzoo.create_model("resnet18", features_only=True, out_indices=(3, 1))
    with pytest.raises(ValueError, match=r"output_stride=12; its stages are at reductions \[2, 4, 8, 16, 32\]"):
        convzoo.create_model("resnet18", features_only=True, output_stride=12)
    with pytest.raises(ValueError, match="LeNet5 cannot take output_stride"):
        convzoo.create_model("lenet5", features_only=True, output_stride=2)
    with pytest.raises(ValueError, match="features_only takes a classification network"):
        convzoo.create_model("unet", features_only=True)
    with pytest.raises(ValueError, match="transform_input"):
        convzoo.create_model("googlenet_bn", features_only=True, transform_input=True)
