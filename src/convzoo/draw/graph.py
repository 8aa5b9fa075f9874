"""The drawing's graph: one traced forward (analysis/trace.py, meta device) turned into what a figure shows.

The tracer tells an `OpListener` about every torch call, with the innermost module call running it. The
recorder keeps, per call, which earlier call produced each of its input tensors (tensor identity; an in-place
op re-produces its tensor), so the dataflow is exact: weights and constants have no producer and are not data.

Calls are grouped into *units*: all the calls of one leaf module call (a module that called no other
module), or one call made by a composite module's own forward (a residual add, a concatenation, a chunk).
Each unit is then one of:

- a **layer** (a node): convolution, transposed convolution, linear, pooling, upsampling, a channel shuffle,
  any other module that computes (labelled by its type);
- a **merge** (a node with every incoming edge): add, multiply, concatenation of two or more data inputs;
- a **split** (a node): a chunk or split whose pieces go different ways (ShuffleNet v2's channel split);
- a **badge**: batch norm, activation, dropout, LRN, softmax: drawn on the node it follows when that node
  feeds nothing else, else a small node of its own;
- **transparent**: views, reshapes, flattening, slicing, padding: the edge passes through.

`depth=N` folds every module call deeper than N into one node (kind "module"). Module calls with two or
more nodes become frames (containers of no merge, like VGG's `features` Sequential, stay unframed).
Consecutive sibling frames of one type and one output shape are collapsed into one frame marked x N
(the first drawn, standing for all), unless `expand`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import torch

from ..analysis.receptive_field import TensorField, centre_size
from ..analysis.trace import CallNode
from ..errors import DrawError

# Rule names (analysis/operations.py) by what the drawing makes of them.
_LAYER_RULES = ("conv", "conv_transpose", "linear", "matmul", "addmm", "max_pool", "avg_pool", "adaptive_avg_pool",
                "adaptive_max_pool", "interpolate")
_BADGE_RULES = {"batch_norm", "layer_norm/group_norm/instance_norm", "local_response_norm", "activation", "dropout",
                "softmax", "unary math"}
_MERGE_RULES = {"add/sub/mul/div", "concatenate"}
_TRANSPARENT_MODULES = {"Flatten", "Unflatten", "Identity", "Dropout", "Dropout2d", "DropPath"}
_CONTAINERS = {"Sequential", "ModuleList", "ModuleDict"}
_MODULE_BADGES = {"BatchNorm1d": "BN", "BatchNorm2d": "BN", "BatchNorm3d": "BN", "ReLU": "ReLU", "ReLU6": "ReLU6",
                  "LocalResponseNorm": "LRN", "Sigmoid": "sigmoid", "Tanh": "tanh", "Hardswish": "h-swish",
                  "Hardsigmoid": "h-sigmoid", "SiLU": "SiLU", "GELU": "GELU", "LeakyReLU": "leaky ReLU",
                  "Softmax": "softmax", "GroupNorm": "GN", "LayerNorm": "LN", "InstanceNorm2d": "IN",
                  "Dropout": "dropout", "ScaledTanh": "tanh"}
_FUNCTION_BADGES = {"relu": "ReLU", "relu6": "ReLU6", "hardtanh": "ReLU6", "batch_norm": "BN", "sigmoid": "sigmoid",
                    "tanh": "tanh", "dropout": "dropout", "softmax": "softmax", "local_response_norm": "LRN",
                    "hardswish": "h-swish", "silu": "SiLU", "gelu": "GELU", "clamp": "clamp"}


@dataclass
class _Op:
    node: CallNode
    name: str  # the function's name: conv2d, add, __iadd__, cat, chunk, ...
    rule: str | None
    sources: list[tuple[int, int]]  # per data input: (producing op, its output index); op -1 is the image
    out_shapes: list[tuple[int, ...]]
    macs: int
    field: TensorField | None
    info: dict[str, Any]


class GraphRecorder:
    """The OpListener that records the dataflow (see the module docstring)."""

    def __init__(self) -> None:
        self.ops: list[_Op] = []
        self.producer: dict[int, tuple[int, int]] = {}
        self.input_shape: tuple[int, ...] = ()
        self.outputs: list[tuple[int, int]] = []
        self._keep: list[torch.Tensor] = []  # ids stay unique while the trace runs

    def on_input(self, x: torch.Tensor) -> None:
        self.producer[id(x)] = (-1, 0)
        self.input_shape = tuple(x.shape[1:])
        self._keep.append(x)

    def on_op(self, node, func, rule, args, kwargs, inputs, outputs, macs, field) -> None:
        sources = [self.producer[id(t)] for t in inputs if id(t) in self.producer]
        if not sources:  # weights, constants: not data
            return
        index = len(self.ops)
        self.ops.append(_Op(node, getattr(func, "__name__", str(func)), rule, sources,
                            [tuple(t.shape[1:]) for t in outputs], macs, field, _info(rule, args, kwargs)))
        for k, tensor in enumerate(outputs):
            self.producer[id(tensor)] = (index, k)
            self._keep.append(tensor)

    def on_output(self, outputs: list[torch.Tensor]) -> None:
        self.outputs = [self.producer[id(t)] for t in outputs if id(t) in self.producer]
        self._keep.clear()


def _arg(args: tuple, kwargs: dict, index: int, name: str, default: Any = None) -> Any:
    return args[index] if index < len(args) else kwargs.get(name, default)


def _info(rule: str | None, args: tuple, kwargs: dict) -> dict[str, Any]:
    """The few hyper-parameters a label needs, read from the call's arguments."""
    if rule in ("conv", "conv_transpose"):
        weight = _arg(args, kwargs, 1, "weight")
        groups = _arg(args, kwargs, 6, "groups", 1) if rule == "conv" else _arg(args, kwargs, 6, "groups", 1)
        dilation = _arg(args, kwargs, 5, "dilation", 1) if rule == "conv" else _arg(args, kwargs, 7, "dilation", 1)
        return {"kernel": tuple(weight.shape[2:]), "groups": groups, "dilation": dilation,
                "stride": _arg(args, kwargs, 3, "stride", 1)}
    if rule in ("max_pool", "avg_pool"):
        kernel = _arg(args, kwargs, 1, "kernel_size")
        stride = _arg(args, kwargs, 2, "stride", None)
        return {"kernel": kernel, "stride": kernel if stride is None or stride == [] or stride == () else stride}
    if rule == "interpolate":
        return {"mode": _arg(args, kwargs, 3, "mode", "nearest")}
    return {}


@dataclass
class Node:
    """One box of the drawing. `id` is unique and names the summary row it stands for: the module path
    (".cN" added for the N-th repeated call of a shared module, N >= 1), or for an op a composite module's
    forward ran itself, that module's path and the op ("layer1.0-add")."""

    id: str
    kind: str  # input, output, conv, deconv, fc, pool, upsample, merge, split, op, module
    label: str
    path: str  # module path of the summary row ("" the model itself)
    call: int
    op: str | None = None  # merges, splits and other functional nodes: the torch function
    badges: list[str] = field(default_factory=list)
    members: list[tuple[str, int]] = field(default_factory=list)  # (path, call) of every unit it stands for
    member_ops: list[str | None] = field(default_factory=list)  # per member: the op a composite module ran, or None
    params: int = 0  # the layer's own (its summary row's)
    macs: int = 0
    badge_params: int = 0  # what its badges hold and compute (their summary rows')
    badge_macs: int = 0
    rf: tuple | None = None
    jump: float | None = None  # input pixels between neighbouring outputs (the effective stride); the U uses it
    shape: tuple = ()
    frame: str | None = None  # innermost frame key

    @property
    def out_member(self) -> tuple[str, int]:
        return self.members[-1] if self.members else (self.path, self.call)


@dataclass
class Edge:
    src: str
    dst: str
    shape: tuple  # the tensor as its producer made it, without the batch axis
    count: int = 1  # edges that collapsing folded into this one


@dataclass
class Frame:
    key: str  # "layer1", "layer1.0", "decoder.0"; ".cN" for repeated calls
    path: str
    call: int
    type_name: str
    parent: str | None
    shape: tuple = ()
    repeat: int = 1  # a collapsed run: how many blocks the frame stands for
    blocks: list[str] = field(default_factory=list)  # their paths
    params: int = 0
    macs: int = 0
    stage: str = ""  # a run that makes up a whole container (ResNet's layer1): the container's path


@dataclass
class Graph:
    name: str
    input_size: tuple[int, ...]
    nodes: dict[str, Node]
    edges: list[Edge]
    frames: dict[str, Frame]
    children: dict[str | None, list[str]]  # frame key (None: the top) -> frame keys and node ids, in order

    def conv_nodes(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.kind in ("conv", "deconv")]

    def merge_nodes(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.kind == "merge"]


# -- units ------------------------------------------------------------------------------------------------


@dataclass(eq=False)
class _Unit:
    key: Any
    call: CallNode  # the leaf module call, the folded module call, or the composite module running the op
    ops: list[int]
    functional: bool  # one op of a composite module's own forward
    kind: str = ""
    node: Node | None = None


def _key(call: CallNode) -> str:
    return call.path + (f".c{call.call_index}" if call.call_index else "")


def build_graph(recorder: GraphRecorder, root: CallNode, name: str, input_size: tuple[int, ...],
                depth: int | None = None, expand: bool = False, focus: str | None = None,
                frames: bool = True) -> Graph:
    """The graph of a recorded trace. `focus` (a module path) keeps only that module's part: its inputs
    and outputs become the drawing's input and output, with the shapes they have inside the whole network
    (a block drawn where it sits, like SE-ResNet-50's layer2.1). `frames=False` draws no module frames
    (and so collapses nothing): a long plain network as one column, as papers print it."""
    framed = frames
    parents: dict[int, CallNode | None] = {id(root): None}
    for call in root.walk():
        for child in call.children:
            parents[id(child)] = call

    def folded(call: CallNode) -> CallNode | None:
        """The ancestor at `depth` a call folds into (itself included), or None."""
        if depth is None or call.depth < depth:
            return None
        while call.depth > depth:
            call = parents[id(call)]
        return call

    units: dict[Any, _Unit] = {}
    op_unit: list[_Unit] = []
    for index, op in enumerate(recorder.ops):
        call = op.node
        fold = folded(call)
        if fold is not None and (fold.children or fold is not call or depth == 0):
            key, functional, call = ("fold", id(fold)), False, fold
        elif not call.children:
            key, functional = ("leaf", id(call)), False
        else:
            key, functional = ("op", index), True
        unit = units.get(key)
        if unit is None:
            unit = units[key] = _Unit(key, call, [], functional)
        unit.ops.append(index)
        op_unit.append(unit)

    ops = recorder.ops
    for unit in units.values():
        unit.kind = _classify(unit, ops)

    # Sources of each unit, through transparent units, with the shape each tensor had when produced.
    def tensor_shape(source: tuple[int, int]) -> tuple:
        return recorder.input_shape if source[0] < 0 else ops[source[0]].out_shapes[source[1]]

    def sources_of_units() -> tuple[dict[Any, list[tuple[Any, tuple]]], list[tuple[Any, tuple]]]:
        origin: dict[tuple[int, int], tuple[Any, tuple]] = {(-1, 0): ("input", recorder.input_shape)}

        def resolve(source: tuple[int, int]) -> tuple[Any, tuple]:
            found = origin.get(source)
            if found is not None:
                return found
            return (op_unit[source[0]].key, tensor_shape(source))

        unit_sources: dict[Any, list[tuple[Any, tuple]]] = {}
        for index, op in enumerate(ops):
            unit = op_unit[index]
            if unit.kind == "transparent":
                first = resolve(op.sources[0])
                for k in range(len(op.out_shapes)):
                    origin[(index, k)] = first
                continue
            found = unit_sources.setdefault(unit.key, [])
            for source in op.sources:
                src = resolve(source)
                if src[0] != unit.key and all(src[0] != s[0] for s in found):
                    found.append(src)
        return unit_sources, [resolve(source) for source in recorder.outputs]

    unit_sources, outputs = sources_of_units()
    # Merges need two data inputs: a concatenation of one tensor (DenseNet's first layer) passes it on; an
    # add or multiply of one (a scaling) is a badge.
    changed = False
    for unit in units.values():
        if unit.kind == "merge" and len(unit_sources.get(unit.key, [])) < 2:
            unit.kind = "transparent" if ops[unit.ops[0]].rule == "concatenate" else "badge"
            changed = True
    if changed:
        unit_sources, outputs = sources_of_units()

    consumers: dict[Any, list[Any]] = {}
    for key, sources in unit_sources.items():
        for src, _ in sources:
            consumers.setdefault(src, []).append(key)
    for src, _ in outputs:
        consumers.setdefault(src, []).append("output")

    owner: dict[Any, Any] = {}

    def find(key: Any) -> Any:
        while key in owner:
            key = owner[key]
        return key

    ordered = [u for u in dict.fromkeys(op_unit) if u.kind != "transparent"]
    for unit in ordered:
        sources = unit_sources.get(unit.key, [])
        if unit.kind != "badge" or len(sources) != 1:
            continue
        target = find(sources[0][0])
        if target == "input" or units[target].kind == "split" or consumers.get(target) != [unit.key]:
            continue
        owner[unit.key] = target
        consumers[target] = consumers.get(unit.key, [])

    # Nodes.
    def kept(unit: _Unit) -> bool:
        return focus is None or unit.call.path == focus or unit.call.path.startswith(focus + ".")

    nodes: dict[str, Node] = {}
    taken: set[str] = set()
    input_node = Node(id="input", kind="input", label="input", path="", call=0, shape=tuple(input_size), jump=1.0)
    nodes["input"] = input_node
    node_of: dict[Any, Node] = {"input": input_node}
    frames: dict[str, Frame] = {}
    for unit in ordered:
        if not kept(units[find(unit.key)]):
            node_of[unit.key] = input_node
            continue
        if unit.key in owner:
            host = node_of[find(unit.key)]
            host.badges.append(_badge_text(unit, ops))
            _absorb(host, unit, ops)
            continue
        node = _make_node(unit, ops, taken, recorder.input_shape)
        node.frame = _frame_chain(unit, parents, root, frames)
        nodes[node.id] = node
        node_of[unit.key] = node
    output_node = Node(id="output", kind="output", label="output", path="", call=0,
                       shape=outputs[0][1] if outputs else ())
    nodes["output"] = output_node

    edges: list[Edge] = []
    for unit in ordered:
        if unit.key in owner:
            continue
        inside = kept(unit)
        for src, shape in unit_sources.get(unit.key, []):
            source = node_of[find(src)]
            if inside:
                edges.append(Edge(source.id, node_of[unit.key].id, shape))
            elif source.id != "input":  # a kept node read from outside the focus: the drawing's output
                edges.append(Edge(source.id, "output", shape))
    for src, shape in outputs:
        if node_of[find(src)].id != "input":
            edges.append(Edge(node_of[find(src)].id, "output", shape))
    if focus is not None:
        entering = [e.shape for e in edges if e.src == "input"]
        input_node.shape = entering[0] if entering else ()
        leaving = [e.shape for e in edges if e.dst == "output"]
        output_node.shape = leaving[0] if leaving else ()
        if len(nodes) == 2:
            raise DrawError(f"{name} has no module {focus!r} that computes anything: give a module path as "
                            f"in `convzoo summary {name}`")
    input_node.label = "input " + "x".join(map(str, input_node.shape))
    edges = _dedupe(edges)

    graph = Graph(name, tuple(input_size), nodes, edges, frames, {})
    _hide_frames(graph, {_key(call) for call in root.walk()
                         if call.children and len({c.type_name for c in call.children}) == 1
                         and all(c.children for c in call.children)})
    if not framed:
        graph.frames.clear()
        for node in graph.nodes.values():
            node.frame = None
    elif not expand:
        _collapse(graph)
    _order_children(graph)
    _drop_wrappers(graph)
    return graph


def _drop_wrappers(graph: Graph) -> None:
    """A frame holding nothing but one other frame (a stage that is one collapsed run) says nothing the
    inner frame does not: it goes, and the inner frame takes its place (and, for a run of all its
    blocks, its name)."""
    for key in [k for k in graph.frames]:
        items = graph.children.get(key, [])
        if len(items) != 1 or items[0] not in graph.frames:
            continue
        inner = graph.frames[items[0]]
        outer = graph.frames.pop(key)
        inner.parent = outer.parent
        if inner.repeat > 1:
            inner.stage = outer.path
        siblings = graph.children[outer.parent]
        siblings[siblings.index(key)] = inner.key
        del graph.children[key]
        for node in graph.nodes.values():
            if node.frame == key:
                node.frame = inner.key


def _classify(unit: _Unit, ops: list[_Op]) -> str:
    rules = [ops[i].rule for i in unit.ops]
    if unit.key[0] == "fold":
        return "layer"
    if unit.functional:
        op = ops[unit.ops[0]]
        if op.rule in _MERGE_RULES:
            return "merge"
        if op.name in ("chunk", "split", "unbind") and len(op.out_shapes) > 1:
            return "split"
        if op.name == "channel_shuffle" or op.rule in _LAYER_RULES:
            return "layer"
        if op.rule == "reduction" and _reduces_space(op, ops):
            return "layer"
        if op.rule in _BADGE_RULES:
            return "badge"
        return "transparent"
    if any(rule in _LAYER_RULES for rule in rules):
        return "layer"
    if any(len(ops[i].sources) > 1 and ops[i].rule in _MERGE_RULES and _distinct_sources(ops[i]) for i in unit.ops):
        return "merge"
    if unit.call.type_name in _TRANSPARENT_MODULES:
        return "transparent"
    if all(rule in _BADGE_RULES or rule in _MERGE_RULES for rule in rules):
        return "badge"
    if all(rule in ("view/reshape", "pad", "dropout", "constant", None) for rule in rules) and \
            unit.call.type_name in _TRANSPARENT_MODULES:
        return "transparent"
    return "layer"


def _reduces_space(op: _Op, ops: list[_Op]) -> bool:
    """A mean or max over H and W (a global pool written as x.mean((2, 3)))."""
    index, k = op.sources[0]
    before = ops[index].out_shapes[k] if index >= 0 else None
    after = op.out_shapes[0]
    if before is None or len(before) < 3:
        return before is None and len(after) < 3
    return len(after) < len(before) or (len(after) == len(before) and all(v == 1 for v in after[1:])
                                        and any(v > 1 for v in before[1:]))


def _distinct_sources(op: _Op) -> bool:
    return len(set(op.sources)) > 1


def _badge_text(unit: _Unit, ops: list[_Op]) -> str:
    if not unit.functional:
        return _MODULE_BADGES.get(unit.call.type_name, unit.call.type_name)
    op = ops[unit.ops[0]]
    name = op.name.strip("_")
    if name in ("mul", "imul", "rmul"):
        return "scale"
    if name in ("add", "iadd", "radd"):
        return "shift"
    return _FUNCTION_BADGES.get(name, name)


def _absorb(host: Node, unit: _Unit, ops: list[_Op]) -> None:
    host.members.append((unit.call.path, unit.call.call_index))
    host.member_ops.append(ops[unit.ops[0]].name if unit.functional else None)
    host.badge_macs += sum(ops[i].macs for i in unit.ops)
    if not unit.functional:
        host.badge_params += unit.call.params
    last = ops[unit.ops[-1]]
    host.shape = last.out_shapes[0]
    if last.field is not None:
        host.rf = _rf(last.field, last.out_shapes[0])
        host.jump = float(last.field.axes[0].jump) if last.field.axes else None


def _rf(fld: TensorField, shape: tuple) -> tuple:
    grid = shape[len(shape) - len(fld.axes):] if len(shape) >= len(fld.axes) else (1,) * len(fld.axes)
    return tuple(round(float(v), 2) for v in centre_size(fld, grid))


def _unique(base: str, taken: set[str]) -> str:
    candidate, k = base, 1
    while candidate in taken:
        k += 1
        candidate = f"{base}.{k}"
    taken.add(candidate)
    return candidate


def _make_node(unit: _Unit, ops: list[_Op], taken: set[str], image: tuple) -> Node:
    call = unit.call
    first = ops[unit.ops[0]]
    if unit.functional:
        op_name = first.name.strip("_").rstrip("_")
        node_id = _unique(f"{_key(call)}-{op_name}", taken)
    else:
        op_name = None
        node_id = _unique(_key(call), taken)
    kind, label = _label(unit, ops, image)
    node = Node(id=node_id, kind=kind, label=label, path=call.path, call=call.call_index, op=op_name)
    node.member_ops.append(first.name if unit.functional else None)
    if not unit.functional:
        node.members.append((call.path, call.call_index))
        node.params = sum(c.params for c in call.walk()) if unit.key[0] == "fold" else call.params
        node.macs = sum(ops[i].macs for i in unit.ops)
        node.shape = call.output_shapes[0] if call.output_shapes else first.out_shapes[0]
        if call.field is not None:
            node.rf = tuple(round(float(v), 2) for v in centre_size(call.field, call.grid))
            node.jump = float(call.field.axes[0].jump) if call.field.axes else None
    else:
        node.members.append((call.path, call.call_index))
        node.macs = first.macs
        node.shape = first.out_shapes[0]
        if first.field is not None:
            node.rf = _rf(first.field, first.out_shapes[0])
            node.jump = float(first.field.axes[0].jump) if first.field.axes else None
    if unit.kind == "badge":  # a badge that could not sit on a node: a small node of its own
        node.kind, node.label = "op", _badge_text(unit, ops)
    return node


def _spatial_ratio(in_shape: tuple, out_shape: tuple) -> float:
    if len(in_shape) < 2 or len(out_shape) < 2 or not out_shape[-1] or not in_shape[-1]:
        return 1.0
    return in_shape[-1] / out_shape[-1]


def _ratio_text(ratio: float) -> str:
    if ratio > 1.01:
        return f"/{ratio:g}" if abs(ratio - round(ratio)) < 0.01 else f"/{ratio:.2f}"
    if ratio < 0.99:
        up = 1 / ratio
        return f"x{round(up):g}" if abs(up - round(up)) < 0.05 else f"x{up:.2f}"
    return ""


def _label(unit: _Unit, ops: list[_Op], image: tuple) -> tuple[str, str]:
    """The node's kind and its text as the course writes it."""
    call = unit.call
    if unit.key[0] == "fold":
        return "module", f"{call.path.rsplit('.', 1)[-1] or call.type_name}: {call.type_name}"
    first = ops[unit.ops[0]]
    if unit.kind == "merge":
        op = next(ops[i] for i in unit.ops if ops[i].rule in _MERGE_RULES)
        name = op.name.strip("_")
        if op.rule == "concatenate":
            return "merge", "concat"
        return "merge", {"add": "+", "iadd": "+", "radd": "+", "mul": "x", "imul": "x", "rmul": "x",
                         "sub": "-", "isub": "-", "rsub": "-"}.get(name, name)
    if unit.kind == "split":
        return "split", f"channel split ({len(first.out_shapes)})"
    main = next((ops[i] for rule in _LAYER_RULES for i in unit.ops if ops[i].rule == rule), None)
    if main is None:
        if first.name == "channel_shuffle" or call.type_name == "ChannelShuffle":
            return "op", "channel shuffle"
        if first.rule == "reduction":
            return "pool", {"mean": "global avg pool", "amax": "global max pool"}.get(first.name, f"global {first.name}")
        return "op", _humanize(call.type_name)
    in_shape = _input_shape(main, ops, image)
    out_shape = main.out_shapes[0]
    if "stride" in main.info:  # the layer's own stride: an unpadded 3x3 conv shrinks the map but is no /1.01
        stride = main.info["stride"]
        stride = stride if isinstance(stride, int) else max(stride)
        step = "" if stride == 1 else (f"/{stride}" if main.rule != "conv_transpose" else f"x{stride}")
    else:
        step = _ratio_text(_spatial_ratio(in_shape, out_shape))
    if main.rule in ("conv", "conv_transpose"):
        kernel = "x".join(map(str, main.info["kernel"]))
        out_chans = out_shape[0] if out_shape else 0
        if not unit.functional and call.output_shapes and call.output_shapes[0]:
            out_chans = call.output_shapes[0][0]  # a module of several convs (LeNet's C3): its whole output
        groups = main.info.get("groups", 1)
        dilation = main.info.get("dilation", 1)
        dilation = dilation if isinstance(dilation, int) else max(dilation)
        in_chans = in_shape[0] if in_shape else 0
        if main.rule == "conv":
            kind = "conv"
            text = f"{kernel} {'depthwise ' if groups > 1 and groups == in_chans else ''}conv, {out_chans}"
        else:
            kind = "deconv"
            text = f"{kernel} up-conv, {out_chans}"
        if groups > 1 and groups != in_chans:
            text += f" (groups {groups})"
        if dilation > 1:
            text += f", dilation {dilation}"
        return kind, text + (f", {step}" if step else "")
    if main.rule in ("linear", "matmul", "addmm"):
        return "fc", f"fc {out_shape[-1] if out_shape else ''}"
    if main.rule in ("max_pool", "avg_pool"):
        kernel = main.info.get("kernel")
        kernel = kernel if isinstance(kernel, int) else (kernel[0] if kernel and len(set(kernel)) == 1 else
                                                         "x".join(map(str, kernel or ())))
        what = "max" if main.rule == "max_pool" else "avg"
        return "pool", f"{kernel}x{kernel} {what} pool" + (f", {step}" if step else "") \
            if isinstance(kernel, int) else f"{kernel} {what} pool" + (f", {step}" if step else "")
    if main.rule in ("adaptive_avg_pool", "adaptive_max_pool"):
        what = "avg" if main.rule == "adaptive_avg_pool" else "max"
        grid = out_shape[1:]
        if all(v == 1 for v in grid):
            return "pool", f"global {what} pool"
        return "pool", f"{what} pool to {'x'.join(map(str, grid))}"
    if main.rule == "interpolate":
        mode = main.info.get("mode", "nearest")
        return "upsample", f"{mode} upsample" + (f" {step}" if step else "")
    return "op", _humanize(call.type_name)


def _input_shape(op: _Op, ops: list[_Op], image: tuple) -> tuple:
    index, k = op.sources[0]
    return image if index < 0 else ops[index].out_shapes[k]


def _humanize(type_name: str) -> str:
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", type_name)
    return words if len(words) < 28 else type_name


# -- frames -----------------------------------------------------------------------------------------------


def _frame_chain(unit: _Unit, parents: dict[int, CallNode | None], root: CallNode,
                 frames: dict[str, Frame]) -> str | None:
    """Register the module calls around a unit as frames; return the innermost one's key."""
    call = unit.call if unit.functional else parents[id(unit.call)]
    chain = []
    while call is not None and call is not root:
        chain.append(call)
        call = parents[id(call)]
    parent_key = None
    for call in reversed(chain):
        key = _key(call)
        if key not in frames:
            frames[key] = Frame(key, call.path, call.call_index, call.type_name, parent_key,
                                shape=call.output_shapes[0] if call.output_shapes else (),
                                params=sum(c.params for c in call.walk()),
                                macs=sum(c.macs_all for c in call.walk()))
        parent_key = key
    return parent_key


def _ancestors(graph: Graph, key: str | None) -> list[str]:
    chain = []
    while key is not None:
        chain.append(key)
        key = graph.frames[key].parent
    return chain


def _hide_frames(graph: Graph, stages: set[str]) -> None:
    """Drop frames of fewer than two nodes, and plain containers holding no merge (VGG's `features`):
    their nodes move to the nearest frame kept."""
    counts: dict[str, int] = {}
    merges: dict[str, bool] = {}
    for node in graph.nodes.values():
        for key in _ancestors(graph, node.frame):
            counts[key] = counts.get(key, 0) + 1
            merges[key] = merges.get(key, False) or node.kind == "merge"
    hidden = {key for key, frame in graph.frames.items()
              if counts.get(key, 0) < 2 or (frame.type_name in _CONTAINERS and
                                            not (merges.get(key) and frame.key in stages))}

    def kept(key: str | None) -> str | None:
        while key is not None and key in hidden:
            key = graph.frames[key].parent
        return key

    for node in graph.nodes.values():
        node.frame = kept(node.frame)
    for key in list(graph.frames):
        if key in hidden:
            continue
        graph.frames[key].parent = kept(graph.frames[key].parent)
    for key in hidden:
        del graph.frames[key]


def _order_children(graph: Graph) -> None:
    children: dict[str | None, list[str]] = {None: []}
    for key in graph.frames:
        children.setdefault(key, [])
    seen: set[str] = set()
    for node in graph.nodes.values():
        chain = list(reversed(_ancestors(graph, node.frame)))
        parent = None
        for key in chain:
            if key not in seen:
                seen.add(key)
                children[parent].append(key)
            parent = key
        children[parent].append(node.id)
    graph.children = children


def _block_signature(graph: Graph, key: str) -> tuple:
    frame = graph.frames[key]
    return frame.type_name, frame.parent, frame.shape


def _labels(graph: Graph, node_ids: list[str]) -> list[str]:
    """A block's node labels without strides or badges: what makes two blocks of a run the same."""
    return sorted(re.sub(r", /[0-9.]+$", "", graph.nodes[n].label) for n in node_ids)


def _fits(first: list[str], other: list[str]) -> bool:
    """One block is the other less some nodes: a run's first block may add a projection (ResNet) or
    lack a merge (DenseNet's first layer concatenates one tensor)."""
    def within(small: list[str], large: list[str]) -> bool:
        remaining = list(large)
        for label in small:
            if label not in remaining:
                return False
            remaining.remove(label)
        return True

    return within(other, first) or within(first, other)


def _collapse(graph: Graph) -> None:
    """Runs of consecutive sibling frames of one type and output shape, the later blocks alike and the
    first the same but for strides and a projection (ResNet's stages), become one frame x N: the first
    block's nodes stay, the others' go, and their edges are redrawn from the first block."""
    _order_children(graph)
    inside: dict[str, list[str]] = {}
    for node in graph.nodes.values():
        for key in _ancestors(graph, node.frame):
            inside.setdefault(key, []).append(node.id)
    labels = {key: _labels(graph, inside.get(key, [])) for key in graph.frames}
    rename: dict[str, str] = {}
    runs: dict[str, str] = {}  # kept node -> its run's frame

    def extends(run: list[str], item: str) -> bool:
        if _block_signature(graph, item) != _block_signature(graph, run[0]):
            return False
        if len(run) > 1:
            return labels[item] == labels[run[1]]
        return _fits(labels[run[0]], labels[item])

    for parent, items in list(graph.children.items()):
        run: list[str] = []
        for item in items + [None]:
            if item is not None and item in graph.frames and run and extends(run, item):
                run.append(item)
                continue
            if len(run) > 1:
                _fold_run(graph, run, inside, rename)
                runs.update({node_id: run[0] for node_id in inside.get(run[0], [])})
            run = [item] if item is not None and item in graph.frames else []
    if not rename:
        return
    edges = []
    for edge in graph.edges:
        src, dst = rename.get(edge.src, edge.src), rename.get(edge.dst, edge.dst)
        if src is None or dst is None or src == dst:
            continue
        if (edge.src in rename or edge.dst in rename) and src in runs and runs[src] == runs.get(dst):
            continue  # from one block of a run to the next: inside the x N frame
        edges.append(Edge(src, dst, edge.shape, edge.count))
    graph.edges = _dedupe(edges)


def _fold_run(graph: Graph, run: list[str], inside: dict[str, list[str]], rename: dict[str, str | None]) -> None:
    first = graph.frames[run[0]]
    first.repeat = len(run)
    first.blocks = [graph.frames[key].path for key in run]
    first.params = sum(graph.frames[key].params for key in run)
    first.macs = sum(graph.frames[key].macs for key in run)
    kept = inside.get(run[0], [])
    last_kept = kept[-1] if kept else None
    prefix = graph.frames[run[0]].path
    for key in run[1:]:
        block_prefix = graph.frames[key].path
        for node_id in inside.get(key, []):
            twin = prefix + node_id[len(block_prefix):] if node_id.startswith(block_prefix) else None
            rename[node_id] = twin if twin in graph.nodes and twin not in rename else last_kept
            del graph.nodes[node_id]
        for sub in [k for k in graph.frames if key in _ancestors(graph, k)]:
            del graph.frames[sub]


def _dedupe(edges: list[Edge]) -> list[Edge]:
    merged: dict[tuple[str, str], Edge] = {}
    for edge in edges:
        found = merged.get((edge.src, edge.dst))
        if found is None:
            merged[(edge.src, edge.dst)] = Edge(edge.src, edge.dst, edge.shape, edge.count)
        else:
            found.count += edge.count
    return list(merged.values())
