"""What segmentation networks add to the checks test_zoo.py makes of every network (parameter count, tight
smallest input, channel count, card): logits of shape (N, num_classes, H, W) at the input's size (or
`output_size` for the unpadded U-Net), odd sizes kept, forward and backward at the smallest size, and the
dict output ({"out"}, and "aux" where the network has an auxiliary head) in every mode."""
import pytest
import torch

import convzoo
from twins import DEEPER_TWINS, create_sweep_model, on_meta

SEGMENTERS = convzoo.list_models(task="segmentation")
# Forward and backward on real tensors check each kind of operation: as in test_zoo.py, without the deeper twins
# (FCN-32s and -16s are FCN-8s's parts) and the bare names, and with the NARROW networks' fewer hidden units
# (tests/twins.py).
REAL = [name for name in SEGMENTERS if name not in DEEPER_TWINS and convzoo.model_card(name).same_as is None]


def expected_hw(model, hw):
    return tuple(model.output_size(hw)) if hasattr(model, "output_size") else tuple(hw)


def test_segmentation_zoo_is_populated():
    expected = {"fcn32s", "fcn16s", "fcn8s", "fcn_resnet50", "fcn_resnet101", "deeplabv3_resnet50",
                "deeplabv3_resnet101", "unet", "unet_padded", "dilated8", "deeplab_v1", "deeplab_v2_vgg16",
                "deeplab_v2_resnet101", "deeplab_v2", "deeplabv3plus", "pspnet_resnet50", "pspnet_resnet101", "pspnet"}
    assert expected <= set(SEGMENTERS)


@pytest.mark.parametrize("name", SEGMENTERS)
def test_default_input_gives_score_maps(name):
    card = convzoo.model_card(name)
    model = on_meta(name)
    with torch.device("meta"):
        out = model(torch.empty(2, *card.input_size))["out"]
    assert tuple(out.shape) == (2, card.num_classes, *expected_hw(model, card.input_size[1:]))


@pytest.mark.parametrize("name", SEGMENTERS)
def test_odd_input_size_keeps_its_size(name):
    card = convzoo.model_card(name)
    h, w = max(card.min_input_size[0], 61) + 2, max(card.min_input_size[1], 61) + 7
    model = on_meta(name)
    with torch.device("meta"):
        out = model(torch.empty(1, card.input_size[0], h, w))["out"]
    assert tuple(out.shape[-2:]) == expected_hw(model, (h, w))


# Dilation8's smallest input (185) is 557 pixels once reflection-padded by its margin: seconds of convolution.
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n == "dilated8" else n for n in REAL])
def test_forward_backward_at_smallest_input(name, one_thread):
    torch.manual_seed(0)
    card = convzoo.model_card(name)
    model = create_sweep_model(name, num_classes=5, in_chans=2).eval()
    x = torch.randn(1, 2, *card.min_input_size)
    out = model(x)["out"]
    assert out.shape == (1, 5, *expected_hw(model, card.min_input_size))
    assert torch.isfinite(out).all()
    # Cross-entropy, not a norm of the output: FCN's scoring layers start at zero, so the output does too.
    torch.nn.functional.cross_entropy(out, torch.randint(0, 5, (1, *out.shape[-2:]))).backward()
    # An auxiliary head only runs in training mode.
    grads = [p.grad for n, p in model.named_parameters() if p.requires_grad and not n.startswith("aux_classifier.")]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0


@pytest.mark.parametrize("name", SEGMENTERS)
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_output_is_torchvisions_dict_in_every_mode(name, mode):
    """{"out": logits}, with "aux" for a network built with an auxiliary head, in training and evaluation."""
    card = convzoo.model_card(name)
    size = max(card.min_input_size[0], 64)
    model = on_meta(name).train(mode == "train")
    try:
        with torch.device("meta"):
            out = model(torch.empty(2, card.input_size[0], size, size))
    finally:
        model.eval()  # shared (twins.on_meta)
    hw = expected_hw(model, (size, size))
    assert set(out) == ({"out", "aux"} if getattr(model, "aux_classifier", None) is not None else {"out"})
    for logits in out.values():
        assert tuple(logits.shape) == (2, card.num_classes, *hw)
