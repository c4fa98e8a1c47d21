"""Module 03 - Activations: the non-linearities that let a stack of layers be more than one matrix.

Each function takes a `Tensor` and returns a new one of the same shape, recording its op name so
module 09 can differentiate it. Softmax and log-softmax must be numerically stable: for inputs
around +-1e4, `exp` overflows float32 (max ~3.4e38 = e^88.7), so subtract the maximum first - the
result is mathematically unchanged because softmax(x) == softmax(x - c) for any constant c.
"""
from __future__ import annotations

import numpy as np

from tinytorch.tensor import Tensor, TensorError, torch_dims


def _check(op: str, x, axis=None) -> Tensor:
    """Teaching errors for wrong input: not a Tensor, not floating point, or an axis out of range."""
    if not isinstance(x, Tensor):
        raise TensorError(f"{op}: expected a Tensor, got {type(x).__name__}")
    if x.dtype.kind != "f":
        raise TensorError(f"{op}: expected a floating-point tensor, got dtype {x.dtype} (shape {x.shape}); "
                          "convert with .float()")
    if axis is not None and not (isinstance(axis, (int, np.integer)) and -x.ndim <= axis < x.ndim):
        raise TensorError(f"{op}: axis {axis!r} is out of range for a tensor of shape {x.shape}")
    return x


def relu(x: Tensor) -> Tensor:
    """max(x, 0) element-wise. Records "relu" (rule `_relu` in autograd.py), saving nothing."""
    _check("relu", x)
    # BEGIN SOLUTION
    return Tensor._make(np.maximum(x.data, 0), "relu", (x,))
    # END SOLUTION


def leaky_relu(x: Tensor, negative_slope: float = 0.01) -> Tensor:
    """x where x > 0, negative_slope * x elsewhere. Records "leaky_relu" (rule `_leaky_relu`), saving `slope`."""
    _check("leaky_relu", x)
    if not isinstance(negative_slope, (int, float)):
        raise TensorError(f"leaky_relu: negative_slope must be a number, got {type(negative_slope).__name__}")
    # BEGIN SOLUTION
    data = np.where(x.data > 0, x.data, x.data * x.dtype.type(negative_slope))
    return Tensor._make(data, "leaky_relu", (x,), slope=negative_slope)
    # END SOLUTION


def sigmoid(x: Tensor) -> Tensor:
    """1 / (1 + exp(-x)), computed without overflow for large |x|.

    Records "sigmoid" (rule `_sigmoid`), saving `out`, the result s (the derivative is s (1 - s)).
    """
    _check("sigmoid", x)
    # exp(-|x|) is in (0, 1], so it never overflows; pick the form that is stable for each sign.
    # BEGIN SOLUTION
    e = np.exp(-np.abs(x.data))
    s = 1 / (1 + e)  # sigmoid(|x|)
    s = np.where(x.data >= 0, s, e * s)  # sigmoid(-|x|) = e^-|x| / (1 + e^-|x|)
    return Tensor._make(s, "sigmoid", (x,), out=s)
    # END SOLUTION


def tanh(x: Tensor) -> Tensor:
    """np.tanh. Records "tanh" (rule `_tanh`), saving `out`, the result t (the derivative is 1 - t^2)."""
    _check("tanh", x)
    # BEGIN SOLUTION
    t = np.tanh(x.data)
    return Tensor._make(t, "tanh", (x,), out=t)
    # END SOLUTION


def gelu(x: Tensor) -> Tensor:
    """GELU, tanh approximation (as in GPT-2): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).

    Records "gelu" (rule `_gelu`), saving `tanh`, the tanh term (the rule needs it and x).
    """
    _check("gelu", x)
    # BEGIN SOLUTION
    d = x.data
    c = d.dtype.type(np.sqrt(2.0 / np.pi))
    t = np.tanh(c * (d + d.dtype.type(0.044715) * d * d * d))
    return Tensor._make(0.5 * d * (1 + t), "gelu", (x,), tanh=t)
    # END SOLUTION


@torch_dims  # softmax(x, dim=1) as in PyTorch
def softmax(x: Tensor, axis: int = -1) -> Tensor:
    """exp(x) / sum(exp(x)) along `axis`; every slice sums to 1.

    Records "softmax" (rule `_softmax`), saving `out`, the result s, and `axis`.
    """
    _check("softmax", x, axis)
    # max(initial=-inf): an empty axis has no maximum, and then there is nothing to normalize either
    # BEGIN SOLUTION
    shifted = x.data - x.data.max(axis=axis, keepdims=True, initial=-np.inf)
    e = np.exp(shifted)
    s = e / e.sum(axis=axis, keepdims=True)
    return Tensor._make(s, "softmax", (x,), out=s, axis=axis)
    # END SOLUTION


@torch_dims
def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    """log(softmax(x)) computed as (x - max) - log(sum(exp(x - max))): no overflow, no log(0).

    Records "log_softmax" (rule `_log_softmax`), saving `out`, the result log p, and `axis`.
    """
    _check("log_softmax", x, axis)
    # BEGIN SOLUTION
    shifted = x.data - x.data.max(axis=axis, keepdims=True, initial=-np.inf)
    with np.errstate(divide="ignore"):   # the sum is >= 1 (the max term is exp(0)) unless the axis is empty
        logp = shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
    return Tensor._make(logp, "log_softmax", (x,), out=logp, axis=axis)
    # END SOLUTION
