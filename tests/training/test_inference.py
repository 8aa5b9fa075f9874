"""eval (single checkpoints, ensembles, 10 crops) and predict, from Python and from the command line."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from convzoo.cli import main
from convzoo.errors import DataError
from convzoo.training import evaluate_checkpoints, load_checkpoint, make_config, predict_images, train
from convzoo.training.inference import class_probabilities, metrics_from_probabilities


@pytest.fixture(scope="session")
def second_run(shapes, tmp_path_factory) -> Path:
    """Another LeNet-5 on the same data, another seed: an ensemble partner."""
    import io

    from rich.console import Console

    out = tmp_path_factory.mktemp("second") / "run"
    train(make_config("lenet5", data=str(shapes), out=str(out), epochs=2, batch_size=16, threads=1, seed=1,
                      explain=False),
          console=Console(file=io.StringIO()))
    return out


def test_eval_of_a_run_repeats_its_test_results(trained_run, shapes):
    (result,) = evaluate_checkpoints([trained_run], str(shapes))
    saved = json.loads((trained_run / "results.json").read_text())
    assert result.metrics["split"] == "test"
    for key in ("top1_accuracy", "top5_accuracy", "confusion_matrix", "images"):
        assert result.metrics[key] == saved[key], key
    assert result.metrics["loss"] == pytest.approx(saved["loss"], rel=1e-5)


def test_ensemble_averages_the_softmax_of_its_members(trained_run, second_run, shapes):
    results = evaluate_checkpoints([trained_run, second_run], str(shapes), split="test")
    assert [r.name for r in results][-1] == "ensemble" and len(results) == 3
    members = [load_checkpoint(run) for run in (trained_run, second_run)]
    from convzoo.data import load_data

    first = members[0]
    test = load_data(str(shapes), first.input_size, mean=first.mean, std=first.std, border=first.border).test
    probabilities = [class_probabilities(m.model, test, m.task)[0] for m in members]
    labels = torch.as_tensor(test.labels)
    expected = metrics_from_probabilities((probabilities[0] + probabilities[1]) / 2, labels, first.classes)
    assert results[-1].metrics["confusion_matrix"] == expected["confusion_matrix"]
    assert results[-1].metrics["loss"] == pytest.approx(expected["loss"], rel=1e-4)
    assert results[-1].metrics["members"] == 2


def test_ten_crops_average_ten_views(trained_run, shapes):
    """--crops 10 scores each image by the mean of its ten views' softmax probabilities, computed here by hand
    one view at a time."""
    from convzoo.data import load_data

    (ten,) = evaluate_checkpoints([trained_run], str(shapes), crops=10)
    checkpoint = load_checkpoint(trained_run)
    bundle = load_data(str(shapes), checkpoint.input_size, mean=checkpoint.mean, std=checkpoint.std,
                       border=checkpoint.border)
    views = bundle.multi_crop("test", 10)
    averaged, first_view, labels = [], [], []
    with torch.no_grad():
        for index in range(len(views)):
            stack, label = views[index]
            assert stack.shape[0] == 10
            probabilities = [torch.softmax(checkpoint.model(view[None]), dim=1)[0] for view in stack]
            averaged.append(sum(probabilities) / 10)
            first_view.append(probabilities[0])
            labels.append(int(label))
    expected = metrics_from_probabilities(torch.stack(averaged), torch.tensor(labels), checkpoint.classes)
    assert ten.metrics["crops"] == 10 and ten.metrics["images"] == len(labels)
    assert ten.metrics["loss"] == pytest.approx(expected["loss"], rel=1e-5)
    assert ten.metrics["confusion_matrix"] == expected["confusion_matrix"]
    # image by image, the averaged probabilities the evaluation uses are the hand-averaged ones, and the views
    # differ enough that one view alone would not pass
    used, used_labels = class_probabilities(checkpoint.model, views, checkpoint.task)
    assert used_labels.tolist() == labels
    torch.testing.assert_close(used, torch.stack(averaged), rtol=0, atol=1e-6)
    assert (torch.stack(first_view) - torch.stack(averaged)).abs().max() > 1e-4


def test_eval_refuses_data_with_other_classes(trained_run, tmp_path, shapes_writer):
    other = shapes_writer(tmp_path / "other", {"train": 3, "test": 2})
    (other / "train" / "hbar").rename(other / "train" / "dash")
    (other / "test" / "hbar").rename(other / "test" / "dash")
    with pytest.raises(DataError, match="do not match the checkpoint"):
        evaluate_checkpoints([trained_run], str(other))


def test_predict_names_classes_with_probabilities(trained_run, shapes):
    images = sorted((shapes / "test" / "vbar").glob("*.png"))[:2]
    predictions = predict_images(trained_run, images, top=2)
    assert [p["image"] for p in predictions] == [str(i) for i in images]
    for prediction in predictions:
        probs = [g["probability"] for g in prediction["predictions"]]
        assert len(probs) == 2 and probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
        assert {g["class"] for g in prediction["predictions"]} <= {"cross", "hbar", "vbar"}
    # top larger than the class count gives every class, summing to 1
    everything = predict_images(trained_run, images[:1], top=5)[0]["predictions"]
    assert len(everything) == 3 and sum(g["probability"] for g in everything) == pytest.approx(1.0)


def test_cli_eval_and_predict_json(trained_run, second_run, shapes, capsys):
    assert main(["eval", str(trained_run), str(second_run / "best.safetensors"), "--data", str(shapes),
                 "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["checkpoint"] for r in rows] == [str(trained_run / "best.safetensors"),
                                               str(second_run / "best.safetensors"), "ensemble"]
    assert all("top1_accuracy" in r and "top5_accuracy" in r for r in rows)

    image = sorted((shapes / "test" / "cross").glob("*.png"))[0]
    assert main(["predict", str(trained_run), str(image), "--top", "3", "--json"]) == 0
    (prediction,) = json.loads(capsys.readouterr().out)
    assert prediction["image"] == str(image) and len(prediction["predictions"]) == 3

    assert main(["eval", str(trained_run), "--data", str(shapes), "--crops", "10"]) == 0
    table = capsys.readouterr().out
    assert "10 crops" in table and "top-1 acc" in table


def test_cli_errors_are_one_line_not_a_traceback(trained_run, tmp_path, capsys):
    truncated = tmp_path / "cut.safetensors"
    truncated.write_bytes((trained_run / "best.safetensors").read_bytes()[:100])
    assert main(["predict", str(truncated), "x.png"]) == 2
    assert "convzoo predict: error:" in capsys.readouterr().err
    assert main(["eval", str(trained_run), "--data", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_predict_on_an_unreadable_image_advises_what_predict_can_do(trained_run, tmp_path, capsys):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    assert main(["predict", str(trained_run), str(broken)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "cannot read image" in err[-1] and "leave it out of the images to predict" in err[-1]
    assert "--skip-bad" not in err[-1]


def test_a_trained_lenet5_exports_to_onnx_and_onnxruntime_matches_on_real_images(trained_run, shapes, tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    from convzoo import export
    from convzoo.data import load_data

    out = export(trained_run, format="onnx", out=tmp_path / "lenet5.onnx")
    described = json.loads(Path(f"{out}.json").read_text())
    # Checked on the checkpoint's own data: its shapes test split, 24 images (fewer than CHECK_IMAGES).
    assert described["checked"] and described["argmax_images"] == 24 and described["argmax_agreement"] == 1.0
    checkpoint = load_checkpoint(trained_run)
    images = torch.stack([image for image, _ in load_data(str(shapes), checkpoint.input_size, mean=checkpoint.mean,
                                                          std=checkpoint.std, border=checkpoint.border).test])
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = torch.from_numpy(session.run(None, {"images": images.numpy()})[0])
    with torch.no_grad():
        expected = checkpoint.model(images)
    # Measured: 2.3e-5 of the outputs' spread (float32 rounding); the bound leaves a margin of ~40x.
    assert (got - expected).abs().max() < 1e-3 * expected.std()
    assert torch.equal(got.argmax(1), expected.argmax(1))
