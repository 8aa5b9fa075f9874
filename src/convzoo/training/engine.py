"""The training engine: one loop for every network and every task, readable top to bottom.

    from convzoo.training import TrainConfig, train
    result = train(TrainConfig(model="lenet5", data="digits", out="runs/lenet5-digits"))
    result.test["top1_accuracy"]      # a segmentation network's: result.test["miou"]

A run is: resolve the settings, load the data, build the network, the optimizer and the schedule (or restore
them from the run folder), then for each epoch train, validate, and checkpoint; at the end measure the best
checkpoint on the test split. The configuration is plain values (TrainConfig), written to config.json.

Reproducibility: every random generator is re-seeded at the start of each epoch from (seed, epoch, rank), so
an epoch's shuffling, augmentation and dropout depend on nothing that happened before it. With the weights,
optimizer and schedule state saved after every epoch, a resumed run therefore repeats exactly what the
uninterrupted run would have done (bit for bit on CPU). channels_last and bf16 autocast are chosen by timing
(training/speed.py); the choice is kept on resume and cached per machine and configuration, so repeated runs
of one configuration on one machine also train to the same weights.
"""
from __future__ import annotations

import math
import platform
import random
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from ..errors import InputSizeError, RunFolderError, TrainingDivergedError
from ..io import first_free_folder
from ..registry import create_model, default_input_size, model_card
from ..weights import read_state_dict
from . import distributed
from .checkpoint import RunFolder, describe_checkpoint, finite_or_none, save_checkpoint
from .metrics import plot_confusion_matrix, plot_learning_curves
from .optim import LRSchedule, build_optimizer
from .progress import EpochProgress, epoch_line
from .speed import (SpeedChoice, cache_key, cached_choice, choose_speed_options, combination_name,
                    remember_choice)
from .tasks import Task, build_task, check_data_for_task

# LeNet-5 reads 28x28 digits centred in a 32x32 field (LeCun et al. 1998, section III-A): its default border.
LENET_BORDER = 2


@dataclass
class TrainConfig:
    """Every setting of a run. The defaults are neutral (plain SGD with momentum, no augmentation); a recipe
    (see recipes.py) fills in a paper's values, and explicit settings override the recipe's."""

    model: str
    data: str = "digits"
    recipe: str | None = None
    task: str | None = None                     # None: the model card's (classification or segmentation)
    # the data as the network sees it
    input_size: tuple[int, int] | None = None   # (H, W); None: the card's (a NAS spec's)
    border: int | None = None                   # black pixels around the image; None: 2 for LeNet-5, else 0
    val_split: float = 0.1
    skip_bad: bool = False
    random_crop_padding: int = 0
    scale_jitter: tuple[float, float] | None = None  # shorter side in [a, b] x the input side, then a random crop
    hflip: bool = False
    pca_lighting: float = 0.0
    # the network
    model_args: dict[str, Any] = field(default_factory=dict)
    # optimisation
    epochs: int = 10
    batch_size: int = 32                        # per process: with N processes the global batch is N x this
    opt: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 0.0
    lr_scheduler: str = "constant"
    lr_step_size: int = 30
    lr_steps: tuple[int, ...] = ()
    lr_gamma: float = 0.1
    lr_warmup_epochs: float = 0.0
    lr_warmup_decay: float = 0.01
    lr_min: float = 0.0
    lr_patience: int = 5
    label_smoothing: float = 0.0
    clip_grad_norm: float | None = None
    # how it runs
    seed: int = 0
    amp: bool | None = None                     # bf16 autocast; None: measured (training/speed.py), or off
    channels_last: bool | None = None           # when deterministic; the same for channels_last
    deterministic: bool = False                 # torch.use_deterministic_algorithms
    device: str = "auto"
    workers: int = 0
    threads: int | None = None                  # CPU threads per process (torch.set_num_threads); None: torch's
    explain: bool = True                        # write the explain/ gallery at the end (convzoo.explain)
    out: str | None = None

    def __post_init__(self) -> None:
        for name in ("input_size", "scale_jitter", "lr_steps"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, tuple(value))
        if self.epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.clip_grad_norm is not None and self.clip_grad_norm <= 0:
            raise ValueError(f"clip_grad_norm must be positive, got {self.clip_grad_norm}")

    def to_dict(self) -> dict:
        values = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown training settings: {', '.join(unknown)}")
        return cls(**values)


@dataclass
class TrainResult:
    out: Path
    history: list[dict]
    best_epoch: int
    test: dict  # the best checkpoint's metrics on the test split (the validation split if there is no test)


# Settings a resumed run may change: they alter how it runs, never what it computes.
RESUME_MAY_CHANGE = ("epochs", "device", "workers", "threads", "explain", "out")


def train(config: TrainConfig, *, resume: bool = False, console: Console | None = None) -> TrainResult:
    """Train `config.model` on `config.data`, writing the run folder `config.out`. With resume=True, continue
    the run in `config.out` from its last completed epoch (its settings must be the saved ones, but for
    RESUME_MAY_CHANGE)."""
    console = console or Console()
    ctx = distributed.setup(config.device)
    try:
        run = set_up(config, resume=resume, ctx=ctx, console=console)
        try:
            for epoch in range(run.start_epoch, config.epochs):
                train_metrics, progress = train_one_epoch(run, epoch)
                val_metrics = validate(run)
                is_best = record_epoch(run, epoch, train_metrics, val_metrics, progress)
                save_epoch(run, val_metrics, is_best)
        finally:
            plot_curves(run)
        result = finish(run)
        explain_run(run)
        return result
    finally:
        distributed.teardown(ctx)


@dataclass
class Run:
    """Everything a run holds while it runs: what set_up built, and where the epochs stand. The epoch steps read
    and update it; resume_state() is the part that survives a restart."""

    config: TrainConfig
    ctx: distributed.Distributed
    console: Console
    card: Any
    folder: RunFolder
    input_size: tuple[int, int, int]
    border: int
    data: Any  # DataBundle
    train_sampler: DistributedSampler
    train_loader: DataLoader
    val_loader: DataLoader
    test_loader: DataLoader
    test_split: str
    network: nn.Module
    model: nn.Module  # the network, or its DistributedDataParallel wrapper
    task: Task
    speed: SpeedChoice
    optimizer: torch.optim.Optimizer
    schedule: LRSchedule
    start_epoch: int = 0
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    best_metric: float | None = None
    train_seconds: float = 0.0

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.speed.channels_last else torch.contiguous_format

    def resume_state(self, epoch: int) -> dict:
        """The state after `epoch` (1-based) epochs: all --resume needs to repeat the rest exactly."""
        return {"format": 1, "epoch": epoch, "model": self.network.state_dict(),
                "optimizer": self.optimizer.state_dict(), "schedule": self.schedule.state_dict(),
                "history": self.history, "best_epoch": self.best_epoch, "best_metric": self.best_metric,
                "train_seconds": self.train_seconds, "classes": list(self.data.classes),
                "speed": {"channels_last": self.speed.channels_last, "amp": self.speed.amp}}

    def restore(self, state: dict) -> None:
        self.network.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.start_epoch, self.history = state["epoch"], list(state["history"])
        self.best_epoch, self.best_metric = state["best_epoch"], state["best_metric"]
        self.train_seconds = state["train_seconds"]


# --- setting up


def set_up(config: TrainConfig, *, resume: bool, ctx: distributed.Distributed, console: Console) -> Run:
    """Resolve the settings, load the data, build the network, the task, the optimizer and the schedule, and
    restore them from the run folder when resuming; write config.json and say what the run is."""
    if config.deterministic:  # only when asked: the call imports torch's compiler stack (1-2 s)
        torch.use_deterministic_algorithms(True)
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    card = model_card(config.model)
    task_name = config.task or card.task
    if task_name != card.task:
        raise ValueError(f"{card.name} is a {card.task} network; it cannot be trained for {task_name}")
    input_size, border = _input_geometry(config, card)

    folder = RunFolder(config.out or _default_out(config))
    state = folder.load_resume_state() if resume else None
    if resume:
        check_resume_settings(config, folder)
    if not resume and folder.holds_run():
        raise RunFolderError(f"{str(folder.path)!r} already holds a run: continue it with --resume "
                             f"{folder.path}, or choose another --out")
    ctx.barrier()  # every process has looked at the folder before rank 0 writes into it

    check_data_for_task(task_name, config.data, card.name)
    data = _load_data(config, input_size, border)
    if state is not None:
        data.check_classes(state["classes"])
    train_sampler, train_loader, val_loader, test_loader = _loaders(data, config, ctx)

    network = _build_network(config, card.name, data, input_size, ctx)
    task = build_task(task_name, data.classes, config.label_smoothing, aux_weight=getattr(network, "aux_weight", 0.0))
    speed = _speed_choice(network, task, train_loader, config, state, ctx)
    network = network.to(memory_format=torch.channels_last if speed.channels_last else torch.contiguous_format)
    optimizer = build_optimizer(network.parameters(), config.opt, config.lr, config.momentum, config.weight_decay)
    schedule = _build_schedule(optimizer, config, len(train_loader), task)
    model = network
    if ctx.enabled:
        model = nn.parallel.DistributedDataParallel(
            network, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)
    run = Run(config=config, ctx=ctx, console=console, card=card, folder=folder, input_size=input_size,
              border=border, data=data, train_sampler=train_sampler, train_loader=train_loader,
              val_loader=val_loader, test_loader=test_loader,
              test_split="test" if data.test is not None else "val", network=network, model=model, task=task,
              speed=speed, optimizer=optimizer, schedule=schedule)
    if state is not None:
        run.restore(state)
    if ctx.is_main:
        _write_config(run)
        _announce(run, resuming=state is not None)
    return run


def _input_geometry(config: TrainConfig, card) -> tuple[tuple[int, int, int], int]:
    """The input size the network trains at (the card's, a NAS spec's, or --input-size) and the border."""
    meant_for = default_input_size(card.name, config.model_args)
    height, width = config.input_size or meant_for[1:]
    border = config.border if config.border is not None else (LENET_BORDER if card.family == "lenet" else 0)
    return (meant_for[0], int(height), int(width)), border


def _load_data(config: TrainConfig, input_size: tuple[int, int, int], border: int):
    from ..data import Augment, load_data

    augment = Augment(
        random_crop_padding=config.random_crop_padding, hflip=config.hflip, pca_lighting=config.pca_lighting,
        random_resized_scale=None if config.scale_jitter is None else
        tuple(round(s * (min(input_size[1:]) - 2 * border)) for s in config.scale_jitter))
    return load_data(config.data, input_size, val_split=config.val_split, seed=config.seed,
                     augment=None if augment == Augment() else augment, skip_bad=config.skip_bad, border=border)


def _loaders(data, config: TrainConfig, ctx: distributed.Distributed):
    train_sampler = DistributedSampler(data.train, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True,
                                       seed=config.seed)
    # Full batches only (batch norm cannot train on a batch of one), unless the data is smaller than a batch.
    drop_last = len(train_sampler) >= config.batch_size
    train_loader = DataLoader(data.train, batch_size=config.batch_size, sampler=train_sampler,
                              num_workers=config.workers, drop_last=drop_last)
    val_loader = _eval_loader(data.val, config, ctx)
    test_loader = _eval_loader(data.test, config, ctx) if data.test is not None else val_loader
    return train_sampler, train_loader, val_loader, test_loader


def _build_network(config: TrainConfig, name: str, data, input_size: tuple[int, int, int],
                   ctx: distributed.Distributed) -> nn.Module:
    torch.manual_seed(config.seed)  # the same initial weights in every process and every repeat
    try:
        network = create_model(config.model, num_classes=len(data.classes), in_chans=input_size[0],
                               **config.model_args)
    except TypeError as err:  # a --model-arg the network does not take
        raise ValueError(f"{config.model} does not take the arguments {config.model_args}: {err}") from err
    _check_input_fits(network, name, input_size)
    return network.to(ctx.device)


def _build_schedule(optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int,
                    task: Task) -> LRSchedule:
    return LRSchedule(optimizer, config.lr_scheduler, epochs=config.epochs, steps_per_epoch=steps_per_epoch,
                      step_size=config.lr_step_size, milestones=config.lr_steps, gamma=config.lr_gamma,
                      warmup_epochs=config.lr_warmup_epochs, warmup_decay=config.lr_warmup_decay,
                      min_lr=config.lr_min, patience=config.lr_patience, higher_is_better=task.higher_is_better)


def _write_config(run: Run) -> None:
    config, ctx = run.config, run.ctx
    run.folder.write_config({
        "config": {**config.to_dict(), "out": str(run.folder.path)},
        "resolved": {"task": run.task.name, "input_size": list(run.input_size), "border": run.border,
                     "device": str(ctx.device), "processes": ctx.world_size,
                     "global_batch_size": config.batch_size * ctx.world_size,
                     "steps_per_epoch": len(run.train_loader), "speed": run.speed.to_dict()},
        "data": run.data.describe(), "versions": _versions()})


def _announce(run: Run, *, resuming: bool) -> None:
    config, data, speed = run.config, run.data, run.speed
    run.console.print(
        f"{'resuming' if resuming else 'training'} {run.card.name} "
        f"({sum(p.numel() for p in run.network.parameters()):,} parameters) on {config.data}: {len(data.train)} "
        f"train / {len(data.val)} val / {len(data.test) if data.test is not None else 0} test images at "
        f"{'x'.join(map(str, run.input_size))}, {len(data.classes)} classes; recipe {config.recipe or 'none'}; "
        f"{combination_name(speed.channels_last, speed.amp)} ({speed.how}); "
        f"{run.ctx.device.type} x{run.ctx.world_size}; run folder {run.folder.path}"
        + (f"; skipped {len(data.skipped)} unreadable images (listed in config.json)" if data.skipped else ""),
        highlight=False, soft_wrap=True)


def check_resume_settings(config: TrainConfig, folder: RunFolder | str | Path) -> None:
    """Refuse to resume a run under other settings than its own (config.json): the rest of the run would not be
    the run that was started. Only RESUME_MAY_CHANGE may differ."""
    folder = folder if isinstance(folder, RunFolder) else RunFolder(folder)
    saved = folder.read_config()["config"]
    if config.model != saved["model"]:
        raise RunFolderError(f"{folder.path} is a run of {saved['model']}, not {config.model}")
    given = TrainConfig.from_dict(saved).to_dict()  # the saved settings with today's defaults filled in
    changed = sorted(k for k, v in config.to_dict().items() if k not in RESUME_MAY_CHANGE and given.get(k) != v)
    if changed:
        raise RunFolderError(f"--resume continues a run with its own settings ({folder.path}/config.json); only "
                             f"--epochs, --device, --workers, --threads and --no-explain may change, not: {', '.join(changed)}")


def resumed_config(folder: str | Path, model: str | None = None, **changes: Any) -> TrainConfig:
    """The settings of the run in `folder` (its config.json), with `changes` (which train() then checks: only
    RESUME_MAY_CHANGE may differ). `model`, when given, must be the run's."""
    saved = RunFolder(folder).read_config()["config"]
    if model and model != saved["model"]:
        raise RunFolderError(f"{folder} is a run of {saved['model']}, not {model}")
    return TrainConfig.from_dict({**saved, **changes, "out": str(folder)})


# --- one epoch


def train_one_epoch(run: Run, epoch: int) -> tuple[dict, EpochProgress]:
    """One pass over the training split: re-seed from (seed, epoch, rank), then a step a batch. Returns the
    epoch's training metrics (summed over the processes) and its progress (time, images per second)."""
    config, ctx, task, loader = run.config, run.ctx, run.task, run.train_loader
    _seed_everything(config.seed, epoch, ctx.rank)
    run.train_sampler.set_epoch(epoch)
    run.model.train()
    meter = task.meter()
    with EpochProgress(run.console, epoch, config.epochs, len(loader), ctx.is_main) as progress:
        for step_in_epoch, (images, targets) in enumerate(loader):
            step = epoch * len(loader) + step_in_epoch
            run.schedule.set_step(step)
            images = images.to(ctx.device, memory_format=run.memory_format, non_blocking=True)
            targets = targets.to(ctx.device, non_blocking=True)
            outputs, loss_value = _training_step(run, images, targets)
            if not math.isfinite(loss_value):
                raise TrainingDivergedError(_diverged_message(
                    f"the loss became {loss_value}", epoch, step_in_epoch, len(loader), step, run))
            meter.update(outputs, targets)
            progress.advance(len(images), loss_value, task.running_score(meter))
    run.train_seconds += progress.seconds
    if not all(bool(p.isfinite().all()) for p in run.network.parameters()):
        # A finite loss whose last update overflowed: never checkpoint weights that are not numbers.
        raise TrainingDivergedError(_diverged_message(
            "the weights became infinite or NaN", epoch, len(loader) - 1, len(loader), step, run))
    meter.sum_across(ctx.sum)
    return meter.compute(task.classes), progress


def _training_step(run: Run, images: torch.Tensor, targets: torch.Tensor) -> tuple[Any, float]:
    """Forward, loss, backward, update. Returns the outputs and the loss (averaged over the processes); a loss
    that is not finite returns before any update."""
    with torch.autocast(run.ctx.device.type, dtype=torch.bfloat16, enabled=run.speed.amp):
        outputs = run.model(images)
    loss = run.task.loss(outputs, targets)
    loss_value = float(run.ctx.sum(loss.detach())) / run.ctx.world_size
    if not math.isfinite(loss_value):
        return outputs, loss_value
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if run.config.clip_grad_norm is not None:
        nn.utils.clip_grad_norm_(run.network.parameters(), run.config.clip_grad_norm)
    run.optimizer.step()
    return outputs, loss_value


def validate(run: Run) -> dict:
    """The validation split's metrics, in float32 whatever the training's precision: the figures `convzoo
    eval` repeats. Every process first takes rank 0's batch-norm statistics."""
    _sync_buffers(run.network, run.ctx)
    return evaluate(run.network, run.val_loader, run.task, ctx=run.ctx, autocast=False,
                    channels_last=run.speed.channels_last)


def record_epoch(run: Run, epoch: int, train_metrics: dict, val_metrics: dict, progress: EpochProgress) -> bool:
    """Tell the schedule the validation metric, add the epoch's row to the history; returns whether it is the
    best epoch so far. Ties go to the later epoch: the same validation score after more training (and, under a
    decaying schedule, at a smaller learning rate)."""
    task = run.task
    metric = val_metrics[task.primary_metric]
    if metric is None:  # no class occurs in the split (an mIoU of nothing): the worst score
        metric = -math.inf if task.higher_is_better else math.inf
    run.schedule.end_epoch(metric)
    is_best = run.best_metric is None or (metric >= run.best_metric if task.higher_is_better
                                          else metric <= run.best_metric)
    if is_best:
        run.best_epoch, run.best_metric = epoch + 1, metric
    run.history.append(_epoch_row(epoch, run.optimizer, task, train_metrics, val_metrics, progress, run.ctx))
    return is_best


def save_epoch(run: Run, val_metrics: dict, is_best: bool) -> None:
    """The checkpoint step (rank 0): last.safetensors, best.safetensors when it is the best epoch, the resume
    state, metrics.csv, and the epoch's line."""
    if not run.ctx.is_main:
        return
    epoch = run.history[-1]["epoch"]
    description = describe_checkpoint(run.network.model_args, run.task.name, run.data.describe(), epoch,
                                      {f"val_{k}": v for k, v in val_metrics.items()})
    save_checkpoint(run.network, run.folder.last, description)
    if is_best:
        save_checkpoint(run.network, run.folder.best, description)
    run.folder.save_resume_state(run.resume_state(epoch))
    run.folder.write_metrics(run.history)
    run.console.print(epoch_line(run.history[-1], run.config.epochs, is_best, run.task.epoch_text(run.history[-1])),
                      highlight=False, soft_wrap=True)


# --- the end


def plot_curves(run: Run) -> None:
    if run.ctx.is_main and run.history:
        plot_learning_curves(run.history, run.folder.curves, title=f"{run.card.name} on {run.config.data}",
                             metric=run.task.primary_metric, metric_label=run.task.curve_label)


def finish(run: Run) -> TrainResult:
    """Measure the best checkpoint on the test split (the validation split if there is none); write
    results.json and the confusion matrix."""
    ctx, task, folder = run.ctx, run.task, run.folder
    ctx.barrier()  # rank 0 has written best.safetensors
    run.network.load_state_dict(read_state_dict(folder.best))
    test_metrics = evaluate(run.network, run.test_loader, task, ctx=ctx, autocast=False,
                            channels_last=run.speed.channels_last)
    results = {"model": run.card.name, "data": run.config.data, "split": run.test_split,
               "checkpoint": folder.best.name, "epoch": run.best_epoch,
               **{k: finite_or_none(v) for k, v in test_metrics.items()},
               "accuracy_unit": task.unit, "train_seconds": round(run.train_seconds, 2)}
    if ctx.is_main:
        folder.write_results(results)
        plot_confusion_matrix(test_metrics["confusion_matrix"], task.classes, folder.confusion,
                              title=f"{run.card.name}, {run.test_split} split (epoch {run.best_epoch})")
        run.console.print(f"{run.test_split}: {task.test_text(test_metrics)}, best epoch {run.best_epoch}; "
                          f"results in {folder.results}", highlight=False, soft_wrap=True)
    return TrainResult(out=folder.path, history=run.history, best_epoch=run.best_epoch, test=results)


def explain_run(run: Run) -> None:
    """The explain/ gallery: what the best checkpoint sees in a few test images (convzoo.explain.gallery)."""
    if not (run.ctx.is_main and run.config.explain):
        return
    from ..explain.gallery import write_gallery  # explain reads checkpoints: imported here, not above

    dataset = run.data.test if run.data.test is not None else run.data.val
    out = write_gallery(run.folder.path, dataset)
    run.console.print(f"explained: feature maps, filters, Grad-CAM, occlusion and the effective receptive field of "
                      f"a few {run.test_split} images in {out}", highlight=False, soft_wrap=True)


@torch.no_grad()
def evaluate(network: nn.Module, loader: DataLoader, task: Task, *, ctx: distributed.Distributed | None = None,
             autocast: bool = False, channels_last: bool = False) -> dict:
    """The task's metrics of `network` on a loader's images. Under several processes each process measures
    its shard and the counts are summed, so every process gets the metrics of the whole split."""
    device = next(network.parameters()).device
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    network.eval()
    meter = task.meter()
    for images, targets in loader:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            outputs = network(images.to(device, memory_format=memory_format))
        meter.update(outputs, targets)
    if ctx is not None:
        meter.sum_across(ctx.sum)
    return meter.compute(task.classes)


def _speed_choice(network: nn.Module, task: Task, loader: DataLoader, config: TrainConfig, state: dict | None,
                  ctx: distributed.Distributed) -> SpeedChoice:
    """channels_last and bf16 autocast: as the user set them, as the resumed run had them, as this machine's
    cache has them for this configuration, or measured on the first batch (training/speed.py); under several
    processes the first one's choice holds for all."""
    if state is not None and "speed" in state:
        return SpeedChoice(channels_last=state["speed"]["channels_last"], amp=state["speed"]["amp"], how="resumed")
    if config.deterministic:  # a measurement's outcome varies from run to run; a deterministic run must not
        return SpeedChoice(channels_last=bool(config.channels_last), amp=bool(config.amp), how="set")
    images, targets = next(iter(loader))  # the shuffling and augmentation random state is re-seeded per epoch
    images, targets = images.to(ctx.device), targets.to(ctx.device)
    key = cache_key(network.model_args, images, task.name, config.channels_last, config.amp)
    choice = cached_choice(key)
    if choice is None:
        choice = choose_speed_options(network, task.loss, images, targets, channels_last=config.channels_last,
                                      amp=config.amp)
        if ctx.is_main and choice.how == "measured":
            remember_choice(key, choice)
    if ctx.enabled:
        flags = torch.tensor([int(choice.channels_last), int(choice.amp)] if ctx.is_main else [0, 0],
                             device=ctx.device)
        channels_last, amp = (bool(v) for v in ctx.sum(flags).tolist())
        choice = SpeedChoice(channels_last=channels_last, amp=amp, how=choice.how, step_ms=choice.step_ms)
    return choice


def _eval_loader(dataset: Dataset, config: TrainConfig, ctx: distributed.Distributed) -> DataLoader:
    # Each process takes every world_size-th image: no image counted twice, none left out.
    shard = Subset(dataset, range(ctx.rank, len(dataset), ctx.world_size)) if ctx.enabled else dataset
    return DataLoader(shard, batch_size=config.batch_size, shuffle=False, num_workers=config.workers)


def _seed_everything(seed: int, epoch: int, rank: int) -> None:
    """Seed torch, numpy and Python's generators from (seed, epoch, rank) alone."""
    epoch_seed = int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0])
    torch.manual_seed(epoch_seed)
    np.random.seed(epoch_seed)
    random.seed(epoch_seed)


def _sync_buffers(network: nn.Module, ctx: distributed.Distributed) -> None:
    """Give every process rank 0's batch-norm statistics: after the last step each process updated its own from
    its own batch, and the checkpoint (written by rank 0) holds rank 0's."""
    if ctx.enabled:
        for buffer in network.buffers():
            torch.distributed.broadcast(buffer.data, src=0)


def _check_input_fits(network: nn.Module, name: str, input_size: tuple[int, int, int]) -> None:
    smallest = getattr(network, "min_input_size", model_card(name).min_input_size)
    if input_size[1] < smallest[0] or input_size[2] < smallest[1]:
        raise InputSizeError(f"{name} needs inputs of at least {smallest[0]}x{smallest[1]}; --input-size "
                             f"{input_size[1]}x{input_size[2]} is smaller")


def _epoch_row(epoch: int, optimizer: torch.optim.Optimizer, task: Task, train_metrics: dict, val_metrics: dict,
               progress: EpochProgress, ctx: distributed.Distributed) -> dict:
    row = {"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"]}
    for split, metrics in (("train", train_metrics), ("val", val_metrics)):
        for key in ("loss", *task.row_metrics):
            row[f"{split}_{key}"] = metrics[key]
    row["images_per_second"] = progress.images_per_second * ctx.world_size
    row["epoch_seconds"] = progress.seconds
    return row


def _diverged_message(what: str, epoch: int, step_in_epoch: int, steps: int, step: int, run: Run) -> str:
    where = (f"{what} at epoch {epoch + 1}, step {step_in_epoch + 1} of {steps} "
             f"(training step {step + 1} of the run); training stopped.")
    if run.history:
        kept = (f" The last good checkpoint is {run.folder.last} (epoch {run.history[-1]['epoch']}); continue from "
                f"it with --resume {run.folder.path} after lowering --lr or adding --clip-grad-norm.")
    else:
        kept = " No checkpoint was written (it diverged in the first epoch): lower --lr or add --clip-grad-norm."
    return where + kept


def _default_out(config: TrainConfig) -> str:
    data_name = config.data if config.data == "digits" else Path(config.data).expanduser().resolve().name
    return str(first_free_folder(Path("runs") / f"{config.model}-{data_name}", lambda p: RunFolder(p).holds_run()))


def _versions() -> dict:
    from .. import __version__

    return {"convzoo": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version()}

