"""Optimizers and learning-rate schedules.

The schedule is a plain function of the training step (the fixed ones) plus a small state (reduce-on-plateau),
so a resumed run sets exactly the learning rates an uninterrupted run would, and the whole schedule reads in
one place instead of a chain of torch schedulers.
"""
from __future__ import annotations

import math
from typing import Iterable, Sequence

import torch
from torch import nn

OPTIMIZERS = ("sgd", "sgd_nesterov", "adamw", "rmsprop")
SCHEDULES = ("constant", "step", "multistep", "cosine", "plateau")


def build_optimizer(params: Iterable[nn.Parameter] | Iterable[dict], name: str, lr: float, momentum: float = 0.9,
                    weight_decay: float = 0.0, rmsprop_alpha: float = 0.9) -> torch.optim.Optimizer:
    """sgd / sgd_nesterov: SGD with (Nesterov) momentum and L2 weight decay, as every paper in the zoo up to
    ResNet and DenseNet trains. adamw: Adam with decoupled weight decay (Loshchilov & Hutter 2019).
    rmsprop: RMSProp with momentum, as Inception-v3 and MobileNet train (decay `rmsprop_alpha`, 0.9)."""
    params = list(params)
    if params and isinstance(params[0], dict):  # parameter groups, each with its own rate (fine-tuning)
        params = [{**group, "params": [p for p in group["params"] if p.requires_grad]} for group in params]
    else:
        params = [p for p in params if p.requires_grad]
    if name in ("sgd", "sgd_nesterov"):
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay,
                               nesterov=name == "sgd_nesterov" and momentum > 0)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, alpha=rmsprop_alpha, momentum=momentum,
                                   weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}")


def optimizer_states(name: str, momentum: float = 0.9) -> int:
    """The state tensors `build_optimizer(name, momentum=...)` keeps a parameter, each the parameter's size (what
    the memory guard counts): SGD's momentum buffer, AdamW's two moments, RMSProp's square average (and momentum)."""
    if name in ("sgd", "sgd_nesterov"):
        return 1 if momentum > 0 else 0
    if name == "adamw":
        return 2
    if name == "rmsprop":
        return 2 if momentum > 0 else 1
    raise ValueError(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}")


class LRSchedule:
    """Sets the learning rate before every training step.

    lr(step) = base_lr x warm-up factor x schedule factor, where
      step:      gamma ** (epoch // step_size)
      multistep: gamma ** (number of milestones <= epoch)
      cosine:    min_lr/base_lr + (1 - min_lr/base_lr) (1 + cos(pi t)) / 2, t the fraction of the steps after
                 the warm-up, updated every step
      plateau:   gamma ** (number of reductions); a reduction happens when the validation metric has not
                 improved for `patience` epochs (AlexNet, VGG, ResNet: "divided by 10 when the error plateaus")
      constant:  1
    The warm-up ramps linearly from `warmup_decay` x lr to lr over `warmup_epochs` epochs (Goyal et al. 2017),
    one small step per iteration.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, kind: str, *, epochs: int, steps_per_epoch: int,
                 step_size: int = 30, milestones: Sequence[int] = (), gamma: float = 0.1, warmup_epochs: float = 0,
                 warmup_decay: float = 0.01, min_lr: float = 0.0, patience: int = 5, higher_is_better: bool = True,
                 min_delta: float = 0.0) -> None:
        if kind not in SCHEDULES:
            raise ValueError(f"unknown learning-rate schedule {kind!r}; choose from {', '.join(SCHEDULES)}")
        if steps_per_epoch < 1:
            raise ValueError("steps_per_epoch must be at least 1")
        if kind == "step" and step_size < 1:
            raise ValueError(f"the step schedule needs a step size of at least 1 epoch, got {step_size}")
        self.optimizer = optimizer
        self.kind = kind
        self.base_lrs = [group["lr"] for group in optimizer.param_groups]
        self.epochs = epochs
        self.steps_per_epoch = steps_per_epoch
        self.step_size = step_size
        self.milestones = sorted(int(m) for m in milestones)
        self.gamma = gamma
        self.warmup_steps = round(warmup_epochs * steps_per_epoch)
        self.warmup_decay = warmup_decay
        self.min_lr = min_lr
        self.patience = patience
        self.higher_is_better = higher_is_better
        self.min_delta = min_delta
        # reduce-on-plateau's state: the only part that is not a function of the step
        self.plateau_reductions = 0
        self.plateau_best: float | None = None
        self.epochs_without_improvement = 0

    def factor(self, step: int) -> float:
        """The learning rate at training step `step` (0-based, counted over the whole run) over the base rate."""
        epoch = step // self.steps_per_epoch
        if self.kind == "step":
            factor = self.gamma ** (epoch // self.step_size)
        elif self.kind == "multistep":
            factor = self.gamma ** sum(1 for m in self.milestones if epoch >= m)
        elif self.kind == "plateau":
            factor = self.gamma ** self.plateau_reductions
        elif self.kind == "cosine":
            total = max(self.epochs * self.steps_per_epoch - self.warmup_steps, 1)
            progress = min(max(step - self.warmup_steps, 0) / total, 1.0)
            factor = 0.5 * (1 + math.cos(math.pi * progress))
        else:
            factor = 1.0
        if step < self.warmup_steps:
            factor *= self.warmup_decay + (1 - self.warmup_decay) * step / self.warmup_steps
        return factor

    def set_step(self, step: int) -> None:
        factor = self.factor(step)
        for group, base_lr in zip(self.optimizer.param_groups, self.base_lrs):
            if self.kind == "cosine" and step >= self.warmup_steps:
                # cosine decays to min_lr rather than to zero
                group["lr"] = self.min_lr + (base_lr - self.min_lr) * factor
            else:
                group["lr"] = base_lr * factor

    def end_epoch(self, metric: float) -> bool:
        """Tell the schedule the epoch's validation metric; returns True when reduce-on-plateau cut the rate."""
        if self.kind != "plateau":
            return False
        improved = self.plateau_best is None or (
            metric > self.plateau_best + self.min_delta if self.higher_is_better
            else metric < self.plateau_best - self.min_delta)
        if improved:
            self.plateau_best = metric
            self.epochs_without_improvement = 0
            return False
        self.epochs_without_improvement += 1
        if self.epochs_without_improvement > self.patience:
            self.plateau_reductions += 1
            self.epochs_without_improvement = 0
            return True
        return False

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def state_dict(self) -> dict:
        return {"plateau_reductions": self.plateau_reductions, "plateau_best": self.plateau_best,
                "epochs_without_improvement": self.epochs_without_improvement}

    def load_state_dict(self, state: dict) -> None:
        self.plateau_reductions = int(state["plateau_reductions"])
        self.plateau_best = None if state["plateau_best"] is None else float(state["plateau_best"])
        self.epochs_without_improvement = int(state["epochs_without_improvement"])
