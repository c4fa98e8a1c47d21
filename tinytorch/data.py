"""Module 08 - Data loading: data sets, mini-batches, shuffling and augmentation.

Training never looks at the whole data set at once: it walks through it in shuffled mini-batches.

    train = TensorDataset(x_train, y_train, transform=Compose([ToFloat(), RandomHorizontalFlip()]))
    loader = DataLoader(train, batch_size=128, shuffle=True, seed=0)
    for images, labels in loader:      # Tensors: (128, 3, 32, 32) float32 and (128,) int64
        ...

Speed is the theme of this module. A Python loop that picks samples one by one and stacks them
costs microseconds per sample - a whole second per CIFAR-10 epoch before any learning happens. So
data sets over arrays offer `get_batch(indices)`: ONE fancy-indexing operation `x[indices]` per
batch, and transforms work on a whole batch at once (`transform.batch(x)`, with a leading batch
axis), drawing all their random numbers in one call. The one-sample interface (`ds[i]`,
`transform(sample)`) stays for data sets that cannot do better.

Arrays flow through the pipeline as NumPy arrays; the DataLoader wraps each batch in Tensors at
the very end. Images are channel-first: one sample (C, H, W) or (H, W), a batch (N, C, H, W).
Randomness (shuffling without a seed, crops, flips) comes from `tinytorch.get_rng()`, so
`tt.manual_seed(0)` makes a run reproducible.
"""
from __future__ import annotations

import math
from typing import Callable, Iterator, Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from tinytorch import datasets as _datasets
from tinytorch.tensor import Tensor, get_rng


def _array(x) -> np.ndarray:
    return x.data if isinstance(x, Tensor) else np.asarray(x)


# ---- data sets ----------------------------------------------------------------------------------------
class Dataset:
    """A map-style data set: `len(ds)` samples, `ds[i]` is sample i (usually a tuple (input, target)).

    Subclasses define `__len__` and `__getitem__`; they may also define `get_batch(indices)`,
    returning the samples `indices` already stacked, which the DataLoader then uses instead of
    calling `__getitem__` once per sample.
    """

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must define __len__ (the number of samples)")

    def __getitem__(self, index: int):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__(index) (one sample)")


def apply_batch(transform, batch: np.ndarray) -> np.ndarray:
    """Apply `transform` to a batch: its vectorized `.batch` when it has one, else sample by sample."""
    if hasattr(transform, "batch"):
        return transform.batch(batch)
    return np.stack([_array(transform(sample)) for sample in batch])


class TensorDataset(Dataset):
    """Samples are rows of arrays of equal length: `ds[i] == (a[i], b[i], ...)`.

    `transform` (optional) is applied to the FIRST array (the inputs), per sample in `ds[i]` and
    per batch in `get_batch`. Tensors are accepted and used through their arrays.
    """

    def __init__(self, *arrays, transform=None):
        if not arrays:
            raise ValueError("TensorDataset: give at least one array, e.g. TensorDataset(images, labels)")
        self.arrays = tuple(_array(a) for a in arrays)
        lengths = [len(a) if a.ndim else None for a in self.arrays]
        if None in lengths or len(set(lengths)) != 1:
            shapes = [a.shape for a in self.arrays]
            raise ValueError(f"TensorDataset: every array needs the same first dimension (one row per sample), "
                             f"got shapes {shapes}")
        self.transform = transform

    def __len__(self) -> int:
        return len(self.arrays[0])

    def __getitem__(self, index: int) -> tuple:
        """Sample `index`: one row of every array, the transform applied to the first.

        A slice (`ds[:64]`, as PyTorch allows) gives those samples stacked, as `get_batch` does.
        """
        if isinstance(index, slice):
            return self.get_batch(np.arange(len(self))[index])
        if not -len(self) <= int(index) < len(self):
            raise IndexError(f"TensorDataset: index {index} is out of range for {len(self)} samples")
        # BEGIN SOLUTION
        sample = tuple(a[index] for a in self.arrays)
        if self.transform is not None:
            sample = (_array(self.transform(sample[0])),) + sample[1:]
        return sample
        # END SOLUTION

    def get_batch(self, indices: np.ndarray) -> tuple:
        """The samples `indices` (int array, shape (B,)) stacked: one array of shape (B, ...) per array.

        One fancy-indexing operation per array - no Python loop over samples - then the transform
        on the whole batch (use `apply_batch`).
        """
        # BEGIN SOLUTION
        batch = tuple(a[indices] for a in self.arrays)
        if self.transform is not None:
            batch = (apply_batch(self.transform, batch[0]),) + batch[1:]
        return batch
        # END SOLUTION


class Subset(Dataset):
    """The samples `indices` of `dataset`, in that order (keeps the fast batch path)."""

    def __init__(self, dataset: Dataset, indices):
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int):
        return self.dataset[int(self.indices[index])]

    def get_batch(self, indices: np.ndarray):
        chosen = self.indices[np.asarray(indices)]
        if hasattr(self.dataset, "get_batch"):
            return self.dataset.get_batch(chosen)
        return default_collate([self.dataset[int(i)] for i in chosen])


def random_split(dataset: Dataset, lengths: Sequence[int], seed: int | None = None) -> list[Subset]:
    """Split into non-overlapping random subsets of the given lengths (they must add up to len(dataset))."""
    if sum(lengths) != len(dataset):
        raise ValueError(f"random_split: lengths {list(lengths)} add up to {sum(lengths)}, but the data set has "
                         f"{len(dataset)} samples")
    rng = np.random.default_rng(seed) if seed is not None else get_rng()
    order = rng.permutation(len(dataset))
    bounds = np.cumsum([0, *lengths])
    return [Subset(dataset, order[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]


def default_collate(samples: list):
    """Stack a list of samples into a batch: tuples become tuples of stacked arrays."""
    # BEGIN SOLUTION
    first = samples[0]
    if isinstance(first, (tuple, list)):
        return tuple(np.stack([_array(s[k]) for s in samples]) for k in range(len(first)))
    return np.stack([_array(s) for s in samples])
    # END SOLUTION


# ---- the loader ---------------------------------------------------------------------------------------
class DataLoader:
    """Iterate over a data set in mini-batches of Tensors.

    batch_size  samples per batch; the last batch is smaller unless `drop_last`
    shuffle     a new random order every epoch (every `iter(loader)`)
    seed        with shuffle: the order of epoch e is `np.random.default_rng((seed, e))`'s
                permutation, so it depends only on (seed, epoch) - reproducible, and a training run
                resumed at epoch e (`set_epoch(e)`) sees the same batches. Without a seed the
                order comes from tinytorch's generator (`tt.manual_seed`).
    collate_fn  how to stack samples when the data set has no `get_batch` (default_collate)
    num_workers, pin_memory  PyTorch's, accepted and ignored (batches are made in this process)

    Each batch is a tuple of Tensors (or one Tensor if samples are not tuples): float arrays
    become float32 Tensors, integer arrays (labels, token ids) keep their dtype.
    """

    def __init__(self, dataset: Dataset, batch_size: int = 1, shuffle: bool = False, drop_last: bool = False,
                 seed: int | None = None, collate_fn: Callable | None = None, num_workers: int = 0,
                 pin_memory: bool = False):
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive integer, got {batch_size!r}")
        if not isinstance(num_workers, (int, np.integer)) or num_workers < 0:
            raise ValueError(f"DataLoader: num_workers must be an integer >= 0, got {num_workers!r}")
        # PyTorch's num_workers / pin_memory are accepted and change nothing: batches are made in this
        # process, one vectorized get_batch per batch, and there is no GPU memory to pin for.
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.seed = seed
        self.collate_fn = collate_fn or default_collate
        self.epoch = 0  # how many times iteration has started; picks the order of a seeded shuffle

    def set_epoch(self, epoch: int) -> None:
        """Make the next `iter(loader)` produce the order of epoch `epoch` (used to resume training)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        """Number of batches per epoch."""
        # BEGIN SOLUTION
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)
        # END SOLUTION

    def order(self, epoch: int) -> np.ndarray:
        """The sample indices of epoch `epoch` in visiting order: a permutation when shuffling."""
        # BEGIN SOLUTION
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n)
        rng = np.random.default_rng((self.seed, epoch)) if self.seed is not None else get_rng()
        return rng.permutation(n)
        # END SOLUTION

    def __iter__(self) -> Iterator:
        indices = self.order(self.epoch)  # computed now, so `iter(loader)` starts the epoch
        self.epoch += 1
        return self._batches(indices)

    def _batches(self, indices: np.ndarray) -> Iterator:
        """Yield the batches of one epoch, in the order of `indices`."""
        # BEGIN SOLUTION
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            batch_indices = indices[start:start + self.batch_size]
            if hasattr(self.dataset, "get_batch"):
                batch = self.dataset.get_batch(batch_indices)
            else:
                batch = self.collate_fn([self.dataset[int(i)] for i in batch_indices])
            if isinstance(batch, (tuple, list)):
                yield tuple(Tensor(a) for a in batch)
            else:
                yield Tensor(batch)
        # END SOLUTION


# ---- transforms ---------------------------------------------------------------------------------------
class Transform:
    """Base class: `batch(x)` transforms a batch (leading batch axis); `t(sample)` one sample.

    Subclasses implement `batch`; calling on one sample adds a batch axis of 1 and removes it,
    so both paths give identical results.
    """

    def batch(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} must define batch(x)")

    def __call__(self, sample):
        return self.batch(_array(sample)[None])[0]

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


class Compose(Transform):
    """Apply transforms in order: `Compose([ToFloat(), Normalize(m, s)])`."""

    def __init__(self, transforms: Sequence):
        self.transforms = list(transforms)

    def __call__(self, sample):
        for t in self.transforms:  # plain functions are allowed here
            sample = t(sample)
        return sample

    def batch(self, x: np.ndarray) -> np.ndarray:
        # BEGIN SOLUTION
        for t in self.transforms:
            x = apply_batch(t, x)
        return x
        # END SOLUTION


class ToFloat(Transform):
    """uint8 pixels 0..255 -> float32 in [0, 1] (divide by 255); other numbers -> float32 unchanged.

    PyTorch: `transforms.ToTensor()` does this scaling (and also moves channels first, which our
    arrays already are).
    """

    def batch(self, x: np.ndarray) -> np.ndarray:
        # BEGIN SOLUTION
        out = x.astype(np.float32)  # a copy, never the caller's array
        if x.dtype == np.uint8:
            out /= np.float32(255.0)
        return out
        # END SOLUTION


class Normalize(Transform):
    """(x - mean) / std per channel: `mean`, `std` are numbers or sequences of length C.

    Channels are the first axis of a sample (C, H, W), i.e. axis 1 of a batch (N, C, H, W).
    Works on floats: put `ToFloat()` first.
    """

    def __init__(self, mean, std):
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)
        if self.mean.ndim > 1 or self.mean.shape != self.std.shape:
            raise ValueError(f"Normalize: mean and std must be numbers or equal-length sequences, got shapes "
                             f"{self.mean.shape} and {self.std.shape}")
        if np.any(self.std <= 0):
            raise ValueError(f"Normalize: std must be positive, got {self.std.tolist()}")

    def batch(self, x: np.ndarray) -> np.ndarray:
        if x.dtype.kind != "f":
            raise ValueError(f"Normalize: expected floating-point images, got dtype {x.dtype}; put ToFloat() "
                             "before Normalize so that pixels are in [0, 1] like the mean and std")
        if self.mean.ndim == 1 and (x.ndim < 2 or x.shape[1] != self.mean.size) and self.mean.size != 1:
            raise ValueError(f"Normalize: {self.mean.size} channel means for a batch of shape {x.shape}; the "
                             f"channel axis (axis 1 of a batch) has size {x.shape[1] if x.ndim > 1 else None}")
        # BEGIN SOLUTION
        shape = (1, -1) + (1,) * (x.ndim - 2) if self.mean.ndim == 1 else ()
        return ((x - self.mean.reshape(shape)) / self.std.reshape(shape)).astype(np.float32, copy=False)
        # END SOLUTION


def _pair(size) -> tuple[int, int]:
    return (int(size), int(size)) if np.isscalar(size) else tuple(int(s) for s in size)


class RandomCrop(Transform):
    """Pad the last two axes by `padding` (with `fill`), then cut a random `size` window from each image.

    The classic CIFAR-10 augmentation is `RandomCrop(32, padding=4)`: every image moves by up to
    4 pixels in each direction. Each image in a batch gets its own random offset.
    """

    def __init__(self, size, padding: int = 0, fill: float = 0):
        self.size = _pair(size)
        self.padding = int(padding)
        self.fill = fill
        if min(self.size) < 1 or self.padding < 0:
            raise ValueError(f"RandomCrop: size must be positive and padding >= 0, got size={size}, padding={padding}")

    def batch(self, x: np.ndarray) -> np.ndarray:
        h, w = self.size
        p = self.padding
        if x.ndim < 3 or x.shape[-2] + 2 * p < h or x.shape[-1] + 2 * p < w:
            raise ValueError(f"RandomCrop: cannot cut {h}x{w} windows from a batch of shape {x.shape} with "
                             f"padding {p} (expected (N, ..., H, W) with H + 2*padding >= {h})")
        # BEGIN SOLUTION
        if p:  # a filled canvas with the images in the middle (faster than np.pad)
            canvas = np.full(x.shape[:-2] + (x.shape[-2] + 2 * p, x.shape[-1] + 2 * p), self.fill, dtype=x.dtype)
            canvas[..., p:-p, p:-p] = x
            x = canvas
        n, height, width = len(x), x.shape[-2], x.shape[-1]
        rng = get_rng()
        top = rng.integers(0, height - h + 1, size=n)
        left = rng.integers(0, width - w + 1, size=n)
        # windows[i, ..., r, c] is the h x w window whose corner is (r, c): a view, nothing copied
        windows = sliding_window_view(x, (h, w), axis=(-2, -1))
        middle = (slice(None),) * (x.ndim - 3)
        return windows[(np.arange(n),) + middle + (top, left)]  # (N, ..., h, w): one gather, a copy
        # END SOLUTION


class RandomHorizontalFlip(Transform):
    """Mirror each image left-right (last axis) with probability `p`."""

    def __init__(self, p: float = 0.5):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomHorizontalFlip: p is a probability in [0, 1], got {p}")
        self.p = float(p)

    def batch(self, x: np.ndarray) -> np.ndarray:
        # BEGIN SOLUTION
        flip = get_rng().random(len(x)) < self.p
        out = x.copy()
        out[flip] = x[flip][..., ::-1]
        return out
        # END SOLUTION


# ---- the course's data sets ---------------------------------------------------------------------------
class MNIST(TensorDataset):
    """MNIST digits as (image (1, 28, 28), label int64) samples; 60000 train or 10000 test.

    The default transform gives float32 pixels in [0, 1]; `transform=None` keeps uint8. Other
    keyword arguments go to `tinytorch.datasets.load_mnist` (data_dir, cache_dir, download, ...).
    """

    classes = tuple(str(d) for d in range(10))

    def __init__(self, train: bool = True, transform=ToFloat(), **load_options):
        s = _datasets.load_mnist(**load_options)
        x, y = (s.x_train, s.y_train) if train else (s.x_test, s.y_test)
        super().__init__(x[:, None], y, transform=transform)


class CIFAR10(TensorDataset):
    """CIFAR-10 as (image (3, 32, 32), label int64) samples; 50000 train or 10000 test.

    The default transform gives float32 pixels in [0, 1]; pass e.g. `Compose([ToFloat(),
    RandomCrop(32, padding=4), RandomHorizontalFlip(), Normalize(mean, std)])` for training.
    """

    classes = _datasets.CIFAR10_CLASSES
    mean = (0.4914, 0.4822, 0.4465)  # per-channel statistics of the training images (SOURCES.md)
    std = (0.2470, 0.2435, 0.2616)

    def __init__(self, train: bool = True, transform=ToFloat(), **load_options):
        s = _datasets.load_cifar10(**load_options)
        x, y = (s.x_train, s.y_train) if train else (s.x_test, s.y_test)
        super().__init__(x, y, transform=transform)


class SequenceDataset(Dataset):
    """Next-token prediction over a sequence of token ids: sample i is (ids[i : i+T], ids[i+1 : i+T+1]).

    `ids` is a 1-D integer array (e.g. a text encoded by module 16's tokenizer); T = `block_size`.
    The target is the input shifted by one position. `get_batch` builds all windows of a batch
    with one (B, T) index array.
    """

    def __init__(self, ids, block_size: int):
        self.ids = np.asarray(_array(ids))
        if self.ids.ndim != 1 or self.ids.dtype.kind not in "iu":
            raise ValueError(f"SequenceDataset: ids must be a 1-D integer array, got shape {self.ids.shape} "
                             f"and dtype {self.ids.dtype}")
        if block_size < 1 or len(self.ids) <= block_size:
            raise ValueError(f"SequenceDataset: need more than block_size={block_size} tokens, got {len(self.ids)}")
        self.block_size = int(block_size)

    def __len__(self) -> int:
        return len(self.ids) - self.block_size

    def __getitem__(self, index: int) -> tuple:
        i = int(index)
        return self.ids[i:i + self.block_size], self.ids[i + 1:i + 1 + self.block_size]

    def get_batch(self, indices: np.ndarray) -> tuple:
        rows = np.asarray(indices)[:, None] + np.arange(self.block_size)  # (B, T) positions
        return self.ids[rows], self.ids[rows + 1]
