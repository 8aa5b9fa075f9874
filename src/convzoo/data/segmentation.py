"""Segmentation data: images with a class index at every pixel.

    bundle = load_data("digits-seg", input_size=(1, 64, 64))
    image, mask = bundle.train[0]     # float32 1 x 64 x 64 normalised; int64 64 x 64, 0 = background, 255 = ignore

Three sources, recognised by `load_data`:
    "digits-seg"        canvases built from the embedded digits: several upscaled digits on a black 64x64 canvas,
                        each digit pixel labelled with its digit's class (digit d is class d + 1), the rest 0
    VOC-style folder    JPEGImages/<id>.jpg, SegmentationClass/<id>.png (palette PNGs: the palette index is the
                        class), ImageSets/Segmentation/train.txt (+ val.txt); also found under VOC2012/ or
                        VOCdevkit/VOC2012/
    image/mask folders  images/ + masks/ (a mask has its image's stem: images/a.jpg -> masks/a.png), directly or
                        as train/, val/, test/ each holding images/ + masks/
A folder's class names come from classes.txt (one a line, line i names class i) when it has one; else a VOC
folder has the 21 VOC classes and an image/mask folder the classes 0..(largest value in its masks).

Mask value 255 means "no label" (VOC draws it around objects): losses and metrics skip those pixels, and the
transforms pad masks with it. Image and mask always move together: scaling (image bilinear, mask nearest),
cropping, padding and flipping use the same numbers for both.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import CorruptImageError, DataError, DataNotFoundError
from .common import DataBundle, DataRequest, normalisation, split_train_val, stratified_split
from .datasets import (STATISTICS_FILES, ArrayImages, ImageFiles, ImageSource, SplitDataset, decode_errors,
                       evenly_spread, open_image, _shared_flags)
from .sources import DIGITS_CLASSES, IMAGE_EXTENSIONS, read_digits
from .transforms import Augment, Normalize, resize

IGNORE_INDEX = 255

DIGITS_SEG_CLASSES = ["background"] + DIGITS_CLASSES
DIGITS_SEG_CANVAS = 64
# Digits are upscaled from 8x8 to a side in this range: big enough to be read, small enough for 2-4 a canvas.
DIGITS_SEG_SIDES = (16, 28)
DIGITS_SEG_PER_CANVAS = (2, 4)
# Every source digit appears on this many canvases of its split (at different places and sizes).
DIGITS_SEG_USES = 3
# A canvas pixel belongs to a digit where the upscaled digit is at least this bright (digits are 0..1 here).
DIGITS_SEG_THRESHOLD = 0.3
_PLACEMENT_TRIES = 30
# The canvases of each split come from their own fixed generator: the test canvases are the same for every
# seed and validation fraction, so results stay comparable (as the digits' fixed test split).
_DIGITS_SEG_STREAMS = {"train": 0, "val": 1, "test": 2}

VOC_CLASSES = ["background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor"]
SEGMENTATION_KINDS = ("digits-seg", "voc", "image-mask-folders")


def voc_palette(num_colors: int = 256) -> np.ndarray:
    """The PASCAL VOC colour map (num_colors x 3 uint8): class i's colour spreads the bits of i over the high
    bits of red, green and blue, so neighbouring class indices get very different colours; 255 is near white."""
    palette = np.zeros((num_colors, 3), dtype=np.uint8)
    for index in range(num_colors):
        value, red, green, blue = index, 0, 0, 0
        for bit in range(8):
            red |= (value & 1) << (7 - bit)
            green |= ((value >> 1) & 1) << (7 - bit)
            blue |= ((value >> 2) & 1) << (7 - bit)
            value >>= 3
        palette[index] = red, green, blue
    return palette


# --- reading masks ------------------------------------------------------------------------------------------

def load_mask(path: str | Path) -> Tensor:
    """A mask file as an int64 h x w tensor of class indices: a palette PNG (VOC's SegmentationClass: the
    palette index is the class) or a greyscale image whose values are the classes."""
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"mask {str(path)!r} does not exist")
    try:
        with Image.open(path) as img:
            mode, values = img.mode, np.array(img)
    except decode_errors() as err:
        raise CorruptImageError(str(path), f"{type(err).__name__}: {err}") from err
    if mode not in ("P", "L", "1", "I", "I;16"):
        raise DataError(f"mask {str(path)!r} is a {mode} image; a mask holds one class index a pixel: save it as "
                        f"a palette (VOC) or greyscale PNG")
    return torch.from_numpy(values.astype(np.int64))


def check_mask(mask: Tensor, num_classes: int, path: str) -> None:
    """Refuse class indices the data set does not have (255, the ignore index, is allowed)."""
    bad = mask[(mask >= num_classes) & (mask != IGNORE_INDEX)]
    if bad.numel():
        raise DataError(f"mask {path!r} has value {int(bad.max())} but the data set has {num_classes} classes "
                        f"(0..{num_classes - 1}, and {IGNORE_INDEX} for unlabelled pixels); fix the mask or list "
                        f"every class in classes.txt")


MASK_MODES = ("P", "L", "1", "I", "I;16")


# --- sources: pairs of an image and its mask ------------------------------------------------------------------

class SegmentationPairs:
    """Images and their masks. The images are a classification image source (ArrayImages or ImageFiles) whose
    labels are the pair numbers, so its header checks, decoding, statistics and unreadable-file marks serve
    here unchanged; the masks are an N x h x w tensor or one file a pair (marked apart when unreadable).
    `placements` records, for digits-seg, which digits each canvas holds (see `DigitPlacement`). Once the
    classes are known (`num_classes`), every mask read is checked against them."""

    def __init__(self, images: ImageSource, masks: Tensor | list[str],
                 placements: list[list[DigitPlacement]] | None = None) -> None:
        self.images = images
        self.masks = masks
        self.placements = placements
        self.num_classes: int | None = None
        self.bad_masks = None if isinstance(masks, Tensor) else _shared_flags(len(masks))

    @property
    def from_files(self) -> bool:
        return self.images.from_files

    @property
    def labels(self) -> np.ndarray:
        return self.images.labels

    def __len__(self) -> int:
        return len(self.images)

    def read(self, index: int) -> tuple[Tensor, Tensor]:
        image = self.images.read(index)
        if isinstance(self.masks, Tensor):
            return image, self.masks[index].long()
        mask = load_mask(self.masks[index])
        if tuple(mask.shape) != tuple(image.shape[-2:]):
            raise _size_mismatch(self.images.paths[index], self.masks[index], tuple(image.shape[-2:]),
                                 tuple(mask.shape))
        if self.num_classes is not None:
            check_mask(mask, self.num_classes, self.masks[index])
        return image, mask

    def load(self, index: int, transform: SegmentationTransform) -> tuple[Tensor, Tensor]:
        return transform(*self.read(index))

    def is_unreadable(self, index: int) -> bool:
        return self.images.is_unreadable(index) or (self.bad_masks is not None and bool(self.bad_masks[index]))

    def mark_unreadable(self, index: int, error: CorruptImageError) -> None:
        if self.bad_masks is not None and error.path == self.masks[index]:
            self.bad_masks[index] = True
        else:
            self.images.mark_unreadable(index, error)

    def unreadable_paths(self) -> list[str]:
        if self.bad_masks is None:
            return self.images.unreadable_paths()
        masks = [self.masks[i] for i in torch.nonzero(self.bad_masks).flatten().tolist()]
        return self.images.unreadable_paths() + masks

    def check(self, skip_bad: bool) -> list[str]:
        """For file pairs: read every image's and mask's header (no pixels): a file that is not an image fails
        now (or is skipped and returned), a mask that is not one class index a pixel is refused, and image and
        mask must have the same size."""
        if isinstance(self.masks, Tensor):
            return []
        skipped = self.images.check(skip_bad)
        # The image source dropped unreadable images; its labels are the numbers of the pairs it kept.
        masks = [self.masks[i] for i in self.images.labels]
        good = []
        for position, mask_path in enumerate(masks):
            try:
                with open_image(mask_path) as mask:
                    mode, (width, height) = mask.mode, mask.size
            except CorruptImageError:
                if not skip_bad:
                    raise
                skipped.append(mask_path)
                continue
            if mode not in MASK_MODES:
                raise DataError(f"mask {mask_path!r} is a {mode} image; a mask holds one class index a pixel: save "
                                f"it as a palette (VOC) or greyscale PNG")
            image_size = tuple(int(n) for n in self.images.sizes[position])
            if (height, width) != image_size:
                raise _size_mismatch(self.images.paths[position], mask_path, image_size, (height, width))
            good.append(position)
        if len(good) != len(masks) or len(masks) != len(self.masks):
            self.images.keep(good)
            self.images.labels = np.arange(len(good), dtype=np.int64)
            self.masks = [masks[i] for i in good]
            self.bad_masks = _shared_flags(len(self.masks))
        return skipped

    def largest_class(self, skip_bad: bool, sample: int | None = None) -> int:
        """The largest class index in the masks (ignoring 255): all of them (sample None: every mask file is
        decoded), or an evenly spread sample. With `num_classes` set, each mask read is also checked."""
        if isinstance(self.masks, Tensor):
            masks = self.masks
            if self.num_classes is not None:
                check_mask(masks, self.num_classes, "digits-seg")
            return int(torch.where(masks == IGNORE_INDEX, 0, masks).max()) if len(masks) else 0
        largest = 0
        indices = np.arange(len(self.masks))
        for index in (indices if sample is None else evenly_spread(indices, sample)).tolist():
            try:
                mask = load_mask(self.masks[index])
            except CorruptImageError as err:
                if not skip_bad:
                    raise
                self.mark_unreadable(index, err)
                continue
            if self.num_classes is not None:
                check_mask(mask, self.num_classes, self.masks[index])
            labelled = mask[mask != IGNORE_INDEX]
            if labelled.numel():
                largest = max(largest, int(labelled.max()))
        return largest


def _size_mismatch(image: str, mask: str, image_size: tuple, mask_size: tuple) -> DataError:
    return DataError(f"image {image!r} is {image_size[0]}x{image_size[1]} but its mask {mask!r} is "
                     f"{mask_size[0]}x{mask_size[1]}; a mask labels every pixel of its image, so both need the "
                     f"same size")


class SegmentationDataset(SplitDataset):
    """One split: a selection of the pairs, each passed through the split's joint transform.
    Items are (float32 image C x H x W, int64 mask H x W)."""


# --- joint transforms -------------------------------------------------------------------------------------------

def resize_mask(mask: Tensor, size: tuple[int, int]) -> Tensor:
    """Nearest-neighbour resize of an h x w mask: every pixel keeps a class that was there (no blends).
    "nearest-exact" samples at pixel centres, as the image's bilinear resize does, so the two stay aligned."""
    if tuple(mask.shape[-2:]) == tuple(size):
        return mask
    return F.interpolate(mask[None, None].float(), size=size, mode="nearest-exact")[0, 0].long()


def resize_pair(image: Tensor, mask: Tensor, size: tuple[int, int]) -> tuple[Tensor, Tensor]:
    return resize(image, size), resize_mask(mask, size)


def fit_inside_size(height: int, width: int, size: tuple[int, int]) -> tuple[int, int]:
    """The largest aspect-preserving size of an h x w image that fits inside `size`."""
    scale = min(size[0] / height, size[1] / width)
    return max(1, min(size[0], round(height * scale))), max(1, min(size[1], round(width * scale)))


def fit_network_view(path: str | Path, input_size: Sequence[int]
                     ) -> tuple[Tensor, tuple[int, int], tuple[int, int]]:
    """An image file as a segmentation network sees it at test time: scaled to fit inside the input (C, H, W)
    keeping its aspect, padded with black at the bottom and right. Returns the C x H x W view (0..1, not yet
    normalised), the (h, w) the image takes inside it, and the file's own (h, w)."""
    from .datasets import decode_image

    channels, height, width = (int(n) for n in input_size)
    image = decode_image(path, channels)
    fitted = fit_inside_size(*image.shape[-2:], (height, width))
    view = torch.zeros(channels, height, width)
    view[:, :fitted[0], :fitted[1]] = resize(image, fitted)
    return view, fitted, (int(image.shape[-2]), int(image.shape[-1]))


def pad_pair(image: Tensor, mask: Tensor, top: int, bottom: int, left: int, right: int) -> tuple[Tensor, Tensor]:
    """Pad with black image pixels and unlabelled (255) mask pixels, so padding never counts as background."""
    if not (top or bottom or left or right):
        return image, mask
    return (F.pad(image, (left, right, top, bottom)),
            F.pad(mask, (left, right, top, bottom), value=IGNORE_INDEX))


def pad_to_at_least(image: Tensor, mask: Tensor, size: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """Pad the bottom and right up to `size` (pixel (i, j) stays at (i, j), as torchvision's reference does)."""
    return pad_pair(image, mask, 0, max(0, size[0] - mask.shape[0]), 0, max(0, size[1] - mask.shape[1]))


def random_crop_pair(image: Tensor, mask: Tensor, size: tuple[int, int]) -> tuple[Tensor, Tensor]:
    top = int(torch.randint(mask.shape[0] - size[0] + 1, ()))
    left = int(torch.randint(mask.shape[1] - size[1] + 1, ()))
    return (image[..., top:top + size[0], left:left + size[1]], mask[top:top + size[0], left:left + size[1]])


class SegmentationTransform:
    """Image and mask to the network's input size, then the image normalised.

    Without augmentation (validation, test, and training when nothing is asked): scale the pair so it fits
    inside the input keeping its aspect, then pad the bottom and right (image black, mask 255). Every labelled
    pixel is seen and scored; the padding is not.
    With `augment` (training), the options of `Augment` act on both: random_resized_scale (a, b) scales so the
    shorter side is a random integer in [a, b] (it may be smaller than the input: the pair is then padded, as
    DeepLab trains with scales 0.5..2), then a random crop of the input size; random_crop_padding pads each
    side (image black, mask 255) and crops back at a random place; hflip mirrors both. Randomness comes only
    from torch's global generator, as in transforms.py."""

    def __init__(self, input_size: Sequence[int], mean: Sequence[float], std: Sequence[float],
                 augment: Augment | None = None) -> None:
        self.size = (int(input_size[1]), int(input_size[2]))
        if augment is not None and augment.pca_lighting:
            raise DataError("pca_lighting is a classification augmentation (AlexNet); segmentation does not use it")
        if augment is not None and (augment.auto_augment or augment.random_erasing):
            raise DataError("--auto-augment and --random-erasing are classification augmentations here (they would "
                            "move the image without its mask); drop them for segmentation")
        self.augment = augment
        self.normalize = Normalize(mean, std)

    def __call__(self, image: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        aug = self.augment
        if aug is not None and aug.random_resized_scale is not None:
            low, high = aug.random_resized_scale
            shorter = int(torch.randint(low, high + 1, ()))
            scale = shorter / min(mask.shape)
            image, mask = resize_pair(image, mask, (max(1, round(mask.shape[0] * scale)),
                                                    max(1, round(mask.shape[1] * scale))))
            image, mask = random_crop_pair(*pad_to_at_least(image, mask, self.size), self.size)
        else:
            image, mask = resize_pair(image, mask, fit_inside_size(*mask.shape, self.size))
            image, mask = pad_to_at_least(image, mask, self.size)
        if aug is not None and aug.random_crop_padding:
            pad = aug.random_crop_padding
            image, mask = random_crop_pair(*pad_pair(image, mask, pad, pad, pad, pad), self.size)
        if aug is not None and aug.hflip and bool(torch.rand(()) < 0.5):
            image, mask = image.flip(-1), mask.flip(-1)
        return self.normalize(image), mask


# --- digits-seg --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DigitPlacement:
    """One digit on a canvas: `digit` indexes its split's source digits, drawn at side x side from (top, left)."""

    digit: int
    label: int
    top: int
    left: int
    side: int


def make_digit_canvases(digits: Tensor, labels: np.ndarray, generator: np.random.Generator,
                        uses: int = DIGITS_SEG_USES, canvas: int = DIGITS_SEG_CANVAS
                        ) -> tuple[Tensor, Tensor, list[list[DigitPlacement]]]:
    """Canvases (N x 1 x canvas x canvas uint8 images, N x canvas x canvas uint8 masks) holding the given
    digits (D x 8 x 8, values in [0, 1]), each used `uses` times in a shuffled order.

    Each canvas takes 2-4 digits, each upscaled (bilinear) to a random side in DIGITS_SEG_SIDES and put where its
    square overlaps no other digit's: every pixel has one digit or none. A pixel belongs to a digit where the
    upscaled digit is at least DIGITS_SEG_THRESHOLD bright; its class is the digit's label + 1 (0 is background).
    A canvas that cannot fit its next digit closes, and the digit starts the next canvas."""
    queue = [int(i) for _ in range(uses) for i in generator.permutation(len(digits))]
    placements: list[list[DigitPlacement]] = []
    while queue:
        wanted = int(generator.integers(DIGITS_SEG_PER_CANVAS[0], DIGITS_SEG_PER_CANVAS[1] + 1))
        placed: list[DigitPlacement] = []
        while queue and len(placed) < wanted:
            side = int(generator.integers(DIGITS_SEG_SIDES[0], DIGITS_SEG_SIDES[1] + 1))
            spot = _free_spot(placed, side, canvas, generator)
            if spot is None:
                break
            digit = queue.pop()
            placed.append(DigitPlacement(digit, int(labels[digit]), spot[0], spot[1], side))
        placements.append(placed)
    # Draw after placing: one bilinear upscale of all the digits a side, instead of one a placement.
    drawn: dict[tuple[int, int], np.ndarray] = {}
    for side in sorted({p.side for canvas_placements in placements for p in canvas_placements}):
        used = sorted({p.digit for canvas_placements in placements for p in canvas_placements if p.side == side})
        upscaled = F.interpolate(digits[used][:, None].float(), size=(side, side), mode="bilinear",
                                 align_corners=False)[:, 0].clamp(0, 1).numpy()
        drawn.update({(digit, side): pixels for digit, pixels in zip(used, upscaled)})
    images = np.zeros((len(placements), canvas, canvas), dtype=np.float32)
    masks = np.zeros((len(placements), canvas, canvas), dtype=np.uint8)
    for index, canvas_placements in enumerate(placements):
        for p in canvas_placements:
            digit = drawn[p.digit, p.side]
            region = (index, slice(p.top, p.top + p.side), slice(p.left, p.left + p.side))
            images[region] = digit
            masks[region] = np.where(digit >= DIGITS_SEG_THRESHOLD, p.label + 1, 0)
    images = torch.from_numpy(np.round(images * 255).astype(np.uint8))[:, None]
    return images, torch.from_numpy(masks), placements


def _free_spot(placed: list[DigitPlacement], side: int, canvas: int,
               generator: np.random.Generator) -> tuple[int, int] | None:
    for top, left in generator.integers(0, canvas - side + 1, (_PLACEMENT_TRIES, 2)).tolist():
        if all(top + side <= p.top or p.top + p.side <= top or left + side <= p.left or p.left + p.side <= left
               for p in placed):
            return top, left
    return None


def read_digits_seg(channels: int, val_split: float, seed: int) -> tuple[dict[str, SegmentationPairs], list[str]]:
    """The digits-seg splits. The source digits are split first (test: the digits' fixed test split; val: a
    stratified, seeded part of the rest), and each split's canvases use only its own digits."""
    raw = read_digits(1)
    train_digits, val_digits = stratified_split(raw.train.labels, val_split, seed)
    choices = {"train": (raw.train, train_digits), "val": (raw.train, val_digits),
               "test": (raw.test, np.arange(len(raw.test)))}
    splits = {}
    for name, (source, chosen) in choices.items():
        digits = source.images[torch.as_tensor(chosen, dtype=torch.long), 0].float() / source.max_value
        generator = np.random.default_rng(_DIGITS_SEG_STREAMS[name])
        images, masks, placements = make_digit_canvases(digits, source.labels[chosen], generator)
        # Record placements by the digit's index in its source (train and val share raw.train's numbering).
        placements = [[DigitPlacement(int(chosen[p.digit]), p.label, p.top, p.left, p.side) for p in canvas]
                      for canvas in placements]
        splits[name] = SegmentationPairs(ArrayImages(images, np.arange(len(images)), 255, channels), masks,
                                         placements)
    return splits, list(DIGITS_SEG_CLASSES)


# --- folders -------------------------------------------------------------------------------------------------------

def _voc_root(path: Path) -> Path | None:
    for root in (path, path / "VOC2012", path / "VOCdevkit" / "VOC2012"):
        if (root / "JPEGImages").is_dir() and (root / "SegmentationClass").is_dir():
            return root
    return None


def _pair_roots(path: Path) -> dict[str, Path] | None:
    if (path / "images").is_dir() and (path / "masks").is_dir():
        return {"train": path}
    roots = {name: path / name for name in ("train", "val", "test")
             if (path / name / "images").is_dir() and (path / name / "masks").is_dir()}
    return roots if "train" in roots else None


def is_segmentation_source(source: str) -> bool:
    """"digits-seg", a VOC-style folder or an image/mask folder (see the module's docstring)."""
    if str(source) == "digits-seg":
        return True
    path = Path(source).expanduser()
    return path.is_dir() and (_voc_root(path) is not None or _pair_roots(path) is not None)


def _class_names(root: Path, default: list[str] | None) -> list[str] | None:
    listed = root / "classes.txt"
    if listed.is_file():
        names = [line.strip() for line in listed.read_text().splitlines() if line.strip()]
        if not names:
            raise DataError(f"{str(listed)!r} lists no classes; write one class name a line (line i: class i)")
        return names
    return default


def _read_ids(path: Path) -> list[str]:
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]


def read_voc(root: Path, channels: int) -> tuple[dict[str, SegmentationPairs], list[str] | None]:
    split_files = root / "ImageSets" / "Segmentation"
    if not (split_files / "train.txt").is_file():
        raise DataNotFoundError(f"{str(root)!r} looks like a VOC folder but has no {str(split_files / 'train.txt')!r} "
                                f"listing the training image ids")
    splits = {}
    for name in ("train", "val", "test"):
        if (split_files / f"{name}.txt").is_file():
            ids = _read_ids(split_files / f"{name}.txt")
            images = [str(root / "JPEGImages" / f"{i}.jpg") for i in ids]
            masks = [str(root / "SegmentationClass" / f"{i}.png") for i in ids]
            _check_masks_exist(images, masks)
            splits[name] = _file_pairs(images, masks, channels)
    return splits, _class_names(root, list(VOC_CLASSES))


def read_pair_folders(roots: dict[str, Path], channels: int) -> tuple[dict[str, SegmentationPairs], list[str] | None]:
    splits = {}
    for name, root in roots.items():
        images = sorted(str(p) for p in (root / "images").iterdir()
                        if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file() and not p.name.startswith("."))
        if not images:
            raise DataError(f"{str(root / 'images')!r} holds no images (looked for "
                            f"{', '.join(sorted(IMAGE_EXTENSIONS))})")
        by_stem: dict[str, str] = {}
        for mask in sorted((root / "masks").iterdir()):
            if mask.suffix.lower() in IMAGE_EXTENSIONS and mask.is_file():
                if mask.stem in by_stem:
                    raise DataError(f"two masks for {mask.stem!r}: {by_stem[mask.stem]!r} and {str(mask)!r}")
                by_stem[mask.stem] = str(mask)
        masks = [by_stem.get(Path(i).stem, str(root / "masks" / f"{Path(i).stem}.png")) for i in images]
        _check_masks_exist(images, masks)
        splits[name] = _file_pairs(images, masks, channels)
    top = roots["train"] if roots["train"].name != "train" else roots["train"].parent
    return splits, _class_names(top, None)


def _check_masks_exist(images: list[str], masks: list[str]) -> None:
    for image, mask in zip(images, masks):
        if not Path(mask).is_file():
            raise DataNotFoundError(f"no mask for image {image!r}: expected {mask!r}")


def _file_pairs(images: list[str], masks: list[str], channels: int) -> SegmentationPairs:
    # No reduced-scale JPEG decoding: the image must keep its mask's size.
    return SegmentationPairs(ImageFiles(images, np.arange(len(images)), channels), masks)


# --- loading -------------------------------------------------------------------------------------------------------

def load_segmentation_data(request: DataRequest) -> DataBundle:
    """What `load_data` does for a segmentation source (call that): the splits as SegmentationDatasets in a
    DataBundle. A source without a val split holds out `val_split` of its training pairs (seeded); the
    normalisation is the training images' per-channel statistics, measured on an evenly spread sample as the
    network sees them."""
    source, skip_bad, augment, channels = request.source, request.skip_bad, request.augment, request.channels
    size = request.input_size[1:]
    if str(source) == "digits-seg":
        splits, classes = read_digits_seg(channels, request.val_split, request.seed)
        kind = "digits-seg"
    else:
        path = Path(source).expanduser()
        voc = _voc_root(path)
        if voc is not None:
            splits, classes = read_voc(voc, channels)
            kind = "voc"
        else:
            roots = _pair_roots(path)
            if roots is None:
                raise DataNotFoundError(f"{str(source)!r} is not a segmentation data set: expected 'digits-seg', "
                                        f"a VOC folder (JPEGImages/, SegmentationClass/, ImageSets/Segmentation/) "
                                        f"or images/ + masks/ folders")
            splits, classes = read_pair_folders(roots, channels)
            kind = "image-mask-folders"

    def network_view(images: Tensor) -> Tensor:
        # Statistics of the image content as the network sees it, without the padding.
        return resize(images, fit_inside_size(*images.shape[-2:], size))

    skipped = []
    for pairs in splits.values():
        skipped += pairs.check(skip_bad)
    if len(splits["train"]) == 0:
        raise DataError(f"no readable training image/mask pairs left in {str(source)!r} after skipping "
                        f"{len(skipped)} files")
    if classes is None:
        # The classes are 0..the largest value in any mask: every mask is read (classes.txt avoids this).
        classes = [str(i) for i in range(max(pairs.largest_class(skip_bad) for pairs in splits.values()) + 1)]
    for pairs in splits.values():
        pairs.num_classes = len(classes)
        # An evenly spread sample of the masks is checked now; every mask read later is checked too.
        pairs.largest_class(skip_bad, sample=STATISTICS_FILES)

    train = splits["train"]
    # No labels: one "class" for all, a seeded random hold-out of round(val_split * n) pairs.
    train_indices, val_source, val_indices = split_train_val(train, splits.get("val"), request.val_split,
                                                             request.seed)
    moments = train.images.moments(train_indices, network_view, skip_bad) if request.mean is None else None
    mean, std, statistics = normalisation(moments, request.mean, request.std, len(train_indices))

    eval_tf = SegmentationTransform(request.input_size, mean, std)
    train_tf = eval_tf if augment is None else SegmentationTransform(request.input_size, mean, std, augment)
    test = splits.get("test")
    return request.bundle(
        train=SegmentationDataset(train, train_indices, train_tf, skip_bad),
        val=SegmentationDataset(val_source, val_indices, eval_tf, skip_bad),
        test=None if test is None else SegmentationDataset(test, np.arange(len(test)), eval_tf, skip_bad),
        classes=list(classes), mean=mean, std=std, skipped=skipped, kind=kind, statistics=statistics)
