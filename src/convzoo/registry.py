"""The model registry: every network is a builder function registered with its card.

    @register_model(family="resnet", paper=RESNET_PAPER, params=25_557_032, ...)
    def resnet50(**kwargs): return ResNet(Bottleneck, [3, 4, 6, 3], **kwargs)

`create_model(name)` looks the builder up, fills `num_classes`/`in_chans` from the card, builds the module
and attaches an input guard that rejects inputs the network cannot take before any layer runs.
"""
from __future__ import annotations

import difflib
import fnmatch
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable

import torch
from torch import nn

from .errors import InputSizeError, UnknownModelError


@dataclass(frozen=True)
class Paper:
    """The publication a network comes from."""

    title: str
    authors: str
    year: int
    arxiv: str | None = None  # arXiv id, e.g. "1512.03385"; None for papers not on arXiv
    venue: str | None = None


@dataclass(frozen=True)
class ModelCard:
    """What a registered network is: its paper, its input, its reference numbers.

    `params` is the exact trainable parameter count at `num_classes` classes and `input_size[0]` channels;
    a test asserts every card's count against the built network. `min_input_size` is the smallest square
    (H, W) the network accepts; a test asserts it runs there and that one pixel less is refused.
    `reported` holds the paper's own figures, in percent: error rates for classification
    ("imagenet_top1_error", "cifar10_error", ...), mean IoU for segmentation ("voc2012_val_miou", ...).
    """

    name: str
    family: str
    task: str
    paper: Paper
    input_size: tuple[int, int, int]
    min_input_size: tuple[int, int]
    params: int
    num_classes: int = 1000
    macs: int | None = None  # multiply-accumulates at input_size (conv + linear), where a reference exists
    reported: dict[str, float] = field(default_factory=dict)
    notes: str = ""  # how this version differs from the paper and from other libraries' versions
    # A bare name (`pspnet`) that builds another registered network (`pspnet_resnet101`) with its default
    # arguments: the zoo test checks they are the same network, and the per-network sweeps test only one of them.
    same_as: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Entry:
    card: ModelCard
    builder: Callable[..., nn.Module]
    input_size_from_args: Callable[[dict], tuple[int, int, int]] | None = None


_REGISTRY: dict[str, _Entry] = {}

TASKS = ("classification", "segmentation")


def register_model(
    *,
    family: str,
    paper: Paper,
    input_size: tuple[int, int, int],
    min_input_size: tuple[int, int],
    params: int,
    task: str = "classification",
    num_classes: int = 1000,
    macs: int | None = None,
    reported: dict[str, float] | None = None,
    notes: str = "",
    name: str | None = None,
    same_as: str | None = None,
    input_size_from_args: Callable[[dict], tuple[int, int, int]] | None = None,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register a builder under its function name (or `name`) with a ModelCard built from the arguments.

    The builder is called as builder(num_classes=..., in_chans=..., **user_kwargs). A network whose arguments
    decide its input (a NAS spec) gives `input_size_from_args(user_kwargs) -> (C, H, W)`; see
    `default_input_size`."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")

    def decorate(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        model_name = name or builder.__name__
        if model_name in _REGISTRY:
            raise ValueError(f"model {model_name!r} is registered twice")
        card = ModelCard(
            name=model_name, family=family, task=task, paper=paper, input_size=tuple(input_size),
            min_input_size=tuple(min_input_size), params=params, num_classes=num_classes, macs=macs,
            reported=dict(reported or {}), notes=notes, same_as=same_as,
        )
        _REGISTRY[model_name] = _Entry(card, builder, input_size_from_args)
        return builder

    return decorate


def _ensure_models_imported() -> None:
    # Importing the models package runs every @register_model; done lazily so that `import convzoo.registry`
    # from a model file does not import the models package in a cycle.
    from . import models  # noqa: F401


def _entry(name: str) -> _Entry:
    _ensure_models_imported()
    if not isinstance(name, str):
        raise UnknownModelError(f"model name must be a string, got {type(name).__name__}")
    entry = _REGISTRY.get(name) or _REGISTRY.get(name.lower().replace("-", "_"))
    if entry is None:
        close = difflib.get_close_matches(name.lower(), list(_REGISTRY), n=5, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise UnknownModelError(
            f"unknown model {name!r}.{hint} `convzoo list` (or convzoo.list_models()) shows all "
            f"{len(_REGISTRY)} registered names."
        )
    return entry


def list_models(pattern: str | Iterable[str] | None = None, task: str | None = None) -> list[str]:
    """Registered model names, sorted; `pattern` is a shell-style wildcard (or several), `task` filters."""
    _ensure_models_imported()
    if task is not None and task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    patterns = [pattern] if isinstance(pattern, str) else list(pattern or ["*"])
    return sorted(
        name for name, entry in _REGISTRY.items()
        if (task is None or entry.card.task == task) and any(fnmatch.fnmatchcase(name, p) for p in patterns)
    )


def model_card(name: str) -> ModelCard:
    """The card of a registered model: paper, year, input sizes, reference parameter count, reported errors."""
    return _entry(name).card


def default_input_size(name: str, model_args: dict | None = None) -> tuple[int, int, int]:
    """The (C, H, W) a network built with `model_args` is meant for: the card's, unless the network's arguments
    decide it (the spec of `nas`). The engine trains at this size when no --input-size is given."""
    entry = _entry(name)
    if entry.input_size_from_args is not None:
        return tuple(entry.input_size_from_args(dict(model_args or {})))
    return entry.card.input_size


class InputGuard:
    """A forward pre-hook that rejects inputs a network cannot take, before any layer runs.

    Without it a too-small image fails deep inside a pooling layer with a message about negative output
    sizes; with it the user reads the network's name and its smallest input size."""

    def __init__(self, name: str, in_chans: int, min_input_size: tuple[int, int]):
        self.name = name
        self.in_chans = in_chans
        self.min_input_size = tuple(min_input_size)

    def __call__(self, module: nn.Module, args: tuple) -> None:
        if not args or not isinstance(args[0], torch.Tensor):
            return
        x = args[0]
        if x.dim() != 4:
            raise InputSizeError(
                f"{self.name} takes a 4-D batch (N, C, H, W); got a tensor of shape {tuple(x.shape)}. "
                f"Add a batch dimension with x.unsqueeze(0)." if x.dim() == 3 else
                f"{self.name} takes a 4-D batch (N, C, H, W); got a tensor of shape {tuple(x.shape)}."
            )
        if x.shape[1] != self.in_chans:
            raise InputSizeError(
                f"{self.name} was built for {self.in_chans}-channel input but got {x.shape[1]} channels "
                f"(shape {tuple(x.shape)}). Build it with create_model({self.name!r}, in_chans={x.shape[1]}) "
                f"or convert the images to {self.in_chans} channels."
            )
        h, w = x.shape[-2:]
        min_h, min_w = self.min_input_size
        if h < min_h or w < min_w:
            raise InputSizeError(
                f"{self.name} needs an input of at least {min_h}x{min_w} pixels; got {h}x{w}. "
                f"Resize the images to {min_h}x{min_w} or larger."
            )


def create_model(name: str, num_classes: int | None = None, in_chans: int | None = None, *,
                 features_only: bool = False, out_indices: Iterable[int] | None = None,
                 output_stride: int | None = None, **kwargs: Any) -> nn.Module:
    """Build a registered network by name.

    num_classes defaults to the card's (1000 for ImageNet networks); in_chans defaults to the card's input
    channels (3, or 1 for LeNet-5). Other keyword arguments go to the family's network class. The model
    carries `model.card` and rejects inputs smaller than the card's `min_input_size`.

    A segmentation network takes `output_stride` as its own argument (where its builder has one).
    features_only=True returns a classification network as an encoder (models/segmentation/backbones.py):
    it returns the feature maps of the stages in `out_indices` (default all), described by its
    `feature_info`, with strides past `output_stride` replaced by dilation."""
    entry = _entry(name)
    card = entry.card
    if not features_only and out_indices is not None:
        raise ValueError("out_indices describes an encoder; pass features_only=True too")
    if not features_only and output_stride is not None:
        if card.task != "segmentation":
            raise ValueError("output_stride describes an encoder or a segmentation network; for "
                             f"{card.name} as an encoder pass features_only=True too")
        kwargs["output_stride"] = output_stride  # the segmentation network's own (DeepLab v3/v3+, PSPNet, FCN)
    num_classes = card.num_classes if num_classes is None else int(num_classes)
    in_chans = default_input_size(name, kwargs)[0] if in_chans is None else int(in_chans)
    if num_classes < 1:
        raise ValueError(f"num_classes must be at least 1, got {num_classes}")
    if in_chans < 1:
        raise ValueError(f"in_chans must be at least 1, got {in_chans}")
    model = entry.builder(num_classes=num_classes, in_chans=in_chans, **kwargs)
    if features_only:
        if card.task != "classification":
            raise ValueError(f"features_only takes a classification network; {card.name} is {card.task}")
        from .models.segmentation.backbones import FeatureExtractor  # the models import this module

        model = FeatureExtractor(model, out_indices=out_indices, output_stride=output_stride)
        kwargs = {**kwargs, "features_only": True, "out_indices": model.out_indices, "output_stride": output_stride}
    # Plain attributes (not buffers): they never enter the state dict, so checkpoints stay torchvision's.
    model.card = card
    # A builder may resolve an argument (a spec file into the spec itself): its `resolved_args` are recorded in
    # place of what was passed, so a checkpoint rebuilds the network without the file.
    kwargs = {**kwargs, **getattr(model, "resolved_args", {})}
    model.model_args = {"name": card.name, "num_classes": num_classes, "in_chans": in_chans, **kwargs}
    # A builder may know a tighter minimum for its arguments (e.g. a different output stride).
    min_size = getattr(model, "min_input_size", card.min_input_size)
    model.register_forward_pre_hook(InputGuard(card.name, in_chans, min_size))
    return model
