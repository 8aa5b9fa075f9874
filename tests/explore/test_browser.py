"""The explorer in a real browser (headless Chromium): the generated files opened from disk, as a student would."""
from __future__ import annotations

import json

import pytest

import convzoo
from convzoo.registry import model_card

# A browser and a training run: several seconds. One xdist worker runs them all, so the run, the site and the
# browser (session fixtures, conftest.py) are made once, not once a worker.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("explore-browser")]


def open_site(page, site, route: str) -> None:
    page.goto(site.index.as_uri() + route)
    page.wait_for_function("document.querySelector('main h1') !== null")


def shown_rows(page) -> list[str]:
    return page.eval_on_selector_all("#zoo-table tbody tr", "rows => rows.map(r => r.dataset.name)")


def test_the_zoo_table_filters_as_you_type_sorts_and_charts(page, site, artifacts):
    open_site(page, site, "#/zoo")
    assert sorted(shown_rows(page)) == ["alexnet", "lenet5", "resnet18"]
    page.press("body", "/")  # the filter's key
    page.keyboard.type("resnet")
    assert shown_rows(page) == ["resnet18"]
    assert page.text_content("#zoo-count") == "1 of 3 networks"
    page.fill("#zoo-filter", "1998")  # the year: LeNet-5's paper
    assert shown_rows(page) == ["lenet5"]
    page.fill("#zoo-filter", "")
    page.click("button[data-sort=params]")
    assert shown_rows(page) == sorted(["alexnet", "lenet5", "resnet18"], key=lambda n: model_card(n).params)
    page.click("button[data-sort=params]")  # again: largest first
    assert shown_rows(page)[0] == "alexnet"
    params = page.text_content("#zoo-table tr[data-name=resnet18] td:nth-child(5)")
    assert params == f"{convzoo.summary('resnet18').total_params:,}"
    # The chart: one bubble per network reporting an ImageNet top-1 error (LeNet-5 reports MNIST's).
    bubbles = page.eval_on_selector_all("#zoo-chart .bubble", "gs => gs.map(g => g.dataset.name).sort()")
    assert bubbles == ["alexnet", "resnet18"]
    page.hover("#zoo-chart .bubble[data-name=resnet18] circle")
    assert "11,689,512 parameters" in page.text_content("#tooltip")
    page.screenshot(path=str(artifacts / "zoo.png"), full_page=True)
    page.focus("#zoo-chart .bubble[data-name=resnet18]")
    page.keyboard.press("Enter")  # the click-through, from the keyboard
    page.wait_for_selector("#net-a[data-model=resnet18]")


@pytest.mark.parametrize("layer", ["layer2.0.conv1", "layer3.0.downsample.0"])
def test_clicking_a_resnet18_layer_shows_its_summary_row(page, site, artifacts, layer):
    open_site(page, site, "#/net/resnet18")
    node = f"#net-a [id='n-{layer}']"
    page.focus(node)  # brings the layer into view, as Tab does
    page.click(node)
    page.wait_for_selector(f"#row-table[data-path='{layer}']")
    shown = dict(page.eval_on_selector_all("#row-table tr", "rows => rows.map(r => [r.dataset.field, "
                                           "r.querySelector('td').textContent])"))
    row = next(r for r in convzoo.summary("resnet18").rows if r.name == layer)
    assert shown["layer"] == layer and shown["type"] == row.type
    assert shown["output shape"] == " x ".join(map(str, row.output_shape))
    assert shown["parameters"] == f"{row.params:,}"
    assert shown["MACs"] == f"{row.macs:,}"
    assert shown["receptive field (px)"] == str(row.receptive_field[0])
    assert shown["jump (px)"] == str(row.jump[0]) and shown["start (px)"] == str(row.start[0])
    assert shown["output memory"].startswith(f"{row.activations * 4 / 1024:.2f} KiB")
    # The receptive field drawn at output position (0, 0): centred on start, rf wide.
    page.fill("#rf-row", "0")
    page.fill("#rf-col", "0")
    first = row.start[0] - (row.receptive_field[0] - 1) / 2
    last = first + row.receptive_field[0] - 1
    text = page.text_content("#rf-text")
    assert f"rows {first:g} to {last:g}" in text and "padding" in text
    page.screenshot(path=str(artifacts / f"resnet18-{layer}.png"))


def test_a_second_network_opens_beside_the_first_and_stages_collapse(page, site, artifacts):
    open_site(page, site, "#/net/resnet18")
    page.select_option("#beside", "alexnet")
    page.wait_for_selector("#net-b[data-model=alexnet] svg")
    assert page.get_attribute("#net-a", "data-model") == "resnet18"
    hidden_before = page.eval_on_selector_all("#net-a .node.hidden-by-frame", "ns => ns.length")
    page.check("#net-a .stages input >> nth=1")  # collapse the second top-level frame
    hidden = page.eval_on_selector_all("#net-a .node.hidden-by-frame", "ns => ns.map(n => n.dataset.path)")
    assert hidden_before == 0 and hidden and all(path.startswith("layer") for path in hidden)
    page.keyboard.press("Tab")
    page.screenshot(path=str(artifacts / "resnet18-beside-alexnet.png"))


def test_a_run_page_shows_the_test_images_of_a_confusion_matrix_cell(page, site, digits_run, artifacts):
    results = json.loads((digits_run / "results.json").read_text())
    open_site(page, site, "#/run/" + digits_run.name)
    matrix = page.eval_on_selector_all("#confusion tbody tr", "rows => rows.map(r => "
                                       "[...r.querySelectorAll('button')].map(b => +b.textContent))")
    assert matrix == results["confusion_matrix"]  # predicted here again, from the checkpoint: the same
    classes = results.get("classes") or [str(d) for d in range(10)]
    true, predicted = max(((t, p) for t in range(10) for p in range(10) if t != p), key=lambda c: matrix[c[0]][c[1]])
    page.click(f"#confusion button[data-true='{true}'][data-pred='{predicted}']")
    captions = page.eval_on_selector_all("#cell-images .thumb figcaption", "cs => cs.map(c => c.textContent)")
    assert len(captions) == matrix[true][predicted] > 0
    assert all(f"true {classes[true]}" in c and f"pred {classes[predicted]}" in c for c in captions)
    assert page.eval_on_selector_all("#cell-images img", "imgs => imgs.every(i => i.naturalWidth > 0)")
    worst = page.eval_on_selector_all("#worst .thumb", "ts => ts.length")
    assert worst == len(results["worst_predictions"])
    # The engine's explain/ gallery of the run (docs/explain.md): every method, every picture loaded.
    gallery = json.loads((digits_run / "explain" / "index.json").read_text())
    methods = page.eval_on_selector_all("#explain-pictures section h3", "hs => hs.map(h => h.textContent)")
    assert sorted(methods) == sorted(gallery["methods"])
    assert page.eval_on_selector_all("#explain-pictures img", "imgs => imgs.length > 1 && imgs.every(i => i.naturalWidth > 0)")
    page.screenshot(path=str(artifacts / "run.png"), full_page=True)


def write_gallery(run, tmp_path):
    """A copy of `run` with an explain/ gallery in docs/explain.md's layout (the explain helper's engine writes
    one at the end of a run): index.json listing each method's PNGs, named after the test image they show
    (filters: of no image)."""
    import shutil

    from PIL import Image

    copy = tmp_path / "lenet5-explained"
    shutil.copytree(run, copy)
    shutil.rmtree(copy / "explain", ignore_errors=True)  # the engine's own gallery, replaced by this one
    entries = {}
    for method, names in (("gradcam", ["test0", "test3"]), ("feature-maps", ["test0_c1", "test3_c1", "test3_c3"]),
                          ("filters", ["c1"])):
        for k, name in enumerate(names):
            colour = (40 * k, 120, 200)
            path = copy / "explain" / method / f"{name}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (64, 48), colour).save(path)
        entries[method] = {"method": method, "model": "lenet5", "json": f"{method}/{method}.json",
                           "pngs": [f"{method}/{name}.png" for name in names]}
    (copy / "explain" / "index.json").write_text(json.dumps({"format": 1, "methods": entries}))
    return copy


def test_a_run_page_shows_the_explain_pictures_of_the_chosen_test_image(page, digits_run, tmp_path, artifacts):
    from convzoo.explore import build_site

    run = write_gallery(digits_run, tmp_path)
    site = build_site([str(run)], out=tmp_path / "site")
    open_site(page, site, "#/run/" + run.name)
    options = page.eval_on_selector_all("#explain-image option", "os => os.map(o => o.value)")
    assert options == ["test0", "test3"]
    page.select_option("#explain-image", "test3")
    shown = page.eval_on_selector_all("#explain-pictures img", "imgs => imgs.map(i => [i.alt, i.naturalWidth])")
    assert shown[0][0] == "test image 3" and shown[0][1] > 0  # the image as the network saw it, then its pictures
    assert shown[1:] == [["gradcam: test3", 64], ["feature-maps: test3_c1", 64], ["feature-maps: test3_c3", 64],
                         ["filters: c1", 64]]
    page.screenshot(path=str(artifacts / "run-explain.png"), full_page=True)
