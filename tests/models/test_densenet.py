"""DenseNet beyond the generic zoo test: torchvision's key names and shapes, the legacy-key remap, the
paper's depths, widths and feature-map sizes, the CIFAR DenseNet-BC configuration, kwargs and the
reported errors.

Key names and shapes checked against torchvision/models/densenet.py (pytorch/vision; the _DenseLayer,
_Transition and DenseNet classes and the densenet121/161/169/201 builders, including _load_state_dict's
legacy-key pattern)."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import convzoo
from convzoo.models.classification.densenet import DenseNet

# torchvision's builders: (growth_rate, block_config, num_init_features).
TORCHVISION_CONFIGS = {
    "densenet121": (32, (6, 12, 24, 16), 64),
    "densenet161": (48, (6, 12, 36, 24), 96),
    "densenet169": (32, (6, 12, 32, 32), 64),
    "densenet201": (32, (6, 12, 48, 32), 64),
}
ALL_DENSENETS = [*TORCHVISION_CONFIGS, "densenet_bc100_k12", "densenet_bc250_k24", "densenet_bc190_k40"]
BN_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def _norm_keys(prefix: str, chans: int) -> dict[str, tuple]:
    shapes = {f"{prefix}.weight": (chans,), f"{prefix}.bias": (chans,)}
    shapes.update({f"{prefix}.{b}": () if b == "num_batches_tracked" else (chans,) for b in BN_BUFFERS})
    return shapes


def torchvision_state_shapes(growth_rate, block_config, num_init_features, num_classes=1000, bn_size=4):
    """The state-dict keys and shapes torchvision's DenseNet has, written out from its source."""
    shapes = {"features.conv0.weight": (num_init_features, 3, 7, 7)}
    shapes.update(_norm_keys("features.norm0", num_init_features))
    chans = num_init_features
    for b, num_layers in enumerate(block_config, start=1):
        for i in range(1, num_layers + 1):
            layer = f"features.denseblock{b}.denselayer{i}"
            shapes.update(_norm_keys(f"{layer}.norm1", chans))
            shapes[f"{layer}.conv1.weight"] = (bn_size * growth_rate, chans, 1, 1)
            shapes.update(_norm_keys(f"{layer}.norm2", bn_size * growth_rate))
            shapes[f"{layer}.conv2.weight"] = (growth_rate, bn_size * growth_rate, 3, 3)
            chans += growth_rate
        if b < len(block_config):
            shapes.update(_norm_keys(f"features.transition{b}.norm", chans))
            shapes[f"features.transition{b}.conv.weight"] = (chans // 2, chans, 1, 1)
            chans //= 2
    shapes.update(_norm_keys("features.norm5", chans))
    shapes["classifier.weight"] = (num_classes, chans)
    shapes["classifier.bias"] = (num_classes,)
    return shapes


def meta_model(name: str, **kwargs) -> nn.Module:
    with torch.device("meta"):
        return convzoo.create_model(name, **kwargs)


@pytest.mark.parametrize("name", TORCHVISION_CONFIGS)
def test_state_dict_has_torchvision_keys_and_shapes(name):
    state = meta_model(name).state_dict()
    expected = torchvision_state_shapes(*TORCHVISION_CONFIGS[name])
    assert {k: tuple(v.shape) for k, v in state.items()} == expected


@pytest.mark.parametrize("name, final_chans, transition_convs", [
    # torchvision's well-known feature widths (the classifier's in_features).
    ("densenet121", 1024, [(128, 256), (256, 512), (512, 1024)]),
    ("densenet161", 2208, [(192, 384), (384, 768), (1056, 2112)]),
    ("densenet169", 1664, [(128, 256), (256, 512), (640, 1280)]),
    ("densenet201", 1920, [(128, 256), (256, 512), (896, 1792)]),
])
def test_imagenet_widths(name, final_chans, transition_convs):
    model = meta_model(name)
    assert model.classifier.in_features == final_chans
    for i, (out_chans, in_chans) in enumerate(transition_convs, start=1):
        assert model.features.get_submodule(f"transition{i}.conv").weight.shape == (out_chans, in_chans, 1, 1)


def torchvision_forward(state, x, block_config):
    """torchvision's DenseNet forward written out with functional ops, reading weights from a state dict."""
    def norm(t, prefix):
        return F.batch_norm(t, state[f"{prefix}.running_mean"], state[f"{prefix}.running_var"],
                            state[f"{prefix}.weight"], state[f"{prefix}.bias"], training=False, eps=1e-5)

    x = F.conv2d(x, state["features.conv0.weight"], stride=2, padding=3)
    x = F.max_pool2d(F.relu(norm(x, "features.norm0")), 3, stride=2, padding=1)
    for b, num_layers in enumerate(block_config, start=1):
        features = [x]
        for i in range(1, num_layers + 1):
            layer = f"features.denseblock{b}.denselayer{i}"
            h = F.conv2d(F.relu(norm(torch.cat(features, 1), f"{layer}.norm1")), state[f"{layer}.conv1.weight"])
            h = F.conv2d(F.relu(norm(h, f"{layer}.norm2")), state[f"{layer}.conv2.weight"], padding=1)
            features.append(h)
        x = torch.cat(features, 1)
        if b < len(block_config):
            transition = f"features.transition{b}"
            x = F.conv2d(F.relu(norm(x, f"{transition}.norm")), state[f"{transition}.conv.weight"])
            x = F.avg_pool2d(x, 2, stride=2)
    x = F.relu(norm(x, "features.norm5")).mean((2, 3))
    return F.linear(x, state["classifier.weight"], state["classifier.bias"])


def test_torchvision_layout_state_dict_loads_strictly_and_gives_its_outputs():
    growth_rate, block_config, num_init_features = 4, (1, 2, 1, 2), 6
    shapes = torchvision_state_shapes(growth_rate, block_config, num_init_features, num_classes=7)
    state = {k: torch.tensor(3) if k.endswith("num_batches_tracked") else
             torch.rand(shape) + 0.5 if k.endswith("running_var") else torch.randn(shape)
             for k, shape in shapes.items()}
    model = DenseNet(growth_rate, block_config, num_init_features, num_classes=7).eval()
    model.load_state_dict(state, strict=True)
    x = torch.randn(2, 3, 48, 40)
    with torch.no_grad():
        assert torch.allclose(model(x), torchvision_forward(state, x, block_config), atol=1e-5)


def _legacy(key: str) -> str:
    for new, old in (("norm1", "norm.1"), ("conv1", "conv.1"), ("norm2", "norm.2"), ("conv2", "conv.2")):
        key = key.replace(f".{new}.", f".{old}.")
    return key


def test_remap_state_dict_renames_legacy_dense_layer_keys():
    model = convzoo.create_model("densenet_bc100_k12")
    state = model.state_dict()
    legacy = {_legacy(k): v for k, v in state.items()}
    assert "features.denseblock2.denselayer16.norm.1.running_var" in legacy
    assert "features.denseblock1.denselayer1.conv.2.weight" in legacy
    legacy_copy = dict(legacy)

    remapped = model.remap_state_dict(legacy)
    assert list(remapped) == list(state)
    assert all(remapped[k] is state[k] for k in state)
    assert legacy == legacy_copy  # the argument is left as it was
    model.load_state_dict(remapped, strict=True)


def test_remap_state_dict_leaves_current_and_other_keys_alone():
    model = meta_model("densenet121")
    state = model.state_dict()
    assert model.remap_state_dict(state) == state
    # Transition and stem modules are named norm/conv/norm0 without a layer number: never touched.
    others = {"features.transition1.norm.weight": 1, "features.norm0.bias": 2, "module.classifier.weight": 3}
    assert model.remap_state_dict(others) == others


@pytest.mark.parametrize("name", ALL_DENSENETS)
def test_depth_in_the_name_counts_convolutions_and_the_classifier(name):
    model = meta_model(name)
    depth = int(name.removeprefix("densenet").removeprefix("_bc").split("_")[0])
    assert sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in model.modules()) == depth


def test_imagenet_feature_maps_are_56_28_14_7_at_224():
    # Paper Table 1: the four dense blocks work at 56x56, 28x28, 14x14 and 7x7.
    model = meta_model("densenet121")
    sizes = []
    for i in range(1, 5):
        block = model.features.get_submodule(f"denseblock{i}")
        block.register_forward_hook(lambda m, args, out: sizes.append(tuple(out.shape[-2:])))
    model(torch.empty(1, 3, 224, 224, device="meta"))
    assert sizes == [(56, 56), (28, 28), (14, 14), (7, 7)]


@pytest.mark.parametrize("name, growth_rate, layers_per_block", [
    ("densenet_bc100_k12", 12, 16), ("densenet_bc250_k24", 24, 41), ("densenet_bc190_k40", 40, 31),
])
def test_cifar_densenet_bc_configuration(name, growth_rate, layers_per_block):
    # Paper section 3: 3x3 first conv of 2k maps, three dense blocks (32, 16, 8), bottleneck 4k, theta 0.5.
    model = meta_model(name)
    assert model.features.conv0.weight.shape == (2 * growth_rate, 3, 3, 3)
    blocks = [model.features.get_submodule(f"denseblock{i}") for i in (1, 2, 3)]
    assert [len(block) for block in blocks] == [layers_per_block] * 3
    assert not hasattr(model.features, "denseblock4") and not hasattr(model.features, "pool0")
    layer = blocks[0].denselayer1
    assert layer.conv1.out_channels == 4 * growth_rate and layer.conv2.out_channels == growth_rate
    for i in (1, 2):
        transition = model.features.get_submodule(f"transition{i}")
        assert transition.conv.out_channels == transition.conv.in_channels // 2
    assert model.classifier.out_features == 10
    sizes = []
    for block in blocks:
        block.register_forward_hook(lambda m, args, out: sizes.append(tuple(out.shape[-2:])))
    model(torch.empty(1, 3, 32, 32, device="meta"))
    assert sizes == [(32, 32), (16, 16), (8, 8)]


def test_densenet_bc100_k12_widths():
    # 24 -> +16*12 = 216 -> 108 -> +192 = 300 -> 150 -> +192 = 342 features before the classifier.
    model = convzoo.create_model("densenet_bc100_k12")
    assert model.features.transition1.conv.weight.shape == (108, 216, 1, 1)
    assert model.features.transition2.conv.weight.shape == (150, 300, 1, 1)
    assert model.classifier.weight.shape == (10, 342)
    assert model.features.norm5.num_features == 342  # torchvision's name for the last norm, kept


def test_cifar_accepts_100_classes():
    model = meta_model("densenet_bc100_k12", num_classes=100)
    assert model(torch.empty(2, 3, 32, 32, device="meta")).shape == (2, 100)
    assert model.classifier.weight.shape == (100, 342)


def test_in_chans_sets_the_first_conv():
    assert meta_model("densenet161", in_chans=1).features.conv0.weight.shape == (96, 1, 7, 7)
    assert meta_model("densenet_bc190_k40", in_chans=5).features.conv0.weight.shape == (80, 5, 3, 3)


@pytest.mark.parametrize("name", ["densenet121", "densenet_bc250_k24"])
def test_kwargs_reach_every_dense_layer(name):
    model = meta_model(name, drop_rate=0.2, memory_efficient=True)
    layers = [m for m in model.modules() if type(m).__name__ == "DenseLayer"]
    assert layers and all(layer.drop_rate == 0.2 and layer.memory_efficient for layer in layers)


def test_memory_efficient_network_matches_the_plain_one():
    config = dict(growth_rate=4, block_config=(2, 3, 2), num_init_features=8, stem="cifar", num_classes=3)
    plain = DenseNet(**config).train()
    efficient = DenseNet(**config, memory_efficient=True).train()
    efficient.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 8, 8)
    out_plain, out_efficient = plain(x), efficient(x)
    out_plain.sum().backward()
    out_efficient.sum().backward()
    assert torch.equal(out_plain, out_efficient)
    for (name, p), q in zip(plain.named_parameters(), efficient.parameters()):
        assert torch.equal(p.grad, q.grad), name
    for (name, a), b in zip(plain.named_buffers(), efficient.buffers()):
        assert torch.equal(a, b), name


def test_initialisation_follows_torchvision():
    model = convzoo.create_model("densenet_bc100_k12")
    conv = model.features.denseblock3.denselayer16.conv1
    fan_in = conv.in_channels
    assert abs(conv.weight.std().item() - (2 / fan_in) ** 0.5) < 0.1 * (2 / fan_in) ** 0.5
    assert all(torch.equal(m.weight, torch.ones_like(m.weight)) and not m.bias.any()
               for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert not model.classifier.bias.any()


@pytest.mark.parametrize("kwargs", [{"stem": "tiny"}, {"compression": 0.0}, {"compression": 1.5}])
def test_bad_configuration_is_refused(kwargs):
    with pytest.raises(ValueError):
        DenseNet(block_config=(1, 1), **kwargs)


def test_cifar_depth_must_be_6n_plus_4():
    from convzoo.models.classification.densenet import _cifar_densenet_bc
    with pytest.raises(ValueError, match="6n \\+ 4"):
        _cifar_densenet_bc(101, 12)


@pytest.mark.parametrize("name, top1, top5", [
    # Paper Table 3, single-crop (the 10-crop numbers are 23.61/6.66, 22.08/5.92, 21.46/5.54).
    ("densenet121", 25.02, 7.71), ("densenet169", 23.80, 6.85), ("densenet201", 22.58, 6.34),
])
def test_reported_imagenet_errors(name, top1, top5):
    assert convzoo.model_card(name).reported == {"imagenet_top1_error": top1, "imagenet_top5_error": top5}


def test_densenet161_has_no_paper_numbers():
    # DenseNet-161 (k=48) is torchvision's; the paper's Table 3 lists 121, 169, 201 and 264 only.
    assert convzoo.model_card("densenet161").reported == {}


@pytest.mark.parametrize("name, c10, c100", [
    # Paper Table 2, C10+ and C100+ (standard augmentation).
    ("densenet_bc100_k12", 4.51, 22.27), ("densenet_bc250_k24", 3.62, 17.60), ("densenet_bc190_k40", 3.46, 17.18),
])
def test_reported_cifar_errors(name, c10, c100):
    card = convzoo.model_card(name)
    assert card.reported == {"cifar10_error": c10, "cifar100_error": c100}
    assert card.num_classes == 10 and card.input_size == (3, 32, 32)


@pytest.mark.parametrize("name, params", [
    ("densenet121", 7_978_856), ("densenet161", 28_681_000), ("densenet169", 14_149_480),
    ("densenet201", 20_013_928), ("densenet_bc100_k12", 769_162), ("densenet_bc250_k24", 15_324_406),
    ("densenet_bc190_k40", 25_624_430),
])
def test_parameter_counts_from_the_issue(name, params):
    model = meta_model(name)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == params
    assert convzoo.model_card(name).params == params
