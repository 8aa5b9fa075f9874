"""Networks described by a neural-architecture-search spec (Zoph & Le 2016, section 3.1 and 4.1).

A spec is a plain, versioned JSON document:

    {"format": "convzoo-nas-spec", "version": 1, "input_size": [1, 16, 16],
     "layers": [{"num_filters": 36, "filter_height": 3, "filter_width": 5, "stride": 1, "inputs": []},
                {"num_filters": 48, "filter_height": 5, "filter_width": 5, "stride": 1, "inputs": [0]}],
     "meta": {...}}

and compiles by the paper's rules: each layer is conv (same padding, no bias) + batch norm + ReLU; `inputs`
lists earlier layers whose outputs are concatenated depth-wise as the layer's input, and a layer with no input
takes the image; inputs of different sizes are zero-padded to the largest; every output no layer uses (the last
layer's always) is concatenated, zero-padded alike, into the final layer: global average pool, then a linear
classifier. `stride` may be left out (1).

The spec functions live here, beside the network, so that models do not import `convzoo.nas`; that package
re-exports them.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.fx
import torch.nn.functional as F
from torch import Tensor, nn

from ...errors import InputSizeError, SpecError, SpecFileNotFoundError
from ...io import atomic_write_text
from ...layers.conv import ConvBnAct
from ...layers.init import init_he_fan_out_
from ...protocol import Stage
from ...registry import Paper, register_model
from ..network import ClassifierNetwork

PAPER = Paper(
    title="Neural Architecture Search with Reinforcement Learning",
    authors="Barret Zoph, Quoc V. Le",
    year=2016,
    arxiv="1611.01578",
    venue="ICLR 2017",
)

SPEC_FORMAT = "convzoo-nas-spec"
SPEC_VERSION = 1
SPEC_FILE = "best.json"  # the spec a search folder holds

_TOP_FIELDS = ("format", "version", "input_size", "layers")  # all required; "meta" is the one optional field
_LAYER_INTS = ("num_filters", "filter_height", "filter_width", "stride")
_LAYER_FIELDS = (*_LAYER_INTS, "inputs")  # all required but stride (default 1)

# The packaged example (the card's network): two branches read the image (layers 0 and 1), layer 3 takes a
# 16x16 and a zero-padded 8x8 input, and the unused outputs of layers 1, 3 and 4 meet in the final layer. Its
# smallest input: the 7x7 filter of layer 4 needs a 4x4 input, which layer 2's stride 2 makes of a 7x7 image.
EXAMPLE_SPEC: dict[str, Any] = {
    "format": SPEC_FORMAT,
    "version": SPEC_VERSION,
    "input_size": [1, 16, 16],
    "layers": [
        {"num_filters": 24, "filter_height": 3, "filter_width": 3, "stride": 1, "inputs": []},
        {"num_filters": 24, "filter_height": 5, "filter_width": 3, "stride": 1, "inputs": []},
        {"num_filters": 36, "filter_height": 5, "filter_width": 5, "stride": 2, "inputs": [0]},
        {"num_filters": 48, "filter_height": 3, "filter_width": 3, "stride": 1, "inputs": [0, 2]},
        {"num_filters": 48, "filter_height": 7, "filter_width": 7, "stride": 1, "inputs": [2]},
    ],
    "meta": {"method": "hand-written", "note": "convzoo's example spec, the `nas` card's network"},
}


# ---------------------------------------------------------------------------------------------------------
# The spec: validation, normalisation, files, keys


def _fail(field: str, problem: str) -> SpecError:
    return SpecError(f"{field}: {problem}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", float: "a number",
            int: "an integer", type(None): "null"}.get(type(value), type(value).__name__)


def _check_fields(obj: Any, field: str, required: Sequence[str], optional: Sequence[str]) -> None:
    if not isinstance(obj, dict):
        raise _fail(field or "spec", f"must be an object with the fields {', '.join(required)}; got "
                                     f"{_type_name(obj)}")
    allowed = (*required, *optional)
    prefix = f"{field}." if field else ""
    for key in obj:
        if key not in allowed:
            raise _fail(f"{prefix}{key}", f"unknown field; allowed: {', '.join(allowed)}")
    for key in required:
        if key not in obj:
            raise _fail(f"{prefix}{key}", "missing (required)")


def _positive_int(value: Any, field: str, what: str = "a positive integer") -> int:
    if not _is_int(value):
        raise _fail(field, f"must be {what}; got {_type_name(value)} {json.dumps(value, default=str)}")
    if value < 1:
        raise _fail(field, f"must be {what}; got {value}")
    return value


def validate_spec(spec: Any) -> dict:
    """Check a spec and return it normalised (a deep copy: `stride` filled in, `inputs` sorted). Raises
    SpecError naming the first bad field (e.g. `layers[3].filter_height`) and what it may hold."""
    _check_fields(spec, "", _TOP_FIELDS, ("meta",))
    if spec["format"] != SPEC_FORMAT:
        raise _fail("format", f"must be {SPEC_FORMAT!r}; got {json.dumps(spec['format'], default=str)}: this is "
                              f"not a convzoo NAS spec")
    version = spec["version"]
    if not _is_int(version) or version < 1:
        raise _fail("version", f"must be a positive integer (this convzoo writes {SPEC_VERSION}); got "
                               f"{json.dumps(version, default=str)}")
    if version > SPEC_VERSION:
        raise _fail("version", f"{version} is from a newer convzoo; this one reads versions up to {SPEC_VERSION}. "
                               f"Upgrade convzoo to read this spec.")
    size = spec["input_size"]
    if not isinstance(size, list) or len(size) != 3:
        raise _fail("input_size", f"must be a list of three positive integers [C, H, W]; got "
                                  f"{json.dumps(size, default=str)}")
    input_size = [_positive_int(v, f"input_size[{i}]") for i, v in enumerate(size)]
    layers = spec["layers"]
    if not isinstance(layers, list) or not layers:
        raise _fail("layers", f"must be a non-empty list of layer objects; got "
                              f"{'an empty list' if layers == [] else _type_name(layers)}")
    normalised = [_validate_layer(layer, i) for i, layer in enumerate(layers)]
    meta = spec.get("meta", {})
    if not isinstance(meta, dict):
        raise _fail("meta", f"must be an object (free-form provenance); got {_type_name(meta)}")
    try:
        meta = json.loads(json.dumps(meta, allow_nan=False))
    except (TypeError, ValueError) as err:
        raise _fail("meta", f"must hold JSON values only (strings, finite numbers, lists, objects): {err}") from err
    result = {"format": SPEC_FORMAT, "version": SPEC_VERSION, "input_size": input_size, "layers": normalised,
              "meta": meta}
    _check_filters_fit(normalised, input_size[1], input_size[2])
    return result


def _validate_layer(layer: Any, index: int) -> dict:
    field = f"layers[{index}]"
    _check_fields(layer, field, ("num_filters", "filter_height", "filter_width", "inputs"), ("stride",))
    values = {"stride": 1, **layer}
    out: dict[str, Any] = {}
    for key in _LAYER_INTS:
        out[key] = _positive_int(values[key], f"{field}.{key}",
                                 "an odd positive integer (1, 3, 5, 7, ...)" if key.startswith("filter_") else
                                 "a positive integer")
        if key.startswith("filter_") and out[key] % 2 == 0:
            raise _fail(f"{field}.{key}", f"must be odd (1, 3, 5, 7, ...) so that 'same' padding centres the "
                                          f"filter; got {out[key]}")
    inputs = values["inputs"]
    if not isinstance(inputs, list):
        raise _fail(f"{field}.inputs", f"must be a list of earlier layer indices ([] takes the image); got "
                                       f"{_type_name(inputs)}")
    for k, source in enumerate(inputs):
        if not _is_int(source):
            raise _fail(f"{field}.inputs[{k}]", f"must be a layer index (an integer); got {_type_name(source)}")
        if source == index:
            raise _fail(f"{field}.inputs[{k}]", f"layer {index} cannot read its own output; inputs name earlier "
                                                f"layers (0 to {index - 1})" if index else
                        f"layer 0 cannot read its own output; layer 0 reads the image: inputs []")
        if source > index or source < 0:
            allowed = f"0 to {index - 1}" if index else "none: layer 0 reads the image, inputs []"
            why = "a reference forward would make a cycle" if source > index else "not a layer index"
            raise _fail(f"{field}.inputs[{k}]", f"{source} is not an earlier layer ({why}); allowed: {allowed}")
    if len(set(inputs)) != len(inputs):
        twice = sorted({s for s in inputs if inputs.count(s) > 1})
        raise _fail(f"{field}.inputs", f"lists layer {twice[0]} more than once; name each input layer once")
    out["inputs"] = sorted(inputs)
    return out


def _output_side(side: int, stride: int) -> int:
    """A 'same'-padded conv's output side: ceil(side / stride)."""
    return (side - 1) // stride + 1


def _largest_filter(side: int) -> int:
    # With 'same' padding an f-tall filter reaches f//2 rows either side of its centre; rows further out than
    # side - 1 only ever multiply padding, so a side-high input takes filters up to 2 * side - 1.
    return 2 * side - 1


def _input_sides(layers: Sequence[dict], height: int, width: int) -> list[tuple[int, int]]:
    """The (H, W) each layer's input has, after zero-padding its inputs to the largest."""
    sides: list[tuple[int, int]] = []
    outputs: list[tuple[int, int]] = []
    for layer in layers:
        if layer["inputs"]:
            h = max(outputs[j][0] for j in layer["inputs"])
            w = max(outputs[j][1] for j in layer["inputs"])
        else:
            h, w = height, width
        sides.append((h, w))
        outputs.append((_output_side(h, layer["stride"]), _output_side(w, layer["stride"])))
    return sides


def _filter_misfit(layers: Sequence[dict], height: int, width: int) -> tuple[int, str, int, int] | None:
    """The first (layer index, field, filter, input side) whose filter is larger than its input can take."""
    for index, (layer, (h, w)) in enumerate(zip(layers, _input_sides(layers, height, width))):
        for key, side in (("filter_height", h), ("filter_width", w)):
            if layer[key] > _largest_filter(side):
                return index, key, layer[key], side
    return None


def _check_filters_fit(layers: Sequence[dict], height: int, width: int) -> None:
    misfit = _filter_misfit(layers, height, width)
    if misfit is not None:
        index, key, size, side = misfit
        axis = "height" if key == "filter_height" else "width"
        raise _fail(f"layers[{index}].{key}", f"{size} is larger than this layer's input (of {axis} {side} at the "
                                              f"spec's input_size) can take: at most {_largest_filter(side)}, "
                                              f"since with 'same' padding the outer rows of a larger filter only "
                                              f"ever see padding. Use a smaller filter, fewer strides before it, "
                                              f"or a larger input_size.")


def spec_min_input_size(spec: dict) -> tuple[int, int]:
    """The smallest (H, W) image the network of a validated spec takes: every filter fits its layer's input."""
    layers = spec["layers"]
    largest = max(max(layer["filter_height"], layer["filter_width"]) for layer in layers)
    shrink = 1
    for layer in layers:
        shrink *= layer["stride"]
    result = []
    for key, axis in (("filter_height", 0), ("filter_width", 1)):
        # Fitting is monotone in the side, and a side of largest * shrink fits every layer.
        side = 1
        while side < largest * shrink:
            probe = (side, 1) if axis == 0 else (1, side)
            sides = _input_sides(layers, *probe)
            if all(layer[key] <= _largest_filter(s[axis]) for layer, s in zip(layers, sides)):
                break
            side += 1
        result.append(side)
    return result[0], result[1]


def spec_head_inputs(spec: dict) -> list[int]:
    """The layers (of a validated spec) whose outputs meet in the final layer: those no layer reads, the last one
    always."""
    used = {j for layer in spec["layers"] for j in layer["inputs"]}
    last = len(spec["layers"]) - 1
    return [i for i in range(len(spec["layers"])) if i not in used or i == last]


def spec_key(spec: dict) -> str:
    """A short hash of the architecture (input_size and layers, normalised): specs that build the same network
    share a key, whatever their meta, key order or `inputs` order. Used to deduplicate searched children."""
    spec = validate_spec(spec)
    canonical = json.dumps({"input_size": spec["input_size"], "layers": spec["layers"]}, sort_keys=True,
                           separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def load_spec(source: str | os.PathLike | dict) -> dict:
    """A validated, normalised spec from a dict, a spec file (JSON), a search folder (its best.json) or a
    training run folder of a `nas` network (the spec in its config.json)."""
    if isinstance(source, dict):
        return validate_spec(source)
    if not isinstance(source, (str, os.PathLike)):
        raise SpecError(f"a spec is a dict or the path of a spec file or folder; got {_type_name(source)}")
    path = Path(source)
    if path.is_dir():
        if (path / SPEC_FILE).is_file():
            path = path / SPEC_FILE
        elif (path / "config.json").is_file():
            return _spec_of_run(path)
        else:
            raise SpecFileNotFoundError(f"{str(path)!r} holds no {SPEC_FILE} (a search folder) and no "
                                        f"config.json (a training run of nas); give a spec file")
    if not path.is_file():
        raise SpecFileNotFoundError(f"spec file {str(path)!r} does not exist")
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SpecError(f"{str(path)!r} is not a JSON spec file: {err}") from err
    try:
        return validate_spec(spec)
    except SpecError as err:
        raise SpecError(f"{str(path)!r}: {err}") from None


def _spec_of_run(folder: Path) -> dict:
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))["config"]
        spec = config["model_args"]["spec"] if config.get("model") == "nas" else None
    except (KeyError, TypeError, UnicodeDecodeError, json.JSONDecodeError):
        spec = None
    if not isinstance(spec, dict):
        raise SpecError(f"{str(folder)!r} is not a training run of a nas network with its spec in config.json; "
                        f"give a spec file or a search folder holding {SPEC_FILE}")
    return validate_spec(spec)


def save_spec(spec: dict, path: str | os.PathLike) -> Path:
    """Validate `spec` and write it as JSON, atomically; returns the path."""
    return atomic_write_text(path, json.dumps(validate_spec(spec), indent=2) + "\n")


# ---------------------------------------------------------------------------------------------------------
# The network


def concat_padded(tensors: Sequence[Tensor]) -> Tensor:
    """Concatenate feature maps depth-wise, zero-padding each to the largest height and width (split evenly,
    the odd pixel at the bottom/right), Zoph & Le's rule for inputs of different sizes."""
    if len(tensors) == 1:
        return tensors[0]
    height = max(t.shape[-2] for t in tensors)
    width = max(t.shape[-1] for t in tensors)
    padded = []
    for t in tensors:
        dh, dw = height - t.shape[-2], width - t.shape[-1]
        padded.append(F.pad(t, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2)) if dh or dw else t)
    return torch.cat(padded, dim=1)


torch.fx.wrap("concat_padded")  # a leaf for torch.fx: it reads the maps' sizes


def check_filters_fit(x: Tensor, spec: dict, min_input_size: tuple[int, int]) -> None:
    """Refuse an image on which some layer's filter would see only padding, naming the layer."""
    # The convolutions would run on any size; refusing here keeps a filter from seeing only padding.
    height, width = int(x.shape[-2]), int(x.shape[-1])
    if height >= min_input_size[0] and width >= min_input_size[1]:
        return
    index, key, size, side = _filter_misfit(spec["layers"], height, width)
    raise InputSizeError(
        f"layers[{index}].{key} = {size} needs an input {key[7:]} of at least {(size + 1) // 2}, but a "
        f"{height}x{width} image gives this layer {side}; this network takes images of at least "
        f"{min_input_size[0]}x{min_input_size[1]}")


torch.fx.wrap("check_filters_fit")


class NASCell(nn.ModuleList):
    """The layers of a spec and their wiring: forward runs them in order, each on the zero-padded concatenation
    of its inputs (the image for none), and returns the concatenation of the head's inputs. A ModuleList, so
    the keys stay `layers.{i}.*`."""

    def __init__(self, layers: Sequence[nn.Module], inputs: Sequence[tuple[int, ...]], head_inputs: tuple[int, ...]):
        super().__init__(layers)
        self.inputs = [tuple(i) for i in inputs]
        self.head_inputs = tuple(head_inputs)

    def forward(self, x: Tensor) -> Tensor:
        outputs: list[Tensor] = []
        for layer, inputs in zip(self, self.inputs):
            outputs.append(layer(concat_padded([outputs[j] for j in inputs]) if inputs else x))
        return concat_padded([outputs[j] for j in self.head_inputs])


class NASNetwork(ClassifierNetwork):
    """The network a spec describes. `layers[i]` is conv + BN + ReLU (ConvBnAct); `fc` the classifier.
    timm's global_pool and drop_rate (dropout before fc) apply. Its body is one stage (a graph, not a chain
    of modules): the head's inputs, concatenated, at the reduction of the largest of them."""

    def __init__(self, spec: str | os.PathLike | dict, num_classes: int = 10, in_chans: int | None = None,
                 global_pool: str = "avg", drop_rate: float = 0.0):
        super().__init__()
        self._head_settings(num_classes, global_pool, drop_rate)
        self.spec = load_spec(spec)
        spec_layers = self.spec["layers"]
        in_chans = self.spec["input_size"][0] if in_chans is None else in_chans
        self.inputs = [tuple(layer["inputs"]) for layer in spec_layers]
        self.head_inputs = tuple(spec_head_inputs(self.spec))
        layers = []
        for layer, inputs in zip(spec_layers, self.inputs):
            chans = sum(spec_layers[j]["num_filters"] for j in inputs) if inputs else in_chans
            fh, fw = layer["filter_height"], layer["filter_width"]
            layers.append(ConvBnAct(chans, layer["num_filters"], (fh, fw), stride=layer["stride"],
                                    padding=(fh // 2, fw // 2)))
        self.layers = NASCell(layers, self.inputs, self.head_inputs)
        # The weights that read the image (several layers may): load_weights adapts each to other input channels.
        self.image_input_weights = tuple(f"layers.{i}.0.weight" for i, inputs in enumerate(self.inputs)
                                         if not inputs)
        self.num_features = sum(spec_layers[j]["num_filters"] for j in self.head_inputs)
        self.avgpool = self._pool()
        self.fc = self._new_classifier(num_classes)
        self.min_input_size = spec_min_input_size(self.spec)
        # create_model records these in model_args in place of a spec path, so a checkpoint rebuilds the network
        # without the file.
        self.resolved_args = {"spec": copy.deepcopy(self.spec)}
        init_he_fan_out_(self, linear_std=None)

    def feature_stages(self) -> list[Stage]:
        # A layer's input is at the smallest reduction among its inputs (the others are padded up to it).
        reductions: list[int] = []
        for layer, inputs in zip(self.spec["layers"], self.inputs):
            reductions.append(min((reductions[j] for j in inputs), default=1) * layer["stride"])
        return [Stage(("layers",), self.num_features, min(reductions[j] for j in self.head_inputs))]

    def forward_features(self, x: Tensor) -> Tensor:
        check_filters_fit(x, self.spec, self.min_input_size)
        return self.layers(x)


def _spec_input_size(model_args: dict) -> tuple[int, int, int]:
    spec = model_args.get("spec")
    return tuple(EXAMPLE_SPEC["input_size"] if spec is None else load_spec(spec)["input_size"])


@register_model(
    family="nas", paper=PAPER, input_size=(1, 16, 16), min_input_size=(7, 7), num_classes=10,
    params=134_338, macs=13_585_584, input_size_from_args=_spec_input_size,
    notes="Any architecture spec (create_model('nas', spec=FILE_OR_DICT); `convzoo train nas --spec FILE`); "
          "the card's figures are those of the packaged example spec (convzoo.nas.EXAMPLE_SPEC: five layers, "
          "two reading the image, one stride-2 input zero-padded, 1x16x16 input). Compile rules as in the "
          "paper; same padding, no conv bias, global average pool before the classifier.",
)
def nas(spec: str | os.PathLike | dict | None = None, **kwargs: Any) -> NASNetwork:
    return NASNetwork(EXAMPLE_SPEC if spec is None else spec, **kwargs)
