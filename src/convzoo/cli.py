"""The `convzoo` command: a thin skin over the public functions a Python user calls."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from rich.console import Console
from rich.table import Table

from .analysis import CONVENTIONS, summary
from .analysis.compare import compare, complexity_chart
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


def _input_size(text: str) -> tuple[int, ...]:
    parts = text.lower().split("x")
    if len(parts) < 2 or not all(part.isdigit() and int(part) > 0 for part in parts):
        raise argparse.ArgumentTypeError(f"expected channels x height x width like 3x224x224, got {text!r}")
    return tuple(int(part) for part in parts)


def _depth(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a depth of 0 or more, got {text!r}")
    return int(text)


def _cmd_summary(args: argparse.Namespace) -> int:
    report = summary(args.name, input_size=args.input, depth=args.depth, convention=args.convention)
    if args.format == "table":
        _console().print(report)
    elif args.format == "markdown":
        print(report.to_markdown(), end="")
    elif args.format == "json":
        print(report.to_json())
    else:
        print(report.to_csv(), end="")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    rows = compare(args.names)
    table = Table(title=f"{len(rows)} models (operations: conv + linear, at each model's input size)",
                  title_justify="left")
    for column, justify in (("name", "left"), ("input", "left"), ("params", "right"), ("MACs", "right"),
                            ("GMACs", "right"), ("top-1 accuracy (reported)", "right")):
        table.add_column(column, justify=justify)
    for row in rows:
        accuracy = "-" if row.top1_accuracy is None else f"{row.top1_accuracy:.2f}%"
        table.add_row(row.name, "x".join(map(str, row.input_size)), f"{row.params:,}", f"{row.macs:,}",
                      f"{row.macs / 1e9:.3f}", accuracy)
    _console().print(table)
    if args.out:
        left_off = complexity_chart(rows, args.out)
        print(f"chart written to {args.out}")
        if left_off:
            print(f"not on the chart (no reported ImageNet top-1): {', '.join(left_off)}")
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

    p = commands.add_parser("summary", help="per-layer output shapes, parameters, MACs, receptive fields; memory")
    p.add_argument("name")
    p.add_argument("--input", type=_input_size, default=None, metavar="CxHxW",
                   help="input size without the batch axis, e.g. 3x224x224 (default: the model card's)")
    p.add_argument("--format", choices=("table", "markdown", "json", "csv"), default="table")
    p.add_argument("--depth", type=_depth, default=None, metavar="N",
                   help="fold layers deeper than N into their parents (0: the whole model in one row)")
    p.add_argument("--convention", choices=CONVENTIONS, default="all",
                   help="all: every operation by its rule; conv_linear: convolutions and linear layers only "
                        "(torchvision's published figures)")
    p.set_defaults(run=_cmd_summary)

    p = commands.add_parser("compare", help="table and chart of reported accuracy against operations and parameters")
    p.add_argument("names", nargs="+", metavar="NAME", help="model names or shell-style wildcards, e.g. 'resnet*'")
    p.add_argument("--out", default=None, metavar="chart.png", help="also draw the complexity chart to this file")
    p.set_defaults(run=_cmd_compare)
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
