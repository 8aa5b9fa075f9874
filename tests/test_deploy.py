"""optimize_for_inference: batch norms folded into the convolutions they follow (found by tracing the forward),
eval mode, channels_last; the outputs equal the original's; the user's model is left alone."""
from __future__ import annotations

import copy
import json
import platform
import statistics
import subprocess
import sys

import pytest
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

import convzoo
from convzoo.protocol import main_output
from convzoo.deploy import (MICRO_BATCH_MIN_SPEEDUP, fold_batch_norms, fold_conv_bn, micro_batch_stages,
                            optimize_for_inference)
from twins import (DEEPER_TWINS, FEWER_PARTS, FULL_HIDDEN, NARROW, NARROW_HIDDEN, create_sweep_model,
                   module_kinds, on_meta)


def relative_error(reference: torch.Tensor, other: torch.Tensor) -> float:
    """Largest difference over the largest magnitude of the reference (elementwise ratios blow up near 0)."""
    return ((reference - other).abs().max() / reference.abs().max()).item()


def randomise_batch_norms(model: nn.Module) -> nn.Module:
    """Statistics and affine parameters away from the identity defaults, so folding them really changes the
    convolutions (a fresh network's batch norms in eval mode are y = x)."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, _BatchNorm):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                if module.weight is not None:
                    module.weight.uniform_(0.5, 1.5)
                    module.bias.uniform_(-0.5, 0.5)
    return model.eval()


@pytest.mark.parametrize("name, size, folded, left", [
    ("resnet50", 32, 53, 0),
    ("mobilenet_v2", 32, 52, 0),
    ("googlenet_bn", 32, 57, 0),
    ("shufflenet_v2_x1_0", 32, 56, 0),   # fx cannot trace the whole net: found through its parts
    ("densenet121", 32, 59, 62),          # pre-activation: only norm0 and each layer's norm2 follow a conv
    ("unet_padded", 32, 18, 0),
    ("deeplabv3_resnet50", 32, 60, 0),    # the root's forward is untraceable; the backbone and head are not
])
def test_outputs_equal_the_originals(name, size, folded, left):
    model = randomise_batch_norms(convzoo.create_model(name, num_classes=10))
    x = torch.randn(2, model.card.input_size[0], size, size)
    fast = optimize_for_inference(model)
    assert (len(fast.fold_report.folded), len(fast.fold_report.left)) == (folded, left)
    with torch.no_grad():
        assert relative_error(main_output(model(x)), main_output(fast(x))) < 1e-4


def test_the_users_model_is_left_as_it_was():
    model = randomise_batch_norms(convzoo.create_model("resnet18", num_classes=10)).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fast = optimize_for_inference(model)
    assert model.training and isinstance(model.bn1, nn.BatchNorm2d) and model.conv1.bias is None
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert model.conv1.weight.is_contiguous()
    assert not fast.training and isinstance(fast.bn1, nn.Identity) and fast.conv1.bias is not None
    assert fast.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert not any(p.requires_grad for p in fast.parameters())


def test_channels_last_inputs_and_the_input_guard_stay():
    fast = optimize_for_inference(convzoo.create_model("resnet18", num_classes=10))
    seen = []
    fast.conv1.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    with torch.no_grad():
        fast(torch.randn(1, 3, 32, 32))
    assert seen[0].is_contiguous(memory_format=torch.channels_last)
    with pytest.raises(convzoo.InputSizeError, match="3-channel"):
        fast(torch.randn(1, 1, 32, 32))
    plain = optimize_for_inference(convzoo.create_model("resnet18", num_classes=10), channels_last=False)
    assert plain.conv1.weight.is_contiguous()


def test_pre_activation_batch_norms_are_left():
    # bn1 of a pre-activation block runs before conv1: folding it into conv1 would be wrong (zero padding
    # comes after the normalisation), so only each block's bn2 (after conv1) and the stem's bn1 fold.
    model = randomise_batch_norms(convzoo.create_model("preact_resnet18", num_classes=10))
    report = fold_batch_norms(model)
    assert sorted(bn for _, bn in report.folded) == sorted(
        ["bn1"] + [f"layer{i}.{j}.bn2" for i in range(1, 5) for j in range(2)])
    assert ("conv1", "bn1") in report.folded
    assert report.left == [f"layer{i}.{j}.bn1" for i in range(1, 5) for j in range(2) if (i, j) != (1, 0)] + ["final_bn"]
    assert not report.complete


def _conv_then_bn(conv: nn.Conv2d) -> nn.Sequential:
    return randomise_batch_norms(nn.Sequential(conv, nn.BatchNorm2d(conv.out_channels)))


@pytest.mark.parametrize("conv", [
    nn.Conv2d(4, 6, 3, padding=1, bias=False),
    nn.Conv2d(4, 6, 3, stride=2, bias=True),
    nn.Conv2d(4, 8, 3, padding=1, groups=2, bias=False),
    nn.Conv2d(4, 4, 3, padding=1, groups=4, bias=True),   # depthwise
], ids=["no-bias", "bias", "grouped", "depthwise"])
def test_folding_formula(conv):
    pair = _conv_then_bn(conv)
    x = torch.randn(2, 4, 9, 9)
    with torch.no_grad():
        expected = pair(x)
        fold_conv_bn(pair[0], pair[1])
        assert relative_error(expected, pair[0](x)) < 1e-6


def test_batch_norm_without_affine_parameters():
    pair = randomise_batch_norms(nn.Sequential(nn.Conv2d(3, 5, 3), nn.BatchNorm2d(5, affine=False)))
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        expected = pair(x)
        fold_conv_bn(pair[0], pair[1])
        assert relative_error(expected, pair[0](x)) < 1e-6


class _TorchvisionStyleBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4)
        self.conv2, self.bn2 = nn.Conv2d(4, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4)

    def forward(self, x):
        return torch.relu(self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))))


class _Untraceable(nn.Module):
    """A forward fx cannot trace (control flow on a tensor's value) around traceable and Sequential parts."""

    def __init__(self):
        super().__init__()
        self.block = _TorchvisionStyleBlock()
        self.stem = nn.Sequential(nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4), nn.ReLU())
        self.conv, self.bn = nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4)

    def forward(self, x):
        x = self.stem(self.block(x))
        if x.sum() > 0:
            x = x * 1.0
        return self.bn(self.conv(x))


def test_untraceable_parents_are_searched_through_their_children():
    model = randomise_batch_norms(_Untraceable())
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        expected = model(x)
        report = fold_batch_norms(model)
        assert relative_error(expected, model(x)) < 1e-6
    # The root's own conv -> bn is invisible (its forward cannot be traced, and it is not a Sequential).
    assert sorted(report.folded) == [("block.conv1", "block.bn1"), ("block.conv2", "block.bn2"),
                                     ("stem.0", "stem.1")]
    assert report.left == ["bn"]


class _ConvOutputUsedTwice(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 3, 3, padding=1), nn.BatchNorm2d(3)

    def forward(self, x):
        y = self.conv(x)
        return self.bn(y) + y


class _SharedConv(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 3, 3, padding=1), nn.BatchNorm2d(3)

    def forward(self, x):
        return self.conv(self.bn(self.conv(x)))


@pytest.mark.parametrize("module", [_ConvOutputUsedTwice, _SharedConv])
def test_no_fold_where_the_conv_is_needed_unnormalised(module):
    model = randomise_batch_norms(module())
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        expected = model(x)
        report = fold_batch_norms(model)
        assert report.folded == [] and report.left == ["bn"]
        assert torch.equal(expected, model(x))


@pytest.mark.slow
def test_compiled_inference_path_equals_the_original():
    # Two conv-BN pairs and a residual sum: what a ResNet gives inductor, in a few kernels (ResNet-20's took
    # minutes of C++ compilation on a busy 2-core machine and checked nothing more).
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
            self.conv2, self.bn2 = nn.Conv2d(8, 3, 3, padding=1, bias=False), nn.BatchNorm2d(3)

        def forward(self, x):
            return torch.relu(x + self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))))

    model = randomise_batch_norms(Block())
    x = torch.randn(2, 3, 16, 16)
    fast = optimize_for_inference(model, compile=True)
    with torch.no_grad():
        assert relative_error(model(x), fast(x)) < 1e-4
    assert len(fast.fold_report.folded) == 2


class _BackwardsSequential(nn.Sequential):
    """Holds (conv, bn) in that order but runs them the other way round, behind an untraceable forward."""

    def forward(self, x):
        if x.sum() > 0:
            x = x * 1.0
        return self[0](self[1](x))


def test_a_sequential_with_its_own_forward_is_not_paired_by_order():
    model = randomise_batch_norms(_BackwardsSequential(nn.Conv2d(3, 3, 3, padding=1), nn.BatchNorm2d(3)))
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        expected = model(x)
        report = fold_batch_norms(model)
        assert report.folded == [] and torch.equal(expected, model(x))


_WITH_BATCH_NORM = [name for name in convzoo.list_models() if name not in {
    "alexnet", "alexnet_owt", "zfnet", "zfnet_wide", "googlenet", "lenet5", "vgg11", "vgg13", "vgg16", "vgg19",
    "fcn8s", "fcn16s", "fcn32s", "deeplab_v1", "deeplab_v2_vgg16", "dilated8", "unet"}
    and convzoo.model_card(name).same_as is None]  # a bare name is its same_as network (test_zoo.py)


@pytest.mark.slow
def test_the_sweep_list_holds_every_network_with_batch_norms():
    for name in convzoo.list_models():
        if convzoo.model_card(name).same_as is not None:
            continue
        has_norms = any(isinstance(m, _BatchNorm) for m in on_meta(name).modules())
        assert has_norms == (name in _WITH_BATCH_NORM), name


@pytest.mark.slow
def test_every_twin_is_made_of_its_representatives_blocks():
    """The sweeps leave out deeper twins (tests/twins.py): each must be of its representative's family and input
    size and hold exactly the same kinds of modules (for FEWER_PARTS: fewer modules, of no other kind), so the representative's
    checks cover its operations."""
    for twin, representative in DEEPER_TWINS.items():
        built = [on_meta(name) for name in (twin, representative)]
        kinds = [module_kinds(model) for model in built]
        assert built[0].card.family == built[1].card.family, twin
        assert built[0].card.input_size == built[1].card.input_size, twin
        if twin in FEWER_PARTS:
            assert kinds[0] <= kinds[1], (twin, kinds[0] - kinds[1])
            assert len(list(built[0].modules())) < len(list(built[1].modules())), twin
        else:
            assert kinds[0] == kinds[1], (twin, kinds[0] ^ kinds[1])


@pytest.mark.parametrize("name", NARROW)
def test_a_narrow_build_differs_from_the_network_only_in_its_hidden_width(name):
    """The sweeps build NARROW networks with NARROW_HIDDEN hidden units (tests/twins.py): the same modules under
    the same names, every parameter of the same shape but for the 4096s of the hidden layers, which are
    NARROW_HIDDEN, and those hidden layers hold most of the network's parameters."""
    full = on_meta(name)
    with torch.device("meta"):
        narrow = create_sweep_model(name)
    assert [(path, type(m)) for path, m in full.named_modules()] == [(path, type(m)) for path, m in narrow.named_modules()]
    narrowed = 0
    for (path, a), (_, b) in zip(full.named_parameters(), narrow.named_parameters()):
        assert len(a.shape) == len(b.shape), path
        for x, y in zip(a.shape, b.shape):
            assert y == x or (x, y) == (FULL_HIDDEN, NARROW_HIDDEN), (path, a.shape, b.shape)
        narrowed += a.numel() if a.shape != b.shape else 0
    assert narrowed > 0.7 * sum(p.numel() for p in full.parameters())
    assert sum(p.numel() for p in narrow.parameters()) < 0.3 * sum(p.numel() for p in full.parameters())


@pytest.mark.slow
@pytest.mark.parametrize("name", [name for name in _WITH_BATCH_NORM if name not in DEEPER_TWINS])
def test_every_network_with_batch_norms_keeps_its_outputs(name, one_thread):
    """Folding is an identity of arithmetic, so it is checked in float64: in float32 a deep random network
    amplifies rounding past any fixed bound (measured on se_resnet152 over 4 seeds and 1-2 threads: float32
    against float64 differed by 0.002 to 0.50 relative, folded or not), while float64 rounding stays far below
    any folding mistake (a wrong scale or shift moves the outputs by O(1))."""
    card = convzoo.model_card(name)
    # 16 px (or the smallest input): the folding meets padding, strides and the residual sums there as at full size.
    size = max(card.min_input_size[0], min(16, card.input_size[1]))
    # NARROW networks with fewer hidden units (tests/twins.py): the same convolutions and batch norms.
    model = create_sweep_model(name, num_classes=10).double()
    with torch.no_grad():
        # Statistics of a batch of images (a 1000-layer network with random statistics overflows) and affine
        # parameters away from 1 and 0, so that folding changes every convolution.
        for module in model.modules():
            if isinstance(module, _BatchNorm):
                module.momentum = None
                if module.affine:
                    module.weight.uniform_(0.2, 1.0)
                    module.bias.uniform_(-0.1, 0.1)
        model.train()(torch.randn(4, card.input_size[0], size, size, dtype=torch.float64))
    model.eval()
    x = torch.randn(2, card.input_size[0], size, size, dtype=torch.float64)
    # Where the network declares its stages, the early ones one image at a time (not "auto", which would time
    # nine forwards to choose); then whole batches too.
    fast = optimize_for_inference(model, micro_batch=1)
    with torch.no_grad():
        # Measured in float64: at most 1.5e-10 (se_resnet152 at 32 px, seeds 0-2), 1e-13 (resnet50), 1e-14
        # (densenet121); over this sweep at 16 px (seed 0), at most 1.5e-11 (se_resnext50_32x4d). The bound leaves
        # a margin of ~70x over the worst.
        expected = main_output(model(x))
        assert relative_error(expected, main_output(fast(x))) < 1e-8
        if hasattr(fast, "micro_batching"):
            fast.micro_batching = False
            assert relative_error(expected, main_output(fast(x))) < 1e-8


def test_the_compiled_path_compiles_with_freezing_and_a_cpp_wrapper_and_leaves_the_settings_as_they_were():
    import torch._inductor.config as inductor_config

    from convzoo.deploy import _with_inductor_settings

    seen = []
    configured = _with_inductor_settings(
        lambda x: seen.append((inductor_config.freezing, inductor_config.cpp_wrapper)) or x + 1)
    before = (inductor_config.freezing, inductor_config.cpp_wrapper)
    assert configured(1) == 2 and seen == [(True, True)]
    assert (inductor_config.freezing, inductor_config.cpp_wrapper) == before
    fast = optimize_for_inference(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).eval(), compile=True)
    assert fast.forward.__wrapped__ is not None and fast.fold_report.folded == [("0", "1")]


def test_the_early_stages_run_a_few_images_at_a_time_and_the_outputs_equal_whole_batches(one_thread):
    torch.manual_seed(0)
    model = randomise_batch_norms(convzoo.create_model("resnet18", num_classes=10))
    x = torch.randn(5, 3, 64, 64)
    fast = optimize_for_inference(model, micro_batch=2)
    whole = optimize_for_inference(model, micro_batch=None)
    seen: dict[str, list[int]] = {}
    for name in ("layer1", "layer2", "layer3", "layer4"):
        fast.get_submodule(name).register_forward_hook(
            lambda module, args, output, name=name: seen.setdefault(name, []).append(args[0].shape[0]))
    with torch.no_grad():
        y = fast(x)
        assert relative_error(whole(x), y) < 1e-5 and relative_error(model(x), y) < 1e-4
    # Down to a stride of 8 (layer2 at 64 px: 8 x 8 maps), two images at a time; then the whole batch.
    assert seen == {"layer1": [2, 2, 1], "layer2": [2, 2, 1], "layer3": [5], "layer4": [5]}
    assert [stage.reduction for stage in fast.micro_batch_plan[1]] == [2, 4, 8]
    twin = copy.deepcopy(fast)
    assert twin.forward.__self__ is twin  # a copy runs its own layers


def test_micro_batching_takes_one_image_per_thread_and_leaves_networks_without_stages_whole(one_thread):
    resnet = on_meta("resnet50")
    micro_batch, early, late = micro_batch_stages(resnet, "auto")
    assert micro_batch == torch.get_num_threads() == 1
    assert [s.module for s in early] == ["relu", "layer1", "layer2"] and [s.module for s in late] == ["layer3", "layer4"]
    assert micro_batch_stages(resnet, None) is None and micro_batch_stages(resnet, 0) is None
    assert micro_batch_stages(on_meta("unet_padded"), "auto") is None  # a U-Net's skips are no chain of stages
    assert not hasattr(optimize_for_inference(nn.Sequential(nn.Conv2d(3, 4, 3)).eval()), "micro_batch_plan")
    for wrong in (-1, 1.5, "all"):
        with pytest.raises(ValueError, match="micro_batch must be a number of images"):
            micro_batch_stages(resnet, wrong)
        with pytest.raises(ValueError, match="micro_batch must be a number of images"):  # before any other check
            optimize_for_inference(nn.Sequential(nn.Conv2d(3, 4, 3)).eval(), micro_batch=wrong)


def test_auto_micro_batching_times_both_ways_at_the_first_call_of_a_shape_and_keeps_micro_batches_if_3_percent_faster(one_thread):
    torch.manual_seed(0)
    model = randomise_batch_norms(convzoo.create_model("resnet18", num_classes=10))
    fast = optimize_for_inference(model)  # micro_batch="auto": one image per thread
    calls = []
    fast.layer4.register_forward_hook(lambda module, args, output: calls.append(args[0].shape[0]))
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        assert relative_error(model(x), fast(x)) < 1e-4
        assert len(calls) == 2 + 2 * 3 + 1  # one untimed call each way, three timed each, then the answer
        fast(x[:1])  # one image is one micro-batch: nothing to choose
        fast(x)
    assert len(calls) == 11
    (key, choice), = fast.micro_batch_choices.items()
    assert key == ((3, 3, 64, 64), torch.float32, 1)
    seconds = choice["seconds"]
    assert len(seconds["whole batches"]) == len(seconds["micro-batches"]) == 3
    speedup = statistics.median(seconds["whole batches"]) / statistics.median(seconds["micro-batches"])
    assert choice["micro_batching"] == (speedup >= MICRO_BATCH_MIN_SPEEDUP) == fast.micro_batching


@pytest.mark.slow
def test_the_compiled_path_micro_batches_the_early_stages_with_the_original_outputs(one_thread):
    torch.manual_seed(0)
    model = randomise_batch_norms(convzoo.create_model("resnet18", num_classes=10))
    x = torch.randn(3, 3, 32, 32)
    fast = optimize_for_inference(model, compile=True)  # "auto": compiles and times both ways at this shape
    with torch.no_grad():
        y = fast(x)
        assert relative_error(model(x), y) < 1e-4
        ways = {}
        for micro in (False, True):  # each way's compiled graph, run again
            fast._orig_mod.micro_batching = micro
            ways[micro] = fast.forward.__wrapped__.__wrapped__(x)  # inside the batch buckets and the timing
    assert relative_error(ways[True], ways[False]) < 1e-5 and relative_error(model(x), ways[True]) < 1e-4
    (choice,) = fast.micro_batch_choices.values()
    assert len(choice["seconds"]["micro-batches"]) == 3


@pytest.mark.slow
def test_the_compiled_path_compiles_one_static_graph_per_batch_size():
    # With dynamo's automatic dynamic shapes, the second size would compile a graph for any batch, serving the
    # third, and run slower than a static one (ResNet-50 at batch 8: 4.5%).
    from torch._dynamo.utils import counters

    torch.manual_seed(0)
    fast = optimize_for_inference(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).eval(), compile=True)
    before = counters["stats"]["unique_graphs"]
    with torch.no_grad():
        for batch in (2, 3, 4, 3):
            fast(torch.randn(batch, 3, 8, 8))
    assert counters["stats"]["unique_graphs"] - before == 3


# Run in a fresh interpreter: reuse_freed_memory changes the malloc of the whole process, for its lifetime.
_PAGE_FAULTS_SCRIPT = r"""
import json, resource, sys
import torch
from torch import nn
from convzoo.deploy import optimize_for_inference

torch.manual_seed(0)
torch.set_num_threads(1)
# One feature map of 8 x 64 x 128 x 128 floats: 32 MiB, glibc's largest mmap threshold, plus one row of pixels.
model = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU()).eval()
images = torch.randn(8, 3, 129, 128)

def faults_of_four_calls_after_two(network):
    # The first calls lay the heap out (where each block lands depends on what else Python allocated); the
    # steady state is what a served network lives in.
    with torch.no_grad():
        network(images)
        network(images)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(4):
            network(images)
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

plain = faults_of_four_calls_after_two(model)
fast = optimize_for_inference(model, reuse_memory=sys.argv[1] == "reuse")
print(json.dumps({"plain": plain, "fast": faults_of_four_calls_after_two(fast)}))
"""


def _page_faults(reuse: str) -> dict:
    done = subprocess.run([sys.executable, "-c", _PAGE_FAULTS_SCRIPT, reuse], capture_output=True, text=True,
                          timeout=120, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")
def test_the_inference_path_reuses_freed_memory_so_large_feature_maps_make_no_page_faults_call_after_call():
    without, with_reuse = _page_faults("keep"), _page_faults("reuse")
    map_pages = 8 * 64 * 129 * 128 * 4 // 4096   # 8,256 pages of 4 KiB in one feature map
    # Each call maps its feature maps afresh and faults on every page of them ...
    assert without["plain"] > 4 * map_pages and without["fast"] > 4 * map_pages, without
    # ... until malloc keeps what is freed: then no map is faulted again (at most a small block, such as the
    # 1.5 MiB channels_last copy of the input, lands on fresh pages once: 388 faults in one CI run).
    assert with_reuse["fast"] < map_pages // 4, with_reuse


def test_after_four_batch_sizes_a_new_one_runs_in_chunks_of_the_compiled_ones_padded_with_zero_images():
    from convzoo.deploy import MAX_COMPILED_BATCHES, _BatchBuckets

    calls = []

    def forward(x):  # a tensor and a dict, as the segmentation networks return
        calls.append(x.shape[0])
        return {"out": x * 2, "aux": x.sum(dim=(1, 2, 3))}

    buckets = _BatchBuckets(forward)
    generator = torch.Generator().manual_seed(0)
    for batch in (2, 4, 8, 16, 4):
        buckets(torch.randn(batch, 3, 4, 4, generator=generator))
    assert MAX_COMPILED_BATCHES == 4 and calls == [2, 4, 8, 16, 4]
    calls.clear()
    # Each chunk: the smallest compiled batch that holds what is left, else the largest; zero images fill it.
    for batch, expected_calls in ((3, [4]), (5, [8]), (20, [16, 4]), (17, [16, 2]), (35, [16, 16, 4]), (8, [8])):
        x = torch.randn(batch, 3, 4, 4, generator=generator)
        y = buckets(x)
        assert calls == expected_calls, (batch, calls)
        assert torch.equal(y["out"], x * 2) and torch.equal(y["aux"], x.sum(dim=(1, 2, 3)))
        calls.clear()
    buckets(torch.randn(7, 3, 8, 8, generator=generator))   # another input size: its own batch sizes
    assert calls == [7] and buckets.batches[((3, 8, 8), torch.float32, torch.get_num_threads())] == [7]


@pytest.mark.slow
def test_the_compiled_path_runs_a_fifth_batch_size_on_the_four_compiled_graphs_with_the_same_outputs(one_thread):
    import torch._dynamo.utils as dynamo_utils

    torch.manual_seed(0)
    model = randomise_batch_norms(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU()))
    fast = optimize_for_inference(model, compile=True)
    before = dynamo_utils.counters["stats"]["unique_graphs"]
    with torch.no_grad():
        for batch in (1, 2, 3, 4, 5, 7, 9):
            x = torch.randn(batch, 3, 8, 8)
            assert relative_error(model(x), fast(x)) < 1e-5, batch
    # Dynamo would have compiled (and, past its limit of 8 graphs, run eagerly) a graph for each batch size.
    assert dynamo_utils.counters["stats"]["unique_graphs"] - before == 4
    assert list(fast.compiled_batches.values()) == [[1, 2, 3, 4]]
