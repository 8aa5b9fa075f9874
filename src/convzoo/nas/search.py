"""Architecture search by training every sampled child: Zoph & Le's REINFORCE, and random search over the same
space with the same child training and budget (the baseline a search must beat). ENAS lives in enas.py.

    from convzoo.nas import SearchConfig, search
    result = search(SearchConfig(method="reinforce", budget=64, epochs=3, workers=2), "runs/nas")
    result.best["spec"], result.best["reward"]

One round: draw m = `children_per_update` architectures (the controller's samples, or uniform ones), train each
child from scratch with the training engine (in parallel on the executor's workers), reward = (the highest
validation top-1 accuracy, as a fraction, over the child's last `reward_epochs` epochs) ** 3, then one
REINFORCE update of the controller from the m rewards. The depth starts at `start_layers` and grows by
`add_layers` every `add_layers_every` sampled architectures. A sample whose spec the engine cannot build (a
filter larger than its input after strides) gets reward 0, untrained: the controller learns to avoid it.
An architecture sampled before (same spec_key) is not trained again: it gets the stored reward and still
counts as a sample, for the controller and the budget.

Resume is exact: the state (controller, Adam, baseline, samples with rewards, random states) is saved after
every child, the samples of a round are drawn before any of them trains, and the controller updates only on a
complete round; so a search stopped anywhere and resumed (with the same or a larger budget) draws and trains
exactly what the uninterrupted search would. The test split is never looked at.
"""
from __future__ import annotations

import random
import shutil
import time
from concurrent.futures import Future, as_completed
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from ..errors import Interrupted, RunFolderError, SpecError, TrainingDivergedError
from ..runtime import choose_threads, use_threads
from .controller import Controller, ReinforceUpdater
from .executor import EXECUTORS, make_executor
from .folder import SearchFolder, best_row, plot_rewards
from .space import SearchSpace
from .spec import save_spec, spec_key

METHODS = ("reinforce", "random", "enas")
# Settings a resumed search may change: how long and where it runs, not what it searches.
RESUME_MAY_CHANGE = ("budget", "workers", "threads", "executor", "force")
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
    workers: int = 1
    threads: int | None = None  # CPU threads in all (children share them); None: convzoo.runtime's policy
    executor: str = "local"
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
        clash = sorted(set(self.train_settings) & {*_CHILD_SETTINGS, "model", "data", "input_size", "val_split",
                                                   "model_args", "seed", "out"})
        if clash:
            raise ValueError(f"train_settings may not set {', '.join(clash)}: the search sets them (its own "
                             f"fields, or per child)")
        self.child_train_config(spec={}, out="-")  # unknown or invalid training settings fail now, not in a child

    def child_threads(self) -> int:
        """Each child's CPU threads: the search's (convzoo.runtime's policy, or `threads`) shared by the workers."""
        return max(1, choose_threads(self.threads).threads // self.workers)

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


def search(config: SearchConfig, out: str | Path, resume: bool = False, *,
           console: Console | None = None) -> SearchResult:
    """Run the search `config` into the folder `out` (see folder.py for its files), or with resume=True continue
    the search saved there. The method decides how: "reinforce", "random" or "enas"."""
    console = console or Console()
    threads = use_threads(config.threads)
    console.print(f"{config.method} search: {threads}" + (f", {config.child_threads()} a child" if config.workers > 1
                                                          else ""), highlight=False, soft_wrap=True)
    try:
        if config.method == "enas":
            from .enas import run_enas

            return run_enas(config, out, resume, console=console)
        return _sampling_search(config, Path(out), resume, console)
    except KeyboardInterrupt as err:
        raise Interrupted(f"interrupted; the search's state after its last finished step is saved: continue with "
                          f"`convzoo nas search --resume {out}`") from err


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


# ---------------------------------------------------------------------------------------------------------
# The samplers: where the architectures come from, and what they learn from the rewards


class _ControllerSampler:
    """Zoph & Le's controller with its REINFORCE updater and the random stream of its samples."""

    method = "reinforce"

    def __init__(self, config: SearchConfig) -> None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)  # the initial weights from the seed alone
            self.controller = Controller(config.space, hidden_size=config.controller_hidden_size,
                                         lstm_layers=config.controller_lstm_layers,
                                         init_range=config.controller_init_range)
        self.updater = ReinforceUpdater(self.controller, lr=config.controller_lr,
                                        baseline_decay=config.baseline_decay, entropy_weight=config.entropy_weight)
        self.generator = torch.Generator().manual_seed(config.seed)

    def sample(self, num_layers: int) -> list[dict]:
        with torch.no_grad():
            return self.controller.sample(num_layers, generator=self.generator).layers

    def update(self, samples: list[dict]) -> dict:
        return self.updater.step([s["layers"] for s in samples], [s["reward"] for s in samples])

    def state_dict(self) -> dict:
        return {"updater": self.updater.state_dict(), "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.updater.load_state_dict(state["updater"])
        self.generator.set_state(state["generator"])


class _RandomSampler:
    """Uniform choices (each skip connection with probability 1/2): the baseline. It learns nothing."""

    method = "random"

    def __init__(self, config: SearchConfig) -> None:
        self.space = config.space
        self.rng = random.Random(config.seed)

    def sample(self, num_layers: int) -> list[dict]:
        return self.space.random_layers(num_layers, self.rng)

    def update(self, samples: list[dict]) -> dict:
        return {}

    def state_dict(self) -> dict:
        return {"rng": list(self.rng.getstate())}

    def load_state_dict(self, state: dict) -> None:
        version, internal, gauss = state["rng"]
        self.rng.setstate((version, tuple(internal), gauss))


# ---------------------------------------------------------------------------------------------------------
# Training a child (runs in a worker process: a top-level function of plain arguments)


def train_child(job: dict) -> dict:
    """Train one child with the engine and score it: the highest validation top-1 accuracy (percent) of the
    last `reward_epochs` epochs, and reward = (that / 100) ** 3. A run folder left by a killed search is
    continued from its last finished epoch; one that never finished an epoch is started again."""
    from ..analysis.summary import summary
    from ..registry import create_model
    from ..training import RunFolder, TrainConfig, train

    config = TrainConfig.from_dict(job["train_config"])
    run = RunFolder(config.out)
    resume = run.resume.is_file()
    if not resume and run.path.exists():
        shutil.rmtree(run.path)  # killed before its first epoch ended: nothing to keep
    started = time.perf_counter()
    try:
        result = train(config, resume=resume, console=Console(quiet=True))
    except TrainingDivergedError as err:
        return {"reward": 0.0, "val_accuracy": None, "train_seconds": round(time.perf_counter() - started, 2),
                "error": f"diverged: {err}"}
    last = [row["val_top1_accuracy"] for row in result.history[-job["reward_epochs"]:]]
    val_accuracy = max(last)
    spec = config.model_args["spec"]
    num_classes = len(run.read_config()["data"]["classes"])
    report = summary(create_model("nas", spec=spec, num_classes=num_classes, in_chans=spec["input_size"][0]),
                     input_size=tuple(spec["input_size"]), convention="conv_linear")
    return {"reward": (val_accuracy / 100.0) ** 3, "val_accuracy": val_accuracy,
            "train_seconds": result.test["train_seconds"], "params": report.total_params,
            "macs": report.total_macs, "error": None}


# ---------------------------------------------------------------------------------------------------------
# The loop


def _sampling_search(config: SearchConfig, out: Path, resume: bool, console: Console) -> SearchResult:
    check_search_memory(config)  # the largest child the space holds, on every worker at once
    sampler = _ControllerSampler(config) if config.method == "reinforce" else _RandomSampler(config)
    # before any file is written: Ray may be missing
    executor = make_executor(config.executor, config.workers, config.child_threads())
    try:
        folder = prepare_folder(config, out, resume)
        samples: list[dict] = []
        rounds = 0  # complete rounds of m samples, each followed by an update
        if resume and folder.state_tensors.is_file():
            state = folder.load_state()
            sampler.load_state_dict(state["sampler"])
            samples, rounds = state["samples"], state["rounds"]

        def save() -> None:
            folder.save_state({"method": config.method, "samples": samples, "rounds": rounds,
                               "sampler": sampler.state_dict()})
            folder.write_leaderboard(_rows(samples, config.method))

        m = config.children_per_update
        started = time.perf_counter()
        console.print(f"{config.method} search on {config.data} at {'x'.join(map(str, config.input_size))}: "
                      f"{config.budget} architectures, {m} a round, {config.epochs} epochs each, "
                      f"{executor.workers} worker(s); folder {folder.path}"
                      + (f"; resuming after {sum(s['reward'] is not None for s in samples)} scored" if resume
                         else ""), highlight=False, soft_wrap=True)
        while True:
            start = rounds * m
            drawn = False
            while len(samples) < min(start + m, config.budget):
                samples.append(_new_sample(config, sampler, len(samples)))
                drawn = True
            if drawn:
                save()  # the round's samples (and the random state after them) before any child trains
            batch = samples[start:start + m]
            if not batch:
                break
            _score(batch, samples, config, folder, executor, console, save, started)
            if len(batch) < m:
                break  # the budget ends mid-round: a larger budget on --resume completes it
            sampler.update(batch)
            rounds += 1
            save()
    finally:
        executor.close()

    rows = _rows(samples, config.method)
    folder.write_leaderboard(rows)
    best = best_row(rows)
    if best is not None and best["spec"] is not None:
        meta = {"method": config.method, "reward": best["reward"], "val_accuracy": best["val_accuracy"],
                "index": best["index"], "search": str(folder.path)}
        save_spec({**best["spec"], "meta": meta}, folder.best)
    plot_rewards({config.method: [row["reward"] for row in rows]}, folder.rewards_png,
                 title=f"{config.method} search on {config.data}")
    if best is not None:
        console.print(f"best of {len(rows)}: #{best['index']} reward {best['reward']:.4f} (validation accuracy "
                      f"{_percent(best['val_accuracy'])}); {folder.best}. Search accuracy is not final accuracy: "
                      f"retrain it with `convzoo train nas --spec {folder.best}`", highlight=False, soft_wrap=True)
    return SearchResult(out=folder.path, rows=rows, best=best)


def check_search_memory(config: SearchConfig):
    """The memory of the space's largest child (most filters, widest kernels, every skip, at the deepest depth
    the budget reaches) trained on each of the workers at once, checked against what the machine has: an
    absurd space (a layer of 10,000,000 filters) is refused before anything is written. Each child is checked
    again when it trains (the engine's own guard)."""
    from ..data.facts import source_facts
    from ..memory import TrainingPlan, training_guard
    from ..training.optim import optimizer_states

    facts = source_facts(config.data)
    depth = config.num_layers(config.budget - 1)
    try:
        spec = config.space.make_spec(config.space.largest_layers(depth, config.input_size), config.input_size)
    except SpecError:  # no child of the space can be built at this input size: none will train (each scores 0)
        return None
    channels = config.input_size[0]
    plan = TrainingPlan(model="nas", model_args={"spec": spec}, input_size=config.input_size,
                        batch_size=config.batch_size, num_classes=facts.num_classes,
                        optimizer_states=optimizer_states(config.opt, config.momentum), speed_trial=False, amp=False,
                        data_bytes=facts.memory_bytes,
                        processes=config.workers if config.executor == "local" and config.workers > 1 else 1)
    guard = training_guard(plan, format_size=lambda size: f"{channels}x{size[0]}x{size[1]}")
    return guard.check(force=config.force)


def _new_sample(config: SearchConfig, sampler, index: int) -> dict:
    num_layers = config.num_layers(index)
    layers = sampler.sample(num_layers)
    sample = {"index": index, "num_layers": num_layers, "layers": layers, "spec": None, "key": None,
              "reward": None, "val_accuracy": None, "params": None, "macs": None, "train_seconds": None,
              "duplicate_of": None, "run": None, "error": None}
    try:
        sample["spec"] = config.space.make_spec(layers, config.input_size, meta={"method": config.method,
                                                                                 "index": index})
        sample["key"] = spec_key(sample["spec"])
    except SpecError as err:  # cannot be built at this input size: reward 0, nothing trained
        sample.update(reward=0.0, error=f"invalid: {err}")
    return sample


def _score(batch: list[dict], samples: list[dict], config: SearchConfig, folder: SearchFolder, executor,
           console: Console, save, started: float) -> None:
    """Give every sample of the round a reward: train the new architectures on the executor, copy the stored
    reward to the architectures seen before. State and leaderboard are saved after each child."""
    trained = {s["key"]: s for s in samples if s["key"] is not None and s["duplicate_of"] is None
               and s["reward"] is not None}
    running: dict[Future, dict] = {}
    waiting: list[dict] = []  # duplicates of a child of this round still training

    def record(future: Future) -> None:
        sample = running.pop(future)
        sample.update(future.result())
        trained[sample["key"]] = sample
        copies = [d for d in waiting if d["duplicate_of"] == sample["index"]]
        for duplicate in copies:
            _copy_reward(duplicate, sample)
            waiting.remove(duplicate)
        save()
        for done in (sample, *copies):
            _report(done, samples, config, console, started)

    for sample in batch:
        if sample["reward"] is not None:
            continue
        original = trained.get(sample["key"])
        if original is not None:
            _copy_reward(sample, original)
            save()
            _report(sample, samples, config, console, started)
            continue
        first = next((s for s in running.values() if s["key"] == sample["key"]), None)
        if first is not None:
            sample["duplicate_of"] = first["index"]
            waiting.append(sample)
            continue
        child = folder.child(sample["index"])
        sample["run"] = str(child.relative_to(folder.path))
        job = {"train_config": config.child_train_config(sample["spec"], str(child)).to_dict(),
               "reward_epochs": config.reward_epochs}
        running[executor.submit(train_child, job)] = sample
        for future in [f for f in running if f.done()]:  # a serial executor's child: record it before the next
            record(future)
    for future in as_completed(list(running)):
        record(future)


def _copy_reward(sample: dict, original: dict) -> None:
    sample.update({key: original[key] for key in ("reward", "val_accuracy", "params", "macs", "error")},
                  duplicate_of=original["index"], train_seconds=0.0)


def _report(sample: dict, samples: list[dict], config: SearchConfig, console: Console, started: float) -> None:
    best = max((s["reward"] for s in samples if s["reward"] is not None), default=0.0)
    done = sum(s["reward"] is not None for s in samples)
    if sample["duplicate_of"] is not None:
        what = f"duplicate of #{sample['duplicate_of']}"
    elif sample["error"]:
        what = sample["error"].split("\n")[0][:100]
    else:
        what = f"{sample['train_seconds']:.1f} s"
    console.print(f"[{done}/{config.budget}] #{sample['index']} {sample['num_layers']} layers: val "
                  f"{_percent(sample['val_accuracy'])} reward {sample['reward']:.4f} (best {best:.4f}); {what}; "
                  f"{time.perf_counter() - started:.0f} s elapsed", highlight=False, soft_wrap=True)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}%"


def _rows(samples: list[dict], method: str) -> list[dict]:
    """The leaderboard: the scored samples, in sampling order."""
    return [{"method": method, **{k: v for k, v in s.items() if k != "layers"}}
            for s in samples if s["reward"] is not None]


__all__ = ["METHODS", "RESUME_MAY_CHANGE", "SearchConfig", "SearchResult", "prepare_folder", "search",
           "train_child"]
