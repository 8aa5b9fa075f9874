"""The command line's one error boundary: every mistake a user can make is one line naming the problem and
the fix (exit code 2, 130 for Ctrl-C); a bug is one line asking to report it (exit code 1); --debug shows the
traceback. Every numeric flag is checked when the command line is parsed, before any work."""
from __future__ import annotations

import argparse

import pytest

from convzoo import cli
from convzoo.cli import main
from convzoo.errors import Interrupted

# Every command that computes, with the arguments it needs to get as far as parsing.
COMPUTING = {
    "train": ["train", "lenet5"],
    "eval": ["eval", "run", "--data", "digits"],
    "predict": ["predict", "run", "image.png"],
    "export": ["export", "lenet5", "--out", "lenet5.onnx"],
    "bench": ["bench"],
    "nas search": ["nas", "search"],
}


def one_line_error(capsys, *fragments: str) -> str:
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err and captured.out == ""
    assert all(fragment in lines[0] for fragment in fragments), lines[0]
    return lines[0]


def parse_exit(argv) -> int:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    return exited.value.code


@pytest.mark.parametrize("command", list(COMPUTING))
@pytest.mark.parametrize("threads", ["0", "-1", "two"])
def test_every_computing_command_takes_threads_and_refuses_fewer_than_one(command, threads, capsys):
    assert parse_exit([*COMPUTING[command], "--threads", threads]) == 2
    one_line_error(capsys, "--threads", "at least 1", repr(threads))


@pytest.mark.parametrize("device", ["tpu", "cuda:0x"])
@pytest.mark.parametrize("command", ["train", "eval", "predict"])
def test_an_unknown_device_is_one_line_naming_the_devices(command, device, capsys):
    assert parse_exit([*COMPUTING[command], "--device", device]) == 2
    one_line_error(capsys, f"unknown device {device!r}", "cpu, cuda, cuda:N")


@pytest.mark.parametrize("flag, value, expected", [
    ("--epochs", "0", "at least 1"), ("-b", "-4", "at least 1"), ("--lr", "-0.1", "above 0"),
    ("--lr", "nan", "above 0"), ("--val-split", "0", "between 0 and 1"), ("--val-split", "1.5", "between 0 and 1"),
    ("--momentum", "2", "from 0 to 1"), ("--wd", "-1", "0 or more"), ("--seed", "x", "whole number"),
])
def test_numeric_training_flags_are_range_checked_when_parsed(flag, value, expected, capsys):
    assert parse_exit(["train", "lenet5", flag, value]) == 2
    one_line_error(capsys, flag, expected)


def test_out_naming_a_file_or_a_path_through_a_file_is_one_line(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("mine")
    assert parse_exit(["train", "lenet5", "--out", str(afile)]) == 2
    one_line_error(capsys, "is a file, not a folder", "name a folder")
    assert parse_exit(["train", "lenet5", "--out", str(afile / "run")]) == 2
    one_line_error(capsys, f"{str(afile)!r} is a file")
    assert parse_exit(["nas", "search", "--out", str(afile / "run")]) == 2
    one_line_error(capsys, f"{str(afile)!r} is a file")
    assert afile.read_text() == "mine"


def test_export_out_naming_a_folder_is_one_line(tmp_path, capsys):
    assert parse_exit(["export", "lenet5", "--out", str(tmp_path)]) == 2
    one_line_error(capsys, "is a folder", "name the file to write")


def _raising(error: BaseException):
    def run(args: argparse.Namespace) -> int:
        raise error
    return run


@pytest.fixture
def list_raises(monkeypatch):
    """`convzoo list` made to raise the given error, to see what the boundary does with it."""
    def make(error: BaseException) -> None:
        monkeypatch.setattr(cli, "_cmd_list", _raising(error))
    return make


@pytest.mark.parametrize("error, fragments", [
    (ValueError("--crf-param: no such setting; DenseCRF takes iterations"), ["error: --crf-param: no such setting"]),
    (PermissionError(13, "Permission denied", "/root/x.png"), ["Permission denied: '/root/x.png'", "permissions"]),
    (NotADirectoryError(20, "Not a directory", "a/b"), ["Not a directory: 'a/b'", "is a file, not a folder"]),
    (FileNotFoundError(2, "No such file or directory", "nothing.png"), ["'nothing.png'", "check the path"]),
])
def test_errors_a_user_causes_are_one_line_with_exit_code_2(list_raises, capsys, error, fragments):
    list_raises(error)
    assert main(["list"]) == 2
    one_line_error(capsys, "convzoo list: error:", *fragments)


def test_a_bug_is_one_line_asking_to_report_it_and_debug_shows_the_traceback(list_raises, capsys):
    list_raises(RuntimeError("shape mismatch"))
    assert main(["list"]) == 1
    err = capsys.readouterr().err
    assert "internal error: RuntimeError: shape mismatch" in err and "please report it" in err
    assert "Traceback" not in err
    with pytest.raises(RuntimeError, match="shape mismatch"):
        main(["list", "--debug"])


def test_ctrl_c_is_one_line_with_the_saved_message_and_exit_code_130(list_raises, capsys):
    list_raises(Interrupted("interrupted; continue with `convzoo train --resume runs/lenet5-digits`"))
    assert main(["list"]) == 130
    one_line_error(capsys, "--resume runs/lenet5-digits")
