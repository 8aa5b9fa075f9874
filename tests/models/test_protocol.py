"""The model protocol (protocol.py) over every registered network, in the spirit of timm's tests/test_models.py
and torchvision's feature-extraction tests: forward_features + forward_head is the forward, reset_classifier
and num_classes=0 give the shapes they promise, the declared feature_info matches the feature maps, torch.fx
traces every network to the eager output, and a torchvision-style create_feature_extractor written with
torch.fx alone returns the declared stages.

Outputs are compared on real tensors (seeded) for the networks small enough to run cheaply here; the others
are built on the meta device, where the same checks compare shapes."""
from __future__ import annotations

import math

import pytest
import torch
import torch.fx
import torch.nn.functional as F

import convzoo
from convzoo.protocol import Classifier, ConvzooModel

ALL = convzoo.list_models()
CLASSIFIERS = convzoo.list_models(task="classification")
SEGMENTERS = convzoo.list_models(task="segmentation")
# Real tensors where building and running the network costs little; the meta device elsewhere.
REAL_LIMIT = 4_000_000


def is_real(name: str) -> bool:
    return convzoo.model_card(name).params <= REAL_LIMIT


def build(name: str, real: bool, **kwargs) -> torch.nn.Module:
    if real:
        return convzoo.create_model(name, **kwargs).eval()
    with torch.device("meta"):
        return convzoo.create_model(name, **kwargs).eval()


def sample(name: str, real: bool, batch: int = 2, size: tuple[int, int] | None = None) -> torch.Tensor:
    card = convzoo.model_card(name)
    if size is None:
        # LeNet-5's and GoogLeNet's fixed heads take one size range only: their default size.
        size = tuple(card.input_size[1:] if name in ("lenet5", "googlenet") else card.min_input_size)
    if not real:
        return torch.empty(batch, card.input_size[0], *size, device="meta")
    generator = torch.Generator().manual_seed(0)
    return torch.randn(batch, card.input_size[0], *size, generator=generator)


def assert_same(actual, expected, real: bool):
    if isinstance(expected, dict):
        assert set(actual) == set(expected)
        for key in expected:
            assert_same(actual[key], expected[key], real)
        return
    assert actual.shape == expected.shape
    if real:
        torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)


def test_every_registered_network_implements_the_protocol():
    for name in ALL:
        with torch.device("meta"):
            model = convzoo.create_model(name)
        assert isinstance(model, ConvzooModel), name
        assert isinstance(model, Classifier) == (convzoo.model_card(name).task == "classification"), name


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_forward_features_then_forward_head_is_the_forward(name):
    real = is_real(name)
    model = build(name, real, num_classes=7)
    x = sample(name, real)
    with torch.no_grad():
        features = model.forward_features(x)
        assert features.dim() == 4 and features.shape[1] == model.feature_info.channels(-1)
        assert_same(model.forward_head(features), model(x), real)
        pre_logits = model.forward_head(features, pre_logits=True)
    assert tuple(pre_logits.shape) == (2, model.num_features)


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_reset_classifier_gives_the_new_shape_and_keeps_the_body(name):
    real = is_real(name)
    model = build(name, real)
    body = {k: v.clone() for k, v in model.state_dict().items()
            if not k.startswith(model.classifier_path + ".")}
    x = sample(name, real)
    with torch.no_grad():
        before = model.forward_features(x)
        model.reset_classifier(5)
        assert tuple(model(x).shape) == (2, 5)
        assert_same(model.forward_features(x), before, real)
        model.reset_classifier(0)
        assert tuple(model(x).shape) == (2, model.num_features)
    assert isinstance(model.get_classifier(), torch.nn.Identity)
    after = model.state_dict()
    assert set(body) <= set(after)
    if real:
        assert all(torch.equal(after[k], v) for k, v in body.items())


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_num_classes_zero_returns_the_pooled_features(name):
    model = build(name, real=False, num_classes=0)
    out = model(sample(name, real=False))
    assert tuple(out.shape) == (2, model.num_features)
    assert not any(k.startswith(model.classifier_path + ".") for k in model.state_dict())


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_feature_info_matches_the_features_only_outputs(name):
    """Channels equal, and each stage's map grows by exactly step/reduction pixels when the input grows by a
    step that every stride divides: the reduction, also for networks whose unpadded convolutions shrink."""
    model = build(name, real=False)
    info = model.feature_info
    step = max(info.reduction())
    card = convzoo.model_card(name)
    size = max(card.min_input_size[0], 2 * step, 64 if name != "googlenet" else card.input_size[1])
    extractor = build(name, real=False, features_only=True)
    assert [i.module for i in extractor.feature_info] == info.module_name()
    small = extractor(sample(name, False, size=(size, size)))
    large = extractor(sample(name, False, size=(size + step, size + step)))
    assert [f.shape[1] for f in small] == info.channels()
    for a, b, reduction in zip(small, large, info.reduction()):
        assert b.shape[-1] - a.shape[-1] == step // reduction
    # forward_intermediates returns the same maps and ends where forward_features ends.
    final, intermediates = model.forward_intermediates(sample(name, False, size=(size, size)))
    assert [t.shape for t in intermediates] == [t.shape for t in small]
    assert final.shape == model.forward_features(sample(name, False, size=(size, size))).shape


@pytest.mark.parametrize("name", ALL)
def test_fx_symbolic_trace_equals_eager(name):
    real = is_real(name)
    model = build(name, real)
    traced = torch.fx.symbolic_trace(model)
    x = sample(name, real)
    with torch.no_grad():
        assert_same(traced(x), model(x), real)


class ScopeTracer(torch.fx.Tracer):
    """torchvision's node naming, with torch.fx alone: a module call's output node is named by the module's
    path, with _1, _2 ... for its later calls (a shared ReLU)."""

    def __init__(self):
        super().__init__()
        self.outputs: dict[str, torch.fx.Node] = {}

    def call_module(self, module, forward, args, kwargs):
        out = super().call_module(module, forward, args, kwargs)
        path = self.path_of_module(module)
        if isinstance(out, torch.fx.Proxy):
            name, k = path, 1
            while name in self.outputs:
                name, k = f"{path}_{k}", k + 1
            self.outputs[name] = out.node
        return out


def create_feature_extractor(model: torch.nn.Module, return_nodes: dict[str, str]) -> torch.fx.GraphModule:
    """torchvision's recipe: trace, point the graph's output at the named nodes (a dict), drop the rest."""
    tracer = ScopeTracer()
    graph = tracer.trace(model)
    output = next(node for node in graph.nodes if node.op == "output")
    with graph.inserting_before(output):
        new_output = graph.output({key: tracer.outputs[node] for node, key in return_nodes.items()})
    graph.erase_node(output)
    graph.eliminate_dead_code()
    del new_output
    return torch.fx.GraphModule(tracer.root, graph)


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_fx_feature_extractor_returns_the_declared_stages(name):
    real = is_real(name)
    model = build(name, real)
    stages = model.feature_stages()
    calls: dict[str, int] = {}
    return_nodes = {}
    for index, stage in enumerate(stages):
        for step in stage.steps:
            calls[step] = calls.get(step, 0) + 1
        count = calls[stage.module]
        return_nodes[stage.module if count == 1 else f"{stage.module}_{count - 1}"] = f"stage{index}"
    extractor = create_feature_extractor(model, return_nodes)
    x = sample(name, real)
    with torch.no_grad():
        got = extractor(x)
        _, expected = model.forward_intermediates(x)
    assert list(got) == [f"stage{i}" for i in range(len(stages))]
    for stage, key, want in zip(stages, got, expected):
        assert_same(F.relu(got[key]) if stage.final_relu else got[key], want, real)


def test_the_input_guard_scripts_with_the_network_and_still_refuses():
    model = convzoo.create_model("resnet20", num_classes=3).eval()
    scripted = torch.jit.script(model)
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(scripted(x), model(x))
    with pytest.raises(Exception, match="built for 3-channel input but got 1 channels"):
        scripted(torch.randn(2, 1, 8, 8))


def test_list_models_takes_timms_filters_and_any_case():
    assert convzoo.list_models("ResNet1*") == convzoo.list_models("resnet1*") != []
    assert "resnet18" in convzoo.list_models("RESNET*", exclude="*50*")
    assert not any("50" in n for n in convzoo.list_models("resnet*", exclude="*50*"))
    assert convzoo.list_models(module="vgg") == [n for n in ALL if n.startswith("vgg")]
    assert convzoo.list_models(module="resnet_cifar") and "resnet18" not in convzoo.list_models(module="resnet_cifar")
    assert convzoo.list_models(pretrained=True) == []  # no weights ship
    assert convzoo.model_card("ResNet18").name == "resnet18"


@pytest.mark.parametrize("kwargs", [{"pretrained": True}, {"weights": "IMAGENET1K_V1"}])
def test_pretrained_weights_are_refused_with_the_way_to_load_a_file(kwargs):
    with pytest.raises(convzoo.errors.PretrainedWeightsError, match="checkpoint_path=FILE"):
        convzoo.create_model("resnet18", **kwargs)


def test_checkpoint_path_and_pretrained_cfg_file_load_a_local_file(tmp_path):
    source = convzoo.create_model("resnet20")
    path = convzoo.save_weights(source, tmp_path / "r20.safetensors")
    for kwargs in ({"checkpoint_path": path}, {"pretrained_cfg": {"file": str(path)}}):
        loaded = convzoo.create_model("resnet20", **kwargs)
        assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), source.state_dict().values()))
    with pytest.raises(convzoo.errors.PretrainedWeightsError, match="dict\\(file=PATH\\)"):
        convzoo.create_model("resnet20", pretrained_cfg={"url": "https://example.com"})


def test_drop_path_rate_is_drop_path_or_a_clear_refusal():
    with torch.device("meta"):
        a = convzoo.create_model("resnet20", drop_path_rate=0.3)
        b = convzoo.create_model("resnet20", drop_path=0.3)
    assert str(a) == str(b) and "drop_prob=0.3" in str(a)
    with pytest.raises(convzoo.errors.ModelArgumentError, match="no residual paths to drop"):
        convzoo.create_model("vgg11", drop_path_rate=0.1)
    with pytest.raises(convzoo.errors.ModelArgumentError, match="does not take the argument 'nonsense'"):
        convzoo.create_model("resnet20", nonsense=1)


@pytest.mark.parametrize("pool", ["avg", "max", "avgmax"])
def test_global_pool_chooses_the_pooling(pool):
    model = convzoo.create_model("resnet20", num_classes=0, global_pool=pool).eval()
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    features = model.forward_features(x)
    expected = {"avg": features.mean((2, 3)), "max": features.amax((2, 3)),
                "avgmax": 0.5 * (features.mean((2, 3)) + features.amax((2, 3)))}[pool]
    torch.testing.assert_close(model(x), expected)


def test_global_pool_none_returns_the_map_and_needs_a_headless_network():
    with torch.device("meta"):
        model = convzoo.create_model("resnet20", num_classes=0, global_pool="")
        assert model(torch.empty(2, 3, 8, 8)).shape == (2, 64, 2, 2)
        with pytest.raises(ValueError, match="num_classes=0"):
            convzoo.create_model("resnet20", global_pool="")
        with pytest.raises(ValueError, match="global_pool one of 'avg', 'max', 'avgmax'"):
            convzoo.create_model("vgg11", global_pool="")


def test_drop_rate_drops_before_the_classifier_in_training_only():
    model = convzoo.create_model("resnet20", num_classes=0, drop_rate=0.5)
    x = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    model.eval()
    assert (model(x) == 0).float().mean() < 0.3  # ReLU zeros only
    model.train()
    assert (model(x) == 0).float().mean() > (model.eval()(x) == 0).float().mean() + 0.2


def test_grad_checkpointing_gives_the_same_gradients():
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    plain = convzoo.create_model("resnet20", num_classes=3).train()
    checkpointed = convzoo.create_model("resnet20", num_classes=3).train()
    checkpointed.load_state_dict(plain.state_dict())
    checkpointed.set_grad_checkpointing()
    plain(x).sum().backward()
    checkpointed(x).sum().backward()
    for a, b in zip(plain.parameters(), checkpointed.parameters()):
        torch.testing.assert_close(a.grad, b.grad)


def test_pretrained_cfg_describes_the_input_and_the_head():
    with torch.device("meta"):
        cfg = convzoo.create_model("resnet50", num_classes=10).pretrained_cfg
    assert cfg["input_size"] == (3, 224, 224) and cfg["pool_size"] == (7, 7)
    assert (cfg["first_conv"], cfg["classifier"], cfg["num_classes"]) == ("conv1", "fc", 10)
    assert cfg["mean"] == (0.485, 0.456, 0.406) and cfg["crop_pct"] == 0.875 and cfg["file"] is None
