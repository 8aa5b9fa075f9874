"""Fixtures of the explorer's tests: a tiny digits run (LeNet-5, one epoch) and a site of the few networks the
tests need (never the whole zoo), built once a session; a headless Chromium driven by Playwright.

Locally the browser tests skip with a message when Playwright or Chromium is missing; under CI=true a missing
browser is a failure. Screenshots go to $CONVZOO_ARTIFACTS (else a temporary folder; the path is printed)."""
from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import pytest
from rich.console import Console

CHROMIUM = os.environ.get("CONVZOO_CHROMIUM", "/usr/bin/chromium")
SITE_NETWORKS = ("resnet18", "alexnet")  # + lenet5, the run's network


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory) -> Path:
    """LeNet-5, one epoch on the embedded digits: a finished run folder (with the engine's explain/ gallery)."""
    from convzoo.training import make_config, train

    out = tmp_path_factory.mktemp("explore-run") / "lenet5-digits"
    train(make_config("lenet5", data="digits", out=str(out), epochs=1, batch_size=64, threads=1),
          console=Console(file=io.StringIO()))
    return out


@pytest.fixture(scope="session")
def site(digits_run, tmp_path_factory):
    from convzoo.explore import build_site

    return build_site([*SITE_NETWORKS, str(digits_run)], out=tmp_path_factory.mktemp("explore") / "site")


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory) -> Path:
    folder = Path(os.environ["CONVZOO_ARTIFACTS"]) / "explore" if os.environ.get("CONVZOO_ARTIFACTS") \
        else tmp_path_factory.mktemp("explore-screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nexplorer screenshots: {folder}")
    return folder


@pytest.fixture(scope="session")
def browser():
    missing = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing = "playwright is not installed (pip install playwright; the `test` extra has it)"
    if missing is None and not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        missing = f"Chromium is not at {CHROMIUM} (apt-get install chromium; .ci/run does)"
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the browser tests need a browser under CI: {missing}")
        pytest.skip(missing)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield chromium
        chromium.close()


class PageProblems:
    """What a page must not do: log a console error, throw, or ask for anything but its own files."""

    def __init__(self, page):
        self.errors: list[str] = []
        self.requests: list[str] = []
        page.on("console", lambda message: self.errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("request", lambda request: None if request.url.startswith(("file:", "data:", "blob:"))
                else self.requests.append(request.url))

    def check(self) -> None:
        assert self.errors == [], f"console errors: {self.errors}"
        assert self.requests == [], f"the page asked the network for: {self.requests}"


@pytest.fixture
def page(browser):
    """A page at projector size whose console errors and network requests are checked after the test."""
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    opened = context.new_page()
    problems = PageProblems(opened)
    yield opened
    context.close()
    problems.check()
