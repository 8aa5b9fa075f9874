"""Fine-tuning: stages by name, frozen parameters and statistics, per-stage learning rates, --init."""
from __future__ import annotations

import pytest
import torch

from convzoo import create_model, save_weights
from convzoo.training.finetune import freeze, hold_statistics, load_initial_weights, parameter_groups, stages


def test_a_resnet_splits_into_stem_stages_and_head():
    network = create_model("resnet20", num_classes=5)
    assert [(s.name, s.modules) for s in stages(network)] == [
        ("stem", ("conv1", "bn1", "relu")), ("layer1", ("layer1",)), ("layer2", ("layer2",)),
        ("layer3", ("layer3",)), ("head", ("avgpool", "fc"))]
    # No layer<N> modules: the stages LeNet-5 declares (protocol.py), each named by its own last module.
    assert [(s.name, s.modules) for s in stages(create_model("lenet5"))] == [
        ("stem", ("c1", "squash")), ("c3", ("s2", "c3")), ("c5", ("s4", "c5")), ("head", ("f6", "rbf"))]


def test_frozen_stages_get_no_update_and_keep_their_statistics():
    torch.manual_seed(0)
    network = create_model("resnet20", num_classes=5)
    norms = freeze(network, ("stem", "layer1.0.*"))
    frozen = {n: p.clone() for n, p in network.named_parameters() if not p.requires_grad}
    assert frozen and all(n.startswith(("conv1", "bn1", "layer1.0.")) for n in frozen)
    statistics = network.bn1.running_mean.clone()
    optimizer = torch.optim.SGD([p for p in network.parameters() if p.requires_grad], lr=0.1)
    network.train()
    hold_statistics(network, norms, all_norms=False)
    network(torch.randn(4, 3, 32, 32)).sum().backward()
    optimizer.step()
    assert all(torch.equal(p, frozen[n]) for n, p in network.named_parameters() if n in frozen)
    assert torch.equal(network.bn1.running_mean, statistics)
    assert not torch.equal(network.layer2[0].bn1.running_mean, torch.zeros(32))  # the rest still learn them
    with pytest.raises(ValueError, match="'layer9' matches no parameter.*stem, layer1, layer2, layer3, head"):
        freeze(network, ("layer9",))
    network.train()
    hold_statistics(network, norms, all_norms=True)  # --freeze-bn: every batch norm, frozen or not
    assert not any(m.training for m in network.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert network.layer3[0].conv1.training


def test_layer_decay_and_a_body_rate_give_each_stage_its_rate():
    network = create_model("resnet20", num_classes=5)
    rates = {g["stage"]: g["lr"] for g in parameter_groups(network, 0.1, None, 0.5)}
    assert rates == pytest.approx({"stem": 0.1 / 16, "layer1": 0.1 / 8, "layer2": 0.1 / 4, "layer3": 0.1 / 2,
                                   "head": 0.1})
    rates = {g["stage"]: g["lr"] for g in parameter_groups(network, 0.1, 0.01, None)}
    assert rates == {"stem": 0.01, "layer1": 0.01, "layer2": 0.01, "layer3": 0.01, "head": 0.1}
    groups = parameter_groups(network, 0.1, 0.01, None)
    assert sum(len(g["params"]) for g in groups) == len(list(network.parameters()))


def test_init_loads_the_body_of_a_torchvision_layout_file_and_keeps_a_new_head(tmp_path):
    torch.manual_seed(1)
    source = create_model("resnet20", num_classes=10)
    torch.save({"state_dict": source.state_dict()}, tmp_path / "weights.pth")
    save_weights(source, tmp_path / "weights.safetensors")
    for name in ("weights.pth", "weights.safetensors"):
        torch.manual_seed(2)
        target = create_model("resnet20", num_classes=5)
        head = target.fc.weight.clone()
        messages = load_initial_weights(target, tmp_path / name)
        assert torch.equal(target.layer3[2].conv2.weight, source.layer3[2].conv2.weight)
        assert torch.equal(target.fc.weight, head) and any("fc" in m for m in messages)


def test_a_network_without_layer_modules_is_split_as_it_declares_its_stages():
    from types import SimpleNamespace

    from torch import nn

    class Declared(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(4, 8, 3))
            self.classifier = nn.Linear(8, 2)

        def feature_stages(self):
            return [SimpleNamespace(steps=("features.0", "features.1")), SimpleNamespace(steps=("features.2",))]

    network = Declared()
    assert [(s.name, s.modules) for s in stages(network)] == [
        ("stem", ("features.0", "features.1")), ("features.2", ("features.2",)), ("head", ("classifier",))]
    freeze(network, ("stem",))
    assert [n for n, p in network.named_parameters() if not p.requires_grad] == [
        "features.0.weight", "features.0.bias", "features.1.weight", "features.1.bias"]
