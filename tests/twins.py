"""Deeper (or wider) twins: networks built by the same builder as a smaller one from the same blocks, only more
of them (or more channels). Their graphs hold the same kinds of operations, so a check of what an exporter or
the batch-norm folding does with each kind of operation is made on the smaller one; the sweeps over every
network leave the twins out, and test_every_twin_is_made_of_its_representatives_blocks (tests/test_deploy.py)
checks on the meta device that each twin still is one. This is where the suite's slowest minutes were: the
1000-layer ResNets and the 130M-parameter VGGs repeated what their small twins already showed.

FEWER_PARTS are twins the other way round: built by their representative's builder from a subset of its blocks
(FCN-32s and FCN-16s are FCN-8s without one or both skip branches; VGG-11 is VGG-11-BN without its batch
norms), so the kinds of modules they hold are a subset of the representative's.

NARROW: the networks whose cost in a sweep is the 4096 hidden units of their fully connected layers (or of
those layers as convolutions: fc6/fc7), ~90% of their 60-140M parameters, are built for the sweeps that check
per-operation behaviour (export, forward and backward) with NARROW_HIDDEN units instead: the same graph, the
same layers, kernels, strides, paddings, crops, only those two layers narrower.
test_a_narrow_build_differs_from_the_network_only_in_its_hidden_width (tests/test_deploy.py) checks that on
the meta device."""
from __future__ import annotations

import contextlib
import functools
import importlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

import convzoo

DEEPER_TWINS = {
    "resnet1202": "resnet20", "preact_resnet1001": "preact_resnet164",
    "resnet32": "resnet20", "resnet44": "resnet20", "resnet56": "resnet20", "resnet110": "resnet20",
    "resnet34": "resnet18", "preact_resnet34": "preact_resnet18",
    "resnet101": "resnet50", "resnet152": "resnet50", "preact_resnet101": "preact_resnet50",
    "preact_resnet152": "preact_resnet50", "se_resnet101": "se_resnet50", "se_resnet152": "se_resnet50",
    "se_resnext101_32x4d": "se_resnext50_32x4d", "resnext101_32x8d": "resnext50_32x4d",
    "resnext101_64x4d": "resnext50_32x4d", "resnext29_16x64d": "resnext29_8x64d",
    "wide_resnet50_2": "resnet50", "wide_resnet101_2": "resnet50",
    "wrn28_10": "wrn16_8", "wrn40_4": "wrn16_8",
    "shufflenet_v2_x1_0": "shufflenet_v2_x0_5", "shufflenet_v2_x1_5": "shufflenet_v2_x0_5",
    "shufflenet_v2_x2_0": "shufflenet_v2_x0_5",
    "vgg13": "vgg11", "vgg16": "vgg11", "vgg19": "vgg11",
    "vgg13_bn": "vgg11_bn", "vgg16_bn": "vgg11_bn", "vgg19_bn": "vgg11_bn",
    "densenet161": "densenet121", "densenet169": "densenet121", "densenet201": "densenet121",
    "densenet_bc190_k40": "densenet_bc100_k12", "densenet_bc250_k24": "densenet_bc100_k12",
    "deeplabv3_resnet101": "deeplabv3_resnet50", "pspnet_resnet101": "pspnet_resnet50",
    "fcn_resnet101": "fcn_resnet50", "zfnet_wide": "zfnet",
    "fcn32s": "fcn8s", "fcn16s": "fcn8s", "vgg11": "vgg11_bn",
}
FEWER_PARTS = {"fcn32s", "fcn16s", "vgg11"}

NARROW_HIDDEN = 256
# How each network's hidden width is set: a model argument where its builder takes one, else the module constant
# its builder reads when it builds.
_NARROW_ARGUMENT = {"alexnet": "hidden_units", "zfnet": "hidden_units"}
_NARROW_CONSTANT = {"alexnet_owt": "convzoo.models.classification.alexnet",
                    "vgg11_bn": "convzoo.models.classification.vgg",
                    "fcn8s": "convzoo.models.segmentation.fcn",
                    "dilated8": "convzoo.models.segmentation.dilated"}
NARROW = sorted(_NARROW_ARGUMENT.keys() | _NARROW_CONSTANT.keys())
FULL_HIDDEN = 4096


@contextlib.contextmanager
def _hidden_constant(name: str, width: int) -> Iterator[None]:
    module = importlib.import_module(_NARROW_CONSTANT[name])
    before = module.HIDDEN
    assert before == FULL_HIDDEN, f"{module.__name__}.HIDDEN is {before}: update tests/twins.py"
    module.HIDDEN = width
    try:
        yield
    finally:
        module.HIDDEN = before


def create_sweep_model(name: str, **kwargs: Any) -> nn.Module:
    """convzoo.create_model(name, **kwargs), NARROW_HIDDEN wide where the network is in NARROW."""
    if name not in NARROW:
        return convzoo.create_model(name, **kwargs)
    if name in _NARROW_ARGUMENT:
        return convzoo.create_model(name, **{_NARROW_ARGUMENT[name]: NARROW_HIDDEN}, **kwargs)
    with _hidden_constant(name, NARROW_HIDDEN):
        return convzoo.create_model(name, **kwargs)


def module_kinds(model: nn.Module) -> set[str]:
    return {type(module).__name__ for module in model.modules()}


@functools.cache
def on_meta(name: str) -> nn.Module:
    """The network with its card's arguments, built once per test process on the meta device, in eval mode: the
    checks of shapes, counts and module kinds share it (building the 1000-layer ResNets takes seconds even there).
    Shared: a test that changes it (its mode, its head) works on a copy.deepcopy or puts it back."""
    with torch.device("meta"):
        return convzoo.create_model(name).eval()
