"""Loading and saving weights, safely.

Never unpickles: `.safetensors` files are read as safetensors; anything else goes through
`torch.load(weights_only=True)`, which refuses any pickle that would build an object other than tensors and
plain containers. A file that does not fit the model gets an error listing the missing, unexpected and
mis-shaped keys, and names the registered network it does fit, if any.
"""
from __future__ import annotations

import json
import pickle
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from .errors import WeightsError, WeightsFileNotFoundError
from .io import atomic_write_bytes
from .protocol import Classifier, ConvzooModel, card_of, model_args_of

# Checkpoint wrappers written by common training scripts: {"state_dict": ...}, {"model": ...}, ...
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "module", "net")
# Prefixes added by DistributedDataParallel and torch.compile.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")
_LIST_LIMIT = 8


@dataclass
class LoadReport:
    """What load_weights did beyond a plain strict load."""

    dropped_classifier: list[str] = field(default_factory=list)
    adapted_input_conv: str | None = None  # the image-reading convolutions adapted, "key (shape) -> (shape), ..."
    remapped_keys: int = 0

    def messages(self) -> list[str]:
        out = []
        if self.dropped_classifier:
            out.append(f"classifier of a different size left at its initial values: {', '.join(self.dropped_classifier)}")
        if self.adapted_input_conv:
            out.append(f"convolutions reading the image adapted to the model's input channels: "
                       f"{self.adapted_input_conv}")
        return out


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict from a safetensors file or a weights-only torch file, without unpickling code."""
    path = Path(path)
    if not path.exists():
        raise WeightsFileNotFoundError(f"weights file {str(path)!r} does not exist")
    if path.is_dir():
        raise WeightsError(f"{str(path)!r} is a folder; give the path of a .safetensors (or .pth) file inside it")
    if _is_safetensors(path):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return _strip_wrapper_prefixes(load_file(str(path), device="cpu"))
        except (SafetensorError, OSError, ValueError) as err:
            raise WeightsError(f"{str(path)!r} is not a readable safetensors file (truncated or corrupt?): {err}") from err
    not_weights = (f"{str(path)!r} is not a PyTorch or safetensors weights file (truncated, corrupt, or another "
                   f"format): give a .safetensors or torch.save file")
    with open(path, "rb") as f:
        head = f.read(2)
    # torch.save writes a zip archive (PK), or before PyTorch 1.6 a pickle (protocol 2-5: 0x80 0x02-0x05).
    if not (head == b"PK" or (head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"))):
        raise WeightsError(not_weights)
    try:
        with warnings.catch_warnings():  # torch's own warnings about odd pickles: the error below says it all
            warnings.simplefilter("ignore")
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if not (_is_zip(path) if head == b"PK" else _is_whole_pickle(path)):  # not refused for what it builds: broken
            raise WeightsError(not_weights) from err
        raise WeightsError(
            f"refusing to load {str(path)!r}: it is a pickle holding objects other than tensors, and unpickling "
            f"it could run arbitrary code. Convert it to safetensors where it came from "
            f"(safetensors.torch.save_file(model.state_dict(), 'weights.safetensors'))."
        ) from err
    except Exception as err:  # zip errors, truncated files
        raise WeightsError(not_weights) from err
    return _unwrap(obj, path)


def _is_zip(path: Path) -> bool:
    import zipfile

    return zipfile.is_zipfile(path)


def _is_whole_pickle(path: Path) -> bool:
    """Whether the file reads as a complete pickle (opcode by opcode, nothing run): a pickle torch refused for
    what it builds, rather than bytes that only start like one."""
    import pickletools

    try:
        with open(path, "rb") as f:
            for _ in pickletools.genops(f):
                pass
    except Exception:  # noqa: BLE001 (any parse failure: not a pickle)
        return False
    return True


def _is_safetensors(path: Path) -> bool:
    if path.suffix == ".safetensors":
        return True
    # A safetensors file starts with an 8-byte little-endian header length followed by a JSON object.
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{"


def _unwrap(obj: object, path: Path) -> dict[str, torch.Tensor]:
    for _ in range(3):
        if isinstance(obj, Mapping) and not _is_tensor_dict(obj):
            inner = next((obj[k] for k in _WRAPPER_KEYS if k in obj and isinstance(obj[k], Mapping)), None)
            if inner is None:
                break
            obj = inner
    if not isinstance(obj, Mapping) or not obj or not _is_tensor_dict(obj):
        kind = type(obj).__name__
        raise WeightsError(
            f"{str(path)!r} holds a {kind}, not a state dict (a mapping of parameter names to tensors). "
            f"Save weights with convzoo.save_weights(model, path) or torch.save(model.state_dict(), path)."
        )
    return _strip_wrapper_prefixes(dict(obj))


def _strip_wrapper_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """DataParallel's `module.` and torch.compile's `_orig_mod.` (in that order when both wrap), whatever the file
    format: a compiled model's safetensors file has them too."""
    for prefix in _WRAPPER_PREFIXES:
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def _is_tensor_dict(obj: Mapping) -> bool:
    return all(isinstance(k, str) for k in obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def _num_classes(model: nn.Module) -> int | None:
    args = model_args_of(model)
    if args and "num_classes" in args:
        return args["num_classes"]
    return model.num_classes if isinstance(model, Classifier) else None


def _adapt_input_conv(weight: torch.Tensor, in_chans: int) -> torch.Tensor:
    """Fit a first-conv weight trained on C channels to `in_chans` channels, keeping the response to a grey
    image: one channel sums the filters; more channels repeat them cyclically, scaled by C / in_chans."""
    trained = weight.shape[1]
    if in_chans == 1:
        return weight.sum(dim=1, keepdim=True)
    repeats = -(-in_chans // trained)
    return weight.repeat(1, repeats, 1, 1)[:, :in_chans] * (trained / in_chans)


def fit_state_dict(model: nn.Module, state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], LoadReport, dict]:
    """Match a state dict to a model: remap legacy keys, drop a classifier of another size, adapt the first
    conv to other input channels. Returns the fitted dict, what was done, and what still does not fit."""
    report = LoadReport()
    if isinstance(model, ConvzooModel):
        remapped = model.remap_state_dict(state)
        report.remapped_keys = len(set(remapped) - set(state))
        state = remapped
    expected = model.state_dict()
    state = dict(state)
    num_classes = _num_classes(model)
    # The convolutions that read the image: those a network declares (a NAS network: every layer without
    # inputs), else its first.
    first_conv = next((k for k, v in expected.items() if k.endswith("weight") and v.dim() == 4), None)
    declared = model.image_input_weights if isinstance(model, ConvzooModel) else ()
    image_inputs = set(declared or ([first_conv] if first_conv else []))
    adapted = []
    mismatched = {}
    for key, tensor in list(state.items()):
        if key not in expected or expected[key].shape == tensor.shape:
            continue
        want = expected[key].shape
        if (key in image_inputs and tensor.dim() == 4 and tensor.shape[0] == want[0] and tensor.shape[2:] == want[2:]):
            state[key] = _adapt_input_conv(tensor, want[1]).to(tensor.dtype)
            adapted.append(f"{key} {tuple(tensor.shape)} -> {tuple(want)}")
        elif (num_classes is not None and want[0] == num_classes and tensor.shape[1:] == want[1:]):
            module_path = key.rsplit(".", 1)[0]
            if module_path not in report.dropped_classifier:
                report.dropped_classifier.append(module_path)
            del state[key]
        else:
            mismatched[key] = (tuple(tensor.shape), tuple(want))
    report.adapted_input_conv = ", ".join(adapted) or None
    dropped = set(report.dropped_classifier)
    missing = [k for k in expected if k not in state and k.rsplit(".", 1)[0] not in dropped]
    unexpected = [k for k in state if k not in expected]
    problems = {"missing": missing, "unexpected": unexpected, "mismatched": mismatched}
    return state, report, problems


def _shorten(items: list[str]) -> str:
    shown = ", ".join(items[:_LIST_LIMIT])
    return shown + (f", ... ({len(items) - _LIST_LIMIT} more)" if len(items) > _LIST_LIMIT else "")


def _networks_that_fit(state: dict[str, torch.Tensor], task: str | None) -> list[str]:
    """Registered networks whose state dict has exactly these keys and shapes (the classifier's class
    count aside). Built on the meta device, so trying every network costs no memory."""
    from .registry import create_model, list_models

    fits = []
    for name in list_models(task=task):
        with torch.device("meta"):
            candidate = create_model(name).state_dict()
        if candidate.keys() != state.keys():
            continue
        if all(candidate[k].shape[1:] == v.shape[1:] for k, v in state.items()):
            fits.append(name)
    return fits


def load_weights(model: nn.Module, path: str | Path, strict: bool = True) -> LoadReport:
    """Load a safetensors or PyTorch state dict into `model`, in place, without unpickling code.

    Accepts torchvision-layout state dicts (and legacy DenseNet keys), checkpoints wrapped as
    {"state_dict": ...} or {"model": ...}, and `module.`/`_orig_mod.` prefixes. A classifier trained for another
    number of classes is left at its initial values with a warning; a first conv trained on another number of
    input channels is adapted. Anything else that does not fit raises WeightsError listing the missing,
    unexpected and mis-shaped keys (with strict=False, missing and unexpected keys are allowed)."""
    state = read_state_dict(path)
    fitted, report, problems = fit_state_dict(model, state)
    if problems["mismatched"] or (strict and (problems["missing"] or problems["unexpected"])):
        lines = [f"{str(path)!r} does not fit {type(model).__name__}"
                 + (f" ({card_of(model).name})" if card_of(model) else "") + ":"]
        if problems["missing"]:
            lines.append(f"  missing keys ({len(problems['missing'])}): {_shorten(problems['missing'])}")
        if problems["unexpected"]:
            lines.append(f"  unexpected keys ({len(problems['unexpected'])}): {_shorten(problems['unexpected'])}")
        if problems["mismatched"]:
            shapes = [f"{k} file {a} vs model {b}" for k, (a, b) in problems["mismatched"].items()]
            lines.append(f"  mis-shaped keys ({len(shapes)}): {_shorten(shapes)}")
        card = card_of(model)
        fits = _networks_that_fit(state, card.task if card else None)
        if fits:
            lines.append(f"  the file fits: {', '.join(fits)} (create that network with convzoo.create_model)")
        raise WeightsError("\n".join(lines))
    model.load_state_dict(fitted, strict=False)
    for message in report.messages():
        warnings.warn(message, stacklevel=2)
    return report


# The weights file a run folder is taken for, first found first.
_RUN_FOLDER_FILES = ("best.safetensors", "last.safetensors")


def described_model_args(path: str | Path) -> dict | None:
    """The network a weights file names (the "model" arguments save_weights and `convzoo train` record:
    {"name", "num_classes", "in_chans", ...}), or None for a file that names none. A run folder stands for its
    best.safetensors. Reads the safetensors header only."""
    path = Path(path)
    if path.is_dir():
        path = next((path / f for f in _RUN_FOLDER_FILES if (path / f).is_file()), path / _RUN_FOLDER_FILES[0])
    if not path.exists():
        raise WeightsFileNotFoundError(f"weights file {str(path)!r} does not exist")
    if not _is_safetensors(path):
        return None
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        described = json.loads(metadata.get("convzoo", "{}"))
    except (SafetensorError, OSError, ValueError) as err:
        raise WeightsError(f"{str(path)!r} is not a readable safetensors file (truncated or corrupt?): {err}") from err
    model = described.get("model") if isinstance(described, dict) else None
    return dict(model) if isinstance(model, dict) and isinstance(model.get("name"), str) else None


def save_weights(model: nn.Module, path: str | Path, metadata: Mapping[str, str] | None = None) -> Path:
    """Save the model's state dict as safetensors, atomically. The network's name and arguments (when it came
    from create_model) go into the file's metadata under "convzoo", so the file says what it holds."""
    from safetensors.torch import save

    tensors: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for key, tensor in model.state_dict().items():
        tensor = tensor.detach().to("cpu").contiguous()
        # safetensors refuses tensors that share memory (tied weights): store each key's own copy.
        if tensor.untyped_storage().data_ptr() in seen:
            tensor = tensor.clone()
        seen.add(tensor.untyped_storage().data_ptr())
        tensors[key] = tensor
    meta = {str(k): str(v) for k, v in (metadata or {}).items()}
    if model_args_of(model):
        meta.setdefault("convzoo", json.dumps({"model": model_args_of(model)}, default=str))
    return atomic_write_bytes(path, save(tensors, metadata=meta))
