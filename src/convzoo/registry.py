"""The model registry: every network is a builder function registered with its card.

    @register_model(family="resnet", paper=RESNET_PAPER, params=25_557_032, ...)
    def resnet50(**kwargs): return ResNet(Bottleneck, [3, 4, 6, 3], **kwargs)

`create_model(name)` looks the builder up, fills `num_classes`/`in_chans` from the card, builds the module
and attaches an input guard that rejects inputs the network cannot take before any layer runs.

This module imports nothing from `models`: importing the `convzoo` package imports the families, which
register themselves here, and `models/features.py` registers the feature extractor `features_only` builds.
What a built network carries is written down in protocol.py.
"""
from __future__ import annotations

import difflib
import fnmatch
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable, Tuple

import torch
from torch import Tensor, nn

from .errors import InputSizeError, ModelArgumentError, PretrainedWeightsError, UnknownModelError
from .protocol import ConvzooModel


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

    @property
    def module(self) -> str:
        """The family module the builder is defined in (`resnet`, `resnet_cifar`, `deeplab`, ...)."""
        return self.builder.__module__.rsplit(".", 1)[-1]


_REGISTRY: dict[str, _Entry] = {}
# The features_only wrapper: models/features.py registers its FeatureExtractor here when the models are imported.
_FEATURE_EXTRACTOR: list[Callable[..., nn.Module]] = []


def register_feature_extractor(factory: Callable[..., nn.Module]) -> None:
    """Called by models/features.py: factory(network, out_indices=, output_stride=) builds an encoder."""
    _FEATURE_EXTRACTOR[:] = [factory]

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


def _entry(name: str) -> _Entry:
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


def list_models(pattern: str | Iterable[str] | None = None, task: str | None = None, *,
                exclude: str | Iterable[str] | None = None, module: str | Iterable[str] | None = None,
                pretrained: bool = False) -> list[str]:
    """Registered model names, sorted. `pattern` is a shell-style wildcard (or several), matched without
    regard to case as every name is; `exclude` drops names matching its patterns; `module` keeps the
    networks of those family modules (`resnet`, `resnet_cifar`, `vgg`, ...); `task` filters by task.
    `pretrained=True` lists the networks with weights that ship with convzoo: none (see create_model's
    checkpoint_path for loading a torchvision or timm file)."""
    if task is not None and task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")

    def lowered(patterns: str | Iterable[str] | None, default: list[str]) -> list[str]:
        values = [patterns] if isinstance(patterns, str) else list(patterns or default)
        return [p.lower() for p in values]

    patterns, excluded, modules = lowered(pattern, ["*"]), lowered(exclude, []), lowered(module, [])
    if pretrained:
        return []
    return sorted(
        name for name, entry in _REGISTRY.items()
        if (task is None or entry.card.task == task) and any(fnmatch.fnmatchcase(name, p) for p in patterns)
        and not any(fnmatch.fnmatchcase(name, p) for p in excluded) and (not modules or entry.module in modules)
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


def input_guard(module: nn.Module, args: Tuple[Tensor]) -> None:
    """A forward pre-hook that rejects inputs a network cannot take, before any layer runs.

    Without it a too-small image fails deep inside a pooling layer with a message about negative output
    sizes; with it the user reads the network's name and its smallest input size. It reads what it checks
    from the module (`guard_name`, `guard_in_chans`, `guard_min_size`, set by `attach_input_guard`) and is
    a plain annotated function, so torch.jit.script compiles it with the network (torch.fx traces the
    network's own forward and leaves it out)."""
    x = args[0]
    name: str = module.guard_name
    if x.dim() != 4:
        hint = " Add a batch dimension with x.unsqueeze(0)." if x.dim() == 3 else ""
        raise InputSizeError(f"{name} takes a 4-D batch (N, C, H, W); got a tensor of shape {list(x.shape)}.{hint}")
    in_chans: int = module.guard_in_chans
    if x.shape[1] != in_chans:
        raise InputSizeError(
            f"{name} was built for {in_chans}-channel input but got {x.shape[1]} channels (shape "
            f"{list(x.shape)}). Build it with create_model('{name}', in_chans={x.shape[1]}) or convert the "
            f"images to {in_chans} channels.")
    min_size: Tuple[int, int] = module.guard_min_size
    h, w = x.shape[-2], x.shape[-1]
    if h < min_size[0] or w < min_size[1]:
        raise InputSizeError(
            f"{name} needs an input of at least {min_size[0]}x{min_size[1]} pixels; got {h}x{w}. Resize the "
            f"images to {min_size[0]}x{min_size[1]} or larger.")


def attach_input_guard(model: nn.Module, name: str, in_chans: int, min_input_size: tuple[int, int]) -> None:
    """Register `input_guard` on `model` with what it checks (plain attributes: no state dict entries)."""
    model.guard_name = str(name)
    model.guard_in_chans = int(in_chans)
    model.guard_min_size = (int(min_input_size[0]), int(min_input_size[1]))
    model.register_forward_pre_hook(input_guard)


_UNEXPECTED = re.compile(r"unexpected keyword argument '(\w+)'")


def _weights_file(name: str, kwargs: dict[str, Any]) -> str | None:
    """timm's and torchvision's weight arguments: pretrained=True and weights= are refused (no weights ship),
    checkpoint_path=FILE and pretrained_cfg=dict(file=FILE) name a local file to load. Pops them all."""
    pretrained = kwargs.pop("pretrained", False)
    weights = kwargs.pop("weights", None)
    cfg = kwargs.pop("pretrained_cfg", None)
    overlay = kwargs.pop("pretrained_cfg_overlay", None)
    path = kwargs.pop("checkpoint_path", None)
    if pretrained or weights is not None:
        given = "pretrained=True" if pretrained else f"weights={weights!r}"
        raise PretrainedWeightsError(
            f"convzoo ships no pretrained weights ({given}): download torchvision's or timm's file for {name} "
            f"yourself and pass checkpoint_path=FILE (or pretrained_cfg=dict(file=FILE)); convzoo's module "
            f"names are torchvision's, so its state dicts load as they are.")
    for what, value in (("pretrained_cfg", cfg), ("pretrained_cfg_overlay", overlay)):
        if value is None:
            continue
        if not isinstance(value, dict) or not value.get("file") or set(value) - {"file"}:
            raise PretrainedWeightsError(f"{what} takes dict(file=PATH) naming a local weights file; got {value!r}")
        if path is not None and path != value["file"]:
            raise PretrainedWeightsError(f"give one weights file: checkpoint_path={path!r} and {what} file "
                                         f"{value['file']!r} differ")
        path = value["file"]
    return None if path is None else str(path)


def create_model(name: str, num_classes: int | None = None, in_chans: int | None = None, *,
                 features_only: bool = False, out_indices: Iterable[int] | None = None,
                 output_stride: int | None = None, **kwargs: Any) -> nn.Module:
    """Build a registered network by name (any case).

    num_classes defaults to the card's (1000 for ImageNet networks); 0 builds a classification network
    without its classifier, returning its pooled features (N, num_features). in_chans defaults to the card's
    input channels (3, or 1 for LeNet-5). Other keyword arguments go to the family's network class (timm's
    global_pool, drop_rate, drop_path_rate among them). The model carries `model.card` and rejects inputs
    smaller than the card's `min_input_size`.

    checkpoint_path=FILE (or timm's pretrained_cfg=dict(file=FILE)) loads a local safetensors or PyTorch
    state dict, torchvision's and timm's layouts included; pretrained=True and weights= are refused with
    that advice, as no weights ship with convzoo.

    A segmentation network takes `output_stride` as its own argument (where its builder has one).
    features_only=True returns a classification network as an encoder (models/features.py): it returns the
    feature maps of the stages in `out_indices` (default all), described by its `feature_info`, with strides
    past `output_stride` replaced by dilation."""
    entry = _entry(name)
    card = entry.card
    weights_file = _weights_file(card.name, kwargs)
    if not features_only and out_indices is not None:
        raise ValueError("out_indices describes an encoder; pass features_only=True too")
    if not features_only and output_stride is not None:
        if card.task != "segmentation":
            raise ValueError("output_stride describes an encoder or a segmentation network; for "
                             f"{card.name} as an encoder pass features_only=True too")
        kwargs["output_stride"] = output_stride  # the segmentation network's own (DeepLab v3/v3+, PSPNet, FCN)
    num_classes = card.num_classes if num_classes is None else int(num_classes)
    in_chans = default_input_size(name, kwargs)[0] if in_chans is None else int(in_chans)
    if num_classes < 0 or (num_classes == 0 and card.task != "classification"):
        raise ValueError(f"num_classes must be at least {0 if card.task == 'classification' else 1} for "
                         f"{card.name}, got {num_classes}" + (" (0, headless, is for classification networks)"
                                                              if num_classes == 0 else ""))
    if in_chans < 1:
        raise ValueError(f"in_chans must be at least 1, got {in_chans}")
    try:
        model = entry.builder(num_classes=num_classes, in_chans=in_chans, **kwargs)
    except TypeError as err:
        unexpected = _UNEXPECTED.search(str(err))
        if unexpected is None or unexpected.group(1) not in kwargs:
            raise
        argument = unexpected.group(1)
        if argument == "drop_path_rate":
            raise ModelArgumentError(
                f"{card.name} has no residual paths to drop: drop_path_rate (stochastic depth) applies to the "
                f"residual networks ({', '.join(list_models(module=['resnet', 'resnet_cifar', 'senet'])[:3])}, ...); "
                f"use drop_rate for dropout before the classifier") from None
        raise ModelArgumentError(f"{card.name} does not take the argument {argument!r}; `convzoo card "
                                 f"{card.name}` and the family's docstring list what it takes") from None
    # Plain attributes (not buffers): they never enter the state dict, so checkpoints stay torchvision's.
    model.card = card
    # A builder may resolve an argument (a spec file into the spec itself): its `resolved_args` are recorded in
    # place of what was passed, so a checkpoint rebuilds the network without the file.
    recorded = {**kwargs, **(model.resolved_args if isinstance(model, ConvzooModel) else {})}
    model.model_args = {"name": card.name, "num_classes": num_classes, "in_chans": in_chans, **recorded}
    if weights_file is not None:
        from .weights import load_weights  # weights.py reads the registry for its error messages

        load_weights(model, weights_file)
    if features_only:
        if card.task != "classification":
            raise ValueError(f"features_only takes a classification network; {card.name} is {card.task}")
        model = _FEATURE_EXTRACTOR[0](model, out_indices=out_indices, output_stride=output_stride)
        model.card = card
        model.model_args = {"name": card.name, "num_classes": num_classes, "in_chans": in_chans, **recorded,
                            "features_only": True, "out_indices": model.out_indices, "output_stride": output_stride}
    # A network may know a tighter minimum for its arguments (e.g. a different output stride).
    min_size = (model.min_input_size if isinstance(model, ConvzooModel) else None) or card.min_input_size
    attach_input_guard(model, card.name, in_chans, min_size)
    return model
