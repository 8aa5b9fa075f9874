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
from .errors import ConvzooError
from .registry import list_models, model_card

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
        table.add_row(_REPORTED_NAMES.get(key, key), f"{value}% (as the paper reports it)")
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

    try:
        out = export(args.source, format=args.format, out=args.out, input_size=args.input, check=args.check)
    except ValueError as err:
        if isinstance(err, ConvzooError):
            raise
        print(f"convzoo export: error: {err}", file=sys.stderr)
        return 2
    print(f"{args.format} written to {out} (described in {out}.json)")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from .bench import run_from_args

    return run_from_args(args)


_RESUME_MAY_CHANGE = ("epochs", "device", "workers", "threads", "out")


def _image_size(text: str) -> tuple[int, int]:
    parts = text.lower().split("x")
    if len(parts) not in (1, 2) or not all(part.isdigit() and int(part) > 0 for part in parts):
        raise argparse.ArgumentTypeError(f"expected a size like 64 or 64x48 (height x width), got {text!r}")
    return (int(parts[0]), int(parts[-1]))


def _model_arg(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, e.g. drop_path_rate=0.1, got {text!r}")
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
    from .training import RunFolder, TrainConfig, make_config, train

    settings = _training_settings(args)
    try:
        if args.resume:
            saved = RunFolder(args.resume).read_config()["config"]
            if args.model and args.model != saved["model"]:
                raise ValueError(f"{args.resume} is a run of {saved['model']}, not {args.model}")
            config = TrainConfig.from_dict({**saved, **settings, "out": args.resume})
            changed = sorted(k for k, v in config.to_dict().items()
                             if k not in _RESUME_MAY_CHANGE and saved.get(k) != v)
            if changed:
                raise ValueError(f"--resume continues a run with its own settings ({args.resume}/config.json); only "
                                 f"--epochs, --device, --workers and --threads may change, not: {', '.join(changed)}")
        elif not args.model:
            raise ValueError("name the network to train, e.g. `convzoo train lenet5 --data digits` "
                             "(`convzoo list` shows them), or continue a run with --resume DIR")
        else:
            recipe = settings.pop("recipe", None) or _default_recipe(args.model)
            config = make_config(args.model, recipe, **settings)
        train(config, resume=bool(args.resume), console=_console())
    except KeyboardInterrupt:
        print("\ninterrupted; the checkpoint of the last finished epoch is intact: continue with "
              "`convzoo train --resume RUN_FOLDER`", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError) as err:
        if isinstance(err, ConvzooError):
            raise
        print(f"convzoo train: error: {err}", file=sys.stderr)
        return 2
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

    try:
        results = evaluate_checkpoints(args.checkpoints, args.data, split=args.split, crops=args.crops,
                                       batch_size=args.batch_size, device=args.device, skip_bad=args.skip_bad,
                                       crf=_crf(args))
    except ValueError as err:
        if isinstance(err, ConvzooError):
            raise
        print(f"convzoo eval: error: {err}", file=sys.stderr)
        return 2
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

    try:
        predictions = predict_images(args.checkpoint, args.images, top=args.top, crops=args.crops,
                                     device=args.device, out=args.out, crf=_crf(args))
    except ValueError as err:
        if isinstance(err, ConvzooError):
            raise
        print(f"convzoo predict: error: {err}", file=sys.stderr)
        return 2
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


def _add_training_commands(commands) -> None:
    from .training import RECIPES
    from .training.optim import OPTIMIZERS, SCHEDULES

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
    p.add_argument("--out", "--output-dir", dest="out", metavar="DIR", default=unset,
                   help="run folder (default: runs/MODEL-DATA, numbered if it exists)")
    data = p.add_argument_group("data")
    data.add_argument("--data", default=unset,
                      help="'digits' or 'digits-seg' (embedded) or a folder: ImageFolder tree, MNIST/Fashion-MNIST "
                           "IDX, CIFAR binary; for segmentation a VOC folder or images/ + masks/ folders")
    data.add_argument("--val-split", type=float, default=unset, metavar="F",
                      help="fraction of the training images held out for validation when the data has no val split")
    data.add_argument("--skip-bad", action="store_true", default=unset, help="skip unreadable images (and count them)")
    data.add_argument("--input-size", type=_image_size, nargs="+", default=unset, metavar="HxW",
                      help="train at this size instead of the model card's, e.g. 64, 64x48 or 64 48 "
                           "(digits-seg canvases are 64x64)")
    data.add_argument("--border", type=int, default=unset, metavar="N",
                      help="black pixels around each image inside the input (default: 2 for LeNet-5, else 0)")
    data.add_argument("--random-crop-padding", type=int, default=unset, metavar="N", help="pad N pixels, crop back")
    data.add_argument("--scale-jitter", type=float, nargs=2, default=unset, metavar=("A", "B"),
                      help="resize the shorter side to [A, B] x the input side, then crop (VGG/ResNet)")
    data.add_argument("--hflip", action=argparse.BooleanOptionalAction, default=unset, help="random mirror images")
    data.add_argument("--pca-lighting", type=float, default=unset, metavar="STD",
                      help="AlexNet's PCA colour lighting (paper: 0.1)")
    opt = p.add_argument_group("optimisation")
    opt.add_argument("--epochs", type=int, default=unset, metavar="N")
    opt.add_argument("-b", "--batch-size", type=int, default=unset, metavar="N", help="images per process")
    opt.add_argument("--opt", choices=OPTIMIZERS, default=unset)
    opt.add_argument("--lr", type=float, default=unset)
    opt.add_argument("--momentum", type=float, default=unset)
    opt.add_argument("--wd", "--weight-decay", dest="weight_decay", type=float, default=unset)
    opt.add_argument("--lr-scheduler", choices=SCHEDULES, default=unset)
    opt.add_argument("--lr-step-size", type=int, default=unset, metavar="EPOCHS", help="step: epochs between cuts")
    opt.add_argument("--lr-steps", type=int, nargs="+", default=unset, metavar="EPOCH", help="multistep: cut epochs")
    opt.add_argument("--lr-gamma", type=float, default=unset, help="factor of each cut (step, multistep, plateau)")
    opt.add_argument("--lr-patience", type=int, default=unset, metavar="EPOCHS",
                     help="plateau: epochs without improvement of the validation metric before a cut")
    opt.add_argument("--lr-warmup-epochs", type=float, default=unset)
    opt.add_argument("--lr-warmup-decay", type=float, default=unset, help="warm-up starts at this x lr")
    opt.add_argument("--lr-min", type=float, default=unset, help="cosine: the final learning rate")
    opt.add_argument("--label-smoothing", type=float, default=unset)
    opt.add_argument("--clip-grad-norm", type=float, default=unset, metavar="MAX")
    opt.add_argument("--model-arg", dest="model_args", type=_model_arg, action="append", default=unset,
                     metavar="KEY=VALUE", help="keyword argument of the network, e.g. drop_path_rate=0.1")
    opt.add_argument("--spec", default=unset, metavar="FILE_OR_DIR",
                     help="nas: the architecture spec (a JSON file, a search folder's best.json, or a nas run "
                          "folder); the input size defaults to the spec's")
    how = p.add_argument_group("how it runs")
    how.add_argument("--seed", type=int, default=unset)
    how.add_argument("--amp", action=argparse.BooleanOptionalAction, default=unset,
                     help="bf16 autocast (default: on if a measurement of the first steps finds it 10%% faster)")
    how.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=unset,
                     help="channels_last memory format (default: measured, as --amp)")
    how.add_argument("--use-deterministic-algorithms", dest="deterministic", action="store_true", default=unset)
    how.add_argument("--device", default=unset, help="auto (default), cpu, cuda, cuda:1")
    how.add_argument("-j", "--workers", type=int, default=unset, metavar="N", help="data loading processes")
    how.add_argument("--threads", type=int, default=unset, metavar="N", help="CPU threads per process")
    p.set_defaults(run=_cmd_train)

    p = commands.add_parser("eval", help="evaluate checkpoints (and their ensemble) on a data set")
    p.add_argument("checkpoints", nargs="+", metavar="CKPT", help=".safetensors checkpoint or run folder (its best)")
    p.add_argument("--data", required=True, help="'digits', 'digits-seg' or a data folder (see `convzoo train --help`)")
    p.add_argument("--split", choices=("test", "val"), default=None, help="default: test when the data has one")
    p.add_argument("--crops", type=int, choices=(1, 10), default=1,
                   help="10: average the four corner and centre crops and their mirror images (AlexNet, ResNet)")
    p.add_argument("-b", "--batch-size", type=int, default=64)
    p.add_argument("--device", default="cpu")
    p.add_argument("--skip-bad", action="store_true", help="skip unreadable images (and count them)")
    p.add_argument("--crf", action="store_true",
                   help="segmentation: refine each softmax with the dense CRF (layers/crf.py) before the argmax")
    p.add_argument("--crf-param", dest="crf_params", type=_model_arg, action="append", default=[],
                   metavar="KEY=VALUE", help="a DenseCRF setting (implies --crf), e.g. theta_alpha=6 w_smooth=0: "
                                             "the defaults are the paper's, for photographs")
    p.add_argument("--json", action="store_true", help="print JSON (with per-class accuracy and confusion matrix)")
    p.set_defaults(run=_cmd_eval)

    p = commands.add_parser("predict", help="the most probable classes of image files, or their masks")
    p.add_argument("checkpoint", metavar="CKPT", help=".safetensors checkpoint or run folder (its best)")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--top", type=int, default=5, metavar="K")
    p.add_argument("--crops", type=int, choices=(1, 10), default=1)
    p.add_argument("--out", default=None, metavar="DIR",
                   help="segmentation: write STEM_mask.png (VOC palette) and STEM_overlay.png here")
    p.add_argument("--crf", action="store_true", help="segmentation: refine the softmax with the dense CRF")
    p.add_argument("--crf-param", dest="crf_params", type=_model_arg, action="append", default=[],
                   metavar="KEY=VALUE", help="a DenseCRF setting (implies --crf), e.g. theta_alpha=6")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.set_defaults(run=_cmd_predict)


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


def _cmd_nas_search(args: argparse.Namespace) -> int:
    from .nas.folder import SearchFolder
    from .nas.search import SearchConfig, search

    try:
        settings = _nas_search_settings(args)
        if args.resume:
            if args.out and args.out != args.resume:
                raise ValueError(f"--resume continues the search in {args.resume}; --out {args.out} names another "
                                 f"folder (leave --out out)")
            saved = SearchFolder(args.resume).read_config()
            space = {**saved.get("space", {}), **settings.pop("space", {})}
            config = SearchConfig.from_dict({**saved, **settings, "space": space})
            out = args.resume
        else:
            config = SearchConfig.for_method(settings)
            out = args.out or _default_search_out(config.method, config.data)
        search(config, out, resume=bool(args.resume), console=_console())
    except KeyboardInterrupt:
        print("\ninterrupted; the search's state after its last finished child is saved: continue with "
              "`convzoo nas search --resume SEARCH_FOLDER`", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError) as err:
        if isinstance(err, ConvzooError):
            raise
        print(f"convzoo nas search: error: {err}", file=sys.stderr)
        return 2
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


def _int_list(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def _add_nas_commands(commands) -> None:
    from .nas.executor import EXECUTORS
    from .nas.search import METHODS
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
    p.add_argument("--budget", type=int, default=unset, metavar="N", help="architectures to sample (default 64)")
    p.add_argument("--workers", type=int, default=unset, metavar="N", help="children trained at once (processes)")
    p.add_argument("--executor", choices=EXECUTORS, default=unset,
                   help="local (this machine's processes) or ray (a Ray cluster; pip install ray)")
    p.add_argument("--out", default=None, metavar="DIR", help="search folder (default: runs/nas-METHOD-DATA)")
    p.add_argument("--resume", default=None, metavar="DIR",
                   help="continue the search in DIR exactly (a larger --budget extends it)")
    p.add_argument("--seed", type=int, default=unset)
    space = p.add_argument_group("search space")
    space.add_argument("--input-size", type=_input_size, default=unset, metavar="CxHxW",
                       help="the children's input, e.g. 1x16x16 (default)")
    space.add_argument("--val-split", type=float, default=unset, metavar="F", help="held out for the reward")
    space.add_argument("--filter-sizes", type=_int_list, nargs="+", default=unset, metavar="N",
                       help="filter heights and widths (default 1 3 5 7)")
    space.add_argument("--num-filters", type=_int_list, nargs="+", default=unset, metavar="N",
                       help="numbers of filters (default 24 36 48 64)")
    space.add_argument("--strides", type=_int_list, nargs="+", default=unset, metavar="N",
                       help="strides (default 1; 1 2 3 searches them)")
    space.add_argument("--start-layers", type=int, default=unset, metavar="N", help="s0 (paper: 6)")
    space.add_argument("--add-layers", type=int, default=unset, metavar="N", help="depth step (paper: 2)")
    space.add_argument("--add-layers-every", type=int, default=unset, metavar="N",
                       help="samples between depth steps (paper: 1600)")
    ctl = p.add_argument_group("controller (REINFORCE)")
    ctl.add_argument("-m", "--children-per-update", type=int, default=unset, metavar="M", help="paper: 8")
    ctl.add_argument("--controller-lr", type=float, default=unset, help="Adam (paper: 6e-4)")
    ctl.add_argument("--controller-hidden-size", type=int, default=unset, metavar="N", help="paper: 35")
    ctl.add_argument("--controller-lstm-layers", type=int, default=unset, metavar="N", help="paper: 2")
    ctl.add_argument("--controller-init-range", type=float, default=unset, help="paper: 0.08")
    ctl.add_argument("--baseline-decay", type=float, default=unset, help="of the EMA baseline (default 0.95)")
    ctl.add_argument("--entropy-weight", type=float, default=unset, help="entropy bonus (default 0: none)")
    child = p.add_argument_group("child training")
    child.add_argument("--epochs", type=int, default=unset, metavar="N", help="per child (default 10; paper 50)")
    child.add_argument("--reward-epochs", type=int, default=unset, metavar="K",
                       help="reward: best validation accuracy of the last K epochs, cubed (paper: 5)")
    child.add_argument("-b", "--batch-size", type=int, default=unset, metavar="N")
    child.add_argument("--opt", choices=OPTIMIZERS, default=unset, help="default sgd_nesterov (paper)")
    child.add_argument("--lr", type=float, default=unset, help="default 0.1 (paper)")
    child.add_argument("--momentum", type=float, default=unset)
    child.add_argument("--wd", "--weight-decay", dest="weight_decay", type=float, default=unset)
    child.add_argument("--train-arg", dest="train_settings", type=_model_arg, action="append", default=unset,
                       metavar="KEY=VALUE", help="another `convzoo train` setting for every child, e.g. "
                                                 "random_crop_padding=1")
    p.add_argument("--enas-arg", dest="enas", type=_model_arg, action="append", default=unset, metavar="KEY=VALUE",
                   help="an ENAS setting (see docs/nas.md), e.g. controller_steps=20")
    p.set_defaults(run=_cmd_nas_search)

    p = sub.add_parser("show", help="leaderboards of search folders, side by side; --out draws their rewards")
    p.add_argument("folders", nargs="+", metavar="DIR", help="search folders (e.g. a reinforce and a random search)")
    p.add_argument("--top", type=int, default=10, metavar="N", help="rows of each leaderboard (default 10)")
    p.add_argument("--out", default=None, metavar="rewards.png", help="one chart, one curve per folder")
    p.set_defaults(run=_cmd_nas_show)


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
    p.add_argument("name", nargs="?", metavar="NAME_OR_CKPT",
                   help="a model name, a weights file that names its network (save_weights, `convzoo train`) or a "
                        "run folder")
    p.add_argument("--model-arg", dest="model_args", type=_model_arg, action="append", default=None,
                   metavar="KEY=VALUE", help="keyword argument of the network, e.g. num_classes=10")
    p.add_argument("--spec", default=None, metavar="FILE_OR_DIR", help="nas: the architecture spec to summarise")
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
    p.add_argument("names", nargs="+", metavar="NAME_OR_RUN",
                   help="model names, shell-style wildcards (e.g. 'resnet*') or `convzoo train` run folders")
    p.add_argument("--out", default=None, metavar="chart.png", help="also draw the complexity chart to this file")
    p.set_defaults(run=_cmd_compare)

    p = commands.add_parser("export", help="write a network or checkpoint as ONNX, TorchScript or an ExportedProgram")
    p.add_argument("source", metavar="CKPT_OR_NAME", help="checkpoint (.safetensors or run folder) or registered name")
    p.add_argument("--format", choices=("onnx", "torchscript", "exported-program"), default="onnx")
    p.add_argument("--out", required=True, metavar="FILE", help="the file to write (FILE.json describes it)")
    p.add_argument("--input", type=_input_size, default=None, metavar="CxHxW",
                   help="input size without the batch axis (default: the checkpoint's or the card's); "
                        "the batch axis stays dynamic")
    p.add_argument("--check", action=argparse.BooleanOptionalAction, default=True,
                   help="run the written file at batch 1 and 3 and compare with PyTorch (ONNX: needs onnxruntime)")
    p.set_defaults(run=_cmd_export)

    from .bench import add_bench_arguments

    p = commands.add_parser("bench", help="inference and training throughput against the machine's matmul peak")
    add_bench_arguments(p)
    p.set_defaults(run=_cmd_bench)

    _add_training_commands(commands)
    _add_nas_commands(commands)
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
