"""Building blocks, one a file, shared by the model families. Layers know nothing of models."""
from .channel_shuffle import ChannelShuffle, channel_shuffle
from .conv import ConvBnAct, DepthwiseSeparableConv, conv1x1, conv3x3
from .dense import DenseBlock, DenseLayer, Transition
from .drop_path import DropPath, drop_path_schedule, stochastic_depth_rates
from .init import init_he_fan_out_
from .inception import BasicConv2d, ConvReLU, Inception
from .inverted_residual import InvertedResidual
from .lrn import LocalResponseNorm
from .residual import BasicBlock, Bottleneck, PreActBasicBlock, PreActBottleneck, ResidualBlock, ZeroPadShortcut
from .shuffle_units import ShuffleV1Unit, ShuffleV2Unit
from .squeeze_excite import SqueezeExcite

__all__ = [
    "BasicBlock", "BasicConv2d", "Bottleneck", "ChannelShuffle", "ConvBnAct", "ConvReLU", "DenseBlock",
    "DenseLayer", "DepthwiseSeparableConv", "DropPath", "Inception", "InvertedResidual",
    "LocalResponseNorm", "PreActBasicBlock", "PreActBottleneck", "ResidualBlock", "ShuffleV1Unit",
    "ShuffleV2Unit", "SqueezeExcite", "Transition", "ZeroPadShortcut", "channel_shuffle", "conv1x1",
    "conv3x3", "drop_path_schedule", "init_he_fan_out_", "stochastic_depth_rates",
]
