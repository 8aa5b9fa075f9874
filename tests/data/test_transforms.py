import numpy as np
import pytest
import torch
from PIL import Image

from convzoo.data import Augment, TrainTransform, eval_transform, ten_crop
from convzoo.data.transforms import resize_shorter_side, resize_to_cover, to_channels
from convzoo.errors import DataError

ZERO, ONE = [0.0], [1.0]


def _ramp(height: int, width: int, channels: int = 1) -> torch.Tensor:
    """An image whose every pixel is distinct, so crops and flips can be located exactly."""
    return torch.arange(channels * height * width, dtype=torch.float32).view(channels, height, width)


def test_grey_widens_by_repetition_and_colour_narrows_like_pillow():
    grey = torch.rand(1, 4, 5)
    assert torch.equal(to_channels(grey, 3), grey.expand(3, 4, 5))
    rgb = np.random.default_rng(0).integers(0, 256, (6, 7, 3), dtype=np.uint8)
    pillow_grey = np.asarray(Image.fromarray(rgb).convert("L"), dtype=np.float32)
    ours = to_channels(torch.from_numpy(rgb).permute(2, 0, 1).float(), 1)[0].numpy()
    assert np.abs(ours - pillow_grey).max() <= 1  # Pillow rounds to integers
    # Other channel counts get grey repeated (a network built with in_chans=2 still gets an input).
    assert to_channels(torch.rand(2, 3, 4, 4), 2).shape == (2, 2, 4, 4)


def test_resizes_keep_the_aspect_ratio():
    image = torch.rand(3, 30, 60)
    assert resize_shorter_side(image, 10).shape == (3, 10, 20)
    assert resize_to_cover(image, (20, 20)).shape == (3, 20, 40)
    assert resize_to_cover(image, (10, 40)).shape == (3, 20, 40)


def test_eval_transform_resizes_centre_crops_and_normalises():
    image = torch.full((1, 8, 16), 0.75)
    out = eval_transform((1, 4, 4), [0.5], [0.25])(image)
    assert out.shape == (1, 4, 4) and torch.allclose(out, torch.ones(1, 4, 4))
    # Centre crop of a wide image: the middle columns.
    ramp = _ramp(4, 8)
    assert torch.equal(eval_transform((1, 4, 4), ZERO, ONE)(ramp), ramp[:, :, 2:6])


def test_ten_crop_is_four_corners_centre_and_their_mirrors():
    image = _ramp(5, 6)
    crops = ten_crop(image, (3, 4))
    assert crops.shape == (10, 1, 3, 4)
    expected = [image[:, :3, :4], image[:, :3, 2:], image[:, 2:, :4], image[:, 2:, 2:], image[:, 1:4, 1:5]]
    for i, crop in enumerate(expected):
        assert torch.equal(crops[i], crop)
        assert torch.equal(crops[i + 5], crop.flip(-1))


def test_ten_crop_transform_crops_from_a_larger_image():
    out = eval_transform((1, 28, 28), ZERO, ONE, crops=10)(torch.rand(1, 8, 8))
    assert out.shape == (10, 1, 28, 28)
    # Resized to 256/224 of the input first, so the corner crops differ from the centre crop.
    assert not torch.equal(out[0], out[4])
    with pytest.raises(DataError, match="crops must be 1 or 10"):
        eval_transform((1, 8, 8), ZERO, ONE, crops=5)


def test_border_places_the_image_inside_black_pixels():
    out = eval_transform((1, 32, 32), ZERO, ONE, border=2)(torch.ones(1, 8, 8))
    assert out.shape == (1, 32, 32)
    assert out[:, 2:30, 2:30].eq(1).all() and out.sum() == 28 * 28
    with pytest.raises(DataError, match="border"):
        eval_transform((1, 8, 8), ZERO, ONE, border=4)


def _shifted(image: torch.Tensor, dy: int, dx: int, pad: int) -> torch.Tensor:
    height, width = image.shape[-2:]
    padded = torch.nn.functional.pad(image, (pad,) * 4)
    return padded[:, pad + dy:pad + dy + height, pad + dx:pad + dx + width]


def test_random_crop_padding_translates_by_at_most_the_padding():
    torch.manual_seed(0)
    transform = TrainTransform((1, 6, 6), ZERO, ONE, Augment(random_crop_padding=2))
    image = _ramp(6, 6) + 1
    offsets = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)]
    drawn = set()
    for _ in range(100):
        out = transform(image)
        matches = [offset for offset in offsets if torch.equal(out, _shifted(image, *offset, pad=2))]
        assert len(matches) == 1  # every output is the image moved by at most 2 pixels, zeros filling in
        drawn.add(matches[0])
    assert len(drawn) > 15  # and the moves are drawn from all 25


def test_same_seed_same_augmentation():
    transform = TrainTransform((3, 8, 8), ZERO * 3, ONE * 3,
                               Augment(random_crop_padding=1, random_resized_scale=(8, 12), hflip=True))
    image = torch.rand(3, 10, 14)
    torch.manual_seed(5)
    first = [transform(image) for _ in range(5)]
    torch.manual_seed(5)
    assert all(torch.equal(a, transform(image)) for a in first)


def test_hflip_mirrors_about_half_the_time():
    torch.manual_seed(0)
    transform = TrainTransform((1, 4, 4), ZERO, ONE, Augment(hflip=True))
    image = _ramp(4, 4)
    flipped = sum(torch.equal(transform(image), image.flip(-1)) for _ in range(400))
    assert 150 < flipped < 250


def test_scale_augmentation_crops_from_a_randomly_rescaled_image():
    torch.manual_seed(0)
    transform = TrainTransform((1, 8, 8), ZERO, ONE, Augment(random_resized_scale=(8, 16)))
    image = torch.linspace(0, 1, 32).repeat(32, 1)[None]  # brightness grows left to right
    widths = set()
    for _ in range(50):
        out = transform(image)
        assert out.shape == (1, 8, 8)
        widths.add(round(float(out[0, 0, -1] - out[0, 0, 0]), 3))
    # The brightness span of a crop shrinks as the image is scaled up: several scales were drawn.
    assert len(widths) > 3 and max(widths) <= 1


def test_scale_range_must_hold_a_crop():
    with pytest.raises(DataError, match="too small"):
        TrainTransform((3, 224, 224), ZERO * 3, ONE * 3, Augment(random_resized_scale=(200, 300)))
    with pytest.raises(DataError, match="random_resized_scale"):
        Augment(random_resized_scale=(300, 200))


def test_augment_from_json_lists_equals_the_original():
    assert Augment(random_resized_scale=[256, 512]) == Augment(random_resized_scale=(256, 512))


def test_pca_lighting_shifts_every_pixel_along_the_principal_components():
    torch.manual_seed(0)
    # Only the first component has variance: every shift must lie along it, and differ between images.
    eigenvalues = torch.tensor([0.0, 0.0, 2.0])
    eigenvectors = torch.eye(3)[:, [1, 2, 0]]  # columns: green, blue, red
    transform = TrainTransform((3, 4, 4), ZERO * 3, ONE * 3, Augment(pca_lighting=0.1), eigenvalues, eigenvectors)
    image = torch.rand(3, 4, 4)
    shifts = []
    for _ in range(200):
        shift = transform(image) - image
        assert torch.allclose(shift, shift[:, :1, :1].expand_as(shift))  # the same for every pixel
        assert shift[1:].abs().max() == 0
        shifts.append(shift[0, 0, 0].item())
    assert abs(np.std(shifts) - 0.1 * 2.0) < 0.03  # alpha ~ N(0, 0.1^2) times eigenvalue 2


def test_random_resized_crop_takes_a_random_area_and_aspect_and_resizes_it():
    from convzoo.data.transforms import random_resized_crop_box

    torch.manual_seed(0)
    boxes = [random_resized_crop_box(300, 400, (0.08, 1.0)) for _ in range(300)]
    for top, left, h, w in boxes:
        assert 0 <= top <= 300 - h and 0 <= left <= 400 - w
        assert 0.08 * 0.95 <= h * w / (300 * 400) <= 1 and 3 / 4 * 0.95 <= w / h <= 4 / 3 * 1.05
    assert len(set(boxes)) == 300
    # An image far outside the aspect range: no draw fits, so the centre crop at the nearest ratio (4/3).
    torch.manual_seed(0)
    assert random_resized_crop_box(10, 1000, (0.9, 1.0)) == (0, 493, 10, 13)
    transform = TrainTransform((3, 8, 8), ZERO * 3, ONE * 3, Augment(random_resized_crop=(0.5, 1.0)))
    assert transform(torch.rand(3, 30, 40)).shape == (3, 8, 8)
    with pytest.raises(DataError, match="random_resized_crop"):
        Augment(random_resized_crop=(0.5, 1.5))


def test_files_decode_to_the_same_working_image_as_tensors_and_jpegs_at_reduced_scale(tmp_path):
    from convzoo.data.datasets import load_file, open_image
    from convzoo.data.transforms import decode_region, fit_geometry

    rng = np.random.default_rng(0)
    pixels = (np.linspace(0, 255, 60)[None, :, None] + rng.integers(0, 20, (45, 60, 3))).clip(0, 255)
    Image.fromarray(pixels.astype(np.uint8)).save(tmp_path / "ramp.png")
    transform = TrainTransform((3, 16, 16), ZERO * 3, ONE * 3, Augment(random_resized_crop=(0.3, 1.0), hflip=True))
    as_tensor = torch.from_numpy(pixels.astype(np.uint8)).permute(2, 0, 1)
    for seed in range(5):  # the same draws, the same crop and flip: Pillow's and torch's resampling agree
        torch.manual_seed(seed)
        from_file = load_file(tmp_path / "ramp.png", transform, 3)
        torch.manual_seed(seed)
        assert (from_file - transform(as_tensor)).abs().max() * 255 <= 3
    # A large JPEG for a small region decodes at 1/8 scale (Pillow's draft), and still covers the output.
    Image.new("RGB", (1600, 1200), (200, 100, 50)).save(tmp_path / "big.jpg")
    with open_image(tmp_path / "big.jpg") as opened:
        region = decode_region(opened, fit_geometry(1200, 1600, (100, 100)), 3)
        assert opened.size == (200, 150) and region.shape == (3, 100, 100) and region.dtype == torch.uint8
    assert [round(float(c)) for c in region.float().mean(dim=(1, 2))] == pytest.approx([200, 100, 50], abs=2)
