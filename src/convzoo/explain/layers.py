"""Which layers to look at, what they are, and watching them during a forward pass.

The map comes from the analysis tracer (one forward on the meta device at the images' size), so the shapes and
receptive fields in every title are `convzoo.summary`'s. From it, without any list of families:

- a *layer* is a module called once whose output is a spatial map (C x H x W);
- the *stages* are, for each resolution the maps pass through, the last layer to finish at it (ResNet: relu,
  layer1 .. layer4; VGG: the ReLU before each pooling, then `features`), pooling layers left out;
- the default *target* of the class activation maps is, for a classifier, the last stage (ResNet: layer4;
  VGG: features; DenseNet: features; LeNet-5: S4 at 32x32, since C5 is 1x1): the last map with more than one
  position before global pooling or the flattening classifier (at small inputs an earlier stage than at the
  card's size; when every map is 1x1, the last layer holding parameters);
  for a segmentation network it is the classifier's input: the output of the layer that ran just before the
  first convolution producing one channel per class.
"""
from __future__ import annotations

import difflib
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch
from torch import Tensor, nn

from ..analysis.receptive_field import TensorField
from ..analysis.trace import CallNode, trace_model
from ..errors import ConvzooError


class ExplainError(ConvzooError, ValueError):
    """A method asked of a layer or network it does not apply to; the message says what to ask instead."""


@dataclass(frozen=True)
class LayerInfo:
    """One layer as a batch of images of the traced size flows through it."""

    path: str
    type: str
    shape: tuple[int, ...]          # C x H x W without the batch axis
    field: TensorField              # receptive field, jump and start per axis (analysis/receptive_field.py)
    has_params: bool
    depth: int                      # 1 for the network's children, 2 for theirs, ...

    @property
    def positions(self) -> int:
        return self.shape[1] * self.shape[2]

    @property
    def receptive_field(self) -> tuple[float, float]:
        return tuple(axis.rf for axis in self.field.axes)

    @property
    def jump(self) -> tuple[float, float]:
        return tuple(axis.jump for axis in self.field.axes)

    def unit_box(self, row: int, col: int) -> tuple[float, float, float, float]:
        """(top, left, bottom, right), in input pixels, inclusive, of what unit (row, col) sees (it may
        reach past the image into the padding)."""
        top, bottom = self.field.axes[0].span(row)
        left, right = self.field.axes[1].span(col)
        return top, left, bottom, right

    def title(self) -> str:
        rf = self.receptive_field
        size = f"{rf[0]:g}" if rf[0] == rf[1] else f"{rf[0]:g}x{rf[1]:g}"
        return f"{self.path} ({'x'.join(map(str, self.shape))}), receptive field {size} px"

    def to_dict(self) -> dict:
        return {"layer": self.path, "type": self.type, "shape": list(self.shape),
                "receptive_field_pixels": list(self.receptive_field), "jump_pixels": list(self.jump),
                "start_pixel": [axis.start for axis in self.field.axes]}


@dataclass
class LayerMap:
    """The layers of a network at one input size, in the order they finish."""

    name: str
    input_size: tuple[int, ...]
    layers: list[LayerInfo]
    stages: list[str]
    target: str | None
    first_conv: str | None
    last_linear: str | None
    last_with_params: str | None   # the deepest map a layer with parameters makes: what a GAP head averages

    def get(self, path: str) -> LayerInfo:
        for layer in self.layers:
            if layer.path == path:
                return layer
        names = [layer.path for layer in self.layers]
        close = difflib.get_close_matches(path, names, n=4, cutoff=0.5)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ExplainError(f"{path!r} is not a layer of {self.name} with a spatial output at "
                           f"{'x'.join(map(str, self.input_size))}.{hint} `convzoo summary {self.name}` lists the "
                           f"module paths (stages here: {', '.join(self.stages)})")

    def default_target(self) -> LayerInfo:
        if self.target is None:
            raise ExplainError(f"{self.name} has no spatial layer to explain at {'x'.join(map(str, self.input_size))}"
                               f"; give --layer")
        return self.get(self.target)


def _post_order(node: CallNode) -> Iterator[CallNode]:
    for child in node.children:
        yield from _post_order(child)
    yield node


def map_layers(model: nn.Module, input_size: Sequence[int], *, name: str, task: str, num_classes: int) -> LayerMap:
    """Trace `model` at `input_size` (C, H, W) on the meta device and find its layers, stages and default target
    (the rules are in the module docstring)."""
    trace = trace_model(model, tuple(input_size), name=name)
    modules = dict(model.named_modules())
    finished = [node for node in _post_order(trace.root) if node is not trace.root]
    calls: dict[str, int] = {}
    for node in finished:
        calls[node.path] = calls.get(node.path, 0) + 1
    layers, first_conv, last_linear, score_conv = [], None, None, None
    for node in finished:
        module = modules.get(node.path)
        if module is None:
            continue
        if isinstance(module, nn.Conv2d) and first_conv is None:
            first_conv = node.path
        if isinstance(module, nn.Linear):
            last_linear = node.path
        if (score_conv is None and isinstance(module, nn.Conv2d) and module.out_channels == num_classes
                and task == "segmentation"):
            score_conv = (node.path, module.in_channels, len(layers))
        shape = node.output_shapes[0] if node.output_shapes else ()
        if (calls[node.path] != 1 or node.field is None or not node.field.spatial or len(shape) != 3
                or len(node.field.axes) != 2):
            continue
        has_params = any(True for _ in module.parameters())
        layers.append(LayerInfo(node.path, node.type_name, tuple(shape), node.field, has_params, node.depth))

    # Per resolution, the outermost layers that run at it, and of those the last to finish.
    by_size: dict[tuple[int, int], list[LayerInfo]] = {}
    for layer in layers:
        if "Pool" not in layer.type and layer.positions > 1:
            by_size.setdefault(layer.shape[1:], []).append(layer)
    stage_layers = []
    for members in by_size.values():
        outermost = min(layer.depth for layer in members)
        stage_layers.append([layer for layer in members if layer.depth == outermost][-1])
    stage_layers.sort(key=layers.index)
    if task == "segmentation":
        target = None
        if score_conv is not None:
            path, in_channels, before = score_conv
            fed = [layer for layer in layers[:before] if layer.shape[0] == in_channels]
            target = fed[-1] if fed else None
    else:
        target = (stage_layers or [layer for layer in layers if layer.has_params] or [None])[-1]
    return LayerMap(name=name, input_size=tuple(input_size), layers=layers,
                    stages=[layer.path for layer in stage_layers], target=None if target is None else target.path,
                    first_conv=first_conv, last_linear=last_linear,
                    last_with_params=next((layer.path for layer in reversed(layers) if layer.has_params), None))


@contextmanager
def watch(model: nn.Module, paths: Sequence[str], keep_graph: bool = False) -> Iterator[dict[str, Tensor]]:
    """Record the outputs of the modules at `paths` during the forward passes run inside the block.

    The network downstream gets a copy of each watched output, so an in-place call after the module (a
    functional ReLU, a `+=`) cannot change what was recorded. With `keep_graph` the recorded tensors stay in
    the autograd graph (for gradients with respect to them); otherwise they are detached."""
    modules = dict(model.named_modules())
    seen: dict[str, Tensor] = {}
    handles = []

    def hook_for(path: str):
        def hook(module: nn.Module, args, output):
            if not isinstance(output, Tensor):
                raise ExplainError(f"{path} returns {type(output).__name__}, not a tensor: pick another layer")
            seen[path] = output if keep_graph else output.detach()
            return output.clone()
        return hook

    for path in paths:
        if path not in modules:
            raise ExplainError(f"{path!r} is not a module of the network")
        handles.append(modules[path].register_forward_hook(hook_for(path)))
    try:
        yield seen
    finally:
        for handle in handles:
            handle.remove()


def protect(model: nn.Module, path: str):
    """A forward hook, registered after any library's, that hands the rest of the network a copy of `path`'s
    output (so the library's recorded tensor stays as computed). Returns the handle."""
    module = dict(model.named_modules())[path]
    return module.register_forward_hook(lambda m, args, output: output.clone() if isinstance(output, Tensor) else None)


def place_on_image(maps: Tensor, layer: LayerInfo, size: Sequence[int]) -> Tensor:
    """Maps N x h x w on `layer`'s grid as N x H x W images: input pixel p reads the map at (p - start) / jump,
    bilinearly, since unit i is centred on input pixel start + i * jump (receptive_field.py). Beyond the first
    and last units the map's edge value continues."""
    n, h, w = maps.shape
    height, width = int(size[0]), int(size[1])
    coords = []
    for axis, length, cells in zip(layer.field.axes, (height, width), (h, w)):
        units = (torch.arange(length, dtype=torch.float32) - axis.start) / axis.jump
        coords.append(units / (cells - 1) * 2 - 1 if cells > 1 else torch.zeros(length))
    grid_y, grid_x = torch.meshgrid(coords[0], coords[1], indexing="ij")
    grid = torch.stack([grid_x, grid_y], dim=-1).expand(n, -1, -1, -1)
    return torch.nn.functional.grid_sample(maps[:, None].float(), grid, mode="bilinear", padding_mode="border",
                                           align_corners=True)[:, 0]
