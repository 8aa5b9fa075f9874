"""RandAugment, TrivialAugment and random erasing, on float image tensors (C x H x W, values in [0, 1]).

RandAugment (Cubuk et al. 2020, arXiv:1909.13719): each image gets `num_ops` operations drawn uniformly from
the 14 below, all at one magnitude (9 of 31 bins here, torchvision's default); geometric and colour
magnitudes are negated half of the time. TrivialAugment (Mueller & Hutter 2021, arXiv:2103.10158, its "wide"
space): one operation an image, its magnitude drawn uniformly from the 31 bins. Random erasing (Zhong et al.
2020, arXiv:1708.04896): with probability p, a rectangle of 2%-33% of the image with aspect ratio 0.3-3.3 is set
to 0, which after normalisation is the data set's mean colour.

The magnitude ranges are the papers' (and torchvision's) facts, re-expressed for images of any size:
translations are fractions of the side (RandAugment's 150/331; TrivialAugment's 32 pixels of 224), so a 32x32
digit is shifted as much, relatively, as an ImageNet photo. Geometric operations fill with black. Randomness
comes only from torch's global generator, which the engine re-seeds every epoch (exact resume).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

AUTO_AUGMENTS = ("randaugment", "trivialaugment")
BINS = 31
RANDAUGMENT_OPS = 2
RANDAUGMENT_MAGNITUDE = 9
_SHARPEN = torch.tensor([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]]) / 13


def _grey(image: Tensor) -> Tensor:
    if image.shape[0] == 1:
        return image
    return (0.299 * image[0] + 0.587 * image[1] + 0.114 * image[2])[None]


def _blend(image: Tensor, other: Tensor, factor: float) -> Tensor:
    """factor 0: `other`; 1: the image; beyond 1: away from `other`. Clipped to [0, 1]."""
    return (other + factor * (image - other)).clamp(0, 1)


def _affine(image: Tensor, matrix: list[list[float]]) -> Tensor:
    """Resample with the 2x3 `matrix` mapping output to input coordinates, in pixels about the image centre."""
    _, height, width = image.shape
    theta = torch.tensor(matrix, dtype=image.dtype)
    # pixels -> the [-1, 1] coordinates of affine_grid (align_corners=False)
    theta[0, 1] *= height / width
    theta[1, 0] *= width / height
    theta[0, 2] *= 2 / width
    theta[1, 2] *= 2 / height
    grid = F.affine_grid(theta[None], [1, *image.shape], align_corners=False)
    return F.grid_sample(image[None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0]


def shear_x(image: Tensor, m: float) -> Tensor:
    return _affine(image, [[1.0, m, 0.0], [0.0, 1.0, 0.0]])


def shear_y(image: Tensor, m: float) -> Tensor:
    return _affine(image, [[1.0, 0.0, 0.0], [m, 1.0, 0.0]])


def translate_x(image: Tensor, fraction: float) -> Tensor:
    return _affine(image, [[1.0, 0.0, -fraction * image.shape[-1]], [0.0, 1.0, 0.0]])


def translate_y(image: Tensor, fraction: float) -> Tensor:
    return _affine(image, [[1.0, 0.0, 0.0], [0.0, 1.0, -fraction * image.shape[-2]]])


def rotate(image: Tensor, degrees: float) -> Tensor:
    a = math.radians(degrees)
    return _affine(image, [[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0]])


def brightness(image: Tensor, m: float) -> Tensor:
    return _blend(image, torch.zeros_like(image), 1 + m)


def color(image: Tensor, m: float) -> Tensor:
    return _blend(image, _grey(image).expand_as(image), 1 + m)


def contrast(image: Tensor, m: float) -> Tensor:
    return _blend(image, _grey(image).mean().expand_as(image), 1 + m)


def sharpness(image: Tensor, m: float) -> Tensor:
    channels = image.shape[0]
    kernel = _SHARPEN.to(image.dtype).expand(channels, 1, 3, 3)
    smooth = image.clone()
    smooth[:, 1:-1, 1:-1] = F.conv2d(image[None], kernel, groups=channels)[0]  # the border stays as it was
    return _blend(image, smooth, 1 + m)


def posterize(image: Tensor, bits: float) -> Tensor:
    levels = 2 ** int(bits)
    return torch.floor(image * 255 / (256 // levels)) * (256 // levels) / 255


def solarize(image: Tensor, threshold: float) -> Tensor:
    return torch.where(image >= threshold, 1 - image, image)


def autocontrast(image: Tensor, _: float = 0.0) -> Tensor:
    low = image.amin(dim=(1, 2), keepdim=True)
    high = image.amax(dim=(1, 2), keepdim=True)
    flat = high <= low
    return torch.where(flat, image, (image - low) / torch.where(flat, torch.ones_like(high), high - low))


def equalize(image: Tensor, _: float = 0.0) -> Tensor:
    """Histogram equalisation of each channel over 256 levels."""
    levels = (image * 255).round().long().clamp(0, 255)
    out = torch.empty_like(image)
    for c in range(image.shape[0]):
        histogram = torch.bincount(levels[c].flatten(), minlength=256)
        cdf = histogram.cumsum(0)
        lowest = cdf[histogram.nonzero()[0, 0]]
        span = cdf[-1] - lowest
        if span == 0:  # one level only: nothing to spread
            out[c] = image[c]
            continue
        lookup = ((cdf - lowest).double() / span.double()).clamp(0, 1).to(image.dtype)
        out[c] = lookup[levels[c]]
    return out


def identity(image: Tensor, _: float = 0.0) -> Tensor:
    return image


# name: (operation, magnitudes over the bins for RandAugment, for TrivialAugment (wide), signed)
def _linspace(low: float, high: float) -> list[float]:
    return torch.linspace(low, high, BINS).tolist()


def _posterize_bits(spread: float) -> list[float]:
    return (8 - (torch.arange(BINS) / ((BINS - 1) / spread)).round()).tolist()


OPERATIONS = {
    "identity": (identity, [0.0] * BINS, [0.0] * BINS, False),
    "shear_x": (shear_x, _linspace(0, 0.3), _linspace(0, 0.99), True),
    "shear_y": (shear_y, _linspace(0, 0.3), _linspace(0, 0.99), True),
    "translate_x": (translate_x, _linspace(0, 150 / 331), _linspace(0, 32 / 224), True),
    "translate_y": (translate_y, _linspace(0, 150 / 331), _linspace(0, 32 / 224), True),
    "rotate": (rotate, _linspace(0, 30), _linspace(0, 135), True),
    "brightness": (brightness, _linspace(0, 0.9), _linspace(0, 0.99), True),
    "color": (color, _linspace(0, 0.9), _linspace(0, 0.99), True),
    "contrast": (contrast, _linspace(0, 0.9), _linspace(0, 0.99), True),
    "sharpness": (sharpness, _linspace(0, 0.9), _linspace(0, 0.99), True),
    "posterize": (posterize, _posterize_bits(4), _posterize_bits(6), False),
    "solarize": (solarize, _linspace(1.0, 0.0), _linspace(1.0, 0.0), False),
    "autocontrast": (autocontrast, [0.0] * BINS, [0.0] * BINS, False),
    "equalize": (equalize, [0.0] * BINS, [0.0] * BINS, False),
}
_NAMES = tuple(OPERATIONS)


def _apply(image: Tensor, name: str, magnitude: float, signed: bool) -> Tensor:
    if signed and bool(torch.rand(()) < 0.5):
        magnitude = -magnitude
    return OPERATIONS[name][0](image, magnitude)


def rand_augment(image: Tensor, num_ops: int = RANDAUGMENT_OPS, magnitude: int = RANDAUGMENT_MAGNITUDE) -> Tensor:
    for _ in range(num_ops):
        name = _NAMES[int(torch.randint(len(_NAMES), ()))]
        _, magnitudes, _, signed = OPERATIONS[name]
        image = _apply(image, name, magnitudes[magnitude], signed)
    return image


def trivial_augment(image: Tensor) -> Tensor:
    name = _NAMES[int(torch.randint(len(_NAMES), ()))]
    _, _, magnitudes, signed = OPERATIONS[name]
    return _apply(image, name, magnitudes[int(torch.randint(BINS, ()))], signed)


def auto_augment(image: Tensor, kind: str) -> Tensor:
    if kind == "randaugment":
        return rand_augment(image)
    if kind == "trivialaugment":
        return trivial_augment(image)
    raise ValueError(f"unknown auto augmentation {kind!r}; choose from {', '.join(AUTO_AUGMENTS)}")


def random_erasing(image: Tensor, p: float, scale: tuple[float, float] = (0.02, 0.33),
                   ratio: tuple[float, float] = (0.3, 3.3), value: float = 0.0) -> Tensor:
    """With probability p, set one random rectangle (area a fraction in `scale` of the image, aspect ratio in
    `ratio`, log-uniform) to `value`; up to 10 tries to find one that fits, else the image is left whole."""
    if not bool(torch.rand(()) < p):
        return image
    _, height, width = image.shape
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * float(torch.empty(()).uniform_(*scale))
        aspect = math.exp(float(torch.empty(()).uniform_(*log_ratio)))
        h, w = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < h < height and 0 < w < width:
            top = int(torch.randint(height - h + 1, ()))
            left = int(torch.randint(width - w + 1, ()))
            image = image.clone()
            image[:, top:top + h, left:left + w] = value
            return image
    return image
