"""Weight-sharing architecture search (ENAS: Pham et al. 2018, arXiv 1802.03268) over Zoph & Le's space.

Instead of training every sampled network from scratch, one shared network holds the weights of every network
the space can express; a sampled child is a selection of them. The search alternates

  1. one pass over the training split, training the shared weights of a freshly sampled child per mini-batch
     (the search's optimizer, by default SGD with Nesterov momentum as the paper, with a cosine learning rate),
  2. `controller_steps` updates of Zoph & Le's controller by REINFORCE, the reward of a child being its
     accuracy on a validation mini-batch with the shared weights (the paper adds an entropy bonus:
     `entropy_weight`),

then samples `budget` children from the trained controller, scores each on the whole validation split
with the shared weights, and writes the best as an ordinary spec (best.json) to retrain from scratch with
`convzoo train nas --spec DIR/best.json`. Its search accuracy is measured with weights shared by thousands of
children trained a few steps each: it ranks architectures, it is not the accuracy the winner reaches when
trained alone.

The shared network. For layer i and every (filter_height, filter_width) of the space, one weight
[max_filters, C + i * max_filters, fh, fw]: its input channels are blocks, the first C belonging to the image
and the next max_filters to each earlier layer. A child's layer i with `num_filters` f takes the first f output
channels of the weight of its kernel and, of the input channels, the block of each input it chose (the image
when it chose none) cut to that input's own number of filters, concatenated in the order the spec concatenates
the inputs. So a child computes exactly what a NASNetwork built from its spec computes with those weights, and
only the weights it uses take a gradient. Strides choose how a weight slides, not which weight.

Batch norm: each (layer, kernel) has its own scale and shift (max_filters of each, cut like the weight), as
ENAS gives each branch of a macro layer its own batch norm, and it always normalises with the statistics of the
batch at hand, never running averages: averages over thousands of different children describe none of them.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from rich.console import Console
from torch import Tensor, nn

from ..errors import SpecError
from ..models.classification.nas import NASNetwork, concat_padded, save_spec, spec_head_inputs, spec_key
from ..training.optim import LRSchedule, build_optimizer
from ..training.progress import EpochProgress
from .config import SearchConfig, SearchResult, prepare_folder
from .controller import Controller, ReinforceUpdater
from .folder import best_row, plot_rewards
from .space import SearchSpace


def _kernel_key(filter_height: int, filter_width: int) -> str:
    return f"{filter_height}x{filter_width}"


class SharedLayer(nn.Module):
    """The weights of one layer position for every kernel shape of the space: conv weights
    [max_filters, in_channels, fh, fw] (input channels: the image's, then max_filters for each earlier layer)
    and a batch-norm scale and shift per kernel shape."""

    def __init__(self, in_channels: int, max_filters: int, filter_sizes: Sequence[int]) -> None:
        super().__init__()
        self.weight = nn.ParameterDict()
        self.bn_weight = nn.ParameterDict()
        self.bn_bias = nn.ParameterDict()
        for fh in filter_sizes:
            for fw in filter_sizes:
                key = _kernel_key(fh, fw)
                weight = torch.empty(max_filters, in_channels, fh, fw)
                # He initialisation over the output fan (torchvision's), which does not depend on the inputs a
                # child picks.
                nn.init.kaiming_normal_(weight, mode="fan_out", nonlinearity="relu")
                self.weight[key] = nn.Parameter(weight)
                self.bn_weight[key] = nn.Parameter(torch.ones(max_filters))
                self.bn_bias[key] = nn.Parameter(torch.zeros(max_filters))


class SharedNetwork(nn.Module):
    """Every child of `num_layers` layers of `space` on `input_size` (C, H, W) images, with shared weights.
    `forward(images, layers)` runs the child whose spec layers are `layers`."""

    def __init__(self, space: SearchSpace, num_layers: int, input_size: Sequence[int], num_classes: int,
                 bn_eps: float = 1e-5) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"the shared network needs at least 1 layer, got num_layers={num_layers}")
        if len(input_size) != 3 or min(input_size) < 1 or num_classes < 1:
            raise ValueError(f"input_size must be (C, H, W) of positive integers and num_classes at least 1, got "
                             f"{tuple(input_size)} and {num_classes}")
        self.space = space
        self.num_layers = num_layers
        self.input_size = tuple(int(n) for n in input_size)
        self.in_chans = self.input_size[0]
        self.num_classes = num_classes
        self.max_filters = max(space.num_filters)
        self.bn_eps = bn_eps
        self.layers = nn.ModuleList(
            SharedLayer(self.in_chans + i * self.max_filters, self.max_filters, space.filter_sizes)
            for i in range(num_layers))
        # The head reads, per layer, a block of max_filters inputs; a child uses the blocks of its unused layers.
        self.fc = nn.Linear(num_layers * self.max_filters, num_classes)

    def _block(self, source: int) -> int:
        """Where the input channels of `source` (-1: the image, j: layer j's output) start in a weight."""
        return 0 if source < 0 else self.in_chans + source * self.max_filters

    def child_weights(self, layers: Sequence[dict]) -> dict:
        """The child's own weights, cut from the shared ones (with their graph, so gradients reach only the
        used blocks): {"layers": [(conv_weight, bn_weight, bn_bias) per layer], "fc": (weight, bias),
        "unused": indices of the layers the head reads}."""
        self.check_layers(layers)
        cut = []
        for i, layer in enumerate(layers):
            shared = self.layers[i]
            key = _kernel_key(layer["filter_height"], layer["filter_width"])
            filters = layer["num_filters"]
            sources = layer["inputs"] or [-1]
            blocks = [shared.weight[key][:filters, self._block(j):self._block(j) + self._width(layers, j)]
                      for j in sources]
            weight = blocks[0] if len(blocks) == 1 else torch.cat(blocks, dim=1)
            cut.append((weight, shared.bn_weight[key][:filters], shared.bn_bias[key][:filters]))
        unused = spec_head_inputs({"layers": layers})
        head = [self.fc.weight[:, j * self.max_filters:j * self.max_filters + layers[j]["num_filters"]]
                for j in unused]
        return {"layers": cut, "fc": (torch.cat(head, dim=1) if len(head) > 1 else head[0], self.fc.bias),
                "unused": unused}

    def _width(self, layers: Sequence[dict], source: int) -> int:
        return self.in_chans if source < 0 else layers[source]["num_filters"]

    def forward(self, images: Tensor, layers: Sequence[dict]) -> Tensor:
        weights = self.child_weights(layers)
        outputs: list[Tensor] = []
        for layer, (weight, bn_weight, bn_bias) in zip(layers, weights["layers"]):
            x = concat_padded([outputs[j] for j in layer["inputs"]]) if layer["inputs"] else images
            x = F.conv2d(x, weight, stride=layer["stride"],
                         padding=(layer["filter_height"] // 2, layer["filter_width"] // 2))
            # Batch statistics always (see the module's docstring): no running averages are kept.
            x = F.batch_norm(x, None, None, bn_weight, bn_bias, training=True, eps=self.bn_eps)
            outputs.append(F.relu(x))
        features = concat_padded([outputs[j] for j in weights["unused"]])
        fc_weight, fc_bias = weights["fc"]
        return F.linear(features.mean(dim=(2, 3)), fc_weight, fc_bias)

    def check_layers(self, layers: Sequence[dict]) -> None:
        """Refuse a child this network cannot run: another depth, or a spec outside the space (SpecError naming
        the field)."""
        if len(layers) != self.num_layers:
            raise SpecError(f"layers: the shared network has {self.num_layers} layers; the child has {len(layers)}")
        self.space.make_spec(list(layers), self.input_size)


# ---------------------------------------------------------------------------------------------------------
# The search


@dataclass
class EnasSettings:
    """ENAS's own settings (`SearchConfig.enas`); the rest comes from the SearchConfig. The shared weights are
    the children's weights, so they train with the search's child-training settings: `epochs` passes over the
    training split, mini-batches of `batch_size`, optimizer `opt` (paper: Nesterov momentum) at `lr` (paper:
    0.05) decayed by a cosine to `lr_min` (paper: 0.001, with warm restarts; one cosine here, the search being
    short), `weight_decay` (paper: 1e-4). The controller uses the search's controller settings, baseline decay,
    `children_per_update` and `entropy_weight` (ENAS adds the entropy at weight 1e-4; the search's default, 0,
    is Zoph & Le's plain REINFORCE). The depth is `start_layers`, fixed: ENAS searches one depth. `budget` is
    the number of children sampled at the end and scored on the whole validation split (the leaderboard).
    `reward_epochs` and `train_settings` do not apply."""

    lr_min: float = 0.001
    clip_grad_norm: float | None = 5.0  # ENAS's code bounds the shared weights' gradient norm at 5
    controller_steps: int = 10          # controller updates after each epoch (paper: 2000 samples an epoch)
    reward_batch_size: int = 64         # the validation mini-batch a reward is measured on
    eval_batch_size: int = 256          # batch of the final scoring (batch norm uses the batch's statistics)

    def __post_init__(self) -> None:
        for name in ("controller_steps", "reward_batch_size", "eval_batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"enas.{name} must be a positive integer, got {value!r}")
        if not isinstance(self.lr_min, (int, float)) or self.lr_min < 0:
            raise ValueError(f"enas.lr_min must be a non-negative number, got {self.lr_min!r}")
        if self.clip_grad_norm is not None and not self.clip_grad_norm > 0:
            raise ValueError(f"enas.clip_grad_norm must be positive (or None: no clipping), got "
                             f"{self.clip_grad_norm!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict | None) -> EnasSettings:
        values = dict(values or {})
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"unknown ENAS settings: {', '.join(unknown)}; allowed: {', '.join(known)}")
        return cls(**values)


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The random stream of one epoch (the children sampled, the batches drawn), a function of (seed, epoch)
    alone: a resumed search repeats exactly the epochs an uninterrupted one would run."""
    generator = torch.Generator()
    generator.manual_seed(int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0]))
    return generator


def _stack(dataset) -> tuple[Tensor, Tensor]:
    """A whole (small) split as one image tensor and one label tensor: batches are then slices, no loader."""
    images, labels = zip(*(dataset[i] for i in range(len(dataset))))
    return torch.stack(images), torch.tensor(labels, dtype=torch.long)


@torch.no_grad()
def accuracy(shared: SharedNetwork, layers: Sequence[dict], images: Tensor, labels: Tensor,
             batch_size: int) -> float:
    """The child's top-1 accuracy (a fraction) on `images`, with the shared weights, in batches."""
    hits = 0
    for start in range(0, len(images), batch_size):
        logits = shared(images[start:start + batch_size], layers)
        hits += int((logits.argmax(dim=1) == labels[start:start + batch_size]).sum())
    return hits / max(len(images), 1)


def unrunnable(shared: SharedNetwork, layers: Sequence[dict]) -> str | None:
    """Why the shared network cannot run the child (a filter larger than its input after strides), or None."""
    try:
        shared.check_layers(layers)
    except SpecError as err:
        return str(err)
    return None


def sample_runnable(shared: SharedNetwork, controller: Controller, generator: torch.Generator,
                    attempts: int = 1000) -> list[dict]:
    """A child the shared network can run, sampled from the controller (resampling the others)."""
    for _ in range(attempts):
        with torch.no_grad():
            layers = controller.sample(shared.num_layers, generator=generator).layers
        problem = unrunnable(shared, layers)
        if problem is None:
            return layers
    raise SpecError(f"the controller sampled {attempts} children in a row that cannot be built at input size "
                    f"{shared.input_size} (last: {problem}); use a larger input size, fewer layers or no strides")


def shared_step(shared: SharedNetwork, optimizer: torch.optim.Optimizer, layers: Sequence[dict], images: Tensor,
                labels: Tensor, *, weight_decay: float = 0.0, clip_grad_norm: float | None = None
                ) -> tuple[Tensor, Tensor]:
    """One optimizer step of the shared weights through the child `layers`; returns (loss, logits). The
    weight decay is an L2 term on the child's own weights (the gradient SGD's weight_decay would add, but only
    there), so every weight the child does not use gets no gradient at all."""
    logits = shared(images, layers)
    loss = F.cross_entropy(logits, labels)
    objective = loss
    if weight_decay:
        cut = shared.child_weights(layers)
        squares = sum(conv.square().sum() for conv, _, _ in cut["layers"]) + cut["fc"][0].square().sum()
        objective = loss + 0.5 * weight_decay * squares
    optimizer.zero_grad(set_to_none=True)  # None, not zero: the optimizer then leaves unused kernels alone
    objective.backward()
    if clip_grad_norm is not None:
        nn.utils.clip_grad_norm_(shared.parameters(), clip_grad_norm)
    optimizer.step()
    return loss.detach(), logits.detach()


def train_shared(shared: SharedNetwork, controller: Controller, optimizer: torch.optim.Optimizer,
                 schedule: LRSchedule, images: Tensor, labels: Tensor, *, epoch: int, batch_size: int,
                 weight_decay: float, clip_grad_norm: float | None, generator: torch.Generator,
                 progress: EpochProgress | None = None) -> dict:
    """Phase 1: one pass over the training split, each mini-batch training the shared weights of a child
    freshly sampled from the controller. Returns the mean loss and accuracy (percent) over the pass."""
    steps = len(images) // batch_size  # a last partial batch is dropped: batch norm needs a batch
    order = torch.randperm(len(images), generator=generator)
    shared.train()
    loss_sum = hits = seen = 0
    for step in range(steps):
        layers = sample_runnable(shared, controller, generator)
        batch = order[step * batch_size:(step + 1) * batch_size]
        schedule.set_step(epoch * steps + step)
        loss, logits = shared_step(shared, optimizer, layers, images[batch], labels[batch],
                                   weight_decay=weight_decay, clip_grad_norm=clip_grad_norm)
        loss_sum += float(loss) * len(batch)
        hits += int((logits.argmax(dim=1) == labels[batch]).sum())
        seen += len(batch)
        if progress is not None:
            progress.advance(len(batch), float(loss), f"acc {100 * hits / seen:.2f}%")
    return {"train_loss": loss_sum / max(seen, 1), "train_accuracy": 100 * hits / max(seen, 1)}


def train_controller(shared: SharedNetwork, controller: Controller, updater: ReinforceUpdater, images: Tensor,
                     labels: Tensor, *, children_per_update: int, settings: EnasSettings,
                     generator: torch.Generator) -> list[float]:
    """Phase 2: `controller_steps` REINFORCE updates, each from `children_per_update` children whose reward is
    their accuracy (a fraction) on a validation mini-batch drawn afresh, with the shared weights (0 for a child
    that cannot be built: the controller learns to avoid those). Returns the rewards in the order drawn."""
    rewards: list[float] = []
    for _ in range(settings.controller_steps):
        samples, batch_rewards = [], []
        for _ in range(children_per_update):
            with torch.no_grad():
                layers = controller.sample(shared.num_layers, generator=generator).layers
            batch = torch.randperm(len(images), generator=generator)[:settings.reward_batch_size]
            samples.append(layers)
            batch_rewards.append(0.0 if unrunnable(shared, layers) else
                                 accuracy(shared, layers, images[batch], labels[batch], settings.reward_batch_size))
        updater.step(samples, batch_rewards)
        rewards += batch_rewards
    return rewards



def check_enas_memory(config: SearchConfig, settings: EnasSettings, images: int, num_classes: int):
    """ENAS's estimated peak memory (convzoo/memory.py), checked against what the machine has: the shared weights
    with their gradients and optimizer state, the splits stacked in memory (`images` of them), and the
    activations of the space's largest child at the training batch and at the scoring batch."""
    from ..memory import Guard, MemoryEstimate, baseline_bytes, network_footprint
    from ..training.optim import optimizer_states

    channels = config.input_size[0]
    states = optimizer_states(config.opt, config.momentum)
    cache: dict = {}
    try:
        config.space.make_spec(config.space.largest_layers(config.start_layers, config.input_size), config.input_size)
    except SpecError:  # no child can be built at this input size: the search scores them 0 and trains nothing
        return None

    def estimate_at(batch: int, size: tuple[int, int]) -> MemoryEstimate:
        input_size = (channels, *size)
        if size not in cache:
            with torch.device("meta"):
                shared = SharedNetwork(config.space, config.start_layers, input_size, num_classes)
            spec = config.space.make_spec(config.space.largest_layers(config.start_layers, input_size), input_size)
            cache[size] = (sum(p.numel() * p.element_size() for p in shared.parameters()),
                           network_footprint("nas", input_size, {"spec": spec}, num_classes))
        weights, child = cache[size]
        stacked = images * channels * size[0] * size[1] * 4
        trained = {"shared weights": weights, "gradients": weights, "optimizer state": states * weights,
                   "splits stacked": stacked}
        phases = {
            "stacking the splits": {"splits stacked, and their items": 2 * stacked},
            "shared training": {**trained, "activations of the largest child":
                                batch * (child.training_activation_bytes + child.inference_activation_bytes)},
            "scoring children": {**trained, "activations of the largest child":
                                 settings.eval_batch_size * child.inference_activation_bytes},
            "state saves": {**trained, "state being written": 2 * (1 + states) * weights},
        }
        return MemoryEstimate(what=f"the ENAS search at {channels}x{size[0]}x{size[1]}, batch {batch}",
                              baseline=baseline_bytes(), phases=phases, batch_size=batch, input_size=input_size,
                              largest_layer=child.largest_layer)

    guard = Guard(estimate_at, batch_size=config.batch_size, size=tuple(config.input_size[1:]),
                  format_size=lambda size: f"{channels}x{size[0]}x{size[1]}")
    return guard.check(force=config.force)


def run_enas(config: SearchConfig, out: str | Path, resume: bool = False, *,
             console: Console | None = None) -> SearchResult:
    """Run (or with resume=True continue) the ENAS search `config` (a SearchConfig with method "enas") into the
    folder `out`; returns its SearchResult. At the end `config.budget` children sampled from the trained
    controller are scored on the whole validation split with the shared weights (the leaderboard), and the
    best is written as best.json."""
    from ..data import load_data

    console = console or Console()
    settings = EnasSettings.from_dict(config.enas)
    if settings.lr_min > config.lr:
        raise ValueError(f"enas.lr_min ({settings.lr_min}) must not exceed lr ({config.lr}): the cosine decays "
                         f"from lr to lr_min")
    if config.train_settings:
        raise ValueError(f"train_settings ({', '.join(sorted(config.train_settings))}) do not apply to ENAS: its "
                         f"shared weights train with lr, batch_size, opt, momentum, weight_decay and enas.*")
    data = load_data(config.data, config.input_size, val_split=config.val_split, seed=config.seed)
    check_enas_memory(config, settings, len(data.train) + len(data.val), data.num_classes)  # before stacking
    train_images, train_labels = _stack(data.train)
    val_images, val_labels = _stack(data.val)
    if len(train_images) < config.batch_size:
        raise ValueError(f"batch_size {config.batch_size} is larger than the training split "
                         f"({len(train_images)} images); lower it")
    folder = prepare_folder(config, out, resume)
    num_layers = config.start_layers
    space = config.space
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)  # the initial weights, from the seed alone
        shared = SharedNetwork(space, num_layers, data.input_size, data.num_classes)
        controller = Controller(space, hidden_size=config.controller_hidden_size,
                                lstm_layers=config.controller_lstm_layers, init_range=config.controller_init_range)
    # The weight decay is shared_step's L2 term on the child's weights, not the optimizer's.
    optimizer = build_optimizer(shared.parameters(), config.opt, config.lr, config.momentum, weight_decay=0.0)
    steps_per_epoch = len(train_images) // config.batch_size
    schedule = LRSchedule(optimizer, "cosine", epochs=config.epochs, steps_per_epoch=steps_per_epoch,
                          min_lr=settings.lr_min)
    updater = ReinforceUpdater(controller, lr=config.controller_lr, baseline_decay=config.baseline_decay,
                               entropy_weight=config.entropy_weight)
    history: list[dict] = []
    rewards: list[float] = []  # every controller-phase reward, in order
    if resume:
        state = folder.load_state()
        shared.load_state_dict(state["shared"])
        optimizer.load_state_dict(state["shared_optimizer"])
        updater.load_state_dict(state["updater"])
        history, rewards = state["history"], state["rewards"]

    for epoch in range(len(history), config.epochs):
        generator = _epoch_generator(config.seed, epoch)
        started = time.perf_counter()
        with EpochProgress(console, epoch, config.epochs, steps_per_epoch, enabled=True) as progress:
            row = train_shared(shared, controller, optimizer, schedule, train_images, train_labels, epoch=epoch,
                               batch_size=config.batch_size, weight_decay=config.weight_decay,
                               clip_grad_norm=settings.clip_grad_norm, generator=generator, progress=progress)
        epoch_rewards = train_controller(shared, controller, updater, val_images, val_labels,
                                         children_per_update=config.children_per_update, settings=settings,
                                         generator=generator)
        rewards += epoch_rewards
        row = {"epoch": epoch + 1, "lr": schedule.lr, **row,
               "mean_reward": sum(epoch_rewards) / len(epoch_rewards), "baseline": updater.baseline,
               "seconds": time.perf_counter() - started}
        history.append(row)
        folder.save_state({"method": "enas", "history": history, "rewards": rewards,
                           "shared": shared.state_dict(), "shared_optimizer": optimizer.state_dict(),
                           "updater": updater.state_dict()})
        console.print(f"epoch {epoch + 1}/{config.epochs}  shared loss {row['train_loss']:.4f}  "
                      f"acc {row['train_accuracy']:.2f}%  controller reward {100 * row['mean_reward']:.2f}%  "
                      f"baseline {100 * updater.baseline:.2f}%  {row['seconds']:.1f}s")

    rows = score_children(shared, controller, config, settings, val_images, val_labels)
    folder.write_leaderboard(rows)
    best = best_row(rows)
    if best is not None and best["spec"] is not None:
        meta = {"method": "enas", "reward": best["reward"], "val_accuracy": best["val_accuracy"],
                "index": best["index"], "search": str(folder.path),
                "scored_with": "the shared weights, on the whole validation split"}
        save_spec({**best["spec"], "meta": meta}, folder.best)
        console.print(f"best of {len(rows)} sampled children: #{best['index']} validation accuracy "
                      f"{best['val_accuracy']:.2f}% with the shared weights; {folder.best}. Search accuracy is not "
                      f"final accuracy: retrain it with `convzoo train nas --spec {folder.best}`",
                      highlight=False, soft_wrap=True)
    plot_rewards({"controller's samples": rewards}, folder.rewards_png,
                 title=f"ENAS search on {config.data}: the controller's rewards while it learnt",
                 ylabel="reward (accuracy on a validation mini-batch, shared weights)")
    return SearchResult(out=folder.path, rows=rows, best=best)


# A leaderboard row (folder.LEADERBOARD_COLUMNS). ENAS trains no child alone: no train_seconds, no run folder.
_EMPTY_ROW = {"index": None, "method": "enas", "key": None, "num_layers": None, "reward": None, "val_accuracy": None,
              "params": None, "macs": None, "train_seconds": None, "duplicate_of": None, "run": None, "attempts": None,
              "error": None, "spec": None}


def score_children(shared: SharedNetwork, controller: Controller, config: SearchConfig, settings: EnasSettings,
                   images: Tensor, labels: Tensor) -> list[dict]:
    """Sample `config.budget` children from the trained controller and score each (once per distinct
    architecture) on the whole validation split with the shared weights: the leaderboard rows."""
    from ..analysis.summary import summary

    generator = _epoch_generator(config.seed, config.epochs)  # after the last epoch's stream
    rows: list[dict] = []
    first: dict[str, dict] = {}
    for index in range(config.budget):
        with torch.no_grad():
            layers = controller.sample(shared.num_layers, generator=generator).layers
        problem = unrunnable(shared, layers)
        if problem is not None:  # as the other searches: reward 0, with the reason
            rows.append({**_EMPTY_ROW, "index": index, "num_layers": shared.num_layers, "reward": 0.0,
                         "error": f"invalid: {problem}"})
            continue
        spec = config.space.make_spec(layers, shared.input_size, meta={"method": "enas", "index": index})
        key = spec_key(spec)
        if key in first:
            rows.append({**first[key], "index": index, "duplicate_of": first[key]["index"]})
            continue
        val_accuracy = 100 * accuracy(shared, layers, images, labels, settings.eval_batch_size)
        report = summary(NASNetwork(spec, num_classes=shared.num_classes), input_size=shared.input_size,
                         convention="conv_linear")
        row = {**_EMPTY_ROW, "index": index, "key": key, "num_layers": shared.num_layers,
               "reward": (val_accuracy / 100) ** 3, "val_accuracy": val_accuracy,
               "params": report.total_params, "macs": report.total_macs, "spec": spec}
        first[key] = row
        rows.append(row)
    return rows
