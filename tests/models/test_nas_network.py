"""The network a NAS spec compiles to, by Zoph & Le's rules: a layer without inputs reads the image, inputs of
different sizes are zero-padded and concatenated, every unused output (and the last) meets in the final layer;
conv + BN + ReLU with same padding. Exact parameters and MACs against hand formulas, the smallest input, and
a spec trained, evaluated and rebuilt through the engine and the CLI."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import convzoo
from convzoo.cli import main
from convzoo.errors import InputSizeError
from convzoo.nas import EXAMPLE_SPEC, NASNetwork, SpecError, load_spec, save_spec
from convzoo.registry import default_input_size
from convzoo.training import load_checkpoint


def layer(num_filters, fh=3, fw=3, stride=1, inputs=()):
    return {"num_filters": num_filters, "filter_height": fh, "filter_width": fw, "stride": stride,
            "inputs": list(inputs)}


def make(layers, input_size=(1, 8, 8)):
    return {"format": "convzoo-nas-spec", "version": 1, "input_size": list(input_size), "layers": layers}


def capture(model, index):
    """Record the input and the output of `model.layers[index]`."""
    seen = {}

    def hook(module, args, output):
        seen["input"], seen["output"] = args[0].detach().clone(), output.detach().clone()

    model.layers[index].register_forward_hook(hook)
    return seen


def head_input(model):
    """The classifier's input (the pooled final layer)."""
    seen = {}
    model.fc.register_forward_pre_hook(lambda module, args: seen.update(features=args[0].detach().clone()))
    return seen


def test_each_layer_is_conv_bn_relu_with_same_padding():
    model = NASNetwork(make([layer(5, 3, 7), layer(6, 5, 1, stride=2, inputs=[0]), layer(4, 1, 3, stride=3)]),
                       num_classes=3).eval()
    conv, bn, relu = model.layers[0]
    assert isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and isinstance(relu, nn.ReLU)
    assert conv.bias is None and conv.kernel_size == (3, 7) and conv.padding == (1, 3)
    assert model.layers[1][0].stride == (2, 2) and model.layers[1][0].padding == (2, 0)
    sizes = [capture(model, i) for i in range(3)]
    model(torch.randn(2, 1, 11, 10))
    # Same padding: stride 1 keeps the size; stride s gives ceil(side / s).
    assert [tuple(s["output"].shape[1:]) for s in sizes] == [(5, 11, 10), (6, 6, 5), (4, 4, 4)]
    assert all((s["output"] >= 0).all() for s in sizes)


def test_a_layer_without_inputs_reads_the_image():
    model = NASNetwork(make([layer(4), layer(3, inputs=[0]), layer(5, fh=1, fw=1, inputs=[])]), num_classes=2)
    model.eval()
    third = capture(model, 2)
    assert model.layers[2][0].in_channels == 1
    image = torch.randn(2, 1, 8, 8)
    model(image)
    assert torch.equal(third["input"], image)
    first_output = third["output"]
    changed = image.clone()
    changed[:, :, 3, 4] += 5.0
    model(changed)
    # A 1x1 conv on the image: only the changed pixel's output moves.
    moved = (third["output"] != first_output).any(dim=1)
    assert moved[:, 3, 4].all() and moved.sum() == 2


def test_inputs_are_concatenated_in_index_order_and_zero_padded():
    # 7x7 image: layer 0 (stride 2) gives 4x4, layer 1 keeps 7x7; layer 2 reads both (listed out of order).
    spec = make([layer(2, stride=2), layer(3, fh=1, fw=1), layer(4, fh=1, fw=1, inputs=[1, 0])], (1, 7, 7))
    model = NASNetwork(spec, num_classes=2).eval()
    outs = [capture(model, i) for i in range(3)]
    model(torch.randn(2, 1, 7, 7))
    got = outs[2]["input"]
    assert got.shape == (2, 5, 7, 7) and model.layers[2][0].in_channels == 5
    # Layer 0's channels first, padded 3 rows/columns: 1 at the top/left, 2 at the bottom/right, all zeros.
    small = got[:, :2]
    assert torch.equal(small[:, :, 1:5, 1:5], outs[0]["output"])
    border = torch.ones(7, 7, dtype=torch.bool)
    border[1:5, 1:5] = False
    assert torch.equal(small[:, :, border], torch.zeros_like(small[:, :, border]))
    assert torch.equal(got[:, 2:], outs[1]["output"])


def test_unused_outputs_meet_in_the_final_layer_zero_padded():
    # Layer 0 feeds layer 1; layers 1 (stride 2: 4x4) and 2 (8x8, reads the image) are unused; 2 is also last.
    spec = make([layer(3), layer(4, stride=2, inputs=[0]), layer(5, fh=1, fw=1)])
    model = NASNetwork(spec, num_classes=6).eval()
    assert model.head_inputs == (1, 2) and model.fc.in_features == 9
    outs = [capture(model, i) for i in range(3)]
    features = head_input(model)
    logits = model(torch.randn(2, 1, 8, 8))
    assert logits.shape == (2, 6)
    # The global average runs over the zero-padded 8x8 map, so layer 1's mean is its sum over 64 pixels.
    expected = torch.cat([outs[1]["output"].sum(dim=(2, 3)) / 64, outs[2]["output"].mean(dim=(2, 3))], dim=1)
    torch.testing.assert_close(features["features"], expected)
    # The last layer counts even when another layer reads it.
    chained = NASNetwork(make([layer(3), layer(4, inputs=[0]), layer(5, inputs=[0, 1])]), num_classes=2)
    assert chained.head_inputs == (2,) and chained.fc.in_features == 5


def _hand_params(spec, in_chans, num_classes):
    layers = spec["layers"]
    total = 0
    for entry in layers:
        cin = sum(layers[j]["num_filters"] for j in entry["inputs"]) if entry["inputs"] else in_chans
        cout = entry["num_filters"]
        total += entry["filter_height"] * entry["filter_width"] * cin * cout + 2 * cout
    used = {j for entry in layers for j in entry["inputs"]}
    head = sum(entry["num_filters"] for i, entry in enumerate(layers) if i not in used or i == len(layers) - 1)
    return total + head * num_classes + num_classes


SMALL = make([layer(4, 3, 5), layer(6, 1, 3, stride=2, inputs=[0]), layer(5, 5, 1, inputs=[0, 1]),
              layer(3, 3, 3, stride=3)], (2, 9, 8))


def test_parameter_count_by_hand():
    # Layers: 3*5*2*4 + 8 = 128; 1*3*4*6 + 12 = 84; 5*1*10*5 + 10 = 260; 3*3*2*3 + 6 = 60; head (5 + 3) * 7 + 7.
    assert _hand_params(SMALL, 2, 7) == 128 + 84 + 260 + 60 + 63
    model = convzoo.create_model("nas", spec=SMALL, num_classes=7)
    assert sum(p.numel() for p in model.parameters()) == 128 + 84 + 260 + 60 + 63
    example = convzoo.create_model("nas")
    assert sum(p.numel() for p in example.parameters()) == _hand_params(EXAMPLE_SPEC, 1, 10) == example.card.params


def test_summary_macs_by_hand():
    report = convzoo.summary(convzoo.create_model("nas", spec=SMALL, num_classes=7), convention="conv_linear")
    assert report.input_size == (2, 9, 8)  # the spec's, not the card's
    # Output sides: 9x8, 5x4 (stride 2), 9x8 (inputs padded to 9x8), 3x3 (stride 3); then the linear layer.
    macs = (3 * 5 * 2 * 4) * 72 + (1 * 3 * 4 * 6) * 20 + (5 * 1 * 10 * 5) * 72 + (3 * 3 * 2 * 3) * 9 + 8 * 7
    assert report.total_macs == macs
    assert report.trainable_params == _hand_params(SMALL, 2, 7)


def test_create_model_records_the_spec_itself(tmp_path):
    path = save_spec(SMALL, tmp_path / "spec.json")
    model = convzoo.create_model("nas", spec=str(path), num_classes=7)
    assert model.model_args["spec"] == load_spec(SMALL)
    assert model.model_args["in_chans"] == 2  # the spec's channels, not the example's
    assert default_input_size("nas", {"spec": str(path)}) == (2, 9, 8)
    assert default_input_size("nas", {}) == (1, 16, 16) == convzoo.model_card("nas").input_size
    assert default_input_size("resnet18", {"zero_init_residual": True}) == (3, 224, 224)
    with pytest.raises(SpecError, match=r"layers\[0\]\.num_filters"):
        convzoo.create_model("nas", spec={**SMALL, "layers": [layer(0)]})


def test_an_input_too_small_for_a_filter_is_refused_by_name():
    # 8 -> stride 2 -> 4 rows; a 7-tall filter needs 4, so 7 or more rows: 6 rows is too few.
    spec = make([layer(3, stride=2), layer(3, 7, 1, inputs=[0])], (1, 8, 8))
    raw = NASNetwork(spec, num_classes=2).eval()
    assert raw.min_input_size == (7, 2)  # the 3-wide filter of layer 0 needs 2 columns
    raw(torch.randn(1, 1, 7, 2))
    with pytest.raises(InputSizeError, match=r"layers\[1\]\.filter_height = 7 needs an input height of at least 4, "
                                             r"but a 6x8 image gives this layer 3"):
        raw(torch.randn(1, 1, 6, 8))
    guarded = convzoo.create_model("nas", spec=spec, num_classes=2)
    with pytest.raises(InputSizeError, match="at least 7x2"):
        guarded(torch.randn(1, 1, 6, 8))


def test_the_example_spec_is_the_cards_network():
    card = convzoo.model_card("nas")
    assert card.family == "nas" and card.paper.arxiv == "1611.01578"
    assert card.input_size == tuple(EXAMPLE_SPEC["input_size"]) and card.num_classes == 10
    assert card.min_input_size == NASNetwork(EXAMPLE_SPEC).min_input_size == (7, 7)
    assert convzoo.summary("nas", convention="conv_linear").total_macs == card.macs


def test_example_learns_a_batch():
    # Real computation end to end: a few steps on one batch of random labels drive the loss down.
    model = convzoo.create_model("nas", spec=SMALL, num_classes=3)
    x, y = torch.randn(8, 2, 9, 8), torch.randint(0, 3, (8,))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    first = F.cross_entropy(model(x), y).item()
    for _ in range(20):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
    assert loss.item() < first / 2


def test_train_a_spec_then_evaluate_and_predict_from_the_run(tmp_path, capsys):
    spec = make([layer(8), layer(8, 3, 3, inputs=[0]), layer(8, 1, 5, inputs=[])])
    path = save_spec(spec, tmp_path / "spec.json")
    run = tmp_path / "run"
    assert main(["train", "nas", "--spec", str(path), "--data", "digits", "--epochs", "1", "--out", str(run),
                 "--threads", "1"]) == 0
    assert "at 1x8x8" in capsys.readouterr().out  # the spec's input size
    config = json.loads((run / "config.json").read_text())
    assert config["config"]["model_args"]["spec"] == load_spec(spec)
    path.unlink()  # the run holds the architecture itself
    checkpoint = load_checkpoint(run)
    assert checkpoint.model.model_args["spec"]["layers"] == load_spec(spec)["layers"]
    assert load_spec(run) == load_spec(spec)
    # The rebuilt network scores what the training measured on the same test split.
    assert main(["eval", str(run), "--data", "digits", "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)[0]
    trained = json.loads((run / "results.json").read_text())
    assert evaluated["images"] == trained["images"] == 355
    assert evaluated["top1_accuracy"] == pytest.approx(trained["top1_accuracy"])
    assert evaluated["loss"] == pytest.approx(trained["loss"], rel=1e-5)
    from PIL import Image

    image = tmp_path / "digit.png"
    Image.fromarray((torch.rand(8, 8) * 255).byte().numpy()).save(image)
    assert main(["predict", str(run), str(image), "--top", "3", "--json"]) == 0
    (predicted,) = json.loads(capsys.readouterr().out)
    assert predicted["image"].endswith("digit.png") and len(predicted["predictions"]) == 3
    assert {p["class"] for p in predicted["predictions"]} <= set("0123456789")


def test_train_refuses_a_spec_for_another_network_and_a_too_small_input(tmp_path, capsys):
    path = save_spec(make([layer(4, stride=2), layer(4, 7, 7, inputs=[0])], (1, 16, 16)), tmp_path / "spec.json")
    assert main(["train", "lenet5", "--spec", str(path), "--out", str(tmp_path / "a")]) == 2
    assert "--spec describes a nas network" in capsys.readouterr().err
    assert main(["train", "nas", "--spec", str(path), "--input-size", "6", "--out", str(tmp_path / "b")]) == 2
    assert "nas needs an input of at least 7x7 pixels; got 6x6" in capsys.readouterr().err
    assert main(["train", "nas", "--spec", str(tmp_path / "none.json"), "--out", str(tmp_path / "c")]) == 2
    assert "does not exist" in capsys.readouterr().err
