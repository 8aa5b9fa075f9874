"""One forward pass on the meta device, watched from outside the model.

Two process-wide mechanisms do the watching, so the model itself gets no hooks, buffers or mode changes:

- a `TorchFunctionMode` sees every torch function the forward calls (`F.conv2d`, `torch.cat`, `x + y`,
  `x.add_(y)`, ...) and looks it up in operations.RULES: what it costs, how it moves the receptive field;
- the global module hooks (`register_module_forward_pre_hook` / `register_module_forward_hook`, removed in a
  `finally`) keep the stack of module calls, so each torch call is charged to the innermost module running
  it. Ops that a non-leaf module's own forward calls (a residual add, a concatenation) land in that
  module's node instead of vanishing between its children.

The forward runs on a meta copy of the model: `copy.deepcopy` with every parameter and buffer pre-mapped
to an empty meta tensor, so no weight is copied and a summary of VGG-19 allocates nothing. The copy is put
in eval mode (inference semantics: batch norm uses running statistics, dropout is the identity) while the
caller's model keeps its own mode. Meta tensors have shapes but no data, so the pass costs only Python time.

While it runs the tracer also keeps what the memory estimates need:
- every activation tensor's storage, with the step that created it and the step that last read it: the
  inference peak is the largest total of storages alive at once when each is freed after its last use;
- the storages autograd saves for the backward pass (`saved_tensors_hooks`): the activations a training
  step holds between forward and backward.
"""
from __future__ import annotations

import contextlib
import copy
import itertools
import threading
from dataclasses import dataclass, field
from typing import Any, Iterable, Protocol

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook
from torch.overrides import TorchFunctionMode, resolve_name

from ..errors import InputSizeError, ModelForwardError
from .operations import RULES, Call, pointwise_field
from .receptive_field import TensorField, input_field


@dataclass
class CallNode:
    """One call of one module (a shared module called twice has two nodes)."""

    path: str  # module path as in named_modules(); "" for the model itself
    type_name: str
    depth: int  # 0 for the model, 1 for its children, ...
    call_index: int  # 0 on the module's first call; > 0 for the repeated calls of a shared module
    params: int  # parameters of this module first used by this call (so shared modules count once)
    macs_all: int = 0  # operations the module's own forward ran itself, not its children
    macs_conv_linear: int = 0
    children: list[CallNode] = field(default_factory=list)
    output_shapes: tuple[tuple[int, ...], ...] = ()  # without the batch axis
    activations: int = 0  # output elements per image
    field: TensorField | None = None  # receptive-field state of the first output tensor that has one
    grid: tuple[int, ...] = ()  # that tensor's spatial sizes (the field's trailing axes)

    def walk(self) -> Iterable[CallNode]:
        yield self
        for child in self.children:
            yield from child.walk()


@dataclass
class Trace:
    root: CallNode
    uncounted: dict[str, tuple[int, int]]  # torch function -> (calls, output elements)
    fieldless: list[str]  # torch functions after which the receptive field could not be followed
    unused_params: dict[str, int]  # module path -> parameters of modules the forward never called
    total_params: int
    trainable_params: int
    param_bytes: int
    buffer_bytes: int
    inference_activation_bytes: int
    training_activation_bytes: int


class OpListener(Protocol):
    """Told about every traced call as it happens (the drawing's dataflow graph is built this way).

    `on_input` gets the model's input batch, `on_op` each torch call that returned tensors: the innermost
    module call running it, the function, its rule's name (None when operations.RULES has none), the
    call's arguments, the input and output tensors, its MACs and the receptive-field state of its first
    output (None if not followed). `on_output` gets the model's output tensors. The tensors stay alive
    until the trace ends, so their ids identify them meanwhile."""

    def on_input(self, x: torch.Tensor) -> None: ...

    def on_op(self, node: CallNode, func: Any, rule: str | None, args: tuple, kwargs: dict,
              inputs: list[torch.Tensor], outputs: list[torch.Tensor], macs: int,
              field: TensorField | None) -> None: ...

    def on_output(self, outputs: list[torch.Tensor]) -> None: ...


def _tensors(values: Iterable[Any]) -> list[torch.Tensor]:
    """The tensors among call arguments or outputs, one level into lists and tuples (torch.cat's list)."""
    found = []
    for value in values:
        if isinstance(value, torch.Tensor):
            found.append(value)
        elif isinstance(value, (list, tuple)):
            found.extend(v for v in value if isinstance(v, torch.Tensor))
    return found


def _output_tensors(output: Any) -> list[torch.Tensor]:
    """Every tensor in a module's output, through nested tuples, lists and dicts, in order."""
    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, dict):
        output = list(output.values())
    if isinstance(output, (list, tuple)):
        return [t for item in output for t in _output_tensors(item)]
    return []


def _storage_key(tensor: torch.Tensor) -> int:
    # Views and in-place results share their base's storage; the tracer keeps every traced tensor alive
    # until it ends, so no address is reused for a different storage.
    return tensor.untyped_storage()._cdata


def _op_name(func: Any) -> str:
    return resolve_name(func) or getattr(func, "__qualname__", None) or repr(func)


class _Tracer(TorchFunctionMode):
    def __init__(self, names: dict[int, str], model_storages: set[int], listener: OpListener | None = None):
        super().__init__()
        self.listener = listener
        self.names = names
        self.model_storages = model_storages  # parameters and buffers: not activations
        self.stack: list[CallNode] = []
        self.root: CallNode | None = None
        self.fields: dict[int, TensorField] = {}  # id(tensor) -> state; ids are stable, see `keep_alive`
        self.keep_alive: list[torch.Tensor] = []
        self.storages: dict[int, list[int]] = {}  # storage -> [bytes, step created, step last read]
        self.saved: dict[int, int] = {}  # storages autograd saved for backward -> bytes
        self.step = 0
        self.calls: dict[int, int] = {}  # id(module) -> calls so far
        self.counted_params: set[int] = set()
        self.uncounted: dict[str, list[int]] = {}
        self.fieldless: dict[str, None] = {}  # ordered set

    # -- inputs, outputs ---------------------------------------------------------------------------

    def add_input(self, x: torch.Tensor, num_axes: int) -> None:
        self.fields[id(x)] = input_field(num_axes)
        self._created(x)

    def _created(self, tensor: torch.Tensor) -> None:
        key = _storage_key(tensor)
        if key in self.model_storages:
            return
        entry = self.storages.get(key)
        if entry is None:
            self.storages[key] = [tensor.untyped_storage().nbytes(), self.step, self.step]
            self.keep_alive.append(tensor)
        else:
            entry[2] = self.step  # an in-place op or a view: the storage lives on

    def finish(self, outputs: list[torch.Tensor]) -> None:
        self.step += 1
        for tensor in outputs:  # the model's outputs live to the end
            entry = self.storages.get(_storage_key(tensor))
            if entry is not None:
                entry[2] = self.step

    # -- torch functions ---------------------------------------------------------------------------

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = self._batch_norm(args, kwargs) if func is F.batch_norm else func(*args, **kwargs)
        outputs = _tensors((out,))
        # Calls returning no tensor (x.size(), x.dim(), in-place writes returning None) compute nothing.
        if outputs and self.stack:
            self._record(func, args, kwargs, _tensors(args) + _tensors(kwargs.values()), outputs)
        return out

    def _batch_norm(self, args: tuple, kwargs: dict) -> torch.Tensor:
        """F.batch_norm without running it. PyTorch's meta batch norm is a Python decomposition costing
        about a millisecond a call, most of a ResNet's whole meta forward; its output is a tensor shaped
        and strided like its input, which autograd's batch norm saves for the backward pass."""
        x = args[0] if args else kwargs["input"]
        per_channel = {name: args[i] if i < len(args) else kwargs.get(name)
                       for i, name in enumerate(("running_mean", "running_var", "weight", "bias"), start=1)}
        for name, tensor in per_channel.items():  # the checks the real op makes, so bad models still fail
            if tensor is not None and (x.dim() < 2 or tensor.numel() != x.shape[1]):
                raise RuntimeError(f"batch_norm: {name} should contain {x.shape[1] if x.dim() > 1 else '?'} "
                                   f"elements, not {tensor.numel()} (input of shape {tuple(x.shape)})")
        affine = [per_channel["weight"], per_channel["bias"]]
        if not (torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in [x, *affine])):
            return torch.empty_like(x)
        self.pack(x)
        # A clone of a leaf: the result has a grad_fn, so a following in-place ReLU is allowed, as it is
        # after the real batch norm.
        return torch.empty_like(x, requires_grad=True).clone()

    def _record(self, func, args: tuple, kwargs: dict, inputs: list[torch.Tensor],
                outputs: list[torch.Tensor]) -> None:
        node = self.stack[-1]
        rule = RULES.get(func)
        with_field = [(t, self.fields[id(t)]) for t in inputs if id(t) in self.fields]
        call = Call(args, kwargs, outputs[0], with_field)
        macs = 0
        if rule is None:
            entry = self.uncounted.setdefault(_op_name(func), [0, 0])
            entry[0] += 1
            entry[1] += outputs[0].numel()
        else:
            macs = rule.macs(call)
            node.macs_all += macs
            if rule.conv_linear:
                node.macs_conv_linear += macs
        if with_field:
            field_rule = rule.field if rule is not None and rule.field is not None else pointwise_field
            for tensor in outputs:
                call.out = tensor
                new_field = field_rule(call)
                if new_field is None:
                    self.fields.pop(id(tensor), None)
                    self.fieldless[_op_name(func)] = None
                else:
                    self.fields[id(tensor)] = new_field
        if self.listener is not None:
            self.listener.on_op(node, func, None if rule is None else rule.name, args, kwargs, inputs, outputs,
                                macs, self.fields.get(id(outputs[0])))
        self.step += 1
        for tensor in inputs:
            entry = self.storages.get(_storage_key(tensor))
            if entry is not None:
                entry[2] = self.step
        for tensor in outputs:
            self._created(tensor)

    # -- module calls ------------------------------------------------------------------------------

    def enter(self, module: nn.Module, args: Any) -> None:
        parent = self.stack[-1] if self.stack else None
        call_index = self.calls.get(id(module), 0)
        self.calls[id(module)] = call_index + 1
        path = self.names.get(id(module))
        if path is None:  # a module the forward built on the fly: not in named_modules()
            path = f"{parent.path + '.' if parent and parent.path else ''}<{type(module).__name__}>"
        new_params = [p for p in module._parameters.values() if p is not None and id(p) not in self.counted_params]
        self.counted_params.update(id(p) for p in new_params)
        node = CallNode(path=path, type_name=type(module).__name__, depth=0 if parent is None else parent.depth + 1,
                        call_index=call_index, params=sum(p.numel() for p in new_params))
        if parent is None:
            self.root = node
        else:
            parent.children.append(node)
        self.stack.append(node)

    def exit(self, module: nn.Module, args: Any, output: Any) -> None:
        node = self.stack.pop()
        tensors = _output_tensors(output)
        node.output_shapes = tuple(tuple(t.shape[1:]) for t in tensors)
        node.activations = sum(t.numel() // max(1, t.shape[0]) if t.dim() else 1 for t in tensors)
        with_field = next((t for t in tensors if id(t) in self.fields), None)
        if with_field is not None:
            node.field = self.fields[id(with_field)]
            node.grid = tuple(with_field.shape[with_field.dim() - len(node.field.axes):])

    # -- autograd's saved tensors ------------------------------------------------------------------

    def pack(self, tensor: torch.Tensor) -> torch.Tensor:
        key = _storage_key(tensor)
        if key not in self.model_storages:
            self.saved[key] = tensor.untyped_storage().nbytes()
            self.keep_alive.append(tensor)
        return tensor

    def inference_peak(self) -> int:
        """The most bytes alive at once if every activation is freed right after its last read."""
        delta = [0] * (self.step + 2)
        for nbytes, first, last in self.storages.values():
            delta[first] += nbytes
            delta[last + 1] -= nbytes
        return max(itertools.accumulate(delta))


def _meta_copy(model: nn.Module) -> nn.Module:
    """A deep copy whose parameters and buffers are empty meta tensors (same shapes, dtypes, requires_grad)."""
    memo: dict[int, Any] = {}
    for param in model.parameters():
        memo[id(param)] = nn.Parameter(torch.empty_like(param, device="meta"), requires_grad=param.requires_grad)
    for buffer in model.buffers():
        memo[id(buffer)] = torch.empty_like(buffer, device="meta")
    return copy.deepcopy(model, memo)


def _input_dtype(model: nn.Module) -> torch.dtype:
    return next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.get_default_dtype())


def trace_model(model: nn.Module, input_size: tuple[int, ...], *, name: str, copy_model: bool = True,
                listener: OpListener | None = None) -> Trace:
    """Run `model` once on a meta batch of one `input_size` input and record everything the report needs.

    With `copy_model=False` the model must already live on the meta device and belong to the caller
    (summary() of a registered name builds one): it is put in eval mode instead of being copied.
    `listener` (an OpListener) is told about every call as it happens."""
    with torch.inference_mode(False), torch.enable_grad():
        meta_model = _meta_copy(model) if copy_model else model
        meta_model.eval()
        names = {id(m): path for path, m in meta_model.named_modules()}
        model_tensors = list(meta_model.parameters()) + list(meta_model.buffers())
        tracer = _Tracer(names, {_storage_key(t) for t in model_tensors}, listener)
        x = torch.empty((1, *input_size), device="meta", dtype=_input_dtype(meta_model))
        tracer.add_input(x, num_axes=len(input_size) - 1)
        if listener is not None:
            listener.on_input(x)
        pre_handle = register_module_forward_pre_hook(tracer.enter)
        post_handle = register_module_forward_hook(tracer.exit)
        try:
            with tracer, torch.autograd.graph.saved_tensors_hooks(tracer.pack, lambda t: t):
                output = meta_model(x)
        except InputSizeError:
            raise
        except Exception as err:
            raise ModelForwardError(_failure_message(name, input_size, tracer.stack, err)) from err
        finally:
            pre_handle.remove()
            post_handle.remove()
        tracer.finish(_output_tensors(output))
        if listener is not None:
            listener.on_output(_output_tensors(output))

    root = tracer.root
    unused = {}
    for path, module in meta_model.named_modules():
        own = sum(p.numel() for p in module._parameters.values()
                  if p is not None and id(p) not in tracer.counted_params)
        if own:
            unused[path] = own
    params = list(meta_model.parameters())
    return Trace(
        root=root,
        uncounted={k: (calls, elements) for k, (calls, elements) in tracer.uncounted.items()},
        fieldless=list(tracer.fieldless),
        unused_params=unused,
        total_params=sum(p.numel() for p in params),
        trainable_params=sum(p.numel() for p in params if p.requires_grad),
        param_bytes=sum(p.numel() * p.element_size() for p in params),
        buffer_bytes=sum(b.numel() * b.element_size() for b in meta_model.buffers()),
        inference_activation_bytes=tracer.inference_peak(),
        training_activation_bytes=sum(tracer.saved.values()),
    )


def _failure_message(name: str, input_size: tuple[int, ...], stack: list[CallNode], err: Exception) -> str:
    size = "x".join(map(str, input_size))
    if stack and stack[-1].path:
        where = f"module '{stack[-1].path}' ({stack[-1].type_name})"
    else:
        where = "the model's own forward"
    return (f"{name} failed in {where} on a {size} input (traced on the meta device): "
            f"{type(err).__name__}: {err}")


# -- building on the meta device ----------------------------------------------------------------------------------

_INIT_LOCK = threading.Lock()
_INIT_USERS = 0
_INIT_ORIGINALS: dict[str, Any] = {}


def _skipping_meta(original):
    def init(tensor, *args, **kwargs):
        # A meta tensor has a shape and no values: initialising it changes nothing, and PyTorch decomposes each
        # initialiser in Python on meta. Any other tensor (another thread's real network) is initialised.
        return tensor if isinstance(tensor, torch.Tensor) and tensor.is_meta else original(tensor, *args, **kwargs)
    return init


@contextlib.contextmanager
def on_meta():
    """Build modules on the meta device, their weight initialisers (torch.nn.init) skipped for meta tensors: about
    half the cost of building a network there (DenseNet-201, ResNet-1202), nothing of what a trace measures."""
    global _INIT_USERS
    with _INIT_LOCK:
        if _INIT_USERS == 0:
            for name in dir(nn.init):
                function = getattr(nn.init, name)
                if name.endswith("_") and not name.startswith("_") and callable(function):
                    _INIT_ORIGINALS[name] = function
                    setattr(nn.init, name, _skipping_meta(function))
        _INIT_USERS += 1
    try:
        with torch.device("meta"):
            yield
    finally:
        with _INIT_LOCK:
            _INIT_USERS -= 1
            if _INIT_USERS == 0:
                for name, function in _INIT_ORIGINALS.items():
                    setattr(nn.init, name, function)
                _INIT_ORIGINALS.clear()
