"""The search folder: what every search (REINFORCE, random, ENAS) writes, so `convzoo nas show` reads any.

    DIR/search.json          the search's configuration (SearchConfig.to_dict())
    DIR/state.safetensors    everything to resume: tensors, with the rest of the state as JSON in the metadata
    DIR/state.json           the same JSON state, for reading (resume reads only state.safetensors: one file,
                             written atomically, so tensors and JSON can never come from different moments)
    DIR/leaderboard.csv/.json  one row per sampled architecture
    DIR/rewards.png          reward against sampled architecture, and the running best
    DIR/best.json            the best spec (a valid spec file)
    DIR/children/NNNN/       a child's training run folder (REINFORCE and random search)
"""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any, Sequence

import torch

from ..errors import RunFolderError
from ..io import atomic_write_bytes, atomic_write_text, read_json

STATE_FORMAT = "convzoo-nas-state"
_STATE_KEY = "convzoo_nas_state"
LEADERBOARD_COLUMNS = ("index", "method", "key", "num_layers", "reward", "val_accuracy", "params", "macs",
                       "train_seconds", "duplicate_of", "run", "attempts", "error", "spec")


class SearchFolder:
    """The files of one search, by name."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.config = self.path / "search.json"
        self.state_tensors = self.path / "state.safetensors"
        self.state_json = self.path / "state.json"
        self.leaderboard_csv = self.path / "leaderboard.csv"
        self.leaderboard_json = self.path / "leaderboard.json"
        self.rewards_png = self.path / "rewards.png"
        self.best = self.path / "best.json"
        self.children = self.path / "children"

    def holds_search(self) -> bool:
        return self.config.is_file() or self.state_tensors.is_file()

    def child(self, index: int) -> Path:
        return self.children / f"{index:04d}"

    def write_child(self, index: int, files: dict[str, bytes]) -> Path:
        """Write a child's run folder sent back by a worker that does not share this disk ({relative path:
        bytes}), each file atomically."""
        child = self.child(index)
        for name, data in files.items():
            target = (child / name).resolve()
            if not target.is_relative_to(child.resolve()):
                raise RunFolderError(f"a child's file {name!r} would land outside its run folder {str(child)!r}")
            atomic_write_bytes(target, data)
        return child

    def write_config(self, config: dict) -> None:
        atomic_write_text(self.config, json.dumps(config, indent=2) + "\n")

    def read_config(self) -> dict:
        if not self.config.is_file():
            raise RunFolderError(f"{str(self.path)!r} holds no search.json: it is not a convzoo search folder")
        return read_json(self.config, fix="restore it from a copy, or search anew into another --out")

    def save_state(self, state: dict) -> None:
        """`state`: nested dicts/lists of plain values and tensors (optimizer states included)."""
        from safetensors.torch import save

        tree, tensors = split_tensors(state)
        text = json.dumps({"format": STATE_FORMAT, "state": tree})
        atomic_write_bytes(self.state_tensors, save(tensors, metadata={_STATE_KEY: text}))
        atomic_write_text(self.state_json, json.dumps({"format": STATE_FORMAT, "state": tree}, indent=1) + "\n")

    def load_state(self) -> dict:
        from safetensors import SafetensorError, safe_open

        if not self.state_tensors.is_file():
            raise RunFolderError(f"nothing to resume in {str(self.path)!r}: it has no state.safetensors (the "
                                 f"search stopped before its first child finished, or this is not a search folder)")
        try:
            with safe_open(str(self.state_tensors), framework="pt") as f:
                text = (f.metadata() or {})[_STATE_KEY]
                tensors = {key: f.get_tensor(key) for key in f.keys()}
            saved = json.loads(text)
        except (SafetensorError, OSError, KeyError, ValueError) as err:
            raise RunFolderError(f"{str(self.state_tensors)!r} is not a readable search state (truncated or "
                                 f"corrupt?): {err}") from err
        if saved.get("format") != STATE_FORMAT:
            raise RunFolderError(f"{str(self.state_tensors)!r} is not a convzoo search state")
        return join_tensors(saved["state"], tensors)

    def write_leaderboard(self, rows: Sequence[dict]) -> None:
        """The whole table each time (rows in sampling order): JSON with the spec as an object, CSV with it as
        a JSON string."""
        rows = [{column: row.get(column) for column in LEADERBOARD_COLUMNS} for row in rows]
        atomic_write_text(self.leaderboard_json, json.dumps(rows, indent=1) + "\n")
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=LEADERBOARD_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: json.dumps(v, separators=(",", ":")) if k == "spec" else ("" if v is None else v)
                             for k, v in row.items()})
        atomic_write_text(self.leaderboard_csv, text.getvalue())

    def read_leaderboard(self) -> list[dict]:
        if not self.leaderboard_json.is_file():
            raise RunFolderError(f"{str(self.path)!r} holds no leaderboard.json: not a search folder, or no "
                                 f"child has finished yet")
        return json.loads(self.leaderboard_json.read_text())


def best_row(rows: Sequence[dict]) -> dict | None:
    """The row of the highest reward (the earliest of equals); None when no row has one."""
    scored = [row for row in rows if row.get("reward") is not None]
    return max(scored, key=lambda row: (row["reward"], -row["index"])) if scored else None


def plot_rewards(curves: dict[str, Sequence[float | None]], path: str | Path, title: str = "",
                 ylabel: str = "reward (validation accuracy cubed)") -> Path:
    """Reward against sampled architecture index, one colour per curve (dots: each architecture; line: the best
    so far), to a PNG. `curves`: label -> rewards in sampling order (None: not scored)."""
    from ..training.metrics import _pyplot, _save_figure

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for number, (label, rewards) in enumerate(curves.items()):
        color = f"C{number % 10}"
        xs = [i for i, r in enumerate(rewards) if r is not None]
        ys = [rewards[i] for i in xs]
        ax.plot(xs, ys, ".", color=color, alpha=0.45, markersize=5)
        best, running = -math.inf, []
        for y in ys:
            best = max(best, y)
            running.append(best)
        ax.plot(xs, running, "-", color=color, label=f"{label} (best {best:.4f})" if ys else label)
    ax.set_xlabel("sampled architecture")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return _save_figure(fig, path)


def split_tensors(tree: Any) -> tuple[Any, dict[str, torch.Tensor]]:
    """A nested state (dicts, lists, tuples, numbers, strings, tensors) as a JSON-able tree plus the tensors it
    referred to, by name. Dicts with keys other than strings (an optimizer's per-parameter state) keep their
    keys: they become {"__items__": [[key, value], ...]}."""
    tensors: dict[str, torch.Tensor] = {}

    def walk(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            name = f"t{len(tensors)}"  # numbered, not named after the path: keys may hold any character
            tensors[name] = value.detach().cpu().contiguous().clone()
            return {"__tensor__": name}
        if isinstance(value, dict):
            if all(isinstance(k, str) for k in value):
                return {k: walk(v) for k, v in value.items()}
            return {"__items__": [[k, walk(v)] for k, v in value.items()]}
        if isinstance(value, (list, tuple)):
            return [walk(v) for v in value]
        return value

    return walk(tree), tensors


def join_tensors(tree: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """The inverse of `split_tensors` (tuples come back as lists)."""
    if isinstance(tree, dict):
        if set(tree) == {"__tensor__"}:
            return tensors[tree["__tensor__"]]
        if set(tree) == {"__items__"}:
            return {k: join_tensors(v, tensors) for k, v in tree["__items__"]}
        return {k: join_tensors(v, tensors) for k, v in tree.items()}
    if isinstance(tree, list):
        return [join_tensors(v, tensors) for v in tree]
    return tree
