"""The course's figures, each drawn from the registered network or the block it depicts.

    convzoo draw --course --out docs/figures        # or write_course_figures("docs/figures")

Every figure is an entry of FIGURES: a file stem, a title, and a function returning the Drawing. The
Inception modules are `layers/inception.py`'s at the course's 28x28x256 input, with the course's
operation counts written on the figure from the drawing's own nodes (the slide's "358M" for the module
with reductions is noted: its six terms add up to 271M). ResNet-34 "plain" is the same network with the
shortcut left out of every block (`PlainBasicBlock`), as in He et al.'s Figure 3.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ..errors import OutputExistsError
from ..layers.dense import DenseBlock
from ..layers.inception import Inception
from ..layers.residual import BasicBlock, Bottleneck
from ..models.classification.resnet import ResNet
from . import Drawing, draw


class PlainBasicBlock(BasicBlock):
    """BasicBlock without its shortcut: the "plain" network of He et al.'s Figure 3 (34-layer plain)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)))


def _on_meta(build: Callable[[], nn.Module]) -> nn.Module:
    with torch.device("meta"):
        return build()


def _conv_ops(drawing: Drawing) -> list[str]:
    """The course's "Conv Ops" lines: each convolution as H x W x C_out x k x k x C_in, and the total."""
    lines, total = [], 0
    graph = drawing.graph
    for node in graph.conv_nodes():
        edge = next(e for e in graph.edges if e.dst == node.id)
        c_in = edge.shape[0]
        c_out, h, w = node.shape
        k = node.label.split(" ", 1)[0]  # "3x3"
        total += node.macs
        lines.append(f"[{node.label}]  {h}x{w}x{c_out}x{k}x{c_in} = {node.macs / 1e6:.1f}M")
    return lines + [f"Total: {total / 1e6:.0f}M ops (multiply-adds)"]


def inception_naive() -> Drawing:
    module = _on_meta(lambda: Inception.naive(256, 128, 192, 96))
    drawing = draw(module, input_size=(256, 28, 28), title="Naive Inception module (28x28x256 input)")
    return draw(module, input_size=(256, 28, 28), title=drawing.title,
                notes=["Conv ops:"] + _conv_ops(drawing) + ["Pooling keeps the depth: the output is deeper than "
                                                            "the input (672 > 256)."])


def inception_bottleneck() -> Drawing:
    module = _on_meta(lambda: Inception(256, 128, 64, 192, 64, 96, 64))
    title = "Inception module with dimension reduction (28x28x256 input)"
    drawing = draw(module, input_size=(256, 28, 28), title=title)
    return draw(module, input_size=(256, 28, 28), title=title,
                notes=["Conv ops:"] + _conv_ops(drawing) + ["(the slide says 358M; its six terms add up to 271M) "
                                                            "vs 854M for the naive module"])


def residual_blocks() -> Drawing:
    basic = draw(_on_meta(lambda: BasicBlock(64, 64)), input_size=(64, 56, 56), title="")
    bottleneck = draw(_on_meta(lambda: Bottleneck(256, 64)), input_size=(256, 56, 56), title="")
    return Drawing.beside([basic, bottleneck], captions=["residual block (ResNet-18/34)",
                                                          "bottleneck block (ResNet-50/101/152)"],
                          title="Residual blocks (He et al. 2016, Figure 5)")


def resnet34_plain_vs_residual() -> Drawing:
    plain = draw(_on_meta(lambda: ResNet(PlainBasicBlock, [3, 4, 6, 3])), input_size=(3, 224, 224), frames=False,
                 title="")
    residual = draw("resnet34", frames=False, title="")
    return Drawing.beside([plain, residual], captions=["34-layer plain", "34-layer residual"],
                          title="ResNet-34: plain and residual (He et al. 2016, Figure 3)")


def vgg_beside_alexnet() -> Drawing:
    return Drawing.beside([draw("alexnet", title=""), draw("vgg16", title=""), draw("vgg19", title="")],
                          captions=["AlexNet", "VGG16", "VGG19"], title="AlexNet, VGG16 and VGG19")


def dense_block() -> Drawing:
    block = _on_meta(lambda: DenseBlock(num_layers=4, in_chans=64, growth_rate=32))
    return draw(block, input_size=(64, 56, 56), expand=True,
                title="Dense block: each layer reads every earlier feature map (growth rate 32)")


@dataclass(frozen=True)
class Figure:
    stem: str
    make: Callable[[], Drawing]


FIGURES: tuple[Figure, ...] = (
    Figure("lenet5", lambda: draw("lenet5", depth=1, direction="LR", title="LeNet-5 (LeCun et al. 1998)")),
    Figure("alexnet", lambda: draw("alexnet", direction="LR",
                                   title="AlexNet: conv2, conv4, conv5 in two groups, one per GPU tower")),
    Figure("vgg_alexnet", vgg_beside_alexnet),
    Figure("inception_naive", inception_naive),
    Figure("inception_bottleneck", inception_bottleneck),
    Figure("googlenet", lambda: draw("googlenet", title="GoogLeNet (Szegedy et al. 2014)")),
    Figure("residual_blocks", residual_blocks),
    Figure("resnet34_plain_residual", resnet34_plain_vs_residual),
    Figure("dense_block", dense_block),
    Figure("se_block", lambda: draw("se_resnet50", focus="layer2.1",
                                    title="SE block in a bottleneck (SE-ResNet-50 layer2.1)")),
    Figure("depthwise_separable", lambda: draw("mobilenet_v1", focus="features.1",
                                               title="Depthwise separable convolution (MobileNet v1)")),
    Figure("shufflenet_unit", lambda: Drawing.beside(
        [draw("shufflenet_v1_g3", focus="stage2.1", title=""), draw("shufflenet_v1_g3", focus="stage2.0", title="")],
        captions=["ShuffleNet unit", "ShuffleNet unit, stride 2"], title="ShuffleNet units (g = 3)")),
    Figure("fcn8s", lambda: draw("fcn8s", title="FCN-8s: pool3 and pool4 skips")),
    Figure("unet", lambda: draw("unet", direction="U", title="U-Net (Ronneberger et al. 2015): the encoder down, "
                                                             "the decoder up, each skip across its row")),
    Figure("aspp", lambda: draw("deeplabv3_resnet50", focus="classifier.0",
                                title="Atrous spatial pyramid pooling (DeepLab v3)")),
    Figure("pyramid_pooling", lambda: draw("pspnet", focus="classifier.0",
                                           title="Pyramid pooling module (PSPNet)")),
)


def write_course_figures(out: str | Path, force: bool = False, formats: tuple[str, ...] = ("png", "svg"),
                         progress: bool = False) -> list[Path]:
    """Write every figure of FIGURES into the folder `out` (PNG and SVG each). Existing files are kept
    unless `force`: the check runs before anything is written."""
    folder = Path(out)
    targets = [folder / f"{figure.stem}.{fmt}" for figure in FIGURES for fmt in formats]
    existing = [str(path) for path in targets if path.exists()]
    if existing and not force:
        raise OutputExistsError(f"{len(existing)} figures exist already in {str(folder)!r} (e.g. {existing[0]}); "
                                f"give --force to replace them")
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    iterator = FIGURES
    if progress:
        from rich.progress import track

        iterator = track(FIGURES, description="drawing the course's figures")
    for figure in iterator:
        drawing = figure.make()
        for fmt in formats:
            written.append(drawing.save(folder / f"{figure.stem}.{fmt}", overwrite=True,
                                        scale=None if fmt != "png" else _png_scale(drawing)))
    return written


def _png_scale(drawing: Drawing) -> float:
    """Sharp enough to read, small enough to commit: at most 2 pixels per point and 3000 on the long side."""
    return max(0.6, min(2.0, 3000 / max(drawing.width, drawing.height)))
