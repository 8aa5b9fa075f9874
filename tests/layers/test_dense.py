"""DenseLayer, DenseBlock and Transition on their own: channel bookkeeping, the concatenation that keeps the
input untouched at the front, the transition's halving, and memory_efficient checkpointing."""
import pytest
import torch
from torch import nn

from convzoo.layers.dense import DenseBlock, DenseLayer, Transition


def test_dense_layer_returns_growth_rate_new_maps_at_the_same_size():
    layer = DenseLayer(in_chans=10, growth_rate=6, bn_size=4)
    assert layer(torch.randn(2, 10, 9, 7)).shape == (2, 6, 9, 7)
    assert layer.conv1.weight.shape == (24, 10, 1, 1)  # bottleneck of bn_size * k channels
    assert layer.conv2.weight.shape == (6, 24, 3, 3)


def test_dense_layer_takes_a_list_of_earlier_maps_as_their_concatenation():
    layer = DenseLayer(in_chans=7, growth_rate=3).eval()
    a, b = torch.randn(2, 4, 5, 5), torch.randn(2, 3, 5, 5)
    assert torch.equal(layer([a, b]), layer(torch.cat([a, b], 1)))


@pytest.mark.parametrize("in_chans, num_layers, growth_rate", [(16, 4, 12), (5, 1, 3), (24, 6, 8)])
def test_dense_block_output_channels_are_input_plus_layers_times_growth(in_chans, num_layers, growth_rate):
    block = DenseBlock(num_layers, in_chans, growth_rate)
    assert block(torch.randn(2, in_chans, 6, 6)).shape == (2, in_chans + num_layers * growth_rate, 6, 6)
    assert block.out_chans == in_chans + num_layers * growth_rate
    assert list(block) == [f"denselayer{i}" for i in range(1, num_layers + 1)]
    # Layer i sees the input and the i - 1 earlier layers' maps.
    assert [layer.norm1.num_features for layer in block.values()] == [
        in_chans + i * growth_rate for i in range(num_layers)]


def test_dense_block_keeps_its_input_unchanged_at_the_front_then_each_layer_in_order():
    block = DenseBlock(num_layers=3, in_chans=8, growth_rate=4).eval()
    x = torch.randn(2, 8, 5, 5)
    with torch.no_grad():
        out = block(x)
        first, second, third = block.values()
        new1 = first(x)
        new2 = second([x, new1])
        new3 = third([x, new1, new2])
    assert torch.equal(out[:, :8], x)
    assert torch.equal(out[:, 8:12], new1)
    assert torch.equal(out[:, 12:16], new2)
    assert torch.equal(out[:, 16:20], new3)


def test_dense_block_input_reaches_the_output_with_identity_gradient():
    block = DenseBlock(num_layers=2, in_chans=3, growth_rate=2)
    x = torch.randn(1, 3, 4, 4, requires_grad=True)
    out = block(x)
    (grad,) = torch.autograd.grad(out[:, :3].sum(), x)
    assert torch.equal(grad, torch.ones_like(x))


@pytest.mark.parametrize("size, pooled", [(8, 4), (7, 3), (2, 1)])
def test_transition_halves_channels_and_spatial_size(size, pooled):
    transition = Transition(in_chans=32, out_chans=16)
    assert transition(torch.randn(2, 32, size, size)).shape == (2, 16, pooled, pooled)
    assert [name for name, _ in transition.named_children()] == ["norm", "relu", "conv", "pool"]
    assert transition.conv.weight.shape == (16, 32, 1, 1)


def test_transition_is_bn_relu_conv_then_average_pool():
    transition = Transition(in_chans=4, out_chans=2).eval()
    x = torch.randn(1, 4, 6, 6)
    expected = nn.functional.avg_pool2d(transition.conv(torch.relu(transition.norm(x))), 2)
    assert torch.allclose(transition(x), expected)


def _twin_blocks(drop_rate: float = 0.0) -> tuple[DenseBlock, DenseBlock]:
    plain = DenseBlock(num_layers=3, in_chans=6, growth_rate=4, drop_rate=drop_rate)
    efficient = DenseBlock(num_layers=3, in_chans=6, growth_rate=4, drop_rate=drop_rate, memory_efficient=True)
    efficient.load_state_dict(plain.state_dict())
    return plain.train(), efficient.train()


@pytest.mark.parametrize("drop_rate", [0.0, 0.3])
def test_memory_efficient_gives_identical_outputs_gradients_and_running_stats(drop_rate):
    plain, efficient = _twin_blocks(drop_rate)
    x = torch.randn(3, 6, 5, 5)
    outputs, input_grads = [], []
    for block in (plain, efficient):
        torch.manual_seed(1)  # the same dropout masks for both
        inp = x.clone().requires_grad_()
        out = block(inp)
        (out * torch.linspace(-1, 1, out.shape[1]).view(1, -1, 1, 1)).sum().backward()
        outputs.append(out)
        input_grads.append(inp.grad)
    assert torch.equal(outputs[0], outputs[1])
    assert torch.equal(input_grads[0], input_grads[1])
    for (name, p), q in zip(plain.named_parameters(), efficient.parameters()):
        assert torch.equal(p.grad, q.grad), name
    # Recomputing the bottleneck in backward must not update the BN running statistics a second time.
    for (name, a), b in zip(plain.named_buffers(), efficient.buffers()):
        assert torch.equal(a, b), name


def _count_norm1_calls(block: DenseBlock) -> list[int]:
    calls = [0]
    for layer in block.values():
        layer.norm1.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


def test_memory_efficient_recomputes_the_bottleneck_in_backward():
    plain, efficient = _twin_blocks()
    for block, expected_calls in ((plain, 3), (efficient, 6)):
        calls = _count_norm1_calls(block)
        block(torch.randn(2, 6, 4, 4, requires_grad=True)).sum().backward()
        assert calls[0] == expected_calls


def test_memory_efficient_does_not_checkpoint_without_gradients():
    _, efficient = _twin_blocks()
    calls = _count_norm1_calls(efficient)
    with torch.no_grad():
        efficient(torch.randn(2, 6, 4, 4))
    assert calls[0] == 3


def test_drop_rate_drops_new_maps_in_training_only():
    layer = DenseLayer(in_chans=4, growth_rate=64, drop_rate=0.5)
    x = torch.randn(2, 4, 6, 6)
    with torch.no_grad():
        layer.eval()
        kept = layer(x)
        layer.train()
        dropped = layer(x)
    assert (kept == 0).sum() == 0  # the last op is a conv, not a ReLU: no zeros of its own
    zero_fraction = (dropped == 0).float().mean()
    assert 0.35 < zero_fraction < 0.65
