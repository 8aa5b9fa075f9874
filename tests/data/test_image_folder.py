import numpy as np
import pytest
import torch
from PIL import Image

from convzoo.data import load_data, load_image
from convzoo.errors import CorruptImageError, DataError, DataNotFoundError

RGB_IDENTITY = {"mean": [0.0] * 3, "std": [1.0] * 3}


def _value(image: torch.Tensor) -> int:
    return round(float(image[0].mean()) * 255)


def test_class_folders_at_the_root_split_into_train_and_val(image_tree):
    root = image_tree({"cat": 10, "dog": 10, "emu": 5})
    bundle = load_data(str(root), (3, 16, 16), val_split=0.2, **RGB_IDENTITY)
    assert bundle.kind == "imagefolder" and bundle.classes == ["cat", "dog", "emu"] and bundle.test is None
    assert np.bincount(bundle.val.labels).tolist() == [2, 2, 1]
    assert len(bundle.train) == 20
    for dataset in (bundle.train, bundle.val):
        for item in range(len(dataset)):
            image, label = dataset[item]
            assert image.shape == (3, 16, 16) and _value(image) == 40 * label


def test_train_val_test_folders_are_used_as_given(image_tree):
    root = image_tree({"train/a": 3, "train/b": 4, "val/a": 1, "val/b": 2, "test/a": 2, "test/b": 1})
    bundle = load_data(str(root), (3, 8, 8), val_split=0.5)
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (7, 3, 3)
    assert bundle.val.labels.tolist() == [0, 1, 1]


def test_statistics_come_from_the_training_images(image_tree):
    root = image_tree({"train/a": 3, "train/b": 1, "val/a": 1, "val/b": 1})
    bundle = load_data(str(root), (3, 8, 8))
    # Three images (0, 0, 255) and one (40, 0, 215): per-channel mean and population std of those pixels.
    red = np.array([0, 0, 0, 40]) / 255
    blue = np.array([255, 255, 255, 215]) / 255
    assert bundle.mean == pytest.approx((red.mean(), 0.0, blue.mean()))
    assert bundle.std[0] == pytest.approx(red.std()) and bundle.std[2] == pytest.approx(blue.std())
    assert bundle.std[1] == pytest.approx(1e-6)  # a constant channel is not divided by zero


def test_grey_files_are_widened_and_colour_files_greyed(image_tree):
    grey = load_data(str(image_tree({"a": 2, "b": 2}, mode="L")), (3, 8, 8), **RGB_IDENTITY)
    image, label = grey.train[0]
    assert torch.equal(image[0], image[1]) and torch.equal(image[1], image[2])
    colour = load_data(str(image_tree({"c": 2, "d": 2})), (1, 8, 8), mean=[0.0], std=[1.0])
    image, label = colour.train[-1]
    assert label == 1 and round(float(image.mean()) * 255) == round(0.299 * 40 + 0.114 * 215)


def test_nested_files_count_and_other_files_are_ignored(image_tree):
    root = image_tree({"a": 2, "b": 2})
    (root / "a" / "sub").mkdir()
    Image.new("RGB", (5, 5)).save(root / "a" / "sub" / "nested.JPG")
    (root / "a" / "notes.txt").write_text("not an image")
    (root / "b" / ".hidden.png").write_bytes(b"editor swap file")
    bundle = load_data(str(root), (3, 8, 8), val_split=0)
    assert np.bincount(bundle.train.labels).tolist() == [3, 2] and len(bundle.val) == 0


def test_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(DataNotFoundError, match="does not exist"):
        load_data(str(tmp_path / "nowhere"), (3, 8, 8))
    (tmp_path / "file.png").write_bytes(b"")
    with pytest.raises(DataNotFoundError, match="is a file"):
        load_data(str(tmp_path / "file.png"), (3, 8, 8))


def test_folder_without_a_data_set_says_what_was_expected(tmp_path):
    with pytest.raises(DataNotFoundError, match="one folder per class"):
        load_data(str(tmp_path), (3, 8, 8))


def test_empty_class_folder_is_named(image_tree):
    root = image_tree({"a": 2, "b": 2})
    (root / "empty").mkdir()
    (root / "empty" / "readme.txt").write_text("no images here")
    with pytest.raises(DataError, match=r"class folder .*empty.* holds no images"):
        load_data(str(root), (3, 8, 8))


def test_val_classes_must_match_train(image_tree):
    root = image_tree({"train/a": 2, "train/b": 2, "val/a": 1, "val/c": 1})
    with pytest.raises(DataError, match="classes of .*val.* differ"):
        load_data(str(root), (3, 8, 8))


def test_val_without_train_is_refused(image_tree):
    root = image_tree({"val/a": 1})
    with pytest.raises(DataError, match="no train/ folder"):
        load_data(str(root), (3, 8, 8))


def _corrupt(root):
    (root / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a PNG body")
    return str(root / "a" / "broken.png")


def test_corrupt_image_is_named_before_training(image_tree):
    root = image_tree({"a": 3, "b": 3})
    broken = _corrupt(root)
    with pytest.raises(CorruptImageError, match="broken.png.*skip-bad") as caught:
        load_data(str(root), (3, 8, 8))
    assert caught.value.path == broken


def test_skip_bad_skips_and_counts(image_tree):
    root = image_tree({"a": 3, "b": 3})
    broken = _corrupt(root)
    (root / "b" / "empty.jpg").write_bytes(b"")
    bundle = load_data(str(root), (3, 8, 8), val_split=0, skip_bad=True)
    assert sorted(bundle.skipped) == sorted([broken, str(root / "b" / "empty.jpg")])
    assert len(bundle.train) == 6 and bundle.describe()["skipped"] == bundle.skipped


def test_skip_bad_that_empties_a_class_is_an_error(image_tree):
    root = image_tree({"a": 1, "b": 2})
    (root / "a" / "img0.png").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"\['a'\] .* no readable training images"):
        load_data(str(root), (3, 8, 8), skip_bad=True)


@pytest.mark.parametrize("size", [(16, 12), (900, 700)])  # the large one decodes in JPEG draft mode
def test_truncated_jpeg_is_caught(image_tree, size):
    root = image_tree({"a": 2, "b": 2})
    path = root / "b" / "cut.jpg"
    pixels = np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, quality=90)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CorruptImageError, match="cut.jpg"):
        load_data(str(root), (3, 8, 8))


def test_large_photos_decode_at_reduced_scale_but_still_cover_the_input(tmp_path):
    path = tmp_path / "photo.jpg"
    Image.new("RGB", (1600, 1200), (200, 100, 50)).save(path)
    image = load_image(path, (3, 224, 224), [0.0] * 3, [1.0] * 3)
    assert image.shape == (3, 224, 224)
    assert [round(float(c.mean()) * 255) for c in image] == pytest.approx([200, 100, 50], abs=2)


def test_load_image_matches_the_eval_split(image_tree):
    root = image_tree({"a": 2, "b": 2})
    bundle = load_data(str(root), (3, 8, 8), val_split=0, border=1)
    path = bundle.train.source.paths[0]
    described = bundle.describe()
    image = load_image(path, described["input_size"], described["mean"], described["std"],
                       border=described["border"])
    assert torch.equal(image, bundle.train[0][0])
    assert load_image(path, (3, 8, 8), bundle.mean, bundle.std, crops=10).shape == (10, 3, 8, 8)
    with pytest.raises(DataNotFoundError):
        load_image(root / "missing.png", (3, 8, 8), bundle.mean, bundle.std)


def test_multi_crop_split_stacks_ten_crops(image_tree):
    root = image_tree({"train/a": 2, "train/b": 2, "test/a": 1, "test/b": 1})
    bundle = load_data(str(root), (3, 8, 8))
    crops, label = bundle.multi_crop("test")[1]
    assert crops.shape == (10, 3, 8, 8) and label == 1
    assert bundle.multi_crop("test", crops=1)[1][0].shape == (3, 8, 8)
    without_test = load_data(str(image_tree({"c": 2, "d": 2})), (3, 8, 8))
    with pytest.raises(DataError, match="no 'test' split"):
        without_test.multi_crop("test")
