"""Local response normalization in the papers' convention (AlexNet section 3.3, also GoogLeNet).

AlexNet writes  b = a / (k + alpha * sum_{n neighbouring channels} a^2) ^ beta  with k=2, n=5,
alpha=1e-4, beta=0.75. PyTorch's nn.LocalResponseNorm divides alpha by n inside the sum, so passing the
paper's alpha to it silently normalises five times less. This class takes the paper's alpha and converts.
"""
from __future__ import annotations

from torch import nn


class LocalResponseNorm(nn.LocalResponseNorm):
    """LRN with the paper's alpha (not divided by the window size). Defaults are AlexNet's."""

    def __init__(self, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0):
        super().__init__(size=size, alpha=alpha * size, beta=beta, k=k)
        self.paper_alpha = alpha

    def extra_repr(self) -> str:
        return f"size={self.size}, alpha={self.paper_alpha} (paper convention), beta={self.beta}, k={self.k}"
