"""The search space: the controller's steps, uniform random layers, specs made and checked against it."""
from __future__ import annotations

import random
from collections import Counter

import pytest

from convzoo.nas import SearchSpace, SpecError, spec_key, validate_spec


def test_layer_choices_in_the_controllers_order():
    space = SearchSpace()
    assert space.layer_choices() == [("num_filters", (24, 36, 48, 64)), ("filter_height", (1, 3, 5, 7)),
                                     ("filter_width", (1, 3, 5, 7))]
    strided = SearchSpace(strides=(1, 2, 3))
    assert strided.layer_choices()[-1] == ("stride", (1, 2, 3))
    assert len(strided.layer_choices()) == 4


def test_random_layers_are_uniform_and_reproducible():
    space = SearchSpace(filter_sizes=(1, 3), num_filters=(4, 8, 16), strides=(1, 2))
    layers = space.random_layers(6, random.Random(7))
    assert layers == space.random_layers(6, random.Random(7))
    assert layers != space.random_layers(6, random.Random(8))
    assert layers[0]["inputs"] == []
    for i, layer in enumerate(layers):
        assert set(layer) == {"num_filters", "filter_height", "filter_width", "stride", "inputs"}
        assert all(j < i for j in layer["inputs"])

    rng = random.Random(0)
    draws = [space.random_layers(4, rng) for _ in range(3000)]
    filters = Counter(layer["num_filters"] for layers in draws for layer in layers)
    assert all(abs(filters[v] / 12000 - 1 / 3) < 0.02 for v in (4, 8, 16))
    strides = Counter(layer["stride"] for layers in draws for layer in layers)
    assert abs(strides[2] / 12000 - 0.5) < 0.02
    # Each anchor (layer 3 reading layer j) with probability 1/2, independently.
    for j in range(3):
        assert abs(sum(j in layers[3]["inputs"] for layers in draws) / 3000 - 0.5) < 0.04
    assert abs(sum(layers[3]["inputs"] == [] for layers in draws) / 3000 - 1 / 8) < 0.03


def test_a_fixed_stride_is_written_but_not_drawn():
    space = SearchSpace(strides=(2,))
    a = space.random_layers(3, random.Random(1))
    assert all(layer["stride"] == 2 for layer in a)
    # No draw for the stride: the same generator gives the same other choices as a stride-1 space.
    b = SearchSpace(strides=(1,)).random_layers(3, random.Random(1))
    assert [{**layer, "stride": 0} for layer in a] == [{**layer, "stride": 0} for layer in b]


def test_make_spec_gives_a_valid_spec_in_the_space():
    space = SearchSpace(num_filters=(4, 8))
    layers = space.random_layers(4, random.Random(3))
    spec = space.make_spec(layers, (1, 8, 8), meta={"method": "random", "index": 3})
    assert validate_spec(spec) == spec
    assert spec["meta"] == {"method": "random", "index": 3}
    assert spec["input_size"] == [1, 8, 8]
    space.check(spec)
    assert spec_key(spec) == spec_key(space.make_spec(layers, (1, 8, 8)))


def test_make_spec_refuses_a_filter_the_input_cannot_take():
    space = SearchSpace(filter_sizes=(1, 7), strides=(1, 3))
    layers = [{"num_filters": 24, "filter_height": 1, "filter_width": 1, "stride": 3, "inputs": []},
              {"num_filters": 24, "filter_height": 7, "filter_width": 1, "stride": 1, "inputs": [0]}]
    with pytest.raises(SpecError, match=r"layers\[1\]\.filter_height: 7 is larger"):
        space.make_spec(layers, (1, 8, 8))  # 8 -> stride 3 -> 3 rows take filters up to 5


@pytest.mark.parametrize("field, value, named", [
    ("num_filters", 100, "num_filters are [24, 36, 48, 64]"),
    ("filter_height", 9, "filter_sizes are [1, 3, 5, 7]"),
    ("filter_width", 9, "filter_sizes are [1, 3, 5, 7]"),
    ("stride", 2, "strides are [1]"),
])
def test_check_names_fields_outside_the_space(field, value, named):
    space = SearchSpace()
    spec = space.make_spec(space.random_layers(3, random.Random(0)), (1, 32, 32))
    spec["layers"][2][field] = value
    with pytest.raises(SpecError) as caught:
        space.check(spec)
    assert str(caught.value) == f"layers[2].{field}: {value} is outside the search space, whose {named}"


def test_check_validates_first():
    with pytest.raises(SpecError, match="format"):
        SearchSpace().check({"format": "other", "version": 1, "input_size": [1, 8, 8], "layers": []})


def test_dict_round_trip():
    space = SearchSpace(filter_sizes=(1, 3), num_filters=(8,), strides=(1, 2, 3))
    assert space.to_dict() == {"filter_sizes": [1, 3], "num_filters": [8], "strides": [1, 2, 3]}
    assert SearchSpace.from_dict(space.to_dict()) == space
    assert SearchSpace.from_dict({}) == SearchSpace()
    assert hash(SearchSpace.from_dict(space.to_dict())) == hash(space)


@pytest.mark.parametrize("values, message", [
    ({"filter_sizes": (1, 4)}, "filter_sizes: must be odd"),
    ({"num_filters": ()}, "num_filters: must hold at least one value"),
    ({"strides": (0, 1)}, "strides: must be positive integers"),
    ({"num_filters": (8, 8)}, "lists a value twice"),
    ({"num_filters": 8}, "must be a list of positive integers"),
])
def test_bad_spaces_are_refused(values, message):
    with pytest.raises(ValueError, match=message):
        SearchSpace(**values)


def test_unknown_space_settings_are_named():
    with pytest.raises(ValueError, match="unknown search space settings: kernels; allowed: filter_sizes"):
        SearchSpace.from_dict({"kernels": [3]})
