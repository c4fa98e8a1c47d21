"""Probes of module 03 (activations): what each probe calls and why it cannot be passed without the work.

Each activation is applied to random values of a random shape, including a few very large ones (+-1e4, where
a naive softmax or sigmoid overflows float32), along a random axis for softmax / log_softmax. The outputs are
the activation values themselves, so they can only be matched by computing the formula.
"""
from __future__ import annotations

import numpy as np

MODULE = "03_activations"


def _input(tt, rng, huge: bool = False):
    shape = tuple(int(s) for s in rng.integers(1, 6, size=int(rng.integers(1, 4))))
    x = rng.normal(0.0, 3.0, shape).astype(np.float32)
    if huge:
        x.flat[rng.integers(0, x.size, size=max(1, x.size // 4))] *= np.float32(3000.0)
    return tt.Tensor(x)


def probe_relu_and_leaky_relu(tt, rng) -> dict[str, np.ndarray]:
    x = _input(tt, rng)
    wide = tt.Tensor(rng.uniform(-20.0, 20.0, 32).astype(np.float32))   # large values: a clipped relu shows
    slope = float(rng.uniform(0.01, 0.5))
    return {"relu": tt.relu(x).data, "leaky": tt.leaky_relu(x, slope).data, "method": x.relu().data,
            "relu_wide": tt.relu(wide).data, "leaky_wide": tt.leaky_relu(wide, slope).data}


def probe_sigmoid_tanh_gelu(tt, rng) -> dict[str, np.ndarray]:
    x = _input(tt, rng, huge=bool(rng.random() < 0.5))
    y = _input(tt, rng)
    return {"sigmoid": tt.sigmoid(x).data, "tanh": tt.tanh(x).data, "gelu": tt.gelu(y).data}


def probe_softmax_and_log_softmax(tt, rng) -> dict[str, np.ndarray]:
    """Along a random axis, on values with some +-1e4 entries (stability) and on moderate ones."""
    x = _input(tt, rng, huge=True)
    y = _input(tt, rng)
    axis = int(rng.integers(-x.ndim, x.ndim))
    return {"softmax": tt.softmax(x, axis).data, "log_softmax": tt.log_softmax(y, -1).data,
            "log_softmax_huge": tt.log_softmax(x, axis).data, "softmax_last": tt.softmax(y).data}


PROBES = [probe_relu_and_leaky_relu, probe_sigmoid_tanh_gelu, probe_softmax_and_log_softmax]
