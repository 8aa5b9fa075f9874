import json
import pickle
import re
import warnings

import pytest
import torch
from safetensors import safe_open

import convzoo
from convzoo.errors import WeightsError


@pytest.fixture(scope="module")
def resnet18_file(tmp_path_factory):
    torch.manual_seed(1)
    model = convzoo.create_model("resnet18").eval()
    path = tmp_path_factory.mktemp("w") / "resnet18.safetensors"
    convzoo.save_weights(model, path)
    return model, path


def _same_weights(a, b, skip=()):
    sa, sb = a.state_dict(), b.state_dict()
    return all(torch.equal(sa[k], sb[k]) for k in sa if not any(k.startswith(s) for s in skip))


def test_safetensors_round_trip_keeps_outputs_and_describes_itself(resnet18_file):
    model, path = resnet18_file
    other = convzoo.create_model("resnet18").eval()
    convzoo.load_weights(other, path)
    x = torch.randn(2, 3, 64, 64)
    assert torch.equal(model(x), other(x))
    with safe_open(str(path), "pt") as f:
        meta = json.loads(f.metadata()["convzoo"])
    assert meta["model"] == {"name": "resnet18", "num_classes": 1000, "in_chans": 3}


def test_save_leaves_no_temporary_files(resnet18_file):
    _, path = resnet18_file
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_weights_only_torch_file_wrapped_and_prefixed(resnet18_file, tmp_path):
    model, _ = resnet18_file
    wrapped = {"epoch": 3, "state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}
    torch.save(wrapped, tmp_path / "ckpt.pth")
    other = convzoo.create_model("resnet18")
    convzoo.load_weights(other, tmp_path / "ckpt.pth")
    assert _same_weights(model, other)


class _RunsCode:
    def __reduce__(self):
        import os
        return (os.system, (f"touch {_RunsCode.marker}",))


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    _RunsCode.marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"conv1.weight": _RunsCode()}, f)
    with pytest.raises(WeightsError, match="refusing"):
        convzoo.load_weights(convzoo.create_model("resnet18"), path)
    assert not _RunsCode.marker.exists()


def test_not_a_state_dict(tmp_path):
    torch.save([torch.zeros(3)], tmp_path / "list.pth")
    with pytest.raises(WeightsError, match="not a state dict"):
        convzoo.load_weights(convzoo.create_model("resnet18"), tmp_path / "list.pth")


def test_truncated_file_is_a_clear_error(resnet18_file, tmp_path):
    _, path = resnet18_file
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(path.read_bytes()[: 10_000])
    with pytest.raises(WeightsError, match="truncated or corrupt"):
        convzoo.load_weights(convzoo.create_model("resnet18"), cut)
    with pytest.raises(FileNotFoundError):
        convzoo.load_weights(convzoo.create_model("resnet18"), tmp_path / "nope.safetensors")


@pytest.mark.slow  # the network that fits is found by building every registered network (on meta)
def test_wrong_network_lists_keys_and_names_the_network_that_fits(resnet18_file):
    _, path = resnet18_file
    with pytest.raises(WeightsError) as info:
        convzoo.load_weights(convzoo.create_model("resnet34"), path)
    message = str(info.value)
    assert "missing keys" in message and "layer1.2.conv1.weight" in message
    assert "the file fits: resnet18" in message


def test_other_class_count_drops_the_classifier_with_a_message(resnet18_file):
    model, path = resnet18_file
    other = convzoo.create_model("resnet18", num_classes=10)
    fc_before = other.fc.weight.clone()
    with pytest.warns(UserWarning, match="classifier"):
        report = convzoo.load_weights(other, path)
    assert report.dropped_classifier == ["fc"]
    assert torch.equal(other.fc.weight, fc_before)
    assert _same_weights(model, other, skip=("fc.",))


def test_grey_input_adapts_the_first_conv(resnet18_file):
    model, path = resnet18_file
    grey = convzoo.create_model("resnet18", in_chans=1).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = convzoo.load_weights(grey, path)
    assert report.adapted_input_conv.startswith("conv1.weight")
    x = torch.randn(2, 1, 64, 64)
    # Summing the filters over colour makes a grey image score as its three-channel copy does.
    torch.testing.assert_close(grey(x), model(x.expand(-1, 3, -1, -1)), rtol=1e-4, atol=1e-4)


def test_random_bytes_are_called_not_a_weights_file_and_no_torch_warning_leaks(tmp_path):
    model = convzoo.create_model("lenet5")
    generator = torch.Generator().manual_seed(0)
    for name, head in (("noise.pth", b""), ("pickle-like.pth", b"\x80\x02"), ("zip-like.pth", b"PK")):
        path = tmp_path / name
        path.write_bytes(head + bytes(torch.randint(0, 256, (2000,), generator=generator, dtype=torch.uint8).tolist()))
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # any warning fails the test
            with pytest.raises(WeightsError, match="is not a PyTorch or safetensors weights file") as raised:
                convzoo.load_weights(model, path)
        assert "pickle holding objects" not in str(raised.value) and "weights_only" not in str(raised.value)


def test_a_nas_network_adapts_every_layer_that_reads_the_image(tmp_path):
    grey = convzoo.create_model("nas").eval()  # the example spec: layers 0 and 1 read the image
    reading = [f"layers.{i}.0.weight" for i, inputs in enumerate(grey.inputs) if not inputs]
    assert len(reading) == 2
    path = convzoo.save_weights(grey, tmp_path / "grey.safetensors")
    colour = convzoo.create_model("nas", in_chans=3).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = convzoo.load_weights(colour, path)
    assert re.findall(r"layers\.\d+\.0\.weight", report.adapted_input_conv) == reading
    x = torch.randn(2, 1, 16, 16)
    # Each filter repeated over colour and scaled by 1/3: a grey image copied to three channels scores the same.
    torch.testing.assert_close(colour(x.expand(-1, 3, -1, -1)), grey(x), rtol=1e-4, atol=1e-5)


def test_four_channels_repeat_the_filters_cyclically_scaled_by_three_quarters(resnet18_file):
    """in_chans=4 from a 3-channel file: channels R, G, B, R, each filter times trained/in_chans = 3/4, so an
    image with the same value in every channel sums to the same response as its colour copy, up to the repeat."""
    model, path = resnet18_file
    four = convzoo.create_model("resnet18", in_chans=4).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = convzoo.load_weights(four, path)
    assert report.adapted_input_conv.startswith("conv1.weight")
    trained = model.conv1.weight
    expected = torch.cat([trained, trained[:, :1]], dim=1) * (3 / 4)
    assert torch.equal(four.conv1.weight, expected)
    assert _same_weights(model, four, skip=("conv1.",))


@pytest.mark.parametrize("prefix", ["_orig_mod.", "module._orig_mod."])
def test_a_compiled_models_prefixed_file_loads(resnet18_file, tmp_path, prefix):
    """torch.compile saves its keys under `_orig_mod.` (and DataParallel's `module.` on top): both are stripped."""
    from safetensors.torch import save_file

    model, _ = resnet18_file
    state = {f"{prefix}{k}": v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(tmp_path / "compiled.safetensors"))
    torch.save(state, tmp_path / "compiled.pth")
    for name in ("compiled.safetensors", "compiled.pth"):
        other = convzoo.create_model("resnet18")
        convzoo.load_weights(other, tmp_path / name)
        assert _same_weights(model, other), name
