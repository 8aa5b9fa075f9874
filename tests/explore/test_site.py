"""The explorer's site as files: what build_site writes, the command, the local server (no browser needed)."""
from __future__ import annotations

import json
import threading
import urllib.request
from pathlib import Path

import pytest

import convzoo
from convzoo.cli import main
from convzoo.explore import build_site, network_data
from convzoo.explore.server import make_server


def read_data(path: Path) -> dict:
    """A data script's JSON: `CONVZOO.x[...] = {...};` after the line that makes CONVZOO."""
    text = path.read_text().split("\n", 1)[1]
    return json.loads(text[text.index("= ") + 2:].rstrip().rstrip(";").replace("<\\/", "</"))


def test_a_network_page_holds_the_drawing_and_the_summary_rows_of_one_trace():
    data = network_data("lenet5")
    report = convzoo.summary("lenet5")
    assert [(r["name"], r["call"], r["params"], r["macs"]) for r in data["rows"]] == \
        [(r.name, r.call, r.params, r.macs) for r in report.rows]
    assert data["totals"]["params"] == report.total_params == data["card"]["card_params"]
    # Every drawn layer's node names a row (docs/figures.md: node ids are summary row paths).
    paths = {(r["name"], r["call"]) for r in data["rows"]}
    import re
    nodes = re.findall(r'class="node [a-z]+" data-path="([^"]*)" data-call="(\d+)"', data["svg"])
    assert nodes and all((path, int(call)) in paths for path, call in nodes)
    assert data["totals"]["receptive_field"] == 32  # C5 sees the whole 32x32 field (LeNet-5's design)


def test_explore_writes_a_site_that_names_no_outside_file(tmp_path, capsys):
    out = tmp_path / "site"
    assert main(["explore", "lenet5", "--out", str(out)]) == 0
    assert "explorer written to" in capsys.readouterr().out
    zoo = read_data(out / "data" / "zoo.js")
    assert [row["name"] for row in zoo["networks"]] == ["lenet5"]
    assert zoo["networks"][0]["error"] == 0.95 and zoo["networks"][0]["error_key"] == "mnist_error"
    page = (out / "index.html").read_text()
    assert "http" not in page and "//" not in page.replace("<!--", "")  # no CDN, nothing from elsewhere
    assert main(["explore", "lenet5", "--out", str(out)]) == 0  # an earlier explorer's folder is updated


def test_explore_refuses_a_folder_of_other_files_in_one_line(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["explore", "lenet5", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "holds other files" in err and "\n" not in err
    assert (tmp_path / "notes.txt").read_text() == "mine" and not (tmp_path / "index.html").exists()


def test_explore_refuses_an_unknown_name_and_a_bad_port(tmp_path, capsys):
    assert main(["explore", "resnet_nonexistent", "--out", str(tmp_path / "s")]) == 2
    assert "resnet_nonexistent" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["explore", "--serve", "--port", "70000"])
    assert exit_info.value.code == 2 and "65535" in capsys.readouterr().err


def test_the_server_serves_the_site_on_localhost_only(tmp_path):
    site = build_site(["lenet5"], out=tmp_path / "site")
    server = make_server(site.out, port=0)
    host, port = server.server_address[:2]
    assert host == "127.0.0.1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/data/net/lenet5.js", timeout=10) as response:
            assert response.read() == (site.out / "data" / "net" / "lenet5.js").read_bytes()
    finally:
        server.shutdown()
        server.server_close()
