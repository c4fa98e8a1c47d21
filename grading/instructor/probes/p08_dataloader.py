"""Probes of module 08 (data loading): what each probe calls and why it cannot be passed without the work.

- TensorDataset rows and batches (with a transform) on random arrays; default_collate;
- DataLoader in order (batch contents, sizes, `len` with and without drop_last) over a TensorDataset (the
  `get_batch` path) and over a plain Dataset (the `__getitem__` + collate path);
- shuffled epochs: returned sorted by a sample id carried in the labels (any honest permutation gives the
  same), so the probe checks that every sample comes exactly once, rows stay paired with their labels and
  the batch sizes are right;
- ToFloat, Normalize and Compose on random batches;
- RandomCrop on images whose pixels are affine in (row, column): every window of such an image, wherever
  it is cut, minus its top-left pixel gives the same ramp, so the probe returns that (and a full-size crop,
  which is just the padded image); RandomHorizontalFlip as x + flip(x) and (x - flip(x))^2 per image, which
  do not depend on which images were flipped, and the flipped fraction rounded to 0.1;
- and that what should be random is: crops of many images are cut at more than one offset, two flips of the
  same batch flip different images, shuffled epochs differ from the data set's order and from each other,
  and a seeded loader replays an epoch after set_epoch.
"""
from __future__ import annotations

import numpy as np

MODULE = "08_dataloader"


def _floats(rng, shape, scale=1.0) -> np.ndarray:
    return rng.normal(0.0, scale, shape).astype(np.float32)


def _data(rng, n=None):
    n = int(rng.integers(5, 30)) if n is None else n
    x = _floats(rng, (n, int(rng.integers(1, 4)), int(rng.integers(1, 4))))
    y = rng.permutation(n).astype(np.int64)       # unique labels: sample ids
    return x, y


def probe_dataset_rows_and_collate(tt, rng) -> dict[str, np.ndarray]:
    x, y = _data(rng)
    data = tt.data
    shift = float(rng.uniform(-3, 3))
    ds = data.TensorDataset(x, y, transform=lambda a: np.asarray(a) * 2.0 + shift)
    i = int(rng.integers(-len(ds), len(ds)))
    idx = rng.integers(0, len(ds), size=int(rng.integers(1, 6)))
    row_x, row_y = ds[i]
    batch_x, batch_y = ds.get_batch(idx)
    samples = [(x[j], y[j]) for j in idx]
    collated_x, collated_y = data.default_collate(samples)
    plain = data.default_collate([x[j] for j in idx])
    return {"row_x": np.asarray(row_x), "row_y": np.asarray(row_y).reshape(1), "batch_x": np.asarray(batch_x),
            "batch_y": np.asarray(batch_y), "collated_x": collated_x, "collated_y": collated_y, "plain": plain}



def probe_loader_in_order(tt, rng) -> dict[str, np.ndarray]:
    x, y = _data(rng)
    data = tt.data
    batch_size = int(rng.integers(1, 8))

    class Rows(data.Dataset):
        def __len__(self):
            return len(x)

        def __getitem__(self, i):
            return x[i] * 3.0, y[i]

    out = {}
    for name, ds in (("fast", data.TensorDataset(x, y)), ("generic", Rows())):
        for drop_last in (False, True):
            loader = data.DataLoader(ds, batch_size=batch_size, drop_last=drop_last)
            batches = list(loader)
            key = f"{name}_{'drop' if drop_last else 'keep'}"
            out[key + "_x"] = np.concatenate([b[0].data for b in batches]) if batches else np.zeros(0, np.float32)
            out[key + "_y"] = np.concatenate([b[1].data for b in batches]) if batches else np.zeros(0, np.int64)
            out[key + "_sizes"] = np.array([len(b[0]) for b in batches] + [len(loader)], dtype=np.int64)
    return out


def probe_shuffled_epochs(tt, rng) -> dict[str, np.ndarray]:
    tt.manual_seed(int(rng.integers(0, 2**31)))
    x, y = _data(rng, int(rng.integers(20, 60)))
    batch_size = int(rng.integers(2, 9))
    out = {}
    seed = int(rng.integers(0, 1000))
    orders = {}
    for name, loader_seed in (("seeded", seed), ("global", None)):
        loader = tt.data.DataLoader(tt.data.TensorDataset(x, y), batch_size=batch_size, shuffle=True, seed=loader_seed)
        for epoch in range(2):
            batches = list(loader)
            bx = np.concatenate([b[0].data for b in batches])
            by = np.concatenate([b[1].data for b in batches])
            orders[name, epoch] = by
            order = np.argsort(by, kind="stable")
            out[f"{name}{epoch}_x_sorted"] = bx[order]
            out[f"{name}{epoch}_y_sorted"] = by[order]
            out[f"{name}{epoch}_sizes"] = np.array([len(b[1]) for b in batches])
    replay = tt.data.DataLoader(tt.data.TensorDataset(x, y), batch_size=batch_size, shuffle=True, seed=seed)
    replay.set_epoch(1)
    replayed = np.concatenate([b[1].data for b in replay])
    out["shuffled"] = np.array([int(not np.array_equal(orders["seeded", 0], y)),     # not the data set's order
                                int(not np.array_equal(orders["seeded", 0], orders["seeded", 1])),   # new each epoch
                                int(not np.array_equal(orders["global", 0], orders["global", 1])),
                                int(np.array_equal(replayed, orders["seeded", 1]))])  # (seed, epoch) replays
    return out


def probe_transforms(tt, rng) -> dict[str, np.ndarray]:
    data = tt.data
    n, c, h, w = (int(v) for v in rng.integers(1, 5, 4))
    pixels = rng.integers(0, 256, size=(n, c, h, w)).astype(np.uint8)
    mean = rng.uniform(0.2, 0.8, c).astype(np.float32)
    std = rng.uniform(0.1, 0.5, c).astype(np.float32)
    floats = _floats(rng, (n, c, h, w))
    pipeline = data.Compose([data.ToFloat(), data.Normalize(mean.tolist(), std.tolist())])
    return {"to_float": data.ToFloat().batch(pixels), "to_float_floats": data.ToFloat().batch(floats),
            "normalize": data.Normalize(mean.tolist(), std.tolist()).batch(floats),
            "normalize_scalar": data.Normalize(float(mean[0]), float(std[0])).batch(floats),
            "compose": pipeline.batch(pixels), "compose_one_sample": np.asarray(pipeline(pixels[0]))}


def probe_random_crop_and_flip(tt, rng) -> dict[str, np.ndarray]:
    tt.manual_seed(int(rng.integers(0, 2**31)))
    data = tt.data
    n, c = int(rng.integers(40, 64)), int(rng.integers(1, 3))
    h, w = int(rng.integers(6, 12)), int(rng.integers(6, 12))
    slopes_r = rng.uniform(1.0, 2.0, (n, c, 1, 1)).astype(np.float32)
    slopes_c = rng.uniform(0.1, 0.9, (n, c, 1, 1)).astype(np.float32)
    ramp = (np.arange(h, dtype=np.float32)[:, None] * slopes_r
            + np.arange(w, dtype=np.float32)[None, :] * slopes_c + _floats(rng, (n, c, 1, 1), 5.0))
    ch, cw = int(rng.integers(1, h - 1)), int(rng.integers(1, w - 1))
    crops = data.RandomCrop((ch, cw)).batch(ramp)
    corner = crops[:, 0, 0, 0] - ramp[:, 0, 0, 0]               # = top * slope_r + left * slope_c
    offsets = len(np.unique(np.round(corner, 3)))
    pad = int(rng.integers(1, 4))
    fill = float(rng.uniform(-9, -5))
    full = data.RandomCrop((h + 2 * pad, w + 2 * pad), padding=pad, fill=fill).batch(ramp)

    p = float(rng.choice([0.2, 0.5, 0.8]))
    images = _floats(rng, (3000, 1, 1, 4))
    flipper = data.RandomHorizontalFlip(p)
    flipped = flipper.batch(images)
    mirror = flipped[..., ::-1]
    changed = np.any(flipped != images, axis=(1, 2, 3))
    changed_again = np.any(flipper.batch(images) != images, axis=(1, 2, 3))
    return {"crop_ramp": crops - crops[..., :1, :1], "crop_shape": np.array(crops.shape),
            "full_crop": full, "flip_sum": flipped + mirror, "flip_square": (flipped - mirror) ** 2,
            "flip_fraction": np.round(np.array([changed.mean()]), 1),
            "random": np.array([int(offsets > 1), int(not np.array_equal(changed, changed_again))])}


PROBES = [probe_dataset_rows_and_collate, probe_loader_in_order, probe_shuffled_epochs, probe_transforms,
          probe_random_crop_and_flip]
