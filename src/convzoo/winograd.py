"""3x3 convolutions by Winograd's minimal filtering F(2x2, 3x3) (Lavin and Gray, "Fast Algorithms for
Convolutional Neural Networks", 2016), for the compiled inference path.

Each 2x2 block of outputs is computed from its 4x4 tile of input as A^T [(G g G^T) * (B^T d B)] A: 16
multiplications per input and output channel pair instead of 36, 2.25x fewer. Over all channels the 16
products become 16 matrix products [tiles, C] x [C, K], which run at the machine's matrix-product speed; the
transforms of input and output are a few additions each, which inductor fuses into one loop each (the output
transform with the bias and whatever pointwise operation follows, e.g. ReLU). The results differ from direct
convolution by float rounding only (relative 2e-6 on one layer).

It pays where the matrix products are large enough to run well: at least 256 channels in and out. Measured
against oneDNN's direct convolution, both compiled as the fast path compiles, batch 8, one thread
(`python benchmarks/bench_winograd.py`, docs/performance.md): 1.38x at 256 channels on 14x14, 1.26x on 28x28,
1.22x on 56x56, 1.54x at 512 on 14x14, 2.14x at 1024 on 14x14; but 0.88x at 128 channels on 28x28 and 0.62x
at 64 on 56x56, where the transforms, not the products, take the time. Maps are bounded at 56x56: the
transformed input is 4x the layer's input, held while the products run. Run eagerly (not compiled), the
transforms are separate passes over memory and Winograd is slower, so the fast path uses it compiled only.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Where Winograd pays (the module's docstring): channels in and out; the largest map (height x width), which bounds
# the transformed input's memory.
WINOGRAD_MIN_CHANNELS = 256
WINOGRAD_MAX_MAP = 56 * 56

# G of F(2x2, 3x3): the filter transform, U = G g G^T.
_G = ((1.0, 0.0, 0.0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0.0, 0.0, 1.0))


def winograd_weight(weight: torch.Tensor) -> torch.Tensor:
    """A 3x3 convolution's weight [K, C, 3, 3] transformed for `winograd_conv3x3`: [16, C, K], one [C, K]
    matrix for each of the 16 positions of a 4x4 tile."""
    out_channels, in_channels = weight.shape[:2]
    g = torch.tensor(_G, dtype=torch.float64)
    transformed = torch.einsum("ai,kcij,bj->abck", g, weight.double(), g)
    return transformed.reshape(16, in_channels, out_channels).to(weight.dtype).contiguous()


def _input_transform_1d(tiles: torch.Tensor, dim: int) -> torch.Tensor:
    """B^T along `dim` (size 4): (d0 - d2, d1 + d2, d2 - d1, d1 - d3)."""
    d0, d1, d2, d3 = tiles.unbind(dim)
    return torch.stack((d0 - d2, d1 + d2, d2 - d1, d1 - d3), dim)


def _output_transform_1d(products: torch.Tensor, dim: int) -> torch.Tensor:
    """A^T along `dim` (size 4): (m0 + m1 + m2, m1 - m2 - m3)."""
    m0, m1, m2, m3 = products.unbind(dim)
    return torch.stack((m0 + m1 + m2, m1 - m2 - m3), dim)


def winograd_conv3x3(x: torch.Tensor, transformed_weight: torch.Tensor,
                     bias: torch.Tensor | None = None) -> torch.Tensor:
    """conv2d(x, weight, bias, stride=1, padding=1) for a 3x3 weight given as `winograd_weight(weight)`;
    x is [N, C, H, W] with H and W even. Returns [N, K, H, W] in channels_last layout."""
    batch, channels, height, width = x.shape
    if height % 2 or width % 2:
        raise ValueError(f"winograd_conv3x3 needs an even height and width, got {height}x{width}; "
                         f"use torch.nn.functional.conv2d for this map")
    rows, cols = height // 2, width // 2
    padded = F.pad(x, (1, 1, 1, 1)).permute(0, 2, 3, 1)             # N, H+2, W+2, C
    s_n, s_h, s_w, s_c = padded.stride()
    # Overlapping 4x4 tiles, two pixels apart: N, rows, cols, 4, 4, C (a view, no copy).
    tiles = padded.as_strided((batch, rows, cols, 4, 4, channels), (s_n, 2 * s_h, 2 * s_w, s_h, s_w, s_c))
    transformed = _input_transform_1d(_input_transform_1d(tiles, 3), 4)
    transformed = transformed.permute(3, 4, 0, 1, 2, 5).reshape(16, batch * rows * cols, channels)
    products = torch.bmm(transformed, transformed_weight)            # 16, tiles, K
    out_channels = products.shape[-1]
    products = products.view(4, 4, batch, rows, cols, out_channels)
    blocks = _output_transform_1d(_output_transform_1d(products, 0), 1)   # 2, 2, N, rows, cols, K
    out = blocks.permute(2, 3, 0, 4, 1, 5).reshape(batch, height, width, out_channels)
    if bias is not None:
        out = out + bias
    return out.permute(0, 3, 1, 2)


def winograd_applies(conv: nn.Module) -> bool:
    """Whether `conv` is a 3x3 convolution Winograd F(2x2, 3x3) computes and pays on: stride 1, padding 1,
    no dilation or groups, zero padding, float32, at least WINOGRAD_MIN_CHANNELS in and out."""
    return (type(conv) is nn.Conv2d and conv.kernel_size == (3, 3) and conv.stride == (1, 1)
            and conv.padding == (1, 1) and conv.dilation == (1, 1) and conv.groups == 1
            and conv.padding_mode == "zeros" and conv.weight.dtype == torch.float32
            and min(conv.in_channels, conv.out_channels) >= WINOGRAD_MIN_CHANNELS)


def winograd_workspace_bytes(conv: nn.Module, output_shape: tuple) -> int:
    """Bytes a WinogradConv2d made of `conv` holds beside its input and output for one image whose output is
    `output_shape` (C, H, W): the padded input, the transformed input (4x the input) and the 16 products (4x
    the output), float32; 0 where it would not run Winograd."""
    if not winograd_applies(conv) or len(output_shape) != 3:
        return 0
    out_channels, height, width = output_shape
    if height % 2 or width % 2 or height * width > WINOGRAD_MAX_MAP:
        return 0
    padded = (height + 2) * (width + 2) * conv.in_channels
    return 4 * (padded + 4 * height * width * (conv.in_channels + out_channels))


class WinogradConv2d(nn.Module):
    """A 3x3 convolution (one `winograd_applies` to) that runs by Winograd F(2x2, 3x3) on even maps of at most
    WINOGRAD_MAX_MAP pixels and as the convolution it was on the others (its `conv`)."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        if not winograd_applies(conv):
            raise ValueError(f"WinogradConv2d takes a float32 3x3 convolution with stride 1, padding 1 and at "
                             f"least {WINOGRAD_MIN_CHANNELS} channels in and out, got {conv}")
        self.conv = conv
        self.register_buffer("transformed_weight", winograd_weight(conv.weight.detach()))

    def uses_winograd(self, x: torch.Tensor) -> bool:
        height, width = x.shape[-2:]
        return (x.dim() == 4 and x.dtype == torch.float32 and height % 2 == 0 and width % 2 == 0
                and height * width <= WINOGRAD_MAX_MAP)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.uses_winograd(x):
            return winograd_conv3x3(x, self.transformed_weight, self.conv.bias)
        return self.conv(x)

    def extra_repr(self) -> str:
        return f"{self.conv.in_channels}, {self.conv.out_channels}, F(2x2, 3x3) on even maps <= {WINOGRAD_MAX_MAP} px"
