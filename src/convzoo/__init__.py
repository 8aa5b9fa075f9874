"""convzoo: the landmark convolutional networks, faithful to their papers.

    import convzoo
    model = convzoo.create_model("resnet50", num_classes=10)
    convzoo.list_models("resnet*")
    convzoo.model_card("alexnet")
    convzoo.summary("resnet50").to_markdown()
    convzoo.explain("runs/resnet20-digits", ["seven.png"], method="gradcam", out="explained")
    convzoo.draw("resnet50").save("resnet50.svg")
"""
from . import models  # noqa: F401  (importing the families registers every network)
from .analysis import summary
from .deploy import optimize_for_inference
from .errors import ConvzooError, InputSizeError, UnknownModelError, WeightsError
from .protocol import Classifier, ConvzooModel, FeatureInfo, FeatureInfoList
from .registry import ModelCard, Paper, create_model, list_models, model_card, register_model
from .models.segmentation.convolutionalize import convolutionalize
from .weights import load_weights, save_weights
from .export import export
from . import draw  # a callable module: convzoo.draw(model) draws; convzoo.draw.graph etc. stay importable
from .draw import Drawing
from . import explain  # a callable module: convzoo.explain(source, images, method) explains

__version__ = "0.1.0"

__all__ = [
    "Classifier", "ConvzooError", "ConvzooModel", "Drawing", "FeatureInfo", "FeatureInfoList", "InputSizeError", "ModelCard", "Paper", "UnknownModelError", "WeightsError",
    "convolutionalize", "create_model", "draw", "explain", "export", "list_models", "load_weights", "model_card",
    "optimize_for_inference", "register_model", "save_weights", "summary",
]
