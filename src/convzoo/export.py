"""Export a network so it runs without convzoo: ONNX, TorchScript, or a torch.export ExportedProgram.

    convzoo.export("resnet18", format="onnx", out="resnet18.onnx")                 # a registered name
    convzoo.export("runs/resnet20-digits/best.safetensors", out="r20.onnx")       # a checkpoint (or its folder)
    convzoo.export("resnet18.safetensors", out="r18.onnx")                        # a save_weights file
    convzoo.export(model, format="torchscript", out="model.ts", input_size=(3, 64, 64))

Every format takes any batch size (a dynamic first axis); the other input axes are fixed at `input_size`.
Beside the file, FILE.json says what it holds: the network, its input (size, and for a checkpoint the class
names and the normalisation the images need), the input and output names, and the exporter used.

The exported network is for inference: every batch norm that follows a convolution is folded into it first
(`convzoo.deploy.fold_batch_norms`), the exporters fold constants, and an ONNX file then goes through
onnxruntime's basic, portable graph optimisations offline (where onnxruntime is installed), so the file is as
fast as it can be in any runtime; FILE.json's "graph_optimisation" records what was done.

Every file is checked before it is kept: run at batch 1 and 3 (ONNX in onnxruntime, where installed) and
compared with PyTorch. ONNX goes through PyTorch's TorchScript-based exporter first, which is about ten times
faster than the torch.export-based one; where it fails, or writes a graph that computes something else (it
traces shape arithmetic done in place as constants, as in U-Net's padding), the torch.export-based exporter
(needs the onnxscript package) gets its turn.

The TorchScript-based exporter takes adaptive average pooling only where the output size divides the input
size. The exported input size is fixed, so every adaptive pool but a global one is exported as what it is at
that size: a fixed linear map along each axis, two matrix products (VGG, AlexNet and ZFNet below 224 px,
PSPNet's pyramid).
"""
from __future__ import annotations

import copy
import json
import math
import warnings
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from .deploy import FoldReport, fold_batch_norms
from .errors import ConvzooError
from .io import atomic_write_text, atomic_write_with, check_file_path
from .protocol import card_of, main_output, model_args_of


class ExportError(ConvzooError, ValueError):
    """A network that no exporter writes correctly in the asked format; the message says what each one did."""


FORMATS = ("onnx", "torchscript", "exported-program")
INPUT_NAME = "images"
OUTPUT_NAME = "logits"
# The example batch used to trace: not 1, so no exporter specialises the batch axis to a constant.
_EXAMPLE_BATCH = 2
_CHECK_BATCHES = (1, 3)
# The check compares each output with PyTorch's at the output's own scale: the largest difference over the
# reference output's spread (its standard deviation), not over its magnitude, which cannot see an error when
# every output is about the same large value (LeNet-5's RBF outputs, all about -84). A wrong graph is off by a
# large fraction of the spread; float32 rounding in a deep network by ~1e-4 of the magnitude, a few 1e-4 of the
# spread.
CHECK_TOLERANCE = 1e-2
# Classifiers and segmenters from a checkpoint: the exported file's argmax must agree with PyTorch's on this
# many real images of the checkpoint's own data (a near-tie may flip one of them).
CHECK_IMAGES = 32
MIN_ARGMAX_AGREEMENT = 0.95


def _source_model(source: nn.Module | str | Path, model_kwargs: dict[str, Any]) -> tuple[nn.Module, dict]:
    """The network to export, and what to say about it in the sidecar JSON."""
    if isinstance(source, nn.Module):
        if model_kwargs:
            raise ValueError("model arguments apply to a registered name, not to a model already built")
        model = getattr(source, "_orig_mod", source)  # torch.compile's wrapper holds the module
        return model, {"model": model_args_of(model) or {"class": type(model).__name__}}
    path = Path(source)
    if path.is_dir() or path.suffix == ".safetensors" or path.exists():
        if model_kwargs:
            raise ValueError("model arguments apply to a registered name; a checkpoint names its own network")
        from .errors import WeightsError
        from .training.checkpoint import load_checkpoint, read_checkpoint_description
        from .weights import described_model_args, load_weights

        try:
            read_checkpoint_description(path)  # the header only: is it a `convzoo train` checkpoint?
        except WeightsError:
            recorded = described_model_args(path)
            if recorded is None:
                raise
            # A save_weights file: it names its network and arguments, not the data it was trained on.
            from .registry import create_model

            model = create_model(recorded.pop("name"), **recorded)
            load_weights(model, path)
            return model.eval(), {"weights": str(path), "model": model.model_args}
        checkpoint = load_checkpoint(path)
        described = {key: checkpoint.description[key] for key in ("model", "task", "classes", "input_size", "mean",
                                                                  "std", "border", "data")
                     if key in checkpoint.description}
        return checkpoint.model, {"checkpoint": str(checkpoint.path), **described}
    from .registry import create_model

    model = create_model(str(source), **model_kwargs)
    return model, {"model": model.model_args}


def _input_size(model: nn.Module, described: dict, input_size: tuple[int, ...] | None) -> tuple[int, int, int]:
    if input_size is None:
        input_size = described.get("input_size")
    if input_size is None:
        card = card_of(model)
        if card is None:
            raise ValueError("give input_size=(C, H, W): the model has no card to take its input size from")
        input_size = card.input_size
    input_size = tuple(int(v) for v in input_size)
    if len(input_size) != 3 or min(input_size) < 1:
        raise ValueError(f"input_size is (channels, height, width) without the batch axis, got {input_size}")
    return input_size


class OutputLogits(nn.Module):
    """A segmentation network whose forward returns its "out" logits (protocol.main_output) rather than the
    {"out", "aux"} dict, so every exporter writes one output tensor."""

    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return main_output(self.network(x))


class AdaptiveAvgPoolAsMatrices(nn.Module):
    """Adaptive average pooling of one input size: output = rows @ x @ cols, where row i of `rows` averages the
    input rows floor(i*H/h) .. ceil((i+1)*H/h) - 1 (and `cols` the same for columns)."""

    def __init__(self, in_size: tuple[int, int], out_size: tuple[int, int]):
        super().__init__()
        self.register_buffer("rows", _averaging_matrix(in_size[0], out_size[0]))
        self.register_buffer("cols", _averaging_matrix(in_size[1], out_size[1]).T.contiguous())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rows @ x @ self.cols


def _averaging_matrix(in_size: int, out_size: int) -> torch.Tensor:
    matrix = torch.zeros(out_size, in_size)
    for i in range(out_size):
        start, end = (i * in_size) // out_size, -(-((i + 1) * in_size) // out_size)
        matrix[i, start:end] = 1.0 / (end - start)
    return matrix


def _fix_adaptive_pools(model: nn.Module, example: torch.Tensor) -> None:
    """Replace, in place, every adaptive average pool that is not global by its matrices at the sizes it sees
    for `example` (an identity where it keeps the size). A pool called at several sizes is left alone."""
    seen: dict[str, set[tuple[tuple[int, int], tuple[int, int]]]] = {}
    hooks = []
    for name, module in model.named_modules():
        if isinstance(module, nn.AdaptiveAvgPool2d):
            def record(module, args, output, name=name):
                seen.setdefault(name, set()).add((tuple(args[0].shape[-2:]), tuple(output.shape[-2:])))
            hooks.append(module.register_forward_hook(record))
    if not hooks:
        return
    try:
        model(example)
    finally:
        for hook in hooks:
            hook.remove()
    for name, sizes in seen.items():
        if len(sizes) != 1:
            continue  # called at several sizes: no one pair of matrices fits
        in_size, out_size = next(iter(sizes))
        if out_size == (1, 1):
            continue  # a global pool exports as GlobalAveragePool
        replacement = nn.Identity() if in_size == out_size else AdaptiveAvgPoolAsMatrices(in_size, out_size)
        parent_name, _, attribute = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, attribute, replacement)


# What every ONNX file's graph has been through, recorded in its sidecar ("graph_optimisation").
ONNX_OPTIMISATION = ("batch norms folded into the convolutions before them (convzoo.deploy.fold_batch_norms, "
                     "in PyTorch, within float32 rounding); constants folded by the exporter; then, where onnxruntime is "
                     "installed, onnxruntime's basic graph optimisations applied offline (constant folding, "
                     "redundant node elimination, Conv+Add/Mul/BatchNorm fusions: standard ONNX operators only, "
                     "so the file stays portable to any runtime)")


def optimise_onnx_file(path: Path) -> str | None:
    """Rewrite the ONNX file at `path` with onnxruntime's basic (portable) graph optimisations applied; returns
    the level applied, or None where onnxruntime is not installed. Its extended and full levels add operators
    of onnxruntime's own (fused convolutions, its NCHWc layout) and are left to the session that loads it."""
    try:
        import onnxruntime
    except ImportError:
        return None
    optimised = path.with_name(path.name + ".optimised")
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(optimised)
    try:
        onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        optimised.replace(path)
    finally:
        optimised.unlink(missing_ok=True)
    return "ORT_ENABLE_BASIC"


def _export_onnx_torchscript(model: nn.Module, example: torch.Tensor, out: Path) -> None:
    with warnings.catch_warnings():
        # The TorchScript-based exporter is deprecated in favour of the torch.export-based one, but it is several
        # times faster; its graph is checked against PyTorch before it is kept.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=".*[Cc]onstant folding.*")
        torch.onnx.export(model, (example,), str(out), dynamo=False, input_names=[INPUT_NAME],
                          output_names=[OUTPUT_NAME], dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                          do_constant_folding=True)
    optimise_onnx_file(out)


def _export_onnx_dynamo(model: nn.Module, example: torch.Tensor, out: Path) -> None:
    program = torch.onnx.export(model, (example,), dynamo=True, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                dynamic_shapes=({0: torch.export.Dim("batch")},), verbose=False)
    program.save(str(out), external_data=False)
    optimise_onnx_file(out)


def _run_exported(format: str, out: Path) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """A function running the exported file, or None where it cannot run here (onnxruntime not installed)."""
    if format == "torchscript":
        return torch.jit.load(str(out))
    if format == "exported-program":
        return torch.export.load(str(out)).module()
    try:
        import onnxruntime
    except ImportError:
        return None
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    return lambda images: torch.from_numpy(session.run(None, {INPUT_NAME: images.numpy()})[0])


def _difference(model: nn.Module, run: Callable[[torch.Tensor], torch.Tensor], size: tuple[int, int, int]) -> float:
    """The largest difference between the exported file's outputs and the model's, over the spread of the
    model's (see CHECK_TOLERANCE), at batch 1 and 3 (the batch axis must be dynamic); infinite for outputs of
    another shape or a graph that cannot run."""
    worst = 0.0
    for batch in _CHECK_BATCHES:
        images = torch.randn(batch, *size)
        try:
            got = run(images)
        except Exception:  # an exported graph that cannot run at this batch size
            return math.inf
        expected = model(images)
        if not isinstance(got, torch.Tensor) or got.shape != expected.shape:
            return math.inf
        worst = max(worst, _scaled_difference(expected, got))
    return worst


def _scaled_difference(expected: torch.Tensor, got: torch.Tensor) -> float:
    """max |got - expected| over the spread of `expected` (its standard deviation; its magnitude x 1e-6 where it
    has none, e.g. one output). 0 where nothing can be compared (an untrained network's overflow or zeros)."""
    expected, got = expected.double(), got.double()
    magnitude = expected.abs().max().item()
    if not math.isfinite(magnitude) or magnitude == 0:
        return 0.0
    spread = expected.std().item() if expected.numel() > 1 else 0.0
    scale = max(spread, magnitude * 1e-6)
    difference = ((got - expected).abs().max() / scale).item()
    return difference if math.isfinite(difference) else math.inf  # NaN compares as not larger


def _checkpoint_images(described: dict, size: tuple[int, int, int]) -> torch.Tensor | None:
    """Up to CHECK_IMAGES real images from the checkpoint's own data (its test split, else its validation split),
    prepared as in training; None for a network without a checkpoint, or data that is not here."""
    data = described.get("data") or {}
    if not data.get("source") or described.get("task") not in ("classification", "segmentation"):
        return None
    from .data import load_data

    try:
        bundle = load_data(data["source"], size, val_split=data.get("val_split") or 0.1, seed=data.get("seed", 0),
                           mean=described.get("mean"), std=described.get("std"), border=described.get("border", 0))
    except (ConvzooError, OSError):
        return None
    split = bundle.test if bundle.test is not None and len(bundle.test) else bundle.val
    if split is None or not len(split):
        return None
    return torch.stack([split[i][0] for i in range(min(CHECK_IMAGES, len(split)))])


def _argmax_agreement(model: nn.Module, run: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor) -> float:
    """The fraction of predictions (a classifier's images, a segmenter's pixels) where the file and PyTorch agree."""
    try:
        got = run(images)
    except Exception:  # noqa: BLE001 (a graph that cannot run on real images agrees on nothing)
        return 0.0
    expected = model(images)
    if not isinstance(got, torch.Tensor) or got.shape != expected.shape:
        return 0.0
    return (got.argmax(dim=1) == expected.argmax(dim=1)).double().mean().item()


def _export_checked(model: nn.Module, format: str, example: torch.Tensor, out: Path, check: bool,
                    images: torch.Tensor | None = None) -> dict:
    """Write the file; with `check`, run it and compare with the model (for ONNX, the torch.export-based
    exporter gets a second chance where the TorchScript-based one fails or writes a graph that computes
    something else). Returns what the sidecar says about how the file was made and checked."""
    size = tuple(example.shape[1:])
    attempts: list[tuple[str, Callable[[], None]]]
    if format == "onnx":
        attempts = [("torchscript", lambda: _export_onnx_torchscript(model, example, out)),
                    ("dynamo", lambda: _export_onnx_dynamo(model, example, out))]
    elif format == "torchscript":
        attempts = [("torch.jit.trace", lambda: _save_torchscript(model, example, out))]
    else:
        attempts = [("torch.export", lambda: _save_exported_program(model, example, out))]
    problems = []
    for exporter, write in attempts:
        try:
            write()
        except Exception as err:  # an operator or shape arithmetic this exporter cannot follow
            problems.append(f"the {exporter} exporter failed: {err}")
            continue
        if not check:
            return {"exporter": exporter, "checked": False,
                    "check": "not checked: written with --no-check (check=False); its outputs may differ from PyTorch's"}
        run = _run_exported(format, out)
        if run is None:
            return {"exporter": exporter, "checked": False,
                    "check": "not checked: onnxruntime is not installed (pip install onnxruntime)"}
        difference = _difference(model, run, size)
        agreement = None if images is None else _argmax_agreement(model, run, images)
        if difference <= CHECK_TOLERANCE and (agreement is None or agreement >= MIN_ARGMAX_AGREEMENT):
            made = {"exporter": exporter, "checked": True, "max_difference_over_spread": difference}
            if agreement is not None:
                made.update(argmax_agreement=agreement, argmax_images=len(images))
            return made
        problems.append(f"the {exporter} exporter wrote a graph whose outputs differ from the model's by "
                        f"{difference:.3g} of their spread" + (
                            "" if agreement is None else
                            f", and whose argmax agrees on {agreement:.1%} of {len(images)} real images"))
    raise ExportError(f"cannot export to {format}: " + "; ".join(problems) + "; nothing was written")


def _optimisation_record(format: str, folded: FoldReport) -> dict:
    record: dict = {"batch_norms_folded": len(folded.folded), "batch_norms_left": folded.left}
    if format == "onnx":
        import importlib.util

        ort = importlib.util.find_spec("onnxruntime") is not None
        record.update(constant_folding=True, onnxruntime_offline_level="ORT_ENABLE_BASIC" if ort else None,
                      summary=ONNX_OPTIMISATION,
                      at_load="onnxruntime: GraphOptimizationLevel.ORT_ENABLE_ALL (the default) adds its own "
                              "fusions and layout for this machine; OpenVINO: its CPU plugin's, always")
    return record


def _save_torchscript(model: nn.Module, example: torch.Tensor, out: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.jit.trace(model, example).save(str(out))


def _save_exported_program(model: nn.Module, example: torch.Tensor, out: Path) -> None:
    program = torch.export.export(model, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(program, str(out))


def export(model_or_name_or_ckpt: nn.Module | str | Path, format: str = "onnx", out: str | Path | None = None,
           input_size: tuple[int, ...] | None = None, check: bool = True, **model_kwargs: Any) -> Path:
    """Export a network (an nn.Module, a registered name, or a checkpoint written by `convzoo train` or its run
    folder) to `out` in `format` ("onnx", "torchscript" or "exported-program"), in eval mode, with a dynamic
    batch axis. `input_size` is (C, H, W), by default the checkpoint's or the card's. `model_kwargs` go to
    create_model when a name is given (e.g. num_classes=10). The model passed in is not changed.

    With `check` (the default) the written file is run at batch 1 and 3 and compared with the model: a file
    whose outputs differ by more than CHECK_TOLERANCE of their spread (a wrong graph, not float32 rounding), or,
    for a checkpoint's classifier or segmenter, whose argmax agrees with PyTorch's on less than
    MIN_ARGMAX_AGREEMENT of real images of its own data, raises ExportError, and `out` is left as it was. ONNX
    files are checked only where onnxruntime is installed; the sidecar says whether the file was checked.

    Load the results with onnxruntime.InferenceSession(out), torch.jit.load(out), and
    torch.export.load(out).module(). Returns `out`; FILE.json beside it describes the file."""
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    if out is None:
        raise ValueError("give the output file: out=PATH")
    out = Path(out)
    source, described = _source_model(model_or_name_or_ckpt, model_kwargs)
    size = _input_size(source, described, input_size)
    model = copy.deepcopy(source).eval()
    card = card_of(model)
    if card is not None and card.task == "segmentation":
        model = OutputLogits(model)  # the exported file returns the "out" logits, not a dict
    example = torch.randn(_EXAMPLE_BATCH, *size)
    check_file_path(out)
    images = _checkpoint_images(described, size) if check else None
    made: dict = {}
    # For inference only: every batch norm that follows a convolution is folded into it (exact, in float32
    # rounding; the check below runs on the folded model, which tests/test_deploy.py holds to the original's).
    folded = fold_batch_norms(model)
    with torch.no_grad():
        if format == "onnx":
            _fix_adaptive_pools(model, example)
        # Written and checked under a temp name beside `out`, renamed over it only once it passed: a failed
        # export leaves an existing file as it was.
        atomic_write_with(out, lambda temp: made.update(_export_checked(model, format, example, temp, check, images)))
    sidecar = {"format": format, **made, **described, "input_size": list(size), "input_name": INPUT_NAME,
               "output_name": OUTPUT_NAME, "torch": torch.__version__,
               "graph_optimisation": _optimisation_record(format, folded)}
    atomic_write_text(Path(f"{out}.json"), json.dumps(sidecar, indent=2, default=str) + "\n")
    return out
