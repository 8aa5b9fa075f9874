"""Build the fine-tuning benchmark's 5-class image folder: the embedded digits' *test* split (images a network
trained with `--data digits` never trained on), classes 0-4, each digit turned a quarter turn and placed twice
at random in a 12x12 frame at a random size (6-10 pixels), as grey PNGs in train/ and test/ (60% / 40% of
the source digits a class; both placements of one digit stay in one split).

    python benchmarks/make_rotated_digits.py /tmp/rotated-digits
"""
from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from convzoo.data import load_data
from convzoo.io import atomic_write_bytes

FRAME = 12
CLASSES = range(5)
PLACEMENTS = 2


def main(out: str, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    source = load_data("digits", (1, 8, 8)).test.source
    labels = np.asarray(source.labels)
    for digit in CLASSES:
        members = rng.permutation(np.flatnonzero(labels == digit))
        cut = round(0.6 * len(members))
        for split, chosen in (("train", members[:cut]), ("test", members[cut:])):
            folder = Path(out) / split / str(digit)
            for index in chosen:
                turned = torch.rot90(source.read(int(index)), k=1, dims=(1, 2))
                for placement in range(PLACEMENTS):
                    side = int(rng.integers(6, 11))
                    scaled = F.interpolate(turned[None], size=(side, side), mode="bilinear", align_corners=False)[0]
                    frame = torch.zeros(1, FRAME, FRAME)
                    top, left = rng.integers(0, FRAME - side + 1, 2)
                    frame[:, top:top + side, left:left + side] = scaled
                    pixels = (frame[0].clamp(0, 1) * 255).round().byte().numpy()
                    buffer = io.BytesIO()
                    Image.fromarray(pixels).save(buffer, format="PNG")
                    atomic_write_bytes(folder / f"{int(index):04d}_{placement}.png", buffer.getvalue())


if __name__ == "__main__":
    main(sys.argv[1])
