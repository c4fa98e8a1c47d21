"""Checking tools shared by the module tests (given to students, not an assignment).

`gradcheck` compares the gradients that backward() computes with central finite differences in
float64, at every element of every input, and says where they disagree.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from tinytorch.tensor import Tensor


def assert_close(got, expected, *, atol: float = 1e-5, rtol: float = 1e-5, what: str = "value") -> None:
    """Like np.testing.assert_allclose, with a message that says expected vs got and where."""
    got = np.asarray(got.data if isinstance(got, Tensor) else got)
    expected = np.asarray(expected.data if isinstance(expected, Tensor) else expected)
    if got.shape != expected.shape:
        raise AssertionError(f"{what}: expected shape {expected.shape}, got shape {got.shape}")
    bad = ~np.isclose(got, expected, atol=atol, rtol=rtol, equal_nan=True)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {bad.size} elements differ; first at index {idx}: "
            f"expected {_plain(expected[idx])}, got {_plain(got[idx])} (atol={atol}, rtol={rtol})")


def _plain(value) -> str:
    """0.5, not np.float64(0.5): NumPy 2 scalars repr with their type, which buries the number."""
    return repr(np.asarray(value).item())


def numerical_gradient(fn: Callable[..., Tensor], arrays: Sequence[np.ndarray], wrt: int,
                       eps: float = 1e-6) -> np.ndarray:
    """d sum(fn(*arrays) * w) / d arrays[wrt] by central differences, w a fixed random weighting."""
    arrays = [np.array(a, dtype=np.float64) if np.asarray(a).dtype.kind == "f" else np.asarray(a) for a in arrays]
    base = np.asarray(fn(*[Tensor(a, dtype=a.dtype) for a in arrays]).data, dtype=np.float64)
    weight = np.random.default_rng(1).standard_normal(base.shape)
    x = arrays[wrt]
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + eps
        plus = np.array(fn(*[Tensor(a, dtype=a.dtype) for a in arrays]).data, dtype=np.float64)  # a copy: fn may return a view of x
        x[i] = old - eps
        minus = np.array(fn(*[Tensor(a, dtype=a.dtype) for a in arrays]).data, dtype=np.float64)
        x[i] = old
        grad[i] = ((plus - minus) * weight).sum() / (2 * eps)
    return grad


def gradcheck(fn: Callable[..., Tensor], *inputs, atol: float = 1e-5, rtol: float = 1e-4,
              name: str | None = None) -> None:
    """Check backward() of `fn` against finite differences for every floating-point input.

    `fn` takes Tensors and returns a Tensor of any shape. Everything runs in float64 so that the
    finite differences are accurate; integer inputs (labels, indices) are passed through.
    """
    name = name or getattr(fn, "__name__", "fn")
    arrays = [np.array(a.data if isinstance(a, Tensor) else a) for a in inputs]
    arrays = [a.astype(np.float64) if a.dtype.kind == "f" else a for a in arrays]
    tensors = [Tensor(a, dtype=a.dtype, requires_grad=a.dtype.kind == "f") for a in arrays]
    out = fn(*tensors)
    if not isinstance(out, Tensor):
        raise AssertionError(f"gradcheck {name}: fn must return a Tensor, got {type(out).__name__}")
    if any(a.dtype == np.float64 for a in arrays) and out.dtype != np.float64:
        raise AssertionError(
            f"gradcheck {name}: float64 inputs gave a {out.dtype} output; some op dropped to lower precision, "
            "so finite differences would be meaningless (ops must keep float64 when their input is float64)")
    if not out.requires_grad:
        raise AssertionError(f"gradcheck {name}: the output does not require grad, so no graph was recorded "
                             "(did an op forget Tensor._make, or run inside no_grad()?)")
    weight = np.random.default_rng(1).standard_normal(out.shape)
    (out * Tensor(weight, dtype=np.float64)).sum().backward()
    for k, (t, a) in enumerate(zip(tensors, arrays)):
        if a.dtype.kind != "f":
            continue
        expected = numerical_gradient(fn, arrays, k)
        if t.grad is None:
            raise AssertionError(f"gradcheck {name}: input {k} (shape {a.shape}) got no gradient from backward()")
        assert_close(t.grad.data, expected, atol=atol, rtol=rtol,
                     what=f"gradcheck {name}: gradient of input {k} (shape {a.shape}), backward() vs finite differences")
