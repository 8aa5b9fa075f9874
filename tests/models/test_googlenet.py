"""GoogLeNet beyond the generic zoo test: the paper's Table 1 (widths, sizes, parameter count by hand),
its auxiliary classifiers, the fixed average pool's input range, and googlenet_bn against torchvision's
layout (checked against torchvision/models/googlenet.py, pytorch/vision commit 8f19c7dc, and the aux
output order fixed in pytorch/vision#8743)."""
import pytest
import torch
from torch import nn

import convzoo
from convzoo.errors import InputSizeError
from convzoo.layers.inception import BasicConv2d, ConvReLU, Inception
from convzoo.layers.lrn import LocalResponseNorm
from convzoo.models.classification import googlenet as googlenet_module
from convzoo.models.classification.googlenet import GoogLeNetOutputs
from convzoo.weights import fit_state_dict


def trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def meta_model(name: str, **kwargs) -> nn.Module:
    with torch.device("meta"):
        return convzoo.create_model(name, **kwargs)


def test_paper_parameter_count_by_hand():
    # Every convolution has a bias. Inception(in, #1x1, #3x3red, #3x3, #5x5red, #5x5, pool proj) has
    # in*(#1x1 + #3x3red + #5x5red + proj) + 9*#3x3red*#3x3 + 25*#5x5red*#5x5 + (sum of widths, the biases):
    # 3a: 192*(64+96+16+32) + 9*96*128 + 25*16*32 + 368 = 39,936 + 110,592 + 12,800 + 368 = 163,696
    # 3b: 256*(128+128+32+64) + 9*128*192 + 25*32*96 + 640 = 90,112 + 221,184 + 76,800 + 640 = 388,736
    # 4a: 480*(192+96+16+64) + 9*96*208 + 25*16*48 + 624 = 176,640 + 179,712 + 19,200 + 624 = 376,176
    # 4b: 512*(160+112+24+64) + 9*112*224 + 25*24*64 + 648 = 184,320 + 225,792 + 38,400 + 648 = 449,160
    # 4c: 512*(128+128+24+64) + 9*128*256 + 25*24*64 + 664 = 176,128 + 294,912 + 38,400 + 664 = 510,104
    # 4d: 512*(112+144+32+64) + 9*144*288 + 25*32*64 + 704 = 180,224 + 373,248 + 51,200 + 704 = 605,376
    # 4e: 528*(256+160+32+128) + 9*160*320 + 25*32*128 + 1024 = 304,128 + 460,800 + 102,400 + 1024 = 868,352
    # 5a: 832*(256+160+32+128) + 9*160*320 + 25*32*128 + 1024 = 479,232 + 460,800 + 102,400 + 1024 = 1,043,456
    # 5b: 832*(384+192+48+128) + 9*192*384 + 25*48*128 + 1264 = 625,664 + 663,552 + 153,600 + 1264 = 1,444,080
    inceptions = 163_696 + 388_736 + 376_176 + 449_160 + 510_104 + 605_376 + 868_352 + 1_043_456 + 1_444_080
    # conv1 7x7/2: 7*7*3*64 + 64; conv2 (3x3 reduce): 64*64 + 64; conv3 3x3: 9*64*192 + 192.
    stem = 9_472 + 4_160 + 110_784
    linear = 1024 * 1000 + 1000
    assert inceptions == 5_849_136
    # Table 1's own params column is rounded and sums to about 6.8M; this counts every weight and bias.
    assert stem + inceptions + linear == 6_998_552
    assert trainable(meta_model("googlenet")) == 6_998_552 == convzoo.model_card("googlenet").params


def test_auxiliary_classifiers_are_outside_the_default_count():
    # Each: 1x1 conv to 128 (in*128 + 128), FC 2048 -> 1024, linear 1024 -> 1000.
    aux1 = 512 * 128 + 128 + 2048 * 1024 + 1024 + 1024 * 1000 + 1000
    aux2 = 528 * 128 + 128 + 2048 * 1024 + 1024 + 1024 * 1000 + 1000
    assert trainable(meta_model("googlenet", aux_logits=True)) == 6_998_552 + aux1 + aux2 == 13_378_280
    # torchvision's aux conv has a batch norm instead of the bias: +128 per head.
    assert trainable(meta_model("googlenet_bn", aux_logits=True)) == 6_624_904 + aux1 + aux2 + 256 == 13_004_888


def test_paper_table1_sizes_at_224():
    model = meta_model("googlenet").eval()
    seen = {}
    stages = ["maxpool1", "conv3", "maxpool2", "inception3a", "inception3b", "maxpool3", "inception4a",
              "inception4b", "inception4c", "inception4d", "inception4e", "maxpool4", "inception5a",
              "inception5b", "avgpool"]
    for name in stages:
        getattr(model, name).register_forward_hook(lambda m, i, out, name=name: seen.__setitem__(name, out.shape[1:]))
    model(torch.empty(1, 3, 224, 224, device="meta"))
    assert {name: tuple(shape) for name, shape in seen.items()} == {
        "maxpool1": (64, 56, 56), "conv3": (192, 56, 56), "maxpool2": (192, 28, 28),
        "inception3a": (256, 28, 28), "inception3b": (480, 28, 28), "maxpool3": (480, 14, 14),
        "inception4a": (512, 14, 14), "inception4b": (512, 14, 14), "inception4c": (512, 14, 14),
        "inception4d": (528, 14, 14), "inception4e": (832, 14, 14), "maxpool4": (832, 7, 7),
        "inception5a": (832, 7, 7), "inception5b": (1024, 7, 7), "avgpool": (1024, 1, 1),
    }


def test_paper_layout_specifics():
    model = meta_model("googlenet", aux_logits=True)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert all(isinstance(m.branch1, ConvReLU) for m in model.modules() if isinstance(m, Inception))
    assert all(m.branch3[1].conv.kernel_size == (5, 5) for m in model.modules() if isinstance(m, Inception))
    # Figure 3: LocalRespNorm after the first max pool and after the 3x3 convolution.
    assert [name for name, m in model.named_children() if isinstance(m, LocalResponseNorm)] == ["lrn1", "lrn2"]
    names = [name for name, _ in model.named_children()]
    assert names.index("maxpool1") < names.index("lrn1") < names.index("conv2")
    assert names.index("conv3") < names.index("lrn2") < names.index("maxpool2")
    assert model.maxpool4.kernel_size == 3 and model.avgpool.kernel_size == 7
    assert model.dropout.p == 0.4 and model.aux1.dropout.p == 0.7
    assert model.aux1.pool.kernel_size == 5 and model.aux1.pool.stride == 3


def test_paper_init_follows_the_caffe_reference():
    model = convzoo.create_model("googlenet", aux_logits=True)
    assert torch.all(model.conv1.conv.bias == 0.2) and torch.all(model.aux1.fc1.bias == 0.2)
    assert torch.all(model.fc.bias == 0) and torch.all(model.aux2.fc2.bias == 0)
    # Uniform with variance 1/fan_in: bound sqrt(3 / fan_in).
    bound = (3 / (64 * 3 * 3)) ** 0.5
    weight = model.conv3.conv.weight
    assert weight.abs().max() <= bound and weight.abs().max() > 0.9 * bound


def test_paper_input_range_is_tight(monkeypatch):
    model = meta_model("googlenet").eval()
    low, high = googlenet_module.PAPER_INPUT_RANGE
    assert convzoo.model_card("googlenet").min_input_size == (low, low)
    assert model(torch.empty(1, 3, high, high, device="meta")).shape == (1, 1000)
    with pytest.raises(InputSizeError, match=f"{low} to {high} pixels"):
        model(torch.empty(1, 3, high + 1, high + 1, device="meta"))
    # Without the check, one pixel more reaches the 7x7 pool at 8x8 and the linear layer fails.
    monkeypatch.setattr(googlenet_module, "PAPER_INPUT_RANGE", (low, 10_000))
    with pytest.raises(RuntimeError):
        model(torch.empty(1, 3, high + 1, high + 1, device="meta"))


@pytest.mark.parametrize("size", [223, 254])
def test_paper_aux_classifiers_work_across_the_input_range(size):
    model = meta_model("googlenet", aux_logits=True).train()
    out = model(torch.empty(2, 3, size, size, device="meta"))
    assert [tuple(t.shape) for t in out] == [(2, 1000)] * 3


@pytest.mark.parametrize("name", ["googlenet", "googlenet_bn"])
def test_training_returns_named_outputs_in_torchvision_order(name):
    size = convzoo.model_card(name).input_size[1]
    model = meta_model(name, num_classes=7, aux_logits=True).train()
    heads = {}
    model.aux1.register_forward_hook(lambda m, i, out: heads.__setitem__("aux1", out))
    model.aux2.register_forward_hook(lambda m, i, out: heads.__setitem__("aux2", out))
    out = model(torch.empty(2, 3, size, size, device="meta"))
    assert isinstance(out, GoogLeNetOutputs)
    assert out.aux_logits1 is heads["aux1"] and out.aux_logits2 is heads["aux2"]
    assert out.logits.shape == (2, 7)
    heads.clear()
    logits = model.eval()(torch.empty(2, 3, size, size, device="meta"))
    assert isinstance(logits, torch.Tensor) and logits.shape == (2, 7) and not heads


def basic_conv_keys(prefix: str, in_chans: int, out_chans: int, k: int) -> dict[str, tuple[int, ...]]:
    bn = {f"{prefix}.bn.{p}": (out_chans,) for p in ("weight", "bias", "running_mean", "running_var")}
    return {f"{prefix}.conv.weight": (out_chans, in_chans, k, k), f"{prefix}.bn.num_batches_tracked": (), **bn}


def torchvision_googlenet_keys(aux_logits: bool) -> dict[str, tuple[int, ...]]:
    """Key -> shape of torchvision's GoogLeNet state dict, written from torchvision/models/googlenet.py."""
    keys = {**basic_conv_keys("conv1", 3, 64, 7), **basic_conv_keys("conv2", 64, 64, 1),
            **basic_conv_keys("conv3", 64, 192, 3)}
    # inception_block(in_channels, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj), as in torchvision.
    blocks = {"3a": (192, 64, 96, 128, 16, 32, 32), "3b": (256, 128, 128, 192, 32, 96, 64),
              "4a": (480, 192, 96, 208, 16, 48, 64), "4b": (512, 160, 112, 224, 24, 64, 64),
              "4c": (512, 128, 128, 256, 24, 64, 64), "4d": (512, 112, 144, 288, 32, 64, 64),
              "4e": (528, 256, 160, 320, 32, 128, 128), "5a": (832, 256, 160, 320, 32, 128, 128),
              "5b": (832, 384, 192, 384, 48, 128, 128)}
    for stage, (c_in, c1, c3r, c3, c5r, c5, proj) in blocks.items():
        p = f"inception{stage}"
        keys |= basic_conv_keys(f"{p}.branch1", c_in, c1, 1)
        keys |= basic_conv_keys(f"{p}.branch2.0", c_in, c3r, 1) | basic_conv_keys(f"{p}.branch2.1", c3r, c3, 3)
        keys |= basic_conv_keys(f"{p}.branch3.0", c_in, c5r, 1) | basic_conv_keys(f"{p}.branch3.1", c5r, c5, 3)
        keys |= basic_conv_keys(f"{p}.branch4.1", c_in, proj, 1)
    if aux_logits:
        for aux, c_in in (("aux1", 512), ("aux2", 528)):
            keys |= basic_conv_keys(f"{aux}.conv", c_in, 128, 1)
            keys |= {f"{aux}.fc1.weight": (1024, 2048), f"{aux}.fc1.bias": (1024,),
                     f"{aux}.fc2.weight": (1000, 1024), f"{aux}.fc2.bias": (1000,)}
    return keys | {"fc.weight": (1000, 1024), "fc.bias": (1000,)}


@pytest.mark.parametrize("aux_logits", [False, True])
def test_googlenet_bn_has_torchvision_keys_and_shapes(aux_logits):
    model = meta_model("googlenet_bn", aux_logits=aux_logits)
    state = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert state == torchvision_googlenet_keys(aux_logits)


def test_googlenet_bn_layout_specifics():
    model = meta_model("googlenet_bn", aux_logits=True)
    convs = [m for m in model.modules() if isinstance(m, BasicConv2d)]
    assert len(convs) == 3 + 9 * 6 + 2
    assert all(c.bn.eps == 0.001 and c.conv.bias is None for c in convs)
    assert model.maxpool4.kernel_size == 2 and isinstance(model.avgpool, nn.AdaptiveAvgPool2d)
    assert model.dropout.p == 0.2 and model.aux2.dropout.p == 0.7
    assert not any(isinstance(m, LocalResponseNorm) for m in model.modules())
    assert convzoo.model_card("googlenet_bn").min_input_size == (15, 15)  # torchvision's documented min_size


def test_googlenet_bn_transform_input_matches_torchvision_formula():
    model = meta_model("googlenet_bn", transform_input=True)
    x = torch.randn(2, 3, 8, 8)
    expected = torch.cat([x[:, 0:1] * (0.229 / 0.5) + (0.485 - 0.5) / 0.5,
                          x[:, 1:2] * (0.224 / 0.5) + (0.456 - 0.5) / 0.5,
                          x[:, 2:3] * (0.225 / 0.5) + (0.406 - 0.5) / 0.5], dim=1)
    torch.testing.assert_close(model._transform(x), expected)
    assert meta_model("googlenet_bn").transform_input is False
    with pytest.raises(ValueError, match="in_chans=3"):
        meta_model("googlenet_bn", transform_input=True, in_chans=1)


def conv_linear_macs(name: str) -> int:
    card = convzoo.model_card(name)
    model = meta_model(name).eval()
    macs = 0

    def count(module, _, out):
        nonlocal macs
        if isinstance(module, nn.Conv2d):
            macs += out[0].numel() * module.in_channels // module.groups * module.weight[0, 0].numel()
        else:
            macs += module.in_features * module.out_features

    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            module.register_forward_hook(count)
    model(torch.empty(1, *card.input_size, device="meta"))
    return macs


def test_card_macs():
    bn_macs = conv_linear_macs("googlenet_bn")
    paper_macs = conv_linear_macs("googlenet")
    assert (bn_macs, paper_macs) == (convzoo.model_card("googlenet_bn").macs, convzoo.model_card("googlenet").macs)
    # torchvision lists 1.50 GFLOPS (its FLOPS are multiply-adds) for its googlenet.
    assert round(bn_macs / 1e9, 2) == 1.50
    # The only cost between the two is the 5x5 (25 taps) against the 3x3 (9) of each branch3:
    # H*W*16*#5x5red*#5x5 per module, at 28x28 for 3a/3b, 14x14 for 4a-4e, 7x7 for 5a/5b.
    extra = 16 * (28 * 28 * (16 * 32 + 32 * 96)
                  + 14 * 14 * (16 * 48 + 24 * 64 + 24 * 64 + 32 * 64 + 32 * 128)
                  + 7 * 7 * (32 * 128 + 48 * 128))
    assert paper_macs - bn_macs == extra



def test_torchvision_checkpoint_with_aux_heads_fits_googlenet_bn():
    # torchvision's googlenet-1378be20.pth holds aux1.*/aux2.*: its builder loads it into a model with the
    # auxiliary classifiers and removes them afterwards.
    checkpoint = meta_model("googlenet_bn", aux_logits=True).state_dict()
    assert any(key.startswith("aux1.") for key in checkpoint)
    for aux_logits in (False, True):
        model = meta_model("googlenet_bn", aux_logits=aux_logits)
        fitted, _, problems = fit_state_dict(model, checkpoint)
        assert problems == {"missing": [], "unexpected": [], "mismatched": {}}
        model.load_state_dict(fitted, strict=True)
