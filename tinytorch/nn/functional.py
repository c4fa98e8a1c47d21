"""`tinytorch.nn.functional` (import tinytorch.nn.functional as F): PyTorch's functional forms.

Each function here is the op a module file already defines, under PyTorch's name and keywords
(`dim=`), or a short composition of such ops (the losses marked so). No maths lives here that a
module file does not hold already.
"""
from __future__ import annotations

import numpy as np

from tinytorch.activations import gelu, leaky_relu, log_softmax, relu, sigmoid, softmax, tanh
from tinytorch.attention import embedding, scaled_dot_product_attention
from tinytorch.layers import dropout, linear
from tinytorch.networks import cross_entropy, mse_loss
from tinytorch.networks import layer_norm as _layer_norm
from tinytorch.spatial import adaptive_avg_pool2d, avg_pool2d, conv2d, max_pool2d
from tinytorch.tensor import Tensor, TensorError

__all__ = ["adaptive_avg_pool2d", "avg_pool2d", "binary_cross_entropy", "binary_cross_entropy_with_logits",
           "conv2d", "cross_entropy", "dropout", "embedding", "gelu", "layer_norm", "leaky_relu", "linear",
           "log_softmax", "max_pool2d", "mse_loss", "nll_loss", "one_hot", "relu", "scaled_dot_product_attention",
           "sigmoid", "softmax", "tanh"]


def layer_norm(x: Tensor, normalized_shape, weight: Tensor | None = None, bias: Tensor | None = None,
               eps: float = 1e-5) -> Tensor:
    """PyTorch's signature; TinyTorch normalises over the last dimension only."""
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if shape != x.shape[-1:]:
        raise TensorError(f"layer_norm: TinyTorch normalises over the last dimension only; normalized_shape "
                          f"{shape} must be {x.shape[-1:]} for input shape {x.shape}")
    return _layer_norm(x, weight, bias, eps)


def _reduce(loss: Tensor, reduction: str, op: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise TensorError(f"{op}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def nll_loss(log_probs: Tensor, targets, reduction: str = "mean") -> Tensor:
    """-log_probs[i, targets[i]], composed from getitem: use after log_softmax (N, C)."""
    t = np.asarray(targets.data if isinstance(targets, Tensor) else targets)
    if log_probs.ndim != 2 or t.shape != log_probs.shape[:1] or t.dtype.kind not in "iu":
        raise TensorError(f"nll_loss: expected (N, C) log-probabilities and N integer targets, got shapes "
                          f"{log_probs.shape} and {t.shape} (dtype {t.dtype})")
    return _reduce(-log_probs[np.arange(len(t)), t], reduction, "nll_loss")


def binary_cross_entropy_with_logits(logits: Tensor, targets, reduction: str = "mean") -> Tensor:
    """mean(max(z, 0) - z * y + log(1 + exp(-|z|))): the stable form of BCE(sigmoid(z), y), composed."""
    y = targets if isinstance(targets, Tensor) else Tensor(targets)
    if y.shape != logits.shape:
        raise TensorError(f"binary_cross_entropy_with_logits: logits {logits.shape} and targets {y.shape} "
                          "must have the same shape")
    loss = logits.clip(0, None) - logits * y + (1 + (-logits.abs()).exp()).log()
    return _reduce(loss, reduction, "binary_cross_entropy_with_logits")


def binary_cross_entropy(probs: Tensor, targets, reduction: str = "mean") -> Tensor:
    """-(y log p + (1 - y) log(1 - p)), log clamped at -100 as PyTorch does."""
    y = targets if isinstance(targets, Tensor) else Tensor(targets)
    loss = -(y * probs.log().clip(-100, None) + (1 - y) * (1 - probs).log().clip(-100, None))
    return _reduce(loss, reduction, "binary_cross_entropy")


def one_hot(targets, num_classes: int = -1) -> Tensor:
    """(N,) integer classes -> (N, num_classes) int64 with a 1 at each class."""
    t = np.asarray(targets.data if isinstance(targets, Tensor) else targets)
    if t.dtype.kind not in "iu" or (t.size and t.min() < 0):
        raise TensorError(f"one_hot: targets must be non-negative integers, got dtype {t.dtype}")
    n = int(t.max()) + 1 if num_classes < 0 else num_classes
    if t.size and t.max() >= n:
        raise TensorError(f"one_hot: class {int(t.max())} does not fit num_classes={n}")
    return Tensor(np.eye(n, dtype=np.int64)[t])
