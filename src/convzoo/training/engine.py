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

from ..data.facts import SourceFacts, source_facts
from ..errors import CorruptImageError, DataError, InputSizeError, Interrupted, RunFolderError, TrainingDivergedError
from ..io import check_folder_path, first_free_folder
from ..memory import MemoryEstimate
from ..registry import create_model, model_card
from ..runtime import ThreadChoice, use_threads
from ..weights import read_state_dict
from . import distributed
from .checkpoint import RunFolder, describe_checkpoint, finite_or_none, save_checkpoint
from .ema import ModelEma
from .finetune import freeze, hold_statistics, load_initial_weights, parameter_groups
from .lr_finder import LRFindResult, lr_sweep
from .metrics import plot_confusion_matrix, plot_learning_curves
from .optim import LRSchedule, build_optimizer
from .mixing import BatchMixing
from .progress import EpochProgress, epoch_line
from .sizes import check_memory, training_input_size
from .speed import (SpeedChoice, cache_key, cached_choice, choose_speed_options, combination_name,
                    remember_choice)
from .tasks import Task, build_task, check_data_for_task
from .tensorboard import tensorboard_available, write_event_file

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
    random_resized_crop: tuple[float, float] | None = None  # GoogLeNet's crop: area fraction range (0.08, 1.0)
    auto_augment: str | None = None             # "randaugment" or "trivialaugment" (data/auto_augment.py)
    random_erasing: float = 0.0                 # probability a training image gets a rectangle erased
    mixup_alpha: float = 0.0                    # training/mixing.py
    cutmix_alpha: float = 0.0
    # the network
    model_args: dict[str, Any] = field(default_factory=dict)
    # fine-tuning (training/finetune.py)
    init: str | None = None                     # start from these weights (a checkpoint, a run folder)
    freeze: tuple[str, ...] = ()                # stages (stem, layer1, ...) or parameter-name patterns
    lr_body: float | None = None                # the body's learning rate (the head keeps lr)
    layer_decay: float | None = None            # each stage back from the head trains this many times slower
    freeze_bn: bool = False                     # every batch norm keeps its running statistics
    # optimisation
    epochs: int = 10
    batch_size: int = 32                        # per process: with N processes the global batch is N x this
    opt: str = "sgd"
    lr: float | str = 0.01                      # "auto": the learning-rate finder's suggestion (lr_finder.py)
    lr_find_steps: int = 100                    # the finder's sweep length (steps)
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
    model_ema: float | None = None              # the decay of an EMA of the weights (training/ema.py)
    patience: int | None = None                 # stop after this many epochs without a better validation metric
    # how it runs
    seed: int = 0
    amp: bool | None = None                     # bf16 autocast; None: measured (training/speed.py), or off
    channels_last: bool | None = None           # when deterministic; the same for channels_last
    deterministic: bool = False                 # torch.use_deterministic_algorithms
    device: str = "auto"
    workers: int | None = None                  # DataLoader processes; None: chosen for the data and machine
    threads: int | None = None                  # CPU threads per process; None: convzoo.runtime's policy
    tensorboard: bool = False                   # TensorBoard event files beside metrics.csv (training/tensorboard.py)
    explain: bool = True                        # write the explain/ gallery at the end (convzoo.explain)
    out: str | None = None
    force: bool = False                         # run even when the memory estimate exceeds what is available

    def __post_init__(self) -> None:
        for name in ("input_size", "scale_jitter", "lr_steps", "freeze", "random_resized_crop"):
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
        if isinstance(self.lr, str) and self.lr != "auto":
            raise ValueError(f"lr is a number or 'auto' (the learning-rate finder's suggestion), got {self.lr!r}")
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"patience counts epochs without improvement and must be at least 1, got {self.patience}")
        for name in ("lr_body", "layer_decay"):
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")

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


# The sweep of --lr auto draws its batches from a generator seeded as an epoch no run reaches.
LR_FIND_EPOCH = 2**31 - 1

# Settings a resumed run may change: they alter how it runs, never what it computes (skip_bad: only which
# unreadable files stop it, so a run stopped by one can go on without it).
RESUME_MAY_CHANGE = ("epochs", "device", "workers", "threads", "out", "force", "skip_bad", "explain")


def train(config: TrainConfig, *, resume: bool = False, console: Console | None = None) -> TrainResult:
    """Train `config.model` on `config.data`, writing the run folder `config.out`. With resume=True, continue
    the run in `config.out` from its last completed epoch (its settings must be the saved ones, but for
    RESUME_MAY_CHANGE)."""
    console = console or Console()
    ctx = distributed.setup(config.device)
    try:
        run = set_up(config, resume=resume, ctx=ctx, console=console)
        if run.data.from_files and run.start_epoch == 0 and ctx.is_main:
            run.folder.save_resume_state(run.resume_state(0))  # a file may turn out unreadable in epoch 1
        try:
            for epoch in epochs_to_run(run):
                try:
                    train_metrics, progress = train_one_epoch(run, epoch)
                    val_metrics = validate(run)
                except CorruptImageError as err:
                    raise _unreadable_stop(err, epoch, run) from None
                is_best = record_epoch(run, epoch, train_metrics, val_metrics, progress)
                save_epoch(run, val_metrics, is_best)
                _report_unreadable(run)
        except KeyboardInterrupt as err:
            raise Interrupted(f"interrupted; the checkpoint of the last finished epoch is intact: continue with "
                              f"`convzoo train --resume {run.folder.path}`") from err
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
    lr: float  # the head's base learning rate: config.lr, or the finder's suggestion under lr="auto"
    optimizer: torch.optim.Optimizer
    schedule: LRSchedule
    mixing: BatchMixing
    frozen_norms: list[nn.Module] = field(default_factory=list)
    ema: ModelEma | None = None
    threads: ThreadChoice | None = None
    start_epoch: int = 0
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    best_metric: float | None = None
    best_weights: str = "raw"  # "ema" when the average scored better in the best epoch
    train_seconds: float = 0.0
    input_size_from: str = ""                   # why this input size (training/sizes.py)
    memory: MemoryEstimate | None = None        # the estimated peak memory, checked before anything was loaded
    reported_unreadable: int = 0  # unreadable files already named (data.unreadable() grows under skip_bad)

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.speed.channels_last else torch.contiguous_format

    def resume_state(self, epoch: int) -> dict:
        """The state after `epoch` (1-based) epochs: all --resume needs to repeat the rest exactly."""
        return {"format": 1, "epoch": epoch, "model": self.network.state_dict(),
                "optimizer": self.optimizer.state_dict(), "schedule": self.schedule.state_dict(),
                "history": self.history, "best_epoch": self.best_epoch, "best_metric": self.best_metric,
                "best_weights": self.best_weights, "train_seconds": self.train_seconds,
                "classes": list(self.data.classes), "lr": self.lr,
                "speed": {"channels_last": self.speed.channels_last, "amp": self.speed.amp},
                **({"ema": self.ema.state_dict()} if self.ema is not None else {})}

    def restore(self, state: dict) -> None:
        self.network.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        self.start_epoch, self.history = state["epoch"], list(state["history"])
        self.best_epoch, self.best_metric = state["best_epoch"], state["best_metric"]
        self.best_weights = state.get("best_weights", "raw")
        self.train_seconds = state["train_seconds"]


# --- setting up


def set_up(config: TrainConfig, *, resume: bool, ctx: distributed.Distributed, console: Console) -> Run:
    """Resolve the settings, load the data, build the network, the task, the optimizer and the schedule, and
    restore them from the run folder when resuming; write config.json and say what the run is."""
    if config.deterministic:  # only when asked: the call imports torch's compiler stack (1-2 s)
        torch.use_deterministic_algorithms(True)
    threads = use_threads(config.threads)  # convzoo.runtime's policy, or config.threads
    card = model_card(config.model)
    task_name = config.task or card.task
    if task_name != card.task:
        raise ValueError(f"{card.name} is a {card.task} network; it cannot be trained for {task_name}")
    facts = source_facts(config.data)
    input_size, input_size_from, border = _input_geometry(config, card, facts)
    memory = check_memory(config, card, input_size, facts, resume=resume)  # before anything large is allocated

    folder = RunFolder(check_folder_path(config.out, what="out ") if config.out else _default_out(config))
    state = folder.load_resume_state() if resume else None
    if resume:
        check_resume_settings(config, folder)
    if not resume and folder.holds_run():
        raise RunFolderError(f"{str(folder.path)!r} already holds a run: continue it with --resume "
                             f"{folder.path}, or choose another --out")
    ctx.barrier()  # every process has looked at the folder before rank 0 writes into it

    check_data_for_task(task_name, config.data, card.name)
    data = _load_data(config, input_size, border)
    if len(data.val) == 0:  # else every epoch would be "best" on no images
        raise DataError(f"no validation images: {config.data} has no val split and val_split={config.val_split} "
                        f"holds none out; hold out a fraction, e.g. --val-split 0.1")
    if state is not None:
        data.check_classes(state["classes"])
    train_sampler, train_loader, val_loader, test_loader = _loaders(data, config, ctx)

    network = _build_network(config, card.name, data, input_size, ctx)
    if config.init and state is None:
        load_initial_weights(network, config.init, console if ctx.is_main else None)
    frozen_norms = freeze(network, config.freeze) if config.freeze else []
    task = build_task(task_name, data.classes, config.label_smoothing, aux_weight=network.aux_weight)
    mixing = _batch_mixing(config, task)
    speed = _speed_choice(network, task, train_loader, config, state, ctx)
    network = network.to(memory_format=torch.channels_last if speed.channels_last else torch.contiguous_format)
    lr = _learning_rate(config, network, task, train_loader, speed, state, folder, ctx, console)
    optimizer = _build_optimizer(config, network, lr)
    schedule = _build_schedule(optimizer, config, len(train_loader), task)
    ema = ModelEma(network, config.model_ema) if config.model_ema is not None else None
    model = network
    if ctx.enabled:
        model = nn.parallel.DistributedDataParallel(
            network, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)
    run = Run(config=config, ctx=ctx, console=console, card=card, folder=folder, input_size=input_size,
              border=border, data=data, train_sampler=train_sampler, train_loader=train_loader,
              val_loader=val_loader, test_loader=test_loader,
              test_split="test" if data.test is not None else "val", network=network, model=model, task=task,
              speed=speed, lr=lr, optimizer=optimizer, schedule=schedule, mixing=mixing,
              frozen_norms=frozen_norms, ema=ema, input_size_from=input_size_from,
              memory=memory, threads=threads)
    if state is not None:
        run.restore(state)
    if ctx.is_main:
        _write_config(run)
        _announce(run, resuming=state is not None)
    return run


def _input_geometry(config: TrainConfig, card, facts: SourceFacts) -> tuple[tuple[int, int, int], str, int]:
    """The input size the network trains at (--input-size, the card's, a NAS spec's, or a segmentation data set's
    own: training/sizes.py), where it comes from, and the border."""
    input_size, input_size_from = training_input_size(config, card, facts)
    border = config.border if config.border is not None else (LENET_BORDER if card.family == "lenet" else 0)
    return input_size, input_size_from, border


def _load_data(config: TrainConfig, input_size: tuple[int, int, int], border: int):
    from ..data import Augment, load_data

    augment = Augment(
        random_crop_padding=config.random_crop_padding, hflip=config.hflip, pca_lighting=config.pca_lighting,
        random_resized_scale=None if config.scale_jitter is None else
        tuple(round(s * (min(input_size[1:]) - 2 * border)) for s in config.scale_jitter),
        auto_augment=config.auto_augment, random_erasing=config.random_erasing,
        random_resized_crop=config.random_resized_crop)
    return load_data(config.data, input_size, val_split=config.val_split, seed=config.seed,
                     augment=None if augment == Augment() else augment, skip_bad=config.skip_bad, border=border)


def _loaders(data, config: TrainConfig, ctx: distributed.Distributed):
    from ..data import default_workers

    workers = default_workers(data, config.workers)
    train_sampler = DistributedSampler(data.train, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True,
                                       seed=config.seed)
    # Full batches only (batch norm cannot train on a batch of one), unless the data is smaller than a batch.
    drop_last = len(train_sampler) >= config.batch_size
    train_loader = DataLoader(data.train, batch_size=config.batch_size, sampler=train_sampler,
                              num_workers=workers, drop_last=drop_last)
    val_loader = _eval_loader(data.val, config, ctx, workers)
    test_loader = _eval_loader(data.test, config, ctx, workers) if data.test is not None else val_loader
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


def _batch_mixing(config: TrainConfig, task: Task) -> BatchMixing:
    mixing = BatchMixing(len(task.classes), mixup_alpha=config.mixup_alpha, cutmix_alpha=config.cutmix_alpha)
    if mixing.enabled and task.name != "classification":
        raise ValueError("mixup and cutmix blend the labels of whole images (classification); drop "
                         "--mixup-alpha/--cutmix-alpha for segmentation")
    return mixing


def _build_optimizer(config: TrainConfig, network: nn.Module, lr: float) -> torch.optim.Optimizer:
    """One parameter group, or one a stage when the body trains at another rate (finetune.py)."""
    if config.lr_body is None and config.layer_decay is None:
        params = network.parameters()
    else:
        params = parameter_groups(network, lr, config.lr_body, config.layer_decay)
    return build_optimizer(params, config.opt, lr, config.momentum, config.weight_decay)


def _build_schedule(optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int,
                    task: Task) -> LRSchedule:
    return LRSchedule(optimizer, config.lr_scheduler, epochs=config.epochs, steps_per_epoch=steps_per_epoch,
                      step_size=config.lr_step_size, milestones=config.lr_steps, gamma=config.lr_gamma,
                      warmup_epochs=config.lr_warmup_epochs, warmup_decay=config.lr_warmup_decay,
                      min_lr=config.lr_min, patience=config.lr_patience, higher_is_better=task.higher_is_better)


def _learning_rate(config: TrainConfig, network: nn.Module, task: Task, loader: DataLoader, speed: SpeedChoice,
                   state: dict | None, folder: RunFolder, ctx: distributed.Distributed, console: Console) -> float:
    """config.lr; under "auto" the finder's suggestion, measured once (rank 0's, for every process) and recorded
    in the run folder (lr_find.json, lr_find.png); a resumed run keeps the rate it started with."""
    if not isinstance(config.lr, str):
        return float(config.lr)
    if state is not None:
        return float(state["lr"])
    result = _sweep(config, network, task, loader, speed, ctx)
    lr = float(ctx.sum(torch.tensor(result.suggestion if ctx.is_main else 0.0, dtype=torch.float64,
                                    device=ctx.device)))
    if ctx.is_main:
        result.save(folder.lr_find_json, folder.lr_find_png, title=f"{config.model} on {config.data}")
        console.print(f"--lr auto: the learning-rate finder suggests {lr:.3g} (the minimum of the loss; its steepest "
                      f"descent is at {result.steepest:.3g}); curve in {folder.lr_find_png}", highlight=False,
                      soft_wrap=True)
    return lr


def _sweep(config: TrainConfig, network: nn.Module, task: Task, loader: DataLoader, speed: SpeedChoice,
           ctx: distributed.Distributed, **sweep: Any) -> LRFindResult:
    _seed_everything(config.seed, LR_FIND_EPOCH, ctx.rank)  # the sweep's batches repeat; training's re-seed
    memory_format = torch.channels_last if speed.channels_last else torch.contiguous_format
    return lr_sweep(network, task.loss, loader, lambda copy, lr: _build_optimizer(config, copy, lr),
                    steps=config.lr_find_steps, device=ctx.device, memory_format=memory_format, amp=speed.amp,
                    clip_grad_norm=config.clip_grad_norm, **sweep)


def find_lr(config: TrainConfig, *, out: str | Path | None = None, start: float = 1e-6, end: float = 10.0,
            console: Console | None = None) -> LRFindResult:
    """The learning-rate range test (lr_finder.py) for `config`'s network, data and optimizer, from its initial
    weights (--init and --freeze as in training); writes lr_find.json and lr_find.png into `out`."""
    console = console or Console()
    use_threads(config.threads)
    ctx = distributed.setup(config.device)
    try:
        card = model_card(config.model)
        facts = source_facts(config.data)
        input_size, _, border = _input_geometry(config, card, facts)
        check_memory(config, card, input_size, facts, resume=False)  # the sweep trains, as a run does
        check_data_for_task(config.task or card.task, config.data, card.name)
        data = _load_data(config, input_size, border)
        _, loader, _, _ = _loaders(data, config, ctx)
        network = _build_network(config, card.name, data, input_size, ctx)
        if config.init:
            load_initial_weights(network, config.init, console)
        if config.freeze:
            freeze(network, config.freeze)
        task = build_task(config.task or card.task, data.classes, config.label_smoothing,
                          aux_weight=network.aux_weight)
        speed = SpeedChoice(channels_last=bool(config.channels_last), amp=bool(config.amp), how="set")
        with EpochProgress(console, 0, 1, config.lr_find_steps, True) as progress:
            result = _sweep(config, network, task, loader, speed, ctx, start=start, end=end,
                            progress=lambda step, lr, loss: progress.advance(config.batch_size, loss, f"lr {lr:.2g}"))
        folder = RunFolder(out or first_free_folder(Path("runs") / f"{config.model}-lr-find",
                                                    lambda p: RunFolder(p).lr_find_json.exists()))
        result.save(folder.lr_find_json, folder.lr_find_png, title=f"{card.name} on {config.data}")
        return result
    finally:
        distributed.teardown(ctx)


def _write_config(run: Run) -> None:
    config, ctx = run.config, run.ctx
    run.folder.write_config({
        "config": {**config.to_dict(), "out": str(run.folder.path)},
        "resolved": {"task": run.task.name, "input_size": list(run.input_size), "border": run.border,
                     "device": str(ctx.device), "processes": ctx.world_size,
                     "global_batch_size": config.batch_size * ctx.world_size,
                     "steps_per_epoch": len(run.train_loader), "speed": run.speed.to_dict(), "lr": run.lr,
                     "input_size_from": run.input_size_from,
                     "memory": None if run.memory is None else run.memory.to_dict(),
                     "workers": run.train_loader.num_workers},
        "data": run.data.describe(), "versions": _versions()})


def _announce(run: Run, *, resuming: bool) -> None:
    config, data, speed = run.config, run.data, run.speed
    trainable = sum(p.numel() for p in run.network.parameters() if p.requires_grad)
    total = sum(p.numel() for p in run.network.parameters())
    run.console.print(
        f"{'resuming' if resuming else 'training'} {run.card.name} ({total:,} parameters"
        f"{f', {trainable:,} trainable' if trainable != total else ''}) on {config.data}: {len(data.train)} "
        f"train / {len(data.val)} val / {len(data.test) if data.test is not None else 0} test images at "
        f"{'x'.join(map(str, run.input_size))} ({run.input_size_from}), {len(data.classes)} classes; "
        f"recipe {config.recipe or 'none'}; {'' if run.memory is None else run.memory.text() + '; '}"
        + "".join(f"{key}={value}; " for key, value in config.model_args.items() if key != "spec")
        + f"{combination_name(speed.channels_last, speed.amp)} ({speed.how}); "
        f"{run.ctx.device.type} x{run.ctx.world_size}, {run.threads}; run folder {run.folder.path}"
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
                             f"--epochs, --device, --workers, --threads and --no-explain may change, not: "
                             f"{', '.join(changed)}")


def resumed_config(folder: str | Path, model: str | None = None, **changes: Any) -> TrainConfig:
    """The settings of the run in `folder` (its config.json), with `changes` (which train() then checks: only
    RESUME_MAY_CHANGE may differ). `model`, when given, must be the run's."""
    saved = RunFolder(folder).read_config()["config"]
    if model and model != saved["model"]:
        raise RunFolderError(f"{folder} is a run of {saved['model']}, not {model}")
    return TrainConfig.from_dict({**saved, **changes, "out": str(folder)})


# --- one epoch


def epochs_to_run(run: Run):
    """The epochs left, from the first one not yet done; with `patience`, none after that many epochs without
    a better validation metric (early stopping: the best checkpoint is kept, and a resumed run stops too)."""
    patience = run.config.patience
    for epoch in range(run.start_epoch, run.config.epochs):
        if patience is not None and run.history and epoch - run.best_epoch >= patience:
            if run.ctx.is_main:
                run.console.print(f"early stop: no better validation {run.task.primary_metric} for {patience} "
                                  f"epochs since epoch {run.best_epoch}", highlight=False, soft_wrap=True)
            return
        yield epoch


def train_one_epoch(run: Run, epoch: int) -> tuple[dict, EpochProgress]:
    """One pass over the training split: re-seed from (seed, epoch, rank), then a step a batch. Returns the
    epoch's training metrics (summed over the processes) and its progress (time, images per second)."""
    config, ctx, task, loader = run.config, run.ctx, run.task, run.train_loader
    _seed_everything(config.seed, epoch, ctx.rank)
    run.train_sampler.set_epoch(epoch)
    run.model.train()
    hold_statistics(run.network, run.frozen_norms, all_norms=config.freeze_bn)
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
            meter.update(outputs, targets)  # mixed images are scored against their own (first) label
            progress.advance(len(images), loss_value, task.running_score(meter))
    run.train_seconds += progress.seconds
    if not all(bool(p.isfinite().all()) for p in run.network.parameters()):
        # A finite loss whose last update overflowed: never checkpoint weights that are not numbers.
        raise TrainingDivergedError(_diverged_message(
            "the weights became infinite or NaN", epoch, len(loader) - 1, len(loader), step, run))
    meter.sum_across(ctx.sum)
    return meter.compute(task.classes), progress


def _training_step(run: Run, images: torch.Tensor, targets: torch.Tensor) -> tuple[Any, float]:
    """Forward, loss, backward, update (and the EMA's). Returns the outputs and the loss (averaged over the
    processes); a loss that is not finite returns before any update."""
    if run.mixing.enabled:
        images, targets = run.mixing(images, targets)
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
    if run.ema is not None:
        run.ema.update(run.network)
    return outputs, loss_value


def validate(run: Run) -> dict:
    """The validation split's metrics, in float32 whatever the training's precision: the figures `convzoo
    eval` repeats. Every process first takes rank 0's batch-norm statistics. With an EMA, its metrics are
    under "ema"."""
    _sync_buffers(run.network, run.ctx)
    metrics = evaluate(run.network, run.val_loader, run.task, ctx=run.ctx, autocast=False,
                       channels_last=run.speed.channels_last)
    if run.ema is not None:
        metrics["ema"] = evaluate(run.ema.network, run.val_loader, run.task, ctx=run.ctx, autocast=False,
                                  channels_last=run.speed.channels_last)
    return metrics


def record_epoch(run: Run, epoch: int, train_metrics: dict, val_metrics: dict, progress: EpochProgress) -> bool:
    """Tell the schedule the validation metric, add the epoch's row to the history; returns whether it is the
    best epoch so far (the better of the weights and their EMA). Ties go to the later epoch: the same
    validation score after more training (and, under a decaying schedule, at a smaller learning rate)."""
    task = run.task
    metric = _score(task, val_metrics)
    run.schedule.end_epoch(metric)
    weights = "raw"
    if "ema" in val_metrics and _better(task, _score(task, val_metrics["ema"]), metric):
        weights, metric = "ema", _score(task, val_metrics["ema"])
    is_best = run.best_metric is None or metric == run.best_metric or _better(task, metric, run.best_metric)
    if is_best:
        run.best_epoch, run.best_metric, run.best_weights = epoch + 1, metric, weights
    row = _epoch_row(epoch, run.optimizer, task, train_metrics, val_metrics, progress, run.ctx)
    run.history.append({**row, **_ema_columns(task, val_metrics, weights)})
    return is_best


def _score(task: Task, metrics: dict) -> float:
    metric = metrics[task.primary_metric]
    if metric is None:  # no class occurs in the split (an mIoU of nothing): the worst score
        return -math.inf if task.higher_is_better else math.inf
    return metric


def _better(task: Task, a: float, b: float) -> bool:
    return a > b if task.higher_is_better else a < b


def _ema_columns(task: Task, val_metrics: dict, weights: str) -> dict:
    if "ema" not in val_metrics:
        return {}
    ema = val_metrics["ema"]
    return {"val_ema_loss": ema["loss"], f"val_ema_{task.primary_metric}": ema[task.primary_metric],
            "better_weights": weights}


def save_epoch(run: Run, val_metrics: dict, is_best: bool) -> None:
    """The checkpoint step (rank 0): last.safetensors, best.safetensors when it is the best epoch (the EMA's
    weights when they scored better), the resume state, metrics.csv (and the TensorBoard events), and the
    epoch's line."""
    if not run.ctx.is_main:
        return
    epoch = run.history[-1]["epoch"]
    save_checkpoint(run.network, run.folder.last, _describe(run, epoch, val_metrics, "raw"))
    if is_best:
        use_ema = run.best_weights == "ema"
        save_checkpoint(run.ema.network if use_ema else run.network, run.folder.best,
                        _describe(run, epoch, val_metrics["ema"] if use_ema else val_metrics, run.best_weights))
    run.folder.save_resume_state(run.resume_state(epoch))
    run.folder.write_metrics(run.history)
    if run.config.tensorboard and tensorboard_available(run.console if epoch == run.start_epoch + 1 else None):
        write_event_file(run.history, run.folder.tensorboard)
    run.console.print(epoch_line(run.history[-1], run.config.epochs, is_best, run.task.epoch_text(run.history[-1])),
                      highlight=False, soft_wrap=True)


def _describe(run: Run, epoch: int, val_metrics: dict, weights: str) -> dict:
    description = describe_checkpoint(run.network.model_args, run.task.name, run.data.describe(), epoch,
                                      {f"val_{k}": v for k, v in val_metrics.items()})
    return {**description, "weights": weights}


# --- the end


def plot_curves(run: Run) -> None:
    if run.ctx.is_main and run.history:
        plot_learning_curves(run.history, run.folder.curves, title=f"{run.card.name} on {run.config.data}",
                             metric=run.task.primary_metric, metric_label=run.task.curve_label)


def finish(run: Run) -> TrainResult:
    """Measure the best checkpoint on the test split (the validation split if there is none); write
    results.json, the confusion matrix and the error analysis (error_analysis.py)."""
    ctx, task, folder = run.ctx, run.task, run.folder
    ctx.barrier()  # rank 0 has written best.safetensors
    if ctx.is_main:  # only rank 0's machine has the run folder (nodes need not share a disk)
        run.network.load_state_dict(read_state_dict(folder.best))
    ctx.broadcast_from_main(run.network.state_dict())
    test_metrics = evaluate(run.network, run.test_loader, task, ctx=ctx, autocast=False,
                            channels_last=run.speed.channels_last)
    results = {"model": run.card.name, "data": run.config.data, "split": run.test_split,
               "checkpoint": folder.best.name, "epoch": run.best_epoch, "weights": run.best_weights,
               **{k: finite_or_none(v) for k, v in test_metrics.items()},
               "accuracy_unit": task.unit, "train_seconds": round(run.train_seconds, 2),
               "unreadable_images": run.data.unreadable()}
    if ctx.is_main:
        test_set = run.data.test if run.data.test is not None else run.data.val
        results.update(task.error_analysis(run.network, test_set, run.data.mean, run.data.std, test_metrics,
                                           folder.worst))
        folder.write_results(results)
        plot_confusion_matrix(test_metrics["confusion_matrix"], task.classes, folder.confusion,
                              title=f"{run.card.name}, {run.test_split} split (epoch {run.best_epoch})")
        run.console.print(f"{run.test_split}: {task.test_text(test_metrics)}, best epoch {run.best_epoch}"
                          f"{' (EMA weights)' if run.best_weights == 'ema' else ''}; results in {folder.results}, "
                          f"worst predictions in {folder.worst}", highlight=False, soft_wrap=True)
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


def _eval_loader(dataset: Dataset, config: TrainConfig, ctx: distributed.Distributed, workers: int) -> DataLoader:
    # Each process takes every world_size-th image: no image counted twice, none left out.
    shard = Subset(dataset, range(ctx.rank, len(dataset), ctx.world_size)) if ctx.enabled else dataset
    return DataLoader(shard, batch_size=config.batch_size, shuffle=False, num_workers=workers)


def _report_unreadable(run: Run) -> None:
    """With skip_bad: name the files found unreadable in this epoch (results.json lists them all)."""
    unreadable = run.data.unreadable()
    new = unreadable[max(run.reported_unreadable, len(run.data.skipped)):]
    run.reported_unreadable = len(unreadable)
    if new and run.ctx.is_main:
        run.console.print(f"skipped {len(new)} unreadable image(s) this epoch ({len(unreadable)} in all): "
                          f"{', '.join(new[:5])}{' ...' if len(new) > 5 else ''}", highlight=False, soft_wrap=True)


def _unreadable_stop(err: CorruptImageError, epoch: int, run: Run) -> CorruptImageError:
    """A file whose pixels turned out unreadable when a batch decoded it, without skip_bad: the run stops,
    naming it; the resume state of the last completed epoch (or of the start) lets --resume go on."""
    done = run.history[-1]["epoch"] if run.history else run.start_epoch
    return CorruptImageError(err.path, f"{err.reason}; found in epoch {epoch + 1}, so training stopped",
                             f"The run continues from epoch {done + 1} with --resume {run.folder.path} once the "
                             f"file is fixed or removed (add --skip-bad there to skip such files).")


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

