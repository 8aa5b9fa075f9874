"""U-Net beyond the generic segmentation zoo test: the paper's sizes and count, crop-and-copy, seamless
tiling (the unpadded net's output depends only on the input window it covers), and the padded variant."""
import math

import pytest
import torch

import convzoo
from convzoo.errors import InputSizeError
from convzoo.models.segmentation.unet import UNet, center_crop

TINY = (2, 3, 3, 4, 4)  # the paper's depth with few channels, so real forwards are fast


def conv_params(cin, cout, k, bias=True):
    return cin * cout * k * k + (cout if bias else 0)


def test_parameter_count_from_figure_1():
    widths = (64, 128, 256, 512, 1024)
    count, cin = 0, 1
    for width in widths:  # contracting path and bottom: two 3x3 convs per level
        count += conv_params(cin, width, 3) + conv_params(width, width, 3)
        cin = width
    for width in reversed(widths[:-1]):  # expanding path: 2x2 up-conv, then two 3x3 convs on the concat
        count += conv_params(2 * width, width, 2) + conv_params(2 * width, width, 3) + conv_params(width, width, 3)
    count += conv_params(64, 2, 1)
    assert count == 31_030_658 == convzoo.model_card("unet").params


def test_572_in_388_out():
    with torch.device("meta"):
        model = convzoo.create_model("unet").eval()
        assert model(torch.empty(1, 1, 572, 572))["out"].shape == (1, 2, 388, 388)
    assert model.output_size((572, 572)) == (388, 388)
    assert model.border == 184


def test_skips_are_centre_cropped():
    x = torch.arange(36.0).view(1, 1, 6, 6)
    assert torch.equal(center_crop(x, (2, 2)), x[..., 2:4, 2:4])


def test_up_convolution_halves_channels_and_doubles_size():
    model = UNet()
    up = model.decoder[0].upconv
    assert (up.in_channels, up.out_channels, up.kernel_size, up.stride) == (1024, 512, (2, 2), (2, 2))
    assert up(torch.zeros(1, 1024, 28, 28)).shape == (1, 512, 56, 56)


def test_seamless_tiling():
    """The paper's overlap-tile property: growing the input at the bottom and right, by a valid tile step (16)
    or by any amount (mirror-padded inside), leaves the outputs already computed unchanged."""
    torch.manual_seed(0)
    model = UNet(widths=TINY).eval()
    x = torch.randn(1, 1, 220, 236)
    small = model(x[..., :188, :204])["out"]
    assert small.shape[-2:] == (4, 20)
    for h, w in ((204, 220), (197, 209), (220, 236)):
        big = model(x[..., :h, :w])["out"]
        assert big.shape[-2:] == (h - 184, w - 184)
        torch.testing.assert_close(big[..., :4, :20], small)


def test_too_small_names_the_minimum():
    model = UNet(widths=TINY)
    with pytest.raises(InputSizeError, match="at least 185x185"):
        model(torch.zeros(1, 1, 184, 300))
    assert model.eval()(torch.zeros(1, 1, 185, 185))["out"].shape[-2:] == (1, 1)


def test_padded_variant_keeps_any_size():
    torch.manual_seed(0)
    model = UNet(widths=TINY, padded=True).eval()
    for h, w in ((1, 1), (33, 50), (64, 64)):
        assert model(torch.randn(2, 1, h, w))["out"].shape == (2, 2, h, w)
    assert model.output_size((33, 50)) == (33, 50)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert all(m.bias is None for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3))


def test_padded_variant_pads_then_crops():
    """An input the 16-pixel stride does not divide runs as its zero-padded version, cropped back."""
    torch.manual_seed(0)
    model = UNet(widths=TINY, padded=True).eval()
    x = torch.randn(1, 1, 45, 40)
    padded = torch.nn.functional.pad(x, (0, 8, 0, 3))
    torch.testing.assert_close(model(x)["out"], model(padded)["out"][..., :45, :40])


def test_init_is_he_fan_in():
    torch.manual_seed(0)
    model = UNet()
    conv = model.bottleneck[1].conv  # 1024 -> 1024, 3x3: fan-in 9216
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / 9216), rel=0.01)
    up = model.decoder[0].upconv  # each output pixel sees one tap of each of 1024 channels
    assert up.weight.std().item() == pytest.approx(math.sqrt(2 / 1024), rel=0.01)
    assert all(m.bias.abs().sum() == 0 for m in model.modules() if isinstance(m, torch.nn.Conv2d))
