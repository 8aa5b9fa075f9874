"""Multi-scale context modules: Yu & Koltun's context module (Table 1: dilations, widths, 67x67 receptive
field, 64 C^2 weights, identity initialisation), DeepLab v2's summed ASPP, DeepLab v3's ASPP in torchvision's
layout (torchvision/models/segmentation/deeplabv3.py: ASPP, ASPPConv, ASPPPooling, read with read_file from
pytorch/vision), and PSPNet's pyramid pooling."""
import pytest
import torch
from torch import nn

from convzoo.layers.context import ASPP, ASPPv2, ContextModule, PyramidPooling


def params(module):
    return sum(p.numel() for p in module.parameters())


def convs(module):
    return [m for m in module.modules() if isinstance(m, nn.Conv2d)]


def test_context_module_is_table_1():
    classes = 21
    basic = ContextModule(classes)
    large = ContextModule(classes, kind="large")
    assert [c.dilation[0] for c in convs(basic)] == [1, 1, 2, 4, 8, 16, 1, 1]
    assert [c.kernel_size[0] for c in convs(basic)] == [3] * 7 + [1]
    assert [c.out_channels // classes for c in convs(basic)] == [1] * 8
    assert [c.out_channels // classes for c in convs(large)] == [2, 2, 4, 8, 16, 32, 32, 1]
    # "The basic context module has 64 C^2 parameters" (weights; plus one bias per output channel).
    assert sum(c.weight.numel() for c in convs(basic)) == 64 * classes ** 2
    # Truncation (ReLU) after layers 1-7, none after the last.
    assert isinstance(basic.layers[-2], nn.ReLU) and isinstance(basic.layers[-1], nn.Conv2d)


def test_context_module_receptive_field_is_67():
    module = ContextModule(2)
    x = torch.rand(1, 2, 101, 101, requires_grad=True)
    module(x)[0, 0, 50, 50].backward()
    rows = x.grad.abs().sum(dim=(0, 1, 3)).nonzero().flatten()
    cols = x.grad.abs().sum(dim=(0, 1, 2)).nonzero().flatten()
    assert rows.max() - rows.min() + 1 == 67
    assert cols.max() - cols.min() + 1 == 67


@pytest.mark.parametrize("kind", ["basic", "large"])
def test_context_module_starts_as_the_identity(kind):
    x = torch.rand(2, 5, 24, 30)  # non-negative: the truncations pass it unchanged
    exact = ContextModule(5, kind=kind, init_noise=0.0)
    torch.testing.assert_close(exact(x), x)
    noisy = ContextModule(5, kind=kind)
    assert 0 < (noisy(x) - x).abs().max() < 0.2


def test_context_module_kind_is_checked():
    with pytest.raises(ValueError, match="basic"):
        ContextModule(3, kind="huge")


def test_aspp_v2_sums_its_branches():
    aspp = ASPPv2(64, 5, rates=(6, 12, 18, 24))
    assert [b.dilation[0] for b in aspp.branches] == [6, 12, 18, 24]
    assert [b.padding[0] for b in aspp.branches] == [6, 12, 18, 24]
    x = torch.randn(2, 64, 9, 11)
    torch.testing.assert_close(aspp(x), sum(branch(x) for branch in aspp.branches))
    assert aspp(x).shape == (2, 5, 9, 11)


def test_aspp_v2_sizes_are_deeplab_v2s():
    # ResNet-101: one 3x3 conv per rate from 2048 channels to the classes, with bias (fc1_voc12_c0..c3).
    assert params(ASPPv2(2048, 21)) == 4 * (3 * 3 * 2048 * 21 + 21)
    # VGG-16 ASPP-L: fc6 (3x3, 1024), fc7 (1x1, 1024), fc8 (1x1, classes) per rate.
    vgg = ASPPv2(512, 21, hidden=1024)
    assert params(vgg) == 4 * ((3 * 3 * 512 + 1) * 1024 + (1024 + 1) * 1024 + (1024 + 1) * 21)
    assert [type(m).__name__ for m in vgg.branches[0]] == ["Conv2d", "ReLU", "Dropout"] * 2 + ["Conv2d"]


def test_aspp_v3_has_torchvisions_keys_and_size():
    aspp = ASPP(2048, rates=(12, 24, 36))
    keys = {k: tuple(v.shape) for k, v in aspp.state_dict().items() if not k.endswith("num_batches_tracked")}
    expected = {"convs.0.0.weight": (256, 2048, 1, 1), "convs.4.1.weight": (256, 2048, 1, 1),
                "project.0.weight": (256, 1280, 1, 1)}
    for branch in (1, 2, 3):
        expected[f"convs.{branch}.0.weight"] = (256, 2048, 3, 3)
    for bn in ["convs.0.1", "convs.1.1", "convs.2.1", "convs.3.1", "convs.4.2", "project.1"]:
        expected.update({f"{bn}.{t}": (256,) for t in ("weight", "bias", "running_mean", "running_var")})
    assert keys == expected
    assert [aspp.convs[i][0].dilation[0] for i in (1, 2, 3)] == [12, 24, 36]
    assert all(aspp.convs[i][0].bias is None for i in range(4))
    # deeplabv3_resnet50 has 39,638,869 parameters at 21 classes (the issue): the ResNet-50 body
    # (25,557,032 - its 2048 x 1000 fc) + ASPP + DeepLabHead's 3x3 conv-BN (256) + 1x1 classifier.
    body = 25_557_032 - (2048 * 1000 + 1000)
    rest_of_head = 3 * 3 * 256 * 256 + 2 * 256 + 256 * 21 + 21
    assert params(aspp) == 39_638_869 - body - rest_of_head


def test_aspp_v3_image_pooling_branch_is_global():
    aspp = ASPP(8, rates=(1, 2, 3), out_chans=4).eval()
    x = torch.randn(2, 8, 5, 7)
    pooled = aspp.convs[4](x)
    assert pooled.shape == (2, 4, 5, 7)
    torch.testing.assert_close(pooled, pooled[:, :, :1, :1].expand_as(pooled))
    conv, bn = aspp.convs[4][1], aspp.convs[4][2]
    torch.testing.assert_close(pooled[:, :, 0, 0], torch.relu(bn(conv(x.mean((2, 3), keepdim=True))))[:, :, 0, 0])
    assert aspp(x).shape == (2, 4, 5, 7)


def test_pyramid_pooling_is_pspnets():
    ppm = PyramidPooling(2048).eval()
    assert ppm.out_chans == 4096
    assert [b[0].output_size for b in ppm.branches] == [1, 2, 3, 6]
    assert [b[1][0].out_channels for b in ppm.branches] == [512] * 4
    x = torch.randn(1, 2048, 13, 9)
    out = ppm(x)
    assert out.shape == (1, 4096, 13, 9)
    assert torch.equal(out[:, :2048], x)
    whole_image = out[:, 2048:2560]
    torch.testing.assert_close(whole_image, whole_image[:, :, :1, :1].expand_as(whole_image))
    # Corners are aligned: each corner pixel carries its corner bin exactly.
    six = ppm.branches[3](x)
    torch.testing.assert_close(out[:, 3584:, 0, 0], six[:, :, 0, 0])
    torch.testing.assert_close(out[:, 3584:, -1, -1], six[:, :, -1, -1])


def test_pyramid_pooling_bins_and_widths_are_arguments():
    ppm = PyramidPooling(64, bins=(1, 3), branch_chans=16)
    assert ppm.out_chans == 64 + 2 * 16
    assert ppm.eval()(torch.randn(2, 64, 6, 6)).shape == (2, 96, 6, 6)
