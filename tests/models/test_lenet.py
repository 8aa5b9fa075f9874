"""LeNet-5 against LeCun et al. 1998, section II-B and Appendix A."""
import pytest
import torch
import torch.nn.functional as F

import convzoo
from convzoo.errors import InputSizeError
from convzoo.models.classification.lenet import C3_TABLE, ScaledTanh, TrainableSubsampling

# Table I, transcribed row by row: row = S2 map, column = C3 map, X = connected.
PAPER_TABLE_I = """
X . . . X X X . . X X X X . X X
X X . . . X X X . . X X X X . X
X X X . . . X X X . . X . X X X
. X X X . . X X X X . . X . X X
. . X X X . . X X X X . X X . X
. . . X X X . . X X X X . X X X
"""


def trainable(module):
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


@pytest.fixture
def lenet():
    return convzoo.create_model("lenet5")


def test_layer_parameter_counts_are_the_papers(lenet):
    # Section II-B gives each layer's trainable parameters.
    counts = {name: trainable(getattr(lenet, name)) for name in ("c1", "s2", "c3", "s4", "c5", "f6", "rbf")}
    assert counts == {"c1": 156, "s2": 12, "c3": 1516, "s4": 32, "c5": 48_120, "f6": 10_164, "rbf": 0}
    assert trainable(lenet) == 60_000


def test_c3_table_is_table_one():
    rows = [line.split() for line in PAPER_TABLE_I.strip().splitlines()]
    paper = tuple(tuple(s2 for s2 in range(6) if rows[s2][c3] == "X") for c3 in range(16))
    assert C3_TABLE == paper


def test_c3_output_map_depends_only_on_its_table_entry(lenet):
    s2_maps = torch.randn(1, 6, 14, 14, requires_grad=True)
    out = lenet.c3(s2_maps)
    assert out.shape == (1, 16, 10, 10)
    for c3_map, inputs in enumerate(C3_TABLE):
        (grad,) = torch.autograd.grad(out[:, c3_map].sum(), s2_maps, retain_graph=True)
        depends_on = {s2 for s2 in range(6) if grad[:, s2].abs().sum() > 0}
        assert depends_on == set(inputs), f"C3 map {c3_map}"


def test_feature_map_sizes(lenet):
    x = torch.randn(2, 1, 32, 32)
    sizes = []
    for name in ("c1", "s2", "c3", "s4", "c5"):
        x = getattr(lenet, name)(x)
        sizes.append(tuple(x.shape[1:]))
    assert sizes == [(6, 28, 28), (6, 14, 14), (16, 10, 10), (16, 5, 5), (120, 1, 1)]


def test_scaled_tanh_is_the_appendix_function():
    a = torch.linspace(-4, 4, 33)
    torch.testing.assert_close(ScaledTanh()(a), 1.7159 * torch.tanh(2 / 3 * a))
    # The paper's reason for A and S: f(1) = 1 and f(-1) = -1.
    torch.testing.assert_close(ScaledTanh()(torch.tensor([1.0, -1.0])), torch.tensor([1.0, -1.0]), atol=1e-3, rtol=0)


def test_subsampling_sums_2x2_blocks_times_a_coefficient_plus_a_bias():
    layer = TrainableSubsampling(2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([2.0, -1.0]))
        layer.bias.copy_(torch.tensor([0.5, 0.0]))
    x = torch.arange(32.0).view(1, 2, 4, 4)
    block_sums = x.unfold(2, 2, 2).unfold(3, 2, 2).sum(dim=(-1, -2))
    expected = block_sums * torch.tensor([2.0, -1.0]).view(1, 2, 1, 1) + torch.tensor([0.5, 0.0]).view(1, 2, 1, 1)
    torch.testing.assert_close(layer(x), expected)
    assert layer(x).shape == (1, 2, 2, 2)


def test_rbf_codes_are_fixed_buffers(lenet):
    assert "rbf.codes" in dict(lenet.named_buffers())
    assert "rbf.codes" not in dict(lenet.named_parameters())
    assert "rbf.codes" in lenet.state_dict()
    codes = lenet.rbf.codes
    assert codes.shape == (10, 84) and not codes.requires_grad
    assert set(codes.unique().tolist()) == {-1.0, 1.0}
    # Distinct and well apart: every pair differs in more than a quarter of the 84 pixels.
    hamming = (codes[:, None] != codes[None]).sum(-1) + 84 * torch.eye(10, dtype=torch.long)
    assert hamming.min() > 21
    # Deterministic: the same codes in every build.
    torch.testing.assert_close(convzoo.create_model("lenet5").rbf.codes, codes)


def test_output_is_minus_squared_distance_to_each_code(lenet):
    f6_state = torch.randn(3, 84)
    expected = -((f6_state[:, None, :] - lenet.rbf.codes[None]) ** 2).sum(-1)
    torch.testing.assert_close(lenet.rbf(f6_state), expected)
    # An F6 state equal to a class's code is at distance 0 from it: that class wins.
    scores = lenet.rbf(lenet.rbf.codes[3:4])
    assert scores[0, 3] == 0 and scores.argmax() == 3


def test_cross_entropy_on_the_output_is_the_papers_map_criterion_without_j(lenet):
    # Eq. 9: E = y_correct + log(exp(-j) + sum_i exp(-y_i)); with j -> infinity it is cross-entropy on -y.
    # (float64: the penalties are near 84 at initialisation, and exp(-84) is at the edge of float32.)
    y = -lenet.double()(torch.randn(4, 1, 32, 32, dtype=torch.float64))  # the RBF penalties
    target = torch.tensor([0, 3, 7, 9])
    j = torch.tensor(1e4, dtype=torch.float64)
    paper = y[torch.arange(4), target] + torch.log(torch.exp(-j) + torch.exp(-y).sum(1))
    torch.testing.assert_close(F.cross_entropy(-y, target, reduction="none"), paper)


def test_other_class_counts_work():
    model = convzoo.create_model("lenet5", num_classes=26, in_chans=3)
    assert model.rbf.codes.shape == (26, 84)
    assert len({tuple(code.tolist()) for code in model.rbf.codes}) == 26
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 26)
    assert trainable(model) == 60_000 + 2 * 6 * 25  # only C1 grows with the input channels


def test_initialisation_is_uniform_within_2_4_over_fan_in(lenet):
    """Every unit's parameters lie within +-2.4/F and reach close to it: the largest of n uniform draws falls
    below t x bound with probability t**n, so the largest must exceed (1e-6)**(1/n) of the bound (about 0.91
    of it for C1's 156 parameters, 0.32 for a subsampling layer's 12)."""
    units = [(lenet.c1, 25), (lenet.s2, 4), (lenet.s4, 4), (lenet.c5, 400), (lenet.f6, 120)]
    parameters = [([module.weight, module.bias], 2.4 / fan_in) for module, fan_in in units]
    parameters += [(list(lenet.c3.map_parameters(c3_map)), 2.4 / (25 * len(inputs)))  # 25 weights a map read
                   for c3_map, inputs in enumerate(C3_TABLE)]
    for tensors, bound in parameters:
        values = torch.cat([t.detach().flatten() for t in tensors]) / bound
        assert values.abs().max() <= 1
        assert values.abs().max() > 1e-6 ** (1 / values.numel()), (values.numel(), values.abs().max())
        assert values.min() < 0 < values.max()


def sixteen_convolutions(c3, x):
    """C3 as the paper draws it: output map i is a convolution of the S2 maps in Table I's column i only."""
    outputs = []
    for c3_map, inputs in enumerate(C3_TABLE):
        weight, bias = c3.map_parameters(c3_map)
        outputs.append(F.conv2d(x[:, list(inputs)], weight, bias))
    return torch.cat(outputs, dim=1)


def test_c3_as_one_masked_convolution_equals_sixteen_small_ones(lenet):
    torch.manual_seed(0)
    x = torch.randn(4, 6, 14, 14, dtype=torch.float64, requires_grad=True)
    c3 = lenet.c3.double()
    assert c3.weight.shape == (60, 5, 5) and c3.bias.shape == (16,)  # 60 kernels: Table I's 60 X marks
    ours, reference = c3(x), sixteen_convolutions(c3, x)
    torch.testing.assert_close(ours, reference, rtol=1e-12, atol=1e-12)
    # The same gradients too: the unconnected kernels are zeros that training never moves.
    upstream = torch.randn_like(ours)
    ours_grads = torch.autograd.grad(ours, (x, c3.weight, c3.bias), upstream)
    reference_grads = torch.autograd.grad(reference, (x, c3.weight, c3.bias), upstream)
    for got, expected in zip(ours_grads, reference_grads):
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    full = c3.full_weight()
    connected = torch.zeros(16, 6, dtype=torch.bool)
    for c3_map, inputs in enumerate(C3_TABLE):
        connected[c3_map, list(inputs)] = True
    assert full[~connected].abs().sum() == 0 and full[connected].abs().min() > 0


def test_checkpoints_of_the_sixteen_convolution_form_still_load(lenet, tmp_path):
    # What LeNet-5 saved before C3 became one convolution: c3.maps.<i>.weight (1 x inputs x 5 x 5) and .bias (1).
    old_state = {k: v for k, v in lenet.state_dict().items() if not k.startswith("c3.")}
    for c3_map in range(16):
        weight, bias = lenet.c3.map_parameters(c3_map)
        old_state[f"c3.maps.{c3_map}.weight"] = weight.detach().clone()
        old_state[f"c3.maps.{c3_map}.bias"] = bias.detach().clone()
    from safetensors.torch import save_file

    save_file(old_state, tmp_path / "old.safetensors")
    torch.manual_seed(1)
    fresh = convzoo.create_model("lenet5")
    report = convzoo.load_weights(fresh, tmp_path / "old.safetensors")
    assert report.remapped_keys == 2
    x = torch.randn(2, 1, 32, 32)
    torch.testing.assert_close(fresh(x), lenet(x), rtol=0, atol=0)


def test_inputs_larger_than_35_are_refused_with_a_clear_message(lenet):
    assert lenet(torch.randn(1, 1, 35, 35)).shape == (1, 10)
    with pytest.raises(InputSizeError, match="32x32"):
        lenet(torch.randn(1, 1, 36, 36))


def test_a_few_sgd_steps_lower_the_loss():
    model = convzoo.create_model("lenet5")
    images, labels = torch.randn(16, 1, 32, 32), torch.arange(16) % 10
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    losses = []
    for _ in range(20):
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
