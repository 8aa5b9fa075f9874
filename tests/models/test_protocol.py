"""The model protocol (protocol.py) over every registered network, in the spirit of timm's tests/test_models.py
and torchvision's feature-extraction tests: forward_features + forward_head is the forward, reset_classifier
and num_classes=0 give the shapes they promise, the declared feature_info matches the feature maps, torch.fx
traces every network to the eager output, and a torchvision-style create_feature_extractor written with
torch.fx alone returns the declared stages.

Outputs are compared on real tensors (seeded) for the networks small enough to run cheaply here; the others
are built on the meta device, where the same checks compare shapes."""
from __future__ import annotations

import copy
import functools

import pytest
import torch
import torch.fx
import torch.nn.functional as F

import convzoo
from convzoo.models.features import FeatureExtractor
from convzoo.protocol import Classifier, ConvzooModel
from twins import DEEPER_TWINS, on_meta

ALL = convzoo.list_models()
CLASSIFIERS = convzoo.list_models(task="classification")
SEGMENTERS = convzoo.list_models(task="segmentation")
# Real tensors where building and running the network costs little; the meta device elsewhere.
REAL_LIMIT = 4_000_000


def is_real(name: str) -> bool:
    return convzoo.model_card(name).params <= REAL_LIMIT


def build(name: str, real: bool) -> torch.nn.Module:
    if real:
        torch.manual_seed(0)
        return convzoo.create_model(name).eval()
    return on_meta(name)  # shared with the other sweeps: reset_classifier works on a copy


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
    """torchvision's recipe: trace, point the graph's output at the named nodes (a dict; "output" names the
    network's own output), drop the rest."""
    tracer = ScopeTracer()
    graph = tracer.trace(model)
    output = next(node for node in graph.nodes if node.op == "output")
    tracer.outputs["output"] = output.args[0]
    with graph.inserting_before(output):
        graph.output({key: tracer.outputs[node] for node, key in return_nodes.items()})
    graph.erase_node(output)
    module = torch.fx.GraphModule(tracer.root, graph)
    module.graph.eliminate_dead_code()
    module.recompile()
    return module


def stage_nodes(model: torch.nn.Module) -> dict[str, str]:
    """The node names of the declared stages' outputs: the k-th call of a module is its k-th step."""
    calls: dict[str, int] = {}
    nodes = {}
    for index, stage in enumerate(model.feature_stages()):
        for step in stage.steps:
            calls[step] = calls.get(step, 0) + 1
        count = calls[stage.module]
        nodes[stage.module if count == 1 else f"{stage.module}_{count - 1}"] = f"stage{index}"
    return nodes


class Sweep:
    """One network's runs, made once and shared by the checks below (four passes through a classifier's body:
    forward_intermediates, the eager forward, the features_only extractor one step larger, the fx graph)."""

    def __init__(self, name: str):
        self.name, self.real = name, is_real(name)
        self.model = build(name, self.real)
        self.classifier = isinstance(self.model, Classifier)
        self.x = sample(name, self.real)
        with torch.no_grad():
            self.output = self.model(self.x)
            nodes = {"output": "output"}
            if self.classifier:
                self.features, self.intermediates = self.model.forward_intermediates(self.x)
                nodes.update(stage_nodes(self.model))
            self.graph_outputs = create_feature_extractor(self.model, nodes)(self.x)


@functools.lru_cache(maxsize=None)
def sweep(name: str) -> Sweep:
    torch.set_num_threads(1)  # put back by conftest's _seed; two threads per xdist worker stall on 2 cores
    return Sweep(name)


# Each network's checks share its Sweep: with pytest-xdist they run in one worker (--dist loadgroup). The Sweep's
# checks (traces, heads, stages) leave out the deeper twins (tests/twins.py): a twin is its representative's blocks,
# more of them, built by the same builder (the 1000-layer ResNets cost seconds per pass even on the meta device).
# A bare name builds its same_as network (test_zoo.py).
SWEPT = [name for name in ALL if name not in DEEPER_TWINS and convzoo.model_card(name).same_as is None]
SWEPT_CLASSIFIERS = [name for name in CLASSIFIERS if name not in DEEPER_TWINS]


def by_network(names):
    return [pytest.param(n, marks=pytest.mark.xdist_group(n)) for n in names]


@pytest.mark.parametrize("name", ALL)
def test_the_network_implements_the_protocol(name):
    model = on_meta(name)
    assert isinstance(model, ConvzooModel)
    assert isinstance(model, Classifier) == (convzoo.model_card(name).task == "classification")


@pytest.mark.parametrize("name", by_network(SWEPT_CLASSIFIERS))
def test_forward_features_then_forward_head_is_the_forward(name):
    run = sweep(name)
    model = run.model
    assert run.features.dim() == 4 and run.features.shape[1] == model.feature_info.channels(-1)
    with torch.no_grad():
        assert_same(model.forward_head(run.features), run.output, run.real)
        pre_logits = model.forward_head(run.features, pre_logits=True)
    assert tuple(pre_logits.shape) == (2, model.num_features)


@pytest.mark.parametrize("name", by_network(SWEPT_CLASSIFIERS))
def test_reset_classifier_gives_the_new_shape_and_keeps_the_body(name):
    run = sweep(name)
    model = copy.deepcopy(run.model)
    head = model.classifier_path + "."
    body = {k: v for k, v in model.state_dict(keep_vars=True).items() if not k.startswith(head)}
    with torch.no_grad():
        model.reset_classifier(5)
        assert tuple(model.forward_head(run.features).shape) == (2, 5)
        model.reset_classifier(0)
        assert tuple(model.forward_head(run.features).shape) == (2, model.num_features)
    assert isinstance(model.get_classifier(), torch.nn.Identity)
    # The body's parameters and buffers are the very same tensors: nothing but the head was rebuilt.
    after = model.state_dict(keep_vars=True)
    assert all(after[k] is v for k, v in body.items())


@pytest.mark.parametrize("name", by_network(SWEPT_CLASSIFIERS))
def test_num_classes_zero_returns_the_pooled_features(name):
    run = sweep(name)
    with torch.device("meta"):
        model = convzoo.create_model(name, num_classes=0).eval()
    assert not any(k.startswith(model.classifier_path + ".") for k in model.state_dict())
    assert tuple(model.forward_head(run.features.to("meta")).shape) == (2, model.num_features)
    assert model.num_features == run.model.num_features


@pytest.mark.parametrize("name", by_network(SWEPT_CLASSIFIERS))
def test_feature_info_matches_the_features_only_outputs(name):
    """Channels equal, and each stage's map grows by exactly step/reduction pixels when the input grows by a
    step that every stride divides: the reduction, also for networks whose unpadded convolutions shrink."""
    run = sweep(name)
    info = run.model.feature_info
    step = max(info.reduction())
    # features_only's extractor, built directly: create_model would also search its smallest input.
    extractor = FeatureExtractor(run.model)
    assert [i.module for i in extractor.feature_info] == info.module_name()
    assert extractor.channels == tuple(info.channels()) and extractor.reductions == tuple(info.reduction())
    size = tuple(run.x.shape[-2:])
    with torch.no_grad():
        larger = extractor(sample(name, run.real, size=(size[0] + step, size[1] + step)))
    assert [f.shape[1] for f in larger] == [f.shape[1] for f in run.intermediates] == info.channels()
    for small, large, reduction in zip(run.intermediates, larger, info.reduction()):
        assert large.shape[-1] - small.shape[-1] == step // reduction
        assert large.shape[-2] - small.shape[-2] == step // reduction
    assert run.features.shape == run.intermediates[-1].shape  # forward_features ends at the last stage


@pytest.mark.parametrize("name", by_network(SWEPT))
def test_fx_symbolic_trace_equals_eager(name):
    run = sweep(name)
    assert_same(run.graph_outputs["output"], run.output, run.real)


@pytest.mark.parametrize("name", by_network(SWEPT_CLASSIFIERS))
def test_fx_feature_extractor_returns_the_declared_stages(name):
    run = sweep(name)
    stages = run.model.feature_stages()
    got = {k: v for k, v in run.graph_outputs.items() if k != "output"}
    assert list(got) == [f"stage{i}" for i in range(len(stages))]
    for stage, key, want in zip(stages, got, run.intermediates):
        assert_same(F.relu(got[key]) if stage.final_relu else got[key], want, run.real)


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


def test_summary_takes_model_arguments_and_a_weights_file_naming_its_network(tmp_path):
    assert convzoo.summary("resnet20", num_classes=7).rows[-1].output_shape == (7,)
    path = convzoo.save_weights(convzoo.create_model("resnet20", num_classes=4, in_chans=1), tmp_path / "r.safetensors")
    report = convzoo.summary(path)
    assert report.input_size == (1, 32, 32) and report.rows[-1].output_shape == (4,)
    assert convzoo.summary(str(path)).total_params == report.total_params


@pytest.mark.slow
def test_export_takes_a_save_weights_file(tmp_path):
    model = convzoo.create_model("resnet20", num_classes=3).eval()
    path = convzoo.save_weights(model, tmp_path / "r20.safetensors")
    out = convzoo.export(path, format="exported-program", out=tmp_path / "r20.pt2")
    program = torch.export.load(str(out))
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(program.module()(x), model(x), rtol=1e-4, atol=1e-4)
