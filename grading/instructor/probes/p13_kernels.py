"""Probes of module 13 (fast kernels): what each probe calls and why it cannot be passed without the work.

Each fast kernel runs on random inputs (random sizes, stride and padding where the kernel takes them) and
returns its outputs and the gradients `.backward()` of a random weighting of them gives (the kernels' own
backward rules): conv2d, the 2x2 max pool (also with ties), the fused conv + max-pool, the fused batch norm
+ relu in training (with the running statistics) and evaluation, the fused softmax cross-entropy (with label
smoothing), and the whitened conv kernel.
"""
from __future__ import annotations

import importlib

import numpy as np

MODULE = "13_kernels"


def _kernels(tt):
    return importlib.import_module(f"{tt.__name__}.kernels")


def _leaf(tt, rng, shape, scale=1.0):
    return tt.Tensor(rng.normal(0.0, scale, shape).astype(np.float32), requires_grad=True)


def _backward(rng, *outputs):
    total = None
    for out in outputs:
        term = (out * rng.normal(0.0, 1.0, out.shape).astype(np.float32)).sum()
        total = term if total is None else total + term
    total.backward()


def probe_fast_conv2d(tt, rng) -> dict[str, np.ndarray]:
    k = _kernels(tt)
    n, c, h, w = int(rng.integers(1, 3)), int(rng.integers(1, 4)), int(rng.integers(4, 9)), int(rng.integers(4, 9))
    x = _leaf(tt, rng, (n, c, h, w))
    weight = _leaf(tt, rng, (int(rng.integers(1, 5)), c, int(rng.integers(1, 4)), int(rng.integers(1, 4))))
    bias = _leaf(tt, rng, (weight.shape[0],))
    y = k.conv2d(x, weight, bias, padding=int(rng.integers(0, 2)))        # stride 1: the rotated-kernel gradient
    z = k.conv2d(x, weight, stride=2, padding=int(rng.integers(0, 2)))    # strided: the scattered gradient
    _backward(rng, y, z)
    return {"out": y.data, "out_strided": z.data, "grad_x": x.grad.data, "grad_weight": weight.grad.data,
            "grad_bias": bias.grad.data}


def probe_fast_max_pool(tt, rng) -> dict[str, np.ndarray]:
    k = _kernels(tt)
    shape = (int(rng.integers(1, 3)), int(rng.integers(1, 4)), 2 * int(rng.integers(1, 5)), 2 * int(rng.integers(1, 5)))
    x = _leaf(tt, rng, shape)
    ties = tt.Tensor(rng.integers(0, 3, size=shape).astype(np.float32), requires_grad=True)
    y, z = k.max_pool2d(x, 2), k.max_pool2d(ties, 2)
    _backward(rng, y, z)
    return {"out": y.data, "grad_x": x.grad.data, "ties_out": z.data, "grad_ties": ties.grad.data}


def probe_fused_conv_maxpool(tt, rng) -> dict[str, np.ndarray]:
    k = _kernels(tt)
    n, c = int(rng.integers(1, 3)), int(rng.integers(1, 4))
    size = 2 * int(rng.integers(2, 5))
    x = _leaf(tt, rng, (n, c, size, size))
    weight = _leaf(tt, rng, (int(rng.integers(1, 5)), c, 3, 3))
    bias = _leaf(tt, rng, (weight.shape[0],))
    y = k.conv2d_maxpool2d(x, weight, bias, padding=1)
    _backward(rng, y)
    return {"out": y.data, "grad_x": x.grad.data, "grad_weight": weight.grad.data, "grad_bias": bias.grad.data}


def probe_fused_batch_norm_relu(tt, rng) -> dict[str, np.ndarray]:
    k = _kernels(tt)
    c = int(rng.integers(1, 5))
    x = _leaf(tt, rng, (int(rng.integers(2, 4)), c, int(rng.integers(2, 5)), int(rng.integers(2, 5))), 2.0)
    weight, bias = _leaf(tt, rng, (c,)), _leaf(tt, rng, (c,))
    running_mean = tt.Tensor(rng.normal(0.0, 1.0, c).astype(np.float32))
    running_var = tt.Tensor(rng.uniform(0.5, 2.0, c).astype(np.float32))
    momentum = float(rng.uniform(0.05, 0.5))
    y = k.batch_norm_relu(x, weight, bias, running_mean, running_var, training=True, momentum=momentum)
    stats = np.concatenate([running_mean.data, running_var.data])
    z = k.batch_norm_relu(x, weight, bias, running_mean, running_var, training=False)
    _backward(rng, y, z)
    return {"train": y.data, "running": stats, "eval": z.data, "grad_x": x.grad.data,
            "grad_weight": weight.grad.data, "grad_bias": bias.grad.data}


def probe_fused_softmax_cross_entropy(tt, rng) -> dict[str, np.ndarray]:
    k = _kernels(tt)
    n, c = int(rng.integers(1, 8)), int(rng.integers(2, 8))
    logits = _leaf(tt, rng, (n, c), 3.0)
    targets = rng.integers(0, c, size=n)
    smoothing = float(rng.uniform(0.0, 0.4))
    loss = k.softmax_cross_entropy(logits, targets, label_smoothing=smoothing) * float(rng.uniform(0.5, 2.0))
    loss.backward()
    return {"loss": loss.data, "grad_logits": logits.grad.data}


def probe_whitened_conv_weight(tt, rng) -> dict[str, np.ndarray]:
    k = _kernels(tt)
    c_in, c_mid, size = int(rng.integers(1, 4)), int(rng.integers(2, 6)), int(rng.integers(1, 3))
    whitening = rng.normal(0.0, 1.0, (c_mid, c_in, size, size)).astype(np.float32)
    weight = _leaf(tt, rng, (int(rng.integers(1, 4)), c_mid, 3, 3))
    combined = k.whitened_conv_weight(weight, whitening)
    _backward(rng, combined)
    return {"combined": combined.data, "grad_weight": weight.grad.data}


PROBES = [probe_fast_conv2d, probe_fast_max_pool, probe_fused_conv_maxpool, probe_fused_batch_norm_relu,
          probe_fused_softmax_cross_entropy, probe_whitened_conv_weight]
