"""Image transforms on tensors: resizing to the network's input, channel widening, the papers' augmentations,
normalisation and multi-crop testing.

Every transform takes a float image (C x h x w, values in [0, 1], already in the network's channel count) and
returns a normalised float tensor. Randomness comes only from torch's global generator, so a DataLoader's
per-worker seeding (and a saved torch RNG state) makes augmentation reproducible.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import DataError
from .auto_augment import AUTO_AUGMENTS, auto_augment, random_erasing

# ITU-R BT.601 luma, the weights PIL uses for RGB -> "L", so a colour image turns grey the same way
# whether it arrives as a file or as an array.
_LUMA = (0.299, 0.587, 0.114)

# AlexNet and ResNet test on 224 crops of images whose shorter side is 256; keep that ratio at other sizes.
MULTI_CROP_RESIZE_RATIO = 256 / 224


@dataclass
class Augment:
    """Training-time augmentation as the papers use it; every option is off by default.

    random_crop_padding: pad each side with this many zero (black) pixels, then crop the input size at a
        random place (the CIFAR recipe of the ResNet paper, padding 4).
    random_resized_scale: (a, b): rescale so the shorter side is a random integer in [a, b], then crop the
        input size at a random place (VGG's scale jittering: [256, 512] for 224 crops; ResNet: [256, 480]).
    hflip: mirror horizontally with probability 1/2.
    pca_lighting: standard deviation of AlexNet's PCA colour lighting (paper: 0.1); the principal components
        come from the training split's pixel covariance.
    auto_augment: "randaugment" or "trivialaugment" (auto_augment.py), after the flip.
    random_erasing: the probability of erasing a random rectangle of the normalised image (auto_augment.py).
    """

    random_crop_padding: int = 0
    random_resized_scale: tuple[int, int] | None = None
    hflip: bool = False
    pca_lighting: float = 0.0
    auto_augment: str | None = None
    random_erasing: float = 0.0

    def __post_init__(self) -> None:
        # A recipe or config.json may give the scale as a list; keep one type so configs compare equal.
        if self.random_resized_scale is not None:
            self.random_resized_scale = tuple(int(s) for s in self.random_resized_scale)
            scale = self.random_resized_scale
            if len(scale) != 2 or not 0 < scale[0] <= scale[1]:
                raise DataError(f"random_resized_scale must be two sizes (a, b) with 0 < a <= b, "
                                f"got {self.random_resized_scale}")
        if self.random_crop_padding < 0:
            raise DataError(f"random_crop_padding must be >= 0, got {self.random_crop_padding}")
        if self.pca_lighting < 0:
            raise DataError(f"pca_lighting is a standard deviation and must be >= 0, got {self.pca_lighting}")
        if self.auto_augment is not None and self.auto_augment not in AUTO_AUGMENTS:
            raise DataError(f"unknown auto_augment {self.auto_augment!r}; choose from {', '.join(AUTO_AUGMENTS)}")
        if not 0 <= self.random_erasing <= 1:
            raise DataError(f"random_erasing is a probability, in [0, 1]; got {self.random_erasing}")

    def check_fits(self, height: int, width: int) -> None:
        """Refuse a scale range whose smallest image could not hold one crop of the input size."""
        if self.random_resized_scale is not None and self.random_resized_scale[0] < max(height, width):
            raise DataError(
                f"random_resized_scale {self.random_resized_scale} is too small for {height}x{width} crops: "
                f"the shorter side must be at least {max(height, width)}")


def to_channels(images: Tensor, channels: int) -> Tensor:
    """Give images (... x S x h x w) the network's channel count: a network that wants 3 channels gets colour
    (grey repeated three times); any other count gets grey (luma of colour) repeated to that many channels."""
    have = images.shape[-3]
    if have == channels:
        return images
    if have == 3:
        luma = torch.tensor(_LUMA, dtype=images.dtype, device=images.device).view(3, 1, 1)
        images = (images * luma).sum(dim=-3, keepdim=True)
    elif have != 1:
        raise DataError(f"images with {have} channels cannot be converted to {channels}; expected grey or RGB")
    return images.expand(*images.shape[:-3], channels, *images.shape[-2:]).contiguous()


def resize(image: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear resize of one image (C x h x w) or a batch (N x C x h x w)."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    batch = image if image.dim() == 4 else image[None]
    # antialias matters when shrinking photos; for upsampling (digits 8x8 -> 32x32) it is plain bilinear.
    resized = F.interpolate(batch, size=size, mode="bilinear", align_corners=False, antialias=True)
    return resized if image.dim() == 4 else resized[0]


def resize_shorter_side(image: Tensor, shorter: int) -> Tensor:
    """Keep the aspect ratio and make the shorter side `shorter` pixels long."""
    height, width = image.shape[-2:]
    scale = shorter / min(height, width)
    return resize(image, (max(shorter, round(height * scale)), max(shorter, round(width * scale))))


def resize_to_cover(image: Tensor, size: tuple[int, int]) -> Tensor:
    """The smallest aspect-preserving resize whose result contains a crop of `size`."""
    height, width = image.shape[-2:]
    scale = max(size[0] / height, size[1] / width)
    return resize(image, (max(size[0], round(height * scale)), max(size[1], round(width * scale))))


def center_crop(image: Tensor, size: tuple[int, int]) -> Tensor:
    top = (image.shape[-2] - size[0]) // 2
    left = (image.shape[-1] - size[1]) // 2
    return image[..., top:top + size[0], left:left + size[1]]


def fit_to_input(image: Tensor, size: tuple[int, int]) -> Tensor:
    """What the network sees of an image at test time: resized to cover `size`, centre-cropped to it."""
    return center_crop(resize_to_cover(image, size), size)


def random_crop(image: Tensor, size: tuple[int, int]) -> Tensor:
    top = int(torch.randint(image.shape[-2] - size[0] + 1, ()))
    left = int(torch.randint(image.shape[-1] - size[1] + 1, ()))
    return image[..., top:top + size[0], left:left + size[1]]


def ten_crop(image: Tensor, size: tuple[int, int]) -> Tensor:
    """The papers' 10-crop test (AlexNet, ResNet): the four corner crops and the centre crop of `size`, then
    the same five mirrored. Returns 10 x C x H x W."""
    height, width = size
    full_h, full_w = image.shape[-2:]
    if full_h < height or full_w < width:
        raise DataError(f"a {full_h}x{full_w} image is smaller than the {height}x{width} crops")
    corners = [image[..., :height, :width], image[..., :height, full_w - width:],
               image[..., full_h - height:, :width], image[..., full_h - height:, full_w - width:]]
    five = torch.stack(corners + [center_crop(image, size)])
    return torch.cat([five, five.flip(-1)])


class Normalize:
    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)

    def __call__(self, image: Tensor) -> Tensor:
        return (image - self.mean) / self.std


def content_size(input_size: Sequence[int], border: int) -> tuple[int, int]:
    """The part of the network's input the image fills when `border` background pixels surround it."""
    height, width = int(input_size[1]) - 2 * border, int(input_size[2]) - 2 * border
    if border < 0 or height < 1 or width < 1:
        raise DataError(f"border must be >= 0 and leave room for the image in a {input_size[1]}x{input_size[2]} "
                        f"input, got {border}")
    return height, width


def add_border(image: Tensor, border: int) -> Tensor:
    # Zero is black before normalisation: the background of MNIST and digits, as in LeNet-5's padded input.
    return F.pad(image, (border,) * 4) if border else image


class EvalTransform:
    """Deterministic: resize (shorter side to `resize`, or just enough to cover the input), centre crop,
    normalise. With crops=10, the 10-crop stack of `ten_crop` instead of the centre crop.

    border: the image fills only the centre of the input, surrounded by this many black pixels; LeNet-5 takes
    28x28 MNIST digits in a 32x32 field so that strokes reach the centre of the top feature detectors'
    receptive fields (LeCun et al. 1998, section II-A). Works on a batch too when crops=1."""

    def __init__(self, input_size: Sequence[int], mean: Sequence[float], std: Sequence[float],
                 crops: int = 1, resize: int | None = None, border: int = 0) -> None:
        if crops not in (1, 10):
            raise DataError(f"crops must be 1 or 10, got {crops}")
        self.size = content_size(input_size, border)
        self.border = border
        self.crops = crops
        if resize is None and crops == 10:
            # Without a margin around the centre crop the ten crops would all be the same image.
            resize = math.ceil(max(self.size) * MULTI_CROP_RESIZE_RATIO)
        if resize is not None and resize < max(self.size):
            raise DataError(f"resize={resize} is too small for {self.size[0]}x{self.size[1]} crops")
        self.resize = resize
        self.normalize = Normalize(mean, std)

    def __call__(self, image: Tensor) -> Tensor:
        if self.resize is None:
            image = resize_to_cover(image, self.size)
        else:
            image = resize_shorter_side(image, self.resize)
        image = ten_crop(image, self.size) if self.crops == 10 else center_crop(image, self.size)
        return self.normalize(add_border(image, self.border))


class TrainTransform:
    """Resize to the input (or scale-jitter and random crop), add the border, pad-and-crop, flip, RandAugment
    or TrivialAugment, PCA lighting, normalise, random erasing."""

    def __init__(self, input_size: Sequence[int], mean: Sequence[float], std: Sequence[float], augment: Augment,
                 pca_eigenvalues: Tensor | None = None, pca_eigenvectors: Tensor | None = None,
                 border: int = 0) -> None:
        self.size = content_size(input_size, border)
        self.border = border
        augment.check_fits(*self.size)
        if augment.pca_lighting and (pca_eigenvalues is None or pca_eigenvectors is None):
            raise DataError("pca_lighting needs the training split's principal components")
        self.augment = augment
        self.pca_eigenvalues = pca_eigenvalues
        self.pca_eigenvectors = pca_eigenvectors
        self.normalize = Normalize(mean, std)

    def __call__(self, image: Tensor) -> Tensor:
        aug = self.augment
        if aug.random_resized_scale is not None:
            low, high = aug.random_resized_scale
            image = random_crop(resize_shorter_side(image, int(torch.randint(low, high + 1, ()))), self.size)
        else:
            image = fit_to_input(image, self.size)
        image = add_border(image, self.border)
        if aug.random_crop_padding:
            pad = aug.random_crop_padding
            image = random_crop(F.pad(image, (pad, pad, pad, pad)), image.shape[-2:])
        if aug.hflip and bool(torch.rand(()) < 0.5):
            image = image.flip(-1)
        if aug.auto_augment is not None:
            image = auto_augment(image, aug.auto_augment)
        if aug.pca_lighting:
            image = self._lighting(image)
        image = self.normalize(image)
        return random_erasing(image, aug.random_erasing) if aug.random_erasing else image

    def _lighting(self, image: Tensor) -> Tensor:
        # AlexNet section 4.1: add sum_i alpha_i * lambda_i * p_i to every pixel, alpha_i ~ N(0, sigma^2) drawn
        # once per image, (lambda_i, p_i) the eigenvalues/vectors of the training pixels' colour covariance.
        alpha = torch.randn(self.pca_eigenvalues.shape[0]) * self.augment.pca_lighting
        shift = self.pca_eigenvectors @ (alpha * self.pca_eigenvalues)
        return image + shift.view(-1, 1, 1)


def eval_transform(input_size: Sequence[int], mean: Sequence[float], std: Sequence[float], crops: int = 1,
                   resize: int | None = None, border: int = 0) -> EvalTransform:
    """The test-time transform: crops=1 gives C x H x W (centre crop), crops=10 gives 10 x C x H x W."""
    return EvalTransform(input_size, mean, std, crops=crops, resize=resize, border=border)
