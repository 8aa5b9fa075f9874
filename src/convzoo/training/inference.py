"""Using trained checkpoints: evaluate one or several (and their ensemble) on a data set, with the papers'
single-crop or 10-crop testing; predict the classes of image files. For a segmentation checkpoint: mIoU,
pixel accuracy and per-class IoU over a split, optionally after the dense CRF (DeepLab's post-processing);
predict writes each image's mask (a palette PNG, VOC's format) and the mask laid over the image.

A checkpoint brings its own network, class names, input size, normalisation and border (see checkpoint.py),
so the data is prepared exactly as the network saw it in training, whatever data set it is evaluated on.
"""
from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from ..errors import CorruptImageError, DataError
from ..io import atomic_write_bytes
from ..layers.crf import DenseCRF
from ..protocol import main_output
from .checkpoint import Checkpoint, load_checkpoint, read_checkpoint_description
from .losses import center_crop_to
from .metrics import ClassificationMeter
from .segmentation_metrics import SegmentationMeter
from .sizes import check_inference_memory
from .tasks import Task, check_data_for_task
from .test_time import EvalProtocol, protocol_probabilities

# The dense CRF's colour kernel width (theta_beta = 13) is in 0-255 intensities, as Kraehenbuehl & Koltun's.
_CRF_INTENSITY_SCALE = 255.0
# The overlay: this much of the mask's colour over the image.
_OVERLAY_ALPHA = 0.5

# log(0) would make one confident wrong answer an infinite loss in an ensemble's averaged probabilities.
_SMALLEST_PROBABILITY = 1e-12


@dataclass
class EvalResult:
    name: str     # the checkpoint path, or "ensemble"
    metrics: dict


@torch.no_grad()
def class_probabilities(model: torch.nn.Module, dataset: Dataset, task: Task,
                        batch_size: int = 64) -> tuple[Tensor, Tensor]:
    """Softmax probabilities (N x classes) of every item and the labels (N). Items that are stacks of crops
    (crops x C x H x W) get the mean of their crops' probabilities, as in AlexNet's and ResNet's 10-crop test."""
    device = next(model.parameters()).device
    model.eval()
    probabilities, labels = [], []
    for images, targets in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        if images.dim() == 5:
            batch, crops = images.shape[:2]
            crop_probs = task.probabilities(model(images.flatten(0, 1).to(device)))
            probabilities.append(crop_probs.view(batch, crops, -1).mean(dim=1).cpu())
        else:
            probabilities.append(task.probabilities(model(images.to(device))).cpu())
        labels.append(torch.as_tensor(targets))
    return torch.cat(probabilities), torch.cat(labels)


def metrics_from_probabilities(probabilities: Tensor, labels: Tensor, classes: Sequence[str]) -> dict:
    """Top-1/top-5 accuracy and error, loss (the mean negative log-probability of the true class), per-class
    accuracy and the confusion matrix of predicted probabilities."""
    meter = ClassificationMeter(len(classes))
    # softmax(log p) = p, so log-probabilities behave as logits and the meter's cross-entropy is -log p_true.
    meter.update(probabilities.clamp_min(_SMALLEST_PROBABILITY).log(), labels)
    return meter.compute(classes)


def evaluate_checkpoints(checkpoints: Sequence[str | Path], data: str, split: str | None = None, crops: int = 1,
                         batch_size: int = 64, device: str | torch.device = "cpu",
                         skip_bad: bool = False, crf: DenseCRF | None = None,
                         protocol: EvalProtocol | None = None, force: bool = False) -> list[EvalResult]:
    """Each checkpoint's metrics on `split` ("test", or "val"; default: test when the data has one) of `data`,
    and, with several checkpoints, the metrics of their ensemble: the average of their softmax outputs (how
    AlexNet's seven networks took the top-5 error from 18.2% to 15.4%).

    Segmentation checkpoints give mIoU, pixel accuracy, mean Dice and per-class IoU over the split's pixels;
    with `crf` each softmax is refined by the dense CRF (on the un-normalised image) before the argmax; with
    `protocol` (test_time.py: multi-scale, flip, sliding window) each softmax is the protocol's average.
    The estimated peak memory is checked first (convzoo/memory.py; `force` runs it anyway)."""
    if crops not in (1, 10):
        raise ValueError(f"crops must be 1 or 10, got {crops}")
    if not checkpoints:
        raise ValueError("give at least one checkpoint")
    check_inference_memory([read_checkpoint_description(path) for path in checkpoints], batch_size * crops, data,
                           force=force)
    loaded: list[Checkpoint] = [load_checkpoint(path, device) for path in checkpoints]
    first = loaded[0]
    for other in loaded[1:]:
        if other.classes != first.classes or other.task.name != first.task.name:
            raise DataError(f"an ensemble needs one task and the same classes in the same order: {first.path} "
                            f"({first.task.name}) has {first.classes}, {other.path} ({other.task.name}) has "
                            f"{other.classes}")
    if first.task.name == "segmentation":
        if crops != 1:
            raise ValueError("10-crop testing is for classification; a segmentation network labels the whole image")
        return _evaluate_segmentation_checkpoints(loaded, data, split, batch_size, skip_bad, crf, protocol)
    if protocol is not None and not protocol.single:
        raise ValueError(f"multi-scale, flip and sliding-window testing are for segmentation; {first.path} is a "
                         f"classification checkpoint (its test-time averaging is --crops 10)")
    if crf is not None:
        raise ValueError(f"the CRF refines per-pixel predictions; {first.path} is a classification checkpoint")
    return _evaluate_classification_checkpoints(loaded, data, split, crops, batch_size, skip_bad)


def _evaluate_classification_checkpoints(loaded: list[Checkpoint], data: str, split: str | None, crops: int,
                                         batch_size: int, skip_bad: bool) -> list[EvalResult]:
    from ..data import load_data

    first = loaded[0]

    results, ensemble_sum, ensemble_labels = [], None, None
    bundles: dict[tuple, object] = {}
    for checkpoint in loaded:
        trained_on = checkpoint.description.get("data", {})
        # The same input size, normalisation and border as in training; the same val split (seed, fraction).
        key = (checkpoint.input_size, checkpoint.mean, checkpoint.std, checkpoint.border,
               trained_on.get("val_split"), trained_on.get("seed", 0))
        if key not in bundles:
            bundles[key] = load_data(data, checkpoint.input_size, val_split=trained_on.get("val_split") or 0.1,
                                     seed=trained_on.get("seed", 0), skip_bad=skip_bad, mean=checkpoint.mean,
                                     std=checkpoint.std, border=checkpoint.border)
        bundle = bundles[key]
        check_data_for_task("classification", data, checkpoint.name, bundle.kind)
        bundle.check_classes(checkpoint.classes)
        chosen = _split_of(bundle, data, split)
        dataset = bundle.multi_crop(chosen, crops) if crops == 10 else getattr(bundle, chosen)
        probabilities, labels = class_probabilities(checkpoint.model, dataset, checkpoint.task, batch_size)
        metrics = metrics_from_probabilities(probabilities, labels, checkpoint.classes)
        results.append(EvalResult(str(checkpoint.path), {"split": chosen, "crops": crops, **metrics}))
        if ensemble_labels is not None and not torch.equal(labels, ensemble_labels):
            raise DataError(f"{checkpoint.path} was validated on another split of {data!r} (another seed or "
                            f"val_split) than {first.path}: ensemble them on the test split")
        ensemble_sum = probabilities if ensemble_sum is None else ensemble_sum + probabilities
        ensemble_labels = labels
    if len(loaded) > 1:
        metrics = metrics_from_probabilities(ensemble_sum / len(loaded), ensemble_labels, first.classes)
        results.append(EvalResult("ensemble", {"split": results[0].metrics["split"], "crops": crops,
                                               "members": len(loaded), **metrics}))
    return results


def _split_of(bundle, data: str, split: str | None) -> str:
    chosen = split or ("test" if bundle.test is not None else "val")
    if chosen not in ("val", "test"):
        raise DataError(f"split must be 'val' or 'test', got {chosen!r}")
    if chosen == "test" and bundle.test is None:
        raise DataError(f"{data!r} has no test split; evaluate on --split val")
    return chosen


def _evaluate_segmentation_checkpoints(loaded: list[Checkpoint], data: str, split: str | None, batch_size: int,
                                       skip_bad: bool, crf: DenseCRF | None,
                                       protocol: EvalProtocol | None) -> list[EvalResult]:
    from ..data import load_data

    first = loaded[0]
    # One pass over the images feeds every network (and their ensemble), so they must see the same pixels.
    for other in loaded[1:]:
        if (other.input_size, other.mean, other.std) != (first.input_size, first.mean, first.std):
            raise DataError(f"{first.path} and {other.path} were trained on differently prepared images (input "
                            f"size or normalisation): evaluate them one at a time")
    trained_on = first.description.get("data", {})
    bundle = load_data(data, first.input_size, val_split=trained_on.get("val_split") or 0.1,
                       seed=trained_on.get("seed", 0), skip_bad=skip_bad, mean=first.mean, std=first.std,
                       border=first.border)
    check_data_for_task("segmentation", data, first.name, bundle.kind)
    bundle.check_classes(first.classes)
    chosen = _split_of(bundle, data, split)
    metrics = evaluate_segmentation([c.model for c in loaded], getattr(bundle, chosen), first.classes,
                                    first.mean, first.std, batch_size, crf, protocol)
    names = [str(c.path) for c in loaded] + (["ensemble"] if len(loaded) > 1 else [])
    extra = {"split": chosen, "crf": crf is not None,
             "protocol": (protocol or EvalProtocol()).describe()}
    return [EvalResult(name, {**extra, **({"members": len(loaded)} if name == "ensemble" else {}), **m})
            for name, m in zip(names, metrics)]


@torch.no_grad()
def evaluate_segmentation(models: Sequence[nn.Module], dataset: Dataset, classes: Sequence[str],
                          mean: Sequence[float], std: Sequence[float], batch_size: int = 16,
                          crf: DenseCRF | None = None, protocol: EvalProtocol | None = None) -> list[dict]:
    """The segmentation metrics (SegmentationMeter.compute) of each network on `dataset`'s (image, mask)
    items, and with several networks those of their ensemble (mean softmax) last. With `crf`, every softmax
    (and the ensemble's) is refined by mean-field inference on the image as it was before normalisation
    (`mean`, `std`), in 0-255 intensities, before the argmax. The loss reported is the mean -log p of the true
    class over the labelled pixels. With `protocol` (test_time.py) each network's softmax is averaged over the
    protocol's scales, flips and windows."""
    device = next(models[0].parameters()).device
    for model in models:
        model.eval()
    meters = [SegmentationMeter(len(classes)) for _ in range(len(models) + (len(models) > 1))]
    for images, masks in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        images = images.to(device)
        if protocol is None or protocol.single:
            probabilities = [main_output(model(images)).float().softmax(dim=1) for model in models]
        else:
            probabilities = [protocol_probabilities(model, images, protocol, input_side=max(images.shape[-2:]))
                             for model in models]
        if len(models) > 1:
            probabilities.append(torch.stack(probabilities).mean(dim=0))
        for meter, probs in zip(meters, probabilities):
            if crf is not None:
                probs = crf(_crf_image(images, mean, std, probs.shape[-2:]), probs)
            # softmax(log p) = p: log-probabilities are logits whose cross-entropy is -log p of the true class.
            meter.update(probs.clamp_min(_SMALLEST_PROBABILITY).log().cpu(), masks)
    return [meter.compute(classes) for meter in meters]


def _crf_image(images: Tensor, mean: Sequence[float], std: Sequence[float], size: Sequence[int]) -> Tensor:
    """The normalised batch back in 0-255 intensities, cropped to the prediction's size (U-Net's valid
    convolutions predict the centre of their input)."""
    mean_t = torch.tensor(mean, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    std_t = torch.tensor(std, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    return center_crop_to(images * std_t + mean_t, size) * _CRF_INTENSITY_SCALE


@torch.no_grad()
def predict_images(checkpoint: str | Path | Checkpoint, images: Sequence[str | Path], top: int = 5,
                   crops: int = 1, device: str | torch.device = "cpu", out: str | Path | None = None,
                   crf: DenseCRF | None = None, force: bool = False) -> list[dict]:
    """Classification: the `top` most probable classes of each image file, with their probabilities.
    Segmentation: each image's mask, written to `out` (see `predict_masks`). The estimated peak memory is
    checked first (`force` runs it anyway)."""
    from ..data import load_image

    if top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    if not isinstance(checkpoint, Checkpoint):
        check_inference_memory([read_checkpoint_description(checkpoint)], crops, None, force=force,
                               what="predicting with", batch_flag=None)
    checkpoint = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint, device)
    if checkpoint.task.name == "segmentation":
        if crops != 1:
            raise ValueError("10-crop testing is for classification; a segmentation network labels the whole image")
        if out is None:
            raise ValueError(f"{checkpoint.path} is a segmentation network: give --out DIR for the mask and "
                             f"overlay PNGs")
        return predict_masks(checkpoint, images, out, crf=crf)
    if crf is not None:
        raise ValueError(f"the CRF refines per-pixel predictions; {checkpoint.path} is a classification checkpoint")
    model = checkpoint.model
    device = next(model.parameters()).device
    predictions = []
    for path in images:
        with _named_image_fix():
            image = load_image(path, checkpoint.input_size, checkpoint.mean, checkpoint.std, crops=crops,
                               border=checkpoint.border)
        batch = image if image.dim() == 4 else image[None]
        probabilities = checkpoint.task.probabilities(model(batch.to(device))).mean(dim=0, keepdim=True).cpu()
        predictions.append({
            "image": str(path),
            "predictions": [{"class": name, "probability": p}
                            for name, p in checkpoint.task.top(probabilities, top)[0]],
        })
    return predictions


@contextlib.contextmanager
def _named_image_fix():
    """An image the user named that cannot be read: the fix is to fix it or leave it out (predict skips nothing)."""
    try:
        yield
    except CorruptImageError as err:
        raise CorruptImageError(err.path, err.reason, "Fix the file, or leave it out of the images to predict.") \
            from err


@torch.no_grad()
def predict_masks(checkpoint: Checkpoint, images: Sequence[str | Path], out: str | Path,
                  crf: DenseCRF | None = None) -> list[dict]:
    """Label every pixel of each image file and write, to the folder `out`, STEM_mask.png (a palette PNG in
    VOC's colours: each pixel's palette index is its class, so `load_mask` reads it back) and
    STEM_overlay.png (the mask's colours over the image). Each image is prepared as in training: scaled to fit
    inside the network's input keeping its aspect, padded at the bottom and right; the mask is scaled back to
    the image's own size. Pixels the network does not predict (the border a valid-convolution U-Net trims)
    get 255, VOC's "void". Returns, per image, the files and the fraction of its pixels in each class."""
    from ..data.segmentation import IGNORE_INDEX, fit_network_view, resize_mask
    from ..data.transforms import Normalize

    paths = [Path(p) for p in images]
    stems = [p.stem for p in paths]
    repeated = sorted({stem for stem in stems if stems.count(stem) > 1})
    if repeated:
        raise ValueError(f"several images are named {', '.join(repeated)}: their masks would overwrite each other")
    out = Path(out)
    model = checkpoint.model
    device = next(model.parameters()).device
    channels, height, width = checkpoint.input_size
    normalize = Normalize(checkpoint.mean, checkpoint.std)
    results = []
    for path in paths:
        with _named_image_fix():
            network_view, fitted, image_size = fit_network_view(path, checkpoint.input_size)
        batch = normalize(network_view)[None].to(device)
        probabilities = checkpoint.task.probabilities(model(batch))
        if crf is not None:
            image_255 = center_crop_to(network_view[None].to(device), probabilities.shape[-2:]) * _CRF_INTENSITY_SCALE
            probabilities = crf(image_255, probabilities)
        predicted = probabilities.argmax(dim=1)[0].cpu()
        labels = torch.full((height, width), IGNORE_INDEX, dtype=torch.long)
        top, left = (height - predicted.shape[0]) // 2, (width - predicted.shape[1]) // 2
        labels[top:top + predicted.shape[0], left:left + predicted.shape[1]] = predicted
        mask = resize_mask(labels[:fitted[0], :fitted[1]], image_size).numpy().astype(np.uint8)
        mask_path, overlay_path = out / f"{path.stem}_mask.png", out / f"{path.stem}_overlay.png"
        _write_png(_palette_image(mask), mask_path)
        _write_png(_overlay_image(path, mask), overlay_path)
        counts = np.bincount(mask.ravel(), minlength=256)
        fractions = {name: float(counts[i]) / mask.size for i, name in enumerate(checkpoint.classes) if counts[i]}
        results.append({"image": str(path), "mask": str(mask_path), "overlay": str(overlay_path),
                        "size": list(mask.shape), "class_fractions": fractions})
    return results


def _palette_image(mask: np.ndarray):
    from PIL import Image

    from ..data.segmentation import voc_palette

    image = Image.fromarray(mask, mode="P")
    image.putpalette(voc_palette().flatten().tolist())
    return image


def _overlay_image(path: Path, mask: np.ndarray):
    from PIL import Image

    from ..data.datasets import decode_image
    from ..data.segmentation import voc_palette

    colour = decode_image(path, 3).permute(1, 2, 0).numpy() * 255
    blended = (1 - _OVERLAY_ALPHA) * colour + _OVERLAY_ALPHA * voc_palette()[mask].astype(np.float64)
    return Image.fromarray(blended.round().clip(0, 255).astype(np.uint8), mode="RGB")


def _write_png(image, path: Path) -> Path:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return atomic_write_bytes(path, buffer.getvalue())
