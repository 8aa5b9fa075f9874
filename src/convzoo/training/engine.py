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


def train(config: TrainConfig, *, resume: bool = False, console: Console | None = None) -> TrainResult:
    """Train `config.model` on `config.data`, writing the run folder `config.out`. With resume=True, continue
    the run in `config.out` from its last completed epoch."""
    from ..data import Augment, load_data

    console = console or Console()
    ctx = distributed.setup(config.device)
    try:
        if config.deterministic:  # only when asked: the call imports torch's compiler stack (1-2 s)
            torch.use_deterministic_algorithms(True)
        if config.threads is not None:
            torch.set_num_threads(config.threads)
        card = model_card(config.model)
        task_name = config.task or card.task
        if task_name != card.task:
            raise ValueError(f"{card.name} is a {card.task} network; it cannot be trained for {task_name}")
        meant_for = default_input_size(card.name, config.model_args)  # the card's, or e.g. a NAS spec's
        height, width = config.input_size or meant_for[1:]
        input_size = (meant_for[0], int(height), int(width))
        border = config.border if config.border is not None else (LENET_BORDER if card.family == "lenet" else 0)

        run = RunFolder(config.out or _default_out(config))
        state = run.load_resume_state() if resume else None
        if not resume and run.holds_run():
            raise RunFolderError(f"{str(run.path)!r} already holds a run: continue it with --resume "
                                 f"{run.path}, or choose another --out")
        ctx.barrier()  # every process has looked at the folder before rank 0 writes into it

        # --- data
        check_data_for_task(task_name, config.data, card.name)
        augment = Augment(
            random_crop_padding=config.random_crop_padding, hflip=config.hflip, pca_lighting=config.pca_lighting,
            random_resized_scale=None if config.scale_jitter is None else
            tuple(round(s * (min(input_size[1:]) - 2 * border)) for s in config.scale_jitter))
        no_augmentation = augment == Augment()
        data = load_data(config.data, input_size, val_split=config.val_split, seed=config.seed,
                         augment=None if no_augmentation else augment, skip_bad=config.skip_bad, border=border)
        if state is not None:
            data.check_classes(state["classes"])
        train_sampler = DistributedSampler(data.train, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True,
                                           seed=config.seed)
        # Full batches only (batch norm cannot train on a batch of one), unless the data is smaller than a batch.
        drop_last = len(train_sampler) >= config.batch_size
        train_loader = DataLoader(data.train, batch_size=config.batch_size, sampler=train_sampler,
                                  num_workers=config.workers, drop_last=drop_last)
        val_loader = _eval_loader(data.val, config, ctx)
        test_split = "test" if data.test is not None else "val"
        test_loader = _eval_loader(data.test, config, ctx) if data.test is not None else val_loader

        # --- network, task, optimizer, schedule
        torch.manual_seed(config.seed)  # the same initial weights in every process and every repeat
        try:
            network = create_model(config.model, num_classes=len(data.classes), in_chans=input_size[0],
                                   **config.model_args)
        except TypeError as err:  # a --model-arg the network does not take
            raise ValueError(f"{config.model} does not take the arguments {config.model_args}: {err}") from err
        _check_input_fits(network, card.name, input_size)
        network = network.to(ctx.device)
        task = build_task(task_name, data.classes, config.label_smoothing,
                          aux_weight=network.aux_weight)
        speed = _speed_choice(network, task, train_loader, config, state, ctx)
        memory_format = torch.channels_last if speed.channels_last else torch.contiguous_format
        network = network.to(memory_format=memory_format)
        optimizer = build_optimizer(network.parameters(), config.opt, config.lr, config.momentum,
                                    config.weight_decay)
        schedule = LRSchedule(optimizer, config.lr_scheduler, epochs=config.epochs,
                              steps_per_epoch=len(train_loader), step_size=config.lr_step_size,
                              milestones=config.lr_steps, gamma=config.lr_gamma,
                              warmup_epochs=config.lr_warmup_epochs, warmup_decay=config.lr_warmup_decay,
                              min_lr=config.lr_min, patience=config.lr_patience,
                              higher_is_better=task.higher_is_better)
        start_epoch, history, best_epoch, best_metric, train_seconds = 0, [], 0, None, 0.0
        if state is not None:
            network.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            schedule.load_state_dict(state["schedule"])
            start_epoch, history = state["epoch"], list(state["history"])
            best_epoch, best_metric, train_seconds = state["best_epoch"], state["best_metric"], state["train_seconds"]
        model = network
        if ctx.enabled:
            model = nn.parallel.DistributedDataParallel(
                network, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)

        data_description = data.describe()
        if ctx.is_main:
            run.write_config({"config": {**config.to_dict(), "out": str(run.path)},
                              "resolved": {"task": task.name, "input_size": list(input_size), "border": border,
                                           "device": str(ctx.device), "processes": ctx.world_size,
                                           "global_batch_size": config.batch_size * ctx.world_size,
                                           "steps_per_epoch": len(train_loader), "speed": speed.to_dict()},
                              "data": data_description, "versions": _versions()})
            console.print(
                f"{'resuming' if state else 'training'} {card.name} ({sum(p.numel() for p in network.parameters()):,}"
                f" parameters) on {config.data}: {len(data.train)} train / {len(data.val)} val / "
                f"{len(data.test) if data.test is not None else 0} test images at "
                f"{'x'.join(map(str, input_size))}, {len(data.classes)} classes; recipe {config.recipe or 'none'}; "
                f"{combination_name(speed.channels_last, speed.amp)} ({speed.how}); "
                f"{ctx.device.type} x{ctx.world_size}; run folder {run.path}"
                + (f"; skipped {len(data.skipped)} unreadable images (listed in config.json)" if data.skipped else ""),
                highlight=False, soft_wrap=True)

        # --- the epochs
        try:
            for epoch in range(start_epoch, config.epochs):
                _seed_everything(config.seed, epoch, ctx.rank)
                train_sampler.set_epoch(epoch)
                model.train()
                meter = task.meter()
                with EpochProgress(console, epoch, config.epochs, len(train_loader), ctx.is_main) as progress:
                    for step_in_epoch, (images, targets) in enumerate(train_loader):
                        step = epoch * len(train_loader) + step_in_epoch
                        schedule.set_step(step)
                        images = images.to(ctx.device, memory_format=memory_format, non_blocking=True)
                        targets = targets.to(ctx.device, non_blocking=True)
                        with torch.autocast(ctx.device.type, dtype=torch.bfloat16, enabled=speed.amp):
                            outputs = model(images)
                        loss = task.loss(outputs, targets)
                        loss_value = float(ctx.sum(loss.detach())) / ctx.world_size
                        if not math.isfinite(loss_value):
                            raise TrainingDivergedError(_diverged_message(
                                f"the loss became {loss_value}", epoch, step_in_epoch, len(train_loader), step, run,
                                history))
                        optimizer.zero_grad(set_to_none=True)
                        loss.backward()
                        if config.clip_grad_norm is not None:
                            nn.utils.clip_grad_norm_(network.parameters(), config.clip_grad_norm)
                        optimizer.step()
                        meter.update(outputs, targets)
                        progress.advance(len(images), loss_value, task.running_score(meter))
                train_seconds += progress.seconds
                if not all(bool(p.isfinite().all()) for p in network.parameters()):
                    # A finite loss whose last update overflowed: never checkpoint weights that are not numbers.
                    raise TrainingDivergedError(_diverged_message(
                        "the weights became infinite or NaN", epoch, len(train_loader) - 1, len(train_loader), step,
                        run, history))
                meter.sum_across(ctx.sum)
                train_metrics = meter.compute(task.classes)

                _sync_buffers(network, ctx)
                # Evaluation in float32 whatever the training's precision: the figures `convzoo eval` repeats.
                val_metrics = evaluate(network, val_loader, task, ctx=ctx, autocast=False,
                                       channels_last=speed.channels_last)
                metric = val_metrics[task.primary_metric]
                if metric is None:  # no class occurs in the split (an mIoU of nothing): the worst score
                    metric = -math.inf if task.higher_is_better else math.inf
                schedule.end_epoch(metric)
                # Ties go to the later epoch: the same validation score after more training (and, under a
                # decaying schedule, at a smaller learning rate).
                is_best = best_metric is None or (metric >= best_metric if task.higher_is_better
                                                  else metric <= best_metric)
                if is_best:
                    best_epoch, best_metric = epoch + 1, metric
                history.append(_epoch_row(epoch, optimizer, task, train_metrics, val_metrics, progress, ctx))

                if ctx.is_main:
                    description = describe_checkpoint(network.model_args, task.name, data_description, epoch + 1,
                                                      {f"val_{k}": v for k, v in val_metrics.items()})
                    save_checkpoint(network, run.last, description)
                    if is_best:
                        save_checkpoint(network, run.best, description)
                    run.save_resume_state({
                        "format": 1, "epoch": epoch + 1, "model": network.state_dict(),
                        "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
                        "history": history, "best_epoch": best_epoch, "best_metric": best_metric,
                        "train_seconds": train_seconds, "classes": list(data.classes),
                        "speed": {"channels_last": speed.channels_last, "amp": speed.amp},
                    })
                    run.write_metrics(history)
                    console.print(epoch_line(history[-1], config.epochs, is_best, task.epoch_text(history[-1])),
                                  highlight=False, soft_wrap=True)
        finally:
            if ctx.is_main and history:
                plot_learning_curves(history, run.curves, title=f"{card.name} on {config.data}",
                                     metric=task.primary_metric, metric_label=task.curve_label)

        # --- the best checkpoint on the test split
        ctx.barrier()  # rank 0 has written best.safetensors
        network.load_state_dict(read_state_dict(run.best))
        test_metrics = evaluate(network, test_loader, task, ctx=ctx, autocast=False,
                                channels_last=speed.channels_last)
        results = {"model": card.name, "data": config.data, "split": test_split, "checkpoint": run.best.name,
                   "epoch": best_epoch, **{k: finite_or_none(v) for k, v in test_metrics.items()},
                   "accuracy_unit": task.unit, "train_seconds": round(train_seconds, 2)}
        if ctx.is_main:
            run.write_results(results)
            plot_confusion_matrix(test_metrics["confusion_matrix"], task.classes, run.confusion,
                                  title=f"{card.name}, {test_split} split (epoch {best_epoch})")
            console.print(f"{test_split}: {task.test_text(test_metrics)}, best epoch {best_epoch}; results in "
                          f"{run.results}", highlight=False, soft_wrap=True)
        return TrainResult(out=run.path, history=history, best_epoch=best_epoch, test=results)
    finally:
        distributed.teardown(ctx)


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
    smallest = network.min_input_size or model_card(name).min_input_size
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


def _diverged_message(what: str, epoch: int, step_in_epoch: int, steps: int, step: int, run: RunFolder,
                      history: list[dict]) -> str:
    where = (f"{what} at epoch {epoch + 1}, step {step_in_epoch + 1} of {steps} "
             f"(training step {step + 1} of the run); training stopped.")
    if history:
        kept = (f" The last good checkpoint is {run.last} (epoch {history[-1]['epoch']}); continue from it "
                f"with --resume {run.path} after lowering --lr or adding --clip-grad-norm.")
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

