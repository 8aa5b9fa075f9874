"""Classification networks as encoders: the feature maps of their stages, at a chosen output stride.

    backbone = convzoo.create_model("resnet50", features_only=True, out_indices=(3, 4), output_stride=8)
    layer3, layer4 = backbone(images)                # a list, one map per out index
    backbone.feature_info                            # [FeatureInfo("layer3", 1024, 8), FeatureInfo("layer4", 2048, 8)]

A *stage*, as each family declares it, ends wherever the network's resolution is about to drop: stage i's
output is the last layer at reduction r_i (ResNet: relu of the stem at 2, layer1 at 4, layer2 at 8, layer3 at 16, layer4 at 32; VGG: the
last ReLU before each pool, at 1..16, then pool5 at 32). `out_indices` picks stages; the modules after the
last picked stage and the classifier head are dropped, so the extractor holds only what it runs.

The extractor registers the network's own top-level modules under their own names (`conv1`, `layer4`,
`features` cut after its last used child), so a torchvision classification state dict loads into it with
strict=False (only the head's keys are unexpected), and a segmentation network holding it as `backbone`
gets torchvision's `backbone.layer4.2.conv3.weight` keys.

`output_stride` (8, 16, ...) keeps the resolution from dropping below input/output_stride by replacing
strides with dilation, the "atrous algorithm" of DeepLab (Chen et al. 2015): walking the network in execution
order, every stride that would take the reduction past output_stride is set to 1; the layer that had it keeps
the dilation rate it had, and every later filter's dilation is multiplied by the removed stride, padding
grown to keep the size. For ResNet this is exactly torchvision's replace_stride_with_dilation (the first
block of a dilated stage keeps the previous rate in its strided 3x3, the others get the new one). A pool
that loses its stride becomes 3x3 with stride 1 and padding 1, as DeepLab-LargeFOV's pool4 and pool5 (an
average pool stops counting the padding, so borders are not darkened). The walk treats one residual or
inverted-residual block as one downsampling (its main path and shortcut stride together).

The extractor knows no family: it reads what the network declares (protocol.Stage: each stage's module paths
in execution order, its channels and reduction; `feature_stages()`), so a new family that declares its stages
is an encoder with no edit here. A family whose body cannot be cut into stages (LeNet-5: trainable
subsampling, unpadded convolutions and a squashing function between modules) raises a ValueError saying so.
"""
from __future__ import annotations

from collections import OrderedDict
from functools import cached_property
from itertools import chain
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..layers.residual import ZeroPadShortcut
from ..protocol import FeatureInfo, FeatureInfoList, Stage
from ..registry import register_feature_extractor
from .network import Network

# min_input_size searches the smallest input below this size, on the meta device (no memory, no arithmetic).
PROBE_SIZE = 224

_STRIDED = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d, ZeroPadShortcut)


def stages_of(network: nn.Module) -> list[Stage]:
    """The stages a classification network declares (protocol.Classifier.feature_stages)."""
    declare = getattr(network, "feature_stages", None)
    if declare is None:
        raise ValueError(f"{type(network).__name__} cannot serve as an encoder: it declares no stages "
                         f"(feature_stages); every convzoo classification family does")
    try:
        return list(declare())
    except NotImplementedError as err:
        raise ValueError(f"{type(network).__name__} cannot serve as an encoder: {err}") from None


def _out_channels(module: nn.Module, channels: int) -> int:
    """The channels a step leaves, given those it receives: a block's `out_chans` where it says, a conv's
    out_channels, a Sequential's last such; modules without a conv (pools, norms, activations) keep them."""
    declared = getattr(module, "out_chans", None)
    if isinstance(declared, int):
        return declared
    if isinstance(module, nn.Conv2d):
        return module.out_channels
    if isinstance(module, nn.Sequential):
        for child in module:
            channels = _out_channels(child, channels)
        return channels
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    return convs[-1].out_channels if convs else channels


def stages_by_reduction(network: nn.Module, steps: Sequence[str], in_chans: int,
                        final_relu: bool = False) -> list[Stage]:
    """Stages for a body that runs `steps` (module paths) one after the other: a stage ends at the last step
    before the resolution drops, and at the last step. Reductions come from the strides (the walker below),
    channels from each step's `out_chans` or last convolution. `final_relu` marks a ReLU the family's
    forward applies after the last step. VGG, AlexNet, MobileNet, DenseNet and GoogLeNet declare theirs so."""
    modules = [network.get_submodule(step) for step in steps]
    reductions = reductions_of(modules)
    stages, start, channels = [], 0, in_chans
    for i, module in enumerate(modules):
        channels = _out_channels(module, channels)
        if i + 1 == len(modules) or reductions[i + 1] != reductions[i]:
            last = i + 1 == len(modules)
            stages.append(Stage(tuple(steps[start:i + 1]), channels, reductions[i], final_relu and last))
            start = i + 1
    return stages


def children_of(network: nn.Module, attribute: str) -> list[str]:
    """The paths of a Sequential attribute's children (`features.0`, `features.1`, ...)."""
    return [f"{attribute}.{name}" for name, _ in network.get_submodule(attribute).named_children()]


class SequentialBody:
    """For a family whose body is its `features` Sequential (VGG, AlexNet, MobileNet, DenseNet): the body is
    `features`, and the stages are its children cut where the resolution drops (`stages_by_reduction`).
    `body_final_relu` marks a ReLU the family applies after `features` (DenseNet's)."""

    body_final_relu = False

    def feature_stages(self) -> list[Stage]:
        return stages_by_reduction(self, children_of(self, "features"), self.in_chans, self.body_final_relu)

    def forward_features(self, x: Tensor) -> Tensor:
        return self.features(x)


def _blocks(module: nn.Module) -> Iterator[nn.Module]:
    """The blocks of a step in execution order: Sequentials are opened, anything else is one block."""
    if isinstance(module, nn.Sequential):
        for child in module.children():
            yield from _blocks(child)
    else:
        yield module


def _pair_value(value: int | tuple[int, ...], what: str, module: nn.Module) -> int:
    values = (value,) if isinstance(value, int) else tuple(value)
    if len(set(values)) != 1:
        raise ValueError(f"cannot dilate {module}: its {what} differs between height and width")
    return values[0]


def _strided_modules(block: nn.Module) -> list[nn.Module]:
    return [m for m in block.modules() if isinstance(m, _STRIDED) and _stride_of(m) > 1]


def _stride_of(module: nn.Module) -> int:
    return _pair_value(module.stride, "stride", module)


def block_stride(block: nn.Module) -> int:
    """How much a block reduces the resolution: the stride its strided modules share (a residual block's
    main path and shortcut are parallel, so they count once)."""
    strides = {_stride_of(m) for m in _strided_modules(block)}
    if len(strides) > 1:
        raise ValueError(f"cannot tell the stride of {type(block).__name__}: its modules stride by {sorted(strides)}")
    return strides.pop() if strides else 1


def _dilate_conv(conv: nn.Conv2d, rate: int) -> None:
    """Multiply a conv's dilation by `rate`, growing its padding so that its output size does not change."""
    kernel = _pair_value(conv.kernel_size, "kernel size", conv)
    if kernel == 1 or rate == 1:
        return
    dilation = _pair_value(conv.dilation, "dilation", conv)
    conv.dilation = (dilation * rate,) * 2
    if not isinstance(conv.padding, str):
        padding = _pair_value(conv.padding, "padding", conv)
        conv.padding = (padding + (dilation * rate - dilation) * (kernel - 1) // 2,) * 2


def _remove_stride(module: nn.Module, rate: int) -> None:
    """Make a strided module stride 1 at the current dilation `rate`, keeping its output at its input's size."""
    if isinstance(module, ZeroPadShortcut):
        module.stride = 1
    elif isinstance(module, nn.Conv2d):
        module.stride = (1, 1)
        _dilate_conv(module, rate)
    else:  # a pool: DeepLab-LargeFOV's 3x3, stride 1, padding 1
        kernel = _pair_value(module.kernel_size, "kernel size", module)
        kernel = kernel if kernel % 2 else kernel + 1
        module.kernel_size, module.stride, module.padding = kernel, 1, kernel // 2
        module.ceil_mode = False
        if isinstance(module, nn.AvgPool2d):
            module.count_include_pad = False


def reductions_of(steps: Sequence[nn.Module]) -> list[int]:
    """The reduction (input size / output size) after each step, from the strides of its blocks."""
    reductions, reduction = [], 1
    for step in steps:
        for block in _blocks(step):
            reduction *= block_stride(block)
        reductions.append(reduction)
    return reductions


def apply_output_stride(steps: Sequence[nn.Module], output_stride: int) -> None:
    """Replace every stride that would take the reduction past `output_stride` by dilation, in place
    (the module docstring gives the rule)."""
    reduction, rate = 1, 1
    for step in steps:
        for block in _blocks(step):
            stride = block_stride(block)
            strided = _strided_modules(block)
            if stride > 1 and reduction * stride <= output_stride:
                reduction *= stride
                continue
            for module in strided:
                _remove_stride(module, rate)
            for conv in (m for m in block.modules() if isinstance(m, nn.Conv2d) and m not in strided):
                _dilate_conv(conv, rate * stride)
            rate *= stride


def apply_multi_grid(stage: nn.Module, grid: Sequence[int]) -> None:
    """DeepLab v3's multi-grid (Chen et al. 2017, section 3.2), in place: the k-th unit of a dilated stage gets
    its 3x3 convolution at rate `stage rate x grid[k]` (at output stride 16, layer4's rate 2 with grid (1, 2, 4)
    gives rates 2, 4, 8), padding grown so that the map keeps its size. The stage's rate is that of its last
    unit, which `apply_output_stride` set; the first unit's 3x3, which kept the previous rate there, gets it too."""
    blocks = list(_blocks(stage))
    if len(grid) != len(blocks):
        raise ValueError(f"multi_grid needs one rate multiplier per unit of the stage: it has {len(blocks)} units, "
                         f"got {len(grid)} ({tuple(grid)})")
    if any(int(g) < 1 for g in grid):
        raise ValueError(f"multi_grid multipliers must be positive integers, got {tuple(grid)}")
    spatial = []
    for block in blocks:
        convs = [m for m in block.modules() if isinstance(m, nn.Conv2d) and _pair_value(m.kernel_size, "kernel size", m) > 1]
        if len(convs) != 1:
            raise ValueError(f"multi-grid needs units with one spatial convolution; {type(block).__name__} has {len(convs)}")
        spatial.append(convs[0])
    rate = _pair_value(spatial[-1].dilation, "dilation", spatial[-1])
    if rate == 1 or any(_stride_of(conv) > 1 for conv in spatial):
        raise ValueError("multi-grid applies to a dilated stage: build the backbone at output_stride 8 or 16")
    for conv, multiplier in zip(spatial, grid):
        kernel = _pair_value(conv.kernel_size, "kernel size", conv)
        conv.dilation = (rate * int(multiplier),) * 2
        conv.padding = (rate * int(multiplier) * (kernel - 1) // 2,) * 2


class FeatureExtractor(Network):
    """A classification network's body returning the feature maps of the stages in `out_indices`, built from
    the stages the network declares (`feature_stages()`).

    `output_stride=None` keeps the network's strides. `feature_info` lists the outputs (module, channels,
    reduction); `channels` and `reductions` are the same numbers as tuples. `min_input_size` is the
    smallest square input the extractor takes, measured on the meta device when first asked."""

    def __init__(self, network: nn.Module, out_indices: Sequence[int] | None = None,
                 output_stride: int | None = None):
        super().__init__()
        stages = stages_of(network)
        num_stages = len(stages)
        all_steps = [step for stage in stages for step in stage.steps]
        steps = [network.get_submodule(name) for name in all_steps]
        # A stage ends at its last step: its position in the flat list of steps.
        stage_ends = [sum(len(s.steps) for s in stages[:i + 1]) - 1 for i in range(num_stages)]
        stage_reductions = [stage.reduction for stage in stages]
        out_indices = tuple(range(num_stages)) if out_indices is None else tuple(int(i) for i in out_indices)
        if not out_indices or any(not -num_stages <= i < num_stages for i in out_indices):
            raise ValueError(f"{type(network).__name__} has {num_stages} stages (reductions "
                             f"{stage_reductions}); out_indices must pick among 0..{num_stages - 1}, got "
                             f"{list(out_indices)}")
        out_indices = tuple(i % num_stages for i in out_indices)
        if len(set(out_indices)) != len(out_indices) or list(out_indices) != sorted(out_indices):
            raise ValueError(f"out_indices must be increasing and distinct, got {list(out_indices)}")

        if output_stride is not None and output_stride not in set(stage_reductions):
            raise ValueError(f"{type(network).__name__} cannot have output_stride={output_stride}; its stages are "
                             f"at reductions {sorted(set(stage_reductions))}")
        out_positions = [stage_ends[i] for i in out_indices]
        kept = all_steps[:out_positions[-1] + 1]
        if output_stride is not None:
            walked = reductions_of(steps)
            if [walked[i] for i in stage_ends] != stage_reductions:
                raise ValueError(f"{type(network).__name__} cannot take output_stride: not all of its strides are in "
                                 f"convolutions and pools the walker can dilate (stages at reductions "
                                 f"{stage_reductions}, strides found for {[walked[i] for i in stage_ends]})")
            apply_output_stride(steps[:len(kept)], output_stride)

        self._register_modules(network, kept)
        self.steps = tuple(kept)
        self.out_indices = out_indices
        self.out_positions = tuple(out_positions)
        self.relu_positions = tuple(stage_ends[i] for i, stage in enumerate(stages)
                                    if stage.final_relu and stage_ends[i] < len(kept))
        self.output_stride = output_stride
        reductions = reductions_of(steps[:len(kept)]) if output_stride is not None else None
        self.feature_info = FeatureInfoList(
            FeatureInfo(stages[i].module, stages[i].channels,
                        stages[i].reduction if reductions is None else reductions[stage_ends[i]])
            for i in out_indices)

    def _register_modules(self, network: nn.Module, kept: Sequence[str]) -> None:
        # Under their own names, so state dict keys stay the network's; a Sequential cut after its last
        # used child keeps its children's names.
        for root in dict.fromkeys(name.split(".")[0] for name in kept):
            module = getattr(network, root)
            used = [name.split(".", 1)[1] for name in kept if name.startswith(f"{root}.")]
            if used and len(used) < len(module):
                module = nn.Sequential(OrderedDict((name, module.get_submodule(name)) for name in used))
            self.add_module(root, module)

    @property
    def in_chans(self) -> int:
        return next(m for m in self.modules() if isinstance(m, nn.Conv2d)).in_channels

    def feature_shapes(self, height: int, width: int | None = None) -> list[torch.Size]:
        """The shapes of the outputs for one input of height x width (square if width is None)."""
        # The extractor's own forward with every parameter and buffer swapped for a meta tensor: shapes
        # only, whatever device the weights are on.
        state = {name: torch.empty_like(tensor, device="meta")
                 for name, tensor in chain(self.named_parameters(), self.named_buffers())}
        x = torch.empty(1, self.in_chans, height, height if width is None else width, device="meta")
        # In eval mode: a training-mode batch norm refuses one value per channel, a batch-size limit, not
        # a size limit. Each module's mode is restored afterwards.
        modes = {module: module.training for module in self.modules()}
        self.eval()
        try:
            with torch.no_grad():
                return [feature.shape for feature in torch.func.functional_call(self, state, (x,))]
        finally:
            for module, training in modes.items():
                module.training = training

    @property
    def channels(self) -> tuple[int, ...]:
        return tuple(info.channels for info in self.feature_info)

    @property
    def reductions(self) -> tuple[int, ...]:
        return tuple(info.reduction for info in self.feature_info)

    @cached_property
    def min_input_size(self) -> tuple[int, int]:
        """The smallest square input the extractor runs on (binary search on the meta device)."""
        def runs(size: int) -> bool:
            try:
                self.feature_shapes(size)
            except (RuntimeError, ValueError):
                return False
            return True

        low, high = 1, PROBE_SIZE
        while low < high:
            middle = (low + high) // 2
            low, high = (low, middle) if runs(middle) else (middle + 1, high)
        return (low, low)

    def forward(self, x: Tensor) -> list[Tensor]:
        features = []
        for position, name in enumerate(self.steps):
            x = self.get_submodule(name)(x)
            if position in self.relu_positions:
                x = F.relu(x)
            if position in self.out_positions:
                features.append(x)
        return features


register_feature_extractor(FeatureExtractor)  # create_model(..., features_only=True) builds this
