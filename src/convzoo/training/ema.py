"""An exponential moving average of the weights (`--model-ema DECAY`), evaluated beside the trained weights.

After every optimizer step, w_ema <- decay w_ema + (1 - decay) w (Polyak averaging; timm's ModelEmaV2 and
torchvision's reference scripts keep one too). The batch-norm running statistics are averaged the same way
(`use_buffers=True`), so the average is a network that can be evaluated as it is. Built on PyTorch's
`torch.optim.swa_utils.AveragedModel` with `get_ema_multi_avg_fn`; its state (the averaged weights and the
number of updates) goes into the resume state, so a resumed run continues the same average.

Each epoch the engine measures both on the validation split; the better one is the epoch's candidate for
best.safetensors (`metrics.csv` says which: `best_weights`), and its figures are the `val_ema_*` columns.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


class ModelEma:
    def __init__(self, network: nn.Module, decay: float) -> None:
        if not 0 < decay < 1:
            raise ValueError(f"--model-ema takes a decay in (0, 1), such as 0.999; got {decay}")
        self.decay = decay
        self.averaged = AveragedModel(network, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)

    @property
    def network(self) -> nn.Module:
        """The averaged network (a copy of the trained one: same class, names, card and arguments)."""
        return self.averaged.module

    @torch.no_grad()
    def update(self, network: nn.Module) -> None:
        self.averaged.update_parameters(network)

    def state_dict(self) -> dict:
        return self.averaged.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.averaged.load_state_dict(state)
