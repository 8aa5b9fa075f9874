"""The operation counts printed on the model cards are the analysis' own conv+linear counts at the card's
input size, so `convzoo card` and `convzoo summary --convention conv_linear` never disagree."""
import pytest

import convzoo

WITH_MACS = [n for n in convzoo.list_models() if convzoo.model_card(n).macs is not None]


def test_every_card_carries_an_operation_count():
    assert WITH_MACS == convzoo.list_models()


@pytest.mark.parametrize("name", WITH_MACS)
def test_card_macs_equal_the_conv_linear_summary(name):
    card = convzoo.model_card(name)
    report = convzoo.summary(name, convention="conv_linear")
    assert report.total_macs == card.macs
    assert report.trainable_params == card.params  # the card counts trainable parameters (FCN has a fixed upsampler)
