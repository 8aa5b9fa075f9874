"""The NAS architecture spec: validation errors that name the field and what it may hold, normalisation,
the architecture key used to deduplicate, and spec files, search folders and run folders as sources."""
from __future__ import annotations

import copy
import json

import pytest

from convzoo.nas import (
    EXAMPLE_SPEC,
    SpecError,
    SpecFileNotFoundError,
    load_spec,
    save_spec,
    spec_key,
    spec_min_input_size,
    validate_spec,
)


def layer(num_filters=8, fh=3, fw=3, stride=1, inputs=()):
    return {"num_filters": num_filters, "filter_height": fh, "filter_width": fw, "stride": stride,
            "inputs": list(inputs)}


def make(layers, input_size=(1, 8, 8), **extra):
    return {"format": "convzoo-nas-spec", "version": 1, "input_size": list(input_size), "layers": layers, **extra}


SMALL = make([layer(), layer(inputs=[0]), layer(fh=1, fw=5, inputs=[0, 1])], meta={"method": "test"})


def broken(edit):
    spec = copy.deepcopy(SMALL)
    edit(spec)
    return spec


def _set(path, value):
    def edit(spec):
        target = spec
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return edit


def _delete(path):
    def edit(spec):
        target = spec
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]
    return edit


# (what is wrong, the edit, the field the message must name, words saying what is allowed)
ERRORS = [
    ("unknown top-level field", _set(["layer"], []), "layer", "allowed: format, version, input_size, layers, meta"),
    ("unknown layer field", _set(["layers", 1, "dilation"], 2), "layers[1].dilation", "allowed: num_filters"),
    ("missing field", _delete(["layers", 2, "num_filters"]), "layers[2].num_filters", "missing (required)"),
    ("missing layers", _delete(["layers"]), "layers", "missing (required)"),
    ("wrong type", _set(["layers", 0, "filter_width"], "3"), "layers[0].filter_width", "odd positive integer"),
    ("float filter count", _set(["layers", 0, "num_filters"], 8.0), "layers[0].num_filters", "positive integer"),
    ("bool is no integer", _set(["layers", 0, "stride"], True), "layers[0].stride", "positive integer"),
    ("even filter size", _set(["layers", 1, "filter_height"], 4), "layers[1].filter_height", "must be odd"),
    ("zero filter size", _set(["layers", 1, "filter_width"], 0), "layers[1].filter_width", "odd positive integer"),
    ("negative filter size", _set(["layers", 1, "filter_width"], -3), "layers[1].filter_width", "positive"),
    ("no filters", _set(["layers", 2, "num_filters"], 0), "layers[2].num_filters", "positive integer"),
    ("stride below 1", _set(["layers", 0, "stride"], 0), "layers[0].stride", "positive integer"),
    ("forward reference", _set(["layers", 1, "inputs"], [2]), "layers[1].inputs[0]", "allowed: 0 to 0"),
    ("cycle", _set(["layers", 0, "inputs"], [1]), "layers[0].inputs[0]", "layer 0 reads the image"),
    ("self reference", _set(["layers", 2, "inputs"], [0, 2]), "layers[2].inputs[1]", "earlier layers (0 to 1)"),
    ("negative index", _set(["layers", 2, "inputs"], [-1]), "layers[2].inputs[0]", "allowed: 0 to 1"),
    ("input listed twice", _set(["layers", 2, "inputs"], [0, 0]), "layers[2].inputs", "name each input layer once"),
    ("inputs not a list", _set(["layers", 2, "inputs"], 0), "layers[2].inputs", "list of earlier layer indices"),
    ("future version", _set(["version"], 2), "version", "versions up to 1"),
    ("version zero", _set(["version"], 0), "version", "positive integer"),
    ("wrong format tag", _set(["format"], "nni-arch"), "format", "must be 'convzoo-nas-spec'"),
    ("empty layers", _set(["layers"], []), "layers", "non-empty list"),
    ("layer not an object", _set(["layers", 1], [8, 3, 3]), "layers[1]", "must be an object"),
    ("input size of two", _set(["input_size"], [8, 8]), "input_size", "[C, H, W]"),
    ("input size zero", _set(["input_size", 1], 0), "input_size[1]", "positive integer"),
    ("meta not an object", _set(["meta"], "reinforce"), "meta", "must be an object"),
    ("meta not JSON", _set(["meta", "reward"], float("nan")), "meta", "JSON values only"),
    ("filter larger than the input can take", _set(["layers", 1, "filter_height"], 17), "layers[1].filter_height",
     "at most 15"),
]


@pytest.mark.parametrize("what, edit, field, allowed", ERRORS, ids=[e[0] for e in ERRORS])
def test_errors_name_the_field_and_what_is_allowed(what, edit, field, allowed):
    with pytest.raises(SpecError) as caught:
        validate_spec(broken(edit))
    message = str(caught.value)
    assert message.startswith(f"{field}:"), message
    assert allowed in message, message


def test_a_spec_that_is_not_an_object():
    with pytest.raises(SpecError, match="spec: must be an object"):
        validate_spec([layer()])


def test_strides_shrink_what_a_later_filter_can_take():
    # 8 -> stride 2 -> 4 -> stride 2 -> 2: the third layer's input is 2 high, so it takes filters up to 3.
    ok = make([layer(stride=2), layer(stride=2, inputs=[0]), layer(fh=3, fw=1, inputs=[1])])
    validate_spec(ok)
    too_tall = make([layer(stride=2), layer(stride=2, inputs=[0]), layer(fh=5, fw=1, inputs=[1])])
    with pytest.raises(SpecError, match=r"^layers\[2\]\.filter_height: 5 is larger .* height 2 .* at most 3"):
        validate_spec(too_tall)
    # Reading layer 0 as well, its input is zero-padded to layer 0's 4x4, which takes a 5-tall filter.
    validate_spec(make([layer(stride=2), layer(stride=2, inputs=[0]), layer(fh=5, fw=1, inputs=[0, 1])]))


def test_normalisation_fills_the_stride_and_sorts_inputs():
    spec = make([{"num_filters": 4, "filter_height": 1, "filter_width": 3, "inputs": []}, layer(inputs=[0]),
                 layer(inputs=[1, 0])])
    normal = validate_spec(spec)
    assert normal["layers"][0]["stride"] == 1
    assert normal["layers"][2]["inputs"] == [0, 1]
    assert normal["meta"] == {}
    assert spec["layers"][2]["inputs"] == [1, 0] and "stride" not in spec["layers"][0]  # the input is left alone
    assert validate_spec(normal) == normal


def test_spec_key_is_the_architecture():
    same = copy.deepcopy(SMALL)
    same["layers"][2]["inputs"] = [1, 0]
    same["meta"] = {"method": "random", "reward": 0.5}
    same["layers"][0] = dict(reversed(list(same["layers"][0].items())))  # key order
    del same["layers"][1]["stride"]  # the default written out or not
    assert spec_key(same) == spec_key(SMALL)
    key = spec_key(SMALL)
    assert isinstance(key, str) and len(key) == 16
    for edit in (_set(["layers", 1, "num_filters"], 9), _set(["layers", 2, "inputs"], [1]),
                 _set(["layers", 0, "stride"], 2), _set(["layers", 2, "filter_width"], 3),
                 _set(["input_size"], [3, 8, 8]), _set(["input_size"], [1, 9, 8])):
        assert spec_key(broken(edit)) != key
    # Swapping height and width (1x5 -> 5x1) is another architecture.
    swapped = copy.deepcopy(SMALL)
    swapped["layers"][2].update(filter_height=5, filter_width=1)
    assert spec_key(swapped) != key


def test_smallest_input_follows_strides_and_filters():
    assert spec_min_input_size(validate_spec(make([layer(fh=1, fw=1)]))) == (1, 1)
    assert spec_min_input_size(validate_spec(make([layer(fh=7, fw=3)]))) == (4, 2)  # f <= 2 side - 1
    # Stride 3 then a 5-tall filter: its input ceil(h / 3) must be at least 3, so h >= 7.
    shrinking = validate_spec(make([layer(stride=3, fh=1, fw=1), layer(fh=5, fw=1, inputs=[0])], (1, 9, 9)))
    assert spec_min_input_size(shrinking) == (7, 1)
    assert spec_min_input_size(validate_spec(EXAMPLE_SPEC)) == (7, 7)


def test_save_and_load_round_trip(tmp_path):
    path = save_spec(SMALL, tmp_path / "sub" / "spec.json")
    assert load_spec(path) == validate_spec(SMALL)
    assert load_spec(str(path)) == load_spec(SMALL)
    assert json.loads(path.read_text())["format"] == "convzoo-nas-spec"
    assert not [p for p in path.parent.iterdir() if p.name != "spec.json"]  # no temp file left
    with pytest.raises(SpecError, match="num_filters"):
        save_spec(broken(_set(["layers", 0, "num_filters"], -1)), tmp_path / "bad.json")
    assert not (tmp_path / "bad.json").exists()


def test_a_search_folder_gives_its_best_spec(tmp_path):
    save_spec(SMALL, tmp_path / "best.json")
    assert load_spec(tmp_path) == validate_spec(SMALL)


def test_file_errors_say_which_file(tmp_path):
    with pytest.raises(SpecFileNotFoundError, match="does not exist"):
        load_spec(tmp_path / "missing.json")
    with pytest.raises(FileNotFoundError, match="holds no best.json"):
        load_spec(tmp_path)
    (tmp_path / "broken.json").write_text("{\"format\": ")
    with pytest.raises(SpecError, match="broken.json.*not a JSON spec file"):
        load_spec(tmp_path / "broken.json")
    (tmp_path / "wrong.json").write_text(json.dumps(broken(_set(["layers", 1, "stride"], 0))))
    with pytest.raises(SpecError, match=r"wrong.json.*layers\[1\]\.stride"):
        load_spec(tmp_path / "wrong.json")
    with pytest.raises(SpecError, match="a dict or the path"):
        load_spec(42)
