"""The `convzoo` command: a thin skin over the public functions a Python user calls."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from rich.console import Console
from rich.table import Table

from .errors import ConvzooError
from .registry import list_models, model_card

_ERROR_NAMES = {
    "imagenet_top1_error": "ImageNet top-1 error",
    "imagenet_top5_error": "ImageNet top-5 error",
    "cifar10_error": "CIFAR-10 error",
    "cifar100_error": "CIFAR-100 error",
    "mnist_error": "MNIST error",
}


def _console() -> Console:
    # Wide enough for the tables when output goes to a file or a CI log rather than a terminal.
    return Console(width=None if sys.stdout.isatty() else 120, highlight=False)


def _cmd_list(args: argparse.Namespace) -> int:
    names = list_models(args.pattern, task=args.task)
    if not names:
        print(f"no registered model matches {args.pattern or '*'!r}"
              + (f" with task {args.task!r}" if args.task else ""), file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps([_card_row(model_card(n)) for n in names], indent=2))
        return 0
    table = Table(title=f"{len(names)} models", title_justify="left")
    for column, justify in (("name", "left"), ("family", "left"), ("task", "left"), ("year", "right"),
                            ("params", "right"), ("input", "left")):
        table.add_column(column, justify=justify)
    for name in names:
        card = model_card(name)
        table.add_row(name, card.family, card.task, str(card.paper.year), f"{card.params:,}",
                      "x".join(map(str, card.input_size)))
    _console().print(table)
    return 0


def _card_row(card) -> dict:
    return {"name": card.name, "family": card.family, "task": card.task, "year": card.paper.year,
            "params": card.params, "input_size": list(card.input_size)}


def _cmd_card(args: argparse.Namespace) -> int:
    card = model_card(args.name)
    if args.json:
        print(json.dumps(card.to_dict(), indent=2))
        return 0
    paper = card.paper
    table = Table(show_header=False, title=card.name, title_justify="left", box=None)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("paper", paper.title)
    table.add_row("authors", paper.authors)
    table.add_row("year", str(paper.year) + (f" ({paper.venue})" if paper.venue else ""))
    table.add_row("arXiv", paper.arxiv or "-")
    table.add_row("family / task", f"{card.family} / {card.task}")
    table.add_row("default input", "x".join(map(str, card.input_size)) + " (C x H x W)")
    table.add_row("smallest input", "x".join(map(str, card.min_input_size)) + " (H x W)")
    table.add_row("classes", str(card.num_classes))
    table.add_row("parameters", f"{card.params:,} (trainable, exact)")
    if card.macs is not None:
        table.add_row("operations", f"{card.macs:,} MACs at the default input (FLOPs = 2 x MACs)")
    for key, value in card.reported.items():
        table.add_row(_ERROR_NAMES.get(key, key), f"{value}% (as reported)")
    table.add_row("notes", card.notes)
    _console().print(table)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="convzoo", description="The landmark convolutional networks: build, "
                                     "inspect, train, compare.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser("list", help="list registered models (table: name, family, year, params)")
    p.add_argument("pattern", nargs="?", default=None, help="shell-style wildcard, e.g. 'resnet*'")
    p.add_argument("--task", choices=("classification", "segmentation"), default=None)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(run=_cmd_list)

    p = commands.add_parser("card", help="show a model's card: paper, input sizes, parameters, reported errors")
    p.add_argument("name")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(run=_cmd_card)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except ConvzooError as err:
        print(f"convzoo {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
