"""A classifier's fully connected layers read as convolutions (Long, Shelhamer & Darrell, FCN, CVPR 2015):

    fcn = convzoo.convolutionalize(convzoo.create_model("vgg16"))
    fcn(torch.randn(1, 3, 224, 224)).shape    # (1, 1000, 1, 1): the classifier's scores
    fcn(torch.randn(1, 3, 384, 512)).shape    # (1, 1000, 6, 10): a map of class scores

The first FC layer sees the pooled c x k x k feature map, so it is a k x k convolution with the same weights
(reshaped); every later FC layer is a 1x1 convolution. The pooling before it must become a fixed one that
equals it at the training size: VGG's and AlexNet's adaptive pool is the identity there (7x7 and 6x6 in,
7x7 and 6x6 out) and is dropped; a global average pool becomes an average pool of the training-size
feature map (7x7 for ResNet at 224) with stride 1, so on a larger image it slides and scores every window.
"""
from __future__ import annotations

import copy
from typing import Sequence

import torch
from torch import Tensor, nn

from ...protocol import Classifier, card_of
from ..features import FeatureExtractor


def _head_of(classifier: nn.Module) -> tuple[nn.Module | None, list[nn.Module]]:
    """The pooling module and the layers after it, as the classifier declares them (protocol.Classifier)."""
    if not isinstance(classifier, Classifier) or classifier.pool_path is None:
        raise ValueError(f"cannot convolutionalize {type(classifier).__name__}: it declares no pooling head "
                         f"(pool_path, head_modules); the convzoo classifiers but LeNet-5 do")
    return classifier.get_submodule(classifier.pool_path), classifier.head_modules()


class FullyConvolutional(nn.Module):
    """A convolutionalized classifier: `body` (the classifier's convolutional layers), `pool` (fixed) and
    `head` (its FC layers as convolutions, with their activations and dropout). forward returns a map of
    class scores, (N, num_classes, h, w); 1x1 at the training size."""

    def __init__(self, body: FeatureExtractor, pool: nn.Module, head: nn.Sequential):
        super().__init__()
        self.body, self.pool, self.head = body, pool, head

    def forward(self, x: Tensor) -> Tensor:
        (features,) = self.body(x)
        return self.head(self.pool(features))


def _fixed_pool(pool: nn.Module | None, feature_size: tuple[int, int]) -> tuple[nn.Module, tuple[int, int]]:
    """The fixed pool equal to the head's `pool` (None: a global average) on the training-size feature map,
    and the grid of positions it leaves there (the first FC layer's kernel)."""
    height, width = feature_size
    if isinstance(pool, nn.AvgPool2d):  # already fixed (GoogLeNet as published: 7x7, stride 1)
        kernel, stride, padding = (nn.modules.utils._pair(v) for v in (pool.kernel_size, pool.stride, pool.padding))
        grid = tuple((size + 2 * p - k) // s + 1 for size, k, s, p in zip(feature_size, kernel, stride, padding))
        return pool, grid
    if pool is not None and not isinstance(pool, nn.AdaptiveAvgPool2d):
        raise ValueError(f"cannot convolutionalize a head that pools with {type(pool).__name__}")
    grid = (1, 1) if pool is None else nn.modules.utils._pair(pool.output_size)
    if height % grid[0] or width % grid[1]:
        raise ValueError(f"the classifier pools its {height}x{width} training-size feature map to "
                         f"{grid[0]}x{grid[1]}, which no fixed pooling reproduces; check input_size")
    window = (height // grid[0], width // grid[1])
    if window == (1, 1):
        return nn.Identity(), grid
    # A global pool slides by one pixel on larger images; a pool to a grid keeps the grid's spacing.
    stride = (1, 1) if grid == (1, 1) else window
    return nn.AvgPool2d(window, stride=stride), grid


def convolutionalize(classifier: nn.Module, input_size: Sequence[int] | None = None) -> FullyConvolutional:
    """The classifier with its fully connected layers turned into the equivalent convolutions.

    `input_size` is the (H, W) the classifier was trained at; by default its card's (224x224 for the
    ImageNet networks). At that size the result's scores equal the classifier's, as an (N, classes, 1, 1)
    map; on a larger image it returns a map of class scores. The classifier is copied, not changed."""
    if input_size is None:
        card = card_of(classifier)
        if card is None:
            raise ValueError("give the classifier's training input_size (H, W); it has no card to read it from")
        input_size = card.input_size[1:]
    height, width = (int(s) for s in tuple(input_size)[-2:])
    classifier = copy.deepcopy(classifier)
    pool, layers = _head_of(classifier)
    body = FeatureExtractor(classifier, out_indices=(-1,))
    (feature_shape,) = body.feature_shapes(height, width)
    pool, grid = _fixed_pool(pool, tuple(feature_shape[-2:]))

    head: list[nn.Module] = []
    first = True
    for layer in layers:
        if isinstance(layer, nn.Linear):
            kernel = grid if first else (1, 1)
            conv = nn.Conv2d(layer.in_features // (kernel[0] * kernel[1]), layer.out_features, kernel,
                             bias=layer.bias is not None, device=layer.weight.device, dtype=layer.weight.dtype)
            if conv.in_channels * kernel[0] * kernel[1] != layer.in_features:
                raise ValueError(f"the first FC layer takes {layer.in_features} inputs, not a multiple of the "
                                 f"{kernel[0]}x{kernel[1]} grid the features are pooled to")
            with torch.no_grad():
                # Flattening (N, C, k, k) puts the channel first and the positions row by row: the same
                # order as a conv weight (out, C, k, k).
                conv.weight.copy_(layer.weight.reshape(conv.weight.shape))
                if layer.bias is not None:
                    conv.bias.copy_(layer.bias)
            head.append(conv)
            first = False
        elif isinstance(layer, (nn.ReLU, nn.ReLU6, nn.Dropout, nn.Identity)):
            head.append(layer)
        else:
            raise ValueError(f"cannot convolutionalize a head holding {type(layer).__name__}")
    return FullyConvolutional(body, pool, nn.Sequential(*head))
