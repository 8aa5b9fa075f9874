"""What a network page shows: the card, the drawing (`convzoo.draw`, one traced forward on the meta device) and
the summary rows of the same trace, as plain JSON-able data. Node ids in the SVG are the rows' module paths
(docs/figures.md), so the page finds a clicked layer's row by `data-path` and `data-call`."""
from __future__ import annotations

from typing import Any

from ..analysis.summary import LayerRow, SummaryReport
from ..registry import ModelCard, model_card

# The reported figure the zoo table and chart show, in this order of preference (each card reports its paper's).
ERROR_KEYS = ("imagenet_top1_error", "imagenet_top5_error", "cifar10_error", "cifar100_error", "mnist_error")
SCORE_KEYS = ("voc2012_test_miou", "voc2012_val_miou", "voc2011_val_miou", "isbi2015_phc_u373_mean_iou")
BYTES_PER_ELEMENT = 4  # float32: what the summary's memory figures assume for the networks as built


def card_data(card: ModelCard) -> dict[str, Any]:
    paper = card.paper
    error_key = next((key for key in ERROR_KEYS if key in card.reported), None)
    score_key = next((key for key in SCORE_KEYS if key in card.reported), None)
    return {
        "name": card.name, "family": card.family, "task": card.task, "year": paper.year,
        "paper": paper.title, "authors": paper.authors, "venue": paper.venue, "arxiv": paper.arxiv,
        "input_size": list(card.input_size), "min_input_size": list(card.min_input_size),
        "num_classes": card.num_classes, "card_params": card.params, "reported": dict(card.reported),
        "error_key": error_key, "error": card.reported.get(error_key) if error_key else None,
        "score_key": score_key, "score": card.reported.get(score_key) if score_key else None,
        "notes": card.notes,
    }


def row_data(row: LayerRow) -> dict[str, Any]:
    return {
        "name": row.name, "type": row.type, "depth": row.depth, "call": row.call,
        "output_shape": _shape(row.output_shape), "params": row.params, "macs": row.macs,
        "rf": None if row.receptive_field is None else list(row.receptive_field),
        "jump": None if row.jump is None else list(row.jump),
        "start": None if row.start is None else list(row.start),
        "activations": row.activations, "memory_bytes": row.activations * BYTES_PER_ELEMENT,
    }


def largest_receptive_field(report: SummaryReport) -> float | None:
    """The largest receptive field (px, the larger axis) of a convolution: the network's view of its input, as
    the course gives it (ResNet-18: 435; a global pooling after it would see the whole image)."""
    sizes = [max(row.receptive_field) for row in report.rows if row.receptive_field and "Conv" in row.type]
    return max(sizes) if sizes else None


def network_data(name: str, input_size: tuple[int, ...] | None = None) -> dict[str, Any]:
    """A registered network's page: its card, its drawing as SVG text, its summary rows and totals."""
    from .. import draw as draw_module

    card = model_card(name)
    drawing = draw_module.draw(card.name, input_size=input_size)
    report = drawing.report
    return {
        "card": card_data(card),
        "input_size": list(report.input_size),
        "svg": drawing.svg(),
        "rows": [row_data(row) for row in report.rows],
        "totals": {"params": report.total_params, "macs": report.total_macs,
                   "param_bytes": report.param_bytes,
                   "inference_activation_bytes": report.inference_activation_bytes,
                   "training_activation_bytes": report.training_activation_bytes,
                   "receptive_field": largest_receptive_field(report)},
    }


def zoo_row(data: dict[str, Any]) -> dict[str, Any]:
    """The zoo table's row of a built network page."""
    card = data["card"]
    return {key: card[key] for key in ("name", "family", "task", "year", "paper", "arxiv", "error_key", "error",
                                       "score_key", "score")} | {
        "params": data["totals"]["params"], "macs": data["totals"]["macs"], "input_size": data["input_size"],
        "receptive_field": data["totals"]["receptive_field"]}


def _shape(shape: tuple) -> list:
    return [list(s) for s in shape] if shape and isinstance(shape[0], tuple) else list(shape)
