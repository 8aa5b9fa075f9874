"""LeNet-5 (LeCun, Bottou, Bengio, Haffner 1998), as section II-B of the paper describes it:

    input 32x32 -> C1 6@28x28 -> S2 6@14x14 -> C3 16@10x10 -> S4 16@5x5 -> C5 120@1x1 -> F6 84 -> RBF output

Every unit up to F6 squashes its weighted sum with the scaled tanh f(a) = A tanh(S a). The subsampling layers
are trainable (a coefficient and a bias per map), C3 reads only the S2 maps of Table I, and the output layer
is a Euclidean RBF unit per class with fixed codes. 60,000 trainable parameters in all.

The pieces here (scaled tanh, trainable subsampling, the partially connected C3, the RBF output) are used by
no other network, so they live in this file rather than in layers/.
"""
from __future__ import annotations

import random
import re
from typing import Mapping, Sequence

import torch
import torch.fx
import torch.nn.functional as F
from torch import Tensor, nn

from ...errors import InputSizeError
from ...protocol import Stage
from ...registry import Paper, register_model
from ..network import ClassifierNetwork

PAPER = Paper(
    title="Gradient-Based Learning Applied to Document Recognition",
    authors="Yann LeCun, Leon Bottou, Yoshua Bengio, Patrick Haffner",
    year=1998,
    venue="Proceedings of the IEEE 86(11)",
)

# Appendix A: A = 1.7159 and S = 2/3 make f(1) = 1 and f(-1) = -1.
TANH_AMPLITUDE = 1.7159
TANH_SLOPE = 2.0 / 3.0

# Table I: the S2 maps each of C3's 16 maps reads. The first six read every contiguous run of three maps
# (wrapping around), the next six every contiguous run of four, the next three some discontinuous fours, and
# the last all six. Besides keeping the connection count down, it breaks the symmetry between maps.
C3_TABLE: tuple[tuple[int, ...], ...] = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (0, 4, 5), (0, 1, 5),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (0, 3, 4, 5), (0, 1, 4, 5), (0, 1, 2, 5),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)

# C3 as first written, one small convolution per map: c3.maps.<map>.weight (1 x inputs x 5 x 5) and .bias (1).
_SIXTEEN_CONV_KEY = re.compile(r"^(.*)c3\.maps\.(\d+)\.(weight|bias)$")

F6_UNITS = 84  # the paper's codes are 7x12 bitmaps, one pixel per F6 unit
RBF_CODE_SEED = 1998


class ScaledTanh(nn.Module):
    """f(a) = A tanh(S a), the paper's squashing function (A = 1.7159, S = 2/3)."""

    def forward(self, x: Tensor) -> Tensor:
        return TANH_AMPLITUDE * torch.tanh(TANH_SLOPE * x)


class TrainableSubsampling(nn.Module):
    """S2 and S4: each unit adds the four inputs of its 2x2 block (blocks do not overlap), multiplies the sum
    by its map's trainable coefficient and adds its map's trainable bias: two parameters a map."""

    def __init__(self, chans: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(chans))
        self.bias = nn.Parameter(torch.empty(chans))

    def forward(self, x: Tensor) -> Tensor:
        # The sum of each 2x2 block, written as exactly 4 x its average: ONNX exporters drop avg_pool2d's
        # divisor_override (an exported LeNet-5 would average, a quarter of the sum); x4 is exact in floating point.
        block_sums = F.avg_pool2d(x, kernel_size=2, stride=2) * 4
        return block_sums * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)

    def extra_repr(self) -> str:
        return f"chans={self.weight.numel()}"


def scatter_kernels(weight: Tensor, rows: Sequence[int], total: int) -> Tensor:
    """`total` kernels of zeros, with weight[i] at row rows[i]."""
    index = torch.tensor(rows, dtype=torch.long, device=weight.device)
    return weight.new_zeros(total, *weight.shape[1:]).index_copy(0, index, weight)


torch.fx.wrap("scatter_kernels")  # a leaf for torch.fx: it makes its index from plain numbers


class PartiallyConnectedConv2d(nn.Module):
    """C3: a convolution whose output map i reads only the input maps in `table[i]`, run as one convolution.

    Only the connected kernels are parameters: `weight` holds them in table order (map 0's kernels for its
    inputs in order, then map 1's, ...: 60 kernels for Table I) and `bias` one value per output map, so C3 has
    the paper's 1,516 parameters, not the 2,416 of a full convolution. The forward scatters them into a full
    out x in x k x k kernel whose unconnected kernels are zero and runs one conv2d: the same outputs as one
    small convolution per map (how this layer was first written; `LeNet5.remap_state_dict` reads those checkpoints),
    2.2x faster on CPU. The zeros are multiplied too: C3 computes 240,000 MACs at 10x10, 150,000 of them
    the paper's connections."""

    connections: Tensor

    def __init__(self, table: Sequence[Sequence[int]], in_chans: int, kernel_size: int):
        super().__init__()
        self.table = tuple(tuple(inputs) for inputs in table)
        self.in_chans = in_chans
        self.kernel_size = kernel_size
        for inputs in self.table:
            if not inputs or not all(0 <= i < in_chans for i in inputs) or len(set(inputs)) != len(inputs):
                raise ValueError(f"a connection table row must list distinct input maps in 0..{in_chans - 1}, "
                                 f"got {inputs}")
        # Where each stored kernel goes in the full (out * in) x k x k kernel: row out * in_chans + in.
        rows = [out * in_chans + i for out, inputs in enumerate(self.table) for i in inputs]
        # Plain numbers, not a buffer: a network built on the meta device and given storage by to_empty() must not
        # find them uninitialised (a non-persistent buffer is in no state dict to load them back from).
        self.connections = tuple(rows)
        self.weight = nn.Parameter(torch.empty(len(rows), kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.empty(len(self.table)))

    def full_weight(self) -> Tensor:
        """The out x in x k x k kernel of the equivalent full convolution (zeros where the table has no link)."""
        out, k = len(self.table), self.kernel_size
        return scatter_kernels(self.weight, self.connections, out * self.in_chans).view(out, self.in_chans, k, k)

    def map_parameters(self, out: int) -> tuple[Tensor, Tensor]:
        """Output map `out`'s kernels (1 x len(table[out]) x k x k, views into `weight`) and bias (1 value)."""
        start = sum(len(inputs) for inputs in self.table[:out])
        return self.weight[start:start + len(self.table[out])].unsqueeze(0), self.bias[out:out + 1]

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.full_weight(), self.bias)

    def extra_repr(self) -> str:
        return f"in_chans={self.in_chans}, out_chans={len(self.table)}, kernel_size={self.kernel_size}, " \
               f"connections={len(self.connections)}"


def rbf_codes(num_classes: int, length: int = F6_UNITS, seed: int = RBF_CODE_SEED) -> Tensor:
    """The fixed +-1 code of each class, shape (num_classes, length).

    The paper drew each character as a stylized 7x12 bitmap (-1 white, +1 black); those bitmaps are not
    available, so each class gets a pseudo-random +-1 vector instead: Python's Mersenne Twister seeded with
    `seed`, one `random()` draw per pixel, +1 below one half. The sequence `random()` gives for a seed is
    guaranteed across Python versions and platforms, so the codes are the same everywhere, for any number of
    classes. Like the bitmaps they are distributed codes with about half the pixels on, and random 84-pixel
    codes are far apart (Hamming distance 42 on average), which is what the RBF output needs."""
    rng = random.Random(seed)
    codes = [[1.0 if rng.random() < 0.5 else -1.0 for _ in range(length)] for _ in range(num_classes)]
    return torch.tensor(codes)


class EuclideanRBF(nn.Module):
    """The output layer: unit i computes the squared Euclidean distance y_i = sum_j (x_j - w_ij)^2 between
    F6's state and its class code w_i (section II-B, eq. 7). The codes are fixed, so they are a buffer.

    It returns -y as the class scores. The paper trains with its MAP criterion (eq. 9),
    E = y_correct + log(exp(-j) + sum_i exp(-y_i)); softmax cross-entropy on -y is y_correct + log(sum_i
    exp(-y_i)), the same criterion without the constant "rubbish class" term exp(-j). So F.cross_entropy on
    this output trains LeNet-5 the paper's way, and argmax picks the nearest code."""

    codes: Tensor

    def __init__(self, in_features: int, num_classes: int):
        super().__init__()
        self.register_buffer("codes", rbf_codes(num_classes, in_features))

    def forward(self, x: Tensor) -> Tensor:
        squared_distances = (x.unsqueeze(1) - self.codes).square().sum(dim=-1)
        return -squared_distances

    def extra_repr(self) -> str:
        num_classes, in_features = self.codes.shape
        return f"in_features={in_features}, num_classes={num_classes}"


def check_c5_is_one_pixel(x: Tensor) -> None:
    if x.shape[-2:] != (1, 1):
        # The guard catches inputs below 32x32; above 35x35 C5's maps grow past 1x1 and F6 cannot take them.
        raise InputSizeError(
            f"LeNet-5 takes 32x32 to 35x35 images (C5 must be 1x1); C5 came out {x.shape[-2]}x{x.shape[-1]}. "
            f"Resize the images to 32x32."
        )


torch.fx.wrap("check_c5_is_one_pixel")  # a leaf for torch.fx: it reads the map's size


class LeNet5(ClassifierNetwork):
    """LeNet-5. Layer names are the paper's: c1, s2, c3, s4, c5, f6, then the RBF output `rbf`.

    Initialisation as Appendix A: each trainable parameter of a unit uniform in (-2.4/F, 2.4/F), F the unit's
    fan-in (the paper does not single out the biases, so they are drawn the same way).

    In timm's terms: the body (forward_features) runs C1 to C5, the head F6 and the RBF output; there is no
    pooling to choose (C5 is 1x1), num_classes=0 returns F6's 84 states (`num_features`), drop_rate drops
    them before the RBF output. The stages are C1, S2-C3 and S4-C5, at reductions 1, 2 and 4 (the unpadded
    convolutions shrink the maps further)."""

    classifier_path = "rbf"
    pool_path = None
    pool_kinds = ("avg",)

    def __init__(self, num_classes: int = 10, in_chans: int = 1, global_pool: str = "avg", drop_rate: float = 0.0):
        super().__init__()
        self._head_settings(num_classes, global_pool, drop_rate)
        self.num_features = F6_UNITS
        self.c1 = nn.Conv2d(in_chans, 6, kernel_size=5)
        self.s2 = TrainableSubsampling(6)
        self.c3 = PartiallyConnectedConv2d(C3_TABLE, in_chans=6, kernel_size=5)
        self.s4 = TrainableSubsampling(16)
        self.c5 = nn.Conv2d(16, 120, kernel_size=5)
        self.f6 = nn.Linear(120, F6_UNITS)
        self.rbf = self._new_classifier(num_classes)
        self.squash = ScaledTanh()
        self._init_weights()

    def _init_weights(self) -> None:
        def uniform(module: nn.Module, fan_in: int) -> None:
            bound = 2.4 / fan_in
            for param in (module.weight, module.bias):
                nn.init.uniform_(param, -bound, bound)

        for conv in (self.c1, self.c5):
            uniform(conv, conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1])
        # C3 map by map, its kernels then its bias, in the order (and so with the draws) of one small
        # convolution per map: the same initial weights as before C3 became one convolution.
        with torch.no_grad():
            for out, inputs in enumerate(self.c3.table):
                bound = 2.4 / (len(inputs) * self.c3.kernel_size ** 2)
                for param in self.c3.map_parameters(out):
                    param.uniform_(-bound, bound)
        for subsampling in (self.s2, self.s4):
            uniform(subsampling, 4)
        uniform(self.f6, self.f6.in_features)

    def remap_state_dict(self, state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """A copy of `state_dict` in which the sixteen-convolution C3 (c3.maps.<i>.weight/bias, as LeNet-5 was
        first written here) becomes the one packed kernel tensor and bias vector; other keys pass unchanged."""
        maps: dict[tuple[str, str], dict[int, Tensor]] = {}
        remapped: dict[str, Tensor] = {}
        for key, value in state_dict.items():
            match = _SIXTEEN_CONV_KEY.match(key)
            if match is None:
                remapped[key] = value
            else:
                maps.setdefault((match.group(1), match.group(3)), {})[int(match.group(2))] = value
        for (prefix, name), per_map in maps.items():
            if sorted(per_map) != list(range(len(self.c3.table))):
                raise ValueError(f"the checkpoint's C3 has maps {sorted(per_map)}; LeNet-5 has "
                                 f"{len(self.c3.table)} (0..{len(self.c3.table) - 1})")
            parts = [per_map[i].reshape(-1, *per_map[i].shape[2:]) if name == "weight" else per_map[i].reshape(-1)
                     for i in range(len(self.c3.table))]
            remapped[f"{prefix}c3.{name}"] = torch.cat(parts)
        return remapped

    def _new_classifier(self, num_classes: int) -> nn.Module:
        return EuclideanRBF(F6_UNITS, num_classes) if num_classes > 0 else nn.Identity()

    def feature_stages(self) -> list[Stage]:
        return [Stage(("c1", "squash"), 6, 1), Stage(("s2", "squash", "c3", "squash"), 16, 2),
                Stage(("s4", "squash", "c5", "squash"), 120, 4)]

    def forward_features(self, x: Tensor) -> Tensor:
        for layer in (self.c1, self.s2, self.c3, self.s4, self.c5):
            x = self.squash(layer(x))
        return x

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        check_c5_is_one_pixel(x)
        x = self.squash(self.f6(x.flatten(1)))
        if self.drop_rate > 0.0:
            x = F.dropout(x, p=self.drop_rate, training=self.training)
        return x if pre_logits else self.rbf(x)


@register_model(
    family="lenet", paper=PAPER, input_size=(1, 32, 32), min_input_size=(32, 32), params=60_000, num_classes=10,
    macs=415_680,
    reported={"mnist_error": 0.95},
    notes="The paper's network down to C3's connection table, trainable subsampling and the RBF output, whose "
          "7x12 character bitmaps are replaced by fixed pseudo-random +-1 codes; it returns -distances, so "
          "cross-entropy is the paper's MAP loss. C3 runs as one convolution whose unconnected kernels are zero: "
          "the MACs count them (C3 240,000; the paper's 151,600 connections are 150,000 MACs and 1,600 bias "
          "additions). Not in torchvision/timm. Error: MNIST test, no distortions.",
)
def lenet5(**kwargs) -> LeNet5:
    return LeNet5(**kwargs)
