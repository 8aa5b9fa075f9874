"""Stochastic depth (Huang et al. 2016) in both forms: the paper's per-mini-batch drop with test-time scaling,
and the per-sample drop path scaled by 1/keep in training."""
import pytest
import torch

from convzoo.layers.drop_path import DropPath, drop_path_schedule, stochastic_depth_rates

TRIALS = 4000


def test_linear_decay_follows_the_paper():
    # p_l = 1 - l/L (1 - p_L): ResNet-110 has L = 54 blocks and p_L = 0.5.
    rates = stochastic_depth_rates(0.5, 54)
    assert len(rates) == 54
    assert rates[-1] == pytest.approx(0.5)
    assert rates[0] == pytest.approx(0.5 / 54)
    survival = [1 - r for r in rates]
    assert survival[26] == pytest.approx(1 - 27 / 54 * 0.5)
    assert all(a > b for a, b in zip(survival, survival[1:]))


def test_schedule_leaves_out_zero_rates_and_carries_the_mode():
    assert drop_path_schedule(0.0, 3) == [None, None, None]
    modules = drop_path_schedule(0.3, 3, mode="sample")
    assert [m.mode for m in modules] == ["sample"] * 3
    assert [m.drop_prob for m in modules] == pytest.approx([0.1, 0.2, 0.3])


@pytest.mark.parametrize("bad", [-0.1, 1.0])
def test_rejects_impossible_rates(bad):
    with pytest.raises(ValueError):
        DropPath(bad)
    with pytest.raises(ValueError):
        stochastic_depth_rates(bad, 4)


def test_rejects_unknown_mode():
    with pytest.raises(ValueError, match="mode"):
        DropPath(0.2, mode="channel")
    with pytest.raises(ValueError, match="mode"):
        drop_path_schedule(0.0, 2, mode="channel")


def test_batch_mode_drops_the_whole_branch_for_the_whole_batch():
    drop = DropPath(0.3, mode="batch").train()
    branch = torch.randn(8, 4, 3, 3) + 5.0  # no zeros of its own
    kept = 0
    for _ in range(TRIALS):
        out = drop(branch)
        if torch.equal(out, branch):  # kept: passed through unscaled
            kept += 1
        else:
            assert torch.count_nonzero(out) == 0  # dropped: every sample, every value
    # Binomial(4000, 0.7): standard deviation 29, so 5 sigma is 0.036 of the trials.
    assert kept / TRIALS == pytest.approx(0.7, abs=0.036)


def test_batch_mode_scales_by_survival_at_test_time_so_expectations_match():
    drop = DropPath(0.3, mode="batch")
    branch = torch.randn(2, 3, 4, 4)
    drop.eval()
    assert torch.allclose(drop(branch), branch * 0.7)
    drop.train()
    mean = sum(drop(branch) for _ in range(TRIALS)) / TRIALS
    assert torch.allclose(mean, branch * 0.7, atol=0.04 * branch.abs().max())


def test_batch_mode_dropped_branch_still_gives_zero_gradients():
    # Zeroing rather than skipping keeps the graph static: every parameter gets a gradient, zero when dropped.
    drop = DropPath(0.999, mode="batch").train()
    weight = torch.ones(3, requires_grad=True)
    torch.manual_seed(1)
    out = drop(weight * 2.0)
    out.sum().backward()
    assert torch.count_nonzero(out) == 0
    assert torch.equal(weight.grad, torch.zeros(3))


def test_sample_mode_drops_single_samples_and_rescales_the_kept():
    drop = DropPath(0.5, mode="sample").train()
    branch = torch.rand(64, 2, 3, 3) + 1.0
    out = drop(branch)
    for sample_out, sample_in in zip(out, branch):
        assert torch.count_nonzero(sample_out) == 0 or torch.allclose(sample_out, sample_in / 0.5)
    dropped = sum(torch.count_nonzero(s) == 0 for s in out)
    assert 0 < dropped < 64  # a mixture within one batch, unlike the paper's form


def test_sample_mode_is_the_identity_at_test_time_and_unbiased_in_training():
    drop = DropPath(0.25, mode="sample")
    branch = torch.randn(4, 3, 2, 2)
    drop.eval()
    assert torch.equal(drop(branch), branch)
    drop.train()
    mean = sum(drop(branch) for _ in range(TRIALS)) / TRIALS
    assert torch.allclose(mean, branch, atol=0.05 * branch.abs().max())


@pytest.mark.parametrize("mode", ["batch", "sample"])
def test_zero_rate_is_the_identity(mode):
    drop = DropPath(0.0, mode=mode).train()
    branch = torch.randn(3, 2, 2, 2)
    assert torch.equal(drop(branch), branch)
