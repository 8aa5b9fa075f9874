import json
from importlib import resources

import numpy as np
import pytest
import torch

from convzoo.data import load_data, stratified_split
from convzoo.errors import DataError


def _split_labels(dataset):
    return np.bincount(dataset.labels, minlength=10)


def test_embedded_digits_equal_scikit_learns():
    # scikit-learn is a test dependency only: the package ships its own copy (digits.npz), checked here.
    from sklearn.datasets import load_digits

    reference = load_digits()
    with resources.files("convzoo.data").joinpath("digits.npz").open("rb") as f, np.load(f) as stored:
        assert stored["images"].shape == (1797, 8, 8)
        np.testing.assert_array_equal(stored["images"], reference.images)
        np.testing.assert_array_equal(stored["labels"], reference.target)


def test_splits_cover_every_image_once_and_are_stratified():
    bundle = load_data("digits", (1, 8, 8))
    sizes = (len(bundle.train), len(bundle.val), len(bundle.test))
    assert sum(sizes) == 1797
    total = _split_labels(bundle.train) + _split_labels(bundle.val) + _split_labels(bundle.test)
    # Each split holds every class in the same proportion as the whole set, to within one image.
    for split, fraction in ((bundle.test, 1 / 5), (bundle.val, 0.1 * 4 / 5)):
        assert np.all(np.abs(_split_labels(split) - total * fraction) <= 1)
    # Train and val are disjoint selections of the same images; test is a separate set of images.
    assert bundle.train.source is bundle.val.source and bundle.test.source is not bundle.train.source
    assert not set(bundle.train.indices) & set(bundle.val.indices)


def test_test_split_is_fixed_and_val_split_follows_the_seed():
    a, b, c = (load_data("digits", (1, 8, 8), seed=s) for s in (0, 0, 1))
    assert torch.equal(a.test.source.images, c.test.source.images)
    np.testing.assert_array_equal(a.val.indices, b.val.indices)
    assert not np.array_equal(a.val.indices, c.val.indices)
    assert len(a.val) == len(c.val)


def test_items_are_normalised_network_inputs():
    bundle = load_data("digits", (1, 32, 32))
    image, label = bundle.train[0]
    assert image.shape == (1, 32, 32) and image.dtype == torch.float32 and isinstance(label, int)
    # Normalised with the training split's statistics as the network sees it: mean 0, std 1 over train.
    train = torch.stack([bundle.train[i][0] for i in range(len(bundle.train))])
    assert abs(train.mean().item()) < 1e-4 and abs(train.std().item() - 1) < 1e-3


def test_grey_digits_widen_to_three_identical_channels():
    image, _ = load_data("digits", (3, 16, 16)).val[5]
    assert image.shape == (3, 16, 16)
    assert torch.equal(image[0], image[1]) and torch.equal(image[1], image[2])


def test_describe_is_json_and_enough_to_reload():
    bundle = load_data("digits", (1, 32, 32), val_split=0.2, seed=3)
    described = json.loads(json.dumps(bundle.describe()))
    assert described["classes"] == [str(d) for d in range(10)]
    assert described["sizes"] == {"train": len(bundle.train), "val": len(bundle.val), "test": len(bundle.test)}
    again = load_data(described["source"], described["input_size"], described["val_split"], described["seed"])
    np.testing.assert_array_equal(again.val.indices, bundle.val.indices)
    assert again.mean == bundle.mean and again.std == bundle.std


def test_given_normalisation_replaces_the_measured_one():
    bundle = load_data("digits", (1, 8, 8), mean=[0.5], std=[0.25])
    raw = bundle.test.source.images[int(bundle.test.indices[0])].float() / 16
    assert torch.allclose(bundle.test[0][0], (raw - 0.5) / 0.25)
    with pytest.raises(DataError, match="both mean and std"):
        load_data("digits", (1, 8, 8), mean=[0.5])
    with pytest.raises(DataError, match="need 3 values"):
        load_data("digits", (3, 8, 8), mean=[0.5], std=[0.2])


def test_check_classes_refuses_other_classes():
    bundle = load_data("digits", (1, 8, 8))
    bundle.check_classes([str(d) for d in range(10)])
    with pytest.raises(DataError, match="unexpected"):
        bundle.check_classes([str(d) for d in range(9)])
    with pytest.raises(DataError, match="another order"):
        bundle.check_classes([str(d) for d in reversed(range(10))])


@pytest.mark.parametrize("val_split", [-0.1, 1.0])
def test_val_split_must_be_a_fraction(val_split):
    with pytest.raises(DataError, match="val_split"):
        load_data("digits", (1, 8, 8), val_split=val_split)


@pytest.mark.parametrize("input_size", [(32, 32), (1, 0, 32), (1, 32.0, 32)])
def test_input_size_must_be_channels_height_width(input_size):
    with pytest.raises(DataError, match="input_size"):
        load_data("digits", input_size)


def test_stratified_split_keeps_one_training_image_per_class():
    labels = np.array([0, 0, 0, 0, 1, 2, 2])
    kept, held = stratified_split(labels, 0.5, seed=0)
    assert sorted(np.concatenate([kept, held])) == list(range(7))
    assert np.bincount(labels[held], minlength=3).tolist() == [2, 0, 1]
