"""MobileNet v1 and v2 beyond the generic zoo test.

v1: Table 1's structure, the width multiplier and input resolution against Tables 6 and 7 (parameters and
mult-adds), and Table 2's split of the cost between layer kinds, counted with fvcore (conv + linear MACs).
v2: torchvision's key names and shapes, written out from torchvision/models/mobilenetv2.py (pytorch/vision:
MobileNetV2, InvertedResidual, Conv2dNormActivation, _make_divisible), its 300.8 M MACs, width_mult rounding,
linear bottlenecks and residual placement."""
import pytest
import torch
from fvcore.nn import FlopCountAnalysis
from torch import nn

import convzoo
from convzoo.layers.inverted_residual import InvertedResidual
from convzoo.models.classification.mobilenet import MobileNetV1, MobileNetV2, make_divisible

BN_BUFFERS = ("running_mean", "running_var")


def _fvcore(model: nn.Module, size: int = 224) -> FlopCountAnalysis:
    counter = FlopCountAnalysis(model.eval(), torch.zeros(1, 3, size, size))
    counter.unsupported_ops_warnings(False)
    counter.uncalled_modules_warnings(False)
    return counter


def conv_linear_macs(model: nn.Module, size: int = 224) -> int:
    by_operator = _fvcore(model, size).by_operator()
    return by_operator["conv"] + by_operator["linear"]


def trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# ---------------------------------------------------------------- MobileNet v1


def test_v1_parameter_count_of_the_issue():
    assert trainable(convzoo.create_model("mobilenet_v1")) == 4_231_976


def test_v1_follows_table_1():
    model = MobileNetV1()
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    # "Counting depthwise and pointwise convolutions as separate layers, MobileNet has 28 layers": 27 + FC.
    assert len(convs) == 27
    assert convs[0].weight.shape == (32, 3, 3, 3) and convs[0].stride == (2, 2)
    depthwise = [c for c in convs if c.groups > 1]
    pointwise = [c for c in convs if c.kernel_size == (1, 1)]
    assert len(depthwise) == len(pointwise) == 13
    assert all(c.groups == c.in_channels == c.out_channels for c in depthwise)
    assert [c.stride[0] for c in depthwise] == [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1]
    assert [c.out_channels for c in pointwise] == [64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024]
    assert model.features(torch.zeros(1, 3, 224, 224)).shape == (1, 1024, 7, 7)
    assert model.classifier.weight.shape == (1000, 1024)


@pytest.mark.parametrize("alpha, paper_params_m, paper_mmacs", [(1.0, 4.2, 569), (0.75, 2.6, 325), (0.5, 1.3, 149),
                                                                (0.25, 0.5, 41)])
def test_v1_width_multiplier_matches_table_6(alpha, paper_params_m, paper_mmacs):
    model = convzoo.create_model("mobilenet_v1", alpha=alpha)
    assert round(trainable(model) / 1e6, 1) == paper_params_m
    assert round(conv_linear_macs(model) / 1e6) == paper_mmacs


def test_v1_card_macs_are_the_papers_569_million():
    model = convzoo.create_model("mobilenet_v1")
    macs = conv_linear_macs(model)
    assert macs == model.card.macs
    assert round(macs / 1e6) == 569


@pytest.mark.parametrize("size, paper_mmacs", [(192, 418), (160, 290), (128, 186)])
def test_v1_resolution_multiplier_is_the_input_size_table_7(size, paper_mmacs):
    model = convzoo.create_model("mobilenet_v1")
    assert model(torch.zeros(1, 3, size, size)).shape == (1, 1000)
    assert abs(conv_linear_macs(model, size) / 1e6 - paper_mmacs) < 1


def test_v1_cost_split_matches_table_2():
    model = MobileNetV1()
    per_module = _fvcore(model).by_module()
    macs = {"pointwise": 0, "depthwise": 0, "first": 0, "fc": 0}
    weights = dict.fromkeys(macs, 0)
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            kind = "fc"
        elif isinstance(module, nn.Conv2d):
            kind = "pointwise" if module.kernel_size == (1, 1) else "depthwise" if module.groups > 1 else "first"
        else:
            continue
        macs[kind] += per_module[name]
        weights[kind] += module.weight.numel()  # Table 2 counts weights, not biases or BN parameters
    share = {k: round(100 * v / sum(macs.values()), 2) for k, v in macs.items()}
    weight_share = {k: round(100 * v / sum(weights.values()), 2) for k, v in weights.items()}
    # Table 2 prints 1.19% mult-adds for the first conv, a transposition: its four rows then sum to 99.29%.
    assert share == {"pointwise": 94.86, "depthwise": 3.06, "first": 1.91, "fc": 0.18}
    assert weight_share == {"pointwise": 74.59, "depthwise": 1.06, "first": 0.02, "fc": 24.33}


def test_v1_width_multiplier_scales_every_layer_with_a_floor_of_8():
    model = MobileNetV1(alpha=0.25)
    assert model.features[0][0].out_channels == 8
    assert model.classifier.in_features == 256
    tiny = MobileNetV1(alpha=0.1)
    assert tiny.features[0][0].out_channels == 8 and tiny.classifier.in_features == 102
    with pytest.raises(ValueError, match="alpha"):
        MobileNetV1(alpha=0)


def test_v1_uses_plain_relu_as_the_paper():
    model = MobileNetV1()
    assert any(type(m) is nn.ReLU for m in model.modules())
    assert not any(isinstance(m, nn.ReLU6) for m in model.modules())


# ---------------------------------------------------------------- MobileNetV2

# torchvision's inverted_residual_setting: t, c, n, s
TORCHVISION_V2_SETTING = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                          (6, 160, 3, 2), (6, 320, 1, 1)]


def _bn(prefix: str, chans: int) -> dict[str, tuple]:
    shapes = {f"{prefix}.weight": (chans,), f"{prefix}.bias": (chans,), f"{prefix}.num_batches_tracked": ()}
    shapes.update({f"{prefix}.{b}": (chans,) for b in BN_BUFFERS})
    return shapes


def torchvision_mobilenet_v2_shapes(num_classes: int = 1000) -> dict[str, tuple]:
    """The state-dict keys and shapes of torchvision's mobilenet_v2(), written out from its source."""
    shapes: dict[str, tuple] = {}

    def conv_norm_activation(prefix: str, out_chans: int, in_per_group: int, kernel: int) -> None:
        shapes[f"{prefix}.0.weight"] = (out_chans, in_per_group, kernel, kernel)
        shapes.update(_bn(f"{prefix}.1", out_chans))

    conv_norm_activation("features.0", 32, 3, 3)
    in_chans, index = 32, 1
    for t, c, n, _ in TORCHVISION_V2_SETTING:
        for _ in range(n):
            hidden, prefix, position = in_chans * t, f"features.{index}.conv", 0
            if t != 1:
                conv_norm_activation(f"{prefix}.0", hidden, in_chans, 1)
                position = 1
            conv_norm_activation(f"{prefix}.{position}", hidden, 1, 3)
            shapes[f"{prefix}.{position + 1}.weight"] = (c, hidden, 1, 1)
            shapes.update(_bn(f"{prefix}.{position + 2}", c))
            in_chans, index = c, index + 1
    conv_norm_activation(f"features.{index}", 1280, in_chans, 1)
    shapes["classifier.1.weight"] = (num_classes, 1280)
    shapes["classifier.1.bias"] = (num_classes,)
    return shapes


def test_v2_state_dict_is_torchvisions():
    with torch.device("meta"):
        model = convzoo.create_model("mobilenet_v2")
    expected = torchvision_mobilenet_v2_shapes()
    assert len(expected) == 314  # stem 6 + t=1 block 12 + 16 blocks x 18 + last conv 6 + classifier 2
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == expected


def test_v2_loads_a_torchvision_layout_state_dict_strictly():
    model = convzoo.create_model("mobilenet_v2", num_classes=10).eval()
    state = {k: torch.randn(shape) if shape else torch.tensor(0)
             for k, shape in torchvision_mobilenet_v2_shapes(num_classes=10).items()}
    state = {k: v.abs() if "running_var" in k else v for k, v in state.items()}
    model.load_state_dict(state, strict=True)
    assert torch.equal(model.features[5].conv[2].weight, state["features.5.conv.2.weight"])
    assert torch.isfinite(model(torch.randn(1, 3, 64, 64))).all()


def test_v2_parameters_and_macs_match_torchvision():
    model = convzoo.create_model("mobilenet_v2")
    assert trainable(model) == 3_504_872
    macs = conv_linear_macs(model)
    assert macs == model.card.macs
    assert round(macs / 1e6, 1) == 300.8  # torchvision's "_ops": 0.301 GFLOPS (MACs)


def test_v2_linear_bottlenecks_and_residuals():
    model = MobileNetV2()
    blocks = [m for m in model.features if isinstance(m, InvertedResidual)]
    assert len(blocks) == 17
    # Residual wherever a block repeats at stride 1: n - 1 per row of Table 2.
    assert sum(b.use_residual for b in blocks) == sum(n - 1 for _, _, n, _ in TORCHVISION_V2_SETTING) == 10
    for block in blocks:
        assert isinstance(block.conv[-1], nn.BatchNorm2d) and isinstance(block.conv[-2], nn.Conv2d)
    activations = {type(m) for m in model.modules() if isinstance(m, (nn.ReLU, nn.ReLU6))}
    assert activations == {nn.ReLU6}
    assert model.features(torch.zeros(1, 3, 224, 224)).shape == (1, 1280, 7, 7)
    assert isinstance(model.classifier[0], nn.Dropout) and model.classifier[0].p == 0.2


@pytest.mark.parametrize("width_mult, stem, first_block_out, last", [(1.0, 32, 16, 1280), (0.5, 16, 8, 1280),
                                                                     (1.4, 48, 24, 1792), (0.35, 16, 8, 1280)])
def test_v2_width_mult_rounds_to_multiples_of_8(width_mult, stem, first_block_out, last):
    # torchvision's _make_divisible: nearest multiple of 8, never more than 10% down; last conv never narrowed.
    with torch.device("meta"):
        model = convzoo.create_model("mobilenet_v2", width_mult=width_mult)
    assert model.features[0][0].out_channels == stem
    assert model.features[1].out_chans == first_block_out
    assert model.features[-1][0].out_channels == last
    assert all(m.out_channels % 8 == 0 for m in model.modules() if isinstance(m, nn.Conv2d))


@pytest.mark.parametrize("value, divisor, expected", [(32, 8, 32), (44.8, 8, 48), (11.2, 8, 16), (5.6, 8, 8),
                                                      (1280, 8, 1280), (100, 32, 96), (47, 32, 64)])
def test_make_divisible(value, divisor, expected):
    # Nearest multiple, halves up (44.8 -> 48, 100 -> 96), at least the divisor (5.6 -> 8); but where the
    # nearest lies more than 10% below, one step up: 11.2 -> 16 not 8, 47 -> 64 not 32.
    assert make_divisible(value, divisor) == expected


def test_v2_initialisation_is_torchvisions():
    model = MobileNetV2()
    fc = model.classifier[1]
    assert fc.weight.std().item() == pytest.approx(0.01, rel=0.05) and torch.equal(fc.bias, torch.zeros(1000))
    first = model.features[0][0].weight  # kaiming normal, fan_out = 32 * 3 * 3
    assert first.std().item() == pytest.approx((2 / (32 * 9)) ** 0.5, rel=0.2)
