"""Look inside a network without training it: per-layer shapes, parameters, operations (MACs), receptive
fields and memory (summary), the rules behind each count (operations, receptive_field), and the
accuracy-operations-parameters chart (compare)."""
from .summary import CONVENTIONS, LayerRow, SummaryReport, summary
from .trace import ModelForwardError

__all__ = ["CONVENTIONS", "LayerRow", "ModelForwardError", "SummaryReport", "summary"]
