"""The ShuffleNet v1 and v2 units on their own.

v1 (Zhang et al. 2018, Fig. 2): grouped 1x1 -> shuffle -> depthwise 3x3 (no ReLU) -> grouped 1x1, added to
the input at stride 1, concatenated with a 3x3 average pool of it at stride 2.
v2 (Ma et al. 2018, Fig. 3): channel split, one half untouched, shuffle with 2 groups; layout and keys of
torchvision's shufflenetv2.InvertedResidual (torchvision/models/shufflenetv2.py)."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from convzoo.layers.channel_shuffle import ChannelShuffle
from convzoo.layers.shuffle_units import ShuffleV1Unit, ShuffleV2Unit


def test_v1_stride_one_keeps_the_shape_and_groups_both_pointwise_convs():
    unit = ShuffleV1Unit(240, 240, 60, groups=3)
    assert unit(torch.randn(2, 240, 7, 7)).shape == (2, 240, 7, 7)
    assert unit.compress[0].groups == 3 and unit.compress[0].weight.shape == (60, 80, 1, 1)
    assert unit.depthwise[0].groups == 60 and unit.depthwise[0].weight.shape == (60, 1, 3, 3)
    assert unit.expand[0].groups == 3 and unit.expand[0].weight.shape == (240, 20, 1, 1)
    assert isinstance(unit.shuffle, ChannelShuffle) and unit.shuffle.groups == 3


def test_v1_no_activation_after_the_depthwise_conv():
    unit = ShuffleV1Unit(24, 24, 6, groups=3)
    assert [type(m) for m in unit.depthwise] == [nn.Conv2d, nn.BatchNorm2d]
    assert [type(m) for m in unit.expand] == [nn.Conv2d, nn.BatchNorm2d]
    assert [type(m) for m in unit.compress] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU]


def test_v1_stride_one_adds_the_identity_then_relu():
    unit = ShuffleV1Unit(12, 12, 3, groups=3)
    nn.init.zeros_(unit.expand[1].weight)  # branch output exactly 0 in eval mode
    unit.eval()
    x = torch.randn(2, 12, 5, 5)
    assert torch.equal(unit(x), F.relu(x))


def test_v1_stride_two_concatenates_an_average_pool_of_the_input():
    unit = ShuffleV1Unit(24, 240, 60, groups=3, stride=2, group_input_conv=False).eval()
    x = torch.rand(2, 24, 15, 15)  # non-negative, as the output of the ReLU before it
    out = unit(x)
    assert out.shape == (2, 240, 8, 8)
    assert torch.allclose(out[:, :24], F.avg_pool2d(x, 3, stride=2, padding=1))
    # The branch makes only the extra 216 channels, so widening costs no extra pointwise work.
    assert unit.expand[0].weight.shape == (216, 20, 1, 1)
    assert unit.depthwise[0].stride == (2, 2)


def test_v1_dense_first_conv_drops_the_shuffle():
    unit = ShuffleV1Unit(24, 240, 60, groups=3, stride=2, group_input_conv=False)
    assert unit.compress[0].groups == 1 and unit.compress[0].weight.shape == (60, 24, 1, 1)
    assert isinstance(unit.shuffle, nn.Identity)
    assert unit.expand[0].groups == 3


def test_v1_shuffle_lets_each_output_group_see_every_input_group():
    # Without the shuffle, two grouped 1x1 convs in a row keep the groups apart: output group 0 would not
    # depend on input group 1 at all.
    def dependence_of_first_half_on_second_half(unit):
        x = torch.randn(4, 16, 6, 6, requires_grad=True)
        unit(x)[:, :8].sum().backward()
        return x.grad[:, 8:].abs().sum()

    unit = ShuffleV1Unit(16, 16, 4, groups=2).eval()
    assert dependence_of_first_half_on_second_half(unit) > 0
    unit.shuffle = nn.Identity()
    assert dependence_of_first_half_on_second_half(unit) == 0


@pytest.mark.parametrize("kwargs, match", [
    (dict(in_chans=24, out_chans=48, mid_chans=12, groups=3, stride=1), "must equal"),
    (dict(in_chans=24, out_chans=240, mid_chans=61, groups=3, stride=2), "mid_chans"),
    (dict(in_chans=25, out_chans=240, mid_chans=60, groups=3, stride=2), "in_chans"),
    (dict(in_chans=24, out_chans=241, mid_chans=60, groups=3, stride=2, group_input_conv=False), "branch"),
    (dict(in_chans=24, out_chans=24, mid_chans=6, groups=3, stride=3), "stride"),
])
def test_v1_bad_configurations_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ShuffleV1Unit(**kwargs)


def test_v2_stride_one_passes_half_the_channels_untouched():
    unit = ShuffleV2Unit(116, 116, stride=1).eval()
    x = torch.randn(2, 116, 7, 7)
    out = unit(x)
    assert out.shape == x.shape
    # concat(untouched half, branch), shuffled with 2 groups: the untouched half lands on the even channels.
    assert torch.equal(out[:, 0::2], x[:, :58])
    assert not torch.equal(out[:, 1::2], x[:, 58:])
    assert len(unit.branch1) == 0 and sum(p.numel() for p in unit.branch1.parameters()) == 0


def test_v2_stride_two_uses_both_branches_on_the_whole_input():
    unit = ShuffleV2Unit(24, 116, stride=2)
    assert unit(torch.randn(2, 24, 15, 15)).shape == (2, 116, 8, 8)
    assert unit.branch1[0].weight.shape == (24, 1, 3, 3) and unit.branch1[0].stride == (2, 2)
    assert unit.branch2[0].weight.shape == (58, 24, 1, 1)
    assert unit.branch2[3].weight.shape == (58, 1, 3, 3) and unit.branch2[3].stride == (2, 2)


def _bn(prefix, chans):
    return {f"{prefix}.weight": (chans,), f"{prefix}.bias": (chans,)}


def test_v2_torchvision_keys_and_shapes():
    stride_two = {"branch1.0.weight": (24, 1, 3, 3), **_bn("branch1.1", 24), "branch1.2.weight": (58, 24, 1, 1),
                  **_bn("branch1.3", 58), "branch2.0.weight": (58, 24, 1, 1), **_bn("branch2.1", 58),
                  "branch2.3.weight": (58, 1, 3, 3), **_bn("branch2.4", 58), "branch2.5.weight": (58, 58, 1, 1),
                  **_bn("branch2.6", 58)}
    assert {k: tuple(v.shape) for k, v in ShuffleV2Unit(24, 116, stride=2).named_parameters()} == stride_two
    stride_one = {"branch2.0.weight": (58, 58, 1, 1), **_bn("branch2.1", 58), "branch2.3.weight": (58, 1, 3, 3),
                  **_bn("branch2.4", 58), "branch2.5.weight": (58, 58, 1, 1), **_bn("branch2.6", 58)}
    assert {k: tuple(v.shape) for k, v in ShuffleV2Unit(116, 116, stride=1).named_parameters()} == stride_one


def test_v2_bad_configurations_are_refused():
    with pytest.raises(ValueError, match="even out_chans"):
        ShuffleV2Unit(116, 232, stride=1)
    with pytest.raises(ValueError, match="even out_chans"):
        ShuffleV2Unit(24, 115, stride=2)
    with pytest.raises(ValueError, match="stride"):
        ShuffleV2Unit(24, 116, stride=3)
