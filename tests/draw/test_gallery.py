"""The course's figures: every registered network draws, and the gallery writes what docs/figures.md shows."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

import convzoo
from convzoo.draw import draw
from convzoo.draw.gallery import FIGURES, inception_bottleneck, inception_naive, write_course_figures
from convzoo.errors import OutputExistsError


@pytest.mark.slow
def test_every_registered_network_draws_at_its_card_input_size():
    for name in convzoo.list_models():
        drawing = draw(name)
        assert drawing.graph.input_size == convzoo.model_card(name).input_size or name == "nas"
        root = ET.fromstring(drawing.svg())
        assert root.get("data-model") == name
        assert len(drawing.graph.nodes) > 2, name
        assert drawing.graph.edges, name


def test_inception_figures_carry_the_courses_operation_counts():
    # The course's terms at a 28x28x256 input: H x W x C_out x k x k x C_in per convolution.
    naive = 28 * 28 * (128 * 1 * 256 + 192 * 9 * 256 + 96 * 25 * 256)
    reduced = 28 * 28 * (64 * 256 + 64 * 256 + 128 * 256 + 192 * 9 * 64 + 96 * 25 * 64 + 64 * 256)
    for make, total in ((inception_naive, naive), (inception_bottleneck, reduced)):
        drawing = make()
        assert sum(n.macs for n in drawing.graph.conv_nodes()) == total
        assert f"Total: {total / 1e6:.0f}M ops (multiply-adds)" in drawing.notes
    assert round(naive / 1e6) == 854 and round(reduced / 1e6) == 271


@pytest.mark.slow
def test_gallery_writes_every_figure_and_keeps_existing_ones(tmp_path):
    written = write_course_figures(tmp_path, formats=("svg",))
    assert sorted(p.name for p in written) == sorted(f"{f.stem}.svg" for f in FIGURES)
    before = (tmp_path / "unet.svg").read_text()
    with pytest.raises(OutputExistsError):
        write_course_figures(tmp_path, formats=("svg",))
    assert (tmp_path / "unet.svg").read_text() == before
