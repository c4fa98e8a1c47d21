"""`tinytorch.vision.datasets`: torchvision's MNIST and CIFAR10 signatures over tinytorch.datasets.

`ds[i]` is `(image Tensor, int label)` after `transform` / `target_transform`, as torchvision's;
without a transform the image is the uint8 array's Tensor (torchvision gives a PIL image).
`get_batch` keeps module 08's fast path for the DataLoader: one indexing operation and one
batched transform per batch (a `target_transform` is applied label by label).
"""
from __future__ import annotations

import numpy as np

from tinytorch import datasets as _datasets
from tinytorch.data import Dataset, apply_batch
from tinytorch.tensor import Tensor


def _array(value) -> np.ndarray:
    return value.data if isinstance(value, Tensor) else np.asarray(value)


class _ImageDataset(Dataset):
    classes: tuple = ()

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform, target_transform):
        self.data, self.targets = images, labels  # torchvision's attribute names
        self.transform, self.target_transform = transform, target_transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index):
        image, label = self.data[index], int(self.targets[index])
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            label = self.target_transform(label)
        return (image if isinstance(image, Tensor) else Tensor(image)), label

    def get_batch(self, indices: np.ndarray) -> tuple:
        images, labels = self.data[indices], self.targets[indices]
        if self.transform is not None:
            images = apply_batch(self.transform, images)
        if self.target_transform is not None:
            labels = np.stack([_array(self.target_transform(int(y))) for y in labels])
        return images, labels


def _load_options(root, download: bool) -> dict:
    """torchvision's `root` is where the files are kept: TinyTorch's cache folder ($TINYTORCH_DATA,
    when set, is still read first)."""
    return {"cache_dir": root, "download": download}


class MNIST(_ImageDataset):
    """MNIST digits: (1, 28, 28) images, labels 0..9; 60000 train, 10000 test."""

    classes = tuple(f"{d} - {name}" for d, name in enumerate(
        "zero one two three four five six seven eight nine".split()))

    def __init__(self, root=None, train: bool = True, transform=None, target_transform=None, download: bool = True):
        s = _datasets.load_mnist(**_load_options(root, download))
        x, y = (s.x_train, s.y_train) if train else (s.x_test, s.y_test)
        super().__init__(x[:, None], y, transform, target_transform)


class CIFAR10(_ImageDataset):
    """CIFAR-10: (3, 32, 32) images, 10 classes; 50000 train, 10000 test."""

    classes = _datasets.CIFAR10_CLASSES

    def __init__(self, root=None, train: bool = True, transform=None, target_transform=None, download: bool = True):
        s = _datasets.load_cifar10(**_load_options(root, download))
        x, y = (s.x_train, s.y_train) if train else (s.x_test, s.y_test)
        super().__init__(x, y, transform, target_transform)
