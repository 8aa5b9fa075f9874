"""Property: Winograd F(2x2, 3x3) equals the direct 3x3 convolution (stride 1, padding 1) on any even map, any
channel counts, with or without bias, and whatever the input's memory layout."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from convzoo.winograd import winograd_conv3x3, winograd_weight

from .conftest import FUZZ


@settings(max_examples=60, **FUZZ)
@given(batch=st.integers(1, 3), channels=st.integers(1, 9), out_channels=st.integers(1, 9),
       half_height=st.integers(1, 7), half_width=st.integers(1, 7), bias=st.booleans(),
       channels_last=st.booleans(), seed=st.integers(0, 2**16))
def test_winograd_equals_the_direct_convolution_on_any_even_map(batch, channels, out_channels, half_height,
                                                                half_width, bias, channels_last, seed):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, channels, 2 * half_height, 2 * half_width, generator=generator)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    weight = torch.randn(out_channels, channels, 3, 3, generator=generator)
    b = torch.randn(out_channels, generator=generator) if bias else None
    expected = F.conv2d(x, weight, b, padding=1)
    got = winograd_conv3x3(x, winograd_weight(weight), b)
    assert got.shape == expected.shape
    # Absolute, scaled by the sum of |w| (the largest an output can move per unit of input): float rounding of
    # a few additions is ~1e-6 of it, a wrong tap or transform ~1.
    scale = weight.abs().sum(dim=(1, 2, 3)).max() * x.abs().max()
    assert ((got - expected).abs().max() / scale).item() < 1e-5
