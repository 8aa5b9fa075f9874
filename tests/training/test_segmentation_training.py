"""Segmentation through the one engine and CLI: train, eval (with and without the dense CRF) and predict on a
handful of real digits-seg canvases written as an images/ + masks/ folder, so each run takes a second."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from rich.console import Console

from convzoo.cli import _default_recipe, _join_image_size, main
from convzoo.data import load_data, load_mask
from convzoo.errors import DataError
from convzoo.layers.crf import DenseCRF
from convzoo.training import evaluate_checkpoints, load_checkpoint, make_config, predict_images, train
from convzoo.training.losses import CEDiceLoss
from convzoo.training.tasks import Segmentation, build_task

# Most tests read the module's trained run (seg_run): one xdist worker runs them all, so it is trained once.
pytestmark = pytest.mark.xdist_group("segmentation-run")

TINY_WIDTHS = [4, 8, 16, 32, 64]


def _write_pairs(folder: Path, pairs) -> None:
    from PIL import Image

    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    for i, (image, mask) in enumerate(pairs):
        Image.fromarray((image[0] * 255).round().byte().numpy()).save(folder / "images" / f"{i:02d}.png")
        Image.fromarray(mask.byte().numpy(), mode="L").save(folder / "masks" / f"{i:02d}.png")


@pytest.fixture(scope="module")
def canvases(tmp_path_factory) -> Path:
    """12 training and 4 test digits-seg canvases (64x64, 11 classes) as train/ and test/ image/mask folders."""
    from convzoo.data.segmentation import DIGITS_SEG_CLASSES

    root = tmp_path_factory.mktemp("canvases")
    bundle = load_data("digits-seg", (1, 64, 64))
    _write_pairs(root / "train", [bundle.train.source.read(i) for i in range(12)])
    _write_pairs(root / "test", [bundle.test.source.read(i) for i in range(4)])
    (root / "classes.txt").write_text("\n".join(DIGITS_SEG_CLASSES) + "\n")
    return root


@pytest.fixture(scope="module")
def seg_run(canvases, tmp_path_factory) -> Path:
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("segrun") / "run"
    train(make_config("unet_padded", "segmentation", data=str(canvases), input_size=(32, 32), epochs=2,
                      batch_size=4, val_split=0.25, model_args={"widths": TINY_WIDTHS}, out=str(out)),
          console=Console(file=io.StringIO()))
    return out


def test_train_writes_segmentation_results_and_metrics(seg_run):
    results = json.loads((seg_run / "results.json").read_text())
    assert results["split"] == "test" and results["images"] == 4
    assert 0 <= results["miou"] <= 1 and 0 <= results["pixel_accuracy"] <= 1
    assert list(results["per_class_iou"])[:2] == ["background", "0"] and len(results["per_class_iou"]) == 11
    assert results["pixels"] == 4 * 32 * 32 == sum(map(sum, results["confusion_matrix"]))
    assert results["accuracy_unit"] == "fraction" and "top1_accuracy" not in results
    rows = list(csv.DictReader((seg_run / "metrics.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert {"train_loss", "val_loss", "train_miou", "val_miou", "val_pixel_accuracy"} <= set(rows[0])
    for picture in ("curves.png", "confusion_matrix.png"):
        assert (seg_run / picture).read_bytes()[:4] == b"\x89PNG"
    checkpoint = load_checkpoint(seg_run)
    assert checkpoint.task.name == "segmentation" and checkpoint.description["input_size"] == [1, 32, 32]


def test_a_segmentation_run_ends_with_an_explain_gallery_of_its_first_test_canvases(seg_run):
    index = json.loads((seg_run / "explain" / "index.json").read_text())
    assert set(index["methods"]) == {"feature-maps", "filters", "gradcam", "occlusion", "erf"}
    gradcam = json.loads((seg_run / "explain" / "gradcam" / "gradcam.json").read_text())
    assert gradcam["images"] == ["test0", "test1", "test2", "test3"]  # masks are no classes: simply the first
    for entry in index["methods"].values():
        for png in entry["pngs"]:
            assert (seg_run / "explain" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_with_and_without_crf_counts_the_same_pixels(seg_run, canvases):
    plain, = evaluate_checkpoints([seg_run], str(canvases))
    refined, = evaluate_checkpoints([seg_run], str(canvases), crf=DenseCRF(iterations=3))
    assert not plain.metrics["crf"] and refined.metrics["crf"]
    assert plain.metrics["pixels"] == refined.metrics["pixels"] == 4 * 32 * 32
    saved = json.loads((seg_run / "results.json").read_text())
    # Without the CRF, eval of the best checkpoint repeats the engine's test measurement.
    assert plain.metrics["miou"] == pytest.approx(saved["miou"])
    assert plain.metrics["confusion_matrix"] == saved["confusion_matrix"]
    assert all(0 <= v <= 1 for v in refined.metrics["per_class_iou"].values() if v is not None)


def test_eval_cli_prints_miou_and_per_class_iou(seg_run, canvases, capsys):
    assert main(["eval", str(seg_run), "--data", str(canvases), "--crf", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["crf"] and {"miou", "pixel_accuracy", "per_class_iou"} <= set(row)
    assert main(["eval", str(seg_run), "--data", str(canvases), "--crops", "10"]) == 2
    assert "10-crop" in capsys.readouterr().err
    assert main(["eval", str(seg_run), "--data", str(canvases), "--crf-param", "theta_alpha=6",
                 "--crf-param", "iterations=2"]) == 0
    assert "dense CRF" in capsys.readouterr().out
    assert main(["eval", str(seg_run), "--data", str(canvases), "--crf-param", "theta=6"]) == 2
    assert "DenseCRF takes" in capsys.readouterr().err


def test_predict_writes_palette_mask_and_overlay_at_the_image_size(seg_run, tmp_path):
    from PIL import Image

    image = tmp_path / "wide.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 64), dtype=np.uint8)).save(image)
    (prediction,) = predict_images(seg_run, [image], out=tmp_path / "pred")
    mask, overlay = Image.open(prediction["mask"]), Image.open(prediction["overlay"])
    assert mask.mode == "P" and overlay.mode == "RGB" and mask.size == overlay.size == (64, 40)
    labels = load_mask(prediction["mask"])
    assert int(labels.max()) < 11  # every pixel predicted: no void (255) for a padded U-Net
    assert sum(prediction["class_fractions"].values()) == pytest.approx(1.0)


def test_predict_cli_needs_out_for_a_segmentation_checkpoint(seg_run, tmp_path, capsys):
    image = tmp_path / "x.png"
    from PIL import Image

    Image.fromarray(np.zeros((64, 64), dtype=np.uint8)).save(image)
    assert main(["predict", str(seg_run), str(image)]) == 2
    assert "--out" in capsys.readouterr().err
    assert main(["predict", str(seg_run), str(image), "--out", str(tmp_path / "p"), "--crf"]) == 0
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == ["x_mask.png", "x_overlay.png"]


def test_aux_head_loss_is_weighted_and_only_out_is_scored():
    torch.manual_seed(0)
    out, aux = torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8)
    target = torch.randint(0, 3, (2, 8, 8))
    task = Segmentation(["a", "b", "c"], aux_weight=0.4)
    expected = CEDiceLoss()(out, target) + 0.4 * CEDiceLoss()(aux, target)
    assert task.loss({"out": out, "aux": aux}, target) == pytest.approx(float(expected))
    assert torch.equal(task.probabilities({"out": out, "aux": aux}), out.softmax(dim=1))
    meter = task.meter()
    meter.update({"out": out, "aux": aux}, target)
    alone = task.meter()
    alone.update(out, target)
    assert meter.compute()["confusion_matrix"] == alone.compute()["confusion_matrix"]


def test_engine_takes_the_aux_weight_from_the_network(monkeypatch, canvases, tmp_path):
    # A network with an aux head: the task the engine builds carries its aux_weight.
    import convzoo.training.engine as engine

    built = {}
    real = engine.build_task

    def spy(*args, **kwargs):
        built["task"] = real(*args, **kwargs)
        return built["task"]

    monkeypatch.setattr(engine, "build_task", spy)
    network_weight = 0.25

    real_create = engine.create_model

    def create(*args, **kwargs):
        network = real_create(*args, **kwargs)
        network.aux_weight = network_weight
        return network

    monkeypatch.setattr(engine, "create_model", create)
    train(make_config("unet_padded", "segmentation", data=str(canvases), input_size=(16, 16), epochs=1,
                      batch_size=8, val_split=0.25, model_args={"widths": [2, 4]}, out=str(tmp_path / "run"),
                      explain=False),
          console=Console(file=io.StringIO()))
    assert built["task"].aux_weight == network_weight


def test_wrong_kind_of_data_is_refused(canvases, shapes, tmp_path):
    with pytest.raises(DataError, match="segmentation network.*mask for every image"):
        train(make_config("unet_padded", "segmentation", data=str(shapes), input_size=(16, 16), epochs=1,
                          out=str(tmp_path / "a")), console=Console(file=io.StringIO()))
    with pytest.raises(DataError, match="classification network.*segmentation data"):
        train(make_config("lenet5", data=str(canvases), epochs=1, out=str(tmp_path / "b")),
              console=Console(file=io.StringIO()))


def test_segmentation_refuses_label_smoothing_and_the_cli_picks_its_recipe():
    with pytest.raises(ValueError, match="label smoothing"):
        build_task("segmentation", ["a", "b"], label_smoothing=0.1)
    assert _default_recipe("unet_padded") == "segmentation" and _default_recipe("lenet5") == "quick"
    assert _join_image_size([(64, 64), (48, 48)]) == (64, 48) and _join_image_size([(64, 32)]) == (64, 32)


def test_a_segmentation_run_draws_its_worst_images_by_iou(seg_run):
    results = json.loads((seg_run / "results.json").read_text())
    ious = [row["iou"] for row in results["worst_images"]]
    assert 1 <= len(ious) <= 4 and ious == sorted(ious) and all(0 <= iou <= 1 for iou in ious)
    assert (seg_run / "worst_predictions.png").read_bytes()[:4] == b"\x89PNG"


def test_eval_under_the_papers_test_protocols_scores_the_same_pixels(seg_run, canvases, capsys):
    from convzoo.training.test_time import make_protocol

    plain, = evaluate_checkpoints([seg_run], str(canvases))
    multi, = evaluate_checkpoints([seg_run], str(canvases), protocol=make_protocol("deeplabv3"))
    assert multi.metrics["pixels"] == plain.metrics["pixels"] and 0 <= multi.metrics["miou"] <= 1
    assert multi.metrics["protocol"] == "scales 0.5,0.75,1,1.25,1.5,1.75, flip"
    assert multi.metrics["loss"] != plain.metrics["loss"]
    assert main(["eval", str(seg_run), "--data", str(canvases), "--scales", "1,1.5", "--flip", "--slide", "32,16"]) == 0
    assert "test protocol: scales 1,1.5, flip, slide 32/16" in capsys.readouterr().out
