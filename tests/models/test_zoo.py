"""Checks every registered network against its card: exact parameter count, the smallest input it accepts
(runs there, refused one pixel below, and one pixel below really would fail), wrong channel counts refused,
a complete card. For classifiers also: class scores at the default size, forward and backward at the smallest
and (small networks) the default size. test_segmentation_zoo.py adds the segmentation networks' own checks."""
import pytest
import torch

import convzoo
from convzoo.protocol import main_output
from convzoo.errors import InputSizeError
from convzoo.registry import _entry
from twins import DEEPER_TWINS, create_sweep_model, on_meta

ALL = convzoo.list_models()
CLASSIFIERS = convzoo.list_models(task="classification")
# Forward and backward on real tensors check each kind of operation of a network: they leave out the deeper twins
# (tests/twins.py, their representative's operations) and the bare names (their same_as network, checked below to be
# it), and build the NARROW networks with fewer hidden units (the same graph). The shapes, counts and refusals are
# checked on every network, on the meta device, each built once (twins.on_meta).
REAL = [name for name in CLASSIFIERS if name not in DEEPER_TWINS and convzoo.model_card(name).same_as is None]


def trainable(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_zoo_is_populated():
    assert len(CLASSIFIERS) >= 60


@pytest.mark.parametrize("name", ALL)
def test_parameter_count_matches_card(name):
    assert trainable(on_meta(name)) == convzoo.model_card(name).params


@pytest.mark.parametrize("name", [n for n in ALL if convzoo.model_card(n).same_as is not None])
def test_a_bare_name_builds_its_same_as_network(name):
    card = convzoo.model_card(name)
    target = convzoo.model_card(card.same_as)
    model, reference = on_meta(name), on_meta(card.same_as)
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    assert shapes == {k: v.shape for k, v in reference.state_dict().items()}
    assert str(model) == str(reference)
    assert (card.params, card.macs, card.input_size, card.min_input_size, card.num_classes, card.task) == \
        (target.params, target.macs, target.input_size, target.min_input_size, target.num_classes, target.task)


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_default_input_gives_class_scores(name):
    card = convzoo.model_card(name)
    with torch.device("meta"):
        out = on_meta(name)(torch.empty(2, *card.input_size))
    assert tuple(out.shape) == (2, card.num_classes)


@pytest.mark.parametrize("name", ALL)
def test_smallest_input_is_tight(name):
    card = convzoo.model_card(name)
    c = card.input_size[0]
    h, w = card.min_input_size
    model = on_meta(name)
    with torch.device("meta"):
        assert main_output(model(torch.empty(1, c, h, w))).shape[1] == card.num_classes
        if h > 1:
            with pytest.raises(InputSizeError, match=f"at least {h}x{w}"):
                model(torch.empty(1, c, h - 1, w - 1))
            # The guard is not stricter than the network: without it, one pixel less really fails, in torch's own
            # shape check (a RuntimeError naming a size) or the network's own (nas, unet), not in some other error.
            raw = _entry(name).builder(num_classes=card.num_classes, in_chans=c).eval()
            with pytest.raises((RuntimeError, InputSizeError), match=r"(?i)size|shape|kernel|at least"):
                raw(torch.empty(1, c, h - 1, w - 1))


@pytest.mark.parametrize("name", REAL)
def test_forward_backward_at_smallest_input(name, one_thread):
    card = convzoo.model_card(name)
    # Eval mode: at a 1x1 input a training-mode batch norm sees two values per channel, and over a hundred
    # such layers the backward overflows; that is the statistics of a tiny batch, not the architecture.
    model = create_sweep_model(name, num_classes=5, in_chans=2).eval()
    x = torch.randn(2, 2, *card.min_input_size)
    out = model(x)
    logits = out[0] if isinstance(out, tuple) else out
    assert logits.shape == (2, 5)
    assert torch.isfinite(logits).all()
    logits.square().mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads)
    assert sum(g.abs().sum() for g in grads if g is not None) > 0


@pytest.mark.parametrize("name", ALL)
def test_wrong_channel_count_is_named(name):
    card = convzoo.model_card(name)
    wrong = card.input_size[0] + 1
    with torch.device("meta"), pytest.raises(InputSizeError, match=f"{card.input_size[0]}-channel"):
        on_meta(name)(torch.empty(1, wrong, *card.input_size[1:]))


@pytest.mark.parametrize("name", ALL)
def test_card_is_complete(name):
    card = convzoo.model_card(name)
    assert card.paper.title and card.paper.authors and 1989 <= card.paper.year <= 2026
    assert card.family and card.notes and card.macs
    assert card.min_input_size[0] <= card.input_size[1]


# "The small ones at their default size": the networks cheap enough to train at full resolution here.
SMALL = [n for n in REAL if convzoo.model_card(n).params < 5_000_000 or convzoo.model_card(n).input_size[1] <= 32]


@pytest.mark.parametrize("name", SMALL)
def test_forward_backward_at_default_input(name, one_thread):
    card = convzoo.model_card(name)
    model = convzoo.create_model(name).train()
    out = model(torch.randn(2, *card.input_size))
    logits = out[0] if isinstance(out, tuple) else out
    assert logits.shape == (2, card.num_classes)
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1])).backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(torch.isfinite(g).all() for g in grads if g is not None)
    assert all(g is not None for g in grads)
