"""RandAugment, TrivialAugment and random erasing on tensors: each operation does what its name says."""
from __future__ import annotations

import pytest
import torch

from convzoo.data import auto_augment as aa
from convzoo.data.transforms import Augment, TrainTransform
from convzoo.errors import DataError


def _ramp(height=8, width=8, channels=1):
    return torch.linspace(0, 1, height * width).view(1, height, width).repeat(channels, 1, 1)


def test_rotating_a_quarter_turn_is_rot90_and_translation_moves_by_the_fraction():
    torch.manual_seed(0)
    image = torch.rand(1, 9, 9)
    # 90 degrees about the centre of an odd-sized image maps pixels onto pixels exactly
    assert torch.allclose(aa.rotate(image, 90.0), torch.rot90(image, k=1, dims=(1, 2)), atol=1e-5) or \
        torch.allclose(aa.rotate(image, 90.0), torch.rot90(image, k=-1, dims=(1, 2)), atol=1e-5)
    dot = torch.zeros(1, 8, 8)
    dot[0, 2, 3] = 1.0
    moved = aa.translate_x(dot, 0.25)  # 2 pixels of 8, to the right
    assert moved[0, 2, 5] == pytest.approx(1.0) and moved.sum() == pytest.approx(1.0)
    moved = aa.translate_y(dot, -0.25)
    assert moved[0, 0, 3] == pytest.approx(1.0)
    assert torch.allclose(aa.shear_x(image, 0.0), image, atol=1e-6)


def test_colour_operations_keep_the_range_and_do_what_they_say():
    image = _ramp(channels=3)
    assert torch.equal(aa.solarize(image, 0.5), torch.where(image >= 0.5, 1 - image, image))
    assert aa.posterize(image, 1).unique().numel() == 2
    assert aa.brightness(image, -1.0).abs().max() == 0  # factor 0: black
    stretched = aa.autocontrast(image * 0.5 + 0.2)
    assert stretched.min() == pytest.approx(0) and stretched.max() == pytest.approx(1)
    skewed = torch.rand(1, 32, 32, generator=torch.Generator().manual_seed(1)) ** 2
    equalised = aa.equalize(skewed)
    assert equalised.mean() == pytest.approx(0.5, abs=0.05) and skewed.mean() < 0.36
    grey = _ramp()
    assert torch.equal(aa.color(grey, 0.9), grey)  # a grey image has no saturation to change
    for name, (operation, rand_magnitudes, wide_magnitudes, _) in aa.OPERATIONS.items():
        for magnitude in (rand_magnitudes[-1], wide_magnitudes[-1]):
            out = operation(image, magnitude)
            assert out.shape == image.shape and out.min() >= 0 and out.max() <= 1 + 1e-6, name


def test_augmentation_repeats_under_the_same_seed_and_differs_between_images():
    image = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(2))
    torch.manual_seed(5)
    first = [aa.rand_augment(image), aa.trivial_augment(image)]
    torch.manual_seed(5)
    again = [aa.rand_augment(image), aa.trivial_augment(image)]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    torch.manual_seed(6)
    outputs = [aa.trivial_augment(image) for _ in range(8)]
    assert sum(not torch.equal(out, image) for out in outputs) >= 4


def test_random_erasing_erases_one_rectangle_of_the_allowed_area():
    torch.manual_seed(0)
    image = torch.ones(1, 20, 20)
    assert torch.equal(aa.random_erasing(image, p=0.0), image)
    for _ in range(10):
        erased = aa.random_erasing(image, p=1.0)
        zero = (erased == 0).nonzero()
        rows, cols = zero[:, 1], zero[:, 2]
        area = len(zero) / 400
        assert 0.015 <= area <= 0.36
        # one rectangle: the erased pixels fill their bounding box
        assert len(zero) == (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)


def test_train_transform_applies_them_and_refuses_unknown_names():
    torch.manual_seed(0)
    transform = TrainTransform((1, 12, 12), [0.5], [0.25], Augment(auto_augment="randaugment", random_erasing=1.0))
    out = transform(_ramp(12, 12))
    assert out.shape == (1, 12, 12) and (out == 0).any()  # erased after normalisation: the mean colour
    with pytest.raises(DataError, match="unknown auto_augment 'autoaugment'"):
        Augment(auto_augment="autoaugment")
    with pytest.raises(DataError, match="random_erasing is a probability"):
        Augment(random_erasing=1.5)
