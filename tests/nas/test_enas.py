"""ENAS: the shared network computes what a NASNetwork of the child's spec computes, only the child's weights
learn, and the search writes a spec that retrains from scratch and resumes exactly."""
import io
import json
import random

import pytest
import torch
from rich.console import Console

from convzoo import create_model
from convzoo.errors import RunFolderError
from convzoo.nas import enas
from convzoo.nas.enas import EnasSettings, SharedNetwork, shared_step
from convzoo.nas.folder import SearchFolder
from convzoo.nas.config import SearchConfig
from convzoo.nas.search import search
from convzoo.nas.space import SearchSpace
from convzoo.nas.spec import SpecError, load_spec, spec_key

SPACE = SearchSpace(filter_sizes=(1, 3, 5), num_filters=(4, 6, 8), strides=(1, 2))
INPUT = (1, 8, 8)


def _random_children(count: int, num_layers: int, seed: int) -> list[list[dict]]:
    rng = random.Random(seed)
    return [SPACE.random_layers(num_layers, rng) for _ in range(count)]


def _network_with_child_weights(shared: SharedNetwork, layers: list[dict]):
    """A NASNetwork built from the child's spec, its weights copied from the shared network's cut."""
    network = create_model("nas", spec=SPACE.make_spec(layers, INPUT), num_classes=shared.num_classes)
    cut = shared.child_weights(layers)
    state = {}
    for i, (conv, bn_weight, bn_bias) in enumerate(cut["layers"]):
        state[f"layers.{i}.0.weight"], state[f"layers.{i}.1.weight"], state[f"layers.{i}.1.bias"] = (
            conv, bn_weight, bn_bias)
    state["fc.weight"], state["fc.bias"] = cut["fc"]
    result = network.load_state_dict({k: v.detach().clone() for k, v in state.items()}, strict=False)
    assert not result.unexpected_keys and all("running" in k or "num_batches" in k for k in result.missing_keys)
    return network


def test_child_computes_what_its_nas_network_computes():
    torch.manual_seed(0)
    shared = SharedNetwork(SPACE, 3, INPUT, num_classes=5)
    with torch.no_grad():  # batch-norm scales and shifts away from 1 and 0, so a wrong cut would show
        for parameter in shared.parameters():
            parameter.normal_()
    images = torch.randn(6, *INPUT)
    children = _random_children(8, 3, seed=1)
    assert any(len(layer["inputs"]) > 1 for child in children for layer in child)  # concatenated inputs
    assert any(layer["stride"] == 2 for child in children for layer in child)      # zero-padded inputs
    for layers in children:
        network = _network_with_child_weights(shared, layers).train()  # batch statistics, as the shared net
        torch.testing.assert_close(shared(images, layers), network(images), rtol=1e-5, atol=1e-5)


def test_a_step_changes_only_the_childs_blocks():
    torch.manual_seed(0)
    shared = SharedNetwork(SPACE, 3, INPUT, num_classes=5)
    layers = [{"num_filters": 6, "filter_height": 3, "filter_width": 5, "stride": 1, "inputs": []},
              {"num_filters": 4, "filter_height": 1, "filter_width": 1, "stride": 1, "inputs": []},
              {"num_filters": 8, "filter_height": 5, "filter_width": 3, "stride": 1, "inputs": [1]}]
    before = {name: p.detach().clone() for name, p in shared.named_parameters()}
    optimizer = torch.optim.SGD(shared.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    shared_step(shared, optimizer, layers, torch.randn(8, *INPUT), torch.arange(8) % 5, weight_decay=1e-2,
                clip_grad_norm=5.0)

    used = {"layers.0": "3x5", "layers.1": "1x1", "layers.2": "5x3"}
    for name, parameter in shared.named_parameters():
        layer = ".".join(name.split(".")[:2])
        if name.startswith("layers.") and not name.endswith(used[layer]):
            assert parameter.grad is None and torch.equal(parameter, before[name]), name  # another kernel
    # Layer 2 (5x3, 8 filters) reads layer 1 only: input channels 1 + 8 .. 1 + 8 + 4 (the image has 1 channel,
    # every earlier layer a block of max_filters = 8).
    weight, grad, old = shared.layers[2].weight["5x3"], shared.layers[2].weight["5x3"].grad, before[
        "layers.2.weight.5x3"]
    changed = weight != old
    assert grad[:, 9:13].abs().sum() > 0 and changed[:, 9:13].all()
    assert not grad[:, :9].any() and not grad[:, 13:].any() and not changed[:, :9].any() and not changed[:, 13:].any()
    # Layer 0's 6 filters of 8 took a gradient, its other 2 did not; likewise their batch-norm scales.
    grad0 = shared.layers[0].weight["3x5"].grad
    assert grad0[:6].abs().sum() > 0 and not grad0[6:].any()
    assert not shared.layers[0].bn_weight["3x5"].grad[6:].any()
    # The head reads layers 0 and 2 (layer 1 feeds layer 2): blocks 0..6 and 16..24 of its inputs.
    fc_grad = shared.fc.weight.grad
    assert fc_grad[:, :6].abs().sum() > 0 and fc_grad[:, 16:24].abs().sum() > 0
    assert not fc_grad[:, 6:16].any() and not fc_grad[:, 24:].any()
    assert torch.equal(shared.fc.weight[:, 6:16], before["fc.weight"][:, 6:16])

    # The next child uses other kernels: the first child's kernels, though their momentum is not zero, stay put.
    first_kernels = ("3x5", "1x1", "5x3")
    used_before = {name: p.detach().clone() for name, p in shared.named_parameters() if name.endswith(first_kernels)}
    other = [{**layers[0], "filter_height": 1, "filter_width": 3}, {**layers[1], "filter_height": 3},
             {**layers[2], "filter_height": 1}]
    shared_step(shared, optimizer, other, torch.randn(8, *INPUT), torch.arange(8) % 5, weight_decay=1e-2)
    for name, parameter in shared.named_parameters():
        if name in used_before:
            assert torch.equal(parameter, used_before[name]), name


def test_shared_network_refuses_children_it_cannot_run():
    shared = SharedNetwork(SPACE, 2, INPUT, num_classes=3)
    good = {"num_filters": 4, "filter_height": 3, "filter_width": 3, "stride": 1, "inputs": []}
    with pytest.raises(SpecError, match="2 layers"):
        shared(torch.randn(2, *INPUT), [good])
    with pytest.raises(SpecError, match=r"layers\[1\]\.num_filters"):
        shared(torch.randn(2, *INPUT), [good, {**good, "num_filters": 5, "inputs": [0]}])
    with pytest.raises(SpecError, match=r"layers\[1\]\.inputs"):
        shared(torch.randn(2, *INPUT), [good, {**good, "inputs": [1]}])


@pytest.mark.parametrize("settings, match", [
    ({"controller_steps": 0}, "enas.controller_steps"),
    ({"lr_min": -1.0}, "enas.lr_min"),
    ({"clip_grad_norm": 0}, "enas.clip_grad_norm"),
    ({"reward_batch_size": 2.5}, "enas.reward_batch_size"),
    ({"epochs": 3}, "unknown ENAS settings: epochs"),
])
def test_bad_settings_are_refused_by_name(settings, match):
    with pytest.raises(ValueError, match=match):
        EnasSettings.from_dict(settings)


def _tiny_config(**changes) -> SearchConfig:
    values = dict(method="enas", input_size=INPUT, space=SearchSpace(filter_sizes=(1, 3), num_filters=(4, 8)),
                  start_layers=2, budget=3, children_per_update=2, epochs=2, reward_epochs=1, batch_size=128,
                  enas={"controller_steps": 2, "reward_batch_size": 32})
    return SearchConfig(**{**values, **changes})


def _state_without_timings(folder) -> dict:
    state = SearchFolder(folder).load_state()
    for row in state["history"]:
        row.pop("seconds")
    return state


def _assert_same(a, b, where="state"):
    assert type(a) is type(b), where
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            _assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def test_a_tiny_search_writes_a_spec_that_builds(tmp_path):
    result = search(_tiny_config(), tmp_path / "enas", console=Console(file=io.StringIO()))
    folder = SearchFolder(tmp_path / "enas")
    for path in (folder.config, folder.state_tensors, folder.state_json, folder.leaderboard_csv,
                 folder.leaderboard_json, folder.rewards_png, folder.best):
        assert path.is_file(), path
    rows = folder.read_leaderboard()
    assert [row["index"] for row in rows] == [0, 1, 2] and rows == json.loads(json.dumps(result.rows))
    best = load_spec(tmp_path / "enas")  # the folder's best.json
    assert spec_key(best) == result.best["key"] and best["meta"]["method"] == "enas"
    assert result.best["val_accuracy"] == max(row["val_accuracy"] for row in rows)
    network = create_model("nas", spec=tmp_path / "enas" / "best.json", num_classes=10)
    assert network(torch.randn(2, *INPUT)).shape == (2, 10)
    state = folder.load_state()
    assert len(state["history"]) == 2 and len(state["rewards"]) == 2 * 2 * 2  # epochs x steps x children


def test_resume_after_epoch_one_equals_an_uninterrupted_search(tmp_path, monkeypatch):
    quiet = Console(file=io.StringIO())
    search(_tiny_config(), tmp_path / "whole", console=quiet)

    real_train_controller = enas.train_controller
    calls = []

    def crash_in_epoch_two(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the search stops after epoch 1's state was saved
        return real_train_controller(*args, **kwargs)

    monkeypatch.setattr(enas, "train_controller", crash_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        search(_tiny_config(), tmp_path / "resumed", console=quiet)
    assert len(SearchFolder(tmp_path / "resumed").load_state()["history"]) == 1
    assert not (tmp_path / "resumed" / "best.json").exists()
    monkeypatch.setattr(enas, "train_controller", real_train_controller)
    search(_tiny_config(), tmp_path / "resumed", resume=True, console=quiet)

    _assert_same(_state_without_timings(tmp_path / "whole"), _state_without_timings(tmp_path / "resumed"))
    assert (SearchFolder(tmp_path / "whole").read_leaderboard()
            == SearchFolder(tmp_path / "resumed").read_leaderboard())


def test_bad_search_settings_are_refused_before_anything_is_written(tmp_path):
    quiet = Console(file=io.StringIO())
    with pytest.raises(ValueError, match="enas.lr_min"):
        search(_tiny_config(lr=0.01, enas={"lr_min": 0.1}), tmp_path / "a", console=quiet)
    with pytest.raises(ValueError, match="train_settings"):
        search(_tiny_config(train_settings={"lr_scheduler": "step"}), tmp_path / "b", console=quiet)
    with pytest.raises(ValueError, match="unknown ENAS settings: steps"):
        search(_tiny_config(enas={"steps": 3}), tmp_path / "c", console=quiet)
    with pytest.raises(ValueError, match="batch_size 5000"):
        search(_tiny_config(batch_size=5000), tmp_path / "d", console=quiet)
    assert not any((tmp_path / name).exists() for name in "abcd")
    search(_tiny_config(epochs=1), tmp_path / "e", console=quiet)
    before = (tmp_path / "e" / "state.safetensors").read_bytes()
    with pytest.raises(RunFolderError, match="enas"):
        search(_tiny_config(epochs=1, enas={"controller_steps": 3}), tmp_path / "e", resume=True, console=quiet)
    assert (tmp_path / "e" / "state.safetensors").read_bytes() == before


def test_children_that_cannot_be_built_get_reward_zero_and_are_not_trained(tmp_path):
    # A stride-3 7x7 layer turns 8x8 into 3x3, where a 7x7 filter reaching 3 rows past its centre only sees
    # padding: any child with a layer reading another layer is invalid (7 in 8 at the controller's start).
    space = SearchSpace(filter_sizes=(7,), num_filters=(4,), strides=(3,))
    shared = SharedNetwork(space, 3, INPUT, num_classes=10)
    layer = {"num_filters": 4, "filter_height": 7, "filter_width": 7, "stride": 3}
    invalid = [{**layer, "inputs": []}, {**layer, "inputs": [0]}, {**layer, "inputs": []}]
    assert "layers[1].filter_height" in enas.unrunnable(shared, invalid)
    result = search(_tiny_config(space=space, start_layers=3, budget=24), tmp_path / "s",
                    console=Console(file=io.StringIO()))
    errors = [row for row in result.rows if row["error"]]
    assert errors and all(row["reward"] == 0 and row["spec"] is None for row in errors)
    assert "invalid" in errors[0]["error"] and result.best["error"] is None and result.best["reward"] > 0
    assert all(layer["inputs"] == [] for layer in load_spec(tmp_path / "s")["layers"])


def test_enas_takes_fewer_epochs_than_the_reward_epochs_it_does_not_use():
    from convzoo.nas.search import SearchConfig

    assert SearchConfig.for_method({"method": "enas", "epochs": 3}).epochs == 3
    with pytest.raises(ValueError, match="reward_epochs"):
        SearchConfig.for_method({"method": "reinforce", "epochs": 3})
