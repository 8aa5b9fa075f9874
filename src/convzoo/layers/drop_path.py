"""Stochastic depth: randomly drop a residual branch during training, so the network is shallower on average.

Huang et al. 2016, "Deep Networks with Stochastic Depth" (arXiv 1603.09382). Block l of L survives with
probability p_l = 1 - l/L * (1 - p_L) (linear decay from p_0 = 1 at the input to p_L at the last block, the
paper uses p_L = 0.5). Two forms exist:

- mode="batch", the paper's: one coin per mini-batch; a dropped block passes only its shortcut. At test time
  every branch runs and is scaled by its survival probability p_l, so its expected contribution matches.
- mode="sample", the "drop path" of FractalNet/timm: one coin per sample in the batch; kept branches are
  scaled by 1/p_l during training so that test time needs no scaling.

Both have the same expected output in training as at test time. The module is applied to the branch
output, just before the residual addition.
"""
from __future__ import annotations

import torch
from torch import nn

DROP_PATH_MODES = ("batch", "sample")


def stochastic_depth_rates(final_drop_rate: float, num_blocks: int) -> list[float]:
    """Drop probability of each of `num_blocks` residual blocks, rising linearly to `final_drop_rate` = 1 - p_L.

    The paper's rule p_l = 1 - l/L (1 - p_L), l = 1..L: the first block already has a small drop rate
    (timm's linspace starts at 0 instead)."""
    if not 0.0 <= final_drop_rate < 1.0:
        raise ValueError(f"drop_path rate must be in [0, 1), got {final_drop_rate}")
    return [final_drop_rate * block / num_blocks for block in range(1, num_blocks + 1)]


def drop_path_schedule(final_drop_rate: float, num_blocks: int, mode: str = "batch") -> list[DropPath | None]:
    """One DropPath per residual block with the paper's linear decay (None where the rate is 0)."""
    if mode not in DROP_PATH_MODES:
        raise ValueError(f"drop_path_mode must be one of {DROP_PATH_MODES}, got {mode!r}")
    return [DropPath(rate, mode) if rate > 0 else None for rate in stochastic_depth_rates(final_drop_rate, num_blocks)]


class DropPath(nn.Module):
    """Drops a residual branch with probability `drop_prob`; `mode` is "batch" (the paper's) or "sample"."""

    def __init__(self, drop_prob: float, mode: str = "batch"):
        super().__init__()
        if not 0.0 <= drop_prob < 1.0:
            raise ValueError(f"drop_prob must be in [0, 1), got {drop_prob}")
        if mode not in DROP_PATH_MODES:
            raise ValueError(f"mode must be one of {DROP_PATH_MODES}, got {mode!r}")
        self.drop_prob = drop_prob
        self.mode = mode

    @property
    def survival_prob(self) -> float:
        return 1.0 - self.drop_prob

    def forward(self, branch: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0.0:
            return branch
        if self.mode == "batch":
            if not self.training:
                return branch * self.survival_prob
            # The coin is drawn on the CPU so a GPU run does not synchronise on it. A dropped branch is
            # multiplied by zero rather than skipped: every parameter then gets a (zero) gradient and the
            # autograd graph is the same each step, which DistributedDataParallel needs.
            keep = torch.rand((), device="cpu").item() < self.survival_prob
            return branch if keep else branch * 0.0
        if not self.training:
            return branch
        mask_shape = (branch.shape[0],) + (1,) * (branch.dim() - 1)
        mask = torch.empty(mask_shape, dtype=branch.dtype, device=branch.device).bernoulli_(self.survival_prob)
        return branch * mask / self.survival_prob

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob:.4g}, mode={self.mode!r}"
