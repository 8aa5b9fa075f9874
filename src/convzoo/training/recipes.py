"""The papers' training settings as named presets: `convzoo train resnet50 --data DIR --recipe resnet`.

A recipe is a set of TrainConfig values with the paper they come from; flags given on the command line (or
keyword arguments to `make_config`) override them. Where a paper leaves a value out, the recipe says what it
uses instead and why. Augmentation sizes are given relative to the input (AlexNet's 224 crops of 256 images
become crops of 256/224 times the input side), so a recipe also means something at 32x32 or 64x64.

`quick` is not a paper's recipe: it is the default, a short schedule under which the README's
`convzoo train lenet5 --data digits` reaches 98% test accuracy in under 30 s on a 2-core CPU.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..registry import Paper, model_card
from .engine import TrainConfig

ALEXNET = Paper("ImageNet Classification with Deep Convolutional Neural Networks",
                "Alex Krizhevsky, Ilya Sutskever, Geoffrey E. Hinton", 2012, venue="NeurIPS 2012")
VGG = Paper("Very Deep Convolutional Networks for Large-Scale Image Recognition",
            "Karen Simonyan, Andrew Zisserman", 2015, arxiv="1409.1556", venue="ICLR 2015")
GOOGLENET = Paper("Going Deeper with Convolutions", "Christian Szegedy et al.", 2015, arxiv="1409.4842",
                  venue="CVPR 2015")
RESNET = Paper("Deep Residual Learning for Image Recognition", "Kaiming He, Xiangyu Zhang, Shaoqing Ren, Jian Sun",
               2016, arxiv="1512.03385", venue="CVPR 2016")
DENSENET = Paper("Densely Connected Convolutional Networks",
                 "Gao Huang, Zhuang Liu, Laurens van der Maaten, Kilian Q. Weinberger", 2017, arxiv="1608.06993",
                 venue="CVPR 2017")
MOBILENET_V2 = Paper("MobileNetV2: Inverted Residuals and Linear Bottlenecks",
                     "Mark Sandler, Andrew Howard, Menglong Zhu, Andrey Zhmoginov, Liang-Chieh Chen", 2018,
                     arxiv="1801.04381", venue="CVPR 2018")
UNET = Paper("U-Net: Convolutional Networks for Biomedical Image Segmentation",
             "Olaf Ronneberger, Philipp Fischer, Thomas Brox", 2015, arxiv="1505.04597", venue="MICCAI 2015")
ADAMW = Paper("Decoupled Weight Decay Regularization", "Ilya Loshchilov, Frank Hutter", 2019, arxiv="1711.05101",
              venue="ICLR 2019")
TORCHVISION_RECIPE = Paper("How to Train State-Of-The-Art Models Using TorchVision's Latest Primitives",
                          "Vasilis Vryniotis", 2021, venue="PyTorch blog")
SGDR = Paper("SGDR: Stochastic Gradient Descent with Warm Restarts", "Ilya Loshchilov, Frank Hutter", 2017,
             arxiv="1608.03983", venue="ICLR 2017")

# AlexNet, VGG and ResNet train on crops of 224 pixels; their rescaled images are measured against that side.
_CROP = 224


@dataclass(frozen=True)
class Recipe:
    name: str
    paper: Paper
    settings: dict[str, Any]
    notes: str
    networks: str = ""  # the networks the recipe was written for
    # Network arguments the recipe sets for a family (by the card's family); --model-arg overrides them.
    family_model_args: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def citation(self) -> str:
        paper = self.paper
        where = ", ".join(part for part in (paper.venue, f"arXiv:{paper.arxiv}" if paper.arxiv else None) if part)
        return f"{paper.authors}, \"{paper.title}\", {where or paper.year}"


RECIPES: dict[str, Recipe] = {recipe.name: recipe for recipe in (
    Recipe(
        "quick", SGDR,
        dict(opt="sgd_nesterov", momentum=0.9, lr=0.02, weight_decay=5e-4, batch_size=64, epochs=20,
             lr_scheduler="cosine", lr_warmup_epochs=1, clip_grad_norm=1.0, label_smoothing=0.1,
             random_crop_padding=1),
        "convzoo's default, not a paper's: SGD with Nesterov momentum, a one-epoch linear warm-up (Goyal et al. "
        "2017) and a cosine decay (Loshchilov & Hutter) over a short run, gradients clipped to norm 1 (LeNet-5's "
        "RBF output starts with large losses), label smoothing 0.1 and 1-pixel random shifts. Chosen so that "
        "`convzoo train lenet5 --data digits` reaches >= 98% test accuracy in under 30 s on a 2-core CPU "
        "(98.0-98.6% over seeds 0-5). CPU threads by convzoo.runtime's policy (half the cores: one on 2 "
        "cores), as for every command: an OpenMP thread whose core another program takes stalls the others "
        "(--threads overrides). Good for "
        "small data sets and first runs; use a paper's recipe to reproduce a paper.",
        networks="any (small data sets)"),
    Recipe(
        "alexnet", ALEXNET,
        dict(opt="sgd", momentum=0.9, lr=0.01, weight_decay=5e-4, batch_size=128, epochs=90,
             lr_scheduler="plateau", lr_gamma=0.1, lr_patience=5,
             scale_jitter=(256 / _CROP, 256 / _CROP), hflip=True, pca_lighting=0.1),
        "Section 5: SGD, batch 128, momentum 0.9, weight decay 0.0005, learning rate 0.01 divided by 10 when the "
        "validation error stopped improving (three times in roughly 90 epochs). Section 4.1: random 224 crops of "
        "256x256 images and their mirror images, and PCA colour lighting with std 0.1. The paper gives no "
        "patience for 'stopped improving'; 5 epochs is ours. Dropout 0.5 is part of the network. Test as the "
        "paper does with `convzoo eval --crops 10`; its 7-network ensemble with `convzoo eval A B C ...`.",
        networks="alexnet, zfnet"),
    Recipe(
        "vgg", VGG,
        dict(opt="sgd", momentum=0.9, lr=0.01, weight_decay=5e-4, batch_size=256, epochs=74,
             lr_scheduler="plateau", lr_gamma=0.1, lr_patience=5,
             scale_jitter=(256 / _CROP, 512 / _CROP), hflip=True, pca_lighting=0.1),
        "Section 3.1: batch 256, momentum 0.9, weight decay 5e-4, dropout 0.5 on the first two FC layers (in the "
        "network), learning rate 1e-2 divided by 10 when the validation accuracy stopped improving (three times), "
        "stopped after 370K iterations (74 epochs). Scale jittering: the training scale S is drawn from "
        "[256, 512] for 224 crops, with random flips and AlexNet's RGB colour shift. Patience 5 is ours.",
        networks="vgg11 ... vgg19"),
    Recipe(
        "googlenet", GOOGLENET,
        dict(opt="sgd", momentum=0.9, lr=0.01, weight_decay=2e-4, batch_size=32, epochs=250,
             lr_scheduler="step", lr_step_size=8, lr_gamma=0.96, hflip=True),
        "Section 6: SGD with momentum 0.9 and a fixed schedule decreasing the learning rate by 4% every 8 epochs. "
        "The paper gives no base learning rate, weight decay, batch or length: 0.01, 2e-4, batch 32 and 250 "
        "epochs are the Caffe replication's (BVLC bvlc_googlenet solver). Its patch sampling (8%-100% of the "
        "area, aspect 3/4-4/3) and photometric distortions are not implemented; random flips are.",
        networks="googlenet"),
    Recipe(
        "resnet", RESNET,
        dict(opt="sgd", momentum=0.9, lr=0.1, weight_decay=1e-4, batch_size=256, epochs=120,
             lr_scheduler="plateau", lr_gamma=0.1, lr_patience=5,
             scale_jitter=(256 / _CROP, 480 / _CROP), hflip=True, pca_lighting=0.1),
        "Section 3.4: SGD, batch 256, momentum 0.9, weight decay 0.0001, learning rate 0.1 divided by 10 when "
        "the error plateaus, up to 60e4 iterations (120 epochs of ImageNet); no dropout; shorter side resized to "
        "[256, 480], 224 crops, flips, the standard colour augmentation. The course slide says weight decay "
        "1e-5; the paper says 1e-4, and this recipe follows the paper. Patience 5 is ours. The paper's "
        "10-crop testing: `convzoo eval --crops 10`.",
        networks="resnet18 ... resnet152, resnext, wide_resnet, senet"),
    Recipe(
        "resnet_cifar", RESNET,
        dict(opt="sgd", momentum=0.9, lr=0.1, weight_decay=1e-4, batch_size=128, epochs=182,
             lr_scheduler="multistep", lr_steps=(91, 137), lr_gamma=0.1, val_split=0.1,
             random_crop_padding=4, hflip=True),
        "Section 4.2: weight decay 0.0001, momentum 0.9, batch 128, learning rate 0.1 divided by 10 at 32k and "
        "48k iterations, stopped at 64k, on a 45k/5k train/val split: with 351 full batches an epoch, epochs 91 "
        "and 137 of 182. 4-pixel padding, random 32x32 crops, flips. For ResNet-110 the paper first trains at "
        "0.01 until the training error is below 80% (about 400 iterations): add --lr-warmup-epochs 1.",
        networks="resnet20 ... resnet1202 (CIFAR)"),
    Recipe(
        "densenet", DENSENET,
        dict(opt="sgd_nesterov", momentum=0.9, lr=0.1, weight_decay=1e-4, batch_size=256, epochs=90,
             lr_scheduler="multistep", lr_steps=(30, 60), lr_gamma=0.1,
             scale_jitter=(256 / _CROP, 480 / _CROP), hflip=True),
        "Section 4.2, ImageNet: SGD with Nesterov momentum 0.9 (no dampening), weight decay 1e-4, batch 256, 90 "
        "epochs, learning rate 0.1 divided by 10 at epochs 30 and 60, ResNet's augmentation. For CIFAR use "
        "densenet_cifar.",
        networks="densenet121 ... densenet201"),
    Recipe(
        "densenet_cifar", DENSENET,
        dict(opt="sgd_nesterov", momentum=0.9, lr=0.1, weight_decay=1e-4, batch_size=64, epochs=300,
             lr_scheduler="multistep", lr_steps=(150, 225), lr_gamma=0.1, random_crop_padding=4, hflip=True),
        "Section 4.2, CIFAR: batch 64 for 300 epochs, learning rate 0.1 divided by 10 at 50% and 75% of the "
        "epochs, Nesterov momentum 0.9, weight decay 1e-4, the standard shift-and-mirror augmentation (C10+). "
        "Without augmentation the paper adds dropout 0.2 after each convolution.",
        networks="densenet_bc (CIFAR)"),
    Recipe(
        "mobilenet", MOBILENET_V2,
        dict(opt="rmsprop", momentum=0.9, lr=0.045, weight_decay=4e-5, batch_size=96, epochs=300,
             lr_scheduler="step", lr_step_size=1, lr_gamma=0.98,
             scale_jitter=(256 / _CROP, 480 / _CROP), hflip=True),
        "MobileNetV2 section 6.1: RMSProp with decay and momentum 0.9, weight decay 4e-5, learning rate 0.045 "
        "decayed by 0.98 every epoch, batch 96 per worker. The MobileNet v1 paper trains 'with RMSprop' and "
        "little regularisation but gives no numbers, so v2's serve both. Neither gives an epoch count: 300 is "
        "ours (torchvision's MobileNetV2 also trains 300). Inception-style crops are approximated by ResNet's "
        "scale augmentation.",
        networks="mobilenet_v1, mobilenet_v2, shufflenet"),
    Recipe(
        "modern", TORCHVISION_RECIPE,
        dict(opt="sgd", momentum=0.9, lr=0.5 * 128 / 1024, weight_decay=2e-5, batch_size=128, epochs=600,
             lr_scheduler="cosine", lr_warmup_epochs=5, lr_warmup_decay=0.01, label_smoothing=0.1,
             mixup_alpha=0.2, cutmix_alpha=1.0, auto_augment="trivialaugment", random_erasing=0.1, hflip=True,
             model_ema=0.9998),
        "torchvision's 2021 recipe (ResNet-50 from 76.1% to 80.9% ImageNet top-1): SGD with momentum 0.9, "
        "learning rate 0.5 for batch 1024 (0.0625 at this recipe's batch 128, scaled linearly), a 5-epoch linear "
        "warm-up from 1% and a cosine decay over 600 epochs, weight decay 2e-5, label smoothing 0.1, mixup "
        "(alpha 0.2) or CutMix (alpha 1.0) on each batch, TrivialAugment, random erasing with probability 0.1 "
        "and an EMA of the weights. Not implemented: its 176-pixel training crops and 232-pixel test resize, the "
        "zero weight decay on norm layers, and its EMA's schedule (0.99998 every 32 steps; here 0.9998 every "
        "step, timm's default). A recipe for long runs on natural images: on a short run its regularisation "
        "costs accuracy (docs/training.md); give --epochs and, for short runs, a faster --model-ema.",
        networks="any (ImageNet-scale runs)"),
    Recipe(
        "segmentation", ADAMW,
        dict(opt="adamw", lr=2e-3, weight_decay=1e-4, batch_size=16, epochs=6, lr_scheduler="cosine",
             lr_warmup_epochs=0.5),
        "convzoo's default for segmentation networks, not a paper's: AdamW (no tuning of the learning rate per "
        "network), a half-epoch warm-up and a cosine decay over a short run, no label smoothing (the task's loss "
        "is pixel-wise cross-entropy + soft Dice) and no mirroring (a mirrored digit is not a digit). The U-Nets "
        "train at a quarter of the paper's widths (16..256 channels, 1.9M parameters instead of 31M: a CPU "
        "trains them in minutes; `--model-arg widths=[64,128,256,512,1024]` for the paper's). With it "
        "`convzoo train unet_padded --data digits-seg` (at the canvases' own 64x64) reaches test mIoU 0.94 in "
        "about 2.5 minutes on a 2-core CPU at rest; the full-width U-Net reaches 0.92 at 32x32 in 3.4 minutes "
        "(`--input-size 32 32 --epochs 4 --threads 2 --model-arg widths=[64,128,256,512,1024]`; "
        "benchmarks/bench_segmentation.py). The U-Net paper's own setting (SGD, momentum 0.99, batch 1 of a "
        "572x572 tile) is for large biomedical images.",
        networks="unet_padded, unet, and the other segmentation networks",
        family_model_args={"unet": {"widths": [16, 32, 64, 128, 256]}}),
)}


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; choose from {', '.join(RECIPES)}")
    return RECIPES[name]


def make_config(model: str, recipe: str | None = "quick", **overrides: Any) -> TrainConfig:
    """A TrainConfig from a recipe's settings, with `overrides` (explicit settings) on top."""
    settings: dict[str, Any] = {}
    if recipe is not None:
        chosen = get_recipe(recipe)
        settings.update(chosen.settings)
        family_args = chosen.family_model_args.get(model_card(model).family)
        if family_args:
            overrides = {**overrides, "model_args": {**family_args, **overrides.get("model_args", {})}}
    settings.update(overrides)
    return TrainConfig(model=model, recipe=recipe, **settings)

