"""Building blocks, one a file, shared by the model families. Layers know nothing of models."""
from .channel_shuffle import ChannelShuffle, channel_shuffle
from .context import ASPP, ASPPPooling, ASPPv2, ContextModule, PyramidPooling
from .conv import ConvBnAct, DepthwiseSeparableConv, conv1x1, conv3x3
from .crf import DenseCRF, dense_crf
from .dense import DenseBlock, DenseLayer, Transition
from .drop_path import DropPath, drop_path_schedule, stochastic_depth_rates
from .init import init_he_fan_out_
from .inception import BasicConv2d, ConvReLU, Inception
from .inverted_residual import InvertedResidual
from .lrn import LocalResponseNorm
from .residual import BasicBlock, Bottleneck, PreActBasicBlock, PreActBottleneck, ResidualBlock, ZeroPadShortcut
from .shuffle_units import ShuffleV1Unit, ShuffleV2Unit
from .squeeze_excite import SqueezeExcite
from .upsample import (BedOfNailsUpsample, BilinearUpsample, MaxUnpool, NearestUpsample, TransposedConvUpsample,
                       bilinear_kernel, conv1d_matrix, init_bilinear_)

__all__ = [
    "ASPP", "ASPPPooling", "ASPPv2", "BasicBlock", "BasicConv2d", "BedOfNailsUpsample", "BilinearUpsample",
    "Bottleneck", "ChannelShuffle", "ContextModule", "ConvBnAct", "ConvReLU", "DenseBlock", "DenseCRF",
    "DenseLayer", "DepthwiseSeparableConv", "DropPath", "Inception", "InvertedResidual", "LocalResponseNorm",
    "MaxUnpool", "NearestUpsample", "PreActBasicBlock", "PreActBottleneck", "PyramidPooling", "ResidualBlock",
    "ShuffleV1Unit", "ShuffleV2Unit", "SqueezeExcite", "Transition", "TransposedConvUpsample", "ZeroPadShortcut",
    "bilinear_kernel", "channel_shuffle", "conv1d_matrix", "conv1x1", "conv3x3", "dense_crf", "drop_path_schedule",
    "init_bilinear_", "init_he_fan_out_", "stochastic_depth_rates"
]
