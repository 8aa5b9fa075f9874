"""SqueezeExcite: output = input * s with s in (0, 1) per (sample, channel), s a function of the channel means
only (Hu et al. 2017, eqs. 2-4), and 2*C*C/r + C/r + C parameters."""
import pytest
import torch

from convzoo.layers.squeeze_excite import SqueezeExcite


def gates_of(module, x):
    """The per-channel factors the module applied, read back from its output (x has no zeros)."""
    return module(x) / x


def positive_input(*shape):
    return torch.rand(*shape) + 0.5


@pytest.mark.parametrize("channels, reduction", [(64, 16), (256, 16), (512, 8), (48, 4)])
def test_parameter_count_is_two_fc_layers_with_bias(channels, reduction):
    se = SqueezeExcite(channels, reduction)
    expected = 2 * channels * channels // reduction + channels // reduction + channels
    assert sum(p.numel() for p in se.parameters()) == expected


def test_reduction_sets_the_hidden_width():
    se = SqueezeExcite(256, reduction=8)
    assert se.fc1.weight.shape == (32, 256, 1, 1) and se.fc1.bias.shape == (32,)
    assert se.fc2.weight.shape == (256, 32, 1, 1) and se.fc2.bias.shape == (256,)
    assert SqueezeExcite(256).fc1.out_channels == 16  # the paper's r = 16 by default


def test_reduction_larger_than_channels_is_refused():
    with pytest.raises(ValueError, match="reduction"):
        SqueezeExcite(8, reduction=16)


def test_output_has_input_shape():
    x = torch.randn(2, 32, 7, 5)
    assert SqueezeExcite(32, 4)(x).shape == x.shape


def test_each_channel_is_scaled_by_one_gate_in_open_unit_interval():
    se = SqueezeExcite(32, 4)
    s = gates_of(se, positive_input(3, 32, 6, 6))
    # One factor per (sample, channel): identical at every spatial position.
    assert torch.allclose(s, s[..., :1, :1].expand_as(s), atol=1e-6)
    assert (s > 0).all() and (s < 1).all()


def test_gates_depend_only_on_channel_means():
    se = SqueezeExcite(32, 4)
    x = positive_input(2, 32, 6, 6)
    # Same per-channel means, different spatial layout: a shuffle of the positions, and a constant map.
    shuffled = x.flatten(2)[..., torch.randperm(36)].reshape_as(x)
    constant = x.mean(dim=(2, 3), keepdim=True).expand_as(x).clone()
    s = gates_of(se, x)[..., 0, 0]
    assert torch.allclose(gates_of(se, shuffled)[..., 0, 0], s, atol=1e-6)
    assert torch.allclose(gates_of(se, constant)[..., 0, 0], s, atol=1e-6)
    # A different spatial size with those same means gives the same gates too.
    one_pixel = x.mean(dim=(2, 3), keepdim=True)
    assert torch.allclose(gates_of(se, one_pixel)[..., 0, 0], s, atol=1e-6)


def test_gates_change_with_the_channel_means():
    se = SqueezeExcite(32, 4)
    x = positive_input(1, 32, 4, 4)
    y = x.clone()
    y[:, :8] *= 3.0
    assert not torch.allclose(gates_of(se, x), gates_of(se, y), atol=1e-4)


def test_gates_follow_the_excitation_formula():
    # s = sigmoid(W2 relu(W1 z + b1) + b2), z the channel means: eqs. 2-3 of the paper as matrix products.
    se = SqueezeExcite(32, 4)
    x = torch.randn(2, 32, 5, 5)
    z = x.mean(dim=(2, 3))
    w1, b1 = se.fc1.weight.flatten(1), se.fc1.bias
    w2, b2 = se.fc2.weight.flatten(1), se.fc2.bias
    s = torch.sigmoid(torch.relu(z @ w1.T + b1) @ w2.T + b2)
    assert torch.allclose(se(x), x * s[:, :, None, None], atol=1e-6)


def test_zero_excitation_halves_every_channel():
    se = SqueezeExcite(16, 4)
    for p in se.parameters():
        torch.nn.init.zeros_(p)
    x = torch.randn(2, 16, 3, 3)
    assert torch.allclose(se(x), x / 2)


def test_gradients_reach_both_fc_layers_and_the_input():
    se = SqueezeExcite(16, 4)
    x = torch.randn(2, 16, 4, 4, requires_grad=True)
    se(x).square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in se.parameters())
    assert x.grad is not None and x.grad.abs().sum() > 0
