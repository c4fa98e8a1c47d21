"""Image plumbing given to you, shared by module 06 (spatial), module 09 (its rules) and module 13 (kernels).

Nothing here is an exercise: it is the one home of what the three modules must agree on.

1. The contracts of the image ops - argument checks with teaching errors (`check_image`, `pair`,
   `out_size`, `check_conv`, `check_batch_norm`) and batch norm's running-statistics update
   (`update_running_stats`). Module 13's fast ops call the same functions as module 06's, so they
   cannot drift apart.
2. Channels-last memory. Image tensors have PyTorch's shape (N, C, H, W), but their data lives in
   NHWC memory - the channels of one pixel next to each other - because that is the order in which
   im2col copies windows fastest and in which a GEMM writes its output. `np.transpose` between the
   two is a free view; `nhwc` and `nchw` give those views names.

Shapes: x (N, C, H, W); weight (C_out, C_in, kH, kW); H_out = (H + 2*pad - kH) // stride + 1.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from tinytorch.tensor import Tensor, TensorError


# ---- contracts: argument checks ------------------------------------------------------------------------
def pair(value, name: str, op: str, minimum: int = 1) -> tuple[int, int]:
    """3 -> (3, 3); (2, 1) stays; anything else is a teaching error."""
    try:
        both = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
        bad = len(both) != 2 or any(int(v) != v or v < minimum for v in both)
    except (TypeError, ValueError):  # 1.5, None, "ab": not a size at all
        bad = True
    if bad:
        raise TensorError(f"{op}: {name} must be an int >= {minimum} or a pair of them, got {value!r}")
    return int(both[0]), int(both[1])


def check_image(op: str, x) -> Tensor:
    """x must be a floating-point (N, C, H, W) Tensor; returns it."""
    if not isinstance(x, Tensor):
        raise TensorError(f"{op}: expected a Tensor, got {type(x).__name__}")
    if x.ndim != 4:
        hint = " (a single image? add the batch axis with x.unsqueeze(0))" if x.ndim == 3 else ""
        raise TensorError(f"{op}: expected a 4-D input (N, C, H, W), got shape {x.shape}{hint}")
    if x.dtype.kind != "f":
        raise TensorError(f"{op}: expected a floating-point input, got dtype {x.dtype} (shape {x.shape}); "
                          "convert images with x.float() / 255")
    return x


def out_size(op: str, size: int, kernel: int, stride: int, pad: int, x_shape, what: str) -> int:
    """Output height or width (`what`) of a window op: (size + 2*pad - kernel) // stride + 1."""
    if kernel > size + 2 * pad:
        raise TensorError(f"{op}: kernel {what} {kernel} is larger than the padded input {what} "
                          f"{size} + 2*{pad} = {size + 2 * pad} (input shape {tuple(x_shape)})")
    return (size + 2 * pad - kernel) // stride + 1


def check_conv(op: str, x, weight, bias) -> None:
    """x (N, C_in, H, W), weight (C_out, C_in, kH, kW), bias (C_out,) or None."""
    check_image(op, x)
    if not isinstance(weight, Tensor) or weight.ndim != 4:
        raise TensorError(f"{op}: weight must be a 4-D Tensor (C_out, C_in, kH, kW), got shape "
                          f"{getattr(weight, 'shape', None)}")
    if x.shape[1] != weight.shape[1]:
        raise TensorError(f"{op}: input has {x.shape[1]} channels but the layer expects {weight.shape[1]} "
                          f"(input shape {x.shape}, weight shape {weight.shape})")
    if bias is not None and bias.shape != (weight.shape[0],):
        raise TensorError(f"{op}: bias must have shape ({weight.shape[0]},) for weight shape {weight.shape}, "
                          f"got {bias.shape}")


def check_batch_norm(op: str, x, weight, bias, running_mean, running_var, training: bool) -> None:
    """x (N, C, H, W); weight, bias, running_mean, running_var (C,) or None.

    Evaluation needs the running statistics; training needs at least two values per channel
    (N*H*W >= 2), since one value has no variance (and the running update divides by N*H*W - 1).
    """
    check_image(op, x)
    C = x.shape[1]
    for name, t in (("weight", weight), ("bias", bias), ("running_mean", running_mean), ("running_var", running_var)):
        if t is not None and t.shape != (C,):
            raise TensorError(f"{op}: {name} has shape {t.shape} but the input has {C} channels "
                              f"(input shape {x.shape}); expected ({C},)")
    if not training and (running_mean is None or running_var is None):
        raise TensorError(f"{op}: evaluation mode needs running_mean and running_var")
    if training and x.shape[0] * x.shape[2] * x.shape[3] < 2:
        raise TensorError(f"{op}: training needs more than one value per channel to estimate a "
                          f"variance, got input shape {x.shape}")


def update_running_stats(running_mean, running_var, mean: np.ndarray, var: np.ndarray, count: int,
                         momentum: float) -> None:
    """PyTorch's running estimates, in place: running = (1 - momentum) * running + momentum * batch.

    `var` is the batch's biased variance (divided by `count` = N*H*W values per channel); the running
    variance takes the unbiased one, var * count / (count - 1). Either buffer may be None (not tracked).
    """
    if running_mean is None or running_var is None:
        return
    m = mean.dtype.type(momentum)
    running_mean.data = ((1 - m) * running_mean.data + m * mean).astype(running_mean.dtype)
    unbiased = var * var.dtype.type(count / (count - 1))
    running_var.data = ((1 - m) * running_var.data + m * unbiased).astype(running_var.dtype)


# ---- channels-last memory ----------------------------------------------------------------------------
def nhwc(a: np.ndarray) -> np.ndarray:
    """The (N, H, W, C) view of an (N, C, H, W) array; contiguous (a copy) only if it is not already."""
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1))


def nchw(a: np.ndarray) -> np.ndarray:
    """The (N, C, H, W) view of an NHWC array (free): how image data is handed out."""
    return a.transpose(0, 3, 1, 2)


def nhwc_rows(g: np.ndarray) -> np.ndarray:
    """(N, C, H, W) array -> (N*H*W, C) matrix, one row per pixel (free when g is an NHWC view)."""
    return nhwc(g).reshape(-1, g.shape[1])


def pad_nhwc(x: np.ndarray, ph: int, pw: int, value: float = 0.0) -> np.ndarray:
    """Copy NHWC `x` into a new (N, H+2ph, W+2pw, C) buffer with a border of `value`."""
    if ph == 0 and pw == 0:
        return np.ascontiguousarray(x)
    N, H, W, C = x.shape
    out = np.empty((N, H + 2 * ph, W + 2 * pw, C), dtype=x.dtype)
    out[:, :ph], out[:, H + ph:] = value, value
    out[:, ph:H + ph, :pw], out[:, ph:H + ph, W + pw:] = value, value
    out[:, ph:H + ph, pw:W + pw] = x
    return out


def column_sums(rows: np.ndarray) -> np.ndarray:
    """Sum of each column of a tall (M, C) matrix, as one matrix-vector product.

    NumPy's rows.sum(axis=0) walks a tall, narrow matrix about 8x slower than BLAS does ones @ rows.
    """
    return np.ones(rows.shape[0], dtype=rows.dtype) @ rows


def windows_nhwc(xp: np.ndarray, kh: int, kw: int, sh: int, sw: int, Ho: int, Wo: int) -> np.ndarray:
    """All (kh, kw) windows of a padded NHWC array as a view of shape (N, Ho, Wo, kh, kw, C).

    Nothing is copied: `as_strided` only describes how to walk the same memory. Window (i, j) starts
    at row i*sh, column j*sw; inside a window we step one row / one column at a time.
    """
    n, r, c, ch = xp.strides
    return as_strided(xp, (xp.shape[0], Ho, Wo, kh, kw, xp.shape[3]), (n, r * sh, c * sw, r, c, ch),
                      writeable=False)


def scatter_windows(parts, x_shape, kernel, stride, padding, dtype) -> np.ndarray:
    """Sum window-shaped contributions back onto the input: the inverse of im2col ("col2im").

    `parts(i, j)` gives the (N, Ho, Wo, C) contribution of kernel offset (i, j). Windows overlap, so
    the contributions are *added* into a padded NHWC buffer. We loop over the kh*kw kernel offsets
    (9 for a 3x3 kernel), each step one vectorised strided add over the whole batch: this is faster
    than np.add.at (which is unbuffered and slow) and than building the full (N*Ho*Wo, kh*kw*C)
    column gradient first. Returns the (N, C, H, W) view of the un-padded NHWC gradient.
    """
    N, C, H, W = x_shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    dxp = np.zeros((N, H + 2 * ph, W + 2 * pw, C), dtype=dtype)
    Ho = (H + 2 * ph - kh) // sh + 1
    Wo = (W + 2 * pw - kw) // sw + 1
    for i in range(kh):
        for j in range(kw):
            dxp[:, i:i + sh * (Ho - 1) + 1:sh, j:j + sw * (Wo - 1) + 1:sw] += parts(i, j)
    return nchw(dxp[:, ph:ph + H, pw:pw + W])
