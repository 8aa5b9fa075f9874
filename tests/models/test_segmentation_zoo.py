"""Checks every registered segmentation network against its card, as test_zoo.py does for classifiers: exact
parameter count, logits of shape (N, num_classes, H, W) at the input's size (or `output_size` for the
unpadded U-Net), the smallest input it accepts (runs there, refused one pixel below, and one pixel below
really would fail), forward and backward at that size, and wrong channel counts refused."""
import pytest
import torch

import convzoo
from convzoo.errors import InputSizeError
from convzoo.registry import _entry

SEGMENTERS = convzoo.list_models(task="segmentation")
# Real-tensor forward+backward of the largest networks (and of those whose smallest input still means a big
# feature map, like FCN's 100-pixel padding) is marked slow.
SLOW = {name for name in SEGMENTERS if convzoo.model_card(name).params > 45_000_000}


def trainable(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def expected_hw(model, hw):
    return tuple(model.output_size(hw)) if hasattr(model, "output_size") else tuple(hw)


def test_segmentation_zoo_is_populated():
    expected = {"fcn32s", "fcn16s", "fcn8s", "fcn_resnet50", "fcn_resnet101", "deeplabv3_resnet50",
                "deeplabv3_resnet101", "unet", "unet_padded", "dilated8", "deeplab_v1", "deeplab_v2_vgg16",
                "deeplab_v2_resnet101", "deeplabv3plus", "pspnet_resnet50", "pspnet_resnet101"}
    assert expected <= set(SEGMENTERS)


@pytest.mark.parametrize("name", SEGMENTERS)
def test_parameter_count_matches_card(name):
    card = convzoo.model_card(name)
    with torch.device("meta"):
        model = convzoo.create_model(name)
    assert trainable(model) == card.params


@pytest.mark.parametrize("name", SEGMENTERS)
def test_default_input_gives_score_maps(name):
    card = convzoo.model_card(name)
    with torch.device("meta"):
        model = convzoo.create_model(name).eval()
        out = model(torch.empty(2, *card.input_size))
    assert isinstance(out, torch.Tensor)
    assert tuple(out.shape) == (2, card.num_classes, *expected_hw(model, card.input_size[1:]))


@pytest.mark.parametrize("name", SEGMENTERS)
def test_odd_input_size_keeps_its_size(name):
    card = convzoo.model_card(name)
    h, w = max(card.min_input_size[0], 61) + 2, max(card.min_input_size[1], 61) + 7
    with torch.device("meta"):
        model = convzoo.create_model(name).eval()
        out = model(torch.empty(1, card.input_size[0], h, w))
    assert tuple(out.shape[-2:]) == expected_hw(model, (h, w))


@pytest.mark.parametrize("name", SEGMENTERS)
def test_smallest_input_is_tight(name):
    card = convzoo.model_card(name)
    c = card.input_size[0]
    h, w = card.min_input_size
    with torch.device("meta"):
        model = convzoo.create_model(name).eval()
        assert model(torch.empty(1, c, h, w)).shape[1] == card.num_classes
        if h > 1:
            with pytest.raises(InputSizeError, match=f"at least {h}x{w}"):
                model(torch.empty(1, c, h - 1, w - 1))
            raw = _entry(name).builder(num_classes=card.num_classes, in_chans=c).eval()
            with pytest.raises(Exception):
                raw(torch.empty(1, c, h - 1, w - 1))


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in SEGMENTERS])
def test_forward_backward_at_smallest_input(name):
    torch.manual_seed(0)
    card = convzoo.model_card(name)
    model = convzoo.create_model(name, num_classes=5, in_chans=2).eval()
    x = torch.randn(1, 2, *card.min_input_size)
    out = model(x)
    assert out.shape == (1, 5, *expected_hw(model, card.min_input_size))
    assert torch.isfinite(out).all()
    # Cross-entropy, not a norm of the output: FCN's scoring layers start at zero, so the output does too.
    torch.nn.functional.cross_entropy(out, torch.randint(0, 5, (1, *out.shape[-2:]))).backward()
    # An auxiliary head only runs in training mode.
    grads = [p.grad for n, p in model.named_parameters() if p.requires_grad and not n.startswith("aux_classifier.")]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0


@pytest.mark.parametrize("name", SEGMENTERS)
def test_training_mode_output(name):
    """Training returns the logits, or {"out", "aux"} for a network built with an auxiliary head."""
    card = convzoo.model_card(name)
    size = max(card.min_input_size[0], 64)
    with torch.device("meta"):
        model = convzoo.create_model(name).train()
        out = model(torch.empty(2, card.input_size[0], size, size))
    hw = expected_hw(model, (size, size))
    if isinstance(out, dict):
        assert set(out) == {"out", "aux"}
        assert tuple(out["aux"].shape) == (2, card.num_classes, *hw)
        out = out["out"]
    assert tuple(out.shape) == (2, card.num_classes, *hw)


@pytest.mark.parametrize("name", SEGMENTERS)
def test_wrong_channel_count_is_named(name):
    card = convzoo.model_card(name)
    with torch.device("meta"):
        model = convzoo.create_model(name)
        with pytest.raises(InputSizeError, match=f"{card.input_size[0]}-channel"):
            model(torch.empty(1, card.input_size[0] + 1, *card.input_size[1:]))


@pytest.mark.parametrize("name", SEGMENTERS)
def test_card_is_complete(name):
    card = convzoo.model_card(name)
    assert card.task == "segmentation"
    assert card.paper.title and card.paper.authors and 2014 <= card.paper.year <= 2026
    assert card.family and card.notes and card.macs
    assert card.min_input_size[0] <= card.input_size[1]
