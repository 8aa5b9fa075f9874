"""LocalResponseNorm takes the papers' alpha: b^i = a^i / (k + alpha * sum_{j=max(0,i-n/2)}^{min(N-1,i+n/2)}
(a^j)^2)^beta, AlexNet section 3.3, with k=2, n=5, alpha=1e-4, beta=0.75."""
import pytest
import torch
from torch import nn

from convzoo.layers import LocalResponseNorm


def paper_lrn(a: torch.Tensor, n: int, alpha: float, beta: float, k: float) -> torch.Tensor:
    """The section 3.3 formula, one channel at a time; the window is cut off at the first and last channel."""
    channels = a.shape[1]
    out = torch.empty_like(a)
    for i in range(channels):
        lo, hi = max(0, i - n // 2), min(channels - 1, i + n // 2)
        energy = sum(a[:, j] ** 2 for j in range(lo, hi + 1))
        out[:, i] = a[:, i] / (k + alpha * energy) ** beta
    return out


def activations(channels: int = 7) -> torch.Tensor:
    # Large enough that alpha * sum(a^2) is comparable to k, as ReLU outputs of an unnormalised conv are.
    return torch.randn(2, channels, 4, 3, dtype=torch.float64) * 60


def test_defaults_are_alexnets():
    lrn = LocalResponseNorm()
    assert (lrn.size, lrn.paper_alpha, lrn.beta, lrn.k) == (5, 1e-4, 0.75, 2.0)
    assert "alpha=0.0001" in repr(lrn)


def test_matches_the_paper_formula_with_the_paper_alpha():
    a = activations()
    expected = paper_lrn(a, n=5, alpha=1e-4, beta=0.75, k=2.0)
    out = LocalResponseNorm()(a)
    assert out.shape == a.shape
    torch.testing.assert_close(out, expected)
    # The normalisation is really at work here, not a near-identity.
    assert (out / a).min() < 0.7


@pytest.mark.parametrize("n, alpha, beta, k", [(3, 1e-3, 0.5, 1.0), (7, 2e-4, 0.75, 2.0)])
def test_matches_the_paper_formula_for_other_constants(n, alpha, beta, k):
    a = activations()
    torch.testing.assert_close(LocalResponseNorm(n, alpha, beta, k)(a), paper_lrn(a, n, alpha, beta, k))


def test_pytorch_lrn_with_the_paper_alpha_normalises_five_times_less():
    a = activations()
    paper = paper_lrn(a, n=5, alpha=1e-4, beta=0.75, k=2.0)
    naive = nn.LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0)(a)
    assert not torch.allclose(naive, paper, rtol=1e-3)
    torch.testing.assert_close(naive, paper_lrn(a, n=5, alpha=1e-4 / 5, beta=0.75, k=2.0))
