"""The CIFAR residual networks: the paper's 6n+2 ResNets with parameter-free shortcuts, pre-activation
ResNet-164/1001, Wide ResNets, ResNeXt-29 and ResNet-110 with stochastic depth."""
import pytest
import torch
from torch import nn

import convzoo
from convzoo.layers.drop_path import DropPath
from convzoo.layers.residual import (BasicBlock, Bottleneck, PreActBasicBlock, PreActBottleneck,
                                     ZeroPadShortcut)

PAPER_CIFAR_DEPTHS = [20, 32, 44, 56, 110, 1202]


def blocks_of(model):
    return [block for layer in (model.layer1, model.layer2, model.layer3) for block in layer]


def weighted_layers(model):
    return [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


@pytest.mark.parametrize("depth", PAPER_CIFAR_DEPTHS)
def test_paper_cifar_resnet_is_6n_plus_2_layers_with_free_shortcuts(depth):
    n = (depth - 2) // 6
    with torch.device("meta"):
        model = convzoo.create_model(f"resnet{depth}")
    assert len(weighted_layers(model)) == depth
    blocks = blocks_of(model)
    assert len(blocks) == 3 * n and all(isinstance(b, BasicBlock) for b in blocks)
    shortcuts = [b.downsample for b in blocks if b.downsample is not None]
    assert len(shortcuts) == 2 and all(isinstance(s, ZeroPadShortcut) for s in shortcuts)
    assert sum(p.numel() for s in shortcuts for p in s.parameters()) == 0
    assert [b.conv2.out_channels for b in (blocks[0], blocks[n], blocks[2 * n])] == [16, 32, 64]


@pytest.mark.parametrize("depth", PAPER_CIFAR_DEPTHS)
def test_paper_cifar_resnet_count_from_its_description(depth):
    """Section 4.2: 3x3 conv of 16, then 2n 3x3 convs at each of 16, 32, 64 filters, BN after every conv,
    option A shortcuts, a 10-way fully connected layer."""
    n = (depth - 2) // 6
    params = 3 * 9 * 16 + 2 * 16
    in_chans = 16
    for width in (16, 32, 64):
        params += 9 * in_chans * width + (2 * n - 1) * 9 * width * width + 2 * n * 2 * width
        in_chans = width
    params += 64 * 10 + 10
    assert convzoo.model_card(f"resnet{depth}").params == params


@pytest.mark.parametrize("depth", [20, 110])
def test_paper_cifar_resnet_macs_from_its_description(depth):
    n = (depth - 2) // 6
    macs = 32 * 32 * 3 * 9 * 16
    in_chans = 16
    for width, size in ((16, 32), (32, 16), (64, 8)):
        macs += size * size * 9 * (in_chans * width + (2 * n - 1) * width * width)
        in_chans = width
    macs += 64 * 10
    assert convzoo.model_card(f"resnet{depth}").macs == macs


def test_zero_padding_shortcut_carries_the_input_through_a_stage_change():
    model = convzoo.create_model("resnet20").eval()
    block = model.layer2[0]
    block.zero_init_last()
    x = torch.rand(1, 16, 32, 32)
    out = block(x)
    assert out.shape == (1, 32, 16, 16)
    assert torch.allclose(out[:, :16], x[:, :, ::2, ::2])
    assert torch.count_nonzero(out[:, 16:]) == 0


@pytest.mark.parametrize("name, per_stage", [("preact_resnet164", 18), ("preact_resnet1001", 111)])
def test_preact_cifar_layout(name, per_stage):
    with torch.device("meta"):
        model = convzoo.create_model(name)
    blocks = blocks_of(model)
    assert len(blocks) == 3 * per_stage and all(isinstance(b, PreActBottleneck) for b in blocks)
    assert 9 * per_stage + 2 == int(name.removeprefix("preact_resnet"))
    assert model.bn1 is None  # bare conv stem: the first block activates its input
    assert all(b.bn1 is not None for b in blocks)
    assert model.final_bn.num_features == 256
    projections = [b.downsample for b in blocks if b.downsample is not None]
    assert [p.weight.shape[:2] for p in projections] == [(64, 16), (128, 64), (256, 128)]


@pytest.mark.parametrize("name, depth, k", [("wrn16_8", 16, 8), ("wrn28_10", 28, 10), ("wrn40_4", 40, 4)])
def test_wide_resnet_layout(name, depth, k):
    with torch.device("meta"):
        model = convzoo.create_model(name)
    blocks = blocks_of(model)
    assert len(blocks) == 3 * (depth - 4) // 6 and all(isinstance(b, PreActBasicBlock) for b in blocks)
    assert model.conv1.out_channels == 16
    assert [layer[0].conv2.out_channels for layer in (model.layer1, model.layer2, model.layer3)] == [
        16 * k, 32 * k, 64 * k]
    # 1x1 shortcuts only where the shape changes: the first block of each stage.
    assert [i for i, b in enumerate(blocks) if b.downsample is not None] == [0, len(blocks) // 3,
                                                                             2 * len(blocks) // 3]
    assert all(b.dropout is None for b in blocks)


def test_wide_resnet_dropout_between_the_convs():
    model = convzoo.create_model("wrn16_8", dropout=0.3)
    assert all(b.dropout.p == 0.3 for b in blocks_of(model))
    assert sum(p.numel() for p in model.parameters()) == convzoo.model_card("wrn16_8").params
    with pytest.raises(ValueError, match="pre-activation"):
        convzoo.create_model("resnet20", dropout=0.3)


@pytest.mark.parametrize("name, cardinality", [("resnext29_8x64d", 8), ("resnext29_16x64d", 16)])
def test_resnext29_layout(name, cardinality):
    with torch.device("meta"):
        model = convzoo.create_model(name)
    blocks = blocks_of(model)
    assert len(weighted_layers(model)) == 29 + 3  # 29 layers plus the three projection shortcuts
    assert len(blocks) == 9 and all(isinstance(b, Bottleneck) for b in blocks)
    assert model.conv1.out_channels == 64
    # Section 5.3: bottleneck width C x 64 in the first stage, doubled per stage; outputs 256, 512, 1024.
    for stage, layer in enumerate((model.layer1, model.layer2, model.layer3)):
        assert layer[0].conv2.in_channels == cardinality * 64 * 2 ** stage
        assert layer[0].conv2.groups == cardinality
        assert layer[0].conv3.out_channels == 256 * 2 ** stage


def test_resnet110_sd_is_resnet110_with_linearly_decaying_survival():
    with torch.device("meta"):
        model = convzoo.create_model("resnet110_sd")
    drops = [b.drop_path for b in blocks_of(model)]
    assert len(drops) == 54 and all(isinstance(d, DropPath) and d.mode == "batch" for d in drops)
    survival = [d.survival_prob for d in drops]
    assert survival[-1] == pytest.approx(0.5)
    assert survival == pytest.approx([1 - (l + 1) / 54 * 0.5 for l in range(54)])
    assert convzoo.model_card("resnet110_sd").params == convzoo.model_card("resnet110").params
    with torch.device("meta"):
        assert blocks_of(convzoo.create_model("resnet110_sd", drop_path=0.2))[-1].drop_path.drop_prob == 0.2


def test_stochastic_depth_is_random_in_training_and_fixed_at_test_time():
    model = convzoo.create_model("resnet20", drop_path=0.5)
    x = torch.randn(4, 3, 16, 16)
    model.eval()
    assert torch.equal(model(x), model(x))
    model.train()
    # With 9 blocks each dropped with probability between 1/18 and 1/2, two passes drop the same set with
    # probability below 0.6, so ten passes are all equal with probability below 0.6 ** 9.
    torch.manual_seed(0)
    outs = [model(x) for _ in range(10)]
    assert any(not torch.allclose(outs[0], out) for out in outs[1:])


def test_other_cifar_nets_take_drop_path_too():
    with torch.device("meta"):
        for name in ("preact_resnet164", "wrn16_8", "resnext29_8x64d"):
            model = convzoo.create_model(name, drop_path=0.1, drop_path_mode="sample")
            assert blocks_of(model)[-1].drop_path.drop_prob == pytest.approx(0.1)


def test_cifar_nets_keep_32x32_through_stage_one():
    model = convzoo.create_model("resnet20").eval()
    sizes = []
    for layer in (model.layer1, model.layer2, model.layer3):
        layer.register_forward_hook(lambda module, args, out: sizes.append(tuple(out.shape[-2:])))
    model(torch.randn(1, 3, 32, 32))
    assert sizes == [(32, 32), (16, 16), (8, 8)]
