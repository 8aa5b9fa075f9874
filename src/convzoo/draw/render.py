"""A laid-out drawing as SVG text, and the same drawing through matplotlib for PNG and PDF.

Both writers walk one list of primitives (`scene()`): rounded boxes, polylines with arrow heads, text,
each with the SVG group it belongs to. The SVG gets ids, classes, `data-` attributes and `<title>` tooltips
(the scheme is in docs/figures.md); matplotlib draws the same boxes, lines and text at 1 point per SVG
pixel. matplotlib is already a dependency (the training curves), writes PNG and PDF without cairo or any
system library, and so needs nothing new: a pure-Python SVG rasteriser (cairosvg) would need libcairo.
"""
from __future__ import annotations

import html
import re
from dataclasses import dataclass, field

from .graph import Graph, Node
from .layout import BADGE_FONT, BADGE_HEIGHT, FONT_SIZE, Layout, _caption, _badges_width, text_width

FONT = "DejaVu Sans, Verdana, Arial, sans-serif"
FILL = {  # kind -> (fill, stroke)
    "conv": ("#dbe9f6", "#3d6fa3"), "deconv": ("#dcefd9", "#4a8a43"), "fc": ("#fde9d2", "#b8752d"),
    "pool": ("#efdff0", "#8a5a8c"), "upsample": ("#dcefd9", "#4a8a43"), "merge": ("#fff4c7", "#a8892a"),
    "split": ("#fff4c7", "#a8892a"), "op": ("#eeeeee", "#777777"), "module": ("#e8e6f7", "#5e58a0"),
    "input": ("#f4f4f4", "#888888"), "output": ("#f4f4f4", "#888888"),
}
BADGE_FILL = {"BN": "#c8e3bd", "ReLU": "#f8d2ad", "ReLU6": "#f8d2ad", "LRN": "#d9d2e9", "sigmoid": "#f4cccc",
              "dropout": "#e0e0e0"}
FRAME_FILL = ("#fbfbfb", "#b0b0b0")
REPEAT_FILL = ("#f5f8ff", "#5b7fc0")
EDGE_COLOUR = "#555555"
LABEL_COLOUR = "#666666"


@dataclass
class Prim:
    """One drawn thing. `kind`: rect, line (a polyline; `arrow` puts a head on its last point), text."""

    kind: str
    x: float = 0.0
    y: float = 0.0
    w: float = 0.0
    h: float = 0.0
    points: list[tuple[float, float]] = field(default_factory=list)
    text: str = ""
    size: float = FONT_SIZE
    anchor: str = "middle"  # start, middle, end
    weight: str = "normal"
    fill: str = "none"
    stroke: str = "none"
    radius: float = 3.0
    dash: bool = False
    arrow: bool = False
    width: float = 1.0
    css: str = ""  # SVG class of the element itself


@dataclass
class Group:
    """An SVG <g>: id, class, data attributes, tooltip, and its primitives."""

    id: str
    css: str
    data: dict[str, str]
    title: str
    prims: list[Prim]


@dataclass
class Panel:
    graph: Graph
    layout: Layout
    direction: str
    x: float = 0.0
    y: float = 0.0
    caption: str = ""
    prefix: str = ""  # id prefix when a sheet holds several panels


def svg_id(text: str) -> str:
    """An XML name from a node id or module path: characters outside [A-Za-z0-9._-] become '_'."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", text)


def _shape_text(shape: tuple) -> str:
    return "x".join(map(str, shape)) if shape else "scalar"


def _number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def node_tooltip(node: Node) -> str:
    lines = [node.id if node.id not in ("input", "output") else node.label, node.label]
    if node.badges:
        lines.append("then " + ", ".join(node.badges))
    lines.append(f"output {_shape_text(node.shape)}")
    if node.kind not in ("input", "output"):
        extra = f" (+{node.badge_params:,} in {', '.join(node.badges)})" if node.badge_params else ""
        lines.append(f"params {node.params:,}{extra}")
        extra = f" (+{node.badge_macs:,} in {', '.join(node.badges)})" if node.badge_macs else ""
        lines.append(f"MACs {node.macs:,}{extra}")
        if node.rf is not None:
            rf = node.rf
            lines.append("receptive field " + (_number(rf[0]) if len(set(rf)) == 1 else "x".join(map(_number, rf)))
                         + " px")
    if len(node.members) > 1:
        lines.append("summary rows: " + ", ".join(p or "(model)" for p, _ in node.members))
    return "\n".join(lines)


def scene(panel: Panel) -> list[Group]:
    """Every group of one panel, in drawing order: frames (outer first), edges, nodes."""
    graph, lay, ox, oy, pre = panel.graph, panel.layout, panel.x, panel.y, panel.prefix
    tb = panel.direction == "TB"
    groups: list[Group] = []

    def depth(key: str) -> int:
        d = 0
        while graph.frames[key].parent is not None:
            key = graph.frames[key].parent
            d += 1
        return d

    for key in sorted(lay.frames, key=depth):
        frame, box = graph.frames[key], lay.frames[key]
        fill, stroke = REPEAT_FILL if frame.repeat > 1 else FRAME_FILL
        prims = [Prim("rect", ox + box.x, oy + box.y, box.w, box.h, fill=fill, stroke=stroke, radius=6,
                      dash=frame.repeat == 1, width=1.6 if frame.repeat > 1 else 1.0),
                 Prim("text", ox + box.x + 6, oy + box.y + 11.5, text=_caption(frame), size=9.5, anchor="start",
                      fill="#3b5a99" if frame.repeat > 1 else "#555555",
                      weight="bold" if frame.repeat > 1 else "normal", css="caption")]
        title = [f"{frame.path}: {frame.type_name}"]
        if frame.repeat > 1:
            title = [f"{frame.repeat} x {frame.type_name}: {', '.join(frame.blocks)}",
                     f"the first is drawn; it stands for all {frame.repeat}"]
        title += [f"output {_shape_text(frame.shape)}", f"params {frame.params:,}", f"MACs {frame.macs:,}"]
        data = {"path": frame.path, "type": frame.type_name, "repeat": str(frame.repeat)}
        if frame.repeat > 1:
            data["blocks"] = " ".join(frame.blocks)
        groups.append(Group(f"{pre}f-{svg_id(key)}", "frame repeat" if frame.repeat > 1 else "frame", data,
                            "\n".join(title), prims))

    labelled: set[str] = set()
    for index, seg in enumerate(lay.segments):
        points = [(ox + x, oy + y) for x, y in seg.points]
        prims = [Prim("line", points=points, stroke=EDGE_COLOUR, arrow=seg.dst is not None, width=1.1)]
        edge_text = _shape_text(seg.shape)
        if seg.label_here and seg.src != "input" and (seg.src, edge_text) not in labelled:
            labelled.add((seg.src, edge_text))
            x0, y0 = points[0]
            if tb:
                prims.append(Prim("text", x0 + 4, y0 + 10, text=edge_text, size=8, anchor="start",
                                  fill=LABEL_COLOUR, css="shape"))
            else:
                prims.append(Prim("text", x0 + 4, y0 - 3, text=edge_text, size=8, anchor="start",
                                  fill=LABEL_COLOUR, css="shape"))
        data = {"src": seg.src, "shape": edge_text}
        if seg.dst is not None:
            data["dst"] = seg.dst
        title = f"{seg.src} -> {seg.dst or '(leaves the frame)'}: {edge_text}"
        groups.append(Group(f"{pre}e{index}", "edge", data, title, prims))

    for node_id, box in lay.nodes.items():
        node = graph.nodes[node_id]
        groups.append(_node_group(node, ox + box.x, oy + box.y, box.w, box.h, pre))
    return groups


def _node_group(node: Node, x: float, y: float, w: float, h: float, pre: str) -> Group:
    fill, stroke = FILL.get(node.kind, FILL["op"])
    round_merge = node.kind == "merge" and node.label in ("+", "x", "-")
    radius = 11.0 if round_merge else (10.0 if node.kind in ("input", "output") else 3.5)
    prims = [Prim("rect", x, y, w, h, fill=fill, stroke=stroke, radius=radius)]
    label_y = y + 15 if not round_merge else y + 15.5
    label = node.label
    prims.append(Prim("text", x + w / 2, label_y, text=label, size=FONT_SIZE + (3 if round_merge else 0),
                      weight="bold" if round_merge else "normal", fill="#222222", css="label"))
    if node.badges:
        bx = x + (w - _badges_width(node.badges)) / 2
        by = y + h - BADGE_HEIGHT - 2
        for badge in node.badges:
            bw = text_width(badge, BADGE_FONT) + 8
            prims.append(Prim("rect", bx, by, bw, BADGE_HEIGHT, fill=BADGE_FILL.get(badge, "#e6e6e6"),
                              stroke="#999999", radius=5, width=0.6, css="badge"))
            prims.append(Prim("text", bx + bw / 2, by + 9, text=badge, size=BADGE_FONT, fill="#333333",
                              css="badge-label"))
            bx += bw + 3
    data = {"path": node.path, "call": str(node.call), "kind": node.kind, "shape": _shape_text(node.shape),
            "params": str(node.params), "macs": str(node.macs)}
    if node.badges:
        data["badge-params"], data["badge-macs"] = str(node.badge_params), str(node.badge_macs)
    if node.op:
        data["op"] = node.op
    if node.rf is not None:
        data["rf"] = _number(node.rf[0]) if len(set(node.rf)) == 1 else "x".join(map(_number, node.rf))
    if node.members:
        data["members"] = " ".join(f"{p}#{c}" if c else p for p, c in node.members)
    if node.badges:
        data["badges"] = " ".join(node.badges)
    return Group(f"{pre}n-{svg_id(node.id)}", f"node {node.kind}", data, node_tooltip(node), prims)


# -- SVG ---------------------------------------------------------------------------------------------------


def _attr(text: str) -> str:
    return html.escape(text, quote=True)


def _f(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _svg_prim(p: Prim) -> str:
    cls = f' class="{p.css}"' if p.css else ""
    if p.kind == "rect":
        dash = ' stroke-dasharray="4 3"' if p.dash else ""
        return (f'<rect{cls} x="{_f(p.x)}" y="{_f(p.y)}" width="{_f(p.w)}" height="{_f(p.h)}" rx="{_f(p.radius)}" '
                f'fill="{p.fill}" stroke="{p.stroke}" stroke-width="{_f(p.width)}"{dash}/>')
    if p.kind == "line":
        d = "M" + " L".join(f"{_f(x)} {_f(y)}" for x, y in p.points)
        out = f'<path d="{d}" fill="none" stroke="{p.stroke}" stroke-width="{_f(p.width)}"/>'
        if p.arrow:
            out += f'<path d="{_arrow_path(p.points)}" fill="{p.stroke}"/>'
        return out
    weight = ' font-weight="bold"' if p.weight == "bold" else ""
    return (f'<text{cls} x="{_f(p.x)}" y="{_f(p.y)}" font-size="{_f(p.size)}" text-anchor="{p.anchor}" '
            f'fill="{p.fill}"{weight}>{html.escape(p.text)}</text>')


def _arrow_head(points: list[tuple[float, float]], size: float = 5.0) -> list[tuple[float, float]]:
    (x0, y0), (x1, y1) = points[-2], points[-1]
    dx, dy = x1 - x0, y1 - y0
    length = (dx * dx + dy * dy) ** 0.5 or 1.0
    ux, uy = dx / length, dy / length
    bx, by = x1 - ux * size * 1.4, y1 - uy * size * 1.4
    return [(x1, y1), (bx - uy * size * 0.7, by + ux * size * 0.7), (bx + uy * size * 0.7, by - ux * size * 0.7)]


def _arrow_path(points: list[tuple[float, float]]) -> str:
    a, b, c = _arrow_head(points)
    return f"M{_f(a[0])} {_f(a[1])} L{_f(b[0])} {_f(b[1])} L{_f(c[0])} {_f(c[1])} Z"


def to_svg(groups: list[Group], width: float, height: float, extra: list[Prim], data: dict[str, str]) -> str:
    attrs = " ".join(f'data-{k}="{_attr(v)}"' for k, v in data.items())
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="convzoo-net" width="{_f(width)}" height="{_f(height)}" '
           f'viewBox="0 0 {_f(width)} {_f(height)}" font-family="{FONT}" {attrs}>',
           '<rect width="100%" height="100%" fill="#ffffff"/>']
    out += [_svg_prim(p) for p in extra]
    for g in groups:
        data_attrs = "".join(f' data-{k}="{_attr(v)}"' for k, v in g.data.items())
        out.append(f'<g id="{_attr(g.id)}" class="{g.css}"{data_attrs}><title>{html.escape(g.title)}</title>'
                   + "".join(_svg_prim(p) for p in g.prims) + "</g>")
    out.append("</svg>")
    return "\n".join(out) + "\n"


# -- matplotlib --------------------------------------------------------------------------------------------


def to_matplotlib(groups: list[Group], width: float, height: float, extra: list[Prim], scale: float):
    """A matplotlib Figure of the same drawing: 1 SVG pixel = 1 point; `scale` sets the PNG's dpi (72 x)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyBboxPatch, Polygon

    fig = Figure(figsize=(width / 72, height / 72), dpi=72 * scale)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.axis("off")
    z = 0
    for p in extra + [p for g in groups for p in g.prims]:
        z += 1
        if p.kind == "rect":
            r = min(p.radius, p.w / 2, p.h / 2)
            ax.add_patch(FancyBboxPatch((p.x + r, p.y + r), max(p.w - 2 * r, 0.01), max(p.h - 2 * r, 0.01),
                                        boxstyle=f"round,pad={r}", facecolor=p.fill if p.fill != "none" else "none",
                                        edgecolor=p.stroke if p.stroke != "none" else "none", linewidth=p.width,
                                        linestyle=(0, (4, 3)) if p.dash else "-", zorder=z))
        elif p.kind == "line":
            xs, ys = zip(*p.points)
            ax.plot(xs, ys, color=p.stroke, linewidth=p.width, zorder=z, solid_capstyle="butt")
            if p.arrow:
                ax.add_patch(Polygon(_arrow_head(p.points), closed=True, facecolor=p.stroke, edgecolor="none",
                                     zorder=z))
        else:
            ax.text(p.x, p.y, p.text, fontsize=p.size, ha={"start": "left", "middle": "center", "end": "right"}[p.anchor],
                    va="baseline", color=p.fill, fontweight=p.weight, zorder=z, family="DejaVu Sans")
    return fig
