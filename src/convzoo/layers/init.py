"""The initialisation most families here share: torchvision's (and the ResNet papers' Torch code's)."""
from __future__ import annotations

from torch import nn


def init_he_fan_out_(model: nn.Module, linear_std: float | None = 0.01) -> None:
    """He normal initialisation with fan-out for every conv (zero biases), batch/group norm as the identity,
    and linear layers from N(0, linear_std) with zero biases; `linear_std=None` keeps PyTorch's default for
    linear layers, as torchvision's ResNet does."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear) and linear_std is not None:
            nn.init.normal_(module.weight, 0.0, linear_std)
            nn.init.zeros_(module.bias)
