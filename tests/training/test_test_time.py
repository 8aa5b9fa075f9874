"""Segmentation test protocols: multi-scale, flip and sliding-window averaging."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from convzoo.errors import InputSizeError
from convzoo.training.test_time import (TEST_PROTOCOLS, EvalProtocol, make_protocol, protocol_probabilities,
                                        slide_probabilities)


def _pointwise() -> nn.Module:
    torch.manual_seed(0)
    return nn.Conv2d(1, 3, kernel_size=1)


def test_a_pixelwise_network_gives_the_same_softmax_tiled_mirrored_or_at_one_scale():
    network, images = _pointwise(), torch.randn(2, 1, 20, 20)
    plain = network(images).softmax(dim=1)
    assert torch.allclose(slide_probabilities(network, images, crop=8, stride=5), plain, atol=1e-6)
    assert torch.allclose(protocol_probabilities(network, images, EvalProtocol(flip=True)), plain, atol=1e-6)
    flat = torch.full((1, 1, 12, 12), 0.7)  # a constant image looks the same at every scale
    assert torch.allclose(protocol_probabilities(network, flat, TEST_PROTOCOLS["pspnet"], input_side=8),
                          network(flat).softmax(dim=1), atol=1e-5)


def test_scales_average_the_predictions_brought_back_to_the_image_size():
    class Blur(nn.Module):  # output depends on scale: a 3x3 box filter
        def forward(self, x):
            return torch.cat([nn.functional.avg_pool2d(x, 3, 1, 1), -x], dim=1)

    images = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    one = protocol_probabilities(Blur(), images, EvalProtocol())
    two = protocol_probabilities(Blur(), images, EvalProtocol(scales=(0.5, 2.0)))
    assert two.shape == one.shape and not torch.allclose(one, two)
    assert torch.allclose(two.sum(dim=1), torch.ones(1, 16, 16))


def test_a_network_with_a_smaller_output_and_bad_settings_are_refused():
    shrinking = nn.Conv2d(1, 2, kernel_size=3)
    with pytest.raises(InputSizeError, match="output covers its input"):
        protocol_probabilities(shrinking, torch.randn(1, 1, 8, 8), EvalProtocol(flip=True))
    with pytest.raises(ValueError, match="give it alone"):
        make_protocol("deeplabv3", flip=True)
    with pytest.raises(ValueError, match="STRIDE <= CROP"):
        make_protocol(slide=(8, 9))
    assert make_protocol("deeplabv3").scales == (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)
