"""Draw a network from the network itself: `convzoo.draw("resnet50").save("resnet50.svg")`.

One traced forward on the meta device (the tracer `summary` uses) gives the graph (graph.py: layers, merges,
badges, frames, repeated blocks collapsed), layout.py places it (layers nested by frames, CNN-shaped), and
render.py writes it as SVG, or PNG and PDF through matplotlib. gallery.py draws the course's figures.
The SVG's ids and classes are documented in docs/figures.md.
"""
from __future__ import annotations

import io
import sys
import types
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from ..analysis.summary import SummaryReport, report_from_trace, resolve_model
from ..analysis.trace import on_meta, trace_model
from ..errors import DrawError, OutputExistsError, WeightsError
from ..io import atomic_write_bytes
from .graph import Edge, Frame, Graph, GraphRecorder, Node, build_graph
from .layout import Layout, layout
from .render import Panel, Prim, scene, to_matplotlib, to_svg

FORMATS = ("svg", "png", "pdf")
MARGIN = 12.0
TITLE_SIZE = 14.0
NOTE_SIZE = 10.0
CAPTION_SIZE = 12.0
PANEL_GAP = 36.0

__all__ = ["Drawing", "Edge", "Frame", "Graph", "Node", "draw", "draw_to_file", "FORMATS"]


class Drawing:
    """A laid-out drawing of one network or several side by side (`Drawing.beside`).

    `graph` (nodes, edges, frames), `layout` (where each goes) and `report` (the summary of the same trace:
    its rows are what node ids name) are those of the first panel. `svg()` gives the SVG text; `save(path)`
    writes SVG, PNG or PDF (by suffix, or `format=`), atomically, refusing to replace a file unless
    `overwrite=True`."""

    def __init__(self, panels: Sequence[Panel], title: str = "", notes: Sequence[str] = (),
                 reports: Sequence[SummaryReport | None] = ()):
        self.panels = list(panels)
        self.title = title
        self.notes = list(notes)
        self.reports = list(reports)
        top = MARGIN + (TITLE_SIZE + 8 if title else 0) + len(self.notes) * (NOTE_SIZE + 4) + (4 if notes else 0)
        x = MARGIN
        captioned = any(p.caption for p in self.panels)
        for k, panel in enumerate(self.panels):
            panel.x = x
            panel.y = top + (CAPTION_SIZE + 8 if captioned else 0)
            panel.prefix = f"p{k}-" if len(self.panels) > 1 else ""
            x += max(panel.layout.width, _text_width(panel.caption, CAPTION_SIZE)) + PANEL_GAP
        self.width = max(x - PANEL_GAP + MARGIN, _text_width(title, TITLE_SIZE) + 2 * MARGIN,
                         max((_text_width(n, NOTE_SIZE) for n in self.notes), default=0) + 2 * MARGIN)
        self.height = max((p.y + p.layout.height for p in self.panels), default=top) + MARGIN

    @property
    def graph(self) -> Graph:
        return self.panels[0].graph

    @property
    def layout(self) -> Layout:
        return self.panels[0].layout

    @property
    def report(self) -> SummaryReport | None:
        return self.reports[0] if self.reports else None

    @classmethod
    def beside(cls, drawings: Sequence[Drawing], captions: Sequence[str] | None = None, title: str = "",
               notes: Sequence[str] = ()) -> Drawing:
        """Several drawings side by side in one figure (VGG beside AlexNet), each under its caption."""
        panels, reports = [], []
        for k, drawing in enumerate(drawings):
            for panel in drawing.panels:
                caption = captions[k] if captions else (panel.caption or panel.graph.name)
                panels.append(Panel(panel.graph, panel.layout, panel.direction, caption=caption))
            reports += drawing.reports
        return cls(panels, title=title, notes=notes, reports=reports)

    def _extra(self) -> list[Prim]:
        prims = []
        y = MARGIN
        if self.title:
            y += TITLE_SIZE
            prims.append(Prim("text", MARGIN, y, text=self.title, size=TITLE_SIZE, anchor="start", weight="bold",
                              fill="#222222", css="title"))
            y += 8
        for note in self.notes:
            y += NOTE_SIZE + 4
            prims.append(Prim("text", MARGIN, y, text=note, size=NOTE_SIZE, anchor="start", fill="#333333",
                              css="note"))
        for panel in self.panels:
            if panel.caption:
                prims.append(Prim("text", panel.x, panel.y - 8, text=panel.caption, size=CAPTION_SIZE, anchor="start",
                                  weight="bold", fill="#333333", css="caption"))
        return prims

    def _groups(self):
        return [g for panel in self.panels for g in scene(panel)]

    def svg(self) -> str:
        panel = self.panels[0]
        data = {"model": ",".join(p.graph.name for p in self.panels),
                "input": ",".join("x".join(map(str, p.graph.input_size)) for p in self.panels),
                "direction": panel.direction}
        return to_svg(self._groups(), self.width, self.height, self._extra(), data)

    def _repr_svg_(self) -> str:
        return self.svg()

    def to_bytes(self, format: str = "svg", scale: float = 2.0) -> bytes:
        if format not in FORMATS:
            raise DrawError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
        if format == "svg":
            return self.svg().encode()
        figure = to_matplotlib(self._groups(), self.width, self.height, self._extra(), scale)
        buffer = io.BytesIO()
        figure.savefig(buffer, format=format, dpi=72 * scale, facecolor="white")
        return buffer.getvalue()

    def save(self, path: str | Path, format: str | None = None, overwrite: bool = False,
             scale: float | None = None) -> Path:
        """Write the drawing; the format from `format` or the suffix (.svg, .png, .pdf). PNGs are drawn at
        `scale` pixels per SVG pixel (default 2, less for very large drawings)."""
        path = Path(path)
        format = _check_target(path, format, overwrite)
        if scale is None:
            scale = max(0.5, min(2.0, 5000 / max(self.width, self.height)))
        return atomic_write_bytes(path, self.to_bytes(format, scale=scale))


def _check_target(path: Path, format: str | None, overwrite: bool) -> str:
    """The format to write `path` in (by its suffix unless given); refuses an unknown one, and a file that
    exists unless `overwrite`."""
    format = (format or path.suffix.lstrip(".") or "svg").lower()
    if format not in FORMATS:
        raise DrawError(f"cannot write {str(path)!r}: give a file ending in .svg, .png or .pdf")
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{str(path)!r} exists; give another --out, or --force to replace it")
    return format


def _text_width(text: str, size: float) -> float:
    return len(text) * 0.6 * size


def draw(model_or_name: nn.Module | str | Path, input_size: tuple[int, ...] | None = None, depth: int | None = None,
         expand: bool = False, direction: str = "TB", title: str | None = None, notes: Sequence[str] = (),
         caption: str = "", focus: str | None = None, frames: bool = True) -> Drawing:
    """Draw a network: a registered name, an nn.Module, or a checkpoint (.safetensors or run folder; drawn
    from what it describes, no weights read). `input_size` (C, H, W) defaults to the card's or the
    checkpoint's. `depth=N` draws each module call deeper than N as one box; `expand=True` draws every
    block of a repeated run instead of one frame "x N"; `direction` "TB" (top to bottom), "LR", or "U" (an
    encoder-decoder: the encoder down the left, the decoder up the right, skips across); `focus`
    a module path: only that module, with the shapes it has inside the network; `frames=False` leaves the
    module frames out (one column of layers, as the papers print a plain network)."""
    if depth is not None and depth < 0:
        raise DrawError(f"depth must be 0 or more (or None for every layer), got {depth}")
    if direction not in ("TB", "LR", "U"):
        raise DrawError(f"direction must be 'TB', 'LR' or 'U' (an encoder-decoder as a U), got {direction!r}")
    if isinstance(model_or_name, (str, Path)) and (Path(model_or_name).exists() or
                                                    str(model_or_name).endswith(".safetensors")):
        model_or_name, described = _checkpoint_model(model_or_name)
        input_size = input_size or described
    model, name, size, copy_model = resolve_model(model_or_name, input_size, caller="draw")
    recorder = GraphRecorder()
    trace = trace_model(model, size, name=name, copy_model=copy_model, listener=recorder)
    graph = build_graph(recorder, trace.root, name, size, depth=depth, expand=expand, focus=focus,
                        frames=frames)
    report = report_from_trace(trace, name, size)
    panel = Panel(graph, layout(graph, direction), direction, caption=caption)
    return Drawing([panel], title=name if title is None else title, notes=notes, reports=[report])


def draw_to_file(source: str | Path, out: str | Path | None = None, force: bool = False, **options) -> Path:
    """Draw a registered name or a checkpoint and write it: to `out` (format by suffix), by default
    `NAME.svg` in the current folder. Refuses to replace a file unless `force`."""
    if out is not None:
        _check_target(Path(out), None, force)  # before the work, so a refusal costs nothing
    drawing = draw(source, **options)
    if out is None:
        out = Path(f"{drawing.graph.name}.svg")
    return drawing.save(out, overwrite=force)


def _checkpoint_model(path: str | Path) -> tuple[nn.Module, tuple[int, ...] | None]:
    """The network a checkpoint describes, built on the meta device (its weights are not needed)."""
    from ..registry import create_model
    from ..training.checkpoint import read_checkpoint_description, resolve_checkpoint

    resolved = resolve_checkpoint(path)
    description = read_checkpoint_description(resolved)
    model_args = dict(description.get("model", {}))
    name = model_args.pop("name", None)
    if not isinstance(name, str):
        raise WeightsError(f"{str(resolved)!r} does not name its network in its metadata")
    with on_meta():
        model = create_model(name, **model_args)
    size = description.get("input_size")
    return model, (tuple(int(v) for v in size) if size else None)


class _CallableModule(types.ModuleType):
    """`convzoo.draw(...)` is this package called: the function `draw`, while `convzoo.draw.graph`,
    `convzoo.draw.layout`... stay the package's modules (a function of the same name would hide them)."""

    def __call__(self, *args, **kwargs) -> Drawing:
        return draw(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
