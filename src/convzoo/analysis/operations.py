"""What each torch function costs, and how it moves the receptive field.

`RULES` maps a torch function (as a `TorchFunctionMode` sees it: `torch.conv2d`, `F.batch_norm`,
`torch.Tensor.add_`, ...) to an `OpRule`. The tracer looks every call up here; a call that produces a
tensor and has no rule is reported as *uncounted* by name, never silently dropped.

Operations are counted in MACs, per call, for the whole batch:

- a multiply-accumulate (conv, linear, the folded scale-and-shift of an inference batch norm) is 1 MAC;
- an operation that is a single arithmetic step (an add, a multiply, a comparison, one activation
  function, an exp) also counts as 1, so that one column holds every operation; FLOPs are reported as
  2 x MACs throughout (exact for conv and linear, which are 90% or more of every zoo network's operations
  and 99% of ResNet-50's);
- a bias is the accumulator's starting value and costs nothing;
- moving data (views, reshapes, concatenation, padding, dropout at inference, copies) costs 0.

The convention "conv_linear" keeps only the rules marked `conv_linear` (convolutions, transposed
convolutions, linear layers and matrix products): the convention of torchvision's published figures and of
fvcore's conv/linear counts. docs/analysis.md lists every rule with its formula.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Callable

import torch
import torch.nn.functional as F

from . import receptive_field as rf
from .receptive_field import TensorField

Tensor = torch.Tensor


class Call:
    """One traced call: its arguments, the output tensor a rule looks at, and the receptive-field state
    of each input tensor that has one (tensors derived from the model input; weights have none)."""

    __slots__ = ("args", "kwargs", "out", "inputs")

    def __init__(self, args: tuple, kwargs: dict, out: Tensor, inputs: list[tuple[Tensor, TensorField]]):
        self.args, self.kwargs, self.out, self.inputs = args, kwargs, out, inputs

    def arg(self, index: int, name: str, default: Any = None) -> Any:
        """An argument passed either by position or by keyword."""
        if index < len(self.args):
            return self.args[index]
        return self.kwargs.get(name, default)

    @property
    def x(self) -> Tensor:
        return self.arg(0, "input")

    @property
    def x_field(self) -> TensorField | None:
        x = self.x
        for tensor, field in self.inputs:
            if tensor is x:
                return field
        return None

    def spatial_sizes(self, tensor: Tensor, field: TensorField) -> tuple[int, ...]:
        return tuple(tensor.shape[tensor.dim() - len(field.axes):])


MacRule = Callable[[Call], int]
FieldRule = Callable[[Call], "TensorField | None"]


@dataclass(frozen=True)
class OpRule:
    """How one family of torch functions is counted.

    `name` appears in docs/analysis.md (a test checks every name is documented); `formula` says the rule
    in words; `conv_linear` marks the rules kept by the "conv_linear" convention; `field` transforms the
    receptive field (None: element-wise, see `pointwise_field`)."""

    name: str
    formula: str
    macs: MacRule
    conv_linear: bool = False
    field: FieldRule | None = None


# ----------------------------------------------------------------------------------------------------
# Receptive-field rules shared by many functions


def pointwise_field(call: Call) -> TensorField | None:
    """Element-wise ops, concatenation along channels, normalisation, linear layers on flattened features:
    the output grid is the inputs' grid, each unit sees the union of what its inputs see. Inputs on a
    coarser grid (a 1x1 gate, a flattened context vector) broadcast: every unit also sees all they see.
    None (unknown) when the op changes the grid in a way this rule cannot describe (e.g. a spatial crop)."""
    if not call.inputs:
        return None
    num_axes = len(call.inputs[0][1].axes)
    out = call.out
    out_grid = tuple(out.shape[-num_axes:]) if out.dim() > num_axes else None
    same_grid, broadcast = [], []
    for tensor, field in call.inputs:
        if len(field.axes) != num_axes:
            return None
        on_grid = field.spatial and out_grid is not None and tensor.dim() > num_axes
        (same_grid if on_grid and tuple(tensor.shape[-num_axes:]) == out_grid else broadcast).append(field)
    if same_grid:
        return rf.broadcast(rf.union(same_grid), broadcast)
    if all(not field.spatial for field in broadcast):
        return rf.union(broadcast)
    return None


def reshape_field(call: Call) -> TensorField | None:
    """Views and reshapes: if H and W survive as the trailing axes (channel shuffle's 5-D view) nothing
    moves; otherwise the spatial axes were flattened into features, which a classifier then mixes: the
    tensor covers the whole map."""
    field = pointwise_field(call)
    if field is not None or not call.inputs:
        return field
    tensor, field = call.inputs[0]
    return rf.collapse(field, call.spatial_sizes(tensor, field)) if field.spatial else field


def reduction_field(call: Call) -> TensorField | None:
    """mean/sum/amax over some axes: the reduced spatial axes cover their whole map."""
    field = call.x_field
    if field is None:
        return pointwise_field(call)
    x = call.x
    dims = call.arg(1, "dim", None)
    sizes = call.spatial_sizes(x, field)
    if dims is None or not field.spatial:
        return rf.collapse(field, sizes) if field.spatial else field
    dims = {d % x.dim() for d in ((dims,) if isinstance(dims, int) else dims)}
    first_spatial = x.dim() - len(field.axes)
    reduced = [i for i in range(len(field.axes)) if first_spatial + i in dims]
    if not reduced:
        return field
    keepdim = bool(call.arg(2, "keepdim", False))
    if keepdim:
        return rf.collapse(field, sizes, axes=reduced)
    if len(reduced) == len(field.axes):
        return rf.collapse(field, sizes)
    return None


def _window_field(call: Call, kernel: tuple[int, ...], stride, padding, dilation) -> TensorField | None:
    field = call.x_field
    if field is None or len(kernel) != len(field.axes):
        return None
    return rf.sliding_window(field, kernel, stride, padding, dilation)


def _spatial_dims(call: Call) -> int:
    """Spatial axes of a pooling input: everything after N and C."""
    return call.x.dim() - 2


# ----------------------------------------------------------------------------------------------------
# Convolutions and linear layers


def _conv_padding(call: Call, kernel: tuple[int, ...], dilation: tuple[int, ...]) -> tuple[int, ...]:
    padding = call.arg(4, "padding", 0)
    if padding == "valid":
        return (0,) * len(kernel)
    if padding == "same":  # PyTorch puts the odd pixel of an even total on the right
        return tuple((d * (k - 1)) // 2 for k, d in zip(kernel, dilation))
    return rf.per_axis(padding, len(kernel))


def _conv_macs(call: Call) -> int:
    weight = call.arg(1, "weight")
    return call.out.numel() * weight[0].numel()  # per output element: C_in/groups * prod(kernel)


def _conv_field(call: Call) -> TensorField | None:
    kernel = tuple(call.arg(1, "weight").shape[2:])
    dilation = rf.per_axis(call.arg(5, "dilation", 1), len(kernel))
    return _window_field(call, kernel, rf.per_axis(call.arg(3, "stride", 1), len(kernel)),
                         _conv_padding(call, kernel, dilation), dilation)


def _conv_transpose_macs(call: Call) -> int:
    weight = call.arg(1, "weight")  # (C_in, C_out/groups, *kernel): every input element feeds C_out/groups * k
    return call.x.numel() * weight[0].numel()


def _conv_transpose_field(call: Call) -> TensorField | None:
    field = call.x_field
    kernel = tuple(call.arg(1, "weight").shape[2:])
    if field is None or len(kernel) != len(field.axes):
        return None
    n = len(kernel)
    return rf.transposed_window(field, kernel, rf.per_axis(call.arg(3, "stride", 1), n),
                                rf.per_axis(call.arg(4, "padding", 0), n), rf.per_axis(call.arg(7, "dilation", 1), n))


def _linear_macs(call: Call) -> int:
    return call.out.numel() * call.arg(1, "weight").shape[-1]


def _matmul_macs(call: Call) -> int:
    first = call.x
    return call.out.numel() * first.shape[-1]


def _addmm_macs(call: Call) -> int:
    return call.out.numel() * call.arg(1, "mat1").shape[-1]


# ----------------------------------------------------------------------------------------------------
# Pooling


def _pool_args(call: Call) -> tuple[tuple[int, ...], Any, Any, Any]:
    n = _spatial_dims(call)
    kernel = rf.per_axis(call.arg(1, "kernel_size"), n)
    stride = call.arg(2, "stride", None)
    stride = kernel if stride is None or stride == [] or stride == () else rf.per_axis(stride, n)
    return kernel, stride, rf.per_axis(call.arg(3, "padding", 0), n), n


def _max_pool_macs(call: Call) -> int:
    kernel = _pool_args(call)[0]
    return call.out.numel() * (math.prod(kernel) - 1)  # comparisons to find the max of a full window


def _max_pool_field(call: Call) -> TensorField | None:
    kernel, stride, padding, n = _pool_args(call)
    return _window_field(call, kernel, stride, padding, rf.per_axis(call.arg(4, "dilation", 1), n))


def _avg_pool_macs(call: Call) -> int:
    return call.out.numel() * math.prod(_pool_args(call)[0])  # k-1 adds and one scaling multiply


def _avg_pool_field(call: Call) -> TensorField | None:
    kernel, stride, padding, _ = _pool_args(call)
    return _window_field(call, kernel, stride, padding, 1)


def _adaptive_sizes(call: Call) -> tuple[tuple[int, ...], tuple[int, ...]]:
    n = _spatial_dims(call)
    in_sizes = tuple(call.x.shape[-n:])
    out_sizes = tuple(call.out.shape[-n:])
    return in_sizes, out_sizes


def _window_elements(length: int, out: int) -> int:
    """Input elements summed over every adaptive window along one axis (windows overlap when O !| L)."""
    return sum(math.ceil((j + 1) * length / out) - (j * length) // out for j in range(out))


def _adaptive_avg_macs(call: Call) -> int:
    in_sizes, out_sizes = _adaptive_sizes(call)
    planes = call.out.numel() // max(1, math.prod(out_sizes))
    return planes * math.prod(_window_elements(l, o) for l, o in zip(in_sizes, out_sizes))


def _adaptive_max_macs(call: Call) -> int:
    return _adaptive_avg_macs(call) - call.out.numel()  # window - 1 comparisons per output


def _adaptive_field(call: Call) -> TensorField | None:
    field = call.x_field
    if field is None:
        return None
    in_sizes, out_sizes = _adaptive_sizes(call)
    if len(in_sizes) != len(field.axes):
        return None
    return rf.adaptive_window(field, in_sizes, out_sizes)


# ----------------------------------------------------------------------------------------------------
# Normalisation, element-wise, softmax, reductions, resampling, padding


def _per_output(ops: int) -> MacRule:
    return lambda call: ops * call.out.numel()


def _lrn_macs(call: Call) -> int:
    size = call.arg(1, "size")
    # sum of squares over `size` channels, then k + alpha*sum (1 MAC), the power (1) and the division (1)
    return (size + 3) * call.out.numel()


def _per_input(call: Call) -> int:
    return call.x.numel()


# mode -> (MACs per output element, input neighbours mixed along each axis). Nearest copies one input;
# the others weight 2 (linear) or 4 (cubic) neighbours per axis.
_INTERPOLATION = {"nearest": (0, 1), "nearest-exact": (0, 1), "linear": (2, 2), "bilinear": (4, 2),
                  "trilinear": (8, 2), "bicubic": (16, 4)}


def _interpolate_macs(call: Call) -> int:
    mode = call.arg(3, "mode", "nearest")
    if mode == "area":
        return call.x.numel()  # an adaptive average: each input summed once
    return _INTERPOLATION[mode][0] * call.out.numel()


def _interpolate_field(call: Call) -> TensorField | None:
    field = call.x_field
    if field is None:
        return None
    mode = call.arg(3, "mode", "nearest")
    n = len(field.axes)
    in_sizes, out_sizes = tuple(call.x.shape[-n:]), tuple(call.out.shape[-n:])
    if mode == "area":
        return rf.adaptive_window(field, in_sizes, out_sizes)
    return rf.resample(field, in_sizes, out_sizes, _INTERPOLATION[mode][1], bool(call.arg(4, "align_corners", False)))


def _pad_field(call: Call) -> TensorField | None:
    field = call.x_field
    if field is None:
        return None
    pads = list(call.arg(1, "pad"))
    # F.pad lists (before, after) pairs from the last axis backwards
    before_last_first = pads[0::2]
    before = [before_last_first[len(field.axes) - 1 - i] if len(field.axes) - 1 - i < len(before_last_first) else 0
              for i in range(len(field.axes))]
    return rf.pad(field, before)


def _getitem_field(call: Call) -> TensorField | None:
    """Indexing. Slices of the spatial axes (`x[:, :, ::2, ::2]`, the CIFAR ResNets' option-A shortcut; a crop)
    keep every `step`-th unit from `start`: jump x step, unit 0 moves to the old unit `start`. Anything else
    (integer or tensor indices into H or W, new axes) is a view or reshape."""
    field = call.x_field
    index = call.arg(1, "idx")
    if field is None or not field.spatial:
        return reshape_field(call)
    x, n = call.x, len(field.axes)
    index = index if isinstance(index, tuple) else (index,)
    if sum(i is Ellipsis for i in index) > 1 or any(i is None or isinstance(i, (Tensor, list, bool)) for i in index):
        return reshape_field(call)
    if Ellipsis in index:
        at = index.index(Ellipsis)
        index = index[:at] + (slice(None),) * (x.dim() - len(index) + 1) + index[at + 1:]
    index = index + (slice(None),) * (x.dim() - len(index))
    spatial = index[x.dim() - n:]
    if len(index) != x.dim() or not all(isinstance(i, slice) for i in spatial):
        return reshape_field(call)
    axes = []
    for axis, part, size in zip(field.axes, spatial, x.shape[x.dim() - n:]):
        start, _, step = part.indices(size)
        axes.append(replace(axis, jump=axis.jump * step, start=axis.start + start * axis.jump))
    return TensorField(tuple(axes), spatial=True)


def _free(call: Call) -> int:
    return 0


# ----------------------------------------------------------------------------------------------------
# The table

RULES: dict[Callable, OpRule] = {}


def _rule(rule: OpRule, *functions: Callable) -> None:
    for function in functions:
        RULES[function] = rule


T = torch.Tensor

_rule(OpRule("conv", "output elements x C_in/groups x prod(kernel); dilation changes the field, not the cost",
             _conv_macs, conv_linear=True, field=_conv_field),
      torch.conv1d, torch.conv2d, torch.conv3d)
_rule(OpRule("conv_transpose", "input elements x C_out/groups x prod(kernel)",
             _conv_transpose_macs, conv_linear=True, field=_conv_transpose_field),
      torch.conv_transpose1d, torch.conv_transpose2d, torch.conv_transpose3d)
_rule(OpRule("linear", "output elements x in_features", _linear_macs, conv_linear=True), F.linear)
_rule(OpRule("matmul", "output elements x the shared (inner) dimension", _matmul_macs, conv_linear=True),
      torch.matmul, T.matmul, T.__matmul__, T.__rmatmul__, torch.mm, T.mm, torch.bmm, T.bmm)
_rule(OpRule("addmm", "output elements x the inner dimension (the added matrix is the accumulator's start)",
             _addmm_macs, conv_linear=True), torch.addmm, T.addmm)

_rule(OpRule("batch_norm", "1 per element (inference: scale and shift fold into one multiply-add)",
             _per_output(1)), F.batch_norm)
_rule(OpRule("layer_norm/group_norm/instance_norm",
             "3 per element (mean, variance and the normalising multiply-add are computed at inference too)",
             _per_output(3)), F.layer_norm, F.group_norm, F.instance_norm)
_rule(OpRule("local_response_norm", "size + 3 per element: the windowed sum of squares, k + alpha*sum, "
             "the power and the division", _lrn_macs), F.local_response_norm)

_rule(OpRule("max_pool", "output elements x (prod(kernel) - 1) comparisons", _max_pool_macs, field=_max_pool_field),
      F.max_pool1d, F.max_pool2d, F.max_pool3d, F.max_pool1d_with_indices, F.max_pool2d_with_indices,
      F.max_pool3d_with_indices, torch.max_pool1d, torch.max_pool2d, torch.max_pool3d)
_rule(OpRule("avg_pool", "output elements x prod(kernel)", _avg_pool_macs, field=_avg_pool_field),
      F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)
_rule(OpRule("adaptive_avg_pool", "the elements of every window, summed exactly (windows overlap when the "
             "output size does not divide the input size)", _adaptive_avg_macs, field=_adaptive_field),
      F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d)
_rule(OpRule("adaptive_max_pool", "window elements - 1 comparisons per output", _adaptive_max_macs,
             field=_adaptive_field),
      F.adaptive_max_pool1d, F.adaptive_max_pool2d, F.adaptive_max_pool3d, F.adaptive_max_pool1d_with_indices,
      F.adaptive_max_pool2d_with_indices, F.adaptive_max_pool3d_with_indices)

_rule(OpRule("add/sub/mul/div", "1 per output element (residual adds, gates, scaling; in-place and operator "
             "forms alike)", _per_output(1)),
      torch.add, T.add, T.add_, T.__add__, T.__radd__, T.__iadd__,
      torch.sub, T.sub, T.sub_, T.__sub__, T.__rsub__, T.__isub__, torch.rsub,
      torch.mul, T.mul, T.mul_, T.__mul__, T.__rmul__, T.__imul__,
      torch.div, T.div, T.div_, T.__truediv__, T.__rtruediv__, T.__itruediv__, torch.true_divide)
_rule(OpRule("unary math", "1 per output element (neg, abs, square, pow, exp, log, sqrt, reciprocal)",
             _per_output(1)),
      torch.neg, T.neg, T.__neg__, torch.abs, T.abs, T.__abs__, torch.square, T.square, torch.pow, T.pow,
      T.__pow__, torch.exp, T.exp, torch.log, T.log, torch.sqrt, T.sqrt, torch.rsqrt, T.rsqrt,
      torch.reciprocal, T.reciprocal)
_rule(OpRule("activation", "1 per output element, whatever the function (relu, relu6, sigmoid, hardswish, ...)",
             _per_output(1)),
      F.relu, torch.relu, torch.relu_, T.relu, T.relu_, F.relu_, F.relu6, F.hardtanh, F.hardtanh_, F.elu, F.selu,
      F.celu, F.leaky_relu, F.gelu, F.silu, F.mish, F.hardswish, F.hardsigmoid, F.softplus, F.prelu, F.threshold,
      F.sigmoid, torch.sigmoid, T.sigmoid, T.sigmoid_, F.tanh, torch.tanh, T.tanh, T.tanh_,
      torch.clamp, T.clamp, T.clamp_, torch.clamp_min, T.clamp_min, T.clamp_min_)
_rule(OpRule("softmax", "3 per element: exp, the sum, the division", _per_output(3)),
      F.softmax, F.log_softmax, torch.softmax, T.softmax, torch.log_softmax, T.log_softmax)
_rule(OpRule("reduction", "1 per input element (mean, sum, amax over any axes)", _per_input, field=reduction_field),
      torch.mean, T.mean, torch.sum, T.sum, torch.amax, T.amax)
_rule(OpRule("interpolate", "per output element: 0 nearest (a copy), 2 linear, 4 bilinear, 8 trilinear, "
             "16 bicubic; area: 1 per input element", _interpolate_macs, field=_interpolate_field),
      F.interpolate, F.upsample)
_rule(OpRule("pad", "0 (moves data); shifts where unit 0 sits", _free, field=_pad_field), F.pad)
_rule(OpRule("concatenate", "0 (moves data)", _free), torch.cat, torch.concat, torch.concatenate, torch.stack)
_rule(OpRule("dropout", "0 (the identity at inference)", _free),
      F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout, F.feature_alpha_dropout)
_rule(OpRule("view/reshape", "0 (no arithmetic: views, reshapes, slices, channel shuffles, copies)", _free,
             field=reshape_field),
      T.view, T.view_as, T.reshape, T.reshape_as, torch.reshape, torch.flatten, T.flatten, T.unflatten,
      torch.permute, T.permute, torch.transpose, T.transpose, T.t, T.contiguous, torch.narrow,
      T.narrow, torch.chunk, T.chunk, torch.split, T.split, torch.unbind, T.unbind, torch.unsqueeze, T.unsqueeze,
      torch.squeeze, T.squeeze, T.expand, T.expand_as, T.repeat, torch.clone, T.clone, T.detach, torch.detach,
      T.to, T.float, T.type, T.type_as, torch.channel_shuffle, F.channel_shuffle)
_rule(OpRule("index", "0 (a view); spatial slices keep every step-th unit", _free, field=_getitem_field),
      T.__getitem__)
_rule(OpRule("constant", "0 (creates a tensor that does not depend on the input)", _free),
      torch.zeros, torch.ones, torch.empty, torch.full, torch.arange, torch.tensor, torch.zeros_like,
      torch.ones_like, torch.empty_like, torch.full_like, torch.rand, torch.randn, torch.rand_like,
      torch.randn_like)
