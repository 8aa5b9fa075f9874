"""Fine-tuning: start from weights, freeze the early stages, train the body slower than the head.

    convzoo train resnet20 --data DIR --init runs/digits/best.safetensors --freeze stem layer1 \
        --lr-body 0.001 --freeze-bn

--init FILE      a convzoo checkpoint, a run folder (its best checkpoint) or a torchvision-layout state dict;
                 `load_weights` drops a classifier of another size (it keeps the new head's seeded initial
                 values) and adapts the first convolution to the input channels.
--freeze NAME    a stage (stem, layer1, ... as `stages()` names them) or a shell-style pattern over parameter
                 names (`layer1.*`, `*.bn*`). A frozen stage's parameters get no gradient, and its batch norms
                 keep their running statistics (eval mode), so its output does not drift either.
--lr-body X      the body's learning rate (the head keeps --lr); --layer-decay D: each stage from the head
                 backwards trains D times slower than the next (BEiT's layer-wise decay).
--freeze-bn      every batch norm keeps its running statistics (small batches on a new data set).

Stages: a network with top-level modules named `layer<N>` (torchvision's ResNet layout) is split by them: the
stem is what comes before the first, the head what comes after the last. Any other network that declares its
stages (the model protocol's `feature_stages()`) is split as it declares. A network with neither can still be
frozen by pattern.
"""
from __future__ import annotations

import fnmatch
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from torch import nn

from ..errors import WeightsError

_STAGE_NAME = re.compile(r"layer\d+$")


@dataclass(frozen=True)
class Stage:
    """A named part of a network, as fine-tuning sees it: its top-level module paths, in order. `depth` counts
    from the input: the stem is 0, the head the last."""

    name: str
    modules: tuple[str, ...]
    depth: int


def stages(network: nn.Module) -> list[Stage]:
    """The network as stem, stages and head (see the module's docstring); [] when it has no `layer<N>` modules
    and declares no stages."""
    names = [name for name, _ in network.named_children()]
    body = [i for i, name in enumerate(names) if _STAGE_NAME.match(name)]
    if not body:
        return _declared_stages(network) or []
    first, last = body[0], body[-1]
    parts = [("stem", tuple(names[:first]))] + [(names[i], (names[i],)) for i in body]
    parts.append(("head", tuple(names[last + 1:])))
    return [Stage(name, modules, depth) for depth, (name, modules) in enumerate(parts)]


def _declared_stages(network: nn.Module) -> list[Stage] | None:
    """The seam for the model protocol's stage declaration (`feature_stages()`: each stage's module paths, in
    order), for networks without torchvision's `layer<N>` names (whose names are what people type, and which
    a declaration may group differently, e.g. a CIFAR ResNet's stem with layer1): the first declared stage is
    the stem, the others are named by their last module path, the rest of the network is the head."""
    declare = getattr(network, "feature_stages", None)
    if not callable(declare):
        return None
    parts, claimed = [], set()
    for index, stage in enumerate(declare()):
        steps = tuple(step for step in stage.steps if step not in claimed)
        claimed.update(steps)
        # Named by its last module not already claimed: a module a family reuses (LeNet-5's squash) names none.
        parts.append(("stem" if index == 0 else (steps or stage.steps)[-1], steps))
    names = [name for name, _ in network.named_children()]
    head = tuple(name for name in names if not any(step.split(".")[0] == name for step in claimed))
    return [Stage(name, modules, depth) for depth, (name, modules) in enumerate(parts + [("head", head)])]


def _owns(stage_modules: tuple[str, ...], parameter: str) -> bool:
    return any(parameter == module or parameter.startswith(module + ".") for module in stage_modules)


def frozen_names(network: nn.Module, patterns: tuple[str, ...]) -> list[str]:
    """The parameter and buffer-owning module names `patterns` (stage names or shell patterns) select; each
    pattern must select something."""
    found = stages(network)
    by_name = {stage.name: stage for stage in found}
    parameters = [name for name, _ in network.named_parameters()]
    chosen: list[str] = []
    for pattern in patterns:
        if pattern in by_name:
            hits = [p for p in parameters if _owns(by_name[pattern].modules, p)]
        else:
            hits = [p for p in parameters if fnmatch.fnmatchcase(p, pattern)]
        if not hits:
            known = ", ".join(s.name for s in found) or "none: this network declares no stages"
            raise ValueError(f"--freeze {pattern!r} matches no parameter of the network; give a stage ({known}) "
                             f"or a pattern over parameter names such as 'layer1.*'")
        chosen += [p for p in hits if p not in chosen]
    return chosen


def freeze(network: nn.Module, patterns: tuple[str, ...]) -> list[nn.Module]:
    """Stop the gradients of the selected parameters; returns the batch norms whose parameters were all frozen
    (they also keep their running statistics: see `hold_statistics`)."""
    names = set(frozen_names(network, patterns))
    for name, parameter in network.named_parameters():
        if name in names:
            parameter.requires_grad_(False)
    return [module for module in network.modules() if isinstance(module, nn.modules.batchnorm._BatchNorm)
            and all(not p.requires_grad for p in module.parameters(recurse=False))
            and any(True for _ in module.parameters(recurse=False))]


def hold_statistics(network: nn.Module, frozen_norms: list[nn.Module], all_norms: bool) -> None:
    """After `network.train()`: put the frozen stages' batch norms (or all of them) back in eval mode, so their
    running mean and variance stay as loaded."""
    norms = [m for m in network.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)] if all_norms \
        else frozen_norms
    for module in norms:
        module.eval()


def parameter_groups(network: nn.Module, lr: float, lr_body: float | None, layer_decay: float | None) -> list[dict]:
    """The optimizer's groups: one a stage, the head at `lr`, the body at `lr_body` (default `lr`), each stage
    `layer_decay` times the rate of the stage after it. Frozen parameters are left out."""
    found = stages(network)
    if not found:
        raise ValueError("--lr-body and --layer-decay need the network's stages (stem, layer1, ..., head), and "
                         f"{type(network).__name__} declares none; freeze its early layers by pattern instead")
    groups = []
    head_depth = found[-1].depth
    for stage in found:
        params = [p for name, p in network.named_parameters() if _owns(stage.modules, name) and p.requires_grad]
        if not params:
            continue
        rate = lr if stage.name == "head" else (lr_body if lr_body is not None else lr)
        if layer_decay is not None:
            rate *= layer_decay ** (head_depth - stage.depth)
        groups.append({"params": params, "lr": rate, "stage": stage.name})
    grouped = {id(p) for group in groups for p in group["params"]}
    rest = [p for p in network.parameters() if p.requires_grad and id(p) not in grouped]
    if rest:  # parameters outside every stage (none in the families above): trained with the head
        groups.append({"params": rest, "lr": lr, "stage": "other"})
    return groups


def load_initial_weights(network: nn.Module, path: str | Path, console: Console | None = None) -> list[str]:
    """--init: load a checkpoint (a run folder: its best checkpoint) into the network; returns what had to be
    adapted (a classifier of another size left at its initial values, the first conv fitted to the channels)."""
    from ..weights import load_weights
    from .checkpoint import resolve_checkpoint

    path = resolve_checkpoint(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the report below says the same, once
        try:
            report = load_weights(network, path)
        except WeightsError as err:
            raise WeightsError(f"--init: {err}") from err
    messages = report.messages()
    if console is not None:
        console.print(f"initial weights from {path}" + "".join(f"; {m}" for m in messages),
                      highlight=False, soft_wrap=True)
    return messages
