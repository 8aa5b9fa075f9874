"""What the explanations of a trained network show, checked where the answer is known: digits-seg canvases, where
each digit's box is known, and networks whose receptive field is known exactly."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

import convzoo
from convzoo.cli import main
from convzoo.explain import ExplainError, cam, erf, explain, occlusion, prepare
from convzoo.explain.targets import Target


def _targets(canvases) -> list[tuple[int, int]]:
    """(canvas, digit label) for every distinct digit on every canvas."""
    return [(i, label) for i, placed in enumerate(canvases.placements) for label in sorted({p.label for p in placed})]


def _inside(point, boxes) -> bool:
    row, col = point
    return any(top <= row < bottom and left <= col < right for top, left, bottom, right in boxes)


# The tests of the trained run: the session's ResNet-20 on the digits (conftest.py) takes over 10 s to train; one
# xdist worker runs them all, so it is trained once.
@pytest.mark.slow
@pytest.mark.xdist_group("explain-digits-run")
def test_gradcam_peak_falls_inside_the_asked_digit_far_more_often_than_chance(digits_run, canvases):
    subject = prepare(digits_run)
    pairs = _targets(canvases)
    batch = canvases.images[[i for i, _ in pairs]]
    result = cam.compute(subject, batch, "gradcam", targets=[Target(k, label) for k, (_, label) in enumerate(pairs)])
    size = batch.shape[-1]
    hits, chance = 0, 0.0
    for entry, (i, label) in zip(result.numbers["targets"], pairs):
        boxes = canvases.boxes(i, label)
        hits += _inside([c + 0.5 for c in entry["peak_pixel"]], boxes)
        covered = np.zeros((size, size), dtype=bool)
        for top, left, bottom, right in boxes:
            covered[int(top):int(np.ceil(bottom)), int(left):int(np.ceil(right))] = True
        chance += covered.mean()  # a peak placed uniformly at random lands in the boxes this often
    accuracy, chance = hits / len(pairs), chance / len(pairs)
    print(f"pointing game: {hits}/{len(pairs)} = {accuracy:.3f}, chance {chance:.3f}")
    assert result.numbers["layer"]["layer"] == "layer3"
    assert accuracy >= 0.5 and accuracy >= 3 * chance


@pytest.mark.slow
@pytest.mark.xdist_group("explain-digits-run")
def test_occluding_the_digit_lowers_its_probability_more_than_occluding_as_much_background(digits_run, canvases):
    # Zeiler & Fergus' experiment on each digit that is once on its canvas, seen as the classifier was trained
    # (Canvases.around: the digit fills the centre 8x8 of 16x16). Hiding the digit's 8x8 centre is compared
    # with hiding the same area of background, the four 4x4 corners.
    subject = prepare(digits_run)
    digit_drops, background_drops = [], []
    with torch.inference_mode():
        for i, label in _targets(canvases):
            if len(canvases.boxes(i, label)) != 1:
                continue
            image = canvases.around(i, label)
            on_digit, on_background = image.clone(), image.clone()
            on_digit[:, 4:12, 4:12] = 0.0  # the training images' mean colour, Zeiler & Fergus' grey
            for top in (0, 12):
                for left in (0, 12):
                    on_background[:, top:top + 4, left:left + 4] = 0.0
            p0, p_digit, p_background = Target(0, label).probability(
                subject.model(torch.stack([image, on_digit, on_background]))).tolist()
            digit_drops.append(p0 - p_digit)
            background_drops.append(p0 - p_background)
    digit_drops, background_drops = np.array(digit_drops), np.array(background_drops)
    print(f"{len(digit_drops)} digits: mean drop of their class's probability {digit_drops.mean():.3f} hiding the "
          f"digit, {background_drops.mean():.3f} hiding as much background")
    assert len(digit_drops) >= 60
    assert digit_drops.mean() > background_drops.mean() + 0.2
    assert (digit_drops > background_drops).mean() >= 0.75


@pytest.mark.slow
@pytest.mark.xdist_group("explain-digits-run")
def test_occlusion_map_is_lowest_over_the_digit(digits_run, canvases):
    subject = prepare(digits_run)
    i, label = next((i, label) for i, label in _targets(canvases) if len(canvases.boxes(i, label)) == 1)
    result = occlusion.compute(subject, canvases.around(i, label)[None], targets=[Target(0, label)], window=4,
                               stride=2)
    entry = result.numbers["targets"][0]
    top, left = entry["lowest_at_square"]
    assert 2 <= top + 2 <= 14 and 2 <= left + 2 <= 14  # the square's centre lies on the digit's half
    assert entry["lowest_probability"] < entry["probability"] - 0.2
    assert result.arrays["probability_maps"].shape == (1, 7, 7)


@pytest.mark.slow
@pytest.mark.xdist_group("explain-digits-run")
def test_cam_and_gradcam_agree_on_a_global_average_pooling_network(digits_run, canvases):
    # With global average pooling and one linear layer, Grad-CAM's channel weights are the classifier's
    # weights divided by the map's positions: Grad-CAM = ReLU(CAM) / positions.
    subject = prepare(digits_run)
    batch = canvases.images[:4]
    maps = {method: cam.compute(subject, batch, method, target=3).numbers["targets"] for method in ("cam", "gradcam")}
    for cam_entry, grad_entry in zip(maps["cam"], maps["gradcam"]):
        cam_map, grad_map = np.array(cam_entry["map"]), np.array(grad_entry["map"])
        np.testing.assert_allclose(grad_map, np.maximum(cam_map, 0) / cam_map.size, rtol=1e-3, atol=1e-4)


def test_erf_of_a_network_of_linear_layers_is_its_theoretical_receptive_field_exactly():
    torch.manual_seed(0)
    linear = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 4, 3, stride=2, padding=1),
                           nn.AvgPool2d(2), nn.Conv2d(4, 4, 3, padding=2), nn.Conv2d(4, 2, (5, 3), padding=(0, 1)))
    result = explain(linear, torch.randn(2, 1, 64, 64), "erf", layer="4")
    numbers = result.numbers
    top, left, bottom, right = numbers["theoretical_box"]
    assert (bottom - top + 1, right - left + 1) == tuple(numbers["layer"]["receptive_field_pixels"]) == (31, 23)
    assert numbers["support_box"] == [top, left, bottom, right]
    support = result.arrays["erf"] > 0
    assert support[int(top):int(bottom) + 1, int(left):int(right) + 1].all()  # no hole inside the box
    assert support.sum() == (bottom - top + 1) * (right - left + 1)
    assert numbers["gradient_inside_box"] == 1.0


@pytest.mark.slow
@pytest.mark.xdist_group("explain-digits-run")
def test_erf_of_the_trained_resnet_lies_inside_its_theoretical_field_and_gathers_at_its_centre(digits_run, canvases):
    subject = prepare(digits_run)
    images = canvases.images[:8]
    big = torch.nn.functional.interpolate(images, size=(64, 64), mode="bilinear")  # layer2's field fits inside
    numbers = explain(subject, big, "erf", layer="layer2").numbers
    top, left, bottom, right = numbers["theoretical_box"]
    s_top, s_left, s_bottom, s_right = numbers["support_box"]
    assert 0 <= top and bottom < 64 and numbers["layer"]["receptive_field_pixels"] == [37, 37]
    assert top <= s_top and left <= s_left and s_bottom <= bottom and s_right <= right
    assert numbers["gradient_inside_box"] == 1.0
    # Luo et al.: the effective field is a fraction of the theoretical one.
    assert numbers["box_share_holding_90_percent"] < 0.5


@pytest.mark.slow
@pytest.mark.xdist_group("explain-digits-run")
def test_the_engine_writes_an_explain_gallery_of_test_images(digits_run):
    assert "explain gallery" in json.loads((digits_run / "config.json").read_text())["resolved"]["memory"]["phases"]
    index = json.loads((digits_run / "explain" / "index.json").read_text())
    assert set(index["methods"]) == {"feature-maps", "filters", "gradcam", "occlusion", "erf"}
    gradcam = json.loads((digits_run / "explain" / "gradcam" / "gradcam.json").read_text())
    assert len(gradcam["images"]) == 4 and len(gradcam["targets"]) == 4
    assert {t["class"] for t in gradcam["targets"]} <= set("0123456789")
    for entry in index["methods"].values():
        for png in entry["pngs"]:
            assert (digits_run / "explain" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
@pytest.mark.xdist_group("explain-digits-run")
def test_explain_command_writes_pngs_json_and_npz_for_an_image_file(digits_run, tmp_path, capsys):
    from PIL import Image

    digit = np.zeros((24, 24), dtype=np.uint8)
    digit[4:20, 10:14] = 255  # a one
    Image.fromarray(digit).save(tmp_path / "one.png")
    out = tmp_path / "explained"
    assert main(["explain", str(digits_run), str(tmp_path / "one.png"), "--method", "gradcam++", "--out",
                 str(out)]) == 0
    numbers = json.loads((out / "gradcam++" / "gradcam++.json").read_text())
    assert numbers["images"] == ["one"] and numbers["layer"]["layer"] == "layer3"
    assert np.load(out / "gradcam++" / "gradcam++.npz")["maps"].shape == (1, 16, 16)
    assert (out / "gradcam++" / "one.png").is_file()
    assert "gradcam++" in json.loads((out / "index.json").read_text())["methods"]
    assert "layer3" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.xdist_group("explain-digits-run")
def test_bad_requests_get_one_line_naming_the_fix(digits_run, tmp_path, capsys):
    subject = prepare(digits_run)
    batch = torch.zeros(1, 3, 16, 16)
    with pytest.raises(ExplainError, match="Did you mean layer3"):
        explain(subject, batch, "gradcam", layer="layer33")
    with pytest.raises(ExplainError, match="name one of its convolutions, e.g. layer1.0.conv1"):
        explain(subject, None, "filters", layer="layer1")
    with pytest.raises(ValueError, match="not one of resnet20's 10 classes"):
        explain(subject, batch, "gradcam", target="eleven")
    assert main(["explain", str(digits_run), "--method", "occlusion", "--out", str(tmp_path)]) == 2
    assert "occlusion needs images" in capsys.readouterr().err


def test_cam_refuses_a_network_whose_head_is_not_global_average_pooling():
    with pytest.raises(ExplainError, match="use gradcam"):
        explain(convzoo.create_model("lenet5"), torch.randn(1, 1, 32, 32), "cam")  # flattens S4 into C5/F6


def test_the_callers_model_keeps_its_in_place_activations():
    model = convzoo.create_model("resnet20", num_classes=3)
    subject = prepare(model)
    assert model.relu.inplace and not subject.model.relu.inplace
    assert not any(getattr(m, "inplace", False) for m in subject.model.modules())


def test_no_explain_flag_turns_the_gallery_off():
    from convzoo.cli import _training_settings, build_parser
    from convzoo.training import make_config

    args = build_parser().parse_args(["train", "lenet5", "--no-explain"])
    assert make_config("lenet5", **_training_settings(args)).explain is False
    assert make_config("lenet5").explain is True
