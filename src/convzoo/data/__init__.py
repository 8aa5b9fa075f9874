"""Data: from files (or the embedded digits) to tensors a network of a given input size can take.

    from convzoo.data import load_data, Augment
    bundle = load_data("digits", input_size=(1, 32, 32), augment=Augment(random_crop_padding=2))
    image, label = bundle.train[0]        # float32 1 x 32 x 32, normalised; int
    bundle.classes, bundle.mean, bundle.std, bundle.describe()
    ten = bundle.multi_crop("test", crops=10)   # items: 10 x C x H x W, for the papers' 10-crop testing
    load_image("cat.jpg", (3, 224, 224), mean, std)   # one file as the network sees it (predict)

Images are resized to the network's input and grey images widened to its channels (colour turned grey for a
network that does not take 3 channels); normalisation uses the training split's per-channel statistics,
measured on an evenly spread sample. Image folders are ready once listed and their headers read; pixels are
decoded only for a batch, and only the region the transform takes (see transforms.py).

Modules: load.py (load_data picks the task), common.py (what both tasks share: DataBundle, checks, split,
statistics, worker count), bundle.py (classification), segmentation.py, sources.py (classification readers),
datasets.py (sources of pixels and the split Dataset), transforms.py.
"""
from .bundle import load_classification_data, load_image
from .common import DataBundle, default_workers, stratified_split
from .datasets import ImageDataset, SplitDataset, decode_image
from .load import load_data
from .segmentation import IGNORE_INDEX, SegmentationDataset, SegmentationTransform, load_mask, voc_palette
from .transforms import Augment, EvalTransform, TrainTransform, eval_transform, ten_crop

__all__ = [
    "Augment", "DataBundle", "EvalTransform", "ImageDataset", "SplitDataset", "TrainTransform", "decode_image",
    "default_workers", "eval_transform", "load_classification_data", "load_data", "load_image", "stratified_split",
    "ten_crop",
    "IGNORE_INDEX", "SegmentationDataset", "SegmentationTransform", "load_mask", "voc_palette",
]
