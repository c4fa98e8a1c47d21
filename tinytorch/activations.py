"""Module 03 - Activations: the non-linearities that let a stack of layers be more than one matrix.

Each function takes a `Tensor` and returns a new one of the same shape, recording its op name so
module 09 can differentiate it. Softmax and log-softmax must be numerically stable: for inputs
around +-1e4, `exp` overflows float32 (max ~3.4e38 = e^88.7), so subtract the maximum first - the
result is mathematically unchanged because softmax(x) == softmax(x - c) for any constant c.
"""
from __future__ import annotations

import numpy as np

from tinytorch.tensor import Tensor, TensorError


def _check(op: str, x) -> Tensor:
    if not isinstance(x, Tensor):
        raise TensorError(f"{op}: expected a Tensor, got {type(x).__name__}")
    if x.dtype.kind != "f":
        raise TensorError(f"{op}: expected a floating-point tensor, got dtype {x.dtype}")
    return x


def relu(x: Tensor) -> Tensor:
    """max(x, 0) element-wise."""
    _check("relu", x)
    # BEGIN SOLUTION
    return Tensor._make(np.maximum(x.data, 0), "relu", (x,))
    # END SOLUTION


def leaky_relu(x: Tensor, negative_slope: float = 0.01) -> Tensor:
    """x where x > 0, negative_slope * x elsewhere."""
    _check("leaky_relu", x)
    # BEGIN SOLUTION
    data = np.where(x.data > 0, x.data, x.data * x.dtype.type(negative_slope))
    return Tensor._make(data, "leaky_relu", (x,), (negative_slope,))
    # END SOLUTION


def sigmoid(x: Tensor) -> Tensor:
    """1 / (1 + exp(-x)), computed without overflow for large |x|."""
    _check("sigmoid", x)
    # BEGIN SOLUTION
    # exp(-|x|) is in (0, 1], so it never overflows; pick the form that is stable for each sign.
    e = np.exp(-np.abs(x.data))
    s = np.where(x.data >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)
    return Tensor._make(s, "sigmoid", (x,), (s,))
    # END SOLUTION


def tanh(x: Tensor) -> Tensor:
    _check("tanh", x)
    # BEGIN SOLUTION
    t = np.tanh(x.data)
    return Tensor._make(t, "tanh", (x,), (t,))
    # END SOLUTION


def gelu(x: Tensor) -> Tensor:
    """GELU, tanh approximation (as in GPT-2): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    _check("gelu", x)
    # BEGIN SOLUTION
    d = x.data
    c = d.dtype.type(np.sqrt(2.0 / np.pi))
    t = np.tanh(c * (d + d.dtype.type(0.044715) * d * d * d))
    return Tensor._make(0.5 * d * (1 + t), "gelu", (x,), (t,))
    # END SOLUTION


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    """exp(x) / sum(exp(x)) along `axis`; every slice sums to 1."""
    _check("softmax", x)
    # BEGIN SOLUTION
    shifted = x.data - x.data.max(axis=axis, keepdims=True)
    e = np.exp(shifted)
    s = e / e.sum(axis=axis, keepdims=True)
    return Tensor._make(s, "softmax", (x,), (s, axis))
    # END SOLUTION


def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    """log(softmax(x)) computed as (x - max) - log(sum(exp(x - max))): no overflow, no log(0)."""
    _check("log_softmax", x)
    # BEGIN SOLUTION
    shifted = x.data - x.data.max(axis=axis, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
    return Tensor._make(logp, "log_softmax", (x,), (logp, axis))
    # END SOLUTION
