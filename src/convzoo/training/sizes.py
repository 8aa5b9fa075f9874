"""The sizes a training run settles before it loads anything: the input size, and the memory it will need.

Input size: `--input-size` when given; otherwise the network's own (its card's, or what its arguments decide: a
NAS spec's). A segmentation network is fully convolutional: it takes any input from its smallest up, so on data
whose images are all smaller than the card's input it trains at the data's own size (the largest training
image; or the smallest input the network accepts, if that is larger), instead of enlarging every image to the
card's (digits-seg's 64x64 canvases at U-Net's 512x512 would cost 64 times the memory and the work to learn
nothing more). The run's first line and config.json say which size was chosen and why.

Memory: `check_memory` estimates the run's peak resident memory (convzoo/memory.py) from the settings alone,
the network built on the meta device, and refuses a run that would not fit (unless `force`).
"""
from __future__ import annotations

from ..data.facts import SourceFacts
from ..memory import MemoryEstimate, TrainingPlan, inference_guard, training_guard
from ..registry import ModelCard, default_input_size
from .optim import optimizer_states


def training_input_size(config, card: ModelCard, facts: SourceFacts) -> tuple[tuple[int, int, int], str]:
    """(C, H, W) to train `config.model` at, and where it comes from (for the run's first line)."""
    meant_for = default_input_size(card.name, config.model_args)  # the card's, or e.g. a NAS spec's
    channels = meant_for[0]
    if config.input_size:
        height, width = (int(v) for v in config.input_size)
        return (channels, height, width), "--input-size"
    task = config.task or card.task
    data_size = facts.image_size
    if task == "segmentation" and data_size is not None and (
            data_size[0] <= meant_for[1] and data_size[1] <= meant_for[2] and tuple(data_size) != meant_for[1:]):
        height, width = (max(data_size[0], card.min_input_size[0]), max(data_size[1], card.min_input_size[1]))
        why = (f"{config.data}'s own size" if (height, width) == tuple(data_size) else
               f"the smallest {card.name} takes; {config.data}'s images are {data_size[0]}x{data_size[1]}")
        return (channels, height, width), (f"{why}, not the card's {meant_for[1]}x{meant_for[2]}, which would "
                                           f"enlarge every image; --input-size overrides")
    return tuple(meant_for), "the network's own"


def check_memory(config, card: ModelCard, input_size: tuple[int, int, int], facts: SourceFacts, *,
                 resume: bool) -> MemoryEstimate:
    """The run's estimated peak memory, checked against what the machine has (MemoryEstimateError if it does not
    fit and `config.force` is not set)."""
    task = config.task or card.task
    plan = TrainingPlan(
        model=card.name, model_args=dict(config.model_args), input_size=tuple(input_size),
        batch_size=config.batch_size, num_classes=facts.num_classes,
        optimizer_states=optimizer_states(config.opt, config.momentum), segmentation=task == "segmentation",
        speed_trial=not config.deterministic and (config.amp is None or config.channels_last is None),
        resume=resume, data_bytes=facts.memory_bytes, weight_copies=int(config.model_ema is not None),
        amp=config.amp is not False, explain=config.explain)
    return training_guard(plan, min_size=card.min_input_size).check(force=config.force)


def check_inference_memory(descriptions: list[dict], batch_size: int, data: str | None, *, force: bool,
                           what: str = "evaluating", batch_flag: str | None = "-b") -> MemoryEstimate:
    """Evaluation or prediction with checkpoints described by `descriptions` (read from their headers, before
    any weight is loaded), `batch_size` images at a time (x crops), checked against what the machine has."""
    from ..data.facts import source_facts

    networks = []
    for description in descriptions:
        args = dict(description["model"])
        networks.append((str(args.pop("name", "?")), args))
    first = descriptions[0]
    guard = inference_guard(networks, tuple(first["input_size"]), batch_size,
                            num_classes=len(first["classes"]), segmentation=first.get("task") == "segmentation",
                            data_bytes=source_facts(data).memory_bytes if data else 0, what=what,
                            batch_flag=batch_flag)
    return guard.check(force=force)
