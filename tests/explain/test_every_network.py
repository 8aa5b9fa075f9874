"""Every method on every registered classification network, at a small input: it runs, its numbers are finite and
its maps have the image's size. The networks are built cheaply: the large ones on the meta device, then given
seeded weights (1/sqrt(fan-in) scale) without torch's initialisers; batch norm is calibrated on 32 random
images so that no untrained activation overflows. Score-CAM (one forward pass per channel) looks at the stage
with the fewest channels. CAM must refuse exactly the networks whose head is not global average pooling + one
linear layer on a module's map (they flatten a grid into fully connected layers, or pool a concatenation)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import convzoo
from convzoo.explain import METHODS, ExplainError, explain, prepare

from twins import DEEPER_TWINS, create_sweep_model

# Every classifier but the deeper twins (tests/twins.py): a twin is its representative's blocks, more of them, so a
# method that runs on the representative runs on the twin; test_every_twin_is_made_of_its_representatives_blocks
# checks that each twin still is one. The twins (the 1000-layer ResNets, the 100M-parameter networks) were most of
# this sweep's minutes.
CLASSIFIERS = [name for name in convzoo.list_models(task="classification") if name not in DEEPER_TWINS]
# CAM's refusals: these classifiers read a flattened grid. (nas pools its body's output, NASCell's, with its avgpool
# module before fc, so CAM applies.)
NOT_CAM = {"alexnet", "zfnet", "vgg", "lenet"}
# Built with torch's initialisers below this many parameters; above, on the meta device and filled from a pool.
_REAL_INIT_BELOW = 2_000_000
_POOL = 1 << 16
# Score-CAM's forward pass per channel at a smallest input over 100 pixels (GoogLeNet's 223) takes seconds: marked
# slow (they still run in CI).
SLOW = {name for name in CLASSIFIERS if convzoo.model_card(name).min_input_size[0] > 100}


def cheap_model(name: str, size: tuple[int, int, int]) -> nn.Module:
    card = convzoo.model_card(name)
    if card.params < _REAL_INIT_BELOW:
        model = convzoo.create_model(name, num_classes=5)
    else:
        with torch.device("meta"):  # the NARROW networks with fewer hidden units: the same graph (tests/twins.py)
            model = create_sweep_model(name, num_classes=5)
        model = model.to_empty(device="cpu")
        pool = torch.randn(_POOL, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            for path, param in model.named_parameters():
                flat = param.view(-1)
                if param.dim() > 1:  # the pool repeated (one broadcast copy), scaled to variance 1/fan-in
                    whole = flat.numel() // _POOL * _POOL
                    flat[:whole].view(-1, _POOL).copy_(pool.expand(whole // _POOL, _POOL))
                    flat[whole:].copy_(pool[:flat.numel() - whole])
                    flat.mul_(param[0].numel() ** -0.5)
                else:
                    flat.fill_(1.0 if path.endswith("weight") else 0.0)
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average: after one batch, that batch's statistics
    if norms:
        with torch.no_grad():  # 32 images, so that the statistics of the last 1x1 maps are not those of a few numbers
            model.train()(torch.randn(32, *size))
    return model.eval()


def small_input(name: str) -> tuple[int, int, int]:
    """8 pixels a side, or the card's smallest input if larger. (At 16, Score-CAM's pass per channel of
    ResNeXt-29's 256-channel stage took 11 s.)"""
    card = convzoo.model_card(name)
    side = max(card.min_input_size[0], 8)
    return (card.input_size[0], side, side)


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in CLASSIFIERS])
def test_every_method_runs_on_every_classifier(name):
    torch.set_num_threads(1)  # put back by conftest's _seed; two threads per xdist worker stall on 2 cores
    size = small_input(name)
    batch = torch.randn(1, *size)
    subject = prepare(cheap_model(name, size), copy_model=False)
    layers = subject.layers(size)
    fewest_channels = min(layers.stages, key=lambda path: layers.get(path).shape[0])
    results = {}
    for method in METHODS:
        options = {}
        if method == "occlusion":
            options = {"window": size[1] // 2, "stride": size[1] // 2}
        layer = fewest_channels if method == "scorecam" else None
        try:
            results[method] = explain(subject, batch, method, layer=layer, **options)
        except ExplainError as err:
            assert method == "cam" and "use gradcam" in str(err), f"{method}: {err}"
    assert ("cam" not in results) == (convzoo.model_card(name).family in NOT_CAM)
    for method, result in results.items():
        for key, array in result.arrays.items():
            assert np.isfinite(array).all(), f"{method} {key} of {name} is not finite"
    for method in ("gradcam", "gradcam++", "scorecam", "occlusion"):
        maps = results[method].arrays["maps" if method != "occlusion" else "drop_per_pixel"]
        assert maps.shape == (1, size[1], size[2])
    assert results["erf"].numbers["gradient_inside_box"] == pytest.approx(1.0)
    assert [entry["layer"]["layer"] for entry in results["feature-maps"].numbers["maps"]] == layers.stages


@pytest.mark.parametrize("name", ["unet_padded", pytest.param("deeplabv3_resnet50", marks=pytest.mark.slow)])
def test_segmentation_networks_are_explained_per_predicted_class(name):
    size = (3 if name != "unet_padded" else 1, 32, 32)
    batch = torch.randn(1, *size)
    subject = prepare(cheap_model(name, size), copy_model=False)
    layers = subject.layers(size)
    gradcam = explain(subject, batch, "gradcam")
    predicted = subject.model(batch)["out"].argmax(dim=1)[0]
    classes = [entry["class_index"] for entry in gradcam.numbers["targets"]]
    assert set(classes) <= set(predicted.unique().tolist()) and len(classes) == min(4, predicted.unique().numel())
    assert [entry["region_pixels"] for entry in gradcam.numbers["targets"]] == \
        [int((predicted == c).sum()) for c in classes]
    assert gradcam.numbers["layer"]["layer"] == layers.target and gradcam.arrays["maps"].shape == (len(classes), 32, 32)
    occlusion = explain(subject, batch, "occlusion", window=8, stride=8)
    assert occlusion.arrays["probability_maps"].shape == (len(classes), 4, 4)
    for result in (gradcam, occlusion, explain(subject, batch, "erf"), explain(subject, batch, "feature-maps")):
        assert all(np.isfinite(array).all() for array in result.arrays.values())
    with pytest.raises(ExplainError, match="use gradcam"):
        explain(subject, batch, "cam")
