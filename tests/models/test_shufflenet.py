"""ShuffleNet v1 and v2 beyond the generic zoo test.

v1 (no torchvision version): Table 1's widths, strides and grouping, its complexity row (conv MACs counted
with fvcore), and the `scale` widths against the authors' released code (megvii-model/ShuffleNet-Series,
ShuffleNetV1/network.py and README).
v2: torchvision's key names and shapes, written out from torchvision/models/shufflenetv2.py (pytorch/vision:
ShuffleNetV2, InvertedResidual, the shufflenet_v2_x* builders), its parameter counts and "_ops" figures."""
import pytest
import torch
from fvcore.nn import FlopCountAnalysis
from torch import nn

import convzoo
from convzoo.layers.shuffle_units import ShuffleV1Unit
from convzoo.models.classification.shufflenet import ShuffleNetV1


def conv_and_linear_macs(model: nn.Module) -> tuple[int, int]:
    counter = FlopCountAnalysis(model.eval(), torch.zeros(1, 3, 224, 224))
    counter.unsupported_ops_warnings(False)
    counter.uncalled_modules_warnings(False)
    by_operator = counter.by_operator()
    return by_operator["conv"], by_operator["linear"]


def trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# ---------------------------------------------------------------- ShuffleNet v1

# Table 1: stage 2/3/4 output channels and the complexity row (MFLOPs, which are multiply-adds).
TABLE_1 = {1: ((144, 288, 576), 143), 2: ((200, 400, 800), 140), 3: ((240, 480, 960), 137),
           4: ((272, 544, 1088), 133), 8: ((384, 768, 1536), 137)}


@pytest.mark.parametrize("groups", sorted(TABLE_1))
def test_v1_follows_table_1(groups):
    widths, _ = TABLE_1[groups]
    model = convzoo.create_model(f"shufflenet_v1_g{groups}")
    assert model.conv1[0].weight.shape == (24, 3, 3, 3) and model.conv1[0].stride == (2, 2)
    x = model.maxpool(model.conv1(torch.zeros(1, 3, 224, 224)))
    assert x.shape[-2:] == (56, 56)
    for name, repeats, width, size in zip(("stage2", "stage3", "stage4"), (4, 8, 4), widths, (28, 14, 7)):
        stage = getattr(model, name)
        assert len(stage) == repeats and all(isinstance(unit, ShuffleV1Unit) for unit in stage)
        assert [unit.stride for unit in stage] == [2] + [1] * (repeats - 1)
        for unit in stage:
            assert unit.compress[0].out_channels == width // 4  # bottleneck = 1/4 of the output
        x = stage(x)
        assert x.shape[1:] == (width, size, size)
    assert model.fc.weight.shape == (1000, widths[-1])


@pytest.mark.parametrize("groups", sorted(TABLE_1))
def test_v1_first_pointwise_conv_of_stage_2_is_not_grouped(groups):
    model = convzoo.create_model(f"shufflenet_v1_g{groups}")
    compress_groups = [unit.compress[0].groups for stage in (model.stage2, model.stage3, model.stage4)
                       for unit in stage]
    assert compress_groups == [1] + [groups] * 15
    assert all(unit.expand[0].groups == groups for stage in (model.stage2, model.stage3, model.stage4)
               for unit in stage)


@pytest.mark.parametrize("groups", sorted(TABLE_1))
def test_v1_complexity_matches_table_1(groups):
    # Table 1 counts the convolutions only: with the FC added, g=4 and g=8 would round to 134 and 138.
    model = convzoo.create_model(f"shufflenet_v1_g{groups}")
    conv, linear = conv_and_linear_macs(model)
    assert round(conv / 1e6) == TABLE_1[groups][1]
    assert linear == 1000 * TABLE_1[groups][0][-1]
    assert conv + linear == model.card.macs


def test_v1_g3_is_the_137_million_mac_network():
    conv, linear = conv_and_linear_macs(convzoo.create_model("shufflenet_v1_g3"))
    assert 136e6 < conv < conv + linear < 138e6


@pytest.mark.parametrize("groups, scale, stem, widths", [
    # the authors' stage_out_channels for g=3 and g=8 at 0.5x, 1x, 2x
    (3, 0.5, 12, (120, 240, 480)), (3, 1.0, 24, (240, 480, 960)), (3, 2.0, 48, (480, 960, 1920)),
    (8, 0.5, 16, (192, 384, 768)), (8, 1.0, 24, (384, 768, 1536)), (8, 2.0, 48, (768, 1536, 3072)),
    # ... and at 1.5x, where they keep the stem at 24
    (3, 1.5, 24, (360, 720, 1440)), (8, 1.5, 24, (576, 1152, 2304)),
    # widths of 0.5 x Table 1 that are not multiples of 4g are rounded to the nearest one (136 -> 144 for g=4)
    (4, 0.5, 12, (144, 272, 544)), (1, 0.25, 12, (36, 72, 144)),
])
def test_v1_scale_widths(groups, scale, stem, widths):
    with torch.device("meta"):
        model = convzoo.create_model(f"shufflenet_v1_g{groups}", scale=scale)
    assert model.conv1[0].out_channels == stem
    assert tuple(stage[0].expand[0].out_channels + stage[0].compress[0].in_channels
                 for stage in (model.stage2, model.stage3, model.stage4)) == widths
    assert model.fc.in_features == widths[-1]


@pytest.mark.slow
@pytest.mark.parametrize("groups, scale, readme_mmacs, readme_params_m", [
    (3, 0.5, 38, 0.7), (8, 0.5, 40, 1.0), (3, 1.5, 292, 3.4), (8, 1.5, 290, 4.3), (3, 2.0, 524, 5.4),
    (8, 2.0, 522, 6.5),
])
def test_v1_scaled_complexity_matches_the_authors_release(groups, scale, readme_mmacs, readme_params_m):
    model = convzoo.create_model(f"shufflenet_v1_g{groups}", scale=scale)
    conv, linear = conv_and_linear_macs(model)
    assert round((conv + linear) / 1e6) == readme_mmacs
    # The README rounds 5.45 M down and 4.27 M up, so allow for either.
    assert abs(trainable(model) / 1e6 - readme_params_m) < 0.06


def test_v1_groups_outside_table_1_are_refused():
    with pytest.raises(ValueError, match=r"one of \[1, 2, 3, 4, 8\]"):
        ShuffleNetV1(groups=5)
    with pytest.raises(ValueError, match="scale"):
        ShuffleNetV1(groups=3, scale=0)


# ---------------------------------------------------------------- ShuffleNet v2

# torchvision's builders: stages_out_channels, num_params, "_ops" (GFLOPS, which are MACs); repeats [4, 8, 4].
TORCHVISION_V2 = {
    "shufflenet_v2_x0_5": ((24, 48, 96, 192, 1024), 1_366_792, 0.04),
    "shufflenet_v2_x1_0": ((24, 116, 232, 464, 1024), 2_278_604, 0.145),
    "shufflenet_v2_x1_5": ((24, 176, 352, 704, 1024), 3_503_624, 0.296),
    "shufflenet_v2_x2_0": ((24, 244, 488, 976, 2048), 7_393_996, 0.583),
}


def _bn(prefix: str, chans: int) -> dict[str, tuple]:
    return {f"{prefix}.weight": (chans,), f"{prefix}.bias": (chans,), f"{prefix}.running_mean": (chans,),
            f"{prefix}.running_var": (chans,), f"{prefix}.num_batches_tracked": ()}


def torchvision_shufflenet_v2_shapes(stage_chans, num_classes: int = 1000) -> dict[str, tuple]:
    """The state-dict keys and shapes of torchvision's ShuffleNetV2, written out from its source."""
    stem, *stage_outs, last = stage_chans
    shapes = {"conv1.0.weight": (stem, 3, 3, 3), **_bn("conv1.1", stem)}
    in_chans = stem
    for stage, repeats, out_chans in zip((2, 3, 4), (4, 8, 4), stage_outs):
        half = out_chans // 2
        for i in range(repeats):
            unit = f"stage{stage}.{i}"
            if i == 0:
                shapes.update({f"{unit}.branch1.0.weight": (in_chans, 1, 3, 3), **_bn(f"{unit}.branch1.1", in_chans),
                               f"{unit}.branch1.2.weight": (half, in_chans, 1, 1), **_bn(f"{unit}.branch1.3", half)})
            shapes.update({f"{unit}.branch2.0.weight": (half, in_chans if i == 0 else half, 1, 1),
                           **_bn(f"{unit}.branch2.1", half), f"{unit}.branch2.3.weight": (half, 1, 3, 3),
                           **_bn(f"{unit}.branch2.4", half), f"{unit}.branch2.5.weight": (half, half, 1, 1),
                           **_bn(f"{unit}.branch2.6", half)})
        in_chans = out_chans
    shapes.update({"conv5.0.weight": (last, in_chans, 1, 1), **_bn("conv5.1", last)})
    shapes.update({"fc.weight": (num_classes, last), "fc.bias": (num_classes,)})
    return shapes


@pytest.mark.parametrize("name", sorted(TORCHVISION_V2))
def test_v2_state_dict_is_torchvisions(name):
    stage_chans, num_params, _ = TORCHVISION_V2[name]
    with torch.device("meta"):
        model = convzoo.create_model(name)
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == torchvision_shufflenet_v2_shapes(stage_chans)
    assert trainable(model) == num_params


def test_v2_loads_a_torchvision_layout_state_dict_strictly():
    model = convzoo.create_model("shufflenet_v2_x1_0", num_classes=7).eval()
    shapes = torchvision_shufflenet_v2_shapes(TORCHVISION_V2["shufflenet_v2_x1_0"][0], num_classes=7)
    state = {k: (torch.rand(s) + 0.5 if "running_var" in k else torch.randn(s)) if s else torch.tensor(0)
             for k, s in shapes.items()}
    model.load_state_dict(state, strict=True)
    assert torch.equal(model.stage3[0].branch1[2].weight, state["stage3.0.branch1.2.weight"])
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 7)


@pytest.mark.parametrize("name", sorted(TORCHVISION_V2))
def test_v2_macs_match_torchvisions_ops(name):
    model = convzoo.create_model(name)
    conv, linear = conv_and_linear_macs(model)
    assert conv + linear == model.card.macs
    assert round((conv + linear) / 1e9, 3) == TORCHVISION_V2[name][2]


def test_v2_feature_map_sizes():
    model = convzoo.create_model("shufflenet_v2_x1_0")
    x = model.maxpool(model.conv1(torch.zeros(1, 3, 224, 224)))
    for stage, (chans, size) in zip((model.stage2, model.stage3, model.stage4), ((116, 28), (232, 14), (464, 7))):
        x = stage(x)
        assert x.shape[1:] == (chans, size, size)
    assert model.conv5(x).shape[1:] == (1024, 7, 7)
