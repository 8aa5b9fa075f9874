"""The static site: `build_site(["resnet18", "runs/lenet5-digits"], "site")` writes

    site/index.html                 the one page (hash routes: #/zoo, #/net/NAME, #/run/ID)
    site/explore.css, explore.js    written in this project (package data; no CDN, nothing fetched)
    site/data/zoo.js                the zoo table's rows and the list of pages
    site/data/net/NAME.js           a network page: card, drawing (SVG), summary rows
    site/data/run/ID.js             a run page: curves, predictions, confusion matrix, thumbnails
    site/runs/ID/...                the run's PNGs (curves, confusion matrix, worst predictions, explain/)

Data files are scripts that assign to `window.CONVZOO`, loaded by <script> tags, because a page opened from
disk (file://) may not fetch() its neighbours. Every file goes through the atomic writer.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from ..errors import OutputExistsError, UnknownModelError
from ..io import atomic_write_bytes, atomic_write_text, check_folder_path
from ..registry import list_models, model_card
from ..runtime import usable_cores
from .network import network_data, zoo_row
from ..training.checkpoint import read_checkpoint_description
from .run import run_data

STATIC_FILES = ("index.html", "explore.css", "explore.js")
SCRIPT_HEADER = b"/* convzoo explorer:"
PARALLEL_FROM = 8  # more networks than this are drawn by one process per usable core


@dataclass
class SiteReport:
    """What `build_site` wrote."""

    out: Path
    networks: list[str] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    seconds: float = 0.0
    bytes: int = 0
    files: int = 0

    @property
    def index(self) -> Path:
        return self.out / "index.html"


def split_items(items: Sequence[str]) -> tuple[list[str], list[Path]]:
    """Registered names (wildcards allowed) and run folders, in the order given; no items: the whole zoo."""
    from ..analysis.compare import expand_names

    names: list[str] = []
    runs: list[Path] = []
    for item in items:
        if Path(item).is_dir():
            runs.append(Path(item))
        elif Path(item).exists():
            raise UnknownModelError(f"{item!r} is a file: give a registered name or a `convzoo train` run folder")
        else:
            names += [n for n in expand_names([item]) if n not in names]
    if not items:
        names = list_models()
    return names, runs


def build_site(items: Sequence[str] = (), out: str | Path = "explore", progress: bool = False,
               predictions: bool = True, workers: int | None = None) -> SiteReport:
    """Write the explorer for `items` (registered names, wildcards, run folders; none: every registered
    network) into the folder `out` (a new or empty folder, or an earlier explorer's). A run's network gets its
    page too. `workers`: processes drawing the networks (default: one per usable core when there are more than
    PARALLEL_FROM networks, else this process). Returns what was written."""
    start = time.perf_counter()
    out = check_site_folder(out)
    names, runs = split_items(items)
    report = SiteReport(out=out)
    for path in runs:  # a run's network gets its page (the checkpoint's header names it)
        name = model_card(read_checkpoint_description(path)["model"]["name"]).name
        if name not in names:
            names.append(name)
    written = 0
    static = resources.files(__package__) / "static"
    for filename in STATIC_FILES:  # first: a folder whose build is interrupted is still known as the explorer's
        written += _copy(static / filename, out / filename)
    report.files += len(STATIC_FILES)
    zoo_rows = []
    for name, data in _network_pages(names, progress, workers):
        written += _write_js(out / "data" / "net" / f"{name}.js", f"CONVZOO.nets[{json.dumps(name)}]", data)
        zoo_rows.append(zoo_row(data))
        report.networks.append(name)
        report.files += 1
    run_rows = []
    for path in runs:  # after the networks: the predictions run real layers, the drawing workers never do
        data, files = run_data(path, predictions=predictions)
        for target, source in files.items():
            written += _copy(source, out / target)
            report.files += 1
        written += _write_js(out / "data" / "run" / f"{data['id']}.js", f"CONVZOO.runs[{json.dumps(data['id'])}]",
                             data)
        report.files += 1
        run_rows.append({"id": data["id"], "model": data["model"], "data": data["data"],
                         "results": data["results"]})
        report.runs.append(data["id"])
    zoo = {"networks": zoo_rows, "runs": run_rows, "built": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    written += _write_js(out / "data" / "zoo.js", "CONVZOO.zoo", zoo)
    report.files += 1
    report.bytes = written
    report.seconds = time.perf_counter() - start
    return report


def check_site_folder(out: str | Path) -> Path:
    """`out` is a folder the site may be written into: new, empty, or an earlier explorer's (data/zoo.js), so a
    folder of other files is never mixed with the site's."""
    path = check_folder_path(out, "--out ")
    if path.is_dir() and any(path.iterdir()) and not _holds_site(path):
        raise OutputExistsError(f"--out {str(path)!r} holds other files: give a new folder (or an earlier "
                                f"`convzoo explore` folder, which is updated)")
    return path


def _holds_site(path: Path) -> bool:
    """An explorer's folder (even one whose build was interrupted): its page script is ours."""
    script = path / "explore.js"
    return script.is_file() and script.read_bytes().startswith(SCRIPT_HEADER)


def _network_pages(names: list[str], progress: bool, workers: int | None) -> Iterator[tuple[str, dict]]:
    """(name, network_data(name)) for each name, in order, drawn here or by `workers` processes."""
    if workers is None:
        workers = usable_cores() if len(names) > PARALLEL_FROM else 1
    workers = max(1, min(workers, len(names)))
    if workers == 1:
        for name in _progress(names, progress, "networks"):
            yield name, network_data(name)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # Forked where the platform forks (as DataLoader workers are): the workers start with convzoo imported,
    # which spawning would pay again in each (seconds of CPU). build_site runs no layer before this point.
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    shown = _progress(names, progress, "networks")
    # The first network here: PyTorch's one-time meta-kernel warm-up, which forked workers then inherit.
    yield next(shown), network_data(names[0])
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method)) as pool:
        futures = [pool.submit(network_data, name) for name in names[1:]]
        for name, future in zip(shown, futures):
            yield name, future.result()


def _write_js(path: Path, target: str, data: Any) -> int:
    """A data file: one assignment to the page's global CONVZOO (JSON is JavaScript; `</` escaped so an SVG
    inside cannot end a script element)."""
    text = ("window.CONVZOO = window.CONVZOO || {nets: {}, runs: {}};\n" + f"{target} = " + json.dumps(data, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
            + ";\n")
    atomic_write_text(path, text)
    return len(text.encode())


def _copy(source, target: Path) -> int:
    data = source.read_bytes()
    atomic_write_bytes(target, data)
    return len(data)


def _progress(items: list[str], show: bool, what: str) -> Iterable[str]:
    if not show:
        yield from items
        return
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task(f"drawing {len(items)} {what}", total=len(items))
        for item in items:
            bar.update(task, description=f"drawing {item}")
            yield item
            bar.advance(task)
