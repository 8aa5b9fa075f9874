"""`convzoo.summary`: per-layer shapes, parameters, operations and receptive fields, and the totals.

    report = convzoo.summary("resnet50")                    # a registered name: built on the meta device
    report = convzoo.summary(model, input_size=(3, 224, 224), depth=2, convention="conv_linear")
    print(report.to_markdown()); report.total_params; report.total_macs

Each row is one call of one module, in the order the calls start. A row's `params` and `macs` are what
that module holds and computes *itself*: a leaf layer's whole cost; for a block, only the ops its own
forward runs between its children (the residual add, the concatenation). So the rows always add up to
the totals, and `depth=N` folds every row below depth N into its ancestor at depth N.
All numbers are per image (the trace runs a batch of one).
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich import box
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text
from torch import nn

from ..errors import InputSizeError
from ..protocol import card_of, model_args_of
from ..registry import create_model, default_input_size, model_card
from ..weights import described_model_args
from .receptive_field import TensorField, centre_size
from .trace import CallNode, Trace, on_meta, trace_model

CONVENTIONS = ("all", "conv_linear")
_MARKDOWN_HEADERS = ["layer", "type", "output (CxHxW)", "params", "MACs", "receptive field (px)", "jump (px)",
                     "start (px)"]


@dataclass(frozen=True)
class LayerRow:
    """One call of one module. `receptive_field`, `jump` and `start` hold one value per spatial axis
    (H, W), in input pixels; None for layers not on a path from the input (see receptive_field.py)."""

    name: str  # module path; "" for the model itself
    type: str
    depth: int
    call: int  # 0 for a module's first call; shared modules get one row per call, params on the first
    output_shape: tuple  # (C, H, W) without the batch axis; a tuple of shapes for several outputs
    params: int
    macs: int
    receptive_field: tuple[float, ...] | None
    jump: tuple[float, ...] | None
    start: tuple[float, ...] | None
    activations: int  # output elements per image

    @property
    def flops(self) -> int:
        return 2 * self.macs

    @property
    def label(self) -> str:
        base = self.name or "(model)"
        return base if self.call == 0 else f"{base} (call {self.call + 1})"


@dataclass(frozen=True)
class SummaryReport:
    """What `summary()` returns: rows and totals. Bytes are for one image at the model's dtype."""

    model_name: str
    input_size: tuple[int, ...]
    convention: str
    rows: list[LayerRow]
    total_params: int
    trainable_params: int
    total_macs: int
    param_bytes: int
    buffer_bytes: int
    inference_activation_bytes: int  # peak alive at once, each activation freed after its last use
    training_activation_bytes: int  # what autograd keeps for the backward pass
    uncounted: dict[str, tuple[int, int]] = field(default_factory=dict)  # op -> (calls, output elements)
    unused_params: dict[str, int] = field(default_factory=dict)  # modules the forward never called
    fieldless_ops: list[str] = field(default_factory=list)  # ops the receptive field could not follow

    @property
    def non_trainable_params(self) -> int:
        return self.total_params - self.trainable_params

    @property
    def total_flops(self) -> int:
        return 2 * self.total_macs

    # -- output formats ----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain data; every key names its unit (params and activations are counts of numbers)."""
        return {
            "model": self.model_name,
            "input_size": list(self.input_size),
            "convention": self.convention,
            "total_params": self.total_params,
            "trainable_params": self.trainable_params,
            "non_trainable_params": self.non_trainable_params,
            "total_macs": self.total_macs,
            "total_flops": self.total_flops,
            "param_bytes": self.param_bytes,
            "buffer_bytes": self.buffer_bytes,
            "inference_activation_bytes": self.inference_activation_bytes,
            "training_activation_bytes": self.training_activation_bytes,
            "rows": [{
                "name": r.name, "type": r.type, "depth": r.depth, "call": r.call,
                "output_shape": _jsonable_shape(r.output_shape), "params": r.params, "macs": r.macs,
                "flops": r.flops, "activation_elements": r.activations,
                "receptive_field_pixels": _jsonable(r.receptive_field), "jump_pixels": _jsonable(r.jump),
                "start_pixel": _jsonable(r.start),
            } for r in self.rows],
            "uncounted_ops": {op: {"calls": c, "output_elements": e} for op, (c, e) in self.uncounted.items()},
            "unused_params": dict(self.unused_params),
            "receptive_field_unknown_after": list(self.fieldless_ops),
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def to_csv(self) -> str:
        """The rows, one line each (totals are in to_json / to_markdown)."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["name", "type", "depth", "call", "output_shape", "params", "macs", "flops",
                         "activation_elements", "receptive_field_pixels", "jump_pixels", "start_pixel"])
        for r in self.rows:
            writer.writerow([r.name, r.type, r.depth, r.call, _shape_text(r.output_shape), r.params, r.macs, r.flops,
                             r.activations, _axes_text(r.receptive_field), _axes_text(r.jump), _axes_text(r.start)])
        return buffer.getvalue()

    def _table_rows(self) -> list[list[str]]:
        return [[r.label, r.type, _shape_text(r.output_shape), f"{r.params:,}", f"{r.macs:,}",
                 _axes_text(r.receptive_field), _axes_text(r.jump), _axes_text(r.start)] for r in self.rows]

    def totals_lines(self) -> list[str]:
        """The totals in words, as the markdown and terminal tables print them under the rows."""
        lines = [
            f"parameters: {self.total_params:,} (trainable {self.trainable_params:,}, "
            f"non-trainable {self.non_trainable_params:,})",
            f"operations: {self.total_macs:,} MACs ({_si(self.total_macs)}MACs) = {self.total_flops:,} FLOPs; "
            f"convention {self.convention!r}" + (" (conv and linear only)" if self.convention == "conv_linear" else ""),
            f"memory per image: parameters {_bytes(self.param_bytes)}, buffers {_bytes(self.buffer_bytes)}, "
            f"activations at inference (peak) {_bytes(self.inference_activation_bytes)}, "
            f"activations kept for training {_bytes(self.training_activation_bytes)}",
        ]
        if self.uncounted:
            lines.append("uncounted (no rule; not in the MACs): " + ", ".join(
                f"{op} x{calls} ({elements:,} output elements)" for op, (calls, elements) in self.uncounted.items()))
        if self.unused_params:
            lines.append("parameters of modules the forward did not call (in the totals, in no row): " + ", ".join(
                f"{path} {count:,}" for path, count in self.unused_params.items()))
        if self.fieldless_ops:
            lines.append("receptive field not followed past: " + ", ".join(self.fieldless_ops))
        return lines

    def to_markdown(self) -> str:
        title = f"**{self.model_name}** at {_shape_text(self.input_size)} (C x H x W), per image"
        lines = [title, "", "| " + " | ".join(_MARKDOWN_HEADERS) + " |",
                 "|" + "|".join(["---", "---", "---", "---:", "---:", "---:", "---:", "---:"]) + "|"]
        lines += ["| " + " | ".join(cells) + " |" for cells in self._table_rows()]
        lines.append("")
        lines += [f"- {line}" for line in self.totals_lines()]
        return "\n".join(lines) + "\n"

    def __rich__(self) -> Group:
        table = Table(title=f"{self.model_name} at {_shape_text(self.input_size)} (per image; receptive field, "
                            "jump and start in input pixels)", title_justify="left", box=box.SIMPLE_HEAD)
        headers = ["layer", "type", "output", "params", "MACs", "RF", "jump", "start"]
        for header, justify in zip(headers, ["left", "left", "left"] + ["right"] * 5):
            table.add_column(header, justify=justify, no_wrap=header in ("layer", "type", "output"))
        for row, cells in zip(self.rows, self._table_rows()):
            # A tree: the indent shows the path, so the last component suffices (full paths in the
            # other formats).
            leaf = row.name.rsplit(".", 1)[-1] if row.name else "(model)"
            if row.call:
                leaf += f" (call {row.call + 1})"
            table.add_row("  " * row.depth + leaf, *cells[1:])
        return Group(table, *(Text(line) for line in self.totals_lines()))

    def print_table(self, console: Console | None = None) -> None:
        (console or Console()).print(self)

    def __str__(self) -> str:
        return self.to_markdown()


def summary(model_or_name: nn.Module | str | Path, input_size: tuple[int, ...] | None = None,
            depth: int | None = None, convention: str = "all", **model_kwargs: Any) -> SummaryReport:
    """Shapes, parameters, operations (MACs), receptive fields and memory of a network, from one forward
    pass on the meta device (so it is cheap for any size of network, and the model is left untouched).

    `model_or_name`: an nn.Module; a registered name, built on the meta device with `model_kwargs` (any
    create_model argument: num_classes, spec, global_pool, ...) or its card's defaults; or a weights file or
    run folder that names its network (save_weights files, `convzoo train` checkpoints), built as recorded. `input_size`: (C, H, W) without the batch axis; defaults to the card's. `depth`: fold the
    rows below this depth into their ancestors (0 leaves one row: the whole model). `convention`: "all"
    counts every operation by the rules in operations.py; "conv_linear" counts only convolutions, linear
    layers and matrix products (torchvision's published figures). Models may return a tensor, or tuples
    or dicts of them: the operations of the whole forward are counted, whichever output they feed."""
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
    if depth is not None and depth < 0:
        raise ValueError(f"depth must be 0 or more (or None for every row), got {depth}")
    model, name, input_size, copy_model = resolve_model(model_or_name, input_size, caller="summary", **model_kwargs)
    trace = trace_model(model, input_size, name=name, copy_model=copy_model)
    return report_from_trace(trace, name, input_size, depth=depth, convention=convention)


def resolve_model(model_or_name: nn.Module | str | Path, input_size: tuple[int, ...] | None,
                  caller: str = "summary", **model_kwargs: Any) -> tuple[nn.Module, str, tuple[int, ...], bool]:
    """What a trace needs: the model (a registered name is built on the meta device with `model_kwargs`, owned
    by the caller: `copy_model` False; a weights file or run folder that names its network is built as it
    records), its name, and the input size (given, else what its arguments or card decide)."""
    if isinstance(model_or_name, (str, Path)) and _is_file_or_folder(model_or_name):
        recorded = described_model_args(model_or_name)
        if recorded is None:
            raise ValueError(f"{str(model_or_name)!r} does not name its network (not written by save_weights or "
                             f"`convzoo train`); give the network's name and load the weights into it yourself")
        model_or_name, model_kwargs = recorded.pop("name"), {**recorded, **model_kwargs}
    if isinstance(model_or_name, str):
        card = model_card(model_or_name)
        with on_meta():
            model = create_model(card.name, **model_kwargs)
        copy_model = False
    elif isinstance(model_or_name, nn.Module):
        if model_kwargs:
            raise ValueError("model arguments apply to a registered name, not to a model already built")
        model, card, copy_model = model_or_name, card_of(model_or_name), True
    else:
        raise TypeError(f"{caller}() takes an nn.Module or a registered model name, "
                        f"got {type(model_or_name).__name__}")
    name = card.name if card is not None else type(model).__name__
    model_args = model_args_of(model)
    if input_size is None and card is not None and model_args:
        # What the network was built for: its arguments may decide the input (a NAS spec) or its channels.
        channels, height, width = default_input_size(card.name, model_args)
        input_size = (model_args.get("in_chans", channels), height, width)
    return model, name, _check_input_size(input_size, card, name), copy_model


def report_from_trace(trace: Trace, name: str, input_size: tuple[int, ...], depth: int | None = None,
                      convention: str = "all") -> SummaryReport:
    """The report of a trace already run (the drawing traces once and keeps both)."""
    return SummaryReport(
        model_name=name,
        input_size=input_size,
        convention=convention,
        rows=_rows(trace.root, depth, convention),
        total_params=trace.total_params,
        trainable_params=trace.trainable_params,
        total_macs=sum(_macs(node, convention) for node in trace.root.walk()),
        param_bytes=trace.param_bytes,
        buffer_bytes=trace.buffer_bytes,
        inference_activation_bytes=trace.inference_activation_bytes,
        training_activation_bytes=trace.training_activation_bytes,
        uncounted=trace.uncounted,
        unused_params=trace.unused_params,
        fieldless_ops=trace.fieldless,
    )


def _is_file_or_folder(value: str | Path) -> bool:
    # A registered name never contains a path separator or a suffix; a path that exists is a file.
    return isinstance(value, Path) or Path(value).exists()


def _check_input_size(input_size, card, name: str) -> tuple[int, ...]:
    if input_size is None:
        if card is None:
            raise InputSizeError(f"give the input size of {name} without the batch axis, e.g. input_size=(3, 224, 224)")
        return tuple(card.input_size)
    size = tuple(input_size)
    if not size or not all(isinstance(v, int) and v > 0 for v in size):
        raise InputSizeError(f"input_size must be positive integers (C, H, W) without the batch axis, "
                             f"got {input_size!r}")
    if card is not None and len(size) != len(card.input_size):
        expected = "x".join(map(str, card.input_size))
        raise InputSizeError(f"{name} takes an input of the form C x H x W like {expected}; got {input_size!r}")
    return size


def _macs(node: CallNode, convention: str) -> int:
    return node.macs_all if convention == "all" else node.macs_conv_linear


def _rows(root: CallNode, depth: int | None, convention: str) -> list[LayerRow]:
    rows = []

    def visit(node: CallNode) -> None:
        folded = depth is not None and node.depth >= depth
        subtree = list(node.walk()) if folded else [node]
        rows.append(_row(node, sum(n.params for n in subtree), sum(_macs(n, convention) for n in subtree)))
        if not folded:
            for child in node.children:
                visit(child)

    visit(root)
    return rows


def _row(node: CallNode, params: int, macs: int) -> LayerRow:
    fld: TensorField | None = node.field
    shapes = node.output_shapes
    return LayerRow(
        name=node.path, type=node.type_name, depth=node.depth, call=node.call_index,
        output_shape=shapes[0] if len(shapes) == 1 else shapes, params=params, macs=macs,
        receptive_field=None if fld is None else tuple(_number(size) for size in centre_size(fld, node.grid)),
        jump=None if fld is None else tuple(_number(a.jump) for a in fld.axes),
        start=None if fld is None else tuple(_number(a.start) for a in fld.axes),
        activations=node.activations,
    )


# -- formatting helpers -------------------------------------------------------------------------------


def _number(value: float) -> float | int:
    value = round(float(value), 2)  # fractions only where adaptive pools or upsampling have uneven steps
    return int(value) if value.is_integer() else value


def _axes_text(values: tuple | None) -> str:
    if values is None:
        return "-"
    return str(values[0]) if len(set(values)) == 1 else "x".join(map(str, values))


def _shape_text(shape: tuple) -> str:
    if shape and isinstance(shape[0], tuple):
        return ", ".join(_shape_text(s) for s in shape)
    return "x".join(map(str, shape)) if shape else "scalar"


def _jsonable(values: tuple | None) -> list | None:
    return None if values is None else list(values)


def _jsonable_shape(shape: tuple) -> list:
    return [list(s) for s in shape] if shape and isinstance(shape[0], tuple) else list(shape)


def _si(count: int) -> str:
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if count >= factor:
            return f"{count / factor:.3f} {prefix}"
    return f"{count} "


def _bytes(count: int) -> str:
    for factor, unit in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if count >= factor:
            return f"{count / factor:.2f} {unit} ({count:,} bytes)"
    return f"{count:,} bytes"
