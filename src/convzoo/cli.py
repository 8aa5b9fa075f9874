"""The `convzoo` command: a thin skin over the public functions a Python user calls."""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Sequence

from rich.console import Console
from rich.table import Table

from .analysis import CONVENTIONS, summary
from .analysis.compare import compare, complexity_chart
from .argtypes import (ArgumentParser, add_device_argument, add_threads_argument, device, fraction, non_negative_float,
                       non_negative_int, out_file, out_folder, port, positive_float, positive_int, unit_interval)
from .errors import ConvzooError, DrawError, Interrupted, MemoryEstimateError, UnknownModelError, user_error_message
from .registry import list_models, model_card
from .runtime import use_threads

_REPORTED_NAMES = {
    "imagenet_top1_error": "ImageNet top-1 error",
    "imagenet_top5_error": "ImageNet top-5 error",
    "cifar10_error": "CIFAR-10 error",
    "cifar100_error": "CIFAR-100 error",
    "mnist_error": "MNIST error",
    "voc2011_val_miou": "PASCAL VOC 2011 val mIoU",
    "voc2012_val_miou": "PASCAL VOC 2012 val mIoU",
    "voc2012_val_miou_crf": "PASCAL VOC 2012 val mIoU, with CRF",
    "voc2012_test_miou": "PASCAL VOC 2012 test mIoU",
    "voc2012_test_miou_crf": "PASCAL VOC 2012 test mIoU, with CRF",
    "isbi2015_phc_u373_mean_iou": "ISBI 2015 PhC-U373 mean IoU",
    "isbi2015_dic_hela_mean_iou": "ISBI 2015 DIC-HeLa mean IoU",
}


def _console() -> Console:
    # Wide enough for the tables when output goes to a file or a CI log rather than a terminal.
    return Console(width=None if sys.stdout.isatty() else 120, highlight=False)


def _cmd_list(args: argparse.Namespace) -> int:
    names = list_models(args.pattern, task=args.task)
    if not names:  # a user's mistake, so exit code 2 like every other (1 is kept for a bug in convzoo)
        raise UnknownModelError(f"no registered model matches {args.pattern or '*'!r}"
                                + (f" with task {args.task!r}" if args.task else "")
                                + "; `convzoo list` names them all")
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
        table.add_row(_REPORTED_NAMES.get(key, key), f"{value}% (as the paper reports it)")
    table.add_row("notes", card.notes)
    _console().print(table)
    return 0


def _input_size(text: str) -> tuple[int, ...]:
    parts = text.lower().split("x")
    if len(parts) < 2 or not all(part.isdigit() and int(part) > 0 for part in parts):
        raise argparse.ArgumentTypeError(f"expected channels x height x width like 3x224x224, got {text!r}")
    return tuple(int(part) for part in parts)


def _cmd_summary(args: argparse.Namespace) -> int:
    model_args = dict(args.model_args or [])
    name = args.name
    if args.spec is not None:
        model_args["spec"] = _nas_spec(name, args.spec)
        name = name or "nas"
    if name is None:
        raise ConvzooError("give a model name, a checkpoint or run folder, or --spec FILE")
    report = summary(name, input_size=args.input, depth=args.depth, convention=args.convention, **model_args)
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
                            ("GMACs", "right"), ("top-1 accuracy", "right"), ("accuracy from", "left")):
        table.add_column(column, justify=justify)
    for row in rows:
        accuracy = "-" if row.top1_accuracy is None else f"{row.top1_accuracy:.2f}%"
        source = "-" if row.top1_accuracy is None else (
            "paper (ImageNet)" if row.trained_on is None else f"run, {row.trained_on} test")
        table.add_row(row.name, "x".join(map(str, row.input_size)), f"{row.params:,}", f"{row.macs:,}",
                      f"{row.macs / 1e9:.3f}", accuracy, source)
    _console().print(table)
    if args.out:
        left_off = complexity_chart(rows, args.out)
        print(f"chart written to {args.out}")
        if left_off:
            print(f"not on the chart (no reported ImageNet top-1): {', '.join(left_off)}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from .export import export

    out = export(args.source, format=args.format, out=args.out, input_size=args.input, check=args.check)
    print(f"{args.format} written to {out} (described in {out}.json)")
    return 0


def _cmd_draw(args: argparse.Namespace) -> int:
    if args.course:
        from .draw.gallery import write_course_figures

        if args.out is None:
            raise DrawError("--course writes a folder of figures: give it with --out DIR")
        written = write_course_figures(args.out, force=args.force, progress=True)
        print(f"{len(written)} figures written to {args.out}")
        return 0
    if args.source is None:
        raise DrawError("give a model name, checkpoint or run folder to draw (or --course --out DIR)")
    from .draw import draw_to_file

    out = draw_to_file(args.source, out=args.out, force=args.force, input_size=args.input, depth=args.depth,
                       expand=args.expand, direction=args.direction)
    print(f"drawing written to {out}")
    return 0


def _cmd_explore(args: argparse.Namespace) -> int:
    import tempfile

    from .explore import build_site, serve

    out = args.out or (tempfile.mkdtemp(prefix="convzoo-explore-") if args.serve else "explore")
    site = build_site(args.items, out=out, progress=True, workers=args.workers)
    print(f"explorer written to {site.index} ({len(site.networks)} networks, {len(site.runs)} runs, "
          f"{site.files} files, {site.bytes / 2**20:.1f} MiB, {site.seconds:.1f} s); open it in a browser, no server "
          f"needed")
    if args.serve:
        serve(site.out, port=args.port)
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from .bench import run_from_args

    return run_from_args(args)


_FORCE_HELP = ("run even if the estimated peak memory exceeds what the machine has available (the estimate is "
               "shown in the first line; without --force such a run stops before allocating, naming what fits)")
# The spellings of the flags a memory refusal may change (MemoryEstimateError.fixes), to rewrite the command.
_FLAG_SPELLINGS = {"-b": ("-b", "--batch-size"), "--input-size": ("--input-size",),
                   "--batch-sizes": ("--batch-sizes",), "--input-sizes": ("--input-sizes",)}


def _image_size(text: str) -> tuple[int, int]:
    parts = text.lower().split("x")
    if len(parts) not in (1, 2) or not all(part.isdigit() and int(part) > 0 for part in parts):
        raise argparse.ArgumentTypeError(f"expected a size like 64 or 64x48 (height x width), got {text!r}")
    return (int(parts[0]), int(parts[-1]))


def _model_arg(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, e.g. drop_path=0.1, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _join_image_size(parts: Sequence[tuple[int, int]]) -> tuple[int, int]:
    """--input-size 64, 64x48, or two numbers: 64 48 (height, width)."""
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2 and all(h == w for h, w in parts):
        return parts[0][0], parts[1][0]
    raise ValueError(f"--input-size takes 64, 64x48 or 64 48 (height width), got {len(parts)} sizes")


def _training_settings(args: argparse.Namespace) -> dict:
    """The settings given on the command line (unset flags are absent, so a recipe's values stand)."""
    settings = {k: v for k, v in vars(args).items() if k not in ("command", "run", "model", "resume")}
    if "model_args" in settings:
        settings["model_args"] = dict(settings["model_args"])
    if "input_size" in settings:
        settings["input_size"] = _join_image_size(settings["input_size"])
    if "spec" in settings:
        settings["model_args"] = {**settings.get("model_args", {}), "spec": _nas_spec(args.model, settings.pop("spec"))}
    return settings


def _nas_spec(model: str | None, source: str) -> dict:
    """--spec FILE_OR_DIR: --model-arg spec=... with the spec read now, so that config.json holds the
    architecture itself and the run does not depend on the file staying where it is."""
    from .errors import SpecError
    from .nas.spec import load_spec

    if model not in (None, "nas"):
        raise SpecError(f"--spec describes a nas network; train it with `convzoo train nas --spec {source}`, "
                        f"not {model}")
    return load_spec(source)


def _default_recipe(model: str) -> str:
    """quick for a classifier, segmentation for a segmentation network (quick's label smoothing and mirroring
    are classification's)."""
    return "segmentation" if model_card(model).task == "segmentation" else "quick"


def _cmd_train(args: argparse.Namespace) -> int:
    from .training import make_config, resumed_config, train

    settings = _training_settings(args)
    if args.resume:
        config = resumed_config(args.resume, model=args.model, **settings)
    elif not args.model:
        raise ValueError("name the network to train, e.g. `convzoo train lenet5 --data digits` "
                         "(`convzoo list` shows them), or continue a run with --resume DIR")
    else:
        recipe = settings.pop("recipe", None) or _default_recipe(args.model)
        config = make_config(args.model, recipe, **settings)
    train(config, resume=bool(args.resume), console=_console())
    return 0


def _cmd_lr_find(args: argparse.Namespace) -> int:
    from .training import find_lr, make_config

    settings = _training_settings(args)
    sweep = {key: settings.pop(key) for key in ("lr_start", "lr_end")}
    out = settings.pop("out", None)
    recipe = settings.pop("recipe", None) or _default_recipe(args.model)
    config = make_config(args.model, recipe, **settings)
    result = find_lr(config, out=out, start=sweep["lr_start"], end=sweep["lr_end"], console=_console())
    table = Table(title=f"learning-rate range test: {args.model}, {len(result.lrs)} steps"
                        f"{' (stopped: the loss diverged)' if result.diverged else ''}", title_justify="left")
    table.add_column("rule")
    table.add_column("learning rate", justify="right")
    table.add_row("suggestion: the minimum of the smoothed loss (a schedule's peak)", f"{result.suggestion:.3g}")
    table.add_row("its steepest descent (a constant rate)", f"{result.steepest:.3g}")
    _console().print(table)
    print(f"curve and figures: {result.png}")
    return 0


def _crf(args: argparse.Namespace):
    from .layers.crf import DenseCRF

    if not (args.crf or args.crf_params):
        return None
    try:
        return DenseCRF(**dict(args.crf_params))
    except TypeError as err:
        raise ValueError(f"--crf-param: {err}; DenseCRF takes iterations, w_appearance, theta_alpha, theta_beta, "
                         f"w_smooth, theta_gamma") from err


def _cmd_eval(args: argparse.Namespace) -> int:
    from .training import evaluate_checkpoints
    from .training.test_time import make_protocol

    protocol = make_protocol(args.protocol, scales=args.scales, flip=args.flip, slide=args.slide)
    results = evaluate_checkpoints(args.checkpoints, args.data, split=args.split, crops=args.crops,
                                   batch_size=args.batch_size, device=args.device, skip_bad=args.skip_bad,
                                   crf=_crf(args), protocol=protocol, force=args.force)
    if args.json:
        print(json.dumps([{"checkpoint": r.name, **r.metrics} for r in results], indent=2))
        return 0
    first = results[0].metrics
    if "miou" in first:
        _print_segmentation_eval(args.data, results)
        return 0
    table = Table(title=f"{args.data}, {first['split']} split, {first['images']} images, "
                        f"{'10 crops' if args.crops == 10 else 'centre crop'} (accuracy and error in %)",
                  title_justify="left")
    for column in ("checkpoint", "top-1 acc", "top-5 acc", "top-1 err", "top-5 err", "loss"):
        table.add_column(column, justify="left" if column == "checkpoint" else "right")
    for result in results:
        m = result.metrics
        name = f"ensemble of {m['members']} (mean softmax)" if result.name == "ensemble" else result.name
        table.add_row(name, f"{m['top1_accuracy']:.2f}", f"{m['top5_accuracy']:.2f}", f"{m['top1_error']:.2f}",
                      f"{m['top5_error']:.2f}", f"{m['loss']:.4f}")
    _console().print(table)
    return 0


def _print_segmentation_eval(data: str, results) -> None:
    first = results[0].metrics
    table = Table(title=f"{data}, {first['split']} split, {first['images']} images, {first['pixels']:,} labelled "
                        f"pixels{', dense CRF' if first['crf'] else ''} (fractions)", title_justify="left")
    for column in ("checkpoint", "mIoU", "pixel acc", "mean Dice", "loss"):
        table.add_column(column, justify="left" if column == "checkpoint" else "right")
    for result in results:
        m = result.metrics
        name = f"ensemble of {m['members']} (mean softmax)" if result.name == "ensemble" else result.name
        table.add_row(name, _fraction(m["miou"]), _fraction(m["pixel_accuracy"]), _fraction(m["mean_dice"]),
                      f"{m['loss']:.4f}")
    console = _console()
    if first["protocol"] != "single scale":
        console.print(f"test protocol: {first['protocol']} (softmax averaged)")
    console.print(table)
    per_class = Table(title="IoU per class (-: in neither masks nor prediction)",
                      title_justify="left")
    per_class.add_column("class")
    for index in range(len(results)):
        per_class.add_column("ensemble" if results[index].name == "ensemble" else f"#{index + 1}", justify="right")
    for name in first["per_class_iou"]:
        per_class.add_row(name, *(_fraction(r.metrics["per_class_iou"][name]) for r in results))
    console.print(per_class)


def _fraction(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _cmd_predict(args: argparse.Namespace) -> int:
    from .training import predict_images

    predictions = predict_images(args.checkpoint, args.images, top=args.top, crops=args.crops,
                                 device=args.device, out=args.out, crf=_crf(args), force=args.force)
    if args.json:
        print(json.dumps(predictions, indent=2))
        return 0
    if predictions and "mask" in predictions[0]:
        for prediction in predictions:
            classes = ", ".join(f"{name} {fraction:.1%}" for name, fraction in prediction["class_fractions"].items())
            print(f"{prediction['image']}: mask {prediction['mask']}, overlay {prediction['overlay']} ({classes})")
        return 0
    for prediction in predictions:
        table = Table(title=prediction["image"], title_justify="left")
        table.add_column("class")
        table.add_column("probability", justify="right")
        for guess in prediction["predictions"]:
            table.add_row(guess["class"], f"{guess['probability']:.4f}")
        _console().print(table)
    return 0


def _scales(text: str) -> tuple[float, ...]:
    try:
        return tuple(positive_float(part) for part in text.split(","))
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"--scales takes factors separated by commas, e.g. 0.5,1,1.5; not {text!r}") \
            from None


def _crop_stride(text: str) -> tuple[int, int]:
    parts = text.split(",")
    if len(parts) != 2 or not all(part.strip().isdigit() and int(part) > 0 for part in parts):
        raise argparse.ArgumentTypeError(f"--slide takes CROP,STRIDE in pixels, e.g. 64,43; not {text!r}")
    return int(parts[0]), int(parts[1])


def _learning_rate(text: str) -> float | str:
    if text == "auto":
        return text
    try:
        return positive_float(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"--lr takes a number above 0 or 'auto', not {text!r}") from None


def _add_train_settings(p) -> None:
    """The settings of a run (data, fine-tuning, optimisation, how it runs): `train` and `lr-find` take them."""
    from .data.auto_augment import AUTO_AUGMENTS
    from .training.optim import OPTIMIZERS, SCHEDULES

    unset = argparse.SUPPRESS  # only flags the user gives override the recipe
    data = p.add_argument_group("data")
    data.add_argument("--data", default=unset,
                      help="'digits' or 'digits-seg' (embedded) or a folder: ImageFolder tree, MNIST/Fashion-MNIST "
                           "IDX, CIFAR binary; for segmentation a VOC folder or images/ + masks/ folders")
    data.add_argument("--val-split", type=fraction, default=unset, metavar="F",
                      help="fraction of the training images held out for validation when the data has no val split")
    data.add_argument("--skip-bad", action="store_true", default=unset, help="skip unreadable images (and count them)")
    data.add_argument("--input-size", type=_image_size, nargs="+", default=unset, metavar="HxW",
                      help="train at this size instead of the model card's, e.g. 64, 64x48 or 64 48 "
                           "(digits-seg canvases are 64x64)")
    data.add_argument("--border", type=non_negative_int, default=unset, metavar="N",
                      help="black pixels around each image inside the input (default: 2 for LeNet-5, else 0)")
    data.add_argument("--random-crop-padding", type=non_negative_int, default=unset, metavar="N", help="pad N pixels, crop back")
    data.add_argument("--scale-jitter", type=positive_float, nargs=2, default=unset, metavar=("A", "B"),
                      help="resize the shorter side to [A, B] x the input side, then crop (VGG/ResNet)")
    data.add_argument("--random-resized-crop", type=float, nargs=2, default=unset, metavar=("A", "B"),
                      help="GoogLeNet's crop: [A, B] of the area, aspect 3/4..4/3, resized to the input "
                           "(torchvision's RandomResizedCrop: 0.08 1)")
    data.add_argument("--hflip", action=argparse.BooleanOptionalAction, default=unset, help="random mirror images")
    data.add_argument("--pca-lighting", type=non_negative_float, default=unset, metavar="STD",
                      help="AlexNet's PCA colour lighting (paper: 0.1)")
    data.add_argument("--auto-augment", choices=AUTO_AUGMENTS, default=unset,
                      help="RandAugment (2 operations at magnitude 9) or TrivialAugment (one, random magnitude)")
    data.add_argument("--random-erasing", type=unit_interval, default=unset, metavar="P",
                      help="erase a random rectangle of a training image with probability P (Zhong et al.)")
    data.add_argument("--mixup-alpha", type=positive_float, default=unset, metavar="A", help="mixup's Beta(A, A) (0.2)")
    data.add_argument("--cutmix-alpha", type=positive_float, default=unset, metavar="A", help="CutMix's Beta(A, A) (1.0)")
    tune = p.add_argument_group("fine-tuning")
    tune.add_argument("--init", default=unset, metavar="FILE",
                      help="start from these weights: a convzoo checkpoint or run folder, or a torchvision-layout "
                           "state dict (a classifier of another size is re-initialised)")
    tune.add_argument("--freeze", nargs="+", default=unset, metavar="STAGE|PATTERN",
                      help="stages to keep fixed (stem, layer1, ...) or parameter-name patterns ('layer1.*')")
    tune.add_argument("--lr-body", type=non_negative_float, default=unset, metavar="LR",
                      help="the learning rate of the body (the head keeps --lr)")
    tune.add_argument("--layer-decay", type=unit_interval, default=unset, metavar="D",
                      help="each stage back from the head trains at D x the rate of the next")
    tune.add_argument("--freeze-bn", action=argparse.BooleanOptionalAction, default=unset,
                      help="keep every batch norm's running statistics")
    opt = p.add_argument_group("optimisation")
    opt.add_argument("--epochs", type=positive_int, default=unset, metavar="N")
    opt.add_argument("-b", "--batch-size", type=positive_int, default=unset, metavar="N", help="images per process")
    opt.add_argument("--opt", choices=OPTIMIZERS, default=unset)
    opt.add_argument("--lr", type=_learning_rate, default=unset,
                     help="a number, or auto: the learning-rate finder's suggestion (see `convzoo lr-find`)")
    opt.add_argument("--lr-find-steps", type=positive_int, default=unset, metavar="N",
                     help="the learning-rate finder's sweep length (100)")
    opt.add_argument("--momentum", type=unit_interval, default=unset)
    opt.add_argument("--wd", "--weight-decay", dest="weight_decay", type=non_negative_float, default=unset)
    opt.add_argument("--lr-scheduler", choices=SCHEDULES, default=unset)
    opt.add_argument("--lr-step-size", type=positive_int, default=unset, metavar="EPOCHS", help="step: epochs between cuts")
    opt.add_argument("--lr-steps", type=positive_int, nargs="+", default=unset, metavar="EPOCH", help="multistep: cut epochs")
    opt.add_argument("--lr-gamma", type=positive_float, default=unset, help="factor of each cut (step, multistep, plateau)")
    opt.add_argument("--lr-patience", type=non_negative_int, default=unset, metavar="EPOCHS",
                     help="plateau: epochs without improvement of the validation metric before a cut")
    opt.add_argument("--lr-warmup-epochs", type=non_negative_float, default=unset)
    opt.add_argument("--lr-warmup-decay", type=positive_float, default=unset, help="warm-up starts at this x lr")
    opt.add_argument("--lr-min", type=non_negative_float, default=unset, help="cosine: the final learning rate")
    opt.add_argument("--label-smoothing", type=unit_interval, default=unset)
    opt.add_argument("--clip-grad-norm", type=positive_float, default=unset, metavar="MAX")
    opt.add_argument("--model-ema", type=fraction, default=unset, metavar="DECAY",
                     help="keep an exponential moving average of the weights (e.g. 0.999); the better of the two "
                          "on the validation split becomes best.safetensors")
    opt.add_argument("--patience", type=positive_int, default=unset, metavar="EPOCHS",
                     help="stop early after this many epochs without a better validation metric")
    opt.add_argument("--model-arg", dest="model_args", type=_model_arg, action="append", default=unset,
                     metavar="KEY=VALUE", help="keyword argument of the network, e.g. drop_path=0.1 (a ResNet's stochastic depth)")
    opt.add_argument("--spec", default=unset, metavar="FILE_OR_DIR",
                     help="nas: the architecture spec (a JSON file, a search folder's best.json, or a nas run "
                          "folder); the input size defaults to the spec's")
    how = p.add_argument_group("how it runs")
    how.add_argument("--seed", type=non_negative_int, default=unset)
    how.add_argument("--amp", action=argparse.BooleanOptionalAction, default=unset,
                     help="bf16 autocast (default: on if a measurement of the first steps finds it 10%% faster)")
    how.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=unset,
                     help="channels_last memory format (default: measured, as --amp)")
    how.add_argument("--use-deterministic-algorithms", dest="deterministic", action="store_true", default=unset)
    how.add_argument("--device", type=device, default=unset, help="auto (default), cpu, cuda, cuda:1 or mps")
    how.add_argument("-j", "--workers", type=non_negative_int, default=unset, metavar="N",
                     help="data loading processes (default: none for data in memory; for image files one "
                          "fewer than the cores, at most 8)")
    add_threads_argument(how, default=unset)
    how.add_argument("--force", action="store_true", default=unset, help=_FORCE_HELP)
    how.add_argument("--tensorboard", action=argparse.BooleanOptionalAction, default=unset,
                     help="also write TensorBoard event files (needs convzoo[tensorboard]) beside metrics.csv")


def _add_training_commands(commands) -> None:
    from .training import RECIPES

    unset = argparse.SUPPRESS  # only flags the user gives override the recipe
    p = commands.add_parser("train", help="train a network on digits or your images; writes a run folder",
                            description="Train a registered network. Flags override the recipe's values "
                                        "(default recipe: quick). Flag names follow torchvision's "
                                        "references/classification/train.py.")
    p.add_argument("model", nargs="?", help="registered network name (see `convzoo list`)")
    p.add_argument("--resume", metavar="DIR", default=None,
                   help="continue the run in DIR from its last finished epoch (same result as never stopping)")
    p.add_argument("--recipe", choices=list(RECIPES), default=unset,
                   help="a paper's settings (see convzoo.training.RECIPES); default: quick, or segmentation for "
                        "a segmentation network")
    p.add_argument("--out", "--output-dir", dest="out", type=out_folder, metavar="DIR", default=unset,
                   help="run folder (default: runs/MODEL-DATA, numbered if it exists)")
    _add_train_settings(p)
    p.add_argument("--explain", action=argparse.BooleanOptionalAction, default=unset,
                   help="write the explain/ gallery of a few test images at the end (default: on)")
    p.set_defaults(run=_cmd_train)

    p = commands.add_parser("lr-find", help="the learning-rate range test: loss against an exponentially growing rate",
                            description="Train from the initial weights while the learning rate grows from "
                                        "--start-lr to --end-lr; write lr_find.json and lr_find.png with the "
                                        "suggested rate. Takes train's settings (recipe, data, optimizer, --init).")
    p.add_argument("model", help="registered network name (see `convzoo list`)")
    p.add_argument("--recipe", choices=list(RECIPES), default=unset, help="default: as train's")
    p.add_argument("--out", dest="out", type=out_folder, metavar="DIR", default=unset,
                   help="where lr_find.json and lr_find.png go (default: runs/MODEL-lr-find)")
    p.add_argument("--start-lr", dest="lr_start", type=positive_float, default=1e-6, help="first rate (1e-6)")
    p.add_argument("--end-lr", dest="lr_end", type=positive_float, default=10.0, help="last rate (10)")
    _add_train_settings(p)
    p.set_defaults(run=_cmd_lr_find)

    p = commands.add_parser("eval", help="evaluate checkpoints (and their ensemble) on a data set")
    p.add_argument("checkpoints", nargs="+", metavar="CKPT", help=".safetensors checkpoint or run folder (its best)")
    p.add_argument("--data", required=True, help="'digits', 'digits-seg' or a data folder (see `convzoo train --help`)")
    p.add_argument("--split", choices=("test", "val"), default=None, help="default: test when the data has one")
    p.add_argument("--crops", type=int, choices=(1, 10), default=1,
                   help="10: average the four corner and centre crops and their mirror images (AlexNet, ResNet)")
    p.add_argument("-b", "--batch-size", type=positive_int, default=64)
    add_device_argument(p)
    add_threads_argument(p)
    p.add_argument("--skip-bad", action="store_true", help="skip unreadable images (and count them)")
    p.add_argument("--crf", action="store_true",
                   help="segmentation: refine each softmax with the dense CRF (layers/crf.py) before the argmax")
    p.add_argument("--crf-param", dest="crf_params", type=_model_arg, action="append", default=[],
                   metavar="KEY=VALUE", help="a DenseCRF setting (implies --crf), e.g. theta_alpha=6 w_smooth=0: "
                                             "the defaults are the paper's, for photographs")
    p.add_argument("--scales", type=_scales, default=None, metavar="S,S,...",
                   help="segmentation: average the softmax over these input scales, e.g. 0.5,0.75,1,1.25,1.5,1.75")
    p.add_argument("--flip", action="store_true", help="segmentation: average with the mirrored image's softmax")
    p.add_argument("--slide", type=_crop_stride, default=None, metavar="CROP,STRIDE",
                   help="segmentation: label CROPxCROP windows every STRIDE pixels (images larger than the crop)")
    p.add_argument("--protocol", choices=("deeplabv3", "pspnet"), default=None,
                   help="segmentation: a paper's test protocol: deeplabv3 (6 scales + flip), pspnet (6 scales + "
                        "flip, windows of the input size every 2/3 of it)")
    p.add_argument("--json", action="store_true", help="print JSON (with per-class accuracy and confusion matrix)")
    p.add_argument("--force", action="store_true", help=_FORCE_HELP)
    p.set_defaults(run=_cmd_eval)

    p = commands.add_parser("predict", help="the most probable classes of image files, or their masks")
    p.add_argument("checkpoint", metavar="CKPT", help=".safetensors checkpoint or run folder (its best)")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--top", type=positive_int, default=5, metavar="K")
    p.add_argument("--crops", type=int, choices=(1, 10), default=1)
    p.add_argument("--out", type=out_folder, default=None, metavar="DIR",
                   help="segmentation: write STEM_mask.png (VOC palette) and STEM_overlay.png here")
    p.add_argument("--crf", action="store_true", help="segmentation: refine the softmax with the dense CRF")
    p.add_argument("--crf-param", dest="crf_params", type=_model_arg, action="append", default=[],
                   metavar="KEY=VALUE", help="a DenseCRF setting (implies --crf), e.g. theta_alpha=6")
    add_device_argument(p)
    add_threads_argument(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.add_argument("--force", action="store_true", help=_FORCE_HELP)
    p.set_defaults(run=_cmd_predict)


def _cmd_explain(args: argparse.Namespace) -> int:
    from .explain import explain

    options = {key: getattr(args, key) for key in ("window", "stride", "channels") if getattr(args, key) is not None}
    layer = args.layer[0] if args.layer and len(args.layer) == 1 else args.layer
    result = explain(args.source, args.images or None, args.method, layer=layer, target=args.target, out=args.out,
                     device=args.device, **options)
    numbers, files = result.numbers, result.numbers["files"]
    if "targets" in numbers:
        table = Table(title=f"{args.method} of {result.model}" + (f" at {numbers['layer']['layer']}"
                                                                  if "layer" in numbers else ""), title_justify="left")
        for column in ("image", "class", "probability", "peak pixel" if args.method != "occlusion" else
                       "lowest probability"):
            table.add_column(column, justify="right" if column != "image" else "left")
        for entry in numbers["targets"]:
            last = (f"{entry['peak_pixel']}" if "peak_pixel" in entry else f"{entry['lowest_probability']:.4f}")
            table.add_row(str(numbers["images"][entry["image"]]), entry["class"], f"{entry['probability']:.4f}", last)
        _console().print(table)
    elif "theoretical_box" in numbers:
        share = numbers.get("box_share_holding_90_percent")
        print(f"{result.model} {numbers['layer']['layer']} unit {numbers['unit']}: theoretical receptive field "
              f"{numbers['theoretical_box']} (top, left, bottom, right), gradient support {numbers['support_box']}"
              + (f", 90% of the gradient in {share:.1%} of the box" if share is not None else ""))
    print(f"{len(files['pngs'])} PNG(s), {files['json']}" + (f", {files['npz']}" if "npz" in files else "")
          + f" in {args.out} (index: {args.out}/index.json)")
    return 0


def _add_explain_command(commands) -> None:
    from .explain import METHODS

    p = commands.add_parser("explain", help="look inside a trained network: feature maps, filters, CAMs, occlusion, "
                                            "effective receptive field",
                            description="What a trained network sees in images. Writes PNGs, a JSON of the numbers "
                                        "behind them and an NPZ of the maps to --out (docs/explain.md).")
    p.add_argument("source", metavar="CKPT|RUN_FOLDER", help=".safetensors checkpoint or run folder (its best)")
    p.add_argument("images", nargs="*", metavar="IMAGE", help="image files (filters needs none)")
    p.add_argument("--method", choices=METHODS, default="gradcam", help="default: gradcam")
    p.add_argument("--layer", action="append", default=None, metavar="MODULE_PATH",
                   help="a module path (`convzoo summary NAME` lists them); feature-maps takes several. Default: "
                        "the stages (feature-maps), the first conv (filters), else the last stage before global "
                        "pooling (a segmentation network: its classifier's input)")
    p.add_argument("--class", dest="target", default=None, metavar="C",
                   help="class name or index to explain (default: the predicted class; segmentation: each "
                        "predicted class)")
    p.add_argument("--out", required=True, type=out_folder, metavar="DIR")
    p.add_argument("--window", type=positive_int, default=None, metavar="PX",
                   help="occlusion: the square's side (default: a seventh of the image's shorter side)")
    p.add_argument("--stride", type=positive_int, default=None, metavar="PX",
                   help="occlusion: the step between squares (default: a quarter of the window)")
    p.add_argument("--channels", type=positive_int, default=None, metavar="N",
                   help="feature-maps: channels drawn per layer, most active first (default 32)")
    add_device_argument(p)
    add_threads_argument(p)
    p.set_defaults(run=_cmd_explain)


def _nas_search_settings(args: argparse.Namespace) -> dict:
    """The search settings given on the command line (unset flags are absent: the defaults, or on --resume the
    saved search's, stand)."""
    settings = {k: v for k, v in vars(args).items()
                if k not in ("command", "nas_command", "run", "resume", "out")}
    space = {k: settings.pop(k) for k in ("filter_sizes", "num_filters", "strides") if k in settings}
    if space:
        settings["space"] = space
    for key in ("train_settings", "enas"):
        if key in settings:
            settings[key] = dict(settings[key])
    if "input_size" in settings:
        if len(settings["input_size"]) != 3:
            raise ValueError(f"--input-size takes channels x height x width, e.g. 1x16x16; got "
                             f"{'x'.join(map(str, settings['input_size']))}")
    return settings


def _default_search_out(method: str, data: str) -> str:
    from pathlib import Path

    from .io import first_free_folder
    from .nas.folder import SearchFolder

    data_name = data if data == "digits" else Path(data).expanduser().resolve().name
    return str(first_free_folder(Path("runs") / f"nas-{method}-{data_name}", lambda p: SearchFolder(p).holds_search()))


def nas_search_config(args: argparse.Namespace):
    """The SearchConfig and search folder `convzoo nas search` args ask for: the flags given over the method's
    defaults or, with --resume, over the saved search's settings."""
    from .nas.config import SearchConfig
    from .nas.folder import SearchFolder

    settings = _nas_search_settings(args)
    if not args.resume:
        config = SearchConfig.for_method(settings)
        return config, args.out or _default_search_out(config.method, config.data)
    if args.out and args.out != args.resume:
        raise ValueError(f"--resume continues the search in {args.resume}; --out {args.out} names another "
                         f"folder (leave --out out)")
    saved = SearchFolder(args.resume).read_config()
    if settings.get("executor", saved.get("executor")) != "ray":  # the Ray settings go with the Ray executor
        saved = {k: v for k, v in saved.items() if k not in ("address", "cpus_per_child", "gpus_per_child")}
    space = {**saved.get("space", {}), **settings.pop("space", {})}
    return SearchConfig.from_dict({**saved, **settings, "space": space}), args.resume


def _cmd_nas_search(args: argparse.Namespace) -> int:
    from .nas.search import search

    config, out = nas_search_config(args)
    search(config, out, resume=bool(args.resume), console=_console())
    return 0


def _architecture_text(spec: dict | None) -> str:
    """A spec in one line: per layer filters@heightxwidth, /s2 for a stride, <0,2 for its inputs."""
    if not spec:
        return "-"
    parts = []
    for layer in spec["layers"]:
        text = f"{layer['num_filters']}@{layer['filter_height']}x{layer['filter_width']}"
        if layer["stride"] != 1:
            text += f"/s{layer['stride']}"
        if layer["inputs"]:
            text += "<" + ",".join(map(str, layer["inputs"]))
        parts.append(text)
    return " ".join(parts)


def _cmd_nas_show(args: argparse.Namespace) -> int:
    from .nas.folder import SearchFolder, best_row, plot_rewards

    console = _console()
    # Folders side by side are usually siblings: name each by its path below their common parent.
    parent = os.path.commonpath([os.path.abspath(p) for p in args.folders]) if len(args.folders) > 1 else ""
    boards = {}
    for path in args.folders:
        folder = SearchFolder(path)
        rows = folder.read_leaderboard()
        config = folder.read_config() if folder.config.is_file() else {}
        boards[os.path.relpath(os.path.abspath(path), parent) if parent else path] = (config, rows)
    overview = Table(title="searches" + (f" in {parent}" if parent else "") + " (reward: the child's best validation "
                           "accuracy of its last epochs, as a fraction, cubed; best, and mean of the last quarter)",
                     title_justify="left")
    for column in ("folder", "method", "scored", "trained", "dup", "best reward", "val acc", "params",
                   "last 1/4 mean", "train s"):
        overview.add_column(column, justify="left" if column in ("folder", "method") else "right")
    for path, (config, rows) in boards.items():
        best = best_row(rows)
        last = [r["reward"] for r in rows[len(rows) - max(len(rows) // 4, 1):]]
        overview.add_row(
            path, str(rows[0]["method"] if rows else config.get("method", "?")), str(len(rows)),
            str(sum(bool(r.get("run")) for r in rows)), str(sum(r.get("duplicate_of") is not None for r in rows)),
            "-" if best is None else f"{best['reward']:.4f} (#{best['index']})",
            "-" if best is None or best["val_accuracy"] is None else f"{best['val_accuracy']:.2f}%",
            "-" if best is None or best.get("params") is None else f"{best['params']:,}",
            f"{sum(last) / len(last):.4f}" if last else "-",
            f"{sum(r.get('train_seconds') or 0 for r in rows):.0f}")
    console.print(overview)
    for path, (config, rows) in boards.items():
        top = sorted(rows, key=lambda r: (-r["reward"], r["index"]))[:args.top]
        table = Table(title=f"{path}: top {len(top)} of {len(rows)}", title_justify="left")
        for column in ("rank", "#", "layers", "reward", "val acc", "params", "MACs", "train s", "architecture"):
            table.add_column(column, justify="left" if column == "architecture" else "right")
        for rank, row in enumerate(top, 1):
            table.add_row(str(rank), str(row["index"]), str(row["num_layers"]), f"{row['reward']:.4f}",
                          "-" if row["val_accuracy"] is None else f"{row['val_accuracy']:.2f}%",
                          "-" if row.get("params") is None else f"{row['params']:,}",
                          "-" if row.get("macs") is None else f"{row['macs']:,}",
                          f"{row.get('train_seconds') or 0:.1f}", _architecture_text(row.get("spec")))
        console.print(table)
    console.print("Search accuracy is not final accuracy: it is measured on the validation split after a short "
                  "training (or with shared weights). Retrain the winner from scratch and judge it on the test split: "
                  "`convzoo train nas --spec FOLDER/best.json`.")
    if args.out:
        plot_rewards({f"{path} ({rows[0]['method'] if rows else '?'})": [r["reward"] for r in rows]
                      for path, (_, rows) in boards.items()}, args.out, title="reward against sampled architecture")
        print(f"chart written to {args.out}")
    return 0


def _add_nas_commands(commands) -> None:
    from .nas.config import METHODS
    from .nas.executor import EXECUTORS
    from .training.optim import OPTIMIZERS

    unset = argparse.SUPPRESS  # only flags the user gives override the defaults (or a resumed search's settings)
    nas = commands.add_parser("nas", help="neural architecture search: search, show",
                              description="Neural architecture search (Zoph & Le 2016; ENAS, Pham et al. 2018).")
    sub = nas.add_subparsers(dest="nas_command", required=True, metavar="NAS_COMMAND")
    p = sub.add_parser("search", help="search architectures; writes a search folder (leaderboard, best.json)",
                       description="Sample architectures, train and score each (or share weights: enas), learn from "
                                   "the rewards. Defaults are Zoph & Le's where the paper gives them; see "
                                   "docs/nas.md. Retrain the winner with `convzoo train nas --spec DIR/best.json`.")
    p.add_argument("--method", choices=METHODS, default=unset, help="reinforce (default), random, or enas")
    p.add_argument("--data", default=unset, help="'digits' (default) or a data folder (see `convzoo train --help`)")
    p.add_argument("--budget", type=positive_int, default=unset, metavar="N", help="architectures to sample (default 64)")
    p.add_argument("--workers", type=positive_int, default=unset, metavar="N",
                   help="children trained at once (local: processes; ray: tasks)")
    p.add_argument("--executor", choices=EXECUTORS, default=unset,
                   help="local (this process, or --workers processes) or ray (a Ray cluster: pip install "
                        "\"convzoo[ray]\"; docs/nas.md)")
    p.add_argument("--address", default=unset, metavar="auto|HOST:PORT",
                   help="ray: the cluster (auto: the one `ray start` joined here; default RAY_ADDRESS, else a new "
                        "Ray instance on this machine)")
    p.add_argument("--cpus-per-child", type=positive_float, default=unset, metavar="N",
                   help="ray: a child's CPU request, and its torch threads (default 1)")
    p.add_argument("--gpus-per-child", type=non_negative_float, default=unset, metavar="N",
                   help="ray: a child's GPU request (default 0; 0.5 puts two children on a GPU)")
    p.add_argument("--retries", type=non_negative_int, default=unset, metavar="N",
                   help="runs a child gets after the first when its worker is lost (default 2); then it is "
                        "recorded as failed")
    p.add_argument("--out", type=out_folder, default=None, metavar="DIR", help="search folder (default: runs/nas-METHOD-DATA)")
    p.add_argument("--resume", default=None, metavar="DIR",
                   help="continue the search in DIR exactly (a larger --budget extends it)")
    p.add_argument("--seed", type=non_negative_int, default=unset)
    space = p.add_argument_group("search space")
    space.add_argument("--input-size", type=_input_size, default=unset, metavar="CxHxW",
                       help="the children's input, e.g. 1x16x16 (default)")
    space.add_argument("--val-split", type=fraction, default=unset, metavar="F", help="held out for the reward")
    space.add_argument("--filter-sizes", type=positive_int, nargs="+", default=unset, metavar="N",
                       help="filter heights and widths (default 1 3 5 7)")
    space.add_argument("--num-filters", type=positive_int, nargs="+", default=unset, metavar="N",
                       help="numbers of filters (default 24 36 48 64)")
    space.add_argument("--strides", type=positive_int, nargs="+", default=unset, metavar="N",
                       help="strides (default 1; 1 2 3 searches them)")
    space.add_argument("--start-layers", type=positive_int, default=unset, metavar="N", help="s0 (paper: 6)")
    space.add_argument("--add-layers", type=non_negative_int, default=unset, metavar="N", help="depth step (paper: 2)")
    space.add_argument("--add-layers-every", type=positive_int, default=unset, metavar="N",
                       help="samples between depth steps (paper: 1600)")
    ctl = p.add_argument_group("controller (REINFORCE)")
    ctl.add_argument("-m", "--children-per-update", type=positive_int, default=unset, metavar="M", help="paper: 8")
    ctl.add_argument("--controller-lr", type=positive_float, default=unset, help="Adam (paper: 6e-4)")
    ctl.add_argument("--controller-hidden-size", type=positive_int, default=unset, metavar="N", help="paper: 35")
    ctl.add_argument("--controller-lstm-layers", type=positive_int, default=unset, metavar="N", help="paper: 2")
    ctl.add_argument("--controller-init-range", type=positive_float, default=unset, help="paper: 0.08")
    ctl.add_argument("--baseline-decay", type=unit_interval, default=unset, help="of the EMA baseline (default 0.95)")
    ctl.add_argument("--entropy-weight", type=non_negative_float, default=unset, help="entropy bonus (default 0: none)")
    child = p.add_argument_group("child training")
    child.add_argument("--epochs", type=positive_int, default=unset, metavar="N", help="per child (default 10; paper 50)")
    child.add_argument("--reward-epochs", type=positive_int, default=unset, metavar="K",
                       help="reward: best validation accuracy of the last K epochs, cubed (paper: 5)")
    child.add_argument("-b", "--batch-size", type=positive_int, default=unset, metavar="N")
    child.add_argument("--opt", choices=OPTIMIZERS, default=unset, help="default sgd_nesterov (paper)")
    child.add_argument("--lr", type=positive_float, default=unset, help="default 0.1 (paper)")
    child.add_argument("--momentum", type=unit_interval, default=unset)
    child.add_argument("--wd", "--weight-decay", dest="weight_decay", type=non_negative_float, default=unset)
    child.add_argument("--train-arg", dest="train_settings", type=_model_arg, action="append", default=unset,
                       metavar="KEY=VALUE", help="another `convzoo train` setting for every child, e.g. "
                                                 "random_crop_padding=1")
    add_threads_argument(p, default=unset)
    p.add_argument("--enas-arg", dest="enas", type=_model_arg, action="append", default=unset, metavar="KEY=VALUE",
                   help="an ENAS setting (see docs/nas.md), e.g. controller_steps=20")
    p.add_argument("--force", action="store_true", default=unset, help=_FORCE_HELP)
    p.set_defaults(run=_cmd_nas_search)

    p = sub.add_parser("show", help="leaderboards of search folders, side by side; --out draws their rewards")
    p.add_argument("folders", nargs="+", metavar="DIR", help="search folders (e.g. a reinforce and a random search)")
    p.add_argument("--top", type=positive_int, default=10, metavar="N", help="rows of each leaderboard (default 10)")
    p.add_argument("--out", type=out_file, default=None, metavar="rewards.png", help="one chart, one curve per folder")
    p.set_defaults(run=_cmd_nas_show)


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="convzoo", description="The landmark convolutional networks: build, "
                                     "inspect, train, compare.")
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show Python tracebacks for errors (may come anywhere on the command line)")
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
    p.add_argument("name", nargs="?", metavar="NAME_OR_CKPT",
                   help="a model name, a weights file that names its network (save_weights, `convzoo train`) or a "
                        "run folder")
    p.add_argument("--model-arg", dest="model_args", type=_model_arg, action="append", default=None,
                   metavar="KEY=VALUE", help="keyword argument of the network, e.g. num_classes=10")
    p.add_argument("--spec", default=None, metavar="FILE_OR_DIR", help="nas: the architecture spec to summarise")
    p.add_argument("--input", type=_input_size, default=None, metavar="CxHxW",
                   help="input size without the batch axis, e.g. 3x224x224 (default: the model card's)")
    p.add_argument("--format", choices=("table", "markdown", "json", "csv"), default="table")
    p.add_argument("--depth", type=non_negative_int, default=None, metavar="N",
                   help="fold layers deeper than N into their parents (0: the whole model in one row)")
    p.add_argument("--convention", choices=CONVENTIONS, default="all",
                   help="all: every operation by its rule; conv_linear: convolutions and linear layers only "
                        "(torchvision's published figures)")
    p.set_defaults(run=_cmd_summary)

    p = commands.add_parser("compare", help="table and chart of reported accuracy against operations and parameters")
    p.add_argument("names", nargs="+", metavar="NAME_OR_RUN",
                   help="model names, shell-style wildcards (e.g. 'resnet*') or `convzoo train` run folders")
    p.add_argument("--out", type=out_file, default=None, metavar="chart.png", help="also draw the complexity chart to this file")
    p.set_defaults(run=_cmd_compare)

    p = commands.add_parser("export", help="write a network or checkpoint as ONNX, TorchScript or an ExportedProgram")
    p.add_argument("source", metavar="CKPT_OR_NAME", help="checkpoint (.safetensors or run folder) or registered name")
    p.add_argument("--format", choices=("onnx", "torchscript", "exported-program"), default="onnx")
    p.add_argument("--out", type=out_file, required=True, metavar="FILE", help="the file to write (FILE.json describes it)")
    p.add_argument("--input", type=_input_size, default=None, metavar="CxHxW",
                   help="input size without the batch axis (default: the checkpoint's or the card's); "
                        "the batch axis stays dynamic")
    p.add_argument("--check", action=argparse.BooleanOptionalAction, default=True,
                   help="run the written file at batch 1 and 3 and compare with PyTorch (ONNX: needs onnxruntime)")
    add_threads_argument(p)
    p.set_defaults(run=_cmd_export)

    p = commands.add_parser("draw", help="draw a network as SVG, PNG or PDF (or the course's figures: --course)")
    p.add_argument("source", nargs="?", default=None, metavar="NAME|CKPT|RUN_FOLDER",
                   help="registered name, .safetensors checkpoint or run folder")
    p.add_argument("--out", default=None, metavar="net.svg",
                   help="file to write, format by suffix: .svg, .png, .pdf (default NAME.svg here); "
                        "with --course, the folder")
    p.add_argument("--input", type=_input_size, default=None, metavar="CxHxW",
                   help="input size without the batch axis (default: the card's or the checkpoint's)")
    p.add_argument("--depth", type=non_negative_int, default=None, metavar="N",
                   help="draw each module deeper than N as one box (0: the whole model)")
    p.add_argument("--expand", action="store_true", help="draw every block of a repeated run, not one frame x N")
    p.add_argument("--direction", choices=("TB", "LR", "U"), default="TB",
                   help="top to bottom (default), left to right, or U (an encoder-decoder: down, across, up)")
    p.add_argument("--force", action="store_true", help="replace files that exist")
    p.add_argument("--course", action="store_true", help="write the course's figures (PNG and SVG) to --out DIR")
    p.set_defaults(run=_cmd_draw)

    p = commands.add_parser("explore", help="write the explorer: one offline web page of the zoo, networks and runs")
    p.add_argument("items", nargs="*", metavar="NAME|RUN_FOLDER",
                   help="registered names, wildcards ('resnet*') or `convzoo train` run folders (none: every network)")
    p.add_argument("--out", type=out_folder, default=None, metavar="DIR",
                   help="the site's folder (default ./explore; with --serve, a temporary folder); open DIR/index.html")
    p.add_argument("--serve", action="store_true", help="then serve it on http://127.0.0.1:PORT/ until Ctrl-C")
    p.add_argument("--port", type=port, default=8000, metavar="N", help="the port for --serve (default 8000)")
    p.add_argument("--workers", type=positive_int, default=None, metavar="N",
                   help="processes drawing the networks (default: one per usable core for more than 8 networks)")
    p.set_defaults(run=_cmd_explore)

    from .bench import add_bench_arguments

    p = commands.add_parser("bench", help="inference and training throughput against the machine's matmul peak")
    add_bench_arguments(p)
    p.set_defaults(run=_cmd_bench)

    _add_training_commands(commands)
    _add_explain_command(commands)
    _add_nas_commands(commands)
    return parser


def command_with(argv: Sequence[str], fixes: Sequence[tuple[str, str]]) -> str:
    """The command `argv` (without the program name) with each (flag, value) of `fixes` set: an earlier value
    of the flag, under any of its spellings, is dropped."""
    words = list(argv)
    for flag, value in fixes:
        spellings = _FLAG_SPELLINGS.get(flag, (flag,))
        kept, skipping = [], False
        for word in words:
            if word in spellings or any(word.startswith(f"{s}=") for s in spellings if s.startswith("--")):
                skipping = word in spellings  # "--flag value...": drop the values that follow too
                continue
            if skipping and not word.startswith("-"):
                continue
            skipping = False
            kept.append(word)
        words = kept + [flag, *value.split()]
    return "convzoo " + " ".join(words)


# Commands whose library call applies convzoo.runtime's thread policy itself and shows it in its first line.
_SHOW_THEIR_THREADS = ("train", "nas")


def main(argv: Sequence[str] | None = None) -> int:
    """The one error boundary: a mistake a user can make (a convzoo error, a bad value, a path that cannot be
    read or written, Ctrl-C) is one line naming the problem and the fix, exit code 2 (130 for Ctrl-C); anything
    else is a bug: one line asking to report it, exit code 1. --debug shows the traceback of either."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    args = build_parser().parse_args([a for a in argv if a != "--debug"])
    command = " ".join(filter(None, ("convzoo", args.command, getattr(args, "nas_command", None))))
    try:
        if hasattr(args, "threads") and args.command not in _SHOW_THEIR_THREADS:
            # The one thread policy (convzoo.runtime), shown before the work starts.
            print(f"{command}: {use_threads(args.threads)}", file=sys.stderr)
        return args.run(args)
    except KeyboardInterrupt as err:
        if debug:
            raise
        print(f"\n{command}: {err.message if isinstance(err, Interrupted) else 'interrupted'}", file=sys.stderr)
        return 130
    except (ValueError, OSError, ConvzooError) as err:
        if debug:
            raise
        message = user_error_message(err)
        if isinstance(err, MemoryEstimateError) and err.fixes:
            message += ". A command that fits: " + " ; ".join(command_with(argv, [fix]) for fix in err.fixes)
        print(f"{command}: error: {message}", file=sys.stderr)
        return 2
    except Exception as err:  # noqa: BLE001 (the boundary: a bug gets one line, --debug its traceback)
        if debug:
            raise
        print(f"{command}: internal error: {type(err).__name__}: {err}", file=sys.stderr)
        print("This is a bug in convzoo: please report it with the command you ran and the traceback that "
              f"`{command} ... --debug` prints.", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
