"""What every method looks at: a network ready to be explained, and the images it is shown.

    subject = prepare("runs/resnet20-digits")          # a checkpoint, a run folder, or a model
    batch = subject.load_images(["seven.png"])         # N x C x H x W, prepared as in training

The network is a copy of the caller's, in eval mode, with every module's in-place switch (`nn.ReLU(inplace=True)`
and the like) turned off: hooks and gradients then see each activation as it was computed, and no user meets
autograd's "a view ... is being modified inplace" error that gradient hooks raise on in-place ReLUs. The caller's
model is never touched. Functional in-place calls inside a forward (DenseNet's `F.relu(..., inplace=True)`)
cannot be switched off from outside; the hooks in layers.py hand the rest of the network a copy of the tensor
they watch, so those calls cannot change it either.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import DataError, InputSizeError
from .layers import LayerMap, map_layers


@dataclass
class Subject:
    """A network to explain: the in-place-free eval copy, what it classifies, and how its images are prepared."""

    model: nn.Module
    name: str
    task: str                          # "classification" or "segmentation"
    classes: list[str]
    input_size: tuple[int, int, int]   # (C, H, W) the network was trained at (or its card's)
    mean: tuple[float, ...]
    std: tuple[float, ...]
    border: int = 0
    source: str = ""                   # the checkpoint's path, or the model's name
    _layer_maps: dict[tuple[int, ...], LayerMap] = field(default_factory=dict, repr=False)

    @property
    def segmentation(self) -> bool:
        return self.task == "segmentation"

    def layers(self, image_size: Sequence[int]) -> LayerMap:
        """The network's layers as a batch of (C, H, W) images flows through it (traced once a size, on the
        meta device): shapes, receptive fields, the default stages and target layer."""
        key = tuple(int(s) for s in image_size)
        if key not in self._layer_maps:
            self._layer_maps[key] = map_layers(self.model, key, name=self.name, task=self.task,
                                               num_classes=len(self.classes))
        return self._layer_maps[key]

    def pixels(self, batch: Tensor) -> np.ndarray:
        """The batch as people see it: N x H x W x 3 floats in [0, 1], the normalisation undone (grey images
        repeated to three channels)."""
        mean = torch.tensor(self.mean, dtype=batch.dtype).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=batch.dtype).view(1, -1, 1, 1)
        images = (batch.detach().cpu() * std + mean).clamp(0, 1)
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        elif images.shape[1] != 3:
            images = images.mean(dim=1, keepdim=True).expand(-1, 3, -1, -1)
        return images.permute(0, 2, 3, 1).numpy()

    def class_index(self, target: int | str) -> int:
        """A class given by name or by index, checked against the network's classes."""
        if isinstance(target, str) and target in self.classes:
            return self.classes.index(target)
        if isinstance(target, str) and target.lstrip("-").isdigit():
            target = int(target)
        if isinstance(target, (int, np.integer)) and 0 <= int(target) < len(self.classes):
            return int(target)
        shown = ", ".join(self.classes[:12]) + (", ..." if len(self.classes) > 12 else "")
        raise DataError(f"class {target!r} is not one of {self.name}'s {len(self.classes)} classes ({shown}); give "
                        f"a class name or an index from 0 to {len(self.classes) - 1}")

    def load_images(self, paths: Sequence[str | Path]) -> Tensor:
        """Image files as the network saw its images in training: classification images resized (and bordered)
        as `convzoo predict` does; segmentation images fitted inside the input keeping their aspect, padded at
        the bottom and right, as `convzoo predict` does for masks."""
        from ..data import load_image
        from ..data.segmentation import fit_network_view

        if not paths:
            raise DataError("give at least one image file to explain")
        images = []
        for path in paths:
            if self.segmentation:
                view, _, _ = fit_network_view(path, self.input_size)
                mean = torch.tensor(self.mean).view(-1, 1, 1)
                std = torch.tensor(self.std).view(-1, 1, 1)
                images.append((view - mean) / std)
            else:
                images.append(load_image(path, self.input_size, self.mean, self.std, border=self.border))
        return torch.stack(images)

    def check_batch(self, batch: Tensor) -> Tensor:
        if not isinstance(batch, Tensor) or batch.dim() != 4:
            shape = tuple(batch.shape) if isinstance(batch, Tensor) else type(batch).__name__
            raise InputSizeError(f"explain takes image files or a batch N x C x H x W of normalised images; got "
                                 f"{shape}")
        return batch.to(next(self.model.parameters()).device, torch.float32)


def without_inplace(model: nn.Module, copy_model: bool = True) -> nn.Module:
    """A deep copy of `model` (or, with copy_model=False, the model itself) in eval mode with every module's
    `inplace` switch off (see the module docstring)."""
    copied = copy.deepcopy(model) if copy_model else model
    for module in copied.modules():
        if getattr(module, "inplace", False) is True:
            module.inplace = False
    return copied.eval()


def prepare(source, device: str | torch.device = "cpu", *, copy_model: bool = True) -> Subject:
    """A Subject from a checkpoint file or run folder written by `convzoo train` (its network, classes, input
    size and normalisation), from a `training.Checkpoint`, or from a model built by `create_model` (its card's
    classes as numbers, its card's input size, no normalisation). A model is copied unless copy_model=False
    (a model the caller hands over: its own in-place switches are turned off, and no memory is doubled)."""
    from ..training.checkpoint import Checkpoint, load_checkpoint

    if isinstance(source, Subject):
        return source
    if isinstance(source, nn.Module):
        card = getattr(source, "card", None)
        args = getattr(source, "model_args", {})
        name = card.name if card is not None else type(source).__name__
        task = card.task if card is not None else "classification"
        num_classes = args.get("num_classes", card.num_classes if card is not None else 0)
        if card is not None:
            from ..registry import default_input_size

            input_size = tuple(default_input_size(name, args))
            input_size = (args.get("in_chans", input_size[0]), *input_size[1:])
        else:
            input_size = (3, 224, 224)
        return Subject(model=without_inplace(source, copy_model).to(device), name=name, task=task,
                       classes=[str(i) for i in range(num_classes)], input_size=input_size,
                       mean=(0.0,) * input_size[0], std=(1.0,) * input_size[0], source=name)
    checkpoint = source if isinstance(source, Checkpoint) else load_checkpoint(source, device)
    return Subject(model=without_inplace(checkpoint.model).to(device), name=checkpoint.name,
                   task=checkpoint.task.name, classes=checkpoint.classes, input_size=checkpoint.input_size,
                   mean=checkpoint.mean, std=checkpoint.std, border=checkpoint.border, source=str(checkpoint.path))
