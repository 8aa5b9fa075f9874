"""Segmentation data: the digits-seg canvases against the real digits they are drawn from, VOC-style and
image/mask folders written with Pillow, the joint transforms, and bad input."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from convzoo.data import Augment, SegmentationTransform, load_data, voc_palette
from convzoo.data.segmentation import DIGITS_SEG_THRESHOLD, fit_inside_size, make_digit_canvases
from convzoo.data.sources import read_digits
from convzoo.errors import CorruptImageError, DataError, DataNotFoundError


@pytest.fixture(scope="module")
def digits_seg():
    return load_data("digits-seg", (1, 64, 64))


def test_digits_seg_items_and_classes(digits_seg):
    image, mask = digits_seg.train[0]
    assert image.shape == (1, 64, 64) and image.dtype == torch.float32
    assert mask.shape == (64, 64) and mask.dtype == torch.int64
    assert digits_seg.classes == ["background"] + [str(d) for d in range(10)]
    assert digits_seg.kind == "digits-seg"
    # Normalised with the training split's statistics.
    train_images = digits_seg.train.source.images.images.float() / 255
    assert digits_seg.mean[0] == pytest.approx(train_images.mean().item(), rel=1e-4)


def test_digits_seg_splits_never_share_a_source_digit(digits_seg):
    def used(dataset):
        return {p.digit for canvas in dataset.source.placements for p in canvas}

    train, val = used(digits_seg.train), used(digits_seg.val)
    assert train and val and not train & val  # both index the digits' training split, disjointly
    raw = read_digits(1)
    assert used(digits_seg.test) <= set(range(len(raw.test)))  # the digits' own, separate test split
    assert len(used(digits_seg.test)) == len(raw.test)  # every test digit is drawn


def test_digits_seg_masks_label_the_real_digits(digits_seg):
    raw = read_digits(1)
    for dataset, source in ((digits_seg.train, raw.train), (digits_seg.test, raw.test)):
        images, masks = dataset.source.images.images[:, 0], dataset.source.masks
        for index in range(20):
            covered = torch.zeros(64, 64, dtype=torch.bool)
            for p in dataset.source.placements[index]:
                assert p.label == source.labels[p.digit]
                box = (slice(p.top, p.top + p.side), slice(p.left, p.left + p.side))
                labelled = masks[index][box] != 0
                assert set(masks[index][box][labelled].tolist()) == {p.label + 1}
                # The mask is the bright part of the drawn digit (uint8 image: the threshold to within rounding).
                bright = images[index][box].float() / 255
                assert bool((bright[labelled] >= DIGITS_SEG_THRESHOLD - 1 / 255).all())
                assert bool((bright[~labelled] <= DIGITS_SEG_THRESHOLD + 1 / 255).all())
                covered[box] = True
            assert not bool(masks[index][~covered].any()) and not bool(images[index][~covered].any())


def test_digits_seg_is_deterministic_and_its_test_split_ignores_the_seed(digits_seg):
    again = load_data("digits-seg", (1, 64, 64))
    other_seed = load_data("digits-seg", (1, 64, 64), seed=3, val_split=0.2)
    assert torch.equal(again.train.source.masks, digits_seg.train.source.masks)
    assert torch.equal(other_seed.test.source.masks, digits_seg.test.source.masks)
    assert len(other_seed.val) > len(digits_seg.val)


def test_canvases_place_digits_without_overlap():
    digits = torch.rand(6, 8, 8)
    images, masks, placements = make_digit_canvases(digits, np.arange(6) % 10, np.random.default_rng(0), uses=2)
    assert images.shape[1:] == (1, 64, 64) and masks.shape[1:] == (64, 64)
    assert sorted(p.digit for canvas in placements for p in canvas) == sorted(list(range(6)) * 2)
    for canvas in placements:
        for i, a in enumerate(canvas):
            for b in canvas[i + 1:]:
                assert (a.top + a.side <= b.top or b.top + b.side <= a.top
                        or a.left + a.side <= b.left or b.left + b.side <= a.left)


# --- joint transforms ------------------------------------------------------------------------------------------

def _halves(height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left half bright and class 1, right half dark and class 2."""
    mask = torch.full((height, width), 2, dtype=torch.int64)
    mask[:, : width // 2] = 1
    return (mask == 1).float()[None], mask


def test_eval_transform_fits_inside_and_pads_with_ignore():
    image, mask = _halves(30, 60)
    out_image, out_mask = SegmentationTransform((1, 40, 40), [0.0], [1.0])(image, mask)
    assert out_image.shape == (1, 40, 40) and out_mask.shape == (40, 40)
    assert fit_inside_size(30, 60, (40, 40)) == (20, 40)
    assert set(out_mask[:20].unique().tolist()) == {1, 2}  # nearest neighbour: no blended classes
    assert bool((out_mask[20:] == 255).all()) and bool((out_image[:, 20:] == 0).all())


@pytest.mark.parametrize("augment", [Augment(random_resized_scale=(20, 90), hflip=True),
                                     Augment(random_crop_padding=8, hflip=True)])
def test_training_transforms_move_image_and_mask_together(augment):
    transform = SegmentationTransform((1, 48, 48), [0.0], [1.0], augment)
    image, mask = _halves(48, 64)
    torch.manual_seed(0)
    flipped_seen = False
    for _ in range(20):
        out_image, out_mask = transform(image, mask)
        assert out_image.shape == (1, 48, 48) and out_mask.shape == (48, 48)
        assert set(out_mask.unique().tolist()) <= {1, 2, 255}
        # Away from the class boundary (where bilinear blends), the image agrees with the mask everywhere.
        interior = (out_mask[:, 1:-1] == out_mask[:, :-2]) & (out_mask[:, 1:-1] == out_mask[:, 2:])
        pixels, labels = out_image[0, :, 1:-1][interior], out_mask[:, 1:-1][interior]
        assert bool((pixels[labels == 1] > 0.99).all()) and bool((pixels[labels != 1] < 0.01).all())
        columns = torch.nonzero(out_mask == 1)[:, 1], torch.nonzero(out_mask == 2)[:, 1]
        if columns[0].numel() and columns[1].numel() and columns[0].float().mean() > columns[1].float().mean():
            flipped_seen = True
    assert flipped_seen


def test_pca_lighting_is_refused_for_segmentation():
    with pytest.raises(DataError, match="pca_lighting"):
        SegmentationTransform((1, 8, 8), [0.0], [1.0], Augment(pca_lighting=0.1))


# --- folders ------------------------------------------------------------------------------------------------------

def _write_mask(path: Path, mask: np.ndarray, palette: bool = True) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(mask.astype(np.uint8), mode="P" if palette else "L")
    if palette:
        image.putpalette(voc_palette().flatten().tolist())
    image.save(path)


def _write_image(path: Path, height: int, width: int, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (height, width, 3)).astype(np.uint8)).save(path)


def _pair_mask(seed: int, height: int = 12, width: int = 16, classes: int = 3) -> np.ndarray:
    mask = np.random.default_rng(seed).integers(0, classes, (height, width))
    mask[0] = 255  # an unlabelled row, as VOC's object outlines
    return mask


def make_voc(root: Path, train: int = 4, val: int = 2) -> Path:
    ids = [f"2007_{i:06d}" for i in range(train + val)]
    for i, name in enumerate(ids):
        _write_image(root / "JPEGImages" / f"{name}.jpg", 12, 16, i)
        _write_mask(root / "SegmentationClass" / f"{name}.png", _pair_mask(i, classes=21))
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    (root / "ImageSets" / "Segmentation" / "train.txt").write_text("\n".join(ids[:train]) + "\n")
    (root / "ImageSets" / "Segmentation" / "val.txt").write_text("\n".join(ids[train:]) + "\n")
    return root


def make_pairs(root: Path, count: int = 10, classes: str | None = "sky\ngrass\nroad\n") -> Path:
    for i in range(count):
        _write_image(root / "images" / f"img{i}.png", 12, 16, i)
        _write_mask(root / "masks" / f"img{i}.png", _pair_mask(i), palette=False)
    if classes is not None:
        (root / "classes.txt").write_text(classes)
    return root


def test_voc_folder_reads_palette_indices_and_its_split_files(tmp_path):
    make_voc(tmp_path / "VOCdevkit" / "VOC2012")
    bundle = load_data(str(tmp_path), (3, 12, 16))
    assert bundle.kind == "voc" and len(bundle.classes) == 21 and bundle.classes[15] == "person"
    assert (len(bundle.train), len(bundle.val), bundle.test) == (4, 2, None)
    image, mask = bundle.val[1]
    assert image.shape == (3, 12, 16)
    assert mask.tolist() == _pair_mask(5, classes=21).tolist()  # the palette indices, 255 kept


def test_image_mask_folders_hold_out_a_seeded_val_split_and_read_classes_txt(tmp_path):
    root = make_pairs(tmp_path / "pairs")
    bundle = load_data(str(root), (1, 12, 16), val_split=0.2, seed=1)
    assert bundle.kind == "image-mask-folders" and bundle.classes == ["sky", "grass", "road"]
    assert (len(bundle.train), len(bundle.val)) == (8, 2)
    assert not set(bundle.train.indices) & set(bundle.val.indices)
    image, mask = bundle.train[0]
    assert image.shape == (1, 12, 16) and mask.tolist() == _pair_mask(int(bundle.train.indices[0])).tolist()


def test_image_mask_folders_without_classes_txt_take_classes_from_the_masks(tmp_path):
    bundle = load_data(str(make_pairs(tmp_path / "pairs", classes=None)), (1, 12, 16))
    assert bundle.classes == ["0", "1", "2"]


def test_mask_value_beyond_the_classes_names_the_file(tmp_path):
    root = make_pairs(tmp_path / "pairs", classes="sky\ngrass\n")
    with pytest.raises(DataError, match=r"masks/img\d\.png.* has value 2 but the data set has 2 classes"):
        load_data(str(root), (1, 12, 16))


def test_image_and_mask_of_different_sizes_name_both_files(tmp_path):
    root = make_pairs(tmp_path / "pairs")
    _write_mask(root / "masks" / "img3.png", _pair_mask(3, height=10), palette=False)
    with pytest.raises(DataError, match=r"img3\.png' is 12x16 but its mask .*img3\.png' is 10x16"):
        load_data(str(root), (1, 12, 16))


def test_missing_mask_names_the_image_and_the_expected_mask(tmp_path):
    root = make_pairs(tmp_path / "pairs")
    (root / "masks" / "img4.png").unlink()
    with pytest.raises(DataNotFoundError, match=r"no mask for image .*img4\.png.*expected .*masks/img4\.png"):
        load_data(str(root), (1, 12, 16))


def test_colour_mask_is_refused_with_the_reason(tmp_path):
    root = make_pairs(tmp_path / "pairs")
    Image.fromarray(np.zeros((12, 16, 3), dtype=np.uint8)).save(root / "masks" / "img2.png")
    with pytest.raises(DataError, match=r"img2\.png' is a RGB image"):
        load_data(str(root), (1, 12, 16))


def test_corrupt_files_fail_naming_them_or_are_skipped(tmp_path):
    root = make_pairs(tmp_path / "pairs")
    (root / "images" / "img1.png").write_bytes(b"not a png")
    with pytest.raises(CorruptImageError, match=r"img1\.png"):
        load_data(str(root), (1, 12, 16))
    bundle = load_data(str(root), (1, 12, 16), skip_bad=True)
    assert bundle.skipped == [str(root / "images" / "img1.png")]
    assert len(bundle.train) + len(bundle.val) == 9
