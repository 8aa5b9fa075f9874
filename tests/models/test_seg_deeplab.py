"""DeepLab v1/v2/v3/v3+ beyond the generic segmentation zoo test: counts derived from the papers' layers,
the atrous layouts (pool strides, rates, output strides), ASPP-L's summed branches, torchvision's deeplabv3
layout (checked against torchvision/models/segmentation/deeplabv3.py: `classifier` = DeepLabHead(2048) =
ASPP(2048, [12, 24, 36]) + 3x3 conv-BN-ReLU + 1x1 conv, keys convs.0..4 / project; resnet at
replace_stride_with_dilation=[False, True, True]; aux FCNHead(1024)) and its published operation counts, the
v3+ decoder, and the CRF applied to a DeepLab prediction."""
import pytest
import torch
from torch import nn

import convzoo
from convzoo.layers.crf import DenseCRF
from convzoo.models.segmentation.base import FCNHead

VGG16_CONVS = 14_714_688
RESNET101_TRUNK = 44_549_160 - (2048 * 1000 + 1000)  # torchvision resnet101 without fc


def conv_params(cin, cout, k, bias=True):
    return cin * cout * k * k + (cout if bias else 0)


def bn_params(c):
    return 2 * c


def large_fov_branch(classes=21):
    return conv_params(512, 1024, 3) + conv_params(1024, 1024, 1) + conv_params(1024, classes, 1)


def test_counts_from_the_papers_layers():
    assert VGG16_CONVS + large_fov_branch() == 20_505_429 == convzoo.model_card("deeplab_v1").params
    assert VGG16_CONVS + 4 * large_fov_branch() == convzoo.model_card("deeplab_v2_vgg16").params
    assert RESNET101_TRUNK + 4 * conv_params(2048, 21, 3) == convzoo.model_card("deeplab_v2_resnet101").params
    aspp = (conv_params(2048, 256, 1, False) + 3 * conv_params(2048, 256, 3, False) + conv_params(2048, 256, 1, False)
            + conv_params(5 * 256, 256, 1, False) + 5 * bn_params(256) + bn_params(256))
    decoder = (conv_params(256, 48, 1, False) + bn_params(48) + conv_params(304, 256, 3, False) + bn_params(256)
               + conv_params(256, 256, 3, False) + bn_params(256) + conv_params(256, 21, 1))
    assert RESNET101_TRUNK + aspp + decoder == convzoo.model_card("deeplabv3plus").params


def test_large_fov_layout():
    with torch.device("meta"):
        model = convzoo.create_model("deeplab_v1").eval()
        scores = model.classifier(model.backbone(torch.empty(1, 3, 513, 513))[-1])
    assert scores.shape[-2:] == (65, 65)  # DeepLab's 513 -> 65 at output stride 8
    pools = [m for m in model.backbone.features if isinstance(m, nn.MaxPool2d)]
    assert [(p.kernel_size, p.stride, p.padding) for p in pools] == [(3, 2, 1)] * 3 + [(3, 1, 1)] * 2
    convs = [m for m in model.backbone.features if isinstance(m, nn.Conv2d)]
    assert [c.dilation[0] for c in convs] == [1] * 10 + [2] * 3
    fc6 = model.classifier.branches[0][0]
    assert (fc6.kernel_size, fc6.dilation, fc6.out_channels) == ((3, 3), (12, 12), 1024)


def test_aspp_l_sums_four_branches():
    torch.manual_seed(0)
    with torch.device("meta"):
        vgg = convzoo.create_model("deeplab_v2_vgg16")
    assert [b[0].dilation[0] for b in vgg.classifier.branches] == [6, 12, 18, 24]
    model = convzoo.create_model("deeplab_v2_resnet101", num_classes=4).eval()
    head = model.classifier
    assert [b.dilation[0] for b in head.branches] == [6, 12, 18, 24]
    features = torch.randn(1, 2048, 9, 9)
    torch.testing.assert_close(head(features), sum(branch(features) for branch in head.branches))


def test_v2_resnet_is_the_original_resnet_at_stride_8():
    with torch.device("meta"):
        model = convzoo.create_model("deeplab_v2_resnet101")
        x = torch.empty(1, 3, 321, 321)
        assert model.backbone(x)[-1].shape[-2:] == (41, 41)
    bottleneck = model.backbone.layer2[0]
    assert bottleneck.conv1.stride == (2, 2) and bottleneck.conv2.stride == (1, 1)  # stride in the 1x1
    assert model.backbone.layer3[1].conv2.dilation == (2, 2) and model.backbone.layer4[1].conv2.dilation == (4, 4)


def _bn_keys(prefix, c):
    return {f"{prefix}.weight": (c,), f"{prefix}.bias": (c,), f"{prefix}.running_mean": (c,),
            f"{prefix}.running_var": (c,), f"{prefix}.num_batches_tracked": ()}


def torchvision_deeplab_head_keys(classes):
    keys = {"classifier.0.convs.0.0.weight": (256, 2048, 1, 1), **_bn_keys("classifier.0.convs.0.1", 256)}
    for branch in (1, 2, 3):
        keys[f"classifier.0.convs.{branch}.0.weight"] = (256, 2048, 3, 3)
        keys.update(_bn_keys(f"classifier.0.convs.{branch}.1", 256))
    keys["classifier.0.convs.4.1.weight"] = (256, 2048, 1, 1)
    keys.update(_bn_keys("classifier.0.convs.4.2", 256))
    keys["classifier.0.project.0.weight"] = (256, 1280, 1, 1)
    keys.update(_bn_keys("classifier.0.project.1", 256))
    keys["classifier.1.weight"] = (256, 256, 3, 3)
    keys.update(_bn_keys("classifier.2", 256))
    keys["classifier.4.weight"] = (classes, 256, 1, 1)
    keys["classifier.4.bias"] = (classes,)
    return keys


@pytest.mark.parametrize("name, resnet", [("deeplabv3_resnet50", "resnet50"), ("deeplabv3_resnet101", "resnet101")])
def test_deeplabv3_torchvision_state_dict_layout(name, resnet):
    with torch.device("meta"):
        model = convzoo.create_model(name, aux_loss=True)
        classifier = convzoo.create_model(resnet)
        aux = FCNHead(1024, 21)
    expected = {f"backbone.{k}": tuple(v.shape) for k, v in classifier.state_dict().items() if not k.startswith("fc.")}
    expected.update(torchvision_deeplab_head_keys(21))
    expected.update({f"aux_classifier.{k}": tuple(v.shape) for k, v in aux.state_dict().items()})
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == expected
    assert [model.classifier[0].convs[i][0].dilation[0] for i in (1, 2, 3)] == [12, 24, 36]


@pytest.mark.parametrize("name, params", [("deeplabv3_resnet50", 42_004_074), ("deeplabv3_resnet101", 60_996_202)])
def test_deeplabv3_aux_counts(name, params):
    with torch.device("meta"):
        model = convzoo.create_model(name, aux_loss=True)
    assert sum(p.numel() for p in model.parameters()) == params  # torchvision's num_params


@pytest.mark.parametrize("name, gmacs", [("fcn_resnet50", 152.717), ("fcn_resnet101", 232.738),
                                         ("deeplabv3_resnet50", 178.722), ("deeplabv3_resnet101", 258.743)])
def test_operations_match_torchvisions_published_count(name, gmacs):
    """torchvision's `_ops` (GFLOPS in its tables, counted as multiply-adds) at 520x520 include the aux head,
    which its models run in eval mode too: the card's count plus the FCNHead on the 65x65 layer3 map."""
    aux = convzoo.summary(FCNHead(1024, 21), input_size=(1024, 65, 65), convention="conv_linear").total_macs
    assert round((convzoo.model_card(name).macs + aux) / 1e9, 3) == gmacs


def test_deeplabv3plus_layout():
    with torch.device("meta"):
        model = convzoo.create_model("deeplabv3plus").eval()
        low, high = model.backbone(torch.empty(1, 3, 512, 512))
    assert low.shape[1:] == (256, 128, 128) and high.shape[1:] == (2048, 32, 32)  # layer1 at 4, layer4 at 16
    assert model.backbone.layer4[1].conv2.dilation == (2, 2) and model.backbone.layer3[0].conv2.stride == (2, 2)
    assert [model.aspp.convs[i][0].dilation[0] for i in (1, 2, 3)] == [6, 12, 18]
    assert model.project[0].out_channels == 48 and model.fuse[0][0].in_channels == 256 + 48


def test_deeplabv3plus_pads_to_its_stride_and_crops():
    torch.manual_seed(0)
    model = convzoo.create_model("deeplabv3plus", num_classes=3).eval()
    x = torch.randn(1, 3, 37, 45)
    with torch.no_grad():
        out = model(x)["out"]
        padded = model(nn.functional.pad(x, (0, 3, 0, 11)))["out"]
    assert out.shape == (1, 3, 37, 45)
    torch.testing.assert_close(out, padded[..., :37, :45])


@pytest.mark.slow
def test_prediction_refined_by_the_dense_crf():
    """DeepLab feeds its softmax and the image to the CRF; the result is a distribution per pixel."""
    torch.manual_seed(0)
    model = convzoo.create_model("deeplab_v1", num_classes=3).eval()
    image = torch.rand(1, 3, 20, 24) * 255
    with torch.no_grad():
        probs = model(image)["out"].softmax(1)
    refined = DenseCRF(iterations=3)(image, probs)
    assert refined.shape == probs.shape
    torch.testing.assert_close(refined.sum(1), torch.ones(1, 20, 24))


def test_bare_deeplab_v2_is_the_papers_resnet101_and_takes_the_vgg16_backbone():
    with torch.device("meta"):
        resnet = convzoo.create_model("deeplab_v2")
        vgg = convzoo.create_model("deeplab_v2", backbone="vgg16")
    assert resnet.state_dict().keys() == convzoo.create_model("deeplab_v2_resnet101", num_classes=21).state_dict().keys()
    assert sum(p.numel() for p in resnet.parameters()) == convzoo.model_card("deeplab_v2_resnet101").params
    assert sum(p.numel() for p in vgg.parameters()) == convzoo.model_card("deeplab_v2_vgg16").params
    with pytest.raises(ValueError, match="'resnet101' or 'vgg16'.*not 'resnet50'"):
        convzoo.create_model("deeplab_v2", backbone="resnet50")


def layer4_rates(model):
    return [block.conv2.dilation[0] for block in model.backbone.layer4]


@pytest.mark.parametrize("output_stride, rates, aspp", [(16, [2, 4, 8], (6, 12, 18)), (8, [4, 8, 16], (12, 24, 36))])
def test_deeplabv3_multi_grid_and_output_stride(output_stride, rates, aspp):
    # The paper's section 3.2: layer4's units at the stage rate times Multi_Grid (1, 2, 4); Table 3's best.
    with torch.device("meta"):
        plain = convzoo.create_model("deeplabv3_resnet50", output_stride=output_stride)
        grid = convzoo.create_model("deeplabv3_resnet50", output_stride=output_stride, multi_grid=(1, 2, 4))
    assert layer4_rates(grid) == rates
    assert [b.conv2.padding[0] for b in grid.backbone.layer4] == rates  # 3x3 'same' padding at each rate
    assert layer4_rates(plain) == [rates[0] // 2, rates[0], rates[0]]  # torchvision's: first unit keeps the rate before
    atrous = [m.dilation[0] for m in grid.classifier[0].modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert tuple(atrous) == aspp
    assert sum(p.numel() for p in grid.parameters()) == convzoo.model_card("deeplabv3_resnet50").params


def test_multi_grid_keeps_the_map_size_and_changes_the_function():
    torch.manual_seed(0)
    plain = convzoo.create_model("deeplabv3plus", num_classes=3, backbone="resnet50").eval()
    grid = convzoo.create_model("deeplabv3plus", num_classes=3, backbone="resnet50", multi_grid=(1, 2, 4)).eval()
    grid.load_state_dict(plain.state_dict())
    x = torch.randn(1, 3, 70, 50)
    with torch.no_grad():
        a, b = plain(x)["out"], grid(x)["out"]
    assert a.shape == b.shape == (1, 3, 70, 50)
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError, match="one rate multiplier per unit.*3 units, got 2"):
        convzoo.create_model("deeplabv3plus", backbone="resnet50", multi_grid=(1, 2))
    with pytest.raises(ValueError, match="output_stride 8 or 16"):
        convzoo.create_model("deeplabv3plus", backbone="resnet50", output_stride=32, multi_grid=(1, 2, 4))
    with pytest.raises(ValueError, match="one spatial convolution; BasicBlock has 2"):
        convzoo.create_model("deeplabv3plus", backbone="resnet18", multi_grid=(1, 2))


def test_output_stride_is_a_segmentation_argument_only():
    with pytest.raises(ValueError, match="features_only=True"):
        convzoo.create_model("resnet18", output_stride=8)
    with pytest.raises(ValueError, match="output_stride 8 or 16"):
        convzoo.create_model("deeplabv3_resnet50", output_stride=32)
