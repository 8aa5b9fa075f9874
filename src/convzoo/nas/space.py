"""The search space of Zoph & Le (2016) for convolutional networks: per layer, the number of filters, the filter
height and width, optionally the stride, and the skip connections (anchor points).

The anchor decisions come first in a layer: layer i >= 1 decides, for each j < i, whether layer j feeds it;
layer 0 always takes the image (and a later layer that chooses no input takes it too). Then come the
categorical steps of `layer_choices()`, in that order: the controller samples in exactly this order.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, fields
from typing import Any

from ..errors import SpecError
from .spec import SPEC_FORMAT, SPEC_VERSION, validate_spec


@dataclass(frozen=True)
class SearchSpace:
    """The choices per layer. The defaults are the paper's filter sizes and a small menu of filter counts (the
    paper's is {24, 36, 48, 64}); `strides=(1, 2, 3)` searches strides too, one value fixes it."""

    filter_sizes: tuple[int, ...] = (1, 3, 5, 7)  # filter height and width each
    num_filters: tuple[int, ...] = (24, 36, 48, 64)
    strides: tuple[int, ...] = (1,)

    def __post_init__(self) -> None:
        for f in fields(self):
            values = getattr(self, f.name)
            if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
                raise ValueError(f"search space {f.name}: must be a list of positive integers; got {values!r}")
            values = tuple(values)
            object.__setattr__(self, f.name, values)  # lists from JSON become tuples (hashable, comparable)
            if not values:
                raise ValueError(f"search space {f.name}: must hold at least one value")
            if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in values):
                raise ValueError(f"search space {f.name}: must be positive integers; got {list(values)}")
            if len(set(values)) != len(values):
                raise ValueError(f"search space {f.name}: lists a value twice: {list(values)}")
        even = [v for v in self.filter_sizes if v % 2 == 0]
        if even:
            raise ValueError(f"search space filter_sizes: must be odd (1, 3, 5, 7, ...) so that 'same' padding "
                             f"centres the filter; got {even}")

    def layer_choices(self) -> list[tuple[str, tuple[int, ...]]]:
        """The categorical steps of one layer, in the controller's order; the stride only when there is a
        choice."""
        steps = [("num_filters", self.num_filters), ("filter_height", self.filter_sizes),
                 ("filter_width", self.filter_sizes)]
        if len(self.strides) > 1:
            steps.append(("stride", self.strides))
        return steps

    def random_layers(self, num_layers: int, rng: random.Random) -> list[dict]:
        """`num_layers` layers chosen uniformly (each skip connection with probability 1/2), drawing from `rng`
        in the controller's order: a layer's anchors (j = 0..i-1), then its `layer_choices()`."""
        if num_layers < 1:
            raise ValueError(f"num_layers must be at least 1, got {num_layers}")
        layers = []
        for i in range(num_layers):
            inputs = [j for j in range(i) if rng.random() < 0.5]
            layer = {key: rng.choice(values) for key, values in self.layer_choices()}
            layers.append({"num_filters": layer["num_filters"], "filter_height": layer["filter_height"],
                           "filter_width": layer["filter_width"], "stride": layer.get("stride", self.strides[0]),
                           "inputs": inputs})
        return layers

    def largest_layers(self, num_layers: int, input_size: tuple[int, int, int]) -> list[dict]:
        """The layers of the space's largest child of `num_layers` layers (what the memory guard sizes a search
        by): the most filters, the widest kernel the input takes, the smallest stride, every skip connection."""
        side = min(input_size[1:])
        kernel = max([k for k in self.filter_sizes if k <= 2 * side - 1] or [min(self.filter_sizes)])
        return [{"num_filters": max(self.num_filters), "filter_height": kernel, "filter_width": kernel,
                 "stride": min(self.strides), "inputs": list(range(i))} for i in range(num_layers)]

    def make_spec(self, layers: list[dict], input_size: tuple[int, int, int], meta: dict | None = None) -> dict:
        """A valid spec of `layers` at `input_size` (C, H, W), checked against this space. Raises SpecError naming
        the field when a layer is not valid (e.g. a filter larger than its input can take) or not in the
        space."""
        spec = validate_spec({"format": SPEC_FORMAT, "version": SPEC_VERSION, "input_size": list(input_size),
                              "layers": layers, "meta": dict(meta or {})})
        self.check(spec)
        return spec

    def check(self, spec: dict) -> None:
        """Raise SpecError if `spec` is invalid or uses a value outside this space (naming the field)."""
        spec = validate_spec(spec)
        allowed = {"num_filters": ("num_filters", self.num_filters),
                   "filter_height": ("filter_sizes", self.filter_sizes),
                   "filter_width": ("filter_sizes", self.filter_sizes), "stride": ("strides", self.strides)}
        for i, layer in enumerate(spec["layers"]):
            for key, (space_field, values) in allowed.items():
                if layer[key] not in values:
                    raise SpecError(f"layers[{i}].{key}: {layer[key]} is outside the search space, whose "
                                    f"{space_field} are {list(values)}")

    def to_dict(self) -> dict[str, Any]:
        return {f.name: list(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, values: dict) -> SearchSpace:
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"unknown search space settings: {', '.join(unknown)}; allowed: {', '.join(known)}")
        return cls(**{key: tuple(value) if isinstance(value, list) else value for key, value in values.items()})
