"""A ResNet-20 trained on the embedded digits (each 8x8 digit inside a 16x16 black field, shifted up to 4 pixels:
4 epochs, about 90% test accuracy in about 9 CPU-seconds), and digits-seg canvases where every digit's box is
known, for the explain tests."""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from rich.console import Console

# The classifier reads 8x8 digits in a 16x16 black field; the 64x64 canvases hold digits of 16-28 pixels, so they
# are shown at 24x24 (digits of 6-10 pixels, about the trained size, on a black background as in training).
TRAIN_SIZE = 16
BORDER = 4
CANVAS_SCALE = 0.375
CANVASES = 40


@pytest.fixture(autouse=True)
def _one_thread():
    """One CPU thread: these tests run many small passes, where a second OpenMP thread mostly waits (and, on a
    busy machine, spins). The root conftest puts the count back."""
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory) -> Path:
    """A finished run folder (with its explain/ gallery, written by the engine's last step)."""
    from convzoo.training import make_config, train

    out = tmp_path_factory.mktemp("explain") / "resnet20-digits"
    train(make_config("resnet20", data="digits", out=str(out), epochs=4, lr=0.1, label_smoothing=0.0,
                      input_size=(TRAIN_SIZE, TRAIN_SIZE), border=BORDER, random_crop_padding=BORDER,
                      channels_last=False, amp=False, seed=0), console=Console(file=io.StringIO()))
    return out


@dataclass
class Canvases:
    images: torch.Tensor          # N x 3 x 24 x 24, normalised as the run's training images
    placements: list              # per canvas: DigitPlacement(label, top, left, side) in 64x64 canvas pixels
    scale: float
    mean: float
    std: float
    raw: torch.Tensor             # N x 1 x 64 x 64 canvases, intensities 0..1

    def boxes(self, index: int, label: int) -> list[tuple[float, float, float, float]]:
        """(top, left, bottom, right) of every digit `label` on canvas `index`, in the shown image's pixels."""
        return [(p.top * self.scale, p.left * self.scale, (p.top + p.side) * self.scale,
                 (p.left + p.side) * self.scale) for p in self.placements[index] if p.label == label]

    def around(self, index: int, label: int) -> torch.Tensor:
        """The digit `label` (once on canvas `index`) as the classifier was trained to see digits: a square twice
        its side centred on it, the other digits painted out (black, the canvas background), resized to
        TRAIN_SIZE and normalised. The digit fills the centre half, the corners are background."""
        canvas = self.raw[index, 0]
        digit, = [p for p in self.placements[index] if p.label == label]
        alone = torch.zeros_like(canvas)
        alone[digit.top:digit.top + digit.side, digit.left:digit.left + digit.side] = \
            canvas[digit.top:digit.top + digit.side, digit.left:digit.left + digit.side]
        half = digit.side  # the square reaches one side past the digit's centre in each direction
        padded = F.pad(alone, (half, half, half, half))
        centre_row, centre_col = digit.top + digit.side // 2 + half, digit.left + digit.side // 2 + half
        square = padded[centre_row - half:centre_row + half, centre_col - half:centre_col + half]
        small = F.interpolate(square[None, None], size=(TRAIN_SIZE, TRAIN_SIZE), mode="bilinear",
                              align_corners=False, antialias=True)[0]
        return ((small - self.mean) / self.std).expand(3, -1, -1).contiguous()


@pytest.fixture(scope="session")
def canvases(digits_run) -> Canvases:
    from convzoo.data.segmentation import read_digits_seg
    from convzoo.explain import prepare

    subject = prepare(digits_run)
    splits, _ = read_digits_seg(1, 0.1, 0)
    test = splits["test"]
    raw = torch.stack([test.images.read(i) for i in range(CANVASES)])
    side = round(raw.shape[-1] * CANVAS_SCALE)
    small = F.interpolate(raw, size=(side, side), mode="bilinear", align_corners=False, antialias=True)
    images = ((small - subject.mean[0]) / subject.std[0]).expand(-1, 3, -1, -1).contiguous()
    return Canvases(images, [test.placements[i] for i in range(CANVASES)], CANVAS_SCALE, subject.mean[0],
                    subject.std[0], raw)
