"""The report: rows add up to the totals at every depth, shared modules, several outputs, the model left
exactly as it was, memory estimates, output formats and errors."""
import csv
import io
import json

import pytest
import torch
from rich.console import Console
from torch import nn
from torch.nn.modules import module as module_globals

import convzoo
from convzoo.analysis import ModelForwardError, summary
from convzoo.errors import InputSizeError


class Block(nn.Module):
    """conv-bn-relu-conv plus the identity: the add is the block's own operation."""

    def __init__(self, chans):
        super().__init__()
        self.conv1 = nn.Conv2d(chans, chans, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(chans)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(chans, chans, 3, padding=1, bias=False)

    def forward(self, x):
        return self.conv2(self.relu(self.bn(self.conv1(x)))) + x


def small_net():
    return nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), Block(8), Block(8),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(), nn.Linear(8, 4))


@pytest.mark.parametrize("depth", [None, 0, 1, 2])
@pytest.mark.parametrize("convention", ["all", "conv_linear"])
def test_rows_add_up_to_the_totals_at_every_depth(depth, convention):
    report = summary(small_net(), (3, 16, 16), depth=depth, convention=convention)
    assert sum(r.params for r in report.rows) == report.total_params == 3 * 8 * 9 + 8 + 2 * (2 * 8 * 8 * 9 + 16) + 36
    assert sum(r.macs for r in report.rows) == report.total_macs
    assert report.total_flops == 2 * report.total_macs
    assert max(r.depth for r in report.rows) == (2 if depth is None else depth)
    if depth == 0:
        assert len(report.rows) == 1 and report.rows[0].name == ""


def test_a_blocks_own_row_holds_its_residual_add():
    report = summary(small_net(), (3, 16, 16))
    block = next(r for r in report.rows if r.name == "2")
    assert block.type == "Block" and block.params == 0
    assert block.macs == 8 * 8 * 8  # the add, one per output element; its children hold the rest
    conv = next(r for r in report.rows if r.name == "2.conv1")
    assert conv.macs == 8 * 8 * 8 * 8 * 9 and conv.output_shape == (8, 8, 8)


def test_a_shared_module_counts_its_parameters_once_and_its_operations_per_call():
    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 3, padding=1)

        def forward(self, x):
            return self.conv(self.conv(x))

    report = summary(Shared(), (4, 5, 5))
    calls = [r for r in report.rows if r.name == "conv"]
    assert [r.call for r in calls] == [0, 1]
    assert [r.params for r in calls] == [4 * 4 * 9 + 4, 0]
    assert report.total_params == 4 * 4 * 9 + 4
    assert report.total_macs == 2 * 4 * 25 * 36
    assert [r.receptive_field for r in calls] == [(3, 3), (5, 5)]
    assert "conv (call 2)" in report.to_markdown()


def test_models_returning_tuples_or_dicts():
    class TwoHeads(nn.Module):
        def __init__(self, as_dict):
            super().__init__()
            self.body = nn.Conv2d(3, 4, 3)
            self.a, self.b = nn.Conv2d(4, 2, 1), nn.Conv2d(4, 5, 1)
            self.as_dict = as_dict

        def forward(self, x):
            y = self.body(x)
            return {"a": self.a(y), "b": self.b(y)} if self.as_dict else (self.a(y), self.b(y))

    for as_dict in (False, True):
        report = summary(TwoHeads(as_dict), (3, 6, 6))
        assert report.rows[0].output_shape == ((2, 4, 4), (5, 4, 4))
        assert report.rows[0].activations == 2 * 16 + 5 * 16
        assert report.total_macs == 16 * 4 * 27 + 16 * 2 * 4 + 16 * 5 * 4
        assert json.loads(report.to_json())["rows"][0]["output_shape"] == [[2, 4, 4], [5, 4, 4]]


def test_parameters_of_modules_the_forward_never_calls_are_named():
    class WithSpareHead(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = small_net()
            self.unused_head = nn.Linear(8, 3)

        def forward(self, x):
            return self.body(x)

    model = WithSpareHead()
    report = summary(model, (3, 16, 16))
    assert report.unused_params == {"unused_head": 27}
    assert report.total_params == sum(p.numel() for p in model.parameters())
    assert sum(r.params for r in report.rows) == report.total_params - 27
    assert "unused_head 27" in report.to_markdown()


def test_the_model_is_left_exactly_as_it_was():
    model = convzoo.create_model("resnet18", num_classes=10).train()
    model.layer1[0].bn1.eval()  # a mixed mode must survive too
    model.fc.register_forward_hook(lambda *args: None)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    params = {k: (p, p.device, p.requires_grad) for k, p in model.named_parameters()}
    modes = {k: m.training for k, m in model.named_modules()}
    hooks = {k: (dict(m._forward_hooks), dict(m._forward_pre_hooks)) for k, m in model.named_modules()}
    global_hooks = (dict(module_globals._global_forward_hooks), dict(module_globals._global_forward_pre_hooks))

    summary(model, (3, 64, 64))

    assert state.keys() == model.state_dict().keys()
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert {k: (p, p.device, p.requires_grad) for k, p in model.named_parameters()} == params
    assert {k: m.training for k, m in model.named_modules()} == modes
    assert {k: (dict(m._forward_hooks), dict(m._forward_pre_hooks)) for k, m in model.named_modules()} == hooks
    assert (dict(module_globals._global_forward_hooks), dict(module_globals._global_forward_pre_hooks)) == global_hooks
    assert all(p.grad is None for p in model.parameters())


def test_memory_estimates_by_hand():
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, bias=False), nn.ReLU(),
                          nn.Conv2d(2, 1, 3, padding=1, bias=False))
    report = summary(model, (1, 4, 4))
    # elements: input 16, conv 32, relu 32 (not in place), conv 16. Freed after last use, the peak is
    # while the ReLU runs: its input and output, 64 floats.
    assert report.inference_activation_bytes == 64 * 4
    # Autograd keeps the first conv's input (16), the ReLU's output (32), which is also the second
    # conv's input; the first conv's output is not needed by the ReLU's backward.
    assert report.training_activation_bytes == 48 * 4
    assert report.param_bytes == (18 + 18) * 4
    assert summary(model.half(), (1, 4, 4)).param_bytes == (18 + 18) * 2


def test_frozen_layers_keep_no_activations_for_training():
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Conv2d(2, 1, 3, padding=1))
    for p in model.parameters():
        p.requires_grad_(False)
    report = summary(model, (1, 4, 4))
    assert report.training_activation_bytes == 0
    assert report.trainable_params == 0 and report.non_trainable_params == report.total_params == 2 * 9 + 2 + 18 + 1


def test_batch_norm_shortcut_keeps_what_autograd_saves():
    # The tracer builds batch norm's output itself (PyTorch's meta batch norm is slow); the saved bytes
    # must be what the real op saves: its input.
    report = summary(nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2)), (1, 4, 4))
    assert report.training_activation_bytes == (16 + 32) * 4  # conv's input, batch norm's input


def test_output_formats():
    report = summary(small_net(), (3, 16, 16), depth=1)
    data = json.loads(report.to_json())
    for key in ("total_params", "trainable_params", "non_trainable_params", "total_macs", "total_flops",
                "param_bytes", "buffer_bytes", "inference_activation_bytes", "training_activation_bytes"):
        assert data[key] == getattr(report, key)
    assert data["total_flops"] == 2 * data["total_macs"]
    assert {"macs", "flops", "params", "receptive_field_pixels"} <= data["rows"][1].keys()

    rows = list(csv.DictReader(io.StringIO(report.to_csv())))
    assert [r["name"] for r in rows] == [r.name for r in report.rows]
    assert sum(int(r["macs"]) for r in rows) == report.total_macs
    assert rows[1]["output_shape"] == "8x8x8" and rows[1]["receptive_field_pixels"] == "3"

    markdown = report.to_markdown()
    assert "| layer | type | output (CxHxW) | params | MACs |" in markdown
    assert f"{report.total_macs:,} MACs" in markdown and f"{report.total_flops:,} FLOPs" in markdown

    console = Console(record=True, width=150)
    console.print(report)
    text = console.export_text()
    assert "Block" in text and f"{report.total_params:,}" in text


def test_a_registered_name_uses_its_card():
    report = summary("resnet50", convention="conv_linear")
    assert report.input_size == (3, 224, 224) and report.model_name == "resnet50"
    assert report.total_params == convzoo.model_card("resnet50").params


def test_too_small_an_input_names_the_smallest_size():
    with pytest.raises(InputSizeError, match="at least 67x67"):
        summary("alexnet", input_size=(3, 66, 66))


def test_a_failing_forward_names_the_module():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Sequential(nn.ReLU(), nn.Conv2d(4, 8, 3)))
    with pytest.raises(ModelForwardError, match=r"module '1\.1' \(Conv2d\)"):
        summary(model, (3, 16, 16))
    # batch norm is not run on the meta device (see trace.py) but is still checked
    with pytest.raises(ModelForwardError, match=r"module '1' \(BatchNorm2d\).*running_mean should contain 8"):
        summary(nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(5)), (3, 16, 16))


def test_bad_arguments():
    with pytest.raises(InputSizeError, match="input_size"):
        summary(small_net())  # a plain module has no card to take the size from
    with pytest.raises(InputSizeError, match="C x H x W like 3x224x224"):
        summary("resnet18", input_size=(224, 224))
    with pytest.raises(ValueError, match="convention"):
        summary(small_net(), (3, 16, 16), convention="flops")
    with pytest.raises(ValueError, match="depth"):
        summary(small_net(), (3, 16, 16), depth=-1)
    with pytest.raises(convzoo.UnknownModelError):
        summary("resnet5O")


def test_building_on_meta_skips_initialisers_of_meta_tensors_only():
    from torch import nn

    from convzoo.analysis.trace import on_meta

    original = nn.init.kaiming_normal_
    with on_meta():
        assert nn.init.kaiming_normal_ is not original
        model = convzoo.create_model("resnet18")
        real = nn.init.constant_(torch.empty(3, device="cpu"), 2.0)  # a real tensor is still initialised
    assert nn.init.kaiming_normal_ is original  # put back
    assert torch.equal(real, torch.full((3,), 2.0))
    assert all(p.is_meta for p in model.parameters())
    assert sum(p.numel() for p in model.parameters()) == convzoo.model_card("resnet18").params
