"""Image transforms: resizing to the network's input, channel widening, the papers' augmentations,
normalisation and multi-crop testing.

A transform works in two steps. `geometry(height, width)` decides, from the image's size alone, which region
of it becomes the working image and at what size (a `Geometry`: the random scale and crop of an augmentation
are drawn here). `finish(image)` does the rest on that working image (border, pad-and-crop, flip, PCA lighting)
and normalises it, as the last step and the only one in float. Because the geometry needs only the size, an
image file is decoded straight to its working image (`decode_region`: JPEG at a reduced scale when the region
allows, one Pillow resample of just the region, uint8 throughout); an image already in memory (a float tensor
in [0, 1], or uint8) is cut with the same Geometry by `apply_geometry`. `transform(image)` does both steps.

Randomness comes only from torch's global generator, so a DataLoader's per-worker seeding (and a saved torch
RNG state) makes augmentation reproducible.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
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
# GoogLeNet's crops (Szegedy et al. 2015, section 6): aspect ratio in [3/4, 4/3], drawn log-uniformly as
# torchvision's RandomResizedCrop does; after 10 draws that do not fit, the centre crop of the nearest ratio.
RANDOM_RESIZED_CROP_RATIO = (3 / 4, 4 / 3)
RANDOM_RESIZED_CROP_TRIES = 10


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
    random_resized_crop: (a, b): GoogLeNet's crop (torchvision's RandomResizedCrop): a region of a random
        fraction in [a, b] of the image's area (torchvision's default (0.08, 1.0)) and an aspect ratio in
        [3/4, 4/3], resized to the input. Drawn as torchvision draws it, so a seed gives torchvision's crops.
    auto_augment: "randaugment" or "trivialaugment" (auto_augment.py), after the flip.
    random_erasing: the probability of erasing a random rectangle of the normalised image (auto_augment.py).
    """

    random_crop_padding: int = 0
    random_resized_scale: tuple[int, int] | None = None
    hflip: bool = False
    pca_lighting: float = 0.0
    random_resized_crop: tuple[float, float] | None = None
    auto_augment: str | None = None
    random_erasing: float = 0.0

    def __post_init__(self) -> None:
        if self.random_resized_crop is not None:
            self.random_resized_crop = tuple(float(a) for a in self.random_resized_crop)
            area = self.random_resized_crop
            if len(area) != 2 or not 0 < area[0] <= area[1] <= 1:
                raise DataError(f"random_resized_crop is a range (a, b) of area fractions with 0 < a <= b <= 1, "
                                f"got {self.random_resized_crop}")
            if self.random_resized_scale is not None:
                raise DataError("random_resized_crop and random_resized_scale both choose the crop; give one")
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
    return resize(image, shorter_side_size(*image.shape[-2:], shorter))


def resize_to_cover(image: Tensor, size: tuple[int, int]) -> Tensor:
    """The smallest aspect-preserving resize whose result contains a crop of `size`."""
    return resize(image, cover_size(*image.shape[-2:], size))


def center_crop(image: Tensor, size: tuple[int, int]) -> Tensor:
    top, left, height, width = centre_of(tuple(image.shape[-2:]), size)
    return image[..., top:top + height, left:left + width]


def fit_to_input(image: Tensor, size: tuple[int, int]) -> Tensor:
    """What the network sees of an image at test time: resized to cover `size`, centre-cropped to it."""
    return apply_geometry(image, fit_geometry(*image.shape[-2:], size))


def random_crop(image: Tensor, size: tuple[int, int]) -> Tensor:
    top, left, height, width = random_place(tuple(image.shape[-2:]), size)
    return image[..., top:top + height, left:left + width]


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
    """(image - mean) / std, per channel, as the last step and the only float work: a uint8 image (0..255) is
    scaled to [0, 1] in the same pass, and a per-channel `shift` (PCA lighting, in [0, 1] units) is added before
    normalising, also in the same pass."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)

    def __call__(self, image: Tensor, shift: Tensor | None = None) -> Tensor:
        if image.dtype == torch.uint8:  # (x / 255 - mean) / std as x * scale + offset: two passes in place
            offset = (-self.mean if shift is None else shift.view(-1, 1, 1) - self.mean) / self.std
            return image.contiguous().to(torch.float32).mul_(1 / (255 * self.std)).add_(offset)
        if shift is not None:
            image = image + shift.view(-1, 1, 1)
        return (image - self.mean) / self.std


# --- geometry: which region of an image becomes the working image, decided from its size alone ---------------

@dataclass(frozen=True)
class Geometry:
    """Take `box` = (top, left, height, width) of the source (whole pixels), resize it to `resize_to` = (h, w),
    then keep `crop` = (top, left, height, width) of that (None: all of it)."""

    box: tuple[int, int, int, int]
    resize_to: tuple[int, int]
    crop: tuple[int, int, int, int] | None = None

    @property
    def size(self) -> tuple[int, int]:
        return self.resize_to if self.crop is None else (self.crop[2], self.crop[3])

    def source_region(self) -> tuple[float, float, float, float]:
        """The part of the source the working image shows: (left, top, right, bottom) in source pixels,
        fractional where a crop of the resized region falls between source pixels."""
        top, left, height, width = self.box
        if self.crop is None:
            return float(left), float(top), float(left + width), float(top + height)
        sy, sx = height / self.resize_to[0], width / self.resize_to[1]
        crop_top, crop_left, crop_h, crop_w = self.crop
        return (left + crop_left * sx, top + crop_top * sy, left + (crop_left + crop_w) * sx,
                top + (crop_top + crop_h) * sy)


def _whole(height: int, width: int) -> tuple[int, int, int, int]:
    return 0, 0, height, width


def shorter_side_size(height: int, width: int, shorter: int) -> tuple[int, int]:
    """Keep the aspect ratio and make the shorter side `shorter` pixels long."""
    scale = shorter / min(height, width)
    return max(shorter, round(height * scale)), max(shorter, round(width * scale))


def cover_size(height: int, width: int, size: tuple[int, int]) -> tuple[int, int]:
    """The smallest aspect-preserving size of an h x w image that contains a crop of `size`."""
    scale = max(size[0] / height, size[1] / width)
    return max(size[0], round(height * scale)), max(size[1], round(width * scale))


def centre_of(outer: tuple[int, int], size: tuple[int, int]) -> tuple[int, int, int, int]:
    return (outer[0] - size[0]) // 2, (outer[1] - size[1]) // 2, size[0], size[1]


def random_place(outer: tuple[int, int], size: tuple[int, int]) -> tuple[int, int, int, int]:
    top = int(torch.randint(outer[0] - size[0] + 1, ()))
    left = int(torch.randint(outer[1] - size[1] + 1, ()))
    return top, left, size[0], size[1]


def fit_geometry(height: int, width: int, size: tuple[int, int]) -> Geometry:
    """What the network sees of an image at test time: resized to cover `size`, centre-cropped to it."""
    resized = cover_size(height, width, size)
    return Geometry(_whole(height, width), resized, centre_of(resized, size))


def random_resized_crop_box(height: int, width: int, area: tuple[float, float],
                            ratio: tuple[float, float] = RANDOM_RESIZED_CROP_RATIO) -> tuple[int, int, int, int]:
    """(top, left, h, w) of GoogLeNet's random crop, drawn as torchvision's RandomResizedCrop.get_params draws
    it (the same calls on torch's generator, in the same order): area fraction uniform in `area`, aspect ratio
    log-uniform in `ratio`, position uniform; after 10 draws that do not fit, the centre crop of the image
    clamped to `ratio`."""
    image_area = height * width
    log_ratio = torch.log(torch.tensor(ratio))
    for _ in range(RANDOM_RESIZED_CROP_TRIES):
        target_area = image_area * torch.empty(1).uniform_(area[0], area[1]).item()
        aspect = torch.exp(torch.empty(1).uniform_(log_ratio[0], log_ratio[1])).item()
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, size=(1,)).item())
            left = int(torch.randint(0, width - w + 1, size=(1,)).item())
            return top, left, h, w
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        h, w = height, int(round(height * max(ratio)))
    else:
        h, w = height, width
    return (height - h) // 2, (width - w) // 2, h, w


def apply_geometry(image: Tensor, geometry: Geometry) -> Tensor:
    """Cut an image in memory (... x C x h x w, float or uint8) as `geometry` says."""
    top, left, height, width = geometry.box
    image = image[..., top:top + height, left:left + width]
    if tuple(image.shape[-2:]) != tuple(geometry.resize_to):
        if image.dtype == torch.uint8:
            image = resize(image.float(), geometry.resize_to).round_().clamp_(0, 255).to(torch.uint8)
        else:
            image = resize(image, geometry.resize_to)
    if geometry.crop is not None:
        top, left, height, width = geometry.crop
        image = image[..., top:top + height, left:left + width]
    return image


def decode_region(opened, geometry: Geometry, channels: int, reduced_scale: bool = True) -> Tensor:
    """The working image of an opened (not yet decoded) Pillow image as a uint8 C x H x W tensor.

    Only what the region needs is done: a JPEG decodes at 1/2, 1/4 or 1/8 scale (Pillow's draft: libjpeg scales
    while decoding) when the region still covers the output size at that scale, then one Pillow resample
    (bilinear, antialiased as torchvision's PIL path) takes just the region to its size. No float, no copy of
    the whole image. reduced_scale=False decodes at full scale (pixels then differ from a plain decode, crop and
    resize only at the region's edge, where Pillow's filter reads the pixels just outside the region)."""
    from PIL import Image

    mode = "RGB" if channels == 3 else "L"
    out_h, out_w = geometry.size
    left, top, right, bottom = geometry.source_region()
    full_w, full_h = opened.size
    if reduced_scale and opened.format == "JPEG":
        wanted = (math.ceil(full_w * out_w / (right - left)), math.ceil(full_h * out_h / (bottom - top)))
        if wanted[0] < full_w and wanted[1] < full_h:
            opened.draft(mode, wanted)
    elif opened.format == "JPEG":
        opened.draft(mode, None)  # libjpeg converts the colours (or keeps only the luma) while decoding
    if opened.size != (full_w, full_h):  # decoded at 1/scale: the region in the reduced image's pixels
        scale_x, scale_y = opened.size[0] / full_w, opened.size[1] / full_h
        left, right, top, bottom = left * scale_x, right * scale_x, top * scale_y, bottom * scale_y
    if opened.mode != mode:
        opened = opened.convert(mode)
    if (left, top, right, bottom) == (0, 0, opened.size[0], opened.size[1]) and opened.size == (out_w, out_h):
        region = opened
    else:
        region = opened.resize((out_w, out_h), Image.Resampling.BILINEAR, box=(left, top, right, bottom))
    pixels = torch.from_numpy(np.array(region))  # a copy of the output-size image only
    pixels = pixels[None] if pixels.dim() == 2 else pixels.permute(2, 0, 1).contiguous()
    return to_channels(pixels, channels) if channels not in (1, 3) else pixels


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

    def geometry(self, height: int, width: int) -> Geometry:
        if self.resize is None:
            return fit_geometry(height, width, self.size)
        resized = shorter_side_size(height, width, self.resize)
        return Geometry(_whole(height, width), resized, None if self.crops == 10 else centre_of(resized, self.size))

    def finish(self, image: Tensor) -> Tensor:
        if self.crops == 10:
            image = ten_crop(image, self.size)
        return self.normalize(add_border(image, self.border))

    def __call__(self, image: Tensor) -> Tensor:
        return self.finish(apply_geometry(image, self.geometry(*image.shape[-2:])))


class TrainTransform:
    """Resize to the input (or scale-jitter and random crop, or GoogLeNet's random crop), add the border,
    pad-and-crop, flip, RandAugment or TrivialAugment, PCA lighting, normalise, random erasing."""

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

    def geometry(self, height: int, width: int) -> Geometry:
        aug = self.augment
        if aug.random_resized_crop is not None:
            return Geometry(random_resized_crop_box(height, width, aug.random_resized_crop), self.size)
        if aug.random_resized_scale is not None:
            low, high = aug.random_resized_scale
            resized = shorter_side_size(height, width, int(torch.randint(low, high + 1, ())))
            return Geometry(_whole(height, width), resized, random_place(resized, self.size))
        return fit_geometry(height, width, self.size)

    def finish(self, image: Tensor) -> Tensor:
        aug = self.augment
        image = add_border(image, self.border)
        if aug.random_crop_padding:
            pad = aug.random_crop_padding
            image = random_crop(F.pad(image, (pad, pad, pad, pad)), image.shape[-2:])
        if aug.hflip and bool(torch.rand(()) < 0.5):
            image = image.flip(-1)
        if aug.auto_augment is not None:  # on floats in [0, 1]
            image = auto_augment(image.float().div_(255) if image.dtype == torch.uint8 else image, aug.auto_augment)
        image = self.normalize(image, self._lighting() if aug.pca_lighting else None)
        return random_erasing(image, aug.random_erasing) if aug.random_erasing else image

    def __call__(self, image: Tensor) -> Tensor:
        return self.finish(apply_geometry(image, self.geometry(*image.shape[-2:])))

    def _lighting(self) -> Tensor:
        # AlexNet section 4.1: add sum_i alpha_i * lambda_i * p_i to every pixel, alpha_i ~ N(0, sigma^2) drawn
        # once per image, (lambda_i, p_i) the eigenvalues/vectors of the training pixels' colour covariance.
        alpha = torch.randn(self.pca_eigenvalues.shape[0]) * self.augment.pca_lighting
        return self.pca_eigenvectors @ (alpha * self.pca_eigenvalues)


def eval_transform(input_size: Sequence[int], mean: Sequence[float], std: Sequence[float], crops: int = 1,
                   resize: int | None = None, border: int = 0) -> EvalTransform:
    """The test-time transform: crops=1 gives C x H x W (centre crop), crops=10 gives 10 x C x H x W."""
    return EvalTransform(input_size, mean, std, crops=crops, resize=resize, border=border)
