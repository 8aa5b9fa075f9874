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

Children train on an executor (executor.py: this process, local processes, or Ray tasks), at most `workers` at
once whatever the executor, so the same search on any of them samples, trains and scores the same children. A
child whose worker is lost (its process or Ray node died, it was killed for memory) runs again, up to `retries`
times; then it is recorded as failed (reward 0, `error` saying why, not learnt from) and the search goes on.

Resume is exact: the state (controller, Adam, baseline, samples with rewards, random states) is saved after
every child, the samples of a round are drawn before any of them trains, and the controller updates only on a
complete round; so a search stopped anywhere and resumed (with the same or a larger budget) draws and trains
exactly what the uninterrupted search would. The test split is never looked at.
"""
from __future__ import annotations

import json
import random
import shutil
import tempfile
import time
from concurrent.futures import FIRST_COMPLETED, Future, wait
from pathlib import Path

import torch
from rich.console import Console

from ..errors import Interrupted, SpecError, TrainingDivergedError
from ..runtime import use_threads
from .config import SearchConfig, SearchResult, prepare_folder
from .controller import Controller, ReinforceUpdater
from .enas import run_enas
from .executor import Executor
from .folder import SearchFolder, best_row, plot_rewards
from .spec import save_spec, spec_key

# A child whose worker was lost on every run it got (`retries` + 1): reward 0, and this prefix on its error. The
# controller does not learn from it (the machine failed, not the architecture).
FAILED = "failed: "


def search(config: SearchConfig, out: str | Path, resume: bool = False, *,
           console: Console | None = None) -> SearchResult:
    """Run the search `config` into the folder `out` (see folder.py for its files), or with resume=True continue
    the search saved there. The method decides how: "reinforce", "random" or "enas"."""
    console = console or Console()
    threads = use_threads(config.threads)
    console.print(f"{config.method} search: {threads}" + (f", {config.child_threads()} a child" if config.workers > 1
                                                          or config.executor == "ray" else ""),
                  highlight=False, soft_wrap=True)
    try:
        if config.method == "enas":
            return run_enas(config, out, resume, console=console)
        return _sampling_search(config, Path(out), resume, console)
    except KeyboardInterrupt as err:
        raise Interrupted(f"interrupted; the search's state after its last finished step is saved: continue with "
                          f"`convzoo nas search --resume {out}`") from err


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
    continued from its last finished epoch; one that never finished an epoch is started again.

    With job["ship_files"] (a worker that may not see the search folder's disk: another machine), the child
    trains in a scratch folder of its own machine and returns its run folder's files as result["files"]
    ({relative path: bytes}) for the search to write."""
    if job.get("ship_files"):
        return _train_child_shipping_files(job)
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


def _train_child_shipping_files(job: dict) -> dict:
    out = job["train_config"]["out"]
    with tempfile.TemporaryDirectory(prefix="convzoo-child-") as scratch:
        run = Path(scratch) / Path(out).name
        result = train_child({**job, "ship_files": False, "train_config": {**job["train_config"], "out": str(run)}})
        config = run / "config.json"
        if config.is_file():  # the run folder says where it lives: the search folder's child, not the scratch copy
            saved = json.loads(config.read_text())
            saved.get("config", {})["out"] = out
            config.write_text(json.dumps(saved, indent=2) + "\n")
        result["files"] = {path.relative_to(run).as_posix(): path.read_bytes()
                           for path in sorted(run.rglob("*")) if path.is_file()}
    return result


# ---------------------------------------------------------------------------------------------------------
# The loop


def _sampling_search(config: SearchConfig, out: Path, resume: bool, console: Console) -> SearchResult:
    check_search_memory(config)  # the largest child the space holds, on every worker at once
    sampler = _ControllerSampler(config) if config.method == "reinforce" else _RandomSampler(config)
    # before any file is written: Ray may be missing, or its cluster out of reach
    executor = config.make_executor()
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
                      f"{executor.describe()}; folder {folder.path}"
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
            learnable = [sample for sample in batch if not _failed(sample)]
            if learnable:
                sampler.update(learnable)
            rounds += 1
            save()
    finally:
        executor.close()

    rows = _rows(samples, config.method)
    folder.write_leaderboard(rows)
    best = best_row([row for row in rows if not _failed(row)])  # a failed child is no candidate
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
                        data_bytes=facts.memory_bytes, explain=config.child_train_config(spec, "-").explain,
                        processes=config.workers if config.executor == "local" and config.workers > 1 else 1)
    guard = training_guard(plan, format_size=lambda size: f"{channels}x{size[0]}x{size[1]}")
    return guard.check(force=config.force)


def _new_sample(config: SearchConfig, sampler, index: int) -> dict:
    num_layers = config.num_layers(index)
    layers = sampler.sample(num_layers)
    sample = {"index": index, "num_layers": num_layers, "layers": layers, "spec": None, "key": None,
              "reward": None, "val_accuracy": None, "params": None, "macs": None, "train_seconds": None,
              "duplicate_of": None, "run": None, "attempts": 0, "error": None}
    try:
        sample["spec"] = config.space.make_spec(layers, config.input_size, meta={"method": config.method,
                                                                                 "index": index})
        sample["key"] = spec_key(sample["spec"])
    except SpecError as err:  # cannot be built at this input size: reward 0, nothing trained
        sample.update(reward=0.0, error=f"invalid: {err}")
    return sample


def _score(batch: list[dict], samples: list[dict], config: SearchConfig, folder: SearchFolder, executor: Executor,
           console: Console, save, started: float) -> None:
    """Give every sample of the round a reward: train the new architectures on the executor (at most
    `executor.workers` at once; a child whose worker is lost runs again, up to `config.retries` times), copy the
    stored reward to the architectures seen before. State and leaderboard are saved after each child."""
    trained = {s["key"]: s for s in samples if s["key"] is not None and s["duplicate_of"] is None
               and s["reward"] is not None and not _failed(s)}
    running: dict[Future, dict] = {}
    waiting: list[dict] = []  # duplicates of a child of this round still training

    def launch(sample: dict) -> None:
        child = folder.child(sample["index"])
        sample["run"] = str(child.relative_to(folder.path))
        sample["attempts"] = sample.get("attempts", 0) + 1
        job = {"train_config": config.child_train_config(sample["spec"], str(child)).to_dict(),
               "reward_epochs": config.reward_epochs, "ship_files": not executor.local_files}
        running[executor.submit(train_child, job)] = sample

    def record(future: Future) -> None:
        sample = running.pop(future)
        try:
            result = future.result()
        except Exception as err:
            reason = executor.lost(err)
            if reason is None:
                raise  # the child's own error: a bug, not a lost worker
            if sample["attempts"] <= config.retries:
                console.print(f"#{sample['index']}: its worker was lost ({reason}); running it again (retry "
                              f"{sample['attempts']} of {config.retries})", highlight=False, soft_wrap=True)
                launch(sample)
                return
            result = {"reward": 0.0, "val_accuracy": None, "params": None, "macs": None, "train_seconds": None,
                      "error": f"{FAILED}its worker was lost on all {sample['attempts']} runs; last: {reason}"}
        files = result.pop("files", None)
        if files is not None:
            folder.write_child(sample["index"], files)
        sample.update(result)
        if not _failed(sample):
            trained[sample["key"]] = sample
        copies = [d for d in waiting if d["duplicate_of"] == sample["index"]]
        for duplicate in copies:
            _copy_reward(duplicate, sample)
            waiting.remove(duplicate)
        save()
        for done in (sample, *copies):
            _report(done, samples, config, console, started)

    def record_finished(block: bool) -> None:
        """Record the children that have finished (with block, wait for one first)."""
        if block and running:
            wait(list(running), return_when=FIRST_COMPLETED)
        while finished := [f for f in running if f.done()]:  # a serial executor's child is done when submitted
            for future in finished:
                record(future)

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
        while len(running) >= executor.workers:
            record_finished(block=True)
        launch(sample)
        record_finished(block=False)
    while running:
        record_finished(block=True)


def _failed(sample: dict) -> bool:
    return (sample.get("error") or "").startswith(FAILED)


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


__all__ = ["FAILED", "search", "train_child"]
