"""FCN beyond the generic segmentation zoo test: the Caffe reference's counts, its crop offsets derived
independently from the layers' geometry, any input size thanks to the 100-pixel padding, the skips' fixed and
learned upsampling, and torchvision's fcn_resnet* layout (checked against torchvision/models/segmentation/
fcn.py and _utils.py: `backbone` = ResNet without avgpool/fc at replace_stride_with_dilation=[False, True,
True], `classifier` = FCNHead(2048), `aux_classifier` = FCNHead(1024) on layer3)."""
import pytest
import torch
from torch import nn

import convzoo
from convzoo.models.segmentation.base import FCNHead
from convzoo.models.segmentation.fcn import CROP, FCN, bilinear_deconv

VGG16_CONVS = 14_714_688  # torchvision vgg16 without its classifier


def conv_params(cin, cout, k, bias=True):
    return cin * cout * k * k + (cout if bias else 0)


@pytest.mark.parametrize("name, skips", [("fcn32s", 0), ("fcn16s", 1), ("fcn8s", 2)])
def test_counts_as_the_caffe_reference(name, skips):
    """conv1-5, fc6 (7x7, 4096), fc7, score_fr; per skip a 1x1 score layer and a learned 4x4 2x upsampling
    (21x21x4x4, no bias); the final bilinear upsampling is fixed (lr_mult 0), so not counted."""
    count = VGG16_CONVS + conv_params(512, 4096, 7) + conv_params(4096, 4096, 1) + conv_params(4096, 21, 1)
    skip_chans = [512, 256][:skips]
    count += sum(conv_params(c, 21, 1) + 21 * 21 * 4 * 4 for c in skip_chans)
    assert count == convzoo.model_card(name).params
    if name == "fcn8s":
        assert count == 134_376_863


def _coordinate_map(modules):
    """(a, b) such that pixel j of the output of `modules`, run in order, centres on input pixel a*j + b."""
    a, b = 1.0, 0.0
    for m in modules:
        if isinstance(m, nn.ConvTranspose2d):
            k, s, p = m.kernel_size[0], m.stride[0], m.padding[0]
            a, b = a / s, a * (p - (k - 1) / 2) / s + b
        elif isinstance(m, (nn.Conv2d, nn.MaxPool2d)):
            k, s, p = (v if isinstance(v, int) else v[0] for v in (m.kernel_size, m.stride, m.padding))
            d = m.dilation if isinstance(m.dilation, int) else m.dilation[0]
            a, b = a * s, a * (-p + d * (k - 1) / 2) + b
    return a, b


def test_crop_offsets_follow_from_the_layers():
    with torch.device("meta"):
        model = FCN(stride=8)
    feats = list(model.features)
    pool3 = _coordinate_map(feats[:FCN.POOL3 + 1])
    pool4 = _coordinate_map(feats[:FCN.POOL4 + 1])
    score_fr = _coordinate_map(feats + [model.fc6, model.fc7])
    up2 = _coordinate_map(feats + [model.fc6, model.fc7, model.upscore2])
    assert (pool3[0], pool4[0], score_fr[0], up2[0]) == (8, 16, 32, 16)
    assert (up2[1] - pool4[1]) / pool4[0] == CROP["score_pool4"] == 5
    up4 = _coordinate_map(feats + [model.fc6, model.fc7, model.upscore2,
                                   model.upscore_pool4])
    assert (up4[1] - pool3[1]) / pool3[0] == CROP["score_pool3"] == 9
    for stride, chain in ((8, [model.upscore2, model.upscore_pool4]), (16, [model.upscore2]), (32, [])):
        with torch.device("meta"):
            final = FCN(stride=stride).upscore
        a, b = _coordinate_map(feats + [model.fc6, model.fc7] + chain
                               + [final])
        assert a == 1 and -b == CROP[stride]


@pytest.mark.parametrize("stride", [32, 16, 8])
def test_any_input_size(stride):
    with torch.device("meta"):
        model = FCN(stride=stride).eval()
        for size in (1, 2, 31, 32, 33, 100, 227, 500):
            assert model(torch.empty(1, 3, size, size + 5))["out"].shape == (1, 21, size, size + 5)


@pytest.mark.slow
def test_scoring_layers_start_at_zero_and_upsampling_bilinear():
    torch.manual_seed(0)
    model = FCN(stride=8, num_classes=3, in_chans=1).eval()
    for name in ("score_fr", "score_pool4", "score_pool3"):
        assert getattr(model, name).weight.abs().sum() == 0
    assert model(torch.randn(1, 1, 40, 40))["out"].abs().sum() == 0  # zero scores before any training
    for name, learnable in (("upscore2", True), ("upscore_pool4", True), ("upscore", False)):
        deconv = getattr(model, name)
        assert deconv.bias is None and deconv.weight.requires_grad == learnable
        assert deconv.weight[0, 1].abs().sum() == 0 and deconv.weight[1, 1].sum() > 0  # per class, bilinear


def test_fixed_upsampling_interpolates_bilinearly():
    """The 8x upsampling of a constant score map is that constant away from the borders, and of a ramp a
    ramp 8 times finer: bilinear interpolation."""
    up = bilinear_deconv(2, 8, learnable=False)
    with torch.no_grad():
        flat = up(torch.ones(1, 2, 6, 6))
        ramp = up(torch.arange(6.0).expand(1, 2, 6, 6))
    torch.testing.assert_close(flat[..., 8:-8, 8:-8], torch.ones_like(flat[..., 8:-8, 8:-8]))
    steps = ramp[0, 0, 20, 8:-8].diff()
    torch.testing.assert_close(steps, torch.full_like(steps, 1 / 8))


def test_fc_layers_take_vgg16_classifier_weights():
    """fc6/fc7 are VGG's fully connected layers reshaped; `features` keeps torchvision vgg16's keys."""
    with torch.device("meta"):
        model = FCN(stride=32)
        vgg = convzoo.create_model("vgg16")
    assert model.fc6.weight.shape == (4096, 512, 7, 7)
    assert model.fc6.weight.numel() == vgg.classifier[0].weight.numel()
    assert model.fc7.weight[..., 0, 0].shape == vgg.classifier[3].weight.shape
    vgg_features = {k: v.shape for k, v in vgg.state_dict().items() if k.startswith("features.")}
    ours = {k: v.shape for k, v in model.state_dict().items() if k.startswith("features.")}
    assert ours == vgg_features
    assert model.features[0].padding == (100, 100)


def _head_keys(prefix, in_chans, classes):
    inner = in_chans // 4
    return {f"{prefix}.0.weight": (inner, in_chans, 3, 3), f"{prefix}.1.weight": (inner,),
            f"{prefix}.1.bias": (inner,), f"{prefix}.1.running_mean": (inner,),
            f"{prefix}.1.running_var": (inner,), f"{prefix}.1.num_batches_tracked": (),
            f"{prefix}.4.weight": (classes, inner, 1, 1), f"{prefix}.4.bias": (classes,)}


@pytest.mark.parametrize("name, resnet", [("fcn_resnet50", "resnet50"), ("fcn_resnet101", "resnet101")])
def test_torchvision_state_dict_layout(name, resnet):
    with torch.device("meta"):
        model = convzoo.create_model(name, aux_loss=True)
        classifier = convzoo.create_model(resnet)
    expected = {f"backbone.{k}": tuple(v.shape) for k, v in classifier.state_dict().items()
                if not k.startswith("fc.")}
    expected.update(_head_keys("classifier", 2048, 21))
    expected.update(_head_keys("aux_classifier", 1024, 21))
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == expected


@pytest.mark.parametrize("name, params", [("fcn_resnet50", 35_322_218), ("fcn_resnet101", 54_314_346)])
def test_aux_head_counts(name, params):
    with torch.device("meta"):
        model = convzoo.create_model(name, aux_loss=True)
    assert sum(p.numel() for p in model.parameters()) == params  # torchvision's num_params with aux


@pytest.fixture(scope="module")
def fcn_resnet50():
    torch.manual_seed(0)
    return convzoo.create_model("fcn_resnet50", num_classes=3, aux_loss=True)


def test_backbone_is_torchvisions_dilated_resnet(fcn_resnet50):
    """The encoder computes what torchvision's resnet50(replace_stride_with_dilation=[False, True, True])
    computes up to layer4, given the same weights."""
    model = fcn_resnet50.eval()
    reference = convzoo.create_model("resnet50", replace_stride_with_dilation=(False, True, True)).eval()
    reference.load_state_dict(model.backbone.state_dict(), strict=False)
    x = torch.randn(1, 3, 19, 21)
    r = reference.maxpool(reference.relu(reference.bn1(reference.conv1(x))))
    r3 = reference.layer3(reference.layer2(reference.layer1(r)))
    layer3, layer4 = model.backbone(x)
    torch.testing.assert_close(layer3, r3)
    torch.testing.assert_close(layer4, reference.layer4(r3))


def test_output_is_upsampled_head_and_aux_in_every_mode(fcn_resnet50):
    model = fcn_resnet50.eval()
    x = torch.randn(2, 3, 17, 23)
    with torch.no_grad():
        layer3, layer4 = model.backbone(x)
        expected = nn.functional.interpolate(model.classifier(layer4), size=(17, 23), mode="bilinear",
                                             align_corners=False)
        evaluated = model(x)
        torch.testing.assert_close(evaluated["out"], expected)
        model.train()
        out = model(x)
    assert set(out) == set(evaluated) == {"out", "aux"} and out["aux"].shape == (2, 3, 17, 23)
    assert model.aux_weight == 0.5


def test_fcn_head_is_torchvisions():
    head = FCNHead(2048, 21)
    assert [type(m) for m in head] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.Dropout, nn.Conv2d]
    assert head[0].bias is None and head[0].padding == (1, 1) and head[3].p == 0.1
