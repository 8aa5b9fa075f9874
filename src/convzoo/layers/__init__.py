"""Building blocks, one a file, shared by the model families. Layers know nothing of models."""
from .conv import ConvBnAct, DepthwiseSeparableConv, conv1x1, conv3x3
from .lrn import LocalResponseNorm

__all__ = ["ConvBnAct", "DepthwiseSeparableConv", "LocalResponseNorm", "conv1x1", "conv3x3"]
