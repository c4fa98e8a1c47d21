"""Module 08 - Data loading: TensorDataset, DataLoader, transforms, and the course's data sets.

No .backward() here (autograd is module 09). Expected values are computed with NumPy in each test.
"""
import os

import numpy as np
import pytest

import tinytorch as tt
from tinytorch import datasets
from tinytorch.data import (CIFAR10, MNIST, Compose, DataLoader, Dataset, Normalize, RandomCrop,
                            RandomHorizontalFlip, SequenceDataset, Subset, TensorDataset, ToFloat, default_collate, random_split)
from tinytorch.tensor import Tensor
from tinytorch.testing import assert_close


@pytest.fixture(autouse=True)
def _seed():
    tt.manual_seed(0)


def images(n=8, c=3, h=6, w=5, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, c, h, w), dtype=np.uint8)


def epoch_indices(loader):
    """The sample ids a loader visits in one epoch, in order (dataset built over ids)."""
    return np.concatenate([batch[0].data for batch in loader])


class ListDataset(Dataset):
    """A data set without get_batch: the DataLoader must fall back to one sample at a time."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


class CountingDataset(TensorDataset):
    """Counts per-sample accesses, to prove that the fast path does not loop over samples."""

    calls = 0

    def __getitem__(self, index):
        CountingDataset.calls += 1
        return super().__getitem__(index)


# ---- TensorDataset -------------------------------------------------------------------------------------
def test_tensor_dataset_returns_rows_of_every_array():
    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    y = np.arange(6)
    ds = TensorDataset(x, Tensor(y))
    assert len(ds) == 6, f"len(ds) is the number of rows, expected 6, got {len(ds)}"
    xi, yi = ds[4]
    np.testing.assert_array_equal(xi, x[4])
    assert int(yi) == 4
    bx, by = ds.get_batch(np.array([5, 0, 2]))
    np.testing.assert_array_equal(bx, x[[5, 0, 2]], err_msg="get_batch must index every array with the index array")
    np.testing.assert_array_equal(by, y[[5, 0, 2]])


@pytest.mark.given   # passes with no work in this module: checks code the course gives
def test_tensor_dataset_rejects_arrays_of_different_lengths():
    with pytest.raises(ValueError, match=r"\(5, 2\).*\(4,\)"):
        TensorDataset(np.zeros((5, 2)), np.zeros(4))


@pytest.mark.given   # passes with no work in this module: checks code the course gives
def test_tensor_dataset_index_out_of_range_is_an_index_error():
    with pytest.raises(IndexError):
        TensorDataset(np.zeros((3, 2)))[3]


def test_transform_applies_to_inputs_per_sample_and_per_batch_identically():
    x = images()
    ds = TensorDataset(x, np.arange(8), transform=Compose([ToFloat(), Normalize(0.5, 0.25)]))
    expected = (x.astype(np.float32) / 255 - 0.5) / 0.25
    bx, by = ds.get_batch(np.array([3, 1]))
    assert_close(bx, expected[[3, 1]], what="get_batch with a transform")
    assert_close(ds[3][0], expected[3], what="ds[i] with a transform")
    np.testing.assert_array_equal(by, [3, 1], err_msg="targets are not transformed")


def test_default_collate_stacks_tuples_field_by_field():
    samples = [(np.full(2, i, np.float32), i) for i in range(3)]
    xs, ys = default_collate(samples)
    assert xs.shape == (3, 2) and ys.tolist() == [0, 1, 2]


# ---- DataLoader ----------------------------------------------------------------------------------------
def test_batches_are_tensors_with_the_right_shapes_and_dtypes():
    x = np.random.default_rng(0).standard_normal((10, 3)).astype(np.float64)
    y = np.arange(10)
    batches = list(DataLoader(TensorDataset(x, y), batch_size=4))
    assert [b[0].shape for b in batches] == [(4, 3), (4, 3), (2, 3)], "the last batch holds the remaining 2 samples"
    assert all(isinstance(t, Tensor) for b in batches for t in b), "a DataLoader yields Tensors"
    assert batches[0][0].dtype == np.float32, f"float inputs become float32, got {batches[0][0].dtype}"
    assert batches[0][1].dtype == np.int64, f"integer labels keep their dtype, got {batches[0][1].dtype}"
    np.testing.assert_array_equal(np.concatenate([b[1].data for b in batches]), y,
                                  err_msg="without shuffle the order is 0, 1, 2, ...")


@pytest.mark.parametrize("n,bs,drop_last,expected", [(10, 4, False, 3), (10, 4, True, 2), (8, 4, True, 2),
                                                     (8, 4, False, 2), (3, 5, False, 1), (3, 5, True, 0)])
def test_len_is_the_number_of_batches(n, bs, drop_last, expected):
    loader = DataLoader(TensorDataset(np.arange(n)), batch_size=bs, drop_last=drop_last)
    assert len(loader) == expected, f"{n} samples in batches of {bs}, drop_last={drop_last}: expected {expected}"
    assert len(list(loader)) == expected, "iteration must produce len(loader) batches"


def test_drop_last_drops_only_the_incomplete_batch():
    batches = list(DataLoader(TensorDataset(np.arange(10)), batch_size=4, drop_last=True))
    assert [len(b[0]) for b in batches] == [4, 4]


def test_shuffle_visits_every_sample_exactly_once_per_epoch():
    loader = DataLoader(TensorDataset(np.arange(50)), batch_size=7, shuffle=True, seed=3)
    first, second = epoch_indices(loader), epoch_indices(loader)
    assert sorted(first.tolist()) == list(range(50)), "an epoch is a permutation: every sample exactly once"
    assert sorted(second.tolist()) == list(range(50))
    assert first.tolist() != list(range(50)), "shuffle=True must change the order"
    assert first.tolist() != second.tolist(), "each epoch needs a new order"


def test_a_seed_makes_the_order_reproducible_and_set_epoch_replays_an_epoch():
    make = lambda: DataLoader(TensorDataset(np.arange(30)), batch_size=8, shuffle=True, seed=7)  # noqa: E731
    a, b = make(), make()
    runs_a = [epoch_indices(a).tolist() for _ in range(3)]
    runs_b = [epoch_indices(b).tolist() for _ in range(3)]
    assert runs_a == runs_b, "two loaders with the same seed must produce the same epochs"
    c = make()
    c.set_epoch(2)
    assert epoch_indices(c).tolist() == runs_a[2], "set_epoch(e) must reproduce the order of epoch e (for resuming)"
    other = DataLoader(TensorDataset(np.arange(30)), batch_size=8, shuffle=True, seed=8)
    assert epoch_indices(other).tolist() != runs_a[0], "a different seed gives a different order"


def test_without_a_seed_shuffling_follows_manual_seed():
    make = lambda: DataLoader(TensorDataset(np.arange(30)), batch_size=8, shuffle=True)  # noqa: E731
    tt.manual_seed(5)
    first = epoch_indices(make()).tolist()
    tt.manual_seed(5)
    assert epoch_indices(make()).tolist() == first, "tt.manual_seed must make unseeded shuffling reproducible"


def test_fast_path_uses_get_batch_not_one_sample_at_a_time():
    CountingDataset.calls = 0
    ds = CountingDataset(np.zeros((1000, 4), np.float32), np.arange(1000))
    batches = list(DataLoader(ds, batch_size=100, shuffle=True))
    assert len(batches) == 10
    assert CountingDataset.calls == 0, (
        f"the DataLoader called __getitem__ {CountingDataset.calls} times; for a data set with get_batch it must "
        "fetch each batch with ONE call (x[indices]), not a Python loop over samples")


def test_generic_dataset_without_get_batch_gives_the_same_batches():
    x = np.random.default_rng(1).standard_normal((11, 2)).astype(np.float32)
    y = np.arange(11)
    fast = list(DataLoader(TensorDataset(x, y), batch_size=4, shuffle=True, seed=1))
    slow = list(DataLoader(ListDataset(x, y), batch_size=4, shuffle=True, seed=1))
    assert len(fast) == len(slow) == 3
    for (fx, fy), (sx, sy) in zip(fast, slow):
        assert_close(sx, fx, what="batch from __getitem__ + collate vs get_batch")
        np.testing.assert_array_equal(sy.data, fy.data)


@pytest.mark.given   # passes with no work in this module: checks code the course gives
def test_batch_size_must_be_a_positive_integer():
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="batch_size"):
            DataLoader(TensorDataset(np.arange(4)), batch_size=bad)


def test_subset_and_random_split_partition_the_data():
    ds = TensorDataset(np.arange(20))
    a, b = random_split(ds, [15, 5], seed=0)
    ids = np.concatenate([epoch_indices(DataLoader(a, batch_size=4)), epoch_indices(DataLoader(b, batch_size=4))])
    assert sorted(ids.tolist()) == list(range(20)), "the two parts together hold every sample once"
    assert Subset(ds, [4, 2])[1][0] == 2
    with pytest.raises(ValueError, match="add up"):
        random_split(ds, [10, 5])


# ---- transforms ----------------------------------------------------------------------------------------
def test_to_float_scales_uint8_to_unit_interval():
    x = np.array([[0, 51, 255]], dtype=np.uint8)
    out = ToFloat().batch(x)
    assert out.dtype == np.float32, f"expected float32, got {out.dtype}"
    assert_close(out, np.array([[0.0, 0.2, 1.0]], np.float32), what="uint8 / 255")
    f = np.array([[0.5, 2.0]], np.float64)
    assert_close(ToFloat().batch(f), f.astype(np.float32), what="floats are only converted to float32")


def test_normalize_is_per_channel():
    x = np.random.default_rng(0).random((4, 3, 2, 2)).astype(np.float32)
    mean, std = (0.1, 0.2, 0.3), (0.5, 1.0, 2.0)
    expected = (x - np.array(mean, np.float32)[:, None, None]) / np.array(std, np.float32)[:, None, None]
    out = Normalize(mean, std).batch(x)
    assert out.dtype == np.float32
    assert_close(out, expected, what="Normalize over axis 1 of a batch (N, C, H, W)")
    assert_close(Normalize(mean, std)(x[2]), expected[2], what="Normalize of one sample (C, H, W)")


@pytest.mark.given   # passes with no work in this module: checks code the course gives
def test_normalize_errors_teach():
    with pytest.raises(ValueError, match="ToFloat"):
        Normalize(0.5, 0.5).batch(images())
    with pytest.raises(ValueError, match="channel"):
        Normalize((0.1, 0.2), (1.0, 1.0)).batch(np.zeros((2, 3, 4, 4), np.float32))
    with pytest.raises(ValueError, match="positive"):
        Normalize(0.0, 0.0)


def test_random_crop_with_padding_cuts_windows_of_the_padded_images():
    x = images(n=16, c=2, h=6, w=5)
    out = RandomCrop((6, 5), padding=2).batch(x)
    assert out.shape == x.shape and out.dtype == x.dtype, f"expected {x.shape} {x.dtype}, got {out.shape} {out.dtype}"
    padded = np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2)))
    offsets = set()
    for i in range(len(x)):
        matches = [(r, c) for r in range(5) for c in range(5)
                   if np.array_equal(padded[i, :, r:r + 6, c:c + 5], out[i])]
        assert matches, f"output image {i} is not a 6x5 window of its own padded image"
        offsets.add(matches[0])
    assert len(offsets) > 3, f"each image needs its own random offset; only saw {offsets}"


def test_random_crop_without_padding_and_full_size_is_the_identity_and_works_on_one_sample():
    x = images(n=3)
    np.testing.assert_array_equal(RandomCrop((6, 5)).batch(x), x)
    one = RandomCrop(4, padding=1)(x[0].astype(np.float32))
    assert one.shape == (3, 4, 4), f"one sample (C, H, W) -> (C, 4, 4), got {one.shape}"
    gray = RandomCrop(3)(x[0, 0])
    assert gray.shape == (3, 3), "a single-channel (H, W) image works too"


@pytest.mark.given   # passes with no work in this module: checks code the course gives
def test_random_crop_too_large_is_an_error():
    with pytest.raises(ValueError, match="RandomCrop"):
        RandomCrop(10, padding=1).batch(images())


def test_random_horizontal_flip_mirrors_a_random_subset():
    x = images(n=200, c=1, h=2, w=3)
    assert np.array_equal(RandomHorizontalFlip(p=1.0).batch(x), x[..., ::-1]), "p=1 flips every image"
    assert np.array_equal(RandomHorizontalFlip(p=0.0).batch(x), x), "p=0 flips none"
    out = RandomHorizontalFlip(p=0.5).batch(x)
    flipped = np.array([np.array_equal(o, xi[..., ::-1]) and not np.array_equal(o, xi) for o, xi in zip(out, x)])
    same = np.array([np.array_equal(o, xi) for o, xi in zip(out, x)])
    assert np.all(flipped | same), "every output is the image or its mirror image"
    assert 60 < flipped.sum() < 140, f"about half should be flipped with p=0.5, got {flipped.sum()} of 200"
    assert x.flags.writeable and np.array_equal(x, images(n=200, c=1, h=2, w=3)), "the input must not be changed"


def test_augmentation_is_reproducible_with_manual_seed():
    t = Compose([ToFloat(), RandomCrop(6, padding=2), RandomHorizontalFlip()])
    x = images(n=10, h=6, w=6)
    tt.manual_seed(1)
    a = t.batch(x)
    tt.manual_seed(1)
    np.testing.assert_array_equal(t.batch(x), a)


def test_transforms_are_fast_on_a_cifar_sized_batch():
    import time
    x = np.random.default_rng(0).integers(0, 256, (256, 3, 32, 32), dtype=np.uint8)
    t = Compose([ToFloat(), RandomCrop(32, padding=4), RandomHorizontalFlip(), Normalize((0.5,) * 3, (0.25,) * 3)])
    t.batch(x)
    start = time.perf_counter()
    for _ in range(5):
        t.batch(x)
    per_batch = (time.perf_counter() - start) / 5
    assert per_batch < 0.1, (f"augmenting 256 CIFAR images took {per_batch * 1000:.0f} ms; vectorize over the batch "
                             "(no Python loop over images or pixels)")


# ---- the course's data sets ----------------------------------------------------------------------------
def test_sequence_dataset_windows_are_shifted_by_one():
    ids = np.arange(100, 111)
    ds = SequenceDataset(ids, block_size=4)
    assert len(ds) == 11 - 4
    x, y = ds[1]
    assert x.tolist() == [101, 102, 103, 104] and y.tolist() == [102, 103, 104, 105], "y is x shifted by one"
    bx, by = ds.get_batch(np.array([0, 6]))
    assert bx.shape == (2, 4) and bx.dtype == ids.dtype
    assert bx[1].tolist() == [106, 107, 108, 109] and by[1].tolist() == [107, 108, 109, 110]
    batches = list(DataLoader(ds, batch_size=3))
    assert batches[0][0].shape == (3, 4) and batches[0][1].dtype == np.int64
    with pytest.raises(ValueError, match="integer"):
        SequenceDataset(np.zeros(10), 4)


def test_mnist_dataset_from_an_offline_folder(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    arrays = dict(x_train=rng.integers(0, 256, (5, 28, 28), dtype=np.uint8), y_train=np.arange(5, dtype=np.uint8),
                  x_test=rng.integers(0, 256, (3, 28, 28), dtype=np.uint8), y_test=np.arange(3, dtype=np.uint8))
    np.savez(tmp_path / "mnist.npz", **arrays)
    import hashlib
    from dataclasses import replace
    spec = replace(datasets.MNIST, offline_sha256=hashlib.sha256((tmp_path / "mnist.npz").read_bytes()).hexdigest())
    ds = MNIST(train=True, data_dir=tmp_path, spec=spec)
    x, y = next(iter(DataLoader(ds, batch_size=5)))
    assert x.shape == (5, 1, 28, 28) and x.dtype == np.float32, f"MNIST batches are (N, 1, 28, 28) float32, got {x.shape}"
    assert_close(x, arrays["x_train"][:, None] / np.float32(255), what="pixels scaled to [0, 1]")
    assert y.dtype == np.int64 and y.tolist() == [0, 1, 2, 3, 4]
    assert len(MNIST(train=False, data_dir=tmp_path, spec=spec)) == 3


@pytest.mark.skipif(not os.environ.get("TINYTORCH_DATA"), reason="TINYTORCH_DATA is not set (course data folder)")
def test_real_mnist_loader_epoch_is_fast():
    import time
    loader = DataLoader(MNIST(train=True), batch_size=128, shuffle=True, seed=0)
    start = time.perf_counter()
    n = sum(len(y) for _, y in loader)
    seconds = time.perf_counter() - start
    assert n == 60000
    assert seconds < 5, f"one MNIST epoch of data loading took {seconds:.1f} s; it should take well under a second"


def test_cifar10_dataset_from_an_offline_folder(tmp_path):
    rng = np.random.default_rng(0)
    arrays = dict(x_train=rng.integers(0, 256, (4, 3, 32, 32), dtype=np.uint8), y_train=np.arange(4, dtype=np.uint8),
                  x_test=rng.integers(0, 256, (2, 3, 32, 32), dtype=np.uint8), y_test=np.array([3, 8], np.uint8))
    np.savez(tmp_path / "cifar10.npz", **arrays)
    import hashlib
    from dataclasses import replace
    spec = replace(datasets.CIFAR10, offline_sha256=hashlib.sha256((tmp_path / "cifar10.npz").read_bytes()).hexdigest())
    ds = CIFAR10(train=False, data_dir=tmp_path, spec=spec)
    assert len(ds) == 2 and CIFAR10.classes[3] == "cat"
    x, y = ds[0]
    assert x.shape == (3, 32, 32) and x.dtype == np.float32 and 0.0 <= x.min() and x.max() <= 1.0
    assert int(y) == 3
    raw = CIFAR10(train=False, transform=None, data_dir=tmp_path, spec=spec)
    assert raw[1][0].dtype == np.uint8, "transform=None keeps the uint8 pixels"
