"""Probes of module 06 (spatial): what each probe calls and why it cannot be passed without the work.

conv2d (random channels, kernel, stride, padding, with and without bias), max / avg pooling (random kernel,
stride, padding), batch_norm2d in training (outputs and the updated running statistics) and in evaluation,
Conv2d's initialisation (shapes, the +-1/sqrt(fan_in) scale as rounded ratios, new numbers per layer),
GlobalAvgPool2d and a small CNN of these layers with weights drawn by the probe. Forward only: gradients are
module 09's probes.
"""
from __future__ import annotations

import numpy as np

MODULE = "06_spatial"


def _floats(rng, shape, scale=1.0) -> np.ndarray:
    return rng.normal(0.0, scale, shape).astype(np.float32)


def _image(tt, rng, low=4, high=10):
    n, c = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    h, w = int(rng.integers(low, high)), int(rng.integers(low, high))
    return tt.Tensor(_floats(rng, (n, c, h, w)))


def probe_conv2d(tt, rng) -> dict[str, np.ndarray]:
    x = _image(tt, rng)
    c_out, kh, kw = int(rng.integers(1, 5)), int(rng.integers(1, 4)), int(rng.integers(1, 4))
    stride = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
    padding = (int(rng.integers(0, 2)), int(rng.integers(0, 2)))
    w = tt.Tensor(_floats(rng, (c_out, x.shape[1], kh, kw)))
    b = tt.Tensor(_floats(rng, (c_out,)))
    return {"conv": tt.nn.conv2d(x, w, b, stride=stride, padding=padding).data,
            "no_bias": tt.nn.conv2d(x, w).data, "one_by_one": tt.nn.conv2d(x, w[:, :, :1, :1]).data}


def probe_pooling(tt, rng) -> dict[str, np.ndarray]:
    x = _image(tt, rng)
    k = int(rng.integers(2, 4))
    stride = int(rng.integers(1, k + 1))
    padding = int(rng.integers(0, k // 2 + 1))
    ints = tt.Tensor(rng.integers(-3, 4, size=x.shape).astype(np.float32))   # ties inside windows
    return {"max": tt.nn.max_pool2d(x, k, stride, padding).data, "max_default": tt.nn.max_pool2d(x, 2).data,
            "max_ties": tt.nn.max_pool2d(ints, k, stride).data, "avg": tt.nn.avg_pool2d(x, k, stride, padding).data,
            "avg_default": tt.nn.AvgPool2d(2)(x).data}


def probe_batch_norm(tt, rng) -> dict[str, np.ndarray]:
    x = tt.Tensor(_floats(rng, (int(rng.integers(2, 5)), int(rng.integers(1, 5)), 3, 4), 2.0) + np.float32(3.0))
    c = x.shape[1]
    layer = tt.nn.BatchNorm2d(c, momentum=float(rng.uniform(0.05, 0.5)))
    layer.weight.data, layer.bias.data = _floats(rng, (c,)), _floats(rng, (c,))
    train_out = layer(x).data
    running = np.concatenate([layer.running_mean.data, layer.running_var.data])
    layer.eval()
    y = tt.Tensor(_floats(rng, x.shape))
    eval_out = layer(y).data
    plain = tt.nn.batch_norm2d(y, None, None, None, None, training=True)
    return {"train": train_out, "running": running, "eval": eval_out, "plain": plain.data,
            "running_after_eval": np.concatenate([layer.running_mean.data, layer.running_var.data])}


def probe_conv_layer_init_and_global_pool(tt, rng) -> dict[str, np.ndarray]:
    tt.manual_seed(int(rng.integers(0, 2**31)))
    c_in, c_out, k = int(rng.integers(8, 16)), int(rng.integers(300, 400)), int(rng.integers(2, 4))
    layer = tt.nn.Conv2d(c_in, c_out, k)
    root = np.sqrt(c_in * k * k)
    w, b = layer.weight.data, layer.bias.data
    stats = [np.abs(w).max() * root, w.std() * np.sqrt(3) * root, np.abs(b).max() * root]
    second = tt.nn.Conv2d(c_in, c_out, k).weight.data        # another draw: different numbers
    x = _image(tt, rng)
    return {"shapes": np.array(w.shape + b.shape), "scale": np.round(np.array(stats, dtype=np.float64), 1),
            "random": np.array([int(not np.array_equal(second, w))]), "global_pool": tt.nn.GlobalAvgPool2d()(x).data}


def probe_small_cnn(tt, rng) -> dict[str, np.ndarray]:
    c = int(rng.integers(2, 5))
    model = tt.nn.Sequential(tt.nn.Conv2d(1, c, 3, padding=1), tt.nn.BatchNorm2d(c), tt.nn.ReLU(),
                             tt.nn.MaxPool2d(2), tt.nn.Conv2d(c, c, 3), tt.nn.GlobalAvgPool2d(),
                             tt.nn.Linear(c, 3))
    for p in model.parameters():
        p.data = _floats(rng, p.shape, 0.5)
    x = tt.Tensor(_floats(rng, (int(rng.integers(2, 5)), 1, 8, 8)))
    train_out = model(x).data
    model.eval()
    return {"train": train_out, "eval": model(x).data}


PROBES = [probe_conv2d, probe_pooling, probe_batch_norm, probe_conv_layer_init_and_global_pool, probe_small_cnn]
