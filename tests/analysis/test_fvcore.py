"""Cross-check against fvcore (a test-only dependency): its convolution and matrix-product counts, which
are multiply-accumulates, must equal convzoo's "conv_linear" MACs. fvcore traces real tensors with the
JIT, so each network is built on the meta device and given uninitialised CPU storage (counting needs
shapes, not values) and run at its smallest input size."""
import pytest
import torch
from fvcore.nn import FlopCountAnalysis

import convzoo
from convzoo.analysis import summary
from twins import DEEPER_TWINS

# fvcore's names for the operators the conv_linear convention counts
CONV_LINEAR_OPERATORS = {"conv", "linear", "addmm", "matmul", "bmm", "einsum"}
CLASSIFIERS = convzoo.list_models(task="classification")
QUICK = ["resnet18", "mobilenet_v2", "shufflenet_v1_g3", "densenet_bc100_k12", "alexnet"]


def fvcore_conv_linear(name: str, input_size) -> int:
    with torch.device("meta"):
        model = convzoo.create_model(name)
    model.to_empty(device="cpu").eval()
    analysis = FlopCountAnalysis(model, torch.zeros(1, *input_size))
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    return sum(count for op, count in analysis.by_operator().items() if op in CONV_LINEAR_OPERATORS)


def smallest_input(name: str):
    card = convzoo.model_card(name)
    return (card.input_size[0], *card.min_input_size)


def check(name: str) -> None:
    size = smallest_input(name)
    assert summary(name, input_size=size, convention="conv_linear").total_macs == fvcore_conv_linear(name, size)


@pytest.mark.parametrize("name", QUICK)
def test_fvcore_agrees_on_a_few_networks(name):
    check(name)


# Counting is per operation: the deeper twins (tests/twins.py) hold their representative's kinds of operations,
# only more of them; tests/analysis/test_cards.py holds every network's total to its card.
@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in CLASSIFIERS if n not in QUICK and n not in DEEPER_TWINS])
def test_fvcore_agrees_on_every_classification_network(name):
    check(name)
