"""Data: from files (or the embedded digits) to tensors a network of a given input size can take.

    from convzoo.data import load_data, Augment
    bundle = load_data("digits", input_size=(1, 32, 32), augment=Augment(random_crop_padding=2))
    image, label = bundle.train[0]        # float32 1 x 32 x 32, normalised; int
    bundle.classes, bundle.mean, bundle.std, bundle.describe()
    ten = bundle.multi_crop("test", crops=10)   # items: 10 x C x H x W, for the papers' 10-crop testing
    load_image("cat.jpg", (3, 224, 224), mean, std)   # one file as the network sees it (predict)

Images are resized to the network's input and grey images widened to its channels (colour turned grey for a
network that does not take 3 channels); normalisation uses the training split's per-channel statistics.
"""
from .bundle import DataBundle, load_data, load_image, stratified_split
from .datasets import ImageDataset, decode_image
from .segmentation import IGNORE_INDEX, SegmentationDataset, SegmentationTransform, load_mask, voc_palette
from .transforms import Augment, EvalTransform, TrainTransform, eval_transform, ten_crop

__all__ = [
    "Augment", "DataBundle", "EvalTransform", "ImageDataset", "TrainTransform", "decode_image", "eval_transform",
    "load_data", "load_image", "stratified_split", "ten_crop",
    "IGNORE_INDEX", "SegmentationDataset", "SegmentationTransform", "load_mask", "voc_palette",
]
