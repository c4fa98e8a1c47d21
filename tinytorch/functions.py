"""PyTorch's top-level functions (`tt.add`, `tt.matmul`, `tt.max(x, 1)`, ...) over the ops of module 02.

Each is one line calling a Tensor method (tinytorch/tensor.py) - the maths lives there, once.
`out=` (PyTorch's "write the result into this tensor") copies the result into `out` with the
in-place rules of `Tensor.copy_` and returns `out`.
"""
from __future__ import annotations

import numpy as np

from tinytorch.tensor import Tensor, TensorError, as_tensors


def _tensor(x) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x)


def _into(out: Tensor | None, result: Tensor) -> Tensor:
    if out is None:
        return result
    if not isinstance(out, Tensor) or out.shape != result.shape:
        raise TensorError(f"out=: expected a Tensor of shape {result.shape}, got "
                          f"{getattr(out, 'shape', type(out).__name__)}")
    return out.copy_(result)


def add(input, other, *, alpha=1, out=None) -> Tensor:
    return _into(out, _tensor(input).add(other, alpha=alpha))


def sub(input, other, *, alpha=1, out=None) -> Tensor:
    return _into(out, _tensor(input).sub(other, alpha=alpha))


def mul(input, other, *, out=None) -> Tensor:
    return _into(out, _tensor(input) * other)


def div(input, other, *, out=None) -> Tensor:
    return _into(out, _tensor(input) / other)


def matmul(input, other, *, out=None) -> Tensor:
    return _into(out, _tensor(input) @ other)


mm = matmul


def pow(input, exponent, *, out=None) -> Tensor:
    return _into(out, _tensor(input).pow(exponent))


def exp(input, *, out=None) -> Tensor:
    return _into(out, _tensor(input).exp())


def log(input, *, out=None) -> Tensor:
    return _into(out, _tensor(input).log())


def sqrt(input, *, out=None) -> Tensor:
    return _into(out, _tensor(input).sqrt())


def abs(input, *, out=None) -> Tensor:
    return _into(out, _tensor(input).abs())


def sin(input, *, out=None) -> Tensor:
    return _into(out, _tensor(input).sin())


def cos(input, *, out=None) -> Tensor:
    return _into(out, _tensor(input).cos())


def neg(input) -> Tensor:
    return -_tensor(input)


def square(input) -> Tensor:
    return _tensor(input).square()


def clamp(input, min=None, max=None) -> Tensor:
    return _tensor(input).clamp(min, max)


clip = clamp


def maximum(input, other) -> Tensor:
    return _tensor(input).maximum(other)


def minimum(input, other) -> Tensor:
    return _tensor(input).minimum(other)


def sum(input, dim=None, keepdim: bool = False) -> Tensor:
    return _tensor(input).sum(dim, keepdim)


def mean(input, dim=None, keepdim: bool = False) -> Tensor:
    return _tensor(input).mean(dim, keepdim)


def std(input, dim=None, keepdim: bool = False, unbiased: bool = True) -> Tensor:
    """Note PyTorch's default: the sample standard deviation (unbiased, n - 1)."""
    return _tensor(input).std(dim, keepdim, unbiased=unbiased)


def var(input, dim=None, keepdim: bool = False, unbiased: bool = True) -> Tensor:
    return _tensor(input).var(dim, keepdim, unbiased=unbiased)


def max(input, dim=None, keepdim: bool = False):
    """tt.max(x) -> largest value; tt.max(x, dim) -> (values, indices); tt.max(x, y) -> element-wise."""
    return _tensor(input).max(dim, keepdim)


def min(input, dim=None, keepdim: bool = False):
    return _tensor(input).min(dim, keepdim)


def argmax(input, dim=None, keepdim: bool = False) -> Tensor:
    return _tensor(input).argmax(dim, keepdim)


def argmin(input, dim=None, keepdim: bool = False) -> Tensor:
    return _tensor(input).argmin(dim, keepdim)


def reshape(input, *shape) -> Tensor:
    return _tensor(input).reshape(*shape)


def flatten(input, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    return _tensor(input).flatten(start_dim, end_dim)


def squeeze(input, dim=None) -> Tensor:
    return _tensor(input).squeeze(dim)


def unsqueeze(input, dim: int) -> Tensor:
    return _tensor(input).unsqueeze(dim)


def transpose(input, dim0: int, dim1: int) -> Tensor:
    return _tensor(input).transpose(dim0, dim1)


def t(input) -> Tensor:
    return _tensor(input).t()


def permute(input, dims) -> Tensor:
    return _tensor(input).permute(dims)


def numel(input) -> int:
    return _tensor(input).numel()


def is_tensor(obj) -> bool:
    return isinstance(obj, Tensor)


def eq(input, other) -> Tensor:
    return _tensor(input) == other


def equal(input, other) -> bool:
    """True when both have the same shape and the same values."""
    a, b = as_tensors([input, other])
    return a.shape == b.shape and bool(np.array_equal(a.data, b.data))


def allclose(input, other, rtol: float = 1e-5, atol: float = 1e-8) -> bool:
    a, b = as_tensors([input, other])
    return bool(np.allclose(a.data, b.data, rtol=rtol, atol=atol))
