"""The settings and the result of a search, and the folder check every method shares: the types `search.py`
(REINFORCE, random search) and `enas.py` (weight sharing) both use, so neither imports the other.

    from convzoo.nas.config import SearchConfig
    config = SearchConfig(method="reinforce", budget=64, epochs=3, workers=2, executor="ray", address="auto",
                          cpus_per_child=1, gpus_per_child=1)
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import RunFolderError
from ..runtime import choose_threads
from .executor import EXECUTORS, Executor, make_executor
from .folder import SearchFolder
from .space import SearchSpace

METHODS = ("reinforce", "random", "enas")
# Settings a resumed search may change: how long and where it runs, not what it searches.
RESUME_MAY_CHANGE = ("budget", "workers", "threads", "executor", "address", "cpus_per_child", "gpus_per_child",
                     "retries", "force")
# The child training settings SearchConfig owns; train_settings may add any other TrainConfig setting.
_CHILD_SETTINGS = ("epochs", "batch_size", "opt", "lr", "momentum", "weight_decay")


# Settings a method needs other than the dataclass's defaults (which are REINFORCE's and random search's).
# ENAS trains one set of shared weights for many epochs of small batches, on the digits at their own 8x8 with 4
# layers (a shared step is ~21 ms there, ~160 ms at 16x16 with 6): what benchmarks/bench_enas.py measured.
METHOD_DEFAULTS: dict[str, dict[str, Any]] = {
    "enas": {"input_size": (1, 8, 8), "start_layers": 4, "epochs": 60, "batch_size": 32, "entropy_weight": 1e-4,
             "budget": 20},
}


@dataclass
class SearchConfig:
    """Every setting of a search. Where Zoph & Le (2016) give a value it is the default, except the budget and
    the child's epochs, sized for a CPU (paper: 12,800 children of 50 epochs each)."""

    method: str = "reinforce"
    data: str = "digits"
    input_size: tuple[int, int, int] = (1, 16, 16)  # C, H, W of the children (and of the specs found)
    val_split: float = 0.1                           # held out of the training split; the reward's data
    space: SearchSpace = field(default_factory=SearchSpace)
    # the depth schedule: start_layers, then + add_layers every add_layers_every samples (paper: 6, 2, 1600)
    start_layers: int = 6
    add_layers: int = 2
    add_layers_every: int = 1600
    budget: int = 64                                 # sampled architectures (paper: 12,800)
    children_per_update: int = 8                     # m (paper: 8 child replicas per controller replica)
    # the controller (paper: 2-layer LSTM, 35 units, uniform +-0.08, Adam 6e-4)
    controller_hidden_size: int = 35
    controller_lstm_layers: int = 2
    controller_init_range: float = 0.08
    controller_lr: float = 6e-4
    baseline_decay: float = 0.95                     # the EMA baseline's decay (the paper gives none)
    entropy_weight: float = 0.0                      # 0: the paper's plain REINFORCE
    # child training (paper: 50 epochs, Nesterov momentum 0.9, lr 0.1, weight decay 1e-4; reward over last 5)
    epochs: int = 10
    reward_epochs: int = 5
    batch_size: int = 64
    opt: str = "sgd_nesterov"
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    train_settings: dict[str, Any] = field(default_factory=dict)  # other TrainConfig settings for every child
    # how it runs
    seed: int = 0
    workers: int = 1                                 # children training at once, whatever the executor
    threads: int | None = None  # CPU threads in all (local children share them); None: convzoo.runtime's policy
    executor: str = "local"                          # local: this process (1 worker) or processes; ray: Ray tasks
    address: str | None = None                       # ray: "auto", HOST:PORT, or None (RAY_ADDRESS, else a new
                                                     # local Ray instance)
    cpus_per_child: float = 1                        # ray: a child's CPU request (its threads: the whole CPUs)
    gpus_per_child: float = 0                        # ray: a child's GPU request (fractions share a GPU)
    retries: int = 2                                 # a child whose worker is lost runs again up to this often
    enas: dict[str, Any] = field(default_factory=dict)  # ENAS's own settings (enas.EnasSettings)
    force: bool = False                              # run even if the memory estimate exceeds what is available

    def __post_init__(self) -> None:
        if isinstance(self.space, dict):
            self.space = SearchSpace.from_dict(self.space)
        self.input_size = tuple(self.input_size)
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if not isinstance(self.budget, int) or self.budget < 1:
            raise ValueError(f"budget must be at least 1 (the number of architectures to sample), got "
                             f"{self.budget!r}")
        if len(self.input_size) != 3 or not all(isinstance(v, int) and v >= 1 for v in self.input_size):
            raise ValueError(f"input_size must be (channels, height, width), positive integers; got "
                             f"{self.input_size}")
        for name in ("start_layers", "add_layers_every", "children_per_update", "controller_hidden_size",
                     "controller_lstm_layers", "epochs", "reward_epochs", "batch_size", "workers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.add_layers < 0:
            raise ValueError(f"add_layers must not be negative, got {self.add_layers}")
        if self.reward_epochs > self.epochs and self.method != "enas":  # ENAS scores children by shared weights
            raise ValueError(f"reward_epochs ({self.reward_epochs}) cannot exceed the child's epochs "
                             f"({self.epochs}): the reward is the best validation accuracy of the last "
                             f"reward_epochs epochs")
        if not 0 <= self.baseline_decay < 1:
            raise ValueError(f"baseline_decay must be in [0, 1), got {self.baseline_decay}")
        if self.executor not in EXECUTORS:
            raise ValueError(f"executor must be one of {', '.join(EXECUTORS)}, got {self.executor!r}")
        if not isinstance(self.retries, int) or self.retries < 0:
            raise ValueError(f"retries must be 0 or more (the runs a lost child gets after its first), got "
                             f"{self.retries!r}")
        if not self.cpus_per_child > 0:
            raise ValueError(f"cpus_per_child must be positive, got {self.cpus_per_child}")
        if not self.gpus_per_child >= 0:
            raise ValueError(f"gpus_per_child must not be negative, got {self.gpus_per_child}")
        ray_only = {"address": None, "cpus_per_child": 1, "gpus_per_child": 0}
        given = [name for name, default in ray_only.items() if getattr(self, name) != default]
        if self.executor != "ray" and given:
            raise ValueError(f"{' and '.join(given)} {'apply' if len(given) > 1 else 'applies'} to the ray "
                             f"executor only: add executor='ray' (--executor ray), or leave it out")
        clash = sorted(set(self.train_settings) & {*_CHILD_SETTINGS, "model", "data", "input_size", "val_split",
                                                   "model_args", "seed", "out"})
        if clash:
            raise ValueError(f"train_settings may not set {', '.join(clash)}: the search sets them (its own "
                             f"fields, or per child)")
        self.child_train_config(spec={}, out="-")  # unknown or invalid training settings fail now, not in a child

    def child_threads(self) -> int:
        """Each child's CPU threads: on Ray, its CPU request (whole CPUs, one at least: Ray reserved them on the
        child's node); here, the search's (convzoo.runtime's policy, or `threads`) shared by the workers."""
        if self.executor == "ray":
            return max(1, int(self.cpus_per_child))
        return max(1, choose_threads(self.threads).threads // self.workers)

    def make_executor(self) -> Executor:
        """The executor the children train on (executor.py), with this search's resources."""
        return make_executor(self.executor, self.workers, self.child_threads(), cpus_per_child=self.cpus_per_child,
                             gpus_per_child=self.gpus_per_child, address=self.address)

    def num_layers(self, index: int) -> int:
        """The depth of the `index`-th sampled architecture (the depth schedule)."""
        return self.start_layers + self.add_layers * (index // self.add_layers_every)

    def child_train_config(self, spec: dict, out: str):
        from ..training import TrainConfig

        return TrainConfig.from_dict({
            "model": "nas", "data": self.data, "input_size": list(self.input_size[1:]), "val_split": self.val_split,
            "model_args": {"spec": spec}, "seed": self.seed, "threads": self.child_threads(), "out": out,
            "force": self.force,
            # fixed, not timed per run (training/speed.py): a reward must depend on the architecture, not on how
            # busy the machine was when the engine timed the layouts
            "amp": False, "channels_last": False,
            # a child is scored, not looked at: no explain/ gallery (it took most of a small child's time; the
            # user retrains the best spec, whose run draws one). train_settings={"explain": True} asks for it.
            "explain": False,
            **{name: getattr(self, name) for name in _CHILD_SETTINGS}, **self.train_settings})

    def to_dict(self) -> dict:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["space"] = self.space.to_dict()
        values["input_size"] = list(self.input_size)
        return values

    @classmethod
    def from_dict(cls, values: dict) -> SearchConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown search settings: {', '.join(unknown)}")
        return cls(**values)

    @classmethod
    def for_method(cls, values: dict) -> SearchConfig:
        """A config from `values`, with the chosen method's defaults (METHOD_DEFAULTS) where `values` says
        nothing: what `convzoo nas search` builds."""
        method = values.get("method", cls.method)
        return cls.from_dict({**METHOD_DEFAULTS.get(method, {}), **values})


@dataclass
class SearchResult:
    """A finished search: its folder, its leaderboard rows (sampling order) and the best row (its "spec",
    "reward", "val_accuracy", "index"...; None if no architecture was scored)."""

    out: Path
    rows: list[dict]
    best: dict | None


def prepare_folder(config: SearchConfig, out: str | Path, resume: bool) -> SearchFolder:
    """The search folder, checked: a new search needs a folder without one; a resumed search needs the same
    settings (but RESUME_MAY_CHANGE). Raises before writing anything; then writes search.json."""
    folder = SearchFolder(out)
    if resume:
        saved = folder.read_config()
        given = config.to_dict()
        differing = [f"{key} (saved {saved.get(key)!r}, given {given.get(key)!r})"
                     for key in sorted(set(saved) | set(given))
                     if key not in RESUME_MAY_CHANGE and saved.get(key) != given.get(key)]
        if differing:
            raise RunFolderError(f"{str(folder.path)!r} holds another search: --resume continues a search with its "
                                 f"own settings (its search.json); only {', '.join(RESUME_MAY_CHANGE)} may change, "
                                 f"not: {'; '.join(differing)}. Nothing was written.")
    elif folder.holds_search():
        raise RunFolderError(f"{str(folder.path)!r} already holds a search: continue it with --resume "
                             f"{folder.path}, or choose another --out")
    folder.write_config(config.to_dict())
    return folder


__all__ = ["METHODS", "METHOD_DEFAULTS", "RESUME_MAY_CHANGE", "SearchConfig", "SearchResult", "prepare_folder"]
