"""In-network upsampling: the course's unpooling examples, max unpooling with the pooling's indices, bilinear
transposed convolution (FCN's initialisation, fixed or learnable), and the 1-D convolution as a matrix X
whose transpose is the transposed convolution (the course's kernel 3, stride 2, padding 1 example)."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from convzoo.layers.upsample import (BedOfNailsUpsample, BilinearUpsample, MaxUnpool, NearestUpsample,
                                     TransposedConvUpsample, bilinear_kernel, conv1d_matrix, init_bilinear_)

COURSE_INPUT = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 1, 2, 2)


def test_nearest_is_the_course_example():
    expected = torch.tensor([[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]], dtype=torch.float32)
    assert torch.equal(NearestUpsample(2)(COURSE_INPUT)[0, 0], expected)


def test_bed_of_nails_is_the_course_example():
    expected = torch.tensor([[1, 0, 2, 0], [0, 0, 0, 0], [3, 0, 4, 0], [0, 0, 0, 0]], dtype=torch.float32)
    assert torch.equal(BedOfNailsUpsample(2)(COURSE_INPUT)[0, 0], expected)


def test_bed_of_nails_passes_gradients_to_its_inputs_only():
    x = torch.randn(2, 3, 4, 5, requires_grad=True)
    out = BedOfNailsUpsample(3)(x)
    assert out.shape == (2, 3, 12, 15)
    out.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))


def test_max_unpooling_returns_each_max_to_where_it_came_from():
    x = torch.tensor([[1.0, 2.0, 6.0, 3.0],
                      [3.0, 5.0, 2.0, 1.0],
                      [1.0, 2.0, 2.0, 1.0],
                      [7.0, 3.0, 4.0, 8.0]]).view(1, 1, 4, 4)
    pooled, indices = nn.MaxPool2d(2, return_indices=True)(x)
    assert pooled.flatten().tolist() == [5.0, 6.0, 7.0, 8.0]
    expected = torch.tensor([[0.0, 0.0, 6.0, 0.0],
                             [0.0, 5.0, 0.0, 0.0],
                             [0.0, 0.0, 0.0, 0.0],
                             [7.0, 0.0, 0.0, 8.0]])
    assert torch.equal(MaxUnpool(2)(pooled, indices)[0, 0], expected)


def test_max_unpooling_restores_an_odd_size():
    x = torch.randn(2, 3, 7, 9)
    pooled, indices = F.max_pool2d(x, 2, return_indices=True)
    up = MaxUnpool(2)(pooled, indices, output_size=x.shape)
    assert up.shape == x.shape
    kept = up != 0
    assert torch.equal(up[kept], x[kept])
    assert int(kept.sum()) == pooled.numel()


def test_bilinear_upsample_by_scale_and_to_size():
    x = torch.randn(1, 2, 5, 6)
    assert BilinearUpsample(4)(x).shape == (1, 2, 20, 24)
    assert BilinearUpsample()(x, size=(11, 13)).shape == (1, 2, 11, 13)
    constant = torch.full((1, 1, 3, 3), 2.5)
    assert torch.allclose(BilinearUpsample(2)(constant), torch.full((1, 1, 6, 6), 2.5))


def test_bilinear_kernel_is_fcns_upsample_filt():
    # FCN's surgery.upsample_filt(4): factor 2, centre 1.5, so 1 - |i - 1.5| / 2 along each axis.
    triangle = torch.tensor([0.25, 0.75, 0.75, 0.25])
    assert torch.allclose(bilinear_kernel(4), triangle[:, None] * triangle[None, :])
    # Odd sizes centre on the middle tap: upsample_filt(3) has factor 2 and centre 1.
    assert torch.allclose(bilinear_kernel(3)[1], torch.tensor([0.5, 1.0, 0.5]))


@pytest.mark.parametrize("scale", [2, 3, 4, 8])
def test_bilinear_transposed_conv_interpolates(scale):
    up = TransposedConvUpsample(3, scale=scale)
    x = torch.randn(2, 3, 6, 7)
    out = up(x)
    assert out.shape == (2, 3, 6 * scale, 7 * scale)
    # Away from the zero-padded border it is exactly bilinear interpolation (half-pixel centres).
    reference = F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
    torch.testing.assert_close(out[..., scale:-scale, scale:-scale], reference[..., scale:-scale, scale:-scale])


def test_fixed_and_learnable_bilinear_upsampling():
    fixed = TransposedConvUpsample(21, scale=8, learnable=False)
    learnable = TransposedConvUpsample(21, scale=2)
    assert sum(p.numel() for p in fixed.parameters() if p.requires_grad) == 0
    # FCN's upscore2: 4x4 kernel, no bias, 21 -> 21 channels.
    assert sum(p.numel() for p in learnable.parameters() if p.requires_grad) == 4 * 4 * 21 * 21
    learnable(torch.randn(1, 21, 3, 3)).sum().backward()
    assert learnable.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="in_channels == out_channels"):
        TransposedConvUpsample(4, 8, scale=2)
    random = TransposedConvUpsample(4, 8, scale=2, bilinear=False)
    assert random(torch.randn(1, 4, 3, 3)).shape == (1, 8, 6, 6)


def test_init_bilinear_keeps_channels_apart():
    conv = init_bilinear_(nn.ConvTranspose2d(3, 3, 4, stride=2, padding=1, bias=True))
    assert torch.equal(conv.weight[0, 1], torch.zeros(4, 4))
    assert torch.equal(conv.weight[2, 2], bilinear_kernel(4))
    assert torch.equal(conv.bias, torch.zeros(3))


def test_conv1d_matrix_is_the_course_example():
    x, y, z = 2.0, 3.0, 5.0
    matrix = conv1d_matrix(torch.tensor([x, y, z]), length=4, stride=2, padding=1, padded=True)
    assert torch.equal(matrix, torch.tensor([[x, y, z, 0, 0, 0], [0, 0, x, y, z, 0]]))
    a, b, c, d = 7.0, 11.0, 13.0, 17.0
    # X a on the padded input (0, a, b, c, d, 0) = (ay + bz, bx + cy + dz), which is conv1d.
    padded_input = torch.tensor([0, a, b, c, d, 0])
    assert torch.equal(matrix @ padded_input, torch.tensor([a * y + b * z, b * x + c * y + d * z]))
    convolved = F.conv1d(torch.tensor([[[a, b, c, d]]]), torch.tensor([[[x, y, z]]]), stride=2, padding=1)
    assert torch.equal(convolved.flatten(), matrix @ padded_input)
    # X^T (a, b) = (ax, ay, az + bx, by, bz, 0): the transposed convolution, padding included.
    assert torch.equal(matrix.T @ torch.tensor([a, b]), torch.tensor([a * x, a * y, a * z + b * x, b * y, b * z, 0]))
    transposed = F.conv_transpose1d(torch.tensor([[[a, b]]]), torch.tensor([[[x, y, z]]]), stride=2, padding=1,
                                    output_padding=1)
    assert torch.equal(transposed.flatten(), torch.tensor([a * y, a * z + b * x, b * y, b * z]))


@pytest.mark.parametrize("kernel_size, length, stride, padding", [(3, 4, 2, 1), (3, 9, 1, 1), (4, 10, 2, 1),
                                                                  (5, 12, 3, 2), (2, 7, 2, 0)])
def test_transposed_convolution_multiplies_by_the_transpose(kernel_size, length, stride, padding):
    kernel = torch.randn(kernel_size, dtype=torch.float64)
    matrix = conv1d_matrix(kernel, length, stride, padding)
    a = torch.randn(length, dtype=torch.float64)
    conv = F.conv1d(a.view(1, 1, -1), kernel.view(1, 1, -1), stride=stride, padding=padding).flatten()
    torch.testing.assert_close(conv, matrix @ a)
    b = torch.randn(matrix.shape[0], dtype=torch.float64)
    natural = (len(b) - 1) * stride - 2 * padding + kernel_size
    transposed = F.conv_transpose1d(b.view(1, 1, -1), kernel.view(1, 1, -1), stride=stride, padding=padding,
                                    output_padding=length - natural).flatten()
    torch.testing.assert_close(transposed, matrix.T @ b)


def test_strided_transposed_convolution_is_not_a_convolution():
    # With stride 2 the rows of X^T are not shifted copies of one kernel (the course's closing remark):
    # rows alternate between one tap (y) and two (z and x), the last losing x at the border.
    matrix = conv1d_matrix(torch.tensor([2.0, 3.0, 5.0]), length=8, stride=2, padding=1)
    assert (matrix.T != 0).sum(dim=1).tolist() == [1, 2, 1, 2, 1, 2, 1, 1]
    assert matrix.T[2].tolist() == [0, 3.0, 0, 0] and matrix.T[3].tolist() == [0, 5.0, 2.0, 0]


def test_bad_scales_and_kernels_are_refused():
    with pytest.raises(ValueError, match="positive integer"):
        NearestUpsample(1.5)
    with pytest.raises(ValueError, match="does not fit"):
        conv1d_matrix(torch.ones(5), length=2)
