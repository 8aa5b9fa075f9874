"""Where every box and line of a drawing goes: a layered layout nested by frames, written for CNNs.

Each frame (and the whole drawing) is laid out on its own, its sub-frames as boxes of the size their own
layout gave them, so the module hierarchy nests exactly:

- items (nodes, sub-frames, and one *port* per tensor entering or leaving the frame) get ranks by longest
  path, so a chain runs straight down and parallel branches (an Inception module's four, a residual block's
  convolutions and its projection) share ranks side by side;
- an edge spanning several ranks passes through one dummy point per rank it crosses, which takes a slot
  in that rank like a thin item, so a skip runs beside its block instead of through it;
- items are ordered within their rank by the barycentre of their neighbours (a few sweeps down and up),
  then placed at the mean of their neighbours' positions, packed without overlap.

The layout works along the ranks ("along": down for top-to-bottom, right for left-to-right) and across
them, and turns into x and y at the end, so both directions share every line of it. A frame's ports lie
on its border where its inside layout put them; an edge from one node to another in other frames is drawn
as one segment per frame it crosses, joined at the ports. No graphviz: everything here is plain Python.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import DrawError
from .graph import Frame, Graph, Node

FONT_SIZE = 11.0
CHAR_WIDTH = 0.6 * FONT_SIZE  # DejaVu Sans averages about 0.6 em; boxes are sized from it
BADGE_FONT = 8.5
RANK_GAP = 30.0  # between ranks, top to bottom: room for a shape label under a node
RANK_GAP_LR = 58.0  # left to right, the label sits in the gap: room for "1024x14x14"
ITEM_GAP = 18.0  # between items of a rank
DUMMY_WIDTH = 6.0
FRAME_PAD = 10.0
HEADER = 16.0  # a frame's caption band
NODE_HEIGHT = 22.0
BADGE_HEIGHT = 12.0


def text_width(text: str, size: float = FONT_SIZE) -> float:
    return len(text) * 0.6 * size


def node_size(node: Node) -> tuple[float, float]:
    """Physical width and height of a node's box."""
    if node.kind == "merge" and node.label in ("+", "x", "-"):
        width = height = NODE_HEIGHT
        if node.badges:
            width = max(width, _badges_width(node.badges) + 8)
            height += BADGE_HEIGHT
        return width, height
    width = text_width(node.label) + 16
    height = NODE_HEIGHT
    if node.badges:
        width = max(width, _badges_width(node.badges) + 12)
        height += BADGE_HEIGHT + 2
    return max(width, 36.0), height


def _badges_width(badges: list[str]) -> float:
    return sum(text_width(b, BADGE_FONT) + 8 for b in badges) + 3 * (len(badges) - 1)


@dataclass
class Placed:
    """A box in physical coordinates (x, y of the top-left corner)."""

    x: float
    y: float
    w: float
    h: float


@dataclass
class Segment:
    """A piece of an edge inside one frame: from a node's or port's point to another's."""

    src: str  # the node that produced the tensor
    dst: str | None  # the node that reads it, when this segment ends at that node
    points: list[tuple[float, float]]
    shape: tuple
    label_here: bool = False  # this segment starts at the producing node: carries the shape label


@dataclass
class Layout:
    width: float
    height: float
    nodes: dict[str, Placed] = field(default_factory=dict)
    frames: dict[str, Placed] = field(default_factory=dict)
    segments: list[Segment] = field(default_factory=list)


@dataclass
class _Block:
    """A laid-out container before it is placed: sizes and positions relative to its own corner."""

    w: float
    h: float
    nodes: dict[str, Placed]
    frames: dict[str, Placed]
    segments: list[Segment]
    in_ports: dict[str, tuple[float, float]]  # external source node -> its entry point on the border
    out_ports: dict[str, tuple[float, float]]  # internal source node -> its exit point


def layout(graph: Graph, direction: str = "TB") -> Layout:
    """Place every node, frame and edge segment of `graph`; `direction` "TB" (top to bottom), "LR", or "U"
    (an encoder-decoder drawn as a U: see `u_layout`)."""
    if direction == "U":
        return u_layout(graph)
    if direction not in ("TB", "LR"):
        raise DrawError(f"direction must be 'TB', 'LR' or 'U', got {direction!r}")
    engine = _Engine(graph, direction)
    block = engine.container(None)
    return Layout(block.w, block.h, block.nodes, block.frames, block.segments)


class _Engine:
    def __init__(self, graph: Graph, direction: str):
        self.graph = graph
        self.tb = direction == "TB"
        self.gap = RANK_GAP if self.tb else RANK_GAP_LR
        self.chain: dict[str, list[str | None]] = {}  # node -> its frames, innermost first, then None
        for node in graph.nodes.values():
            chain, key = [], node.frame
            while key is not None:
                chain.append(key)
                key = graph.frames[key].parent
            self.chain[node.id] = chain + [None]

    # sizes in (across, along) for the abstract layout, physical (w, h) for boxes
    def _aa(self, w: float, h: float) -> tuple[float, float]:
        return (w, h) if self.tb else (h, w)

    def _item_in(self, node_id: str, container: str | None) -> str | None:
        """The item of `container` holding node `node_id` (itself, or a child frame), None if outside."""
        chain = self.chain[node_id]
        if container not in chain:
            return None
        index = chain.index(container)
        return node_id if index == 0 else chain[index - 1]

    def container(self, key: str | None) -> _Block:
        graph = self.graph
        items = list(graph.children.get(key, []))
        sub: dict[str, _Block] = {k: self.container(k) for k in items if k in graph.frames}
        size: dict[str, tuple[float, float]] = {}  # item -> (across, along)
        for item in items:
            if item in sub:
                size[item] = self._aa(sub[item].w, sub[item].h)
            else:
                size[item] = self._aa(*node_size(graph.nodes[item]))
        lifted, in_ports, out_ports = self.lift(key)
        for port in in_ports + out_ports:
            size[port] = (0.0, 0.0)

        order = in_ports + items + out_ports
        rank = self._ranks(order, lifted, in_ports, out_ports)
        def offset(item: str, src: str, leaving: bool) -> float:
            """Across the ranks, where an edge of `src` attaches to a sub-frame (its port), from its centre."""
            if item not in sub:
                return 0.0
            block = sub[item]
            x, y = (block.out_ports if leaving else block.in_ports)[src]
            return x - block.w / 2 if self.tb else y - block.h / 2

        positions, dummy_paths, along_of, rank_sizes = self._place(order, size, rank, lifted, offset)
        return self._assemble(key, items, sub, size, positions, dummy_paths, along_of, rank_sizes, lifted,
                              in_ports, out_ports, rank)

    def lift(self, key: str | None) -> tuple[list[tuple[str, str, str, str | None]], list[str], list[str]]:
        """The edges as this container sees them, between its items and its ports: (from item, to item,
        source node, target node or None), and the ports (in:SOURCE, out:SOURCE)."""
        graph = self.graph
        lifted: list[tuple[str, str, str, str | None]] = []
        in_ports: list[str] = []
        out_ports: list[str] = []
        for edge in graph.edges:
            a, b = self._item_in(edge.src, key), self._item_in(edge.dst, key)
            if a is None and b is None:
                continue
            if a is not None and b is not None:
                if a != b:
                    lifted.append((a, b, edge.src, edge.dst))
                continue
            if a is None:  # enters this container
                port = f"in:{edge.src}"
                if port not in in_ports:
                    in_ports.append(port)
                lifted.append((port, b, edge.src, edge.dst))
            else:  # leaves it
                port = f"out:{edge.src}"
                if port not in out_ports:
                    out_ports.append(port)
                lifted.append((a, port, edge.src, None))
        unique: dict[tuple[str, str, str], tuple[str, str, str, str | None]] = {}
        for a, b, src, dst in lifted:
            unique.setdefault((a, b, src), (a, b, src, dst))
        return list(unique.values()), in_ports, out_ports

    def _ranks(self, order: list[str], lifted, in_ports: list[str], out_ports: list[str]) -> dict[str, int]:
        preds: dict[str, list[str]] = {item: [] for item in order}
        for a, b, _, _ in lifted:
            if b in preds and a in preds and a != b:
                preds[b].append(a)
        rank: dict[str, int] = {}
        position = {item: i for i, item in enumerate(order)}

        def visit(item: str, stack: set[str]) -> int:
            if item in rank:
                return rank[item]
            stack.add(item)
            best = 0
            for p in preds[item]:
                if p in stack or position[p] > position[item] and p not in rank and item in preds.get(p, []):
                    continue  # a cycle (cannot happen in a forward pass's dataflow, but never loop)
                best = max(best, visit(p, stack) + 1)
            stack.discard(item)
            rank[item] = best
            return best

        for item in order:
            visit(item, set())
        if out_ports:
            last = max(rank[i] for i in order if i not in out_ports) + 1 if len(order) > len(out_ports) else 0
            for port in out_ports:
                rank[port] = max(last, rank[port])
        # Sources other than in-ports start right below the ports (rank 1) when the frame has ports;
        # items with no predecessor sink down next to their first consumer (a projection beside its block).
        succs: dict[str, list[str]] = {item: [] for item in order}
        for a, b, _, _ in lifted:
            if a in succs and b in succs:
                succs[a].append(b)
        for item in reversed(order):
            if item in in_ports or preds[item] or not succs[item]:
                continue
            rank[item] = max(rank[item], min(rank[s] for s in succs[item]) - 1)
        return rank

    def _place(self, order, size, rank, lifted, offset):
        """Order items within ranks, then give each an across position; returns positions (across centre),
        the dummy chain of each long edge, each rank's along offset and size."""
        n_ranks = max(rank.values()) + 1 if rank else 1
        layers: list[list[str]] = [[] for _ in range(n_ranks)]
        for item in order:
            layers[rank[item]].append(item)
        dummy_paths: dict[int, list[str]] = {}
        links: list[tuple[str, str, float, float]] = []  # (from, to, attachment offsets on each)
        for index, (a, b, src, _) in enumerate(lifted):
            ra, rb = rank[a], rank[b]
            off_a, off_b = offset(a, src, True), offset(b, src, False)
            if rb <= ra + 1:
                links.append((a, b, off_a, off_b))
                continue
            chain = [a]
            for r in range(ra + 1, rb):
                dummy = f"~{index}:{r}"
                layers[r].append(dummy)
                size[dummy] = (DUMMY_WIDTH, 0.0)
                rank[dummy] = r
                chain.append(dummy)
            chain.append(b)
            dummy_paths[index] = chain[1:-1]
            links.extend((x, y, off_a if x == a else 0.0, off_b if y == b else 0.0) for x, y in zip(chain, chain[1:]))
        # A projection on a residual's shortcut (every edge out of it a long one into an add) and the skip
        # lines themselves sit right of the block's own path, as the papers draw them.
        def beside(item: str) -> bool:
            outs = [(b, rank[b] - rank[item]) for a, b, _, _ in lifted if a == item]
            return bool(outs) and all(span > 1 and b in self.graph.nodes and self.graph.nodes[b].kind == "merge"
                                      and self.graph.nodes[b].label in ("+", "x") for b, span in outs)

        for r, layer in enumerate(layers):
            layers[r] = sorted(layer, key=lambda item: (item.startswith("~") or beside(item)))
        up: dict[str, list[str]] = {}
        down: dict[str, list[str]] = {}
        shift: dict[str, list[float]] = {}  # per item and neighbour (same order as up/down): port offsets
        for a, b, off_a, off_b in links:
            down.setdefault(a, []).append(b)
            up.setdefault(b, []).append(a)
            shift.setdefault(f"d:{a}", []).append(off_b - off_a)
            shift.setdefault(f"u:{b}", []).append(off_a - off_b)

        # Ordering: barycentres, a few sweeps.
        for sweep in range(4):
            rng = range(1, n_ranks) if sweep % 2 == 0 else range(n_ranks - 2, -1, -1)
            for r in rng:
                neighbours = up if sweep % 2 == 0 else down
                index_of = {item: i for layer in layers for i, item in enumerate(layer)}
                keyed = []
                for i, item in enumerate(layers[r]):
                    near = [index_of[x] for x in neighbours.get(item, []) if x in index_of]
                    keyed.append((sum(near) / len(near) if near else i, i, item))
                layers[r] = [item for _, _, item in sorted(keyed)]
        # A rank of one item and lines passing by (a chain of blocks, a dense block): the lines go right
        # of it, all on one side, as the papers draw skips.
        for r, layer in enumerate(layers):
            if sum(not item.startswith("~") for item in layer) <= 1:
                layers[r] = [i for i in layer if not i.startswith("~")] + [i for i in layer if i.startswith("~")]

        # Positions: pack, then pull each item to its neighbours' mean, down and up, a few times.
        pos: dict[str, float] = {}
        for layer in layers:
            x = 0.0
            for item in layer:
                pos[item] = x + size[item][0] / 2
                x += size[item][0] + ITEM_GAP
        for sweep in range(6):
            rng = range(n_ranks) if sweep % 2 == 0 else range(n_ranks - 1, -1, -1)
            neighbours = up if sweep % 2 == 0 else down
            side = "u:" if sweep % 2 == 0 else "d:"
            for r in rng:
                layer = layers[r]
                desired = []
                for item in layer:
                    # Real neighbours pull, lines through dummies follow: a chain stays straight and the
                    # long edges (skips, dense connections) bend around it. Where a line attaches to a
                    # frame's port, the frame moves so that the port lines up with the other end.
                    pairs = list(zip(neighbours.get(item, []), shift.get(side + item, [])))
                    near = [pos[x] + d for x, d in pairs if not x.startswith("~")] or [pos[x] + d for x, d in pairs]
                    desired.append(sum(near) / len(near) if near else pos[item])
                self._pack(layer, desired, size, pos)
        left = min((pos[i] - size[i][0] / 2 for i in pos), default=0.0)
        for item in pos:
            pos[item] -= left
        rank_sizes = [max((size[i][1] for i in layer), default=0.0) for layer in layers]
        along_of, along = [], 0.0
        for r in range(n_ranks):
            along_of.append(along)
            along += rank_sizes[r] + self.gap
        return pos, dummy_paths, along_of, rank_sizes

    @staticmethod
    def _pack(layer: list[str], desired: list[float], size, pos: dict[str, float]) -> None:
        """Place a rank's items in their order, as near their desired centres as no overlap allows, real
        items weighing ten times a dummy point: the least-squares placement under the order constraints
        (pool-adjacent-violators on the centres less each item's minimum offset from the first)."""
        if not layer:
            return
        offsets, offset = [], 0.0
        for k, item in enumerate(layer):
            if k:
                offset += size[layer[k - 1]][0] / 2 + ITEM_GAP + size[item][0] / 2
            offsets.append(offset)
        blocks: list[list[float]] = []  # [weighted sum, weight, count]
        for item, want, off in zip(layer, desired, offsets):
            weight = 1.0 if item.startswith("~") else 10.0
            blocks.append([(want - off) * weight, weight, 1])
            while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
                total, weight, count = blocks.pop()
                blocks[-1][0] += total
                blocks[-1][1] += weight
                blocks[-1][2] += count
        k = 0
        for total, weight, count in blocks:
            for _ in range(count):
                pos[layer[k]] = total / weight + offsets[k]
                k += 1

    def _assemble(self, key, items, sub, size, pos, dummy_paths, along_of, rank_sizes, lifted, in_ports,
                  out_ports, ranks) -> _Block:
        graph = self.graph
        framed = key is not None
        pad = FRAME_PAD if framed else 6.0
        header = HEADER if framed else 0.0
        across_extent = max((pos[i] + size[i][0] / 2 for i in pos), default=0.0)
        along_extent = along_of[-1] + rank_sizes[-1] if along_of else 0.0
        # physical offsets of the content inside this block
        if self.tb:
            off_x, off_y = pad, pad + header
            w, h = across_extent + 2 * pad, along_extent + 2 * pad + header
        else:
            off_x, off_y = pad, pad + header
            w, h = along_extent + 2 * pad, across_extent + 2 * pad + header
        if framed:
            caption = _caption(graph.frames[key])
            w = max(w, text_width(caption, 9.5) + 2 * pad)

        def box(item: str, rank: int) -> Placed:
            across, along = size[item]
            a0 = pos[item] - across / 2
            l0 = along_of[rank] + (rank_sizes[rank] - along) / 2
            if self.tb:
                return Placed(off_x + a0, off_y + l0, across, along)
            return Placed(off_x + l0, off_y + a0, along, across)

        nodes: dict[str, Placed] = {}
        frames: dict[str, Placed] = {}
        segments: list[Segment] = []
        item_box: dict[str, Placed] = {}
        for item in items:
            placed = box(item, ranks[item])
            item_box[item] = placed
            if item in sub:
                block = sub[item]
                frames[item] = placed
                for name, p in block.nodes.items():
                    nodes[name] = Placed(p.x + placed.x, p.y + placed.y, p.w, p.h)
                for name, p in block.frames.items():
                    frames[name] = Placed(p.x + placed.x, p.y + placed.y, p.w, p.h)
                for seg in block.segments:
                    segments.append(Segment(seg.src, seg.dst, [(x + placed.x, y + placed.y) for x, y in seg.points],
                                            seg.shape, seg.label_here))
            else:
                nodes[item] = placed

        # Ports of this block, on its border.
        in_points: dict[str, tuple[float, float]] = {}
        out_points: dict[str, tuple[float, float]] = {}
        for port in in_ports:
            c = off_x + pos[port] if self.tb else off_y + pos[port]
            in_points[port[3:]] = (c, 0.0) if self.tb else (0.0, c)
        for port in out_ports:
            c = off_x + pos[port] if self.tb else off_y + pos[port]
            out_points[port[4:]] = (c, h) if self.tb else (w, c)

        def point(item: str, src: str, leaving: bool) -> tuple[float, float]:
            """Where an edge leaves `item` (a port, a sub-frame's port, a node's bottom or right side) or,
            with leaving=False, where it enters it (top or left side)."""
            if leaving and item.startswith("in:"):
                return in_points[item[3:]]
            if not leaving and item.startswith("out:"):
                return out_points[item[4:]]
            p = item_box.get(item)
            if item in sub:
                x, y = (sub[item].out_ports if leaving else sub[item].in_ports)[src]
                return (p.x + x, p.y + y)
            along = p.h if self.tb else p.w
            along = along if leaving else 0.0
            return (p.x + p.w / 2, p.y + along) if self.tb else (p.x + along, p.y + p.h / 2)

        for index, (a, b, src, dst) in enumerate(lifted):
            points = [point(a, src, leaving=True)]
            for dummy in dummy_paths.get(index, []):
                r = ranks[dummy]
                c = pos[dummy]
                lo, hi = along_of[r], along_of[r] + rank_sizes[r]
                g = self.gap / 2 - 4
                if self.tb:
                    points += [(off_x + c, off_y + lo - g), (off_x + c, off_y + hi + g)]
                else:
                    points += [(off_x + lo - g, off_y + c), (off_x + hi + g, off_y + c)]
            points.append(point(b, src, leaving=False))
            target = dst if (b in graph.nodes) else None
            segments.append(Segment(src, target, _orthogonal(points, self.tb), _shape(graph, src, dst),
                                    label_here=(a == src)))
        return _Block(w, h, nodes, frames, segments, in_points, out_points)


def _caption(frame: Frame) -> str:
    if frame.repeat > 1:
        where = frame.stage or f"{frame.blocks[0]}..{frame.blocks[-1].rsplit('.', 1)[-1]}"
        return f"{where}: {frame.type_name} x {frame.repeat}"
    return f"{frame.path}: {frame.type_name}" if frame.path else frame.type_name


def _shape(graph: Graph, src: str, dst: str | None) -> tuple:
    for edge in graph.edges:
        if edge.src == src and (dst is None or edge.dst == dst):
            return edge.shape
    return graph.nodes[src].shape


def _orthogonal(points: list[tuple[float, float]], tb: bool) -> list[tuple[float, float]]:
    """Straight where aligned; a dogleg in the middle of each gap otherwise, so lines stay readable."""
    out = [points[0]]
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        # the bend sits near the target, leaving the source's shape label clear
        if tb and abs(x0 - x1) > 0.5:
            mid = y1 - 9 if y1 - y0 > 18 else (y0 + y1) / 2
            out += [(x0, mid), (x1, mid)]
        elif not tb and abs(y0 - y1) > 0.5:
            mid = x1 - 9 if x1 - x0 > 18 else (x0 + x1) / 2
            out += [(mid, y0), (mid, y1)]
        out.append((x1, y1))
    return out


U_GAP = 64.0  # between items of a row of the U (room for a shape label), and between its rows


def _level(graph: Graph, item: str, sub: dict[str, _Block]) -> int:
    """How many times the map has been halved at an item's output: log2 of its jump."""
    import math

    if item in sub:
        inside = [n for n in graph.nodes.values() if n.frame is not None and _within(graph, n.frame, item)]
        jumps = [n.jump for n in inside if n.jump]
        jump = jumps[-1] if jumps else 1.0
    else:
        jump = graph.nodes[item].jump or 1.0
    return max(0, round(math.log2(max(jump, 1.0))))


def _within(graph: Graph, key: str | None, frame: str) -> bool:
    while key is not None:
        if key == frame:
            return True
        key = graph.frames[key].parent
    return False


def u_layout(graph: Graph) -> Layout:
    """An encoder-decoder as a U (U-Net's Figure 1): one row per scale (log2 of the jump), the encoder's
    items left to right along each row and down a row at each pooling, the items at the coarsest scale along
    the bottom, the decoder back up a row at each upsampling; each skip runs straight across its row into
    the decoder. Frames inside are laid out left to right, so their inputs enter on their left side."""
    engine = _Engine(graph, "LR")
    items = list(graph.children.get(None, []))
    sub = {k: engine.container(k) for k in items if k in graph.frames}

    def box_size(item: str) -> tuple[float, float]:
        return (sub[item].w, sub[item].h) if item in sub else node_size(graph.nodes[item])

    levels = {item: _level(graph, item, sub) for item in items}
    deepest = max(levels.values(), default=0)
    turn = next((i for i, item in enumerate(items) if levels[item] == deepest), len(items))
    part: dict[str, str] = {}
    for i, item in enumerate(items):
        part[item] = "down" if i < turn else ("bottom" if levels[item] == deepest and
                                              all(levels[x] == deepest for x in items[turn:i + 1]) else "up")
    rows: dict[int, list[str]] = {}
    for item in items:
        rows.setdefault(levels[item], []).append(item)
    row_height = {level: max(box_size(i)[1] for i in row) for level, row in rows.items()}
    row_top, y = {}, 6.0
    for level in sorted(rows):
        row_top[level] = y
        y += row_height[level] + U_GAP
    height = y - U_GAP + 6.0

    placed: dict[str, Placed] = {}
    # down the left: each row starts under the previous row's last item
    centre = None
    for item in items:
        if part[item] == "up":
            continue
        w, h = box_size(item)
        level = levels[item]
        same_row = [x for x in placed if levels[x] == level and part[x] != "up"]
        if same_row:
            last = placed[same_row[-1]]
            x = last.x + last.w + U_GAP
        else:
            x = 6.0 if centre is None else centre - w / 2
        placed[item] = Placed(x, row_top[level] + (row_height[level] - h) / 2, w, h)
        centre = x + w / 2
    # back up the right: every decoder row starts at one x, right of the encoder and the bottom
    start_x = max((p.x + p.w for p in placed.values()), default=0.0) + 2 * U_GAP
    for item in items:
        if part[item] != "up":
            continue
        w, h = box_size(item)
        level = levels[item]
        same_row = [x for x in placed if levels[x] == level and part[x] == "up"]
        x = placed[same_row[-1]].x + placed[same_row[-1]].w + U_GAP if same_row else start_x
        placed[item] = Placed(x, row_top[level] + (row_height[level] - h) / 2, w, h)
    width = max((p.x + p.w for p in placed.values()), default=0.0) + 6.0

    result = Layout(width, height)
    for item, p in placed.items():
        if item in sub:
            block = sub[item]
            result.frames[item] = p
            result.nodes.update({n: Placed(q.x + p.x, q.y + p.y, q.w, q.h) for n, q in block.nodes.items()})
            result.frames.update({f: Placed(q.x + p.x, q.y + p.y, q.w, q.h) for f, q in block.frames.items()})
            result.segments += [Segment(s.src, s.dst, [(x + p.x, y + p.y) for x, y in s.points], s.shape,
                                        s.label_here) for s in block.segments]
        else:
            result.nodes[item] = p

    lifted, _, _ = engine.lift(None)
    lane: dict[str, int] = {}
    for a, b, src, dst in lifted:
        pa, pb = placed[a], placed[b]
        if a in sub:
            ox, oy = sub[a].out_ports[src]
            start, leaves = (pa.x + ox, pa.y + oy), "side"
        elif levels[b] > levels[a] and part[b] != "up":
            start, leaves = (pa.x + pa.w / 2, pa.y + pa.h), "down"
        elif levels[b] < levels[a] and part[a] == "up":
            start, leaves = (pa.x + pa.w / 2, pa.y), "up"
        else:
            start, leaves = (pa.x + pa.w, pa.y + pa.h / 2), "side"
        if b in sub:
            ix, iy = sub[b].in_ports[src]
            end, enters = (pb.x + ix, pb.y + iy), "side"
        elif levels[a] < levels[b] and leaves == "down":
            end, enters = (pb.x + pb.w / 2, pb.y), "top"
        elif leaves == "up":
            end, enters = (pb.x + pb.w / 2, pb.y + pb.h), "bottom"
        else:
            end, enters = (pb.x, pb.y + pb.h / 2), "side"
        if enters == "side":
            k = lane.setdefault(b, 0)
            lane[b] = k + 1
            lx = end[0] - 10 - 6 * k
            if lx < start[0]:  # back left, from the row below: up through the gap between the rows
                gap_y = row_top[levels[a]] - U_GAP / 2
                points = [start, (start[0] + 10, start[1]), (start[0] + 10, gap_y), (lx, gap_y), (lx, end[1]), end]
            elif abs(start[1] - end[1]) > 0.5:
                points = [start, (lx, start[1]), (lx, end[1]), end]
            else:
                points = [start, end]
        elif leaves == "side":
            points = [start, (end[0], start[1]), end]
        else:
            mid = (start[1] + end[1]) / 2
            points = [start, (start[0], mid), (end[0], mid), end] if abs(start[0] - end[0]) > 0.5 else [start, end]
        result.segments.append(Segment(src, dst if b in graph.nodes else None, points, _shape(graph, src, dst),
                                       label_here=(a == src)))
    return result
