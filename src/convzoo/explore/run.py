"""What a run page shows, from a `convzoo train` run folder (training/checkpoint.py): the learning curves
(metrics.csv), the test split's predictions (computed here, from the best checkpoint and the run's own data,
by the evaluation's `class_probabilities`), the confusion matrix they make and the test images in each of its
cells, the worst predictions (results.json's error analysis), and the `explain/` gallery's pictures when the
run has one (docs/explain.md: explain/index.json lists each method's PNGs, named after the test image).
"""
from __future__ import annotations

import base64
import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import RunFolderError
from ..training.checkpoint import RunFolder

# Thumbnails of at most this many test images go into the page (the predictions of all of them do).
MAX_THUMBNAILS = 2000
THUMBNAIL_SIDE = 48  # px: small images (8x8 digits) are enlarged to this, without smoothing
EXPLAIN_FOLDER = "explain"


def run_id(path: str | Path) -> str:
    """The run's name in the site: its folder's name, made safe for a file name and a URL."""
    name = Path(path).resolve().name
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name) or "run"


def read_metrics(folder: RunFolder) -> dict[str, list]:
    """metrics.csv as columns; numbers where the cell is a number, None where it is empty."""
    if not folder.metrics.is_file():
        return {}
    with open(folder.metrics, newline="") as f:
        rows = list(csv.DictReader(f))
    columns: dict[str, list] = {key: [] for key in (rows[0] if rows else {})}
    for row in rows:
        for key, value in row.items():
            try:
                columns[key].append(float(value))
            except (TypeError, ValueError):
                columns[key].append(None if value in ("", None) else value)
    return columns


def run_data(path: str | Path, predictions: bool = True) -> tuple[dict[str, Any], dict[str, Path]]:
    """The run page's data, and the files to copy into the site (site-relative name -> source file)."""
    folder = RunFolder(path)
    if not folder.results.is_file():
        raise RunFolderError(f"{str(folder.path)!r} has no results.json: give a finished `convzoo train` run folder")
    from ..io import read_json

    config = folder.read_config()
    results = read_json(folder.results)
    rid = run_id(folder.path)
    data: dict[str, Any] = {
        "id": rid, "folder": str(folder.path.resolve()), "model": results.get("model"), "data": results.get("data"),
        "split": results.get("split"), "epoch": results.get("epoch"), "results": _scalars(results),
        "metrics": read_metrics(folder), "worst": results.get("worst_predictions", []),
        "most_confused": results.get("most_confused", []),
        "precision": results.get("per_class_precision"), "recall": results.get("per_class_recall"),
        "config": {k: v for k, v in config.items() if isinstance(v, (str, int, float, bool)) or v is None},
    }
    files: dict[str, Path] = {}
    for key, source in (("curves_png", folder.curves), ("confusion_png", folder.confusion),
                        ("worst_png", folder.worst)):
        if source.is_file():
            files[f"runs/{rid}/{source.name}"] = source
            data[key] = f"runs/{rid}/{source.name}"
    data["explain"] = _explain_gallery(folder.path, rid, files)
    if predictions:
        data.update(test_predictions(folder.path))
    else:
        data["unavailable"] = "This site was built without the test predictions (predictions=False): the run's own figure."
    return data, files


def test_predictions(path: str | Path) -> dict[str, Any]:
    """The best checkpoint's prediction for every test image (the validation split when the data has no test
    split), the confusion matrix they make, and thumbnails. Classification runs only; a segmentation run gives
    {"task": "segmentation"} (its page shows the run's own figures)."""
    import torch

    from ..data import load_data
    from ..training.checkpoint import load_checkpoint
    from ..training.inference import class_probabilities

    checkpoint = load_checkpoint(path)
    if checkpoint.task.name != "classification":
        return {"task": checkpoint.task.name}
    trained_on = checkpoint.description.get("data", {})
    source = trained_on.get("source")
    try:
        bundle = load_data(source, checkpoint.input_size, val_split=trained_on.get("val_split") or 0.1,
                           seed=trained_on.get("seed", 0), mean=checkpoint.mean, std=checkpoint.std,
                           border=checkpoint.border)
    except (OSError, ValueError) as err:
        return {"task": "classification", "classes": checkpoint.classes,
                "unavailable": f"the run's data {source!r} could not be read here ({err}); the page shows the "
                               f"run's own figures"}
    split = "test" if bundle.test is not None else "val"
    dataset = getattr(bundle, split)
    with torch.inference_mode():
        probabilities, labels = class_probabilities(checkpoint.model, dataset, checkpoint.task)
    confidence, predicted = probabilities.max(dim=1)
    n = len(checkpoint.classes)
    confusion = np.zeros((n, n), dtype=np.int64)
    np.add.at(confusion, (labels.numpy(), predicted.numpy()), 1)
    thumbnails = [_thumbnail(dataset, i, checkpoint.mean, checkpoint.std)
                  for i in range(min(len(dataset), MAX_THUMBNAILS))]
    return {"task": "classification", "classes": checkpoint.classes, "prediction_split": split,
            "labels": labels.tolist(), "predicted": predicted.tolist(),
            "confidence": [round(float(c), 4) for c in confidence], "confusion": confusion.tolist(),
            "thumbnails": thumbnails}


def _thumbnail(dataset, index: int, mean, std) -> str:
    """A test image as the network saw it (un-normalised, as the error analysis draws it), as a PNG data URI,
    enlarged to THUMBNAIL_SIDE without smoothing (each input pixel a block)."""
    from PIL import Image

    from ..training.error_analysis import _images_of

    array = _images_of(dataset, [index], mean, std)[0]
    picture = Image.fromarray((array * 255).round().astype(np.uint8))
    side = max(picture.size)
    if side < THUMBNAIL_SIDE:
        factor = -(-THUMBNAIL_SIDE // side)
        picture = picture.resize((picture.width * factor, picture.height * factor), Image.NEAREST)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _explain_gallery(run: Path, rid: str, files: dict[str, Path]) -> dict[str, Any] | None:
    """The explain/ gallery (docs/explain.md): its methods and PNGs (from explain/index.json, else every PNG under
    explain/), each PNG marked with the test image it shows (NAME or NAME_LAYER, NAME = `testN`, N its index in
    the test split) or None (filters: of no image)."""
    root = run / EXPLAIN_FOLDER
    if not root.is_dir():
        return None
    entries = []
    index = root / "index.json"
    listed = None
    if index.is_file():
        try:
            listed = json.loads(index.read_text())
        except (OSError, json.JSONDecodeError):
            listed = None
    if isinstance(listed, dict):  # {"format": 1, "methods": {METHOD: {"method", "model", "json", "npz", "pngs"}}}
        listed = listed.get("methods")
        listed = list(listed.values()) if isinstance(listed, dict) else listed
    if isinstance(listed, list) and all(isinstance(e, dict) and "pngs" in e for e in listed):
        for entry in listed:
            entries.append((str(entry.get("method", "?")), [root / p for p in entry["pngs"]]))
    else:
        for method_dir in sorted(p for p in root.iterdir() if p.is_dir()):
            entries.append((method_dir.name, sorted(method_dir.glob("*.png"))))
    methods = []
    for method, pngs in entries:
        pictures = []
        for png in pngs:
            if not png.is_file():
                continue
            target = f"runs/{rid}/explain/{png.relative_to(root).as_posix()}"
            files[target] = png
            stem = png.stem
            image = stem.split("_", 1)[0] if stem.startswith("test") else None
            pictures.append({"src": target, "image": image, "name": stem})
        methods.append({"method": method, "pictures": pictures})
    return {"methods": methods}


def _scalars(results: dict) -> dict:
    return {k: v for k, v in results.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)}
