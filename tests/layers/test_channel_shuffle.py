"""Channel shuffle on its own: the exact permutation, its inverse, the mixing it exists for, bad groupings."""
import pytest
import torch

from convzoo.layers.channel_shuffle import ChannelShuffle, channel_shuffle


def _labelled(channels: int) -> torch.Tensor:
    """A batch whose channel c holds the value c everywhere, so the output reads as a permutation."""
    return torch.arange(channels, dtype=torch.float32).view(1, channels, 1, 1).expand(2, channels, 3, 4).clone()


def _order(x: torch.Tensor) -> list[int]:
    return x[0, :, 0, 0].long().tolist()


@pytest.mark.parametrize("channels, groups, expected", [
    # reshape to (groups, n), transpose, flatten: the k-th channel of every group in turn
    (6, 2, [0, 3, 1, 4, 2, 5]),
    (6, 3, [0, 2, 4, 1, 3, 5]),
    (8, 4, [0, 2, 4, 6, 1, 3, 5, 7]),
    (12, 3, [0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]),
])
def test_shuffle_is_the_papers_transpose_permutation(channels, groups, expected):
    assert _order(channel_shuffle(_labelled(channels), groups)) == expected


@pytest.mark.parametrize("channels, groups", [(6, 2), (12, 3), (12, 4), (240, 3), (384, 8)])
def test_output_channel_k_times_g_plus_i_is_channel_k_of_group_i(channels, groups):
    order = _order(channel_shuffle(_labelled(channels), groups))
    per_group = channels // groups
    assert all(order[k * groups + i] == i * per_group + k for i in range(groups) for k in range(per_group))


@pytest.mark.parametrize("channels, groups", [(6, 2), (12, 3), (12, 4), (240, 3), (384, 8)])
def test_shuffling_with_the_transposed_grouping_undoes_it(channels, groups):
    x = torch.randn(2, channels, 3, 3)
    shuffled = channel_shuffle(x, groups)
    assert torch.equal(channel_shuffle(shuffled, channels // groups), x)
    if groups not in (1, channels // groups):
        # ... and only the transposed grouping does: shuffling twice with the same groups does not.
        assert not torch.equal(channel_shuffle(shuffled, groups), x)


def test_every_output_group_gets_a_channel_of_every_input_group():
    # What ShuffleNet needs: after the shuffle, the next group conv's groups each see all previous groups.
    channels, groups = 12, 3
    per_group = channels // groups
    order = _order(channel_shuffle(_labelled(channels), groups))
    for start in range(0, channels, per_group):
        assert {c // per_group for c in order[start:start + per_group]} == set(range(groups))


def test_one_group_or_one_channel_per_group_leaves_the_order():
    x = torch.randn(2, 5, 3, 3)
    assert torch.equal(channel_shuffle(x, 1), x)
    assert torch.equal(channel_shuffle(x, 5), x)


def test_module_matches_function_and_keeps_gradients_and_channels_last():
    module = ChannelShuffle(4)
    assert "groups=4" in repr(module)
    x = torch.randn(2, 8, 5, 5).contiguous(memory_format=torch.channels_last).requires_grad_()
    out = module(x)
    assert torch.equal(out, channel_shuffle(x.contiguous(), 4))
    out[:, 1].sum().backward()  # output channel 1 is input channel 2 (k=0 of group 1, 8 // 4 = 2 per group)
    assert x.grad[:, 2].abs().sum() > 0 and x.grad[:, [0, 1, 3, 4, 5, 6, 7]].abs().sum() == 0


def test_channels_not_divisible_by_groups_are_refused():
    with pytest.raises(ValueError, match="7 channels cannot be split into 2 groups"):
        channel_shuffle(torch.randn(1, 7, 2, 2), 2)
    with pytest.raises(ValueError, match="at least one group"):
        ChannelShuffle(0)
