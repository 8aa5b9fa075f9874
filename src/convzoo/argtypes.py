"""Parse-time types of the command line's flags: every number is range-checked, every device and output path
checked, before any work starts (argparse turns the message into one line and exit code 2). Every command's
flags use these, including the ones added beside cli.py (bench.add_bench_arguments): `type=positive_int`, etc.
"""
from __future__ import annotations

import argparse
import math
from typing import Callable

from .errors import ConvzooError


def _checked(kind: type, ok: Callable[[float], bool], what: str, name: str) -> Callable[[str], float]:
    """A parse-time type: `text` read as `kind` (finite), accepted when ok(value), else "expected `what`"."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or (isinstance(value, float) and not math.isfinite(value)) or not ok(value):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value
    parse.__name__ = name  # argparse names the type in its own messages
    return parse


positive_int = _checked(int, lambda v: v >= 1, "a whole number of at least 1", "positive_int")
non_negative_int = _checked(int, lambda v: v >= 0, "a whole number of 0 or more", "non_negative_int")
any_int = _checked(int, lambda v: True, "a whole number", "any_int")
positive_float = _checked(float, lambda v: v > 0, "a number above 0", "positive_float")
non_negative_float = _checked(float, lambda v: v >= 0, "a number of 0 or more", "non_negative_float")
# A fraction strictly between 0 and 1 (a validation split); a number from 0 to 1 (a momentum, a decay).
fraction = _checked(float, lambda v: 0 < v < 1, "a fraction between 0 and 1 (both excluded), e.g. 0.1", "fraction")
port = _checked(int, lambda v: 0 <= v <= 65535, "a port number from 1 to 65535 (0: any free port)", "port")
unit_interval = _checked(float, lambda v: 0 <= v <= 1, "a number from 0 to 1, e.g. 0.9", "unit_interval")


def threads(text: str) -> int:
    try:
        return positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected a number of CPU threads of at least 1, got {text!r} "
                                         f"(leave --threads out to let convzoo choose)") from None


def device(text: str) -> str:
    from .runtime import check_device

    try:
        return check_device(text)
    except ConvzooError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def out_folder(text: str) -> str:
    """A folder to write into (made if missing): not a file, and under folders, not files."""
    from .io import check_folder_path

    try:
        check_folder_path(text)
    except ConvzooError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def out_file(text: str) -> str:
    """A file to write: not a folder, and under folders, not files."""
    from .io import check_file_path

    try:
        check_file_path(text)
    except ConvzooError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser whose errors are one line (the problem, the fix, where the help is), not the usage."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def add_threads_argument(parser: argparse.ArgumentParser | argparse._ArgumentGroup, default=None) -> None:
    """--threads N on a command that computes (convzoo.runtime's policy chooses when it is left out)."""
    parser.add_argument("--threads", type=threads, default=default, metavar="N",
                        help="CPU threads (default: half the usable cores, at least 1; see convzoo.runtime)")


def add_device_argument(parser: argparse.ArgumentParser | argparse._ArgumentGroup, default="cpu") -> None:
    parser.add_argument("--device", type=device, default=default, help="auto, cpu, cuda, cuda:1 or mps")
