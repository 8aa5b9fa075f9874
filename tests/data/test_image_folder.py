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


# --- a file whose header reads but whose pixels do not: found when a batch decodes it ---------------------------

def _cut_jpeg(path, size=(64, 48)):
    """A JPEG cut in the middle of its compressed data: Pillow reads its header (format, size, mode) fine."""
    pixels = np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, quality=90)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with Image.open(path) as img:
        assert (img.format, img.size, img.mode) == ("JPEG", size, "RGB")
    return str(path)


def _cut_tree(image_tree):
    root = image_tree({"a": 3, "b": 3})
    return root, _cut_jpeg(root / "b" / "cut.jpg")


def test_a_jpeg_cut_after_its_header_loads_and_fails_when_decoded_naming_it(image_tree):
    root, cut = _cut_tree(image_tree)
    # With the normalisation given nothing is decoded while loading: only headers are read.
    bundle = load_data(str(root), (3, 8, 8), val_split=0, **RGB_IDENTITY)
    position = bundle.train.source.paths.index(cut)
    assert bundle.train[position + 1][1] == 1  # the next file, of the same class, reads fine
    with pytest.raises(CorruptImageError, match=r"cut\.jpg.*skip-bad") as caught:
        bundle.train[position]
    assert caught.value.path == cut and bundle.unreadable() == []


def test_skip_bad_gives_the_next_readable_image_in_its_place_and_names_the_file(image_tree, monkeypatch):
    root, cut = _cut_tree(image_tree)
    bundle = load_data(str(root), (3, 8, 8), val_split=0, skip_bad=True, **RGB_IDENTITY)
    files = bundle.train.source
    position = files.paths.index(cut)
    image, label = bundle.train[position]
    expected, _ = bundle.train[(position + 1) % len(bundle.train)]
    assert torch.equal(image, expected) and bundle.unreadable() == [cut]
    # Marked once, never decoded again.
    monkeypatch.setattr(files, "load", lambda index, transform: pytest.fail(f"decoded {files.paths[index]}")
                        if index == position else expected)
    assert torch.equal(bundle.train[position][0], expected)


@pytest.mark.parametrize("skip_bad", [False, True])
def test_a_split_iterates_once_over_its_images_and_an_index_past_the_end_is_an_index_error(image_tree, skip_bad):
    # `for image, label in split` uses the sequence protocol; the skip_bad wrap-around once made it endless.
    root = image_tree({"cat": 3, "dog": 2})
    bundle = load_data(str(root), (3, 8, 8), val_split=0, skip_bad=skip_bad, **RGB_IDENTITY)
    items = list(bundle.train)
    assert len(items) == len(bundle.train) > 0
    assert torch.equal(items[-1][0], bundle.train[-1][0])
    with pytest.raises(IndexError):
        bundle.train[len(bundle.train)]


@pytest.mark.parametrize("skip_bad", [False, True])
def test_dataloader_workers_name_the_file_in_the_main_process_and_share_the_marks(image_tree, skip_bad):
    root, cut = _cut_tree(image_tree)
    bundle = load_data(str(root), (3, 8, 8), val_split=0, skip_bad=skip_bad, **RGB_IDENTITY)
    loader = torch.utils.data.DataLoader(bundle.train, batch_size=3, num_workers=1)
    if not skip_bad:
        with pytest.raises(CorruptImageError, match=r"cannot read image .*cut\.jpg': ") as caught:
            list(loader)
        assert caught.value.path == cut  # rebuilt from the worker's message, not a RuntimeError
        return
    assert sum(len(images) for images, _ in loader) == 7  # every batch full: a readable image stood in
    assert bundle.unreadable() == [cut]  # marked by the worker, seen here


def test_statistics_come_from_an_evenly_spread_sample_recorded_in_the_description(image_tree, monkeypatch):
    from convzoo.data import datasets

    root = image_tree({"a": 6, "b": 6})
    cut = _cut_jpeg(root / "b" / "img2_cut.jpg")  # 10th of the 13 sorted files: not among those sampled
    monkeypatch.setattr(datasets, "STATISTICS_FILES", 3)
    bundle = load_data(str(root), (3, 8, 8), val_split=0)
    assert bundle.describe()["statistics"] == {"measured_on": "an evenly spread sample of the training split",
                                               "images": 3, "of": 13}
    sampled = [bundle.train.source.paths[i] for i in datasets.evenly_spread(np.arange(13), 3)]
    assert [p.split("tree0/")[1] for p in sampled] == ["a/img0.png", "b/img0.png", "b/img5.png"]
    assert cut not in sampled
    # Red is 0 in class a's images and 40 in class b's: the mean of the three sampled.
    assert bundle.mean[0] * 255 == pytest.approx(80 / 3)


def test_many_headers_are_read_by_several_processes_with_the_same_result(image_tree, monkeypatch):
    from convzoo.data import datasets

    root = image_tree({"a": 4, "b": 4})
    broken = _corrupt(root)
    serial = datasets.read_headers(sorted(str(p) for p in root.rglob("*.png")))
    monkeypatch.setattr(datasets, "_PARALLEL_HEADERS", 1)
    monkeypatch.setattr(datasets, "_HEADER_CHUNK", 3)
    monkeypatch.setattr(datasets.os, "sched_getaffinity", lambda pid: {0, 1})
    parallel = datasets.read_headers(sorted(str(p) for p in root.rglob("*.png")))
    assert parallel == serial and parallel.count((10, 12)) == 8 and isinstance(parallel[0], str)  # broken.png first
    with pytest.raises(CorruptImageError, match="broken.png"):
        load_data(str(root), (3, 8, 8))
    assert load_data(str(root), (3, 8, 8), skip_bad=True).skipped == [broken]
