"""Training, evaluating and using the networks: one engine for every task.

    from convzoo.training import make_config, train
    result = train(make_config("lenet5", data="digits", out="runs/lenet5-digits"))
    result.test["top1_accuracy"]     # a segmentation network's: result.test["miou"], ["pixel_accuracy"]

    from convzoo.training import evaluate_checkpoints, load_checkpoint, predict_images
    find_lr(make_config("resnet20", data="digits"), out="runs/lr")   # the learning-rate range test
"""
from .checkpoint import Checkpoint, RunFolder, load_checkpoint, read_checkpoint_description
from .engine import TrainConfig, TrainResult, check_resume_settings, evaluate, find_lr, resumed_config, train
from .inference import EvalResult, evaluate_checkpoints, evaluate_segmentation, predict_images, predict_masks
from .recipes import RECIPES, Recipe, get_recipe, make_config
from .tasks import Classification, Segmentation, Task, build_task

__all__ = [
    "Checkpoint", "Classification", "EvalResult", "RECIPES", "Recipe", "RunFolder", "Segmentation", "Task",
    "TrainConfig", "TrainResult", "build_task", "check_resume_settings", "evaluate", "evaluate_checkpoints",
    "evaluate_segmentation", "find_lr", "get_recipe", "load_checkpoint", "make_config", "predict_images",
    "predict_masks", "read_checkpoint_description", "resumed_config", "train",
]
