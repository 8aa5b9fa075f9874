"""The Zoph & Le controller: its shapes and initialisation, that what it samples is what it scores, the anchor
formula, and that REINFORCE moves it the way the rewards say."""
from __future__ import annotations

import copy
import itertools

import pytest
import torch

from convzoo.nas.controller import Controller, ControllerError, ReinforceUpdater, reinforce_loss
from convzoo.nas.space import SearchSpace



def test_shapes_and_init_range():
    space = SearchSpace(strides=(1, 2, 3))
    controller = Controller(space)
    assert controller.lstm.num_layers == 2 and controller.lstm.hidden_size == 35
    assert [head.out_features for head in controller.heads] == [len(v) for _, v in space.layer_choices()]
    assert [name for name, _ in controller.choices] == ["num_filters", "filter_height", "filter_width", "stride"]
    for name, parameter in controller.named_parameters():
        assert parameter.abs().max() <= 0.08, name
        assert parameter.std() > 0.02, name  # filled, not left at zero
    small = Controller(space, hidden_size=7, lstm_layers=1, init_range=0.01)
    assert small.lstm.num_layers == 1 and small.w_prev.weight.shape == (7, 7)
    assert max(float(p.detach().abs().max()) for p in small.parameters()) <= 0.01


def test_samples_are_valid_members_of_the_space_and_score_as_sampled():
    space = SearchSpace(num_filters=(8, 16), strides=(1, 2))
    controller = Controller(space)
    generator = torch.Generator().manual_seed(3)
    seen_inputs = set()
    for _ in range(20):
        sample = controller.sample(4, generator=generator)
        assert len(sample.layers) == 4
        assert sample.layers[0]["inputs"] == []
        for i, layer in enumerate(sample.layers):
            assert set(layer) == {"num_filters", "filter_height", "filter_width", "stride", "inputs"}
            assert layer["num_filters"] in space.num_filters
            assert layer["filter_height"] in space.filter_sizes and layer["filter_width"] in space.filter_sizes
            assert layer["stride"] in space.strides
            assert layer["inputs"] == sorted(set(layer["inputs"])) and all(0 <= j < i for j in layer["inputs"])
            seen_inputs.add(tuple(layer["inputs"]))
        space.check(space.make_spec(sample.layers, (1, 64, 64)))
        assert sample.log_prob.requires_grad and sample.log_prob < 0 and sample.entropy > 0
        torch.testing.assert_close(controller.log_prob(sample.layers), sample.log_prob)
    assert len(seen_inputs) > 3  # the anchors do decide: several input sets occur


def test_fixed_stride_is_not_a_decision():
    controller = Controller(SearchSpace(strides=(2,)))
    assert "stride" not in [name for name, _ in controller.choices]
    assert all(layer["stride"] == 2 for layer in controller.sample(3).layers)


def test_same_generator_seed_same_sample():
    controller = Controller(SearchSpace())
    first = controller.sample(5, generator=torch.Generator().manual_seed(7))
    second = controller.sample(5, generator=torch.Generator().manual_seed(7))
    assert first.layers == second.layers


def test_anchor_probability_is_the_papers_formula():
    controller = Controller(SearchSpace(), hidden_size=6)
    torch.manual_seed(1)
    previous, current = torch.randn(3, 6), torch.randn(6)
    by_hand = []
    for h_j in previous:
        z = controller.v.weight[0] @ torch.tanh(controller.w_prev.weight @ h_j + controller.w_curr.weight @ current)
        by_hand.append(1 / (1 + torch.exp(-z)))
    torch.testing.assert_close(controller.anchor_probabilities(previous, current), torch.stack(by_hand))


def test_log_prob_is_a_distribution_over_the_next_layer():
    # Summed over every possible layer 1 (inputs and choices), P(layer 0, layer 1) gives back P(layer 0): the
    # anchor Bernoulli and the softmaxes together are a proper distribution over sequences.
    space = SearchSpace(filter_sizes=(1, 3), num_filters=(8, 16, 24))
    controller = Controller(space)
    first = controller.sample(1).layers
    with torch.no_grad():
        joint = [controller.log_prob(first + [{"num_filters": n, "filter_height": h, "filter_width": w, "stride": 1,
                                               "inputs": inputs}])
                 for n, h, w, inputs in itertools.product(space.num_filters, space.filter_sizes, space.filter_sizes,
                                                          ([], [0]))]
        torch.testing.assert_close(torch.logsumexp(torch.stack(joint), 0), controller.log_prob(first))


def test_log_prob_refuses_a_sequence_outside_the_space():
    controller = Controller(SearchSpace())
    good = {"num_filters": 24, "filter_height": 3, "filter_width": 3, "stride": 1, "inputs": []}
    with pytest.raises(ControllerError, match=r"layers\[1\]\.num_filters"):
        controller.log_prob([good, {**good, "num_filters": 25}])
    with pytest.raises(ControllerError, match=r"layers\[0\]\.inputs"):
        controller.log_prob([{**good, "inputs": [0]}])
    with pytest.raises(ControllerError, match=r"layers\[1\]\.inputs"):
        controller.log_prob([good, {**good, "inputs": [1]}])


def test_reinforce_loss_is_the_papers_estimator():
    log_probs = [torch.tensor(-2.0), torch.tensor(-3.0)]
    assert float(reinforce_loss(log_probs, [0.5, 0.1], baseline=0.3)) == pytest.approx(-((0.2 * -2) + (-0.2 * -3)) / 2)
    with pytest.raises(ValueError, match="one reward per sample"):
        reinforce_loss(log_probs, [0.5], baseline=0.0)


@pytest.mark.parametrize("advantage", [0.5, -0.5])
def test_a_reinforce_step_moves_the_log_prob_with_the_advantage(advantage):
    controller = Controller(SearchSpace())
    updater = ReinforceUpdater(controller)
    layers = controller.sample(3).layers
    updater.baseline = 0.5  # an EMA from earlier children
    before = float(controller.log_prob(layers).detach())
    out = updater.step([layers], [0.5 + advantage])
    after = float(controller.log_prob(layers).detach())
    assert out["advantages"] == [pytest.approx(advantage)] and out["baseline"] == 0.5
    assert (after - before) * advantage > 0
    assert updater.baseline == pytest.approx(0.95 * 0.5 + 0.05 * (0.5 + advantage))  # EMA after the step


def test_first_baseline_is_the_first_batch_mean():
    controller = Controller(SearchSpace())
    updater = ReinforceUpdater(controller, baseline_decay=0.5)
    samples = [controller.sample(2).layers for _ in range(2)]
    out = updater.step(samples, [0.2, 0.6])
    assert out["baseline"] == pytest.approx(0.4)
    assert updater.baseline == pytest.approx(0.5 * (0.5 * 0.4 + 0.5 * 0.2) + 0.5 * 0.6)


def test_reinforce_learns_a_toy_reward():
    """Reward 1 when layer 0 has the most filters: the probability of that choice rises from 1/4 to most of
    the mass within 100 updates of 4 samples, at the paper's learning rate, without training any network."""
    space = SearchSpace(num_filters=(8, 16, 24, 32))
    controller = Controller(space)
    updater = ReinforceUpdater(controller)  # Adam, lr 6e-4

    def p_largest() -> float:
        with torch.no_grad():
            return sum(float(controller.log_prob([{"num_filters": 32, "filter_height": h, "filter_width": w,
                                                   "stride": 1, "inputs": []}]).exp())
                       for h, w in itertools.product(space.filter_sizes, repeat=2))

    start = p_largest()
    generator = torch.Generator().manual_seed(0)
    for _ in range(100):
        with torch.no_grad():
            samples = [controller.sample(1, generator=generator).layers for _ in range(4)]
        updater.step(samples, [float(s[0]["num_filters"] == 32) for s in samples])
    assert 0.15 < start < 0.35
    assert p_largest() > 0.6


def test_updater_state_round_trip():
    controller = Controller(SearchSpace())
    updater = ReinforceUpdater(controller)
    samples = [controller.sample(2).layers for _ in range(2)]
    updater.step(samples, [0.1, 0.3])
    state = copy.deepcopy(updater.state_dict())  # as read back from a file: no tensor shared with `updater`
    other = ReinforceUpdater(Controller(SearchSpace()))
    other.load_state_dict(state)
    assert other.baseline == updater.baseline and other.updates == 1
    updater.step(samples, [0.2, 0.9])
    other.step(samples, [0.2, 0.9])
    for a, b in zip(controller.parameters(), other.controller.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
