"""The shared half of the model protocol (protocol.py): defaults every network has, and timm's classification
interface written once over what each family declares.

A family declares:
    feature_stages()   its body as Stages (module paths in execution order, channels, reduction)
    forward_features   the body, ending where the last stage ends
    forward_head       pooling, dropout, pre-logits layers and the classifier
    num_features       the width the final classifier reads
    classifier_path    where the final classifier is ("fc", "classifier", "classifier.6", ...)
    pool_path          where the pooling module is ("avgpool"), or None where the family pools in forward_head

and inherits get_classifier, reset_classifier, feature_info, forward_intermediates, set_grad_checkpointing,
pretrained_cfg and forward (= forward_head(forward_features(x))). The default forward_head reads `avgpool` and
`fc` (written out, so torch.jit.script compiles it); families with other names write their own.

No class-level annotations here: torch.jit.script reads them as attribute types. What it cannot compile (the
card, the arguments, the declarations) it leaves out, so a network that scripts keeps scripting.
"""
import math
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from ..layers.pool import check_global_pool, make_pool
from ..protocol import GLOBAL_POOLS, FeatureInfoList, Stage, feature_info_of

# The normalisation and evaluation crop of the ImageNet-trained networks (torchvision's and timm's defaults).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_CROP_PCT = 0.875


class Network(nn.Module):
    """What every convzoo network has (protocol.ConvzooModel). `card` and `model_args` are set by
    create_model; the others are defaults a family overrides where it has something to say."""

    card = None
    model_args: Dict[str, Any] = {}
    resolved_args: Dict[str, Any] = {}
    min_input_size = None
    aux_weight = 0.0
    image_input_weights: Tuple[str, ...] = ()  # the weights that read the image, where not just the first conv
    __jit_ignored_attributes__ = ["card", "model_args", "resolved_args", "min_input_size", "aux_weight",
                                  "image_input_weights"]
    __jit_unused_properties__ = ["feature_info", "pretrained_cfg"]

    @torch.jit.unused
    def remap_state_dict(self, state_dict: Mapping[str, Tensor]) -> Dict[str, Tensor]:
        """Legacy key names renamed to the current ones before weights are matched (none by default)."""
        return dict(state_dict)


def resolve_drop_rate(name: str, drop_rate: float | None, dropout: float) -> float:
    """timm's `drop_rate` as an alias of a family's own `dropout` argument (the dropout of its classifier)."""
    if drop_rate is None:
        return dropout
    if not 0.0 <= drop_rate < 1.0:
        raise ValueError(f"{name}: drop_rate must be in [0, 1), got {drop_rate}")
    return float(drop_rate)


def resolve_drop_path(name: str, drop_path_rate: float | None, drop_path: float) -> float:
    """timm's `drop_path_rate` as an alias of `drop_path` (stochastic depth: the last block's drop rate)."""
    if drop_path_rate is None:
        return drop_path
    if drop_path and drop_path != drop_path_rate:
        raise ValueError(f"{name}: drop_path_rate is timm's name for drop_path; give one of them, not "
                         f"drop_path={drop_path} and drop_path_rate={drop_path_rate}")
    return float(drop_path_rate)


class ClassifierNetwork(Network):
    """timm's classification interface (protocol.Classifier) over a family's declaration."""

    classifier_path = "fc"
    pool_path = "avgpool"  # None where the family has no pooling module
    # The global_pool kinds the family's head can take; "" (none) needs num_classes=0 everywhere.
    pool_kinds = GLOBAL_POOLS
    pool_output_size = 1

    global_pool = "avg"
    drop_rate = 0.0
    grad_checkpointing = False
    __jit_ignored_attributes__ = Network.__jit_ignored_attributes__ + [
        "classifier_path", "pool_path", "pool_kinds", "pool_output_size"]

    # --- construction helpers -------------------------------------------------------------------------
    def _head_settings(self, num_classes: int, global_pool: str, drop_rate: float = 0.0) -> None:
        """Check and record timm's head arguments (call before building the head)."""
        name = type(self).__name__
        check_global_pool(global_pool, name, self.pool_kinds)
        if global_pool == "" and num_classes:
            raise ValueError(f"{name}: global_pool='' leaves the feature map unpooled, which only a headless "
                             f"network returns: pass num_classes=0 too (or call forward_features)")
        if num_classes < 0:
            raise ValueError(f"{name}: num_classes must be 0 (headless) or more, got {num_classes}")
        if not 0.0 <= drop_rate < 1.0:
            raise ValueError(f"{name}: drop_rate must be in [0, 1), got {drop_rate}")
        self.num_classes = num_classes
        self.global_pool = global_pool
        self.drop_rate = float(drop_rate)
        self.grad_checkpointing = getattr(self, "grad_checkpointing", False)

    def _pool(self) -> nn.Module:
        return make_pool(self.global_pool, (self.pool_output_size, self.pool_output_size))

    def _new_classifier(self, num_classes: int) -> nn.Module:
        """The final classifier for `num_classes` (a Linear; an Identity when 0). LeNet-5 overrides it."""
        return nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    # --- the interface ------------------------------------------------------------------------------
    @torch.jit.unused
    def feature_stages(self) -> List[Stage]:
        raise NotImplementedError(f"{type(self).__name__} does not declare its stages")

    @property
    def feature_info(self) -> FeatureInfoList:
        return feature_info_of(self.feature_stages())

    def forward_features(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """Pool (`avgpool`), flatten (unless global_pool is ''), dropout at drop_rate, then the classifier (`fc`)."""
        x = self.avgpool(x)
        if self.global_pool != "":
            x = x.flatten(1)
        if self.drop_rate > 0.0:
            x = F.dropout(x, p=self.drop_rate, training=self.training)
        return x if pre_logits else self.fc(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    @torch.jit.unused
    def get_classifier(self) -> nn.Module:
        return self.get_submodule(self.classifier_path)

    @torch.jit.unused
    def head_modules(self) -> List[nn.Module]:
        """The modules forward_head runs after the pool, in order (convolutionalize reads them)."""
        return [self.get_classifier()]

    @torch.jit.unused
    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        """A new, freshly initialised classifier for `num_classes` (0: none, the network returns its pooled
        features, (N, num_features)); `global_pool` changes the pooling too. The body is kept."""
        global_pool = self.global_pool if global_pool is None else global_pool
        self._head_settings(int(num_classes), global_pool, self.drop_rate)
        if self.pool_path is not None:
            self._set_submodule(self.pool_path, self._pool())
        device = next((p.device for p in self.parameters()), None)
        self._set_submodule(self.classifier_path, self._new_classifier(self.num_classes).to(device=device))

    @torch.jit.unused
    def _set_submodule(self, path: str, module: nn.Module) -> None:
        parent, _, name = path.rpartition(".")
        owner = self.get_submodule(parent) if parent else self
        setattr(owner, name, module) if not name.isdigit() else owner.__setitem__(int(name), module)

    @torch.jit.unused
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each stage's activations in the backward pass instead of keeping them (less memory,
        about a third more compute), where the family runs its stages through `run_stages`."""
        self.grad_checkpointing = bool(enable)

    @torch.jit.unused
    def run_stages(self, stages: List[nn.Module], x: Tensor) -> Tensor:
        """Run `stages` in order, each checkpointed while training with grad checkpointing on. Families call
        it under `if self.grad_checkpointing and not torch.jit.is_scripting():`, their plain calls otherwise."""
        for stage in stages:
            if self.training and torch.is_grad_enabled():
                x = checkpoint(stage, x, use_reentrant=False)
            else:
                x = stage(x)
        return x

    @torch.jit.unused
    def forward_stage(self, stage: Stage, x: Tensor) -> Tensor:
        """Run one of `feature_stages()` on `x`: its steps in order, then its final ReLU if it has one. The
        stages run one after the other are the body: forward_head(last stage's output) is forward(x)."""
        for step in stage.steps:
            x = self.get_submodule(step)(x)
        return F.relu(x) if stage.final_relu else x

    @torch.jit.unused
    def forward_intermediates(self, x: Tensor, indices: Union[int, Sequence[int], None] = None,
                              intermediates_only: bool = False) -> Union[List[Tensor], Tuple[Tensor, List[Tensor]]]:
        """The outputs of the stages in `indices` (default all; an int n: the last n), and the final
        features (what forward_features returns) unless `intermediates_only`. timm's signature, in short."""
        stages = self.feature_stages()
        if indices is None:
            wanted = set(range(len(stages)))
        elif isinstance(indices, int):
            wanted = set(range(len(stages) - indices, len(stages)))
        else:
            wanted = {i % len(stages) for i in indices}
        intermediates = []
        for index, stage in enumerate(stages):
            x = self.forward_stage(stage, x)
            if index in wanted:
                intermediates.append(x)
        return intermediates if intermediates_only else (x, intermediates)

    @property
    def pretrained_cfg(self) -> Dict[str, Any]:
        """timm's pretrained_cfg fields, from the card and the network. No weights ship with convzoo: `file`
        is None (create_model(name, checkpoint_path=FILE) or pretrained_cfg=dict(file=FILE) loads one)."""
        card = self.card
        in_chans = self.model_args.get("in_chans") if self.model_args else None
        size = tuple(card.input_size) if card is not None else None
        if size is not None and in_chans is not None:
            size = (int(in_chans), *size[1:])
        reduction = self.feature_stages()[-1].reduction
        first_conv = next((name for name, m in self.named_modules() if isinstance(m, nn.Conv2d)), None)
        three = size is None or size[0] == 3
        imagenet = card is None or card.input_size[1] >= 200
        return {
            "architecture": card.name if card is not None else type(self).__name__,
            "file": None,
            "num_classes": self.num_classes,
            "input_size": size,
            "min_input_size": None if card is None else (size[0], *(self.min_input_size or card.min_input_size)),
            "pool_size": None if size is None else tuple(math.ceil(s / reduction) for s in size[1:]),
            "first_conv": first_conv,
            "classifier": self.classifier_path,
            "global_pool": self.global_pool,
            "mean": IMAGENET_MEAN if three else (0.5,) * (size[0] if size else 1),
            "std": IMAGENET_STD if three else (0.5,) * (size[0] if size else 1),
            "crop_pct": DEFAULT_CROP_PCT if imagenet else 1.0,
            "interpolation": "bilinear",
        }
