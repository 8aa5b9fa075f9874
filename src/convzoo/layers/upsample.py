"""In-network upsampling, as the course lists it: fixed unpooling (nearest neighbour, "bed of nails", max
unpooling with the pooling's indices), learnable transposed convolution (optionally starting as bilinear
interpolation, fixed or learnable, as FCN), and bilinear interpolation.

`conv1d_matrix` writes a 1-D convolution as the matrix X of the course (x * a = X a): a transposed
convolution multiplies by X^T, which is why it upsamples, and why with stride > 1 it is not a convolution.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _check_scale(scale: int) -> int:
    if int(scale) != scale or scale < 1:
        raise ValueError(f"upsampling scale must be a positive integer, got {scale}")
    return int(scale)


class NearestUpsample(nn.Module):
    """Nearest-neighbour unpooling: every value fills a scale x scale block (2x2 -> 4x4: 1 2 / 3 4 becomes
    1 1 2 2 / 1 1 2 2 / 3 3 4 4 / 3 3 4 4)."""

    def __init__(self, scale: int = 2):
        super().__init__()
        self.scale = _check_scale(scale)

    def forward(self, x: Tensor) -> Tensor:
        return F.interpolate(x, scale_factor=self.scale, mode="nearest")

    def extra_repr(self) -> str:
        return f"scale={self.scale}"


class BedOfNailsUpsample(nn.Module):
    """"Bed of nails" unpooling: every value goes to the top-left corner of its scale x scale block, the
    rest is zero (1 2 / 3 4 becomes 1 0 2 0 / 0 0 0 0 / 3 0 4 0 / 0 0 0 0)."""

    def __init__(self, scale: int = 2):
        super().__init__()
        self.scale = _check_scale(scale)

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        out = x.new_zeros(n, c, h * self.scale, w * self.scale)
        out[:, :, ::self.scale, ::self.scale] = x
        return out

    def extra_repr(self) -> str:
        return f"scale={self.scale}"


class MaxUnpool(nn.Module):
    """Max unpooling: each value goes back to the position its max pool took it from, the rest is zero.

    Pair it with a max pool that returns its indices (nn.MaxPool2d(..., return_indices=True)), remembered
    on the way down, as SegNet's encoder-decoder does:

        pooled, indices = pool(x)            # pool = nn.MaxPool2d(2, return_indices=True)
        up = MaxUnpool(2)(pooled, indices, output_size=x.shape[-2:])
    """

    def __init__(self, scale: int = 2):
        super().__init__()
        self.scale = _check_scale(scale)

    def forward(self, x: Tensor, indices: Tensor, output_size: tuple[int, int] | torch.Size | None = None) -> Tensor:
        return F.max_unpool2d(x, indices, self.scale, self.scale,
                              output_size=None if output_size is None else tuple(output_size)[-2:])

    def extra_repr(self) -> str:
        return f"scale={self.scale}"


class BilinearUpsample(nn.Module):
    """Bilinear interpolation by an integer scale, or to a given size in forward(x, size)."""

    def __init__(self, scale: int = 2, align_corners: bool = False):
        super().__init__()
        self.scale = _check_scale(scale)
        self.align_corners = align_corners

    def forward(self, x: Tensor, size: tuple[int, int] | torch.Size | None = None) -> Tensor:
        if size is not None:
            return F.interpolate(x, size=tuple(size)[-2:], mode="bilinear", align_corners=self.align_corners)
        return F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=self.align_corners)

    def extra_repr(self) -> str:
        return f"scale={self.scale}, align_corners={self.align_corners}"


def bilinear_kernel(size: int) -> Tensor:
    """The size x size filter that makes a stride-f transposed convolution (size 2f or 2f - 1) interpolate
    bilinearly: the outer product of a triangle of half-width ceil(size / 2) (FCN's `upsample_filt`)."""
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    triangle = 1 - (torch.arange(size, dtype=torch.float32) - center).abs() / factor
    return triangle[:, None] * triangle[None, :]


@torch.no_grad()
def init_bilinear_(conv: nn.ConvTranspose2d) -> nn.ConvTranspose2d:
    """Set a transposed conv with as many outputs as inputs to bilinear interpolation of each channel on its
    own (the kernel on the diagonal, zero across channels, zero bias): FCN's initialisation."""
    if conv.in_channels != conv.out_channels or conv.groups != 1:
        raise ValueError("bilinear initialisation maps each channel to itself: it needs in_channels == "
                         f"out_channels and groups=1, got {conv.in_channels}, {conv.out_channels}, "
                         f"groups={conv.groups}")
    height, width = conv.kernel_size
    if height != width:
        raise ValueError(f"bilinear initialisation needs a square kernel, got {conv.kernel_size}")
    conv.weight.zero_()
    kernel = bilinear_kernel(height).to(conv.weight)
    for channel in range(conv.in_channels):
        conv.weight[channel, channel] = kernel
    if conv.bias is not None:
        conv.bias.zero_()
    return conv


class TransposedConvUpsample(nn.ConvTranspose2d):
    """Learnable upsampling by an integer `scale`: a transposed convolution with stride `scale`, kernel
    2 * scale (2 * scale - 1 for odd scales) and the padding that makes the output exactly scale times the
    input (FCN's "deconvolution" layers, which crop afterwards instead).

    bilinear=True starts it as bilinear interpolation (needs in_chans == out_chans); learnable=False then
    freezes the weights, as FCN's final 8x/16x/32x upsampling, which is fixed. No bias, as FCN's."""

    def __init__(self, in_chans: int, out_chans: int | None = None, scale: int = 2, bilinear: bool = True,
                 learnable: bool = True):
        scale = _check_scale(scale)
        out_chans = in_chans if out_chans is None else out_chans
        kernel = 2 * scale - scale % 2
        super().__init__(in_chans, out_chans, kernel, stride=scale, padding=(kernel - scale) // 2, bias=False)
        self.scale = scale
        if bilinear:
            init_bilinear_(self)
        elif not learnable:
            raise ValueError("a fixed (learnable=False) transposed conv must start from bilinear=True")
        self.weight.requires_grad_(learnable)


def conv1d_matrix(kernel: Tensor, length: int, stride: int = 1, padding: int = 0, padded: bool = False) -> Tensor:
    """The matrix X with conv1d(a, kernel, stride, padding) == X @ a for every input a of `length` values.

    Row i holds the kernel at offset i * stride of the zero-padded input (cross-correlation, as PyTorch's and
    the course's convolutions). padded=True returns the matrix over the padded input (length + 2 * padding
    columns), as the course draws it: for kernel (x, y, z), stride 2, padding 1 and four inputs,
        [[x, y, z, 0, 0, 0],
         [0, 0, x, y, z, 0]].
    The transposed convolution is multiplication by X.T (conv_transpose1d with the same stride and padding,
    and output_padding making the output `length` long)."""
    kernel = torch.as_tensor(kernel).flatten()
    size = kernel.numel()
    padded_length = length + 2 * padding
    if size > padded_length:
        raise ValueError(f"a kernel of {size} does not fit {length} inputs padded by {padding}")
    rows = (padded_length - size) // stride + 1
    matrix = kernel.new_zeros(rows, padded_length)
    for row in range(rows):
        matrix[row, row * stride:row * stride + size] = kernel
    return matrix if padded else matrix[:, padding:padding + length]
