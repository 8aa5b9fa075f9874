"""Fully connected CRF post-processing (Kraehenbuehl & Koltun, "Efficient Inference in Fully Connected CRFs
with Gaussian Edge Potentials", NIPS 2011), as DeepLab v1/v2 apply it to a network's class probabilities.

Every pair of pixels is connected. The energy of a labelling x is

    E(x) = sum_i psi_u(x_i) + sum_{i<j} mu(x_i, x_j) k(f_i, f_j)

with the unary psi_u(x_i) = -log P(x_i) from the network, the Potts compatibility mu = [x_i != x_j], and
two Gaussian kernels over positions p and colours I:

    k = w_appearance * exp(-|p_i - p_j|^2 / 2 theta_alpha^2 - |I_i - I_j|^2 / 2 theta_beta^2)   (bilateral)
      + w_smooth     * exp(-|p_i - p_j|^2 / 2 theta_gamma^2)                                    (smoothness)

Mean-field inference iterates Q_i(l) proportional to exp(-psi_u(l) - sum_l' mu(l, l') sum_{j != i} k_ij Q_j(l')).

Limits: this is the naive O(N^2) message passing over N = H * W pixels, exact (no permutohedral lattice) and
meant for small images. The N x N kernel is computed once and kept while it has at most 2^25 entries (128
MB, up to about 76x76 pixels), else recomputed in blocks of rows every iteration so memory stays O(N *
ROW_BLOCK). Ten iterations on one core took 0.02 s at 24x24, 0.7 s at 64x64 and 25 s at 96x96. For full-size
photographs use the paper's permutohedral-lattice implementation (e.g. pydensecrf). Colours are in the units
the image is given in; the default theta_beta (13) assumes 0-255 intensities, as the paper.
"""
from __future__ import annotations

from typing import Iterable, Iterator

import torch
from torch import Tensor, nn

# Rows of the N x N kernel computed at once: a block of 1024 x N floats.
ROW_BLOCK = 1024
# The whole kernel is computed once and kept for all iterations up to this many entries (128 MB of float32,
# a 76x76 image); above it, it is recomputed each iteration to keep memory at O(N * ROW_BLOCK).
CACHED_KERNEL_ENTRIES = 2 ** 25


class DenseCRF(nn.Module):
    """Mean-field inference in the fully connected CRF; forward(images, probs) -> refined probabilities.

    images: (N, C, H, W) (or (C, H, W)) colours; probs: (N, L, H, W) (or (L, H, W)) class probabilities of
    the same size (a softmax of the network's logits). Returns the mean-field marginals Q, same shape as
    `probs`; their argmax is the CRF's labelling.

    Defaults: theta_gamma = 3 and w_smooth = 3 as the paper's section 6; the appearance kernel's
    w = 10, theta_alpha = 80, theta_beta = 13 as the authors' released example; ten iterations as DeepLab.
    DeepLab cross-validates these on its own validation set (e.g. w = 4, theta_alpha = 121, theta_beta = 5 for
    VOC with DeepLab-LargeFOV)."""

    def __init__(self, iterations: int = 10, w_appearance: float = 10.0, theta_alpha: float = 80.0,
                 theta_beta: float = 13.0, w_smooth: float = 3.0, theta_gamma: float = 3.0):
        super().__init__()
        if iterations < 0:
            raise ValueError(f"iterations must be non-negative, got {iterations}")
        if min(theta_alpha, theta_beta, theta_gamma) <= 0:
            raise ValueError("the kernel widths theta_alpha, theta_beta, theta_gamma must be positive")
        self.iterations = iterations
        self.w_appearance, self.theta_alpha, self.theta_beta = w_appearance, theta_alpha, theta_beta
        self.w_smooth, self.theta_gamma = w_smooth, theta_gamma

    def extra_repr(self) -> str:
        return (f"iterations={self.iterations}, w_appearance={self.w_appearance}, theta_alpha={self.theta_alpha}, "
                f"theta_beta={self.theta_beta}, w_smooth={self.w_smooth}, theta_gamma={self.theta_gamma}")

    @torch.no_grad()
    def forward(self, images: Tensor, probs: Tensor) -> Tensor:
        if images.dim() == 3 and probs.dim() == 3:
            return self.forward(images[None], probs[None])[0]
        if images.dim() != 4 or probs.dim() != 4:
            raise ValueError(f"DenseCRF takes images (N, C, H, W) and probabilities (N, L, H, W); got shapes "
                             f"{tuple(images.shape)} and {tuple(probs.shape)}")
        if images.shape[0] != probs.shape[0] or images.shape[-2:] != probs.shape[-2:]:
            raise ValueError(f"images {tuple(images.shape)} and probabilities {tuple(probs.shape)} must have the "
                             f"same batch size, height and width")
        return torch.stack([self._infer(image, prob) for image, prob in zip(images, probs)])

    def _infer(self, image: Tensor, probs: Tensor) -> Tensor:
        num_labels, height, width = probs.shape
        dtype = torch.float32 if probs.dtype in (torch.float16, torch.bfloat16) else probs.dtype
        unary = -probs.to(dtype).clamp_min(torch.finfo(dtype).tiny).log().reshape(num_labels, -1).T  # (N, L)
        rows, cols = torch.meshgrid(torch.arange(height, device=probs.device, dtype=dtype),
                                    torch.arange(width, device=probs.device, dtype=dtype), indexing="ij")
        positions = torch.stack([rows.flatten(), cols.flatten()], dim=1)  # (N, 2)
        colours = image.to(dtype).reshape(image.shape[0], -1).T  # (N, C)
        # Features scaled by their kernel widths: the kernels become exp(-|f_i - f_j|^2 / 2).
        bilateral = torch.cat([positions / self.theta_alpha, colours / self.theta_beta], dim=1)
        spatial = positions / self.theta_gamma

        q = torch.softmax(-unary, dim=1)
        # The kernel does not change between iterations: kept when it fits, recomputed block by block if not.
        kept = list(self._kernel_blocks(bilateral, spatial)) if q.shape[0] ** 2 <= CACHED_KERNEL_ENTRIES else None
        for _ in range(self.iterations):
            blocks = kept if kept is not None else self._kernel_blocks(bilateral, spatial)
            messages = self._messages(blocks, q)
            # Potts: the penalty of label l is the kernel-weighted mass of every other label, which is the
            # total mass minus that of l; the total is the same for all l and cancels in the softmax.
            q = torch.softmax(-unary + messages, dim=1)
        return q.T.reshape(num_labels, height, width).to(probs.dtype)

    def _kernel_blocks(self, bilateral: Tensor, spatial: Tensor) -> Iterator[tuple[slice, Tensor]]:
        """The N x N kernel k(f_i, f_j), ROW_BLOCK rows at a time."""
        for start in range(0, bilateral.shape[0], ROW_BLOCK):
            block = slice(start, start + ROW_BLOCK)
            yield block, (self.w_appearance * _gaussian(bilateral[block], bilateral)
                          + self.w_smooth * _gaussian(spatial[block], spatial))

    def _messages(self, blocks: Iterable[tuple[slice, Tensor]], q: Tensor) -> Tensor:
        """sum_{j != i} k(f_i, f_j) Q_j for every pixel i."""
        out = torch.empty_like(q)
        for block, kernel in blocks:
            out[block] = kernel @ q
        # The sums run over j != i: take out each pixel's own term, k(f_i, f_i) = w_appearance + w_smooth.
        return out - (self.w_appearance + self.w_smooth) * q


def _gaussian(rows: Tensor, cols: Tensor) -> Tensor:
    """exp(-|r - c|^2 / 2) for every pair. The exponent is floored at -80 (exp(-80) ~ 2e-35, far below any
    sum it enters): far smaller values are subnormal floats, which make the arithmetic many times slower."""
    return torch.cdist(rows, cols).square().mul(-0.5).clamp_min(-80.0).exp()


def dense_crf(images: Tensor, probs: Tensor, **kwargs) -> Tensor:
    """DenseCRF(**kwargs)(images, probs): the refined probabilities."""
    return DenseCRF(**kwargs)(images, probs)
