"""What a convzoo network is, written down: the protocol every family implements.

A practitioner's first lines are timm's or torchvision's, so the names are theirs:

    model = convzoo.create_model("resnet50")
    model.feature_info.channels(), model.feature_info.reduction()   # per stage, declared by the family
    features = model.forward_features(x)            # (N, C, H, W): the body
    logits = model.forward_head(features)           # pool, pre-logits, classifier
    model.reset_classifier(10)                      # a new head; 0 makes the network headless
    model.get_classifier(), model.num_features, model.pretrained_cfg

`ConvzooModel` is what every registered network carries once `create_model` has built it (its card, its
arguments, the hooks weights loading and training read). `Classifier` adds timm's classification interface.
Each family declares its body as `Stage`s (module paths in execution order, the channels and reduction of
each stage's output): `models/features.py` builds `features_only` encoders from that declaration alone, so
adding a family never edits the extractor.

This module imports nothing from `models`: the registry, weights loading and training read networks through it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Protocol, Sequence, runtime_checkable

from torch import Tensor, nn

if TYPE_CHECKING:
    from .registry import ModelCard

# timm's global pooling choices: average, max, their mean, or none (the map is returned unpooled).
GLOBAL_POOLS = ("avg", "max", "avgmax", "")


@dataclass(frozen=True)
class FeatureInfo:
    """One stage output: the module that produces it, its channels, and its reduction (the product of the
    strides before it, after any dilation: input size / feature size where the convs are padded)."""

    module: str
    channels: int
    reduction: int


class FeatureInfoList(list):
    """The stages of a network or an encoder, a list of FeatureInfo with timm's accessors:
    `channels()`, `reduction()`, `module_name()` (all stages as a list, or one with `idx`)."""

    def channels(self, idx: int | None = None) -> list[int] | int:
        return [info.channels for info in self] if idx is None else self[idx].channels

    def reduction(self, idx: int | None = None) -> list[int] | int:
        return [info.reduction for info in self] if idx is None else self[idx].reduction

    def module_name(self, idx: int | None = None) -> list[str] | str:
        return [info.module for info in self] if idx is None else self[idx].module

    def get_dicts(self) -> list[dict[str, Any]]:
        """timm's dictionaries: num_chs, reduction, module."""
        return [{"num_chs": i.channels, "reduction": i.reduction, "module": i.module} for i in self]


@dataclass(frozen=True)
class Stage:
    """One stage of a family's body, as the family declares it: the module paths it runs, in execution
    order (`steps`), and what its output is. `final_relu` applies a ReLU after the last step where the
    family's forward does so outside any module (DenseNet's after norm5). The output is named after the
    last step (`module`)."""

    steps: tuple[str, ...]
    channels: int
    reduction: int
    final_relu: bool = False

    @property
    def module(self) -> str:
        return self.steps[-1]


def feature_info_of(stages: Sequence[Stage]) -> FeatureInfoList:
    return FeatureInfoList(FeatureInfo(s.module, s.channels, s.reduction) for s in stages)


@runtime_checkable
class ConvzooModel(Protocol):
    """What every network `create_model` returns carries.

    card            the registry's ModelCard (set by create_model)
    model_args      the arguments that rebuild it: {"name", "num_classes", "in_chans", ...} (set by create_model)
    resolved_args   arguments the network resolved itself (a spec file into the spec), recorded in model_args
    min_input_size  the smallest (H, W) its arguments accept, or None for the card's
    aux_weight      the weight of an auxiliary head's loss (0.0: none)
    image_input_weights  the weights that read the image, adapted to other input channels when loading
                    (empty: the first convolution's)
    remap_state_dict(state)  renames legacy keys before weights are matched
    """

    card: ModelCard
    model_args: dict[str, Any]
    resolved_args: dict[str, Any]
    min_input_size: tuple[int, int] | None
    aux_weight: float
    image_input_weights: tuple[str, ...]

    def remap_state_dict(self, state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]: ...


@runtime_checkable
class Classifier(ConvzooModel, Protocol):
    """timm's classification interface, implemented by every classification family.

    num_features    the width of the vector the final classifier reads: what num_classes=0 returns
    feature_info    the declared stages (FeatureInfoList); the last one is what forward_features returns
    pretrained_cfg  first_conv, classifier, input_size, pool_size, mean, std, crop_pct, interpolation, ...
    """

    num_classes: int
    num_features: int
    classifier_path: str        # where get_classifier's module is: "fc", "classifier", "classifier.6", ...
    pool_path: str | None       # where the pooling module is ("avgpool"), None where there is none
    global_pool: str
    drop_rate: float
    feature_info: FeatureInfoList
    pretrained_cfg: dict[str, Any]

    def feature_stages(self) -> list[Stage]: ...
    def forward_features(self, x: Tensor) -> Tensor: ...
    def forward_stage(self, stage: Stage, x: Tensor) -> Tensor: ...
    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor: ...
    def get_classifier(self) -> nn.Module: ...
    def head_modules(self) -> list[nn.Module]: ...
    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None: ...
    def set_grad_checkpointing(self, enable: bool = True) -> None: ...
    def forward_intermediates(self, x: Tensor, indices: int | Sequence[int] | None = None,
                              intermediates_only: bool = False) -> list[Tensor] | tuple[Tensor, list[Tensor]]: ...


def main_output(outputs: Tensor | Mapping[str, Tensor]) -> Tensor:
    """The prediction in a network's output: a segmentation network's {"out", "aux"} gives "out" (torchvision's
    contract, in every mode), a classifier's tensor is itself."""
    return outputs["out"] if isinstance(outputs, Mapping) else outputs


def card_of(model: nn.Module) -> ModelCard | None:
    """The card of a convzoo network, None for any other module (a user's own, torchvision's)."""
    return model.card if isinstance(model, ConvzooModel) else None


def model_args_of(model: nn.Module) -> dict[str, Any] | None:
    """The arguments that rebuild a network create_model built, None for any other module."""
    return model.model_args or None if isinstance(model, ConvzooModel) else None
