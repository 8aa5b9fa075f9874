"""The dense CRF (Kraehenbuehl & Koltun 2011): one mean-field step against the energy written out pixel by
pixel, and the three behaviours that make it worth running after a network: it keeps a confident prediction,
cleans an isolated noisy pixel, and moves an uncertain boundary onto the image's edge."""
import math

import pytest
import torch

from convzoo.layers import crf as crf_module
from convzoo.layers.crf import DenseCRF, dense_crf

SIZE = 24
HALF = SIZE // 2


def two_tone_image():
    """Dark left half, bright right half: an edge between columns HALF - 1 and HALF."""
    image = torch.zeros(3, SIZE, SIZE)
    image[:, :, HALF:] = 255.0
    return image


def probabilities(columns_to_p1):
    """Two-class probabilities constant down each column; columns_to_p1[j] = P(class 1) in column j."""
    p1 = torch.tensor(columns_to_p1).expand(SIZE, SIZE)
    return torch.stack([1 - p1, p1])


def test_one_mean_field_step_is_the_energy_written_out():
    torch.manual_seed(1)
    labels, height, width = 3, 3, 4
    image = torch.rand(3, height, width, dtype=torch.float64) * 255
    probs = torch.softmax(torch.randn(labels, height, width, dtype=torch.float64), 0)
    crf = DenseCRF(iterations=1, w_appearance=2.0, theta_alpha=2.0, theta_beta=60.0, w_smooth=1.5, theta_gamma=1.0)
    pixels = [(r, c) for r in range(height) for c in range(width)]

    def kernel(i, j):
        (ri, ci), (rj, cj) = pixels[i], pixels[j]
        d_pos = (ri - rj) ** 2 + (ci - cj) ** 2
        d_col = float(((image[:, ri, ci] - image[:, rj, cj]) ** 2).sum())
        return (2.0 * math.exp(-d_pos / (2 * 2.0 ** 2) - d_col / (2 * 60.0 ** 2))
                + 1.5 * math.exp(-d_pos / (2 * 1.0 ** 2)))

    q0 = probs  # initialised from the unaries: softmax(log P) = P
    expected = torch.empty_like(probs)
    for i, (r, c) in enumerate(pixels):
        # Potts: label l pays the kernel-weighted probability of every other label at every other pixel.
        energy = [-math.log(probs[l, r, c]) + sum(kernel(i, j) * float(q0[m, rj, cj])
                                                  for j, (rj, cj) in enumerate(pixels) if j != i
                                                  for m in range(labels) if m != l)
                  for l in range(labels)]
        expected[:, r, c] = torch.softmax(-torch.tensor(energy, dtype=torch.float64), 0)
    torch.testing.assert_close(crf(image, probs), expected)


@pytest.mark.parametrize("kept", [True, False])
def test_blocks_of_rows_give_the_same_messages(monkeypatch, kept):
    # In float64: blocks only change the order of the sums, and in float32 three mean-field iterations amplify
    # that rounding up to 1.2e-3 (measured over 100 seeds), while float64 stays below 1.4e-12 (100 seeds, both
    # cases); the bound leaves a margin of ~700x and is still far below any wrong message (O(0.1)).
    image = torch.rand(3, 10, 10, dtype=torch.float64) * 255
    probs = torch.softmax(torch.randn(4, 10, 10, dtype=torch.float64), 0)
    whole = dense_crf(image, probs, iterations=3)
    monkeypatch.setattr(crf_module, "ROW_BLOCK", 7)
    if not kept:  # too large to keep: recomputed every iteration
        monkeypatch.setattr(crf_module, "CACHED_KERNEL_ENTRIES", 0)
    torch.testing.assert_close(dense_crf(image, probs, iterations=3), whole, rtol=0, atol=1e-9)


def test_zero_iterations_return_the_probabilities():
    probs = probabilities([0.3] * SIZE)
    torch.testing.assert_close(DenseCRF(iterations=0)(two_tone_image(), probs), probs)


def test_keeps_a_confident_prediction():
    probs = probabilities([0.02] * HALF + [0.98] * HALF)
    refined = DenseCRF()(two_tone_image(), probs)
    assert torch.equal(refined.argmax(0), probs.argmax(0))
    assert refined.shape == probs.shape and torch.allclose(refined.sum(0), torch.ones(SIZE, SIZE))


def test_cleans_an_isolated_noisy_pixel():
    image = torch.full((3, SIZE, SIZE), 128.0)
    probs = probabilities([0.2] * SIZE).clone()
    probs[:, 10, 10] = torch.tensor([0.35, 0.65])  # one pixel wrongly, and not very, sure of class 1
    assert int(probs.argmax(0).sum()) == 1
    refined = DenseCRF()(image, probs)
    assert int(refined.argmax(0).sum()) == 0


def test_respects_edges():
    # The network is sure on either side, but unsure (55% class 1) in the four columns left of the
    # image's edge, which lie on its dark side.
    probs = probabilities([0.1] * (HALF - 4) + [0.55] * 4 + [0.9] * HALF)
    edge = torch.tensor([0] * HALF + [1] * HALF)
    refined = DenseCRF()(two_tone_image(), probs).argmax(0)
    assert all(torch.equal(row, edge) for row in refined)
    # The edge comes from the appearance (bilateral) kernel: smoothness alone splits the strip instead.
    smoothed = DenseCRF(w_appearance=0.0)(two_tone_image(), probs).argmax(0)
    assert not torch.equal(smoothed[0], edge)


def test_batches_and_bad_shapes():
    images = torch.stack([two_tone_image(), two_tone_image()])
    probs = torch.stack([probabilities([0.3] * SIZE)] * 2)
    assert DenseCRF(iterations=2)(images, probs).shape == (2, 2, SIZE, SIZE)
    with pytest.raises(ValueError, match="same batch size, height and width"):
        DenseCRF()(images[:, :, :-1], probs)
    with pytest.raises(ValueError, match="positive"):
        DenseCRF(theta_beta=0)
