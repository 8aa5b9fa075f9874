"""The fast inference path: a copy of a network with every batch norm that directly follows a convolution
folded into that convolution, in eval mode, in channels_last layout, optionally compiled.

    fast = convzoo.optimize_for_inference(model)             # the user's model is left as it was
    report = fold_batch_norms(model)                         # in place; report.folded, report.left

Folding: in eval mode a batch norm is the per-channel affine map y = (x - mean) * s + beta with
s = gamma / sqrt(var + eps). When x is a convolution's output (and nothing else reads it), the map moves into
the convolution: W' = W * s (per output channel, whatever the groups), b' = (b - mean) * s + beta (b = 0 for a
convolution without bias); the batch norm becomes an identity.

Which batch norm follows which convolution is read from the forward itself, not guessed from names (a
pre-activation block also has conv1 and bn1, but there bn1 runs *before* conv1): torch.fx traces each
module's forward. A module whose own forward fx cannot trace (shape-dependent control flow, a loop over a
tensor) is treated as an opaque leaf by its parent's trace and analysed on its own; if it is an
nn.Sequential (whose forward is, or calls, Sequential's), its order of children is its forward, so consecutive
(conv, batch norm) children pair up.
"""
from __future__ import annotations

import copy
import functools
import statistics
import time
import types
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import fx, nn
from torch.nn.modules.batchnorm import _BatchNorm

from .runtime import reuse_freed_memory
from .winograd import WinogradConv2d, winograd_applies

_CONV_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_BN_FOR_CONV = {nn.Conv1d: nn.BatchNorm1d, nn.Conv2d: nn.BatchNorm2d, nn.Conv3d: nn.BatchNorm3d}


@dataclass
class FoldReport:
    """What fold_batch_norms did: (conv, batch norm) module names folded, and batch norms left as they were."""

    folded: list[tuple[str, str]] = field(default_factory=list)
    left: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.left


class _LeafTracer(fx.Tracer):
    """fx's tracer, with extra modules (those whose forward fx cannot trace) kept as opaque calls."""

    def __init__(self, opaque: set[int]):
        super().__init__()
        self.opaque = opaque

    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        return id(module) in self.opaque or super().is_leaf_module(module, qualified_name)


def _trace(module: nn.Module, opaque: set[int]) -> fx.Graph | None:
    try:
        return _LeafTracer(opaque).trace(module)
    except Exception:  # fx raises TraceError, TypeError, AttributeError, ... on forwards it cannot follow
        return None


def _pairs_in_graph(graph: fx.Graph, module: nn.Module) -> list[tuple[str, str]]:
    """(conv, bn) names, relative to `module`, where the batch norm's only input is the convolution's output,
    that output feeds nothing else, and each module is called once in this forward."""
    calls: dict[str, int] = {}
    for node in graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(module.get_submodule(node.target), _BatchNorm):
            continue
        if len(node.args) != 1 or node.kwargs or not isinstance(node.args[0], fx.Node):
            continue
        source = node.args[0]
        if (source.op == "call_module" and isinstance(module.get_submodule(source.target), _CONV_TYPES)
                and len(source.users) == 1 and calls[source.target] == 1 and calls[node.target] == 1):
            pairs.append((source.target, node.target))
    return pairs


def _pairs_in_sequential(sequential: nn.Sequential) -> list[tuple[str, str]]:
    names = list(sequential._modules)
    return [(a, b) for a, b in zip(names, names[1:])
            if isinstance(sequential._modules[a], _CONV_TYPES) and isinstance(sequential._modules[b], _BatchNorm)]


def _runs_children_in_order(module: nn.Module) -> bool:
    """An nn.Sequential whose forward is Sequential's, or calls it (super().forward) around its own steps, as
    DeepLabv3's image-pooling branch does to broadcast its output."""
    if not isinstance(module, nn.Sequential):
        return False
    forward = type(module).forward
    return forward is nn.Sequential.forward or {"super", "forward"} <= set(forward.__code__.co_names)


def _find_pairs(module: nn.Module, prefix: str, opaque: set[int], pairs: set[tuple[str, str]]) -> None:
    """Add to `pairs` the (conv, bn) full names that follow each other in `module`'s forward; add to `opaque`
    the modules (this one included) whose forward fx cannot trace."""
    graph = _trace(module, opaque)
    if graph is None:
        # Perhaps only a descendant is untraceable: analyse the children alone, then try again with the
        # untraceable ones as leaves.
        for name, child in module.named_children():
            _find_pairs(child, f"{prefix}{name}.", opaque, pairs)
        graph = _trace(module, opaque)
    if graph is None:
        opaque.add(id(module))
        if _runs_children_in_order(module):
            pairs.update((prefix + a, prefix + b) for a, b in _pairs_in_sequential(module))
        return
    pairs.update((prefix + a, prefix + b) for a, b in _pairs_in_graph(graph, module))


def _foldable(conv: nn.Module, bn: nn.Module) -> bool:
    return (isinstance(conv, _CONV_TYPES) and type(bn) is _BN_FOR_CONV[type(conv)]
            and bn.track_running_stats and bn.running_mean is not None and bn.num_features == conv.out_channels)


@torch.no_grad()
def fold_conv_bn(conv: nn.Module, bn: nn.Module) -> None:
    """Fold an eval-mode batch norm into the convolution before it, in place (the batch norm is left as it
    was; replace it by an identity)."""
    scale = bn.running_var.add(bn.eps).rsqrt()
    if bn.weight is not None:
        scale = scale * bn.weight
    shift = -bn.running_mean * scale
    if bn.bias is not None:
        shift = shift + bn.bias
    if conv.bias is not None:
        shift = shift + conv.bias * scale
    weight_shape = (-1,) + (1,) * (conv.weight.dim() - 1)
    conv.weight.mul_(scale.reshape(weight_shape).to(conv.weight.dtype))
    conv.bias = nn.Parameter(shift.to(conv.weight.dtype), requires_grad=conv.weight.requires_grad)


def _set_submodule(root: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, attribute = name.rpartition(".")
    setattr(root.get_submodule(parent_name) if parent_name else root, attribute, module)


def fold_batch_norms(model: nn.Module) -> FoldReport:
    """Fold, in place, every batch norm that directly follows a convolution in `model`'s forward (see the
    module docstring); the folded batch norms become nn.Identity. For inference only: the model is put in
    eval mode, and the folded network no longer normalises with batch statistics if trained again."""
    model.eval()
    pairs: set[tuple[str, str]] = set()
    _find_pairs(model, "", set(), pairs)
    # A module registered under two names (shared weights) could be called elsewhere too: never fold it.
    counts: dict[int, int] = {}
    for _, module in model.named_modules(remove_duplicate=False):
        counts[id(module)] = counts.get(id(module), 0) + 1
    modules = dict(model.named_modules())
    report = FoldReport()
    for conv_name, bn_name in sorted(pairs):
        conv, bn = modules[conv_name], modules[bn_name]
        if counts[id(conv)] == 1 and counts[id(bn)] == 1 and _foldable(conv, bn):
            fold_conv_bn(conv, bn)
            _set_submodule(model, bn_name, nn.Identity())
            report.folded.append((conv_name, bn_name))
    report.left = [name for name, module in model.named_modules() if isinstance(module, _BatchNorm)]
    return report


def _to_channels_last(module: nn.Module, args: tuple) -> tuple | None:
    if args and isinstance(args[0], torch.Tensor) and args[0].dim() == 4:
        return (args[0].contiguous(memory_format=torch.channels_last), *args[1:])
    return None


# Inductor's settings for the compiled path, on while it runs (so for the compilations it triggers, and for no
# other compiled code; torch.compile's `options` does not reach freezing, hence a patch around the call):
# - freezing: the gradient-free weights become constants, folded into the graph and handed to oneDNN
#   pre-packed in its blocked layout once instead of reordered at every call; ResNet-50 at batch 8 goes from
#   about 0.79 to 0.9 of the matmul peak on this machine.
# - cpp_wrapper: the code that calls the kernels is C++, not Python: per call of a forward, the same kernels
#   with less around them (one thread, A/B in one process: MobileNet v2 1.075x at batch 1 and 1.036x at 8,
#   ResNet-50 1.027x at both, ShuffleNet v2 1.026x and 1.053x, GoogLeNet-BN 1.053x and 1.032x; the same outputs).
INDUCTOR_SETTINGS = {"freezing": True, "cpp_wrapper": True}


def _with_inductor_settings(forward: Callable) -> Callable:
    """`forward` with INDUCTOR_SETTINGS on while it runs, and the settings as they were after."""
    import torch._inductor.config as inductor_config

    @functools.wraps(forward)
    def configured_forward(*args, **kwargs):
        with inductor_config.patch(INDUCTOR_SETTINGS):
            return forward(*args, **kwargs)
    return configured_forward


def _use_winograd(model: nn.Module) -> list[str]:
    """Swap every convolution Winograd applies to (after folding: the transform takes the final weights) for
    a WinogradConv2d; their names."""
    names = [name for name, module in model.named_modules() if winograd_applies(module)]
    for name in names:
        _set_submodule(model, name, WinogradConv2d(model.get_submodule(name)))
    return names


# Micro-batching: the stages down to this reduction (stride) of the input run a few images at a time.
MICRO_BATCH_REDUCTION = 8
# micro_batch="auto" times whole batches against micro-batches over this many calls of each, alternating,
MICRO_BATCH_TIMED_CALLS = 3
# and keeps micro-batches only when their median call is at least this much faster (three calls vary by
# a few percent; a wrong choice of micro-batches cost GoogLeNet-BN 14%).
MICRO_BATCH_MIN_SPEEDUP = 1.03


def micro_batch_stages(model: nn.Module, micro_batch: int | str | None) -> tuple[int, tuple, tuple] | None:
    """(images per micro-batch, the early stages run that many images at a time, the stages after them) for
    `optimize_for_inference`'s `micro_batch`, or None where the network runs whole batches throughout: a
    network that does not declare its stages (protocol.Classifier), `micro_batch` None or 0, or no stage at a
    reduction of MICRO_BATCH_REDUCTION or less. "auto" takes one image per thread (torch.get_num_threads())."""
    from .protocol import Classifier

    if micro_batch is None or micro_batch == 0:
        return None
    if micro_batch != "auto" and (not isinstance(micro_batch, int) or isinstance(micro_batch, bool)
                                  or micro_batch < 1):
        raise ValueError(f"micro_batch must be a number of images (1 or more), 'auto' or None, got {micro_batch!r}")
    if not isinstance(model, Classifier):
        return None
    if micro_batch == "auto":
        micro_batch = torch.get_num_threads()
    try:
        stages = tuple(model.feature_stages())
    except NotImplementedError:
        return None
    split = 0
    while split < len(stages) and stages[split].reduction <= MICRO_BATCH_REDUCTION:
        split += 1
    return (micro_batch, stages[:split], stages[split:]) if split else None


def _micro_batched_forward(self, x: torch.Tensor) -> torch.Tensor:
    """The network's forward, with the early stages run `micro_batch_plan[0]` images at a time while
    `self.micro_batching` is on (bound to the network as its forward by optimize_for_inference; copy.deepcopy
    rebinds it to the copy)."""
    micro_batch, early, late = self.micro_batch_plan
    if not self.micro_batching or x.shape[0] <= micro_batch:
        return type(self).forward(self, x)
    parts = []
    for part in x.split(micro_batch):
        for stage in early:
            part = self.forward_stage(stage, part)
        parts.append(part)
    x = torch.cat(parts)
    for stage in late:
        x = self.forward_stage(stage, x)
    return self.forward_head(x)


class _TimedMicroBatching:
    """micro_batch="auto": a forward that, the first time it meets an input shape (at a thread count) with more
    images than one micro-batch, runs whole batches and micro-batches (each compiled, under torch.compile)
    and times MICRO_BATCH_TIMED_CALLS calls of each, alternating; micro-batches are kept for that shape when
    their median call is MICRO_BATCH_MIN_SPEEDUP times faster, whole batches otherwise. The choices and
    their seconds are in `network.micro_batch_choices`."""

    def __init__(self, forward: Callable, network: nn.Module):
        self.__wrapped__ = forward
        self.network = network

    def __call__(self, x: torch.Tensor, *args, **kwargs):
        network = self.network
        key = (tuple(x.shape), x.dtype, torch.get_num_threads())
        if key not in network.micro_batch_choices and x.shape[0] > network.micro_batch_plan[0]:
            seconds: dict[bool, list[float]] = {False: [], True: []}
            for micro in seconds:  # the first call of each compiles (torch.compile) and warms up
                network.micro_batching = micro
                self.__wrapped__(x, *args, **kwargs)
            for _ in range(MICRO_BATCH_TIMED_CALLS):
                for micro, times in seconds.items():
                    network.micro_batching = micro
                    start = time.perf_counter()
                    self.__wrapped__(x, *args, **kwargs)
                    times.append(time.perf_counter() - start)
            speedup = statistics.median(seconds[False]) / statistics.median(seconds[True])
            network.micro_batch_choices[key] = {
                "micro_batching": speedup >= MICRO_BATCH_MIN_SPEEDUP,
                "seconds": {"whole batches": seconds[False], "micro-batches": seconds[True]}}
        choice = network.micro_batch_choices.get(key)
        network.micro_batching = bool(choice and choice["micro_batching"])
        return self.__wrapped__(x, *args, **kwargs)


# The compiled path compiles a graph for at most this many batch sizes of each input shape (C, H, W); dynamo
# keeps at most 8 graphs of a compiled function (torch._dynamo.config.recompile_limit) and runs later shapes
# eagerly, and micro-batching "auto" compiles two graphs per shape.
MAX_COMPILED_BATCHES = 4


class _BatchBuckets:
    """The compiled path's batch sizes: the first MAX_COMPILED_BATCHES batch sizes of each input shape and
    thread count compile graphs of their own; a later batch size runs on those graphs in chunks: each the
    smallest compiled batch that holds what is left, else the largest, padded with zero images to fill it. The
    images of an eval-mode network never meet, so each image's outputs are the same either way (a model whose
    images do meet in eval mode would see the zero images). `batches` maps (shape without the batch, dtype,
    threads) to the batch sizes compiled."""

    def __init__(self, forward: Callable):
        self.__wrapped__ = forward
        self.batches: dict[tuple, list[int]] = {}

    def __call__(self, x, *args, **kwargs):
        if args or kwargs or not isinstance(x, torch.Tensor) or x.dim() < 2 or x.shape[0] == 0:
            return self.__wrapped__(x, *args, **kwargs)
        compiled = self.batches.setdefault((tuple(x.shape[1:]), x.dtype, torch.get_num_threads()), [])
        batch = x.shape[0]
        if batch in compiled or len(compiled) < MAX_COMPILED_BATCHES:
            if batch not in compiled:
                compiled.append(batch)
            return self.__wrapped__(x)
        chunks, start = [], 0
        while start < batch:
            # The smallest compiled batch that holds what is left, else the largest.
            size = min((b for b in compiled if b >= batch - start), default=max(compiled))
            chunk = x[start:start + size]
            images = chunk.shape[0]
            start += images
            if images < size:
                chunk = torch.cat([chunk, chunk.new_zeros((size - images, *chunk.shape[1:]))])
            leaves, spec = torch.utils._pytree.tree_flatten(self.__wrapped__(chunk))
            chunks.append([leaf[:images] if isinstance(leaf, torch.Tensor) and leaf.dim() > 0 else leaf
                           for leaf in leaves])
        joined = [torch.cat(parts) if isinstance(parts[0], torch.Tensor) and parts[0].dim() > 0 else parts[0]
                  for parts in zip(*chunks)]
        return torch.utils._pytree.tree_unflatten(joined, spec)


def optimize_for_inference(model: nn.Module, compile: bool = False, channels_last: bool = True,
                           reuse_memory: bool = True, micro_batch: int | str | None = "auto",
                           winograd: bool | str = "auto") -> nn.Module:
    """A copy of `model` for fast inference (the model itself is not changed): batch norms folded into the
    convolutions before them, eval mode, gradients off, weights and inputs in channels_last layout (4-D
    inputs are converted on the way in; outputs equal the original's up to float rounding), and with
    compile=True wrapped in torch.compile with inductor's freezing (weights as constants, pre-packed for
    oneDNN) and its C++ wrapper (INDUCTOR_SETTINGS), one static graph per input shape; the first call at
    each shape compiles, which takes a while. Each graph holds its own pre-packed weights (ResNet-50: 60-80 MB
    more per batch size), and dynamo keeps at most 8 graphs (`torch._dynamo.config.recompile_limit`) and runs
    later shapes eagerly. So the first MAX_COMPILED_BATCHES (4) batch sizes of each input size compile graphs
    of their own, listed in `fast.compiled_batches`; a later batch size runs on them in chunks, padded with zero
    images where no compiled batch fits exactly (outputs the same: the images of an eval-mode network never
    meet). More than two input sizes (micro-batching "auto" compiles two graphs each) still reach
    dynamo's limit.

    reuse_memory=True also has this process's malloc keep freed memory for reuse, as the inference engines'
    arenas do (`convzoo.runtime.reuse_freed_memory`: process-wide, glibc only), so feature maps over 32 MiB
    are not mapped afresh and page-faulted on every call (MobileNet v2 at batch 8: 1.45x faster).

    micro_batch runs the stages down to a stride of 8 (MICRO_BATCH_REDUCTION), where maps are large and
    weights small, that many images at a time, so a stage's maps stay in the processor's cache from one
    convolution to the next; the later stages run the whole batch (`micro_batch_stages`; networks that do not
    declare their stages run whole batches throughout). "auto" (the default) takes one image per thread and
    decides for each input shape by timing: its first call times whole batches against micro-batches and keeps
    micro-batches if they are at least 3% faster (compiling both under compile=True), recorded in
    `fast.micro_batch_choices`. On this machine at batch 8, compiled, one thread and two: MobileNet v2 1.21x
    and 1.13x faster micro-batched, DenseNet-121 1.02x and 1.03x, ResNet-50 1.01x and 1.02x, GoogLeNet-BN
    0.86x and 0.87x, ShuffleNet v2 0.72x and 0.93x. None runs whole batches.

    winograd has the 3x3 convolutions with at least 256 channels in and out (`convzoo.winograd.winograd_applies`)
    run by Winograd's F(2x2, 3x3), 2.25x fewer multiplications, on even maps of at most 56x56, where it beats
    oneDNN's direct convolution (1.2-2.1x per convolution, compiled; ResNet-50 at batch 8 1.035x over the
    network); they are listed in `fast.winograd_convolutions`. "auto" (the default) uses it under compile=True
    only: run eagerly, its transforms are separate passes over memory and it is slower. True uses it eagerly
    too; False never.

    `fast.fold_report` says which batch norms were folded and which were left (e.g. a pre-activation
    network's, which run before their convolution)."""
    if not (isinstance(winograd, bool) or winograd == "auto"):
        raise ValueError(f"winograd must be True, False or 'auto', got {winograd!r}")
    if reuse_memory:
        reuse_freed_memory()
    fast = copy.deepcopy(model)
    report = fold_batch_norms(fast)
    fast.requires_grad_(False)
    if channels_last:
        fast = fast.to(memory_format=torch.channels_last)
        # Before the input guard and every other pre-hook: they read shapes only, which the layout keeps.
        fast.register_forward_pre_hook(_to_channels_last, prepend=True)
    fast.fold_report = report
    fast.winograd_convolutions = (_use_winograd(fast) if winograd is True or (winograd == "auto" and compile)
                                  else [])
    plan = micro_batch_stages(fast, micro_batch)
    timed = plan is not None and micro_batch == "auto"
    if plan is not None:
        fast.micro_batch_plan, fast.micro_batching, fast.micro_batch_choices = plan, not timed, {}
        fast.forward = types.MethodType(_micro_batched_forward, fast)
    if compile:
        # One static graph per input shape: with dynamo's automatic dynamic shapes, a second batch size made
        # every later call run a graph compiled for any batch, 4.5% slower on ResNet-50 at batch 8.
        compiled = torch.compile(fast, dynamic=False)
        compiled.forward = _with_inductor_settings(compiled.forward)
        if timed:
            compiled.forward = _TimedMicroBatching(compiled.forward, fast)
        compiled.forward = _BatchBuckets(compiled.forward)
        compiled.compiled_batches = compiled.forward.batches
        compiled.fold_report = report
        compiled.winograd_convolutions = fast.winograd_convolutions
        return compiled
    if timed:
        fast.forward = _TimedMicroBatching(fast.forward, fast)
    return fast
