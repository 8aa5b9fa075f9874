"""A registered classification network as a segmentation network's encoder (models/features.py builds it)."""
from __future__ import annotations

from typing import Sequence

from ...registry import create_model
from ..features import FeatureExtractor


def create_backbone(name: str, out_indices: Sequence[int] | None = None, output_stride: int | None = None,
                    in_chans: int | None = None, **kwargs) -> FeatureExtractor:
    """A registered classification network as an encoder, without the input guard a top-level model gets
    (the segmentation network that holds it checks its own input). kwargs go to the network's builder."""
    network = create_model(name, in_chans=in_chans, **kwargs)
    if network.card.task != "classification":
        raise ValueError(f"{name} is a {network.card.task} network; encoders come from classification networks")
    return FeatureExtractor(network, out_indices=out_indices, output_stride=output_stride)
