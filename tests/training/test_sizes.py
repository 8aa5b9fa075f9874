"""Sensible sizes for fully convolutional networks (issue 11, item 2): a segmentation network trains at its
data's own size when the data's images are smaller than the card's input, or at the smallest size it accepts."""
from __future__ import annotations

import numpy as np

from convzoo.data.facts import source_facts
from convzoo.registry import model_card
from convzoo.training import make_config
from convzoo.training.sizes import training_input_size


def _size(model: str, data: str, **settings):
    config = make_config(model, "segmentation" if model_card(model).task == "segmentation" else "quick", data=data,
                         **settings)
    return training_input_size(config, model_card(model), source_facts(data))


def test_unet_on_digits_seg_trains_at_the_canvases_own_size_and_says_so():
    size, why = _size("unet_padded", "digits-seg")
    assert size == (1, 64, 64)
    assert "digits-seg's own size" in why and "512x512" in why and "--input-size" in why


def test_a_network_whose_smallest_input_is_larger_than_the_data_trains_at_its_smallest():
    size, why = _size("unet", "digits-seg")  # valid convolutions: at least 185x185
    assert size == (1, 185, 185) and "smallest unet takes" in why and "64x64" in why


def test_an_explicit_input_size_and_a_classifier_keep_their_sizes():
    assert _size("unet_padded", "digits-seg", input_size=(32, 48)) == ((1, 32, 48), "--input-size")
    assert _size("lenet5", "digits") == ((1, 32, 32), "the network's own")


def test_a_segmentation_folder_trains_at_its_largest_image(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for name, (height, width) in {"a": (40, 30), "b": (20, 48)}.items():
        Image.fromarray(rng.integers(0, 255, (height, width), dtype=np.uint8)).save(tmp_path / "images" / f"{name}.png")
        Image.fromarray(np.zeros((height, width), dtype=np.uint8)).save(tmp_path / "masks" / f"{name}.png")
    size, why = _size("unet_padded", str(tmp_path))
    assert size == (1, 40, 48) and "own size" in why


def test_the_segmentation_recipe_gives_the_unets_a_quarter_of_the_widths_and_flags_override_it():
    assert make_config("unet_padded", "segmentation").model_args == {"widths": [16, 32, 64, 128, 256]}
    paper = [64, 128, 256, 512, 1024]
    assert make_config("unet_padded", "segmentation", model_args={"widths": paper}).model_args == {"widths": paper}
    assert make_config("deeplabv3_resnet50", "segmentation").model_args == {}
