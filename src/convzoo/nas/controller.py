"""The controller of Zoph & Le (2016, arXiv 1611.01578): a recurrent network that writes a CNN as a string of
tokens, and REINFORCE to teach it from the rewards of the networks it wrote.

    controller = Controller(SearchSpace())
    sample = controller.sample(num_layers=6)          # .layers (spec layer dicts), .log_prob, .entropy
    updater = ReinforceUpdater(controller)
    updater.step([sample.layers], [reward])           # one controller update from m children

The sequence, per layer i: an anchor step (layer i >= 1 decides, for each earlier layer j, whether j feeds i:
Bernoulli with probability sigmoid(v^T tanh(W_prev h_j + W_curr h_i)), h_j being the LSTM output at layer j's
anchor step), then one softmax step for each of `space.layer_choices()` (number of filters, filter height,
filter width, and the stride when the space has several). Each sampled token is embedded and fed back as the
next input; after an anchor step the next input is the mean of the chosen layers' anchor outputs (zero when
none is chosen), so the choices that follow see which inputs the layer took (as ENAS's macro controller does).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor, nn

from ..errors import ConvzooError


class ControllerError(ConvzooError, ValueError):
    """A sequence the controller cannot score: a value outside the space, a missing field, a bad input index."""


@dataclass
class ControllerSample:
    """One architecture written by the controller: its spec layers, the log-probability of writing exactly them
    (a scalar with a graph back to the controller's weights) and the summed entropy of the distributions used."""

    layers: list[dict]
    log_prob: Tensor
    entropy: Tensor


class Controller(nn.Module):
    """Zoph & Le's controller: a `lstm_layers`-layer LSTM of `hidden_size` units, every weight uniform in
    +-`init_range` (paper: 2 layers, 35 units, 0.08)."""

    def __init__(self, space, *, hidden_size: int = 35, lstm_layers: int = 2, init_range: float = 0.08) -> None:
        super().__init__()
        if hidden_size < 1 or lstm_layers < 1 or init_range <= 0:
            raise ValueError(f"hidden_size and lstm_layers must be at least 1 and init_range positive, got "
                             f"{hidden_size}, {lstm_layers}, {init_range}")
        self.space = space
        self.choices: list[tuple[str, tuple[int, ...]]] = [(name, tuple(values))
                                                           for name, values in space.layer_choices()]
        self.hidden_size, self.lstm_layers, self.init_range = hidden_size, lstm_layers, init_range
        self.lstm = nn.LSTM(hidden_size, hidden_size, num_layers=lstm_layers)
        self.start = nn.Parameter(torch.empty(1, hidden_size))  # the first input (layer 0's anchor step)
        # One embedding (fed back) and one softmax head per kind of categorical decision.
        self.embeddings = nn.ModuleList(nn.Embedding(len(values), hidden_size) for _, values in self.choices)
        self.heads = nn.ModuleList(nn.Linear(hidden_size, len(values)) for _, values in self.choices)
        self.w_prev = nn.Linear(hidden_size, hidden_size, bias=False)
        self.w_curr = nn.Linear(hidden_size, hidden_size, bias=False)
        self.v = nn.Linear(hidden_size, 1, bias=False)
        for parameter in self.parameters():
            nn.init.uniform_(parameter, -init_range, init_range)

    def anchor_probabilities(self, previous: Tensor, current: Tensor) -> Tensor:
        """P(layer j feeds layer i) for each row h_j of `previous` (j x hidden), given h_i = `current` (hidden)."""
        return torch.sigmoid(self.v(torch.tanh(self.w_prev(previous) + self.w_curr(current))).squeeze(-1))

    def sample(self, num_layers: int, *, generator: torch.Generator | None = None) -> ControllerSample:
        """Write an architecture of `num_layers` layers, drawing every token from the controller's distributions
        (with `generator`, or torch's global one)."""
        return self._run(num_layers, None, generator)

    def log_prob(self, layers: Sequence[dict]) -> Tensor:
        """log P(the controller writes exactly `layers`), teacher-forced, with a graph to the weights."""
        return self._run(len(layers), list(layers), None).log_prob

    def _run(self, num_layers: int, forced: list[dict] | None, generator: torch.Generator | None) -> ControllerSample:
        if num_layers < 1:
            raise ValueError(f"an architecture needs at least 1 layer, got {num_layers}")
        if forced is not None:
            self._check_layers(forced)
        state = None
        log_prob = torch.zeros(())
        entropy = torch.zeros(())
        anchors: list[Tensor] = []  # h_j of each layer's anchor step
        layers: list[dict] = []
        step_input = self.start

        def step(x: Tensor) -> Tensor:
            nonlocal state
            output, state = self.lstm(x, state)
            return output  # 1 x hidden (unbatched sequence of one step)

        for i in range(num_layers):
            # --- anchor step: which earlier layers feed layer i
            h_i = step(step_input)[0]
            inputs: list[int] = []
            if i == 0:  # layer 0 always takes the image: nothing to decide
                step_input = torch.zeros(1, self.hidden_size)
            else:
                previous = torch.stack(anchors)
                p = self.anchor_probabilities(previous, h_i)
                if forced is None:
                    chosen = torch.bernoulli(p.detach(), generator=generator)
                else:
                    chosen = torch.zeros(i)
                    chosen[forced[i]["inputs"]] = 1.0
                log_prob = log_prob + (chosen * torch.log(p) + (1 - chosen) * torch.log1p(-p)).sum()
                entropy = entropy - (p * torch.log(p) + (1 - p) * torch.log1p(-p)).sum()
                inputs = [j for j in range(i) if chosen[j] > 0]
                step_input = ((chosen @ previous) / max(len(inputs), 1)).unsqueeze(0)
            anchors.append(h_i)
            # --- the categorical steps: one token each, fed back embedded
            layer: dict = {}
            for k, (name, values) in enumerate(self.choices):
                logits = self.heads[k](step(step_input)[0])
                log_p = torch.log_softmax(logits, dim=-1)
                if forced is None:
                    token = int(torch.multinomial(log_p.detach().exp(), 1, generator=generator))
                else:
                    token = values.index(forced[i][name])
                log_prob = log_prob + log_p[token]
                entropy = entropy - (log_p.exp() * log_p).sum()
                layer[name] = values[token]
                step_input = self.embeddings[k](torch.tensor([token]))
            if "stride" not in layer:
                layer["stride"] = self.space.strides[0]
            layer["inputs"] = inputs
            layers.append({key: layer[key] for key in ("num_filters", "filter_height", "filter_width", "stride",
                                                       "inputs")})
        return ControllerSample(layers=layers, log_prob=log_prob, entropy=entropy)

    def _check_layers(self, layers: list[dict]) -> None:
        for i, layer in enumerate(layers):
            for name, values in self.choices:
                if name not in layer:
                    raise ControllerError(f"layers[{i}] has no {name!r}")
                if layer[name] not in values:
                    raise ControllerError(f"layers[{i}].{name} = {layer[name]!r} is not one of the space's "
                                          f"{list(values)}")
            inputs = layer.get("inputs", [])
            if i == 0 and inputs:
                raise ControllerError(f"layers[0].inputs must be empty (the first layer takes the image), got "
                                      f"{inputs}")
            if any(not isinstance(j, int) or not 0 <= j < i for j in inputs) or len(set(inputs)) != len(inputs):
                raise ControllerError(f"layers[{i}].inputs = {inputs} must be distinct indices of earlier layers "
                                      f"(0..{i - 1})")


def reinforce_loss(log_probs: Sequence[Tensor], rewards: Sequence[float], baseline: float) -> Tensor:
    """Zoph & Le's REINFORCE loss over m children: -sum_k (R_k - b) log P(a_k) / m. Its gradient is the
    negative of the paper's policy-gradient estimate, so an optimizer's descent step follows the estimate."""
    if len(log_probs) != len(rewards) or not rewards:
        raise ValueError(f"need one reward per sample (at least one), got {len(log_probs)} samples and "
                         f"{len(rewards)} rewards")
    advantages = torch.tensor([float(r) - baseline for r in rewards])
    return -(advantages * torch.stack(list(log_probs))).sum() / len(rewards)


class ReinforceUpdater:
    """REINFORCE for a Controller: Adam (paper: lr 6e-4) on `reinforce_loss`, with b an exponential moving
    average of the rewards seen before the update (decay `baseline_decay`; the paper does not give its value).
    Before any reward the baseline is the first batch's mean. `entropy_weight` > 0 adds an entropy bonus (0: the
    paper's plain estimator)."""

    def __init__(self, controller: Controller, *, lr: float = 6e-4, baseline_decay: float = 0.95,
                 entropy_weight: float = 0.0) -> None:
        if not 0 <= baseline_decay < 1:
            raise ValueError(f"baseline_decay must be in [0, 1), got {baseline_decay}")
        self.controller = controller
        self.optimizer = torch.optim.Adam(controller.parameters(), lr=lr)
        self.baseline_decay = baseline_decay
        self.entropy_weight = entropy_weight
        self.baseline: float | None = None
        self.updates = 0

    def step(self, samples: Sequence[Sequence[dict]], rewards: Sequence[float]) -> dict:
        """One controller update from m children (their spec layers and rewards). The log-probabilities are
        recomputed teacher-forced under the current weights, so the samples need not carry a graph (they may
        come from a resumed search). Returns the loss, the baseline used and the advantages."""
        rewards = [float(r) for r in rewards]
        baseline = sum(rewards) / len(rewards) if self.baseline is None else self.baseline
        self.controller.train()
        runs = [self.controller._run(len(layers), list(layers), None) for layers in samples]
        loss = reinforce_loss([run.log_prob for run in runs], rewards, baseline)
        if self.entropy_weight:
            loss = loss - self.entropy_weight * torch.stack([run.entropy for run in runs]).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.baseline = baseline
        for reward in rewards:
            self.baseline = self.baseline_decay * self.baseline + (1 - self.baseline_decay) * reward
        self.updates += 1
        return {"loss": float(loss.detach()), "baseline": baseline, "advantages": [r - baseline for r in rewards]}

    def state_dict(self) -> dict:
        return {"controller": self.controller.state_dict(), "optimizer": self.optimizer.state_dict(),
                "baseline": self.baseline, "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.controller.load_state_dict(state["controller"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.baseline = state["baseline"]
        self.updates = int(state["updates"])
