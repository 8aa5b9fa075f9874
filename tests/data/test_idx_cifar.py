import numpy as np
import pytest
import torch

from convzoo.data import load_data
from convzoo.errors import DataError, DataNotFoundError

IDENTITY = {"mean": [0.0], "std": [1.0]}


def _pixel_and_label(dataset, item):
    image, label = dataset[item]
    return round(float(image.mean()) * 255), label


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_idx_folder_raw_or_gzipped(mnist_folder, gz):
    bundle = load_data(str(mnist_folder(gz=gz)), (1, 28, 28), val_split=0.2, **IDENTITY)
    assert bundle.kind == "mnist" and bundle.classes == [str(d) for d in range(10)]
    # 100 training images: 20 held out for validation, 2 per class; the 20 t10k images are the test split.
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (80, 20, 20)
    assert np.bincount(bundle.val.labels).tolist() == [2] * 10
    # Each image is filled with 20 * its label: pixels and labels stayed together.
    for dataset in (bundle.train, bundle.val, bundle.test):
        for item in range(0, len(dataset), 7):
            pixel, label = _pixel_and_label(dataset, item)
            assert pixel == 20 * label


def test_mnist_in_a_raw_subfolder_resized_and_widened(mnist_folder):
    folder = mnist_folder(name="MNIST/raw")
    bundle = load_data(str(folder.parent), (3, 32, 32))
    image, _ = bundle.train[0]
    assert image.shape == (3, 32, 32) and torch.equal(image[0], image[2])


def test_fashion_mnist_is_recognised_by_its_folder_name(mnist_folder):
    bundle = load_data(str(mnist_folder(name="FashionMNIST")), (1, 28, 28))
    assert bundle.kind == "fashion-mnist"
    assert bundle.classes[0] == "T-shirt/top" and bundle.classes[9] == "Ankle boot"


def test_truncated_idx_file_is_named(mnist_folder):
    folder = mnist_folder()
    images = folder / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:-100])
    with pytest.raises(DataError, match="train-images-idx3-ubyte.*truncated"):
        load_data(str(folder), (1, 28, 28))


def test_corrupt_gzip_idx_file_is_named(mnist_folder):
    folder = mnist_folder(gz=True)
    labels = folder / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes(labels.read_bytes()[:20])
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz"):
        load_data(str(folder), (1, 28, 28))


def test_idx_file_with_wrong_magic_is_refused(mnist_folder):
    folder = mnist_folder()
    labels = folder / "train-labels-idx1-ubyte"
    data = bytearray(labels.read_bytes())
    data[2] = 0x0D  # float32 IDX: not the unsigned bytes MNIST uses
    labels.write_bytes(bytes(data))
    with pytest.raises(DataError, match="magic"):
        load_data(str(folder), (1, 28, 28))


def test_missing_idx_file_is_named(mnist_folder):
    folder = mnist_folder()
    (folder / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataNotFoundError, match="t10k-labels"):
        load_data(str(folder), (1, 28, 28))


def test_idx_images_and_labels_must_agree(mnist_folder, idx_writer):
    folder = mnist_folder()
    idx_writer(folder / "t10k-labels-idx1-ubyte", np.zeros(3, dtype=np.uint8))
    with pytest.raises(DataError, match="do not form"):
        load_data(str(folder), (1, 28, 28))


def test_cifar10_binary_records(cifar10_folder):
    bundle = load_data(str(cifar10_folder.parent), (3, 32, 32), val_split=0.2, mean=[0.0] * 3, std=[1.0] * 3)
    assert bundle.kind == "cifar10" and bundle.classes[0] == "airplane" and len(bundle.classes) == 10
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (40, 10, 2)
    image, label = bundle.test[1]
    assert label == 7
    # Planes in the order red, green, blue; the red plane carries 10 * label.
    assert [round(float(c.mean()) * 255) for c in image] == [70, 100, 200]


def test_cifar10_for_a_grey_network_uses_luma(cifar10_folder):
    image, label = load_data(str(cifar10_folder), (1, 32, 32), mean=[0.0], std=[1.0]).test[0]
    assert label == 3
    assert round(float(image.mean()) * 255) == round(0.299 * 30 + 0.587 * 100 + 0.114 * 200)


def test_cifar100_uses_fine_labels_and_their_names(cifar100_folder):
    bundle = load_data(str(cifar100_folder), (3, 32, 32), mean=[0.0] * 3, std=[1.0] * 3)
    assert bundle.kind == "cifar100" and len(bundle.classes) == 100 and bundle.classes[42] == "fine42"
    image, label = bundle.test[0]
    assert label == 42 and round(float(image[0].mean()) * 255) == 10 * 42 % 256


def test_truncated_cifar_file_is_named(cifar10_folder):
    batch = cifar10_folder / "data_batch_3.bin"
    batch.write_bytes(batch.read_bytes()[:-1])
    with pytest.raises(DataError, match="data_batch_3.bin.*truncated"):
        load_data(str(cifar10_folder), (3, 32, 32))


def test_incomplete_cifar10_folder_lists_what_is_missing(cifar10_folder):
    (cifar10_folder / "test_batch.bin").unlink()
    with pytest.raises(DataNotFoundError, match="test_batch.bin"):
        load_data(str(cifar10_folder), (3, 32, 32))
