"""export(): ONNX (checked in onnxruntime), TorchScript and ExportedProgram files that give PyTorch's outputs
at any batch size, from a model, a registered name or a checkpoint; `convzoo export`."""
from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

import convzoo
from convzoo.protocol import main_output
from convzoo.cli import main
from convzoo.export import _EXAMPLE_BATCH, CHECK_TOLERANCE, AdaptiveAvgPoolAsMatrices, ExportError, export
from twins import DEEPER_TWINS, create_sweep_model

onnxruntime = pytest.importorskip("onnxruntime")

TOLERANCE = 1e-4  # the largest difference over the largest magnitude of PyTorch's output
ROUNDING_FACTOR = 4  # see assert_onnx_matches


def relative_error(reference: np.ndarray, other: np.ndarray) -> float:
    return float(np.abs(reference - other).max() / np.abs(reference).max())


def sweep_size(name: str) -> int:
    """A small input the network takes: 64 px, its native size if smaller (CIFAR, LeNet-5), at least its
    card's smallest input."""
    card = convzoo.model_card(name)
    return max(card.min_input_size[0], min(64, card.input_size[1]))


def realistic(model: nn.Module, size: int) -> nn.Module:
    """A fresh network in eval mode computes with identity batch norms and zero-initialised layers (FCN's
    score layers, ResNet's zero-init residual ends), which leaves some outputs all zero and lets the 1000-layer
    ResNets overflow. Give it what training would: random values for all-zero parameters and batch norm
    statistics of one batch of images."""
    with torch.no_grad():
        for parameter in model.parameters():
            if not parameter.any():
                parameter.normal_(0, 0.1)
        norms = [module for module in model.modules() if isinstance(module, _BatchNorm)]
        for module in norms:
            module.reset_running_stats()
            module.momentum = None  # a cumulative average: after one batch, exactly its statistics
        if norms:
            model.train()(torch.randn(4, model.card.input_size[0], size, size))
    return model.eval()


def onnx_session(path: Path):
    options = onnxruntime.SessionOptions()
    # One thread, as torch in the sweep: on 2 cores shared with other work, spinning worker threads stall.
    options.intra_op_num_threads = 1
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_outputs(path: Path, images: torch.Tensor) -> np.ndarray:
    session = onnx_session(path)
    return session.run(None, {session.get_inputs()[0].name: images.numpy()})[0]


def assert_onnx_matches(model: nn.Module, path: Path, size: int, batches: tuple[int, ...] = (1, 3)) -> None:
    """onnxruntime's output within TOLERANCE of PyTorch's, at each of `batches` (export traces at batch 2).

    Where it is not, the difference must be float32 rounding, amplified by a deep network with random weights
    (PyTorch's own float32 ResNet-101 is ~1.5e-4 from its float64 result here, PreAct-ResNet-1001 ~3e-3):
    onnxruntime, which has no float64 convolution, must then be at most ROUNDING_FACTOR times as far from the
    float64 result as PyTorch's float32 result is. A wrong graph is off by far more than rounding."""
    session = onnx_session(path)
    for batch in batches:
        images = torch.randn(batch, model.card.input_size[0], size, size)
        with torch.no_grad():
            expected = main_output(model(images)).numpy()
        got = session.run(None, {session.get_inputs()[0].name: images.numpy()})[0]
        assert got.shape == expected.shape
        error = relative_error(expected, got)
        if error < TOLERANCE:
            continue
        with torch.no_grad():
            exact = main_output(copy.deepcopy(model).double()(images.double())).numpy()
        pytorch_rounding, onnx_rounding = relative_error(exact, expected), relative_error(exact, got)
        print(f"{model.card.name} batch {batch}: onnxruntime {error:.1e} from PyTorch; from float64: PyTorch "
              f"{pytorch_rounding:.1e}, onnxruntime {onnx_rounding:.1e}")
        assert pytorch_rounding < 1e-2, "too chaotic a network to tell rounding from a wrong graph"
        assert onnx_rounding <= ROUNDING_FACTOR * pytorch_rounding, (
            f"batch {batch}: {error:.1e} from PyTorch; from float64: PyTorch {pytorch_rounding:.1e}, "
            f"onnxruntime {onnx_rounding:.1e}")


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "unet_padded"])
def test_onnx_equals_pytorch_at_any_batch(name, tmp_path):
    size = 32
    model = realistic(convzoo.create_model(name, num_classes=10), size)
    out = export(model, format="onnx", out=tmp_path / f"{name}.onnx", input_size=(model.card.input_size[0], size, size))
    assert_onnx_matches(model, out, size)
    described = json.loads(Path(f"{out}.json").read_text())
    assert described["model"]["name"] == name and described["input_size"] == [model.card.input_size[0], size, size]
    assert described["exporter"] == "torchscript" and described["input_name"] == "images"
    assert described["checked"] and described["max_difference_over_spread"] < CHECK_TOLERANCE


class _PadsToMultipleOf8(nn.Module):
    """Pads by an amount computed from the input's shape, in place, as U-Net does: the TorchScript-based
    exporter writes the traced shape arithmetic as a wrong constant, silently."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        height = x.shape[-2]
        target = height
        while target % 8:
            target += 1
        return self.conv(nn.functional.pad(x, (0, target - x.shape[-1], 0, target - height), mode="reflect"))


def test_a_wrong_graph_is_caught_and_the_other_exporter_used(tmp_path):
    model = _PadsToMultipleOf8().eval()
    out = export(model, out=tmp_path / "pads.onnx", input_size=(3, 13, 13))
    described = json.loads(Path(f"{out}.json").read_text())
    assert described["exporter"] == "dynamo" and described["checked"]
    images = torch.randn(3, 3, 13, 13)
    with torch.no_grad():
        assert relative_error(main_output(model(images)).numpy(), onnx_outputs(out, images)) < TOLERANCE


def test_what_no_exporter_gets_right_is_refused(tmp_path):
    # Both exporters drop avg_pool2d's divisor_override (LeNet-5's subsampling sums 2x2 blocks with it).
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.AvgPool2d(2, divisor_override=1)).eval()
    with pytest.raises(ExportError, match="differ from the model"):
        export(model, out=tmp_path / "sum.onnx", input_size=(1, 10, 10))
    assert not (tmp_path / "sum.onnx").exists()


@pytest.mark.parametrize("in_size, out_size", [((1, 1), (7, 7)), ((5, 9), (3, 4)), ((10, 4), (4, 4)), ((2, 2), (6, 6))])
def test_adaptive_pooling_as_matrices(in_size, out_size):
    x = torch.randn(2, 3, *in_size)
    expected = nn.functional.adaptive_avg_pool2d(x, out_size)
    assert torch.allclose(AdaptiveAvgPoolAsMatrices(in_size, out_size)(x), expected, atol=1e-6)


@pytest.mark.parametrize("format", ["torchscript", "exported-program"])
def test_torchscript_and_exported_program_at_any_batch(format, tmp_path):
    model = realistic(convzoo.create_model("resnet20"), 32)
    out = export(model, format=format, out=tmp_path / "resnet20.pt", input_size=(3, 32, 32), check=False)
    loaded = torch.jit.load(str(out)) if format == "torchscript" else torch.export.load(str(out)).module()
    for batch in (1, 3):
        images = torch.randn(batch, 3, 32, 32)
        with torch.no_grad():
            assert torch.allclose(loaded(images), main_output(model(images)), rtol=0, atol=1e-5)


def test_a_name_with_model_arguments_and_the_cards_input_size(tmp_path):
    out = export("resnet20", out=tmp_path / "r.onnx", num_classes=7)
    described = json.loads(Path(f"{out}.json").read_text())
    assert described["model"] == {"name": "resnet20", "num_classes": 7, "in_chans": 3}
    assert described["input_size"] == [3, 32, 32]
    assert onnx_outputs(out, torch.randn(2, 3, 32, 32)).shape == (2, 7)


def test_a_checkpoint_brings_its_network_classes_and_normalisation(tmp_path):
    from convzoo.training.checkpoint import describe_checkpoint, save_checkpoint

    model = convzoo.create_model("resnet20", num_classes=3, in_chans=1)
    data = {"classes": ["cross", "hbar", "vbar"], "input_size": [1, 32, 32], "mean": [0.1], "std": [0.3],
            "source": "shapes"}
    checkpoint = save_checkpoint(model, tmp_path / "best.safetensors",
                                 describe_checkpoint(model.model_args, "classification", data, 3, {}))
    out = export(checkpoint, format="onnx", out=tmp_path / "resnet20.onnx")
    described = json.loads(Path(f"{out}.json").read_text())
    assert described["classes"] == data["classes"] and described["mean"] == [0.1] and described["std"] == [0.3]
    images = torch.randn(3, 1, 32, 32)
    with torch.no_grad():
        expected = model.eval()(images).numpy()
    assert relative_error(expected, onnx_outputs(out, images)) < TOLERANCE


def test_bad_requests_are_refused(tmp_path):
    with pytest.raises(ValueError, match="format must be one of"):
        export("resnet20", format="tflite", out=tmp_path / "x")
    with pytest.raises(ValueError, match="registered name"):
        export(convzoo.create_model("resnet20"), out=tmp_path / "x.onnx", num_classes=3)
    with pytest.raises(ValueError, match="input_size"):
        export(nn.Conv2d(3, 3, 1), out=tmp_path / "x.onnx")
    with pytest.raises(convzoo.UnknownModelError):
        export("resnet21", out=tmp_path / "x.onnx")
    with pytest.raises(FileNotFoundError):
        export(tmp_path / "missing.safetensors", out=tmp_path / "x.onnx")


def test_the_model_passed_in_is_not_changed(tmp_path):
    model = convzoo.create_model("resnet20").train()
    export(model, format="torchscript", out=tmp_path / "r.pt", check=False)
    assert model.training


def test_cli_export(tmp_path, capsys):
    out = tmp_path / "resnet20.onnx"
    assert main(["export", "resnet20", "--format", "onnx", "--out", str(out), "--input", "3x40x40"]) == 0
    assert out.is_file() and "written to" in capsys.readouterr().out
    assert onnx_outputs(out, torch.randn(1, 3, 40, 40)).shape == (1, 10)
    assert main(["export", "resnet21", "--out", str(out)]) == 2
    assert "resnet20" in capsys.readouterr().err


# Every network but a bare name (its same_as network's, test_zoo.py) and a deeper twin (its smaller twin's
# operations, tests/twins.py); the NARROW networks with NARROW_HIDDEN hidden units (tests/twins.py): their
# 130M parameters cost ~15 s of export and serialisation each, Dilation8's fc6 at its 185-pixel smallest input
# 50 s of convolution, and the graph is the same.
_SWEEP = [name for name in convzoo.list_models(task="classification") + convzoo.list_models(task="segmentation")
          if convzoo.model_card(name).same_as is None and name not in DEEPER_TWINS]


@pytest.mark.slow
@pytest.mark.parametrize("name", _SWEEP)
def test_onnx_equals_pytorch_for_every_network(name, tmp_path, one_thread):
    size = sweep_size(name)
    start = time.perf_counter()
    model = realistic(create_sweep_model(name, num_classes=10), size)
    # check=False: the test compares, more strictly than export's own check.
    out = export(model, format="onnx", out=tmp_path / f"{name}.onnx", input_size=(model.card.input_size[0], size, size),
                 check=False)
    # One batch, other than the one export traces (2): a baked-in batch size gives a wrong shape or wrong numbers.
    # Every batch size is test_onnx_equals_pytorch_at_any_batch's.
    assert _EXAMPLE_BATCH != 1
    assert_onnx_matches(model, out, size, batches=(1,))
    out.unlink()
    print(f"{name} at {size}px: {time.perf_counter() - start:.1f} s")


def _lenet5_writer(seed: int):
    """An ONNX writer that plants a wrong graph: another LeNet-5 (other weights), whose outputs, like the right
    one's, are all about -84 (its RBF outputs)."""
    torch.manual_seed(seed)
    other = convzoo.create_model("lenet5").eval()

    def write(model, example, out):
        torch.onnx.export(other, (example,), str(out), dynamo=False, input_names=["images"], output_names=["logits"],
                          dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}})
    return write


def test_a_wrong_graph_whose_outputs_are_all_about_minus_84_is_caught_and_the_old_file_kept(tmp_path, monkeypatch):
    import importlib

    export_module = importlib.import_module("convzoo.export")

    model = convzoo.create_model("lenet5").eval()
    with torch.no_grad():
        outputs = model(torch.randn(3, 1, 32, 32))
    assert (outputs.mean() + 84).abs() < 10 and outputs.std() < 0.1 * outputs.abs().max()  # the hard case
    out = tmp_path / "keep.onnx"
    out.write_bytes(b"the file the user had")
    monkeypatch.setattr(export_module, "_export_onnx_torchscript", _lenet5_writer(1))
    monkeypatch.setattr(export_module, "_export_onnx_dynamo", _lenet5_writer(2))
    with pytest.raises(ExportError, match="of their spread.*nothing was written"):
        export(model, out=out)
    assert out.read_bytes() == b"the file the user had"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.onnx"]  # no temp file left behind


def test_a_file_written_without_the_check_says_so(tmp_path):
    out = export("lenet5", out=tmp_path / "lenet5.onnx", check=False)
    described = json.loads(Path(f"{out}.json").read_text())
    assert described["checked"] is False and "--no-check" in described["check"]


def test_the_onnx_file_has_its_batch_norms_folded_and_its_graph_optimisation_recorded(tmp_path):
    import onnx

    torch.manual_seed(0)
    size = 32
    model = realistic(convzoo.create_model("resnet18", num_classes=10), size)
    batch_norms = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    out = export(model, format="onnx", out=tmp_path / "r18.onnx", input_size=(3, size, size))
    assert_onnx_matches(model, out, size)  # the unfolded network's outputs, within float32 rounding
    operators = {node.op_type for node in onnx.load(str(out)).graph.node}
    assert "BatchNormalization" not in operators and {"Conv", "Gemm"} <= operators
    recorded = json.loads(Path(f"{out}.json").read_text())["graph_optimisation"]
    assert recorded["batch_norms_folded"] == batch_norms == 20 and recorded["batch_norms_left"] == []
    assert recorded["constant_folding"] and recorded["onnxruntime_offline_level"] == "ORT_ENABLE_BASIC"
