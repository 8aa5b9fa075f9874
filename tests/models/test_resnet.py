"""The ImageNet ResNets beyond the generic zoo test: torchvision's checkpoint layout, the bottleneck's stride
placement and its cost, the pre-activation layout, and the keyword arguments every builder takes."""
import logging
import math

import pytest
import torch
from torch import nn

import convzoo
from convzoo.layers.drop_path import DropPath
from convzoo.layers.residual import Bottleneck, PreActBottleneck
from convzoo.models.classification.resnet import ResNet

BN_BUFFERS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def bn_shapes(name, channels):
    return {f"{name}.{t}": (() if t == "num_batches_tracked" else (channels,)) for t in BN_BUFFERS}


def torchvision_bottleneck_resnet_shapes(layers, groups=1, width_per_group=64, num_classes=1000):
    """State-dict keys and shapes of torchvision's bottleneck ResNet/ResNeXt, written from
    torchvision/models/resnet.py in pytorch/vision (commit 054e54c5, read with read_file): ResNet.__init__,
    _make_layer (downsample = Sequential(conv1x1, BN) on the first block of a stage whose stride or width
    changes) and Bottleneck (width = int(planes * width_per_group / 64) * groups, conv2 grouped)."""
    shapes = {"conv1.weight": (64, 3, 7, 7), **bn_shapes("bn1", 64)}
    in_planes = 64
    for stage, (planes, num_blocks) in enumerate(zip((64, 128, 256, 512), layers), start=1):
        width = int(planes * width_per_group / 64) * groups
        out = planes * 4
        for index in range(num_blocks):
            prefix = f"layer{stage}.{index}"
            shapes[f"{prefix}.conv1.weight"] = (width, in_planes, 1, 1)
            shapes.update(bn_shapes(f"{prefix}.bn1", width))
            shapes[f"{prefix}.conv2.weight"] = (width, width // groups, 3, 3)
            shapes.update(bn_shapes(f"{prefix}.bn2", width))
            shapes[f"{prefix}.conv3.weight"] = (out, width, 1, 1)
            shapes.update(bn_shapes(f"{prefix}.bn3", out))
            if index == 0:
                shapes[f"{prefix}.downsample.0.weight"] = (out, in_planes, 1, 1)
                shapes.update(bn_shapes(f"{prefix}.downsample.1", out))
            in_planes = out
    shapes["fc.weight"] = (num_classes, 2048)
    shapes["fc.bias"] = (num_classes,)
    return shapes


@pytest.mark.parametrize("name, layers, groups, width_per_group", [
    ("resnet50", [3, 4, 6, 3], 1, 64),
    ("resnext50_32x4d", [3, 4, 6, 3], 32, 4),
    ("wide_resnet50_2", [3, 4, 6, 3], 1, 128),
    ("resnext101_64x4d", [3, 4, 23, 3], 64, 4),
])
def test_torchvision_state_dict_keys_and_shapes(name, layers, groups, width_per_group):
    expected = torchvision_bottleneck_resnet_shapes(layers, groups, width_per_group)
    with torch.device("meta"):
        model = convzoo.create_model(name)
        ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        assert ours == expected
        # So a torchvision checkpoint loads with strict=True.
        checkpoint = {k: torch.empty(shape) for k, shape in expected.items()}
        model.load_state_dict(checkpoint, strict=True, assign=True)


def test_module_names_follow_torchvision():
    with torch.device("meta"):
        model = convzoo.create_model("resnet18")
    top = [name for name, _ in model.named_children()]
    assert top == ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool", "fc"]
    assert [name for name, _ in model.layer2[0].named_children()] == [
        "conv1", "bn1", "relu", "conv2", "bn2", "downsample"]


def conv_linear_macs(model, size=224):
    """Multiply-accumulates of conv and linear layers, counted by fvcore (one "flop" per MAC)."""
    from fvcore.nn import FlopCountAnalysis
    logging.getLogger("fvcore").setLevel(logging.ERROR)
    counter = FlopCountAnalysis(model.eval(), torch.zeros(1, 3, size, size))
    counter.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    by_op = counter.by_operator()
    return by_op.get("conv", 0) + by_op.get("linear", 0)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fvcore traces with torch.jit
def test_resnet50_cost_with_either_stride_placement():
    torch.set_num_threads(1)
    torchvision_layout = convzoo.create_model("resnet50")
    assert conv_linear_macs(torchvision_layout) == 4_089_184_256 == convzoo.model_card("resnet50").macs
    paper_layout = convzoo.create_model("resnet50", stride_in_1x1=True)
    # The paper's Table 1 gives 3.8e9 "FLOPs" (multiply-adds) for ResNet-50.
    assert round(conv_linear_macs(paper_layout) / 1e9, 2) == 3.86
    assert all(block.conv1.stride == (2, 2) for block in (paper_layout.layer2[0], paper_layout.layer4[0]))
    assert sum(p.numel() for p in paper_layout.parameters()) == 25_557_032


@pytest.mark.parametrize("name, gmacs", [
    # torchvision's model documentation lists these "GFLOPS" (multiply-accumulates, two decimals).
    ("resnet18", 1.81), ("resnet34", 3.66), ("resnet50", 4.09), ("resnet101", 7.80), ("resnet152", 11.51),
    ("wide_resnet50_2", 11.40), ("wide_resnet101_2", 22.75), ("resnext50_32x4d", 4.23),
    ("resnext101_32x8d", 16.41), ("resnext101_64x4d", 15.46),
])
def test_card_macs_agree_with_torchvision(name, gmacs):
    assert round(convzoo.model_card(name).macs / 1e9, 2) == gmacs


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_card_macs_are_measured():
    torch.set_num_threads(1)
    assert conv_linear_macs(convzoo.create_model("resnet18")) == convzoo.model_card("resnet18").macs


def test_stride_in_1x1_needs_a_bottleneck():
    with pytest.raises(ValueError, match="Bottleneck"):
        convzoo.create_model("resnet18", stride_in_1x1=True)


@pytest.mark.parametrize("depth, layers", [(18, [2, 2, 2, 2]), (50, [3, 4, 6, 3]), (152, [3, 8, 36, 3])])
def test_preact_count_follows_from_the_resnet_count(depth, layers):
    """Pre-activation vs torchvision's ResNet of the same depth: the projections lose their BN, a final BN is
    added, and each block normalises its input (before its first conv) where the post-activation block
    normalises its output (after its last conv); the first block's input BN is the stem's bn1."""
    bottleneck = depth >= 50
    expansion = 4 if bottleneck else 1
    delta = 2 * 512 * expansion  # final_bn
    in_planes = 64
    for stage, (planes, num_blocks) in enumerate(zip((64, 128, 256, 512), layers)):
        out = planes * expansion
        if stage > 0 or bottleneck:
            delta -= 2 * out  # the projection's BN
        for index in range(num_blocks):
            block_in = in_planes if index == 0 else out
            if not (stage == 0 and index == 0):
                delta += 2 * block_in
            delta -= 2 * out
        in_planes = out
    preact = convzoo.model_card(f"preact_resnet{depth}").params
    assert preact == convzoo.model_card(f"resnet{depth}").params + delta


def test_preact_layout():
    with torch.device("meta"):
        model = convzoo.create_model("preact_resnet50")
    assert isinstance(model.layer1[0], PreActBottleneck)
    assert model.layer1[0].bn1 is None  # the stem's bn1 + relu activate its input
    assert all(block.bn1 is not None for block in model.layer2)
    assert isinstance(model.layer2[0].downsample, nn.Conv2d)
    assert isinstance(model.final_bn, nn.BatchNorm2d) and model.final_bn.num_features == 2048


def test_preact_final_bn_relu_precedes_pooling():
    model = convzoo.create_model("preact_resnet18").eval()
    pooled = []
    model.avgpool.register_forward_pre_hook(lambda module, args: pooled.append(args[0]))
    model(torch.randn(1, 3, 64, 64))
    assert (pooled[0] >= 0).all()
    assert convzoo.create_model("resnet18").final_bn is None


def test_he_initialisation_and_zero_init_residual():
    model = convzoo.create_model("resnet50", zero_init_residual=True)
    conv = model.layer3[2].conv2
    fan_out = conv.out_channels * 9
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / fan_out), rel=0.05)
    assert all(torch.count_nonzero(block.bn3.weight) == 0 for layer in (model.layer1, model.layer4) for block in layer)
    assert torch.all(model.layer1[0].downsample[1].weight == 1)
    default = convzoo.create_model("resnet50")
    assert torch.all(default.layer1[0].bn3.weight == 1)


def test_drop_path_decays_linearly_over_all_blocks():
    with torch.device("meta"):
        model = convzoo.create_model("resnet50", drop_path=0.2, drop_path_mode="sample")
    blocks = [block for layer in (model.layer1, model.layer2, model.layer3, model.layer4) for block in layer]
    assert len(blocks) == 16
    assert all(isinstance(b.drop_path, DropPath) and b.drop_path.mode == "sample" for b in blocks)
    assert [b.drop_path.drop_prob for b in blocks] == pytest.approx([0.2 * (i + 1) / 16 for i in range(16)])
    with torch.device("meta"):
        assert all(b.drop_path is None for b in convzoo.create_model("resnet50").layer1)
        with pytest.raises(ValueError, match="drop_path_mode"):
            convzoo.create_model("resnet18", drop_path=0.1, drop_path_mode="row")


def test_drop_path_batch_mode_scales_branches_at_test_time():
    model = convzoo.create_model("resnet18", drop_path=0.5).eval()
    x = torch.randn(1, 3, 64, 64)
    reference = model(x)
    for layer in (model.layer1, model.layer2, model.layer3, model.layer4):
        for block in layer:
            block.drop_path.drop_prob = 0.0  # the same weights without test-time scaling
    assert not torch.allclose(model(x), reference)


def test_replace_stride_with_dilation_keeps_resolution():
    with torch.device("meta"):
        model = ResNet(Bottleneck, [3, 4, 6, 3], replace_stride_with_dilation=(False, True, True))
        features = []
        model.layer4.register_forward_hook(lambda module, args, out: features.append(out))
        model(torch.empty(1, 3, 224, 224))
    assert features[0].shape == (1, 2048, 28, 28)  # output stride 8
    # As torchvision: the first block of a dilated stage keeps the previous dilation.
    assert model.layer3[0].conv2.dilation == (1, 1) and model.layer3[1].conv2.dilation == (2, 2)
    assert model.layer4[0].conv2.dilation == (2, 2) and model.layer4[1].conv2.dilation == (4, 4)


def test_num_classes_and_in_chans():
    model = convzoo.create_model("resnet18", num_classes=7, in_chans=1)
    assert model.conv1.weight.shape == (64, 1, 7, 7)
    assert model(torch.randn(2, 1, 40, 40)).shape == (2, 7)
