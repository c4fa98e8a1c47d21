"""Module 06 - Spatial: convolution, pooling and batch normalisation for images.

Images are tensors of shape (N, C, H, W): a batch of N images with C channels (3 for RGB) of H rows
and W columns, as in PyTorch. A convolution slides a small (C_in, kH, kW) filter over the image and
takes a dot product at every position; with C_out filters it makes C_out new channels.

Writing that as four nested Python loops takes about ten seconds per CIFAR image. The fast way is
*im2col*: gather every (kH x kW x C_in) window into one row of a matrix - NumPy's stride tricks give
us all windows as a *view* without copying - and then ONE matrix multiplication (a BLAS GEMM, which
runs at tens of GFLOP/s) computes every output pixel of every image at once:

    cols (N*H_out*W_out, kH*kW*C_in)  @  weight (kH*kW*C_in, C_out)  ->  (N*H_out*W_out, C_out)

Memory layout: the windows are copied fastest when the channels of one pixel sit next to each
other in memory ("channels last", NHWC). So inside this file we keep image data in NHWC memory and
hand it out as an (N, C, H, W) *view* (`np.transpose` of an NHWC array is free): the shape you see
is PyTorch's, the memory order is the one BLAS likes. The GEMM above even produces NHWC directly.

No Python loop runs over pixels, positions or channels here. The argument checks and the NHWC
memory helpers are given to you in tinytorch/channels_last.py (read it: `nhwc`, `pad_nhwc`,
`windows_nhwc`, `column_sums`), shared with module 13's fast versions of these ops. The gradient
rules of these ops live in module 09 (tinytorch/autograd.py, section "rules for module 06");
nothing in this file needs them until you call `.backward()`.

Shapes: x (N, C, H, W); weight (C_out, C_in, kH, kW); H_out = (H + 2*pad - kH) // stride + 1.
"""
from __future__ import annotations

import math

import numpy as np

from tinytorch.channels_last import (check_batch_norm, check_conv, check_image, column_sums, nhwc, out_size, pad_nhwc,
                                     pair, update_running_stats, windows_nhwc)
from tinytorch.layers import Module, Parameter
from tinytorch.tensor import DEFAULT_FLOAT, Tensor, TensorError, get_rng


# ---- convolution -------------------------------------------------------------------------------------
def conv2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0) -> Tensor:
    """2-D convolution (really cross-correlation, like PyTorch).

    x (N, C_in, H, W), weight (C_out, C_in, kH, kW), bias (C_out,) or None -> (N, C_out, H_out, W_out).
    Computed as im2col + one GEMM; the output is an (N, C_out, H_out, W_out) view of NHWC memory.
    Records "conv2d" (rule `_conv2d` in autograd.py) with parents (x, weight[, bias]), saving
    `stride` and `padding` (pairs) and `cols`, the (N*H_out*W_out, kH*kW*C_in) im2col matrix.
    """
    check_conv("conv2d", x, weight, bias)
    N, C, H, W = x.shape
    C_out, C_in, kh, kw = weight.shape
    sh, sw = pair(stride, "stride", "conv2d")
    ph, pw = pair(padding, "padding", "conv2d", minimum=0)
    Ho = out_size("conv2d", H, kh, sh, ph, x.shape, "height")
    Wo = out_size("conv2d", W, kw, sw, pw, x.shape, "width")
    # BEGIN SOLUTION im2col over NHWC memory (stride tricks), then one GEMM for the whole batch
    xp = pad_nhwc(x.data.transpose(0, 2, 3, 1), ph, pw)                 # (N, H+2ph, W+2pw, C)
    cols = windows_nhwc(xp, kh, kw, sh, sw, Ho, Wo).reshape(N * Ho * Wo, kh * kw * C)  # the one copy
    w_rows = weight.data.transpose(2, 3, 1, 0).reshape(kh * kw * C, C_out)  # rows ordered (kh, kw, C)
    out = cols @ w_rows                                                   # (N*Ho*Wo, C_out): NHWC
    if bias is not None:
        out += bias.data
    out = out.reshape(N, Ho, Wo, C_out).transpose(0, 3, 1, 2)            # (N, C_out, Ho, Wo) view
    parents = (x, weight) if bias is None else (x, weight, bias)
    return Tensor._make(out, "conv2d", parents, stride=(sh, sw), padding=(ph, pw), cols=cols)
    # END SOLUTION


# ---- pooling -----------------------------------------------------------------------------------------
def _pool_setup(op: str, x: Tensor, kernel_size, stride, padding):
    check_image(op, x)
    kh, kw = pair(kernel_size, "kernel_size", op)
    sh, sw = pair(kernel_size if stride is None else stride, "stride", op)
    ph, pw = pair(padding, "padding", op, minimum=0)
    if ph > kh // 2 or pw > kw // 2:
        raise TensorError(f"{op}: padding {(ph, pw)} must be at most half the kernel size {(kh, kw)}")
    Ho = out_size(op, x.shape[2], kh, sh, ph, x.shape, "height")
    Wo = out_size(op, x.shape[3], kw, sw, pw, x.shape, "width")
    return (kh, kw), (sh, sw), (ph, pw), Ho, Wo


def max_pool2d(x: Tensor, kernel_size=2, stride=None, padding=0) -> Tensor:
    """Largest value of each (kH, kW) window: (N, C, H, W) -> (N, C, H_out, W_out).

    stride defaults to kernel_size (non-overlapping windows); padding pads with -inf. The gradient
    goes to the first largest element of each window (as in PyTorch), so forward saves its index.
    Records "max_pool2d" (rule `_max_pool2d`), saving `kernel`, `stride`, `padding` (pairs) and
    `index` (N, Ho, Wo, C): which window position won, a*kW + b for row a, column b of the window.

    Why not copy every window and argmax it: that copy is kh*kw times the output and NumPy's argmax
    over a short middle axis is slow. A loop over the (few) kernel offsets is not a loop over pixels:
    each step compares the whole batch at once.
    """
    (kh, kw), (sh, sw), (ph, pw), Ho, Wo = _pool_setup("max_pool2d", x, kernel_size, stride, padding)
    # BEGIN SOLUTION a running maximum over the kh*kw window offsets, each one whole-batch strided view
    xp = pad_nhwc(x.data.transpose(0, 2, 3, 1), ph, pw, value=-np.inf)
    win = windows_nhwc(xp, kh, kw, sh, sw, Ho, Wo)                          # (N, Ho, Wo, kh, kw, C) view
    out = win[:, :, :, 0, 0, :].copy()                                      # (N, Ho, Wo, C)
    index = np.zeros(out.shape, dtype=np.int8 if kh * kw < 128 else np.int32)
    for k in range(1, kh * kw):
        candidate = win[:, :, :, k // kw, k % kw, :]
        better = (candidate > out).view(np.int8)                            # strict: the first maximum wins ties
        np.maximum(out, candidate, out=out)
        index += better * (index.dtype.type(k) - index)                     # index = k where better (fast int8 math)
    return Tensor._make(out.transpose(0, 3, 1, 2), "max_pool2d", (x,), kernel=(kh, kw), stride=(sh, sw),
                        padding=(ph, pw), index=index)
    # END SOLUTION


def avg_pool2d(x: Tensor, kernel_size=2, stride=None, padding=0) -> Tensor:
    """Mean of each (kH, kW) window (zero padding counts in the mean, as PyTorch's default).

    Records "avg_pool2d" (rule `_avg_pool2d`), saving `kernel`, `stride` and `padding` (pairs).
    """
    (kh, kw), (sh, sw), (ph, pw), Ho, Wo = _pool_setup("avg_pool2d", x, kernel_size, stride, padding)
    # BEGIN SOLUTION
    xp = pad_nhwc(x.data.transpose(0, 2, 3, 1), ph, pw)
    win = windows_nhwc(xp, kh, kw, sh, sw, Ho, Wo)                          # (N, Ho, Wo, kh, kw, C)
    out = win.mean(axis=(3, 4), dtype=x.dtype)                              # (N, Ho, Wo, C)
    return Tensor._make(out.transpose(0, 3, 1, 2), "avg_pool2d", (x,), kernel=(kh, kw), stride=(sh, sw),
                        padding=(ph, pw))
    # END SOLUTION


# ---- batch normalisation -----------------------------------------------------------------------------
def batch_norm2d(x: Tensor, weight: Tensor | None, bias: Tensor | None, running_mean: Tensor | None,
                 running_var: Tensor | None, training: bool = True, momentum: float = 0.1,
                 eps: float = 1e-5) -> Tensor:
    """Normalise each channel to mean 0, variance 1, then scale by weight and shift by bias.

    x (N, C, H, W); weight, bias, running_mean, running_var (C,). In training the statistics are those
    of this batch (over N, H and W, the biased variance), and the running estimates are updated in
    place with the given `update_running_stats` (PyTorch's rule, shared with module 13). In evaluation
    the running estimates are used instead. weight/bias None mean 1/0.
    Records "batch_norm2d" (rule `_batch_norm2d`) with parents (x, weight, bias), saving `xhat`
    = (x - mean) * rstd, the normalised input as an (N*H*W, C) matrix of NHWC rows, `rstd`
    = 1 / sqrt(var + eps) of shape (C,), and `training` (a bool).
    """
    check_batch_norm("batch_norm2d", x, weight, bias, running_mean, running_var, training)
    C = x.shape[1]
    dt = x.dtype.type
    weight = weight if weight is not None else Tensor(np.ones(C, dtype=x.dtype))
    bias = bias if bias is not None else Tensor(np.zeros(C, dtype=x.dtype))
    # BEGIN SOLUTION statistics over (N, H, W): the columns of the (N*H*W, C) matrix of NHWC rows
    N, _, H, W = x.shape
    rows = nhwc(x.data).reshape(-1, C)                                      # free for NHWC memory
    M = rows.shape[0]
    if training:
        mean = column_sums(rows) / dt(M)
        xhat = rows - mean                                                  # becomes x-hat in place below
        var = np.einsum("ij,ij->j", xhat, xhat) / dt(M)                     # sum of squares, no temporary
        update_running_stats(running_mean, running_var, mean, var, M, momentum)
    else:
        xhat = rows - running_mean.data.astype(x.dtype)
        var = running_var.data.astype(x.dtype)
    rstd = (1.0 / np.sqrt(var + dt(eps))).astype(x.dtype)
    xhat *= rstd                                                            # (M, C), saved for backward
    out = xhat * weight.data.astype(x.dtype)
    out += bias.data.astype(x.dtype)
    return Tensor._make(out.reshape(N, H, W, C).transpose(0, 3, 1, 2), "batch_norm2d", (x, weight, bias),
                        xhat=xhat, rstd=rstd, training=bool(training))
    # END SOLUTION


# ---- layers ------------------------------------------------------------------------------------------
class Conv2d(Module):
    """2-D convolution layer: weight (C_out, C_in, kH, kW) and bias (C_out,), like torch.nn.Conv2d.

    Initialisation as PyTorch: weight and bias uniform in +-1/sqrt(fan_in), fan_in = C_in*kH*kW.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, bias: bool = True):
        super().__init__()
        if int(in_channels) <= 0 or int(out_channels) <= 0:
            raise TensorError(f"Conv2d: channel counts must be positive, got in_channels={in_channels}, "
                              f"out_channels={out_channels}")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = pair(kernel_size, "kernel_size", "Conv2d")
        self.stride = pair(stride, "stride", "Conv2d")
        self.padding = pair(padding, "padding", "Conv2d", minimum=0)
        kh, kw = self.kernel_size
        # BEGIN SOLUTION initialise weight (C_out, C_in, kH, kW) and bias (C_out,) uniformly in +-1/sqrt(fan_in)
        bound = 1.0 / math.sqrt(self.in_channels * kh * kw)
        rng = get_rng()
        self.weight = Parameter(rng.uniform(-bound, bound, (self.out_channels, self.in_channels, kh, kw))
                                .astype(DEFAULT_FLOAT))
        self.bias = Parameter(rng.uniform(-bound, bound, self.out_channels).astype(DEFAULT_FLOAT)) if bias else None
        # END SOLUTION

    def forward(self, x: Tensor) -> Tensor:
        return conv2d(x, self.weight, self.bias, self.stride, self.padding)

    def flops(self, input_shape, output_shape) -> int:
        """2 x multiply-adds: every output value is a dot product of length C_in*kH*kW."""
        kh, kw = self.kernel_size
        return 2 * math.prod(output_shape) * self.in_channels * kh * kw

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, bias={self.bias is not None}")


class MaxPool2d(Module):
    def __init__(self, kernel_size=2, stride=None, padding=0):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x: Tensor) -> Tensor:
        return max_pool2d(x, self.kernel_size, self.stride, self.padding)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride or self.kernel_size}, padding={self.padding}"


class AvgPool2d(MaxPool2d):
    def forward(self, x: Tensor) -> Tensor:
        return avg_pool2d(x, self.kernel_size, self.stride, self.padding)


class GlobalAvgPool2d(Module):
    """Mean over each whole channel: (N, C, H, W) -> (N, C). (PyTorch: AdaptiveAvgPool2d(1) + flatten.)"""

    def forward(self, x: Tensor) -> Tensor:
        check_image("GlobalAvgPool2d", x)
        # BEGIN SOLUTION
        return x.mean(axis=(2, 3))
        # END SOLUTION


class BatchNorm2d(Module):
    """Batch normalisation over channels of (N, C, H, W) input, like torch.nn.BatchNorm2d.

    weight (C,) starts at 1, bias (C,) at 0 (learned when affine=True); buffers running_mean (C,)
    and running_var (C,) start at 0 and 1 and are saved in the state dict. train() uses batch
    statistics and updates the running ones; eval() uses the running ones.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, affine: bool = True):
        super().__init__()
        if int(num_features) <= 0:
            raise TensorError(f"BatchNorm2d: num_features must be positive, got {num_features}")
        if not 0.0 <= momentum <= 1.0:
            raise TensorError(f"BatchNorm2d: momentum must be in [0, 1], got {momentum}")
        self.num_features, self.eps, self.momentum = int(num_features), float(eps), float(momentum)
        C = self.num_features
        self.weight = Parameter(np.ones(C, dtype=DEFAULT_FLOAT)) if affine else None
        self.bias = Parameter(np.zeros(C, dtype=DEFAULT_FLOAT)) if affine else None
        self.register_buffer("running_mean", np.zeros(C, dtype=DEFAULT_FLOAT))
        self.register_buffer("running_var", np.ones(C, dtype=DEFAULT_FLOAT))

    def forward(self, x: Tensor) -> Tensor:
        return batch_norm2d(x, self.weight, self.bias, self.running_mean, self.running_var,
                            self.training, self.momentum, self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.weight is not None}"


# ---- PyTorch's adaptive pooling (given: one call of avg_pool2d) ----------------------------------------
def adaptive_avg_pool2d(x: Tensor, output_size) -> Tensor:
    """Average-pool (N, C, H, W) to (N, C, out_H, out_W) with equal windows: kernel = stride = H // out_H.

    H and W must be multiples of the output size (PyTorch also handles uneven windows; asking for
    them here is an error that says so). output_size 1 is the global average, kept 4-D.
    """
    if not isinstance(x, Tensor) or x.ndim != 4:
        raise TensorError(f"adaptive_avg_pool2d: expected an (N, C, H, W) Tensor, got "
                          f"{getattr(x, 'shape', type(x).__name__)}")
    out_h, out_w = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
    H, W = x.shape[2:]
    out_h, out_w = H if out_h is None else out_h, W if out_w is None else out_w
    if not (isinstance(out_h, int) and isinstance(out_w, int) and 0 < out_h <= H and 0 < out_w <= W
            and H % out_h == 0 and W % out_w == 0):
        raise TensorError(f"adaptive_avg_pool2d: output size {output_size!r} must divide the input's height and "
                          f"width {(H, W)} (equal windows only)")
    return avg_pool2d(x, (H // out_h, W // out_w))


class AdaptiveAvgPool2d(Module):
    """nn.AdaptiveAvgPool2d: pool to a fixed output size (see adaptive_avg_pool2d)."""

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, x: Tensor) -> Tensor:
        return adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"
