"""convzoo.draw: the drawing's graph is the traced forward's, its frames count the real blocks, its edges
carry the summary's shapes, and it writes SVG, PNG and PDF without replacing files unasked."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
import torch
from torch import nn
from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook
from torch.overrides import TorchFunctionMode

import convzoo
from convzoo.cli import main
from convzoo.draw import draw
from convzoo.errors import OutputExistsError

SAMPLE = ["resnet50", "googlenet", "densenet121", "mobilenet_v2", "shufflenet_v2_x1_0", "se_resnext50_32x4d",
          "unet", "fcn8s", "deeplabv3plus"]
SVG = "{http://www.w3.org/2000/svg}"
_MERGE_NAMES = {"add": "add", "__add__": "add", "__iadd__": "add", "__radd__": "add", "add_": "add",
                "mul": "mul", "__mul__": "mul", "__imul__": "mul", "__rmul__": "mul", "mul_": "mul",
                "cat": "cat", "concat": "cat", "concatenate": "cat"}


class _Witness(TorchFunctionMode):
    """An independent record of one forward: every conv module call, and every add, multiply or
    concatenation of two or more activations (tensors that are not parameters or buffers), with the
    module whose own forward ran it."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.names = {id(m): name for name, m in model.named_modules()}
        self.weights = {id(t) for t in list(model.parameters()) + list(model.buffers())}
        self.stack: list[str] = []
        self.calls: dict[str, int] = {}
        self.convs: list[tuple[str, int]] = []
        self.merges: list[tuple[str, str]] = []

    def enter(self, module, args):
        path = self.names.get(id(module), "?")
        call = self.calls.get(path, 0)
        self.calls[path] = call + 1
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            self.convs.append((path, call))
        self.stack.append(path)

    def exit(self, module, args, output):
        self.stack.pop()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in _MERGE_NAMES and self.stack:
            tensors = list(args[0]) if name in ("cat", "concat", "concatenate") else list(args[:2])
            data = [t for t in tensors if isinstance(t, torch.Tensor) and id(t) not in self.weights and t.dim() > 1]
            if len(data) >= 2 and len({id(t) for t in data}) >= 2:
                self.merges.append((self.stack[-1], _MERGE_NAMES[name]))
        return func(*args, **(kwargs or {}))


def _witness(name: str) -> _Witness:
    with torch.device("meta"):
        model = convzoo.create_model(name).eval()
    witness = _Witness(model)
    pre = register_module_forward_pre_hook(witness.enter)
    post = register_module_forward_hook(witness.exit)
    try:
        with witness, torch.no_grad():
            model(torch.empty(1, *convzoo.model_card(name).input_size, device="meta"))
    finally:
        pre.remove()
        post.remove()
    return witness


@pytest.fixture(scope="module")
def expanded():
    return {name: draw(name, expand=True) for name in SAMPLE}


@pytest.fixture(scope="module")
def resnet50():
    return draw("resnet50")


@pytest.mark.parametrize("name", SAMPLE)
def test_conv_and_merge_nodes_are_exactly_those_of_the_traced_forward(name, expanded):
    graph = expanded[name].graph
    witness = _witness(name)
    convs = sorted((node.path, node.call) for node in graph.conv_nodes())
    assert convs == sorted(witness.convs)
    merges = sorted((node.path, _MERGE_NAMES.get(node.op, node.op)) for node in graph.merge_nodes())
    assert merges == sorted(witness.merges)
    assert len(merges) > 0 or name == "fcn8s" or name == "mobilenet_v2"


@pytest.mark.parametrize("name", SAMPLE)
def test_edge_shapes_are_the_summarys_output_shapes(name, expanded):
    drawing = expanded[name]
    rows = {(row.name, row.call): row.output_shape for row in drawing.report.rows}
    checked = 0
    for edge in drawing.graph.edges:
        node = drawing.graph.nodes[edge.src]
        if edge.src == "input":
            assert edge.shape == drawing.report.input_size
            continue
        path, call = node.out_member
        if node.member_ops[-1] is not None:
            assert edge.shape == node.shape  # an op a composite module ran itself: its own output
            continue
        assert edge.shape == rows[(path, call)], (edge.src, edge.dst)
        checked += 1
    assert checked >= 1


@pytest.mark.parametrize("name", SAMPLE)
def test_nodes_account_for_every_operation_and_parameter_of_the_summary(name, expanded):
    drawing = expanded[name]
    nodes = drawing.graph.nodes.values()
    assert sum(n.macs + n.badge_macs for n in nodes) == drawing.report.total_macs
    used = drawing.report.total_params - sum(drawing.report.unused_params.values())
    assert sum(n.params + n.badge_params for n in nodes) == used


def test_collapsed_frames_count_the_real_blocks_of_resnet50(resnet50):
    with torch.device("meta"):
        model = convzoo.create_model("resnet50")
    stages = [model.layer1, model.layer2, model.layer3, model.layer4]
    runs = [frame for frame in resnet50.graph.frames.values() if frame.repeat > 1]
    assert [frame.repeat for frame in runs] == [len(stage) for stage in stages] == [3, 4, 6, 3]
    assert [frame.blocks for frame in runs] == [[f"layer{s}.{b}" for b in range(len(stage))]
                                                for s, stage in enumerate(stages, start=1)]
    # only the first block of each run is drawn: its three convs and projection, no other block's
    assert sorted(n.path for n in resnet50.graph.conv_nodes() if n.path.startswith("layer2")) == [
        "layer2.0.conv1", "layer2.0.conv2", "layer2.0.conv3", "layer2.0.downsample.0"]


def test_expand_draws_every_block(expanded):
    graph = expanded["resnet50"].graph
    assert all(frame.repeat == 1 for frame in graph.frames.values())
    assert len(graph.merge_nodes()) == 3 + 4 + 6 + 3
    assert len(graph.conv_nodes()) == 1 + 3 * 16 + 4


def test_blocks_that_differ_are_not_collapsed():
    graph = draw("googlenet").graph  # inception4a..4c share an output shape but not their widths
    assert all(frame.repeat == 1 for frame in graph.frames.values())
    assert len(graph.merge_nodes()) == 9


def test_depth_draws_deeper_modules_as_one_box(resnet50):
    folded = draw("resnet50", depth=1)
    modules = {n.path: n for n in folded.graph.nodes.values() if n.kind == "module"}
    assert sorted(modules) == ["layer1", "layer2", "layer3", "layer4"]
    assert modules["layer3"].shape == (1024, 14, 14)
    assert sum(n.macs + n.badge_macs for n in folded.graph.nodes.values()) == resnet50.report.total_macs
    assert [(e.src, e.dst) for e in folded.graph.edges if "layer" in e.src + e.dst] == [
        ("maxpool", "layer1"), ("layer1", "layer2"), ("layer2", "layer3"), ("layer3", "layer4"),
        ("layer4", "avgpool")]


def test_labels_read_as_the_course_writes_them(resnet50):
    labels = {n.id: n.label for n in resnet50.graph.nodes.values()}
    assert labels["conv1"] == "7x7 conv, 64, /2"
    assert labels["layer2.0.conv2"] == "3x3 conv, 128, /2"
    assert labels["maxpool"] == "3x3 max pool, /2"
    assert labels["fc"] == "fc 1000"
    assert resnet50.graph.nodes["layer1.0.conv1"].badges == ["BN", "ReLU"]
    assert resnet50.graph.nodes["layer1.0-add"].badges == ["ReLU"]
    alexnet = {n.id: n.label for n in draw("alexnet").graph.nodes.values()}
    assert alexnet["features.4"] == "5x5 conv, 256 (groups 2)"


def test_svg_names_every_node_after_its_summary_row_with_tooltips(resnet50):
    text = resnet50.svg()
    assert len(text.encode()) < 200_000
    root = ET.fromstring(text)
    groups = root.iter(f"{SVG}g")
    ids = [g.get("id") for g in root.iter(f"{SVG}g")]
    assert len(ids) == len(set(ids))
    rows = {row.name for row in resnet50.report.rows}
    nodes = [g for g in groups if "node" in (g.get("class") or "").split()]
    assert len(nodes) == len(resnet50.graph.nodes)
    for group in nodes:
        assert group.get("data-path") in rows
        title = group.find(f"{SVG}title").text
        if group.get("data-kind") not in ("input", "output"):
            assert "params" in title and "MACs" in title
    conv = root.find(f".//{SVG}g[@id='n-layer1.0.conv2']")
    assert conv.get("data-rf") == "19" and conv.get("data-shape") == "64x56x56"
    frame = root.find(f".//{SVG}g[@id='f-layer3.0']")
    assert frame.get("data-repeat") == "6" and frame.get("data-blocks").split() == [f"layer3.{i}" for i in range(6)]


def test_png_and_pdf_are_the_same_drawing(tmp_path):
    import matplotlib.image

    drawing = draw("lenet5", depth=1, direction="LR")
    png = drawing.save(tmp_path / "lenet5.png", scale=1.5)
    pixels = matplotlib.image.imread(png)
    assert abs(pixels.shape[0] - drawing.height * 1.5) <= 1 and abs(pixels.shape[1] - drawing.width * 1.5) <= 1
    assert pixels[..., :3].min() < 0.3  # ink on it, not a blank page
    pdf = drawing.save(tmp_path / "lenet5.pdf")
    assert pdf.read_bytes().startswith(b"%PDF")


def test_saving_never_replaces_a_file_unless_asked(tmp_path):
    out = tmp_path / "net.svg"
    out.write_text("mine")
    drawing = draw("lenet5")
    with pytest.raises(OutputExistsError, match="--force"):
        drawing.save(out)
    assert out.read_text() == "mine"
    drawing.save(out, overwrite=True)
    assert out.read_text().startswith("<svg")


def test_cli_draws_to_the_named_file_and_refuses_to_overwrite(tmp_path, capsys, monkeypatch):
    out = tmp_path / "le.svg"
    assert main(["draw", "lenet5", "--out", str(out), "--depth", "1"]) == 0
    first = out.read_text()
    assert 'id="n-c3"' in first
    assert main(["draw", "lenet5", "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err and out.read_text() == first
    assert main(["draw", "lenet5", "--out", str(out), "--force", "--direction", "LR"]) == 0
    assert out.read_text() != first
    monkeypatch.chdir(tmp_path)
    assert main(["draw", "lenet5"]) == 0
    assert (tmp_path / "lenet5.svg").exists()


def test_focus_draws_one_block_with_the_shapes_it_has_in_the_network():
    graph = draw("se_resnet50", focus="layer2.1").graph
    assert graph.nodes["input"].shape == (512, 28, 28)
    assert {n.label for n in graph.merge_nodes()} == {"x", "+"}
    assert [n.label for n in graph.nodes.values() if n.kind == "pool"] == ["global avg pool"]


def test_convzoo_draw_is_callable_and_its_modules_importable():
    import convzoo.draw.graph as graph_module

    assert callable(convzoo.draw) and convzoo.draw("lenet5").graph.name == "lenet5"
    assert graph_module.build_graph is convzoo.draw.graph.build_graph


def test_u_layout_puts_each_decoder_stage_on_the_row_of_the_encoder_features_it_concatenates():
    drawing = draw("unet", direction="U")
    graph, placed = drawing.graph, drawing.layout
    skips = [e for e in graph.edges if graph.nodes[e.dst].label == "concat" and e.src.startswith("encoder")]
    assert len(skips) == 4
    for edge in skips:
        source = placed.nodes[edge.src]
        frame = placed.frames[graph.nodes[edge.dst].frame]
        assert frame.y < source.y + source.h / 2 < frame.y + frame.h  # straight across its row
        assert frame.x > source.x + source.w  # on the right: the U's rising side
    pools = sorted((placed.nodes[n.id].y, placed.nodes[n.id].x) for n in graph.nodes.values() if n.kind == "pool")
    assert all(b[0] > a[0] and b[1] > a[1] for a, b in zip(pools, pools[1:]))  # down and right, one row a pool


def test_a_checkpoint_or_run_folder_draws_the_network_it_describes(tmp_path):
    from convzoo.training.checkpoint import describe_checkpoint, save_checkpoint

    model = convzoo.create_model("resnet20", num_classes=3, in_chans=1)
    data = {"classes": ["a", "b", "c"], "input_size": [1, 24, 24], "mean": [0.5], "std": [0.25], "source": "digits"}
    run = tmp_path / "run"
    run.mkdir()
    save_checkpoint(model, run / "best.safetensors", describe_checkpoint(model.model_args, "classification", data,
                                                                         epoch=1, metrics={}))
    for source in (run / "best.safetensors", run):
        graph = draw(source).graph
        assert graph.name == "resnet20" and graph.input_size == (1, 24, 24)
        assert graph.nodes["fc"].shape == (3,)
    assert main(["draw", str(run), "--out", str(tmp_path / "r.svg")]) == 0
    assert main(["draw", str(tmp_path / "missing.safetensors")]) == 2
