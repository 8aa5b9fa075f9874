"""Every subcommand with random flags and values, nonsense included: the command exits 0 or 2, prints no
traceback and no "internal error", and leaves every existing file as it was. Run in-process through
`convzoo.cli.main`. Commands that would train, search, benchmark or export for real always get one value that
is wrong on purpose (a missing data folder, an unknown model, a corrupt checkpoint), so they stop at
validation; the cheap ones (list, card, summary, compare, draw, nas show) may also run to the end."""
from __future__ import annotations

import argparse
import hashlib
import itertools
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from convzoo.cli import build_parser, main

from .conftest import fuzz_settings, time_limit

NONSENSE = ["0", "1", "-1", "2", "0.5", "-0.5", "1e9", "nan", "inf", "abc", "", "8", "32", "8x8", "3,8,8", "1,2",
            "lenet5", "resnet*", "--", "\x00", "é", "../..", "/dev/null"]


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(actions[0].choices) if actions else {}


def _commands() -> dict[tuple[str, ...], argparse.ArgumentParser]:
    """Every (sub)command of the parser as it is now: new commands are fuzzed without editing this file."""
    found = {}
    for name, sub in _subparsers(build_parser()).items():
        nested = _subparsers(sub)
        if nested:
            found.update({(name, inner): parser for inner, parser in nested.items()})
        else:
            found[(name,)] = sub
    return found


COMMANDS = _commands()
# Commands that do real work (training, a search, a benchmark, an export, inference) when every value is
# valid, and the value that makes each stop at validation.
STOPPED = {("train",): ["--data", "{tree}/no-such-folder"], ("lr-find",): ["--data", "{tree}/no-such-folder"],
           ("nas", "search"): ["--data", "{tree}/no-such-folder"], ("bench",): ["--models", "no-such-model"],
           ("export",): [], ("eval",): [], ("predict",): []}
# explore is left out: --serve runs until Ctrl-C by design, and no NAME builds the whole zoo's site (minutes)
del COMMANDS[("explore",)]
BAD_SOURCES = ["{tree}/corrupt.safetensors", "{tree}/config.json", "{tree}/image.png", "{tree}", "{tree}/missing",
               "no-such-model"]


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """Existing files a command could be pointed at (and must never change): a corrupt checkpoint, a JSON file,
    an image, an image folder of two classes."""
    root = tmp_path_factory.mktemp("tree")
    (root / "corrupt.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\": 1}      " + bytes(40))
    (root / "config.json").write_text('{"config": {"model": "lenet5"}}')
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(root / "image.png")
    for split, label in itertools.product(("train", "test"), ("a", "b")):
        (root / "images" / split / label).mkdir(parents=True)
        Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(root / "images" / split / label / "0.png")
    return root


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@st.composite
def command_lines(draw, command: tuple[str, ...], tree: Path, out: Path) -> list[str]:
    parser = COMMANDS[command]
    argv = list(command)
    values = st.sampled_from(NONSENSE + [str(tree / "images"), str(tree / "image.png"), str(tree / "config.json")])
    for action in parser._actions:
        if action.option_strings or action.dest in ("help",):
            continue
        if command in STOPPED and not STOPPED[command]:
            pool = st.sampled_from([s.format(tree=tree) for s in BAD_SOURCES])
        else:
            # a wildcard only where it lists names: compare would summarise every ResNet
            names = ["lenet5", "nas", "no-such-model", str(tree / "image.png")] + (["resnet*"] if command == ("list",)
                                                                                    else [])
            pool = st.sampled_from(names) if action.nargs in (None, "?", "+", "*") else values
        count = {None: 1, "?": draw(st.integers(0, 1)), "+": draw(st.integers(1, 2)), "*": draw(st.integers(0, 2))}
        argv += [draw(pool) for _ in range(count.get(action.nargs, 1))]
    options = [a for a in parser._actions if a.option_strings and a.dest not in ("help", "debug")]
    for action in draw(st.lists(st.sampled_from(options), max_size=5, unique_by=lambda a: a.dest)) if options else []:
        flag = draw(st.sampled_from(action.option_strings))
        if action.nargs == 0:
            argv.append(flag)
            continue
        if "out" in action.dest or action.dest in ("json", "markdown"):
            value = st.just(str(out / f"new-{len(argv)}"))  # a new path: writing it changes no existing file
        elif action.choices:
            value = st.sampled_from([*map(str, action.choices), "nonsense"])
        else:
            value = values
        argv += [flag] + [draw(value) for _ in range(2 if action.nargs in ("+", "*") and draw(st.booleans()) else 1)]
    argv += [part.format(tree=tree) for part in STOPPED.get(command, [])]
    return argv


def _exit_code(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as stop:  # argparse: 2 for a usage error (0 only for --help, never drawn)
        return stop.code


@pytest.mark.parametrize("command", sorted(COMMANDS), ids=" ".join)
@fuzz_settings(examples=10)
@given(data=st.data())
def test_any_flags_exit_0_or_2_without_a_traceback_and_change_no_file(command, data, tree, tmp_path_factory,
                                                                     capsys, monkeypatch):
    out = tmp_path_factory.mktemp("out")
    monkeypatch.chdir(out)  # a command's default output (draw's NAME.svg) lands here, not in the repository
    argv = data.draw(command_lines(command, tree, out))
    before = _hashes(tree)
    with time_limit(30):
        code = _exit_code(argv)
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert code in (0, 2), (argv, text[-2000:])
    assert "Traceback" not in text and "internal error" not in text, (argv, text[-2000:])
    if code == 2 and "usage:" not in text:  # a usage error is argparse's own; a refusal names the command
        assert "error:" in text, (argv, text[-2000:])
    assert _hashes(tree) == before, argv
