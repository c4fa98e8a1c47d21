"""Module 02 - Tensor: an n-dimensional array that remembers how it was made.

A `Tensor` wraps a NumPy array (`.data`). Floating-point data is float32 unless you ask for another
dtype, because float32 is what deep-learning hardware and BLAS run fastest; integer dtypes are kept
as they are, for class labels and token ids.

Every operation here computes its result with NumPy and hands it to `Tensor._make`, which records
the operation's name, its inputs and whatever the backward pass will need (the "context") - but
only when some input requires a gradient and gradient mode is on. The rules that turn an output
gradient into input gradients live in module 09 (`tinytorch/autograd.py`); nothing in this file
needs them until you call `.backward()`.

Shapes in docstrings: `(N, D)` means a 2-D tensor with N rows and D columns; `(..., M, K)` means any
number of leading (batch) dimensions.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

DEFAULT_FLOAT = np.float32


class TensorError(ValueError):
    """A TinyTorch operation got input it cannot work with; the message names the op and shapes."""


class _GradMode:
    """Global switch for graph recording (`tinytorch.autograd.no_grad` turns it off)."""

    enabled = True


grad_mode = _GradMode()


class Context:
    """What the backward rule of one operation needs: its name, its inputs, and saved values."""

    __slots__ = ("op", "parents", "saved")

    def __init__(self, op: str, parents: tuple, saved: tuple):
        self.op = op
        self.parents = parents
        self.saved = saved

    def __repr__(self) -> str:
        return f"Context(op={self.op!r}, parents={len(self.parents)})"


_rng = np.random.default_rng(0)


def manual_seed(seed: int) -> None:
    """Seed TinyTorch's random generator (weight init, dropout, shuffling) for reproducible runs."""
    global _rng
    _rng = np.random.default_rng(seed)


def get_rng() -> np.random.Generator:
    """The random generator every TinyTorch component draws from."""
    return _rng


def _shape_str(*tensors) -> str:
    return " and ".join(str(tuple(np.shape(t.data if isinstance(t, Tensor) else t))) for t in tensors)


def _as_array(value, dtype=None) -> np.ndarray:
    """Convert tensors, arrays, scalars and nested lists to an ndarray; floats become float32."""
    # BEGIN SOLUTION
    if isinstance(value, Tensor):
        value = value.data
    arr = np.asarray(value, dtype=dtype)
    if dtype is None and arr.dtype.kind == "f" and arr.dtype != DEFAULT_FLOAT:
        arr = arr.astype(DEFAULT_FLOAT)
    if arr.dtype.kind not in "fiub":
        raise TensorError(f"Tensor: unsupported dtype {arr.dtype}; use a float, integer or bool array")
    return arr
    # END SOLUTION


class Tensor:
    """An n-dimensional array with optional gradient tracking.

    >>> x = Tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    >>> (x * x).sum().backward()   # needs module 09
    >>> x.grad.data                # 2 * x
    """

    __slots__ = ("data", "requires_grad", "grad", "_ctx", "__weakref__")
    __array_priority__ = 1000  # make `ndarray * Tensor` call Tensor.__rmul__

    def __init__(self, data, dtype=None, requires_grad: bool = False):
        self.data = _as_array(data, dtype)
        if requires_grad and self.data.dtype.kind != "f":
            raise TensorError(
                f"Tensor: only floating-point tensors can require gradients, got dtype {self.data.dtype} "
                "(integer tensors hold labels or indices, which have no gradient)")
        self.requires_grad = bool(requires_grad)
        self.grad: Tensor | None = None
        self._ctx: Context | None = None

    # ---- plumbing given to you -------------------------------------------------------------------
    @staticmethod
    def _make(data: np.ndarray, op: str, parents: tuple, saved: tuple = ()) -> "Tensor":
        """Wrap the result of an op; record the graph only when a parent needs a gradient."""
        out = Tensor.__new__(Tensor)
        out.data = data
        out.grad = None
        if grad_mode.enabled and any(p.requires_grad for p in parents):
            out.requires_grad = True
            out._ctx = Context(op, parents, saved)
        else:
            out.requires_grad = False
            out._ctx = None
        return out

    def _lift(self, other) -> "Tensor":
        """Turn a Python number or array into a Tensor of a dtype that matches `self`."""
        if isinstance(other, Tensor):
            return other
        arr = np.asarray(other)
        if arr.dtype.kind == "f" or self.data.dtype.kind == "f":
            arr = arr.astype(self.data.dtype if self.data.dtype.kind == "f" else DEFAULT_FLOAT)
        elif arr.dtype.kind in "iu":
            arr = arr.astype(self.data.dtype) if self.data.dtype.kind in "iu" else arr
        return Tensor(arr)

    def backward(self, grad=None) -> None:
        """Fill `.grad` of every leaf this tensor depends on (see module 09)."""
        from tinytorch.autograd import backward
        backward(self, grad)

    # ---- properties --------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def is_leaf(self) -> bool:
        return self._ctx is None

    def numpy(self) -> np.ndarray:
        return self.data

    def item(self):
        if self.data.size != 1:
            raise TensorError(f"item: only a tensor with one element can become a Python number, got shape {self.shape}")
        return self.data.item()

    def tolist(self):
        return self.data.tolist()

    def detach(self) -> "Tensor":
        """The same data, cut from the graph (no gradient flows through it)."""
        return Tensor(self.data)

    def astype(self, dtype) -> "Tensor":
        return Tensor(self.data.astype(dtype))

    def float(self) -> "Tensor":
        return self.astype(DEFAULT_FLOAT)

    def long(self) -> "Tensor":
        return self.astype(np.int64)

    def zero_grad(self) -> None:
        self.grad = None

    def __len__(self) -> int:
        if self.data.ndim == 0:
            raise TensorError("len() of a 0-d tensor")
        return self.data.shape[0]

    def __array__(self, dtype=None, copy=None):
        return self.data if dtype is None else self.data.astype(dtype)

    def __repr__(self) -> str:
        body = np.array2string(self.data, precision=4, separator=", ", threshold=20, edgeitems=2)
        extra = ", requires_grad=True" if self.requires_grad else ""
        if self.data.dtype != DEFAULT_FLOAT:
            extra = f", dtype={self.data.dtype}" + extra
        return f"Tensor({body}{extra})"

    __hash__ = object.__hash__

    # ---- element-wise arithmetic -------------------------------------------------------------------
    def _binary(self, other, op: str, fn) -> "Tensor":
        """Apply NumPy `fn` with broadcasting; a shape mismatch names the op and both shapes."""
        other = self._lift(other)
        # BEGIN SOLUTION
        try:
            data = fn(self.data, other.data)
        except ValueError:
            raise TensorError(
                f"{op}: cannot broadcast shapes {_shape_str(self, other)}; trailing dimensions must be "
                "equal or 1") from None
        if data.dtype == np.float64 and self.data.dtype != np.float64 and other.data.dtype != np.float64:
            data = data.astype(DEFAULT_FLOAT)  # int + float32 stays float32
        return Tensor._make(data, op, (self, other))
        # END SOLUTION

    def __add__(self, other):
        return self._binary(other, "add", np.add)

    def __radd__(self, other):
        return self._lift(other).__add__(self)

    def __sub__(self, other):
        return self._binary(other, "sub", np.subtract)

    def __rsub__(self, other):
        return self._lift(other).__sub__(self)

    def __mul__(self, other):
        return self._binary(other, "mul", np.multiply)

    def __rmul__(self, other):
        return self._lift(other).__mul__(self)

    def __truediv__(self, other):
        if self.data.dtype.kind != "f" and not (isinstance(other, Tensor) and other.dtype.kind == "f"):
            return self.float()._binary(other, "div", np.true_divide)
        return self._binary(other, "div", np.true_divide)

    def __rtruediv__(self, other):
        return self._lift(other).__truediv__(self)

    def __pow__(self, exponent) -> "Tensor":
        """Element-wise power with a constant (Python number) exponent."""
        if isinstance(exponent, Tensor):
            raise TensorError("pow: the exponent must be a Python number; for a tensor exponent use exp(b * log(a))")
        # BEGIN SOLUTION
        p = float(exponent)
        if p == 2.0:
            data = self.data * self.data
        elif p == 0.5:
            data = np.sqrt(self.data)
        else:
            data = np.power(self.data, self.data.dtype.type(p) if self.data.dtype.kind == "f" else p)
        return Tensor._make(data, "pow", (self,), (p,))
        # END SOLUTION

    def __neg__(self):
        # BEGIN SOLUTION
        return Tensor._make(np.negative(self.data), "neg", (self,))
        # END SOLUTION

    def exp(self) -> "Tensor":
        # BEGIN SOLUTION
        out = np.exp(self.data)
        return Tensor._make(out, "exp", (self,), (out,))
        # END SOLUTION

    def log(self) -> "Tensor":
        """Natural logarithm; log(0) is -inf, as in NumPy and PyTorch."""
        # BEGIN SOLUTION
        return Tensor._make(np.log(self.data), "log", (self,))
        # END SOLUTION

    def sqrt(self) -> "Tensor":
        # BEGIN SOLUTION
        out = np.sqrt(self.data)
        return Tensor._make(out, "sqrt", (self,), (out,))
        # END SOLUTION

    def abs(self) -> "Tensor":
        # BEGIN SOLUTION
        return Tensor._make(np.abs(self.data), "abs", (self,))
        # END SOLUTION

    def clip(self, low=None, high=None) -> "Tensor":
        """Limit values to [low, high]; either bound may be None. The gradient is 0 where clipped."""
        if low is None and high is None:
            raise TensorError("clip: give at least one of low and high")
        # BEGIN SOLUTION
        return Tensor._make(np.clip(self.data, low, high), "clip", (self,), (low, high))
        # END SOLUTION

    def maximum(self, other) -> "Tensor":
        """Element-wise maximum of two tensors (broadcasting); ties send the gradient to `self`."""
        return self._binary(other, "maximum", np.maximum)

    def masked_fill(self, mask, value: float) -> "Tensor":
        """Copy of self with `value` where the boolean `mask` (broadcastable to self) is True."""
        mask = mask.data if isinstance(mask, Tensor) else np.asarray(mask)
        if mask.dtype != np.bool_:
            raise TensorError(f"masked_fill: mask must be bool, got dtype {mask.dtype}")
        # BEGIN SOLUTION
        try:
            data = np.where(mask, self.data.dtype.type(value), self.data)
        except ValueError:
            raise TensorError(f"masked_fill: mask shape {mask.shape} does not broadcast to {self.shape}") from None
        if data.shape != self.shape:
            raise TensorError(f"masked_fill: mask shape {mask.shape} would change the shape {self.shape}")
        return Tensor._make(data, "masked_fill", (self,), (mask,))
        # END SOLUTION

    # ---- comparisons (no gradient: the result is bool) --------------------------------------------
    def _compare(self, other, fn, op) -> "Tensor":
        other = self._lift(other)
        try:
            return Tensor(fn(self.data, other.data))
        except ValueError:
            raise TensorError(f"{op}: cannot broadcast shapes {_shape_str(self, other)}") from None

    def __eq__(self, other):  # type: ignore[override]
        return self._compare(other, np.equal, "eq")

    def __ne__(self, other):  # type: ignore[override]
        return self._compare(other, np.not_equal, "ne")

    def __lt__(self, other):
        return self._compare(other, np.less, "lt")

    def __le__(self, other):
        return self._compare(other, np.less_equal, "le")

    def __gt__(self, other):
        return self._compare(other, np.greater, "gt")

    def __ge__(self, other):
        return self._compare(other, np.greater_equal, "ge")

    # ---- matrix multiplication ---------------------------------------------------------------------
    def matmul(self, other) -> "Tensor":
        """(..., M, K) @ (..., K, N) -> (..., M, N), batch dims broadcast; 1-D operands as in NumPy."""
        other = self._lift(other)
        # BEGIN SOLUTION
        a, b = self.data, other.data
        if a.ndim == 0 or b.ndim == 0:
            raise TensorError(f"matmul: both operands need at least 1 dimension, got shapes {_shape_str(self, other)}")
        k_left = a.shape[-1]
        k_right = b.shape[-2] if b.ndim > 1 else b.shape[0]
        if k_left != k_right:
            raise TensorError(
                f"matmul: shapes {_shape_str(self, other)} are not aligned: the last dimension of the left "
                f"operand ({k_left}) must equal the {'second-to-last' if b.ndim > 1 else 'only'} dimension "
                f"of the right operand ({k_right})")
        try:
            data = np.matmul(a, b)
        except ValueError:
            raise TensorError(f"matmul: batch dimensions of {_shape_str(self, other)} do not broadcast") from None
        return Tensor._make(data, "matmul", (self, other))
        # END SOLUTION

    __matmul__ = matmul

    def __rmatmul__(self, other):
        return self._lift(other).matmul(self)

    # ---- reductions --------------------------------------------------------------------------------
    def _check_axis(self, op: str, axis):
        axes = (axis,) if isinstance(axis, int) else (axis or ())
        for ax in axes:
            if not -self.ndim <= ax < max(self.ndim, 1):
                raise TensorError(f"{op}: axis {ax} is out of range for a tensor of shape {self.shape}")

    def sum(self, axis=None, keepdims: bool = False) -> "Tensor":
        """Sum over `axis` (int, tuple or None for all)."""
        self._check_axis("sum", axis)
        # BEGIN SOLUTION
        axis = tuple(axis) if isinstance(axis, list) else axis
        return Tensor._make(np.sum(self.data, axis=axis, keepdims=keepdims), "sum", (self,), (axis, keepdims))
        # END SOLUTION

    def mean(self, axis=None, keepdims: bool = False) -> "Tensor":
        self._check_axis("mean", axis)
        if self.size == 0:
            raise TensorError(f"mean: tensor of shape {self.shape} is empty")
        # BEGIN SOLUTION
        axis = tuple(axis) if isinstance(axis, list) else axis
        data = np.mean(self.data, axis=axis, keepdims=keepdims)
        if self.data.dtype.kind != "f":
            data = data.astype(DEFAULT_FLOAT)
        return Tensor._make(np.asarray(data), "mean", (self,), (axis, keepdims))
        # END SOLUTION

    def var(self, axis=None, keepdims: bool = False, unbiased: bool = False) -> "Tensor":
        """Variance, composed from mean, sub and mul (so it is differentiable for free)."""
        # BEGIN SOLUTION
        centred = self - self.mean(axis=axis, keepdims=True)
        sq = (centred * centred).sum(axis=axis, keepdims=keepdims)
        n = self.size // max(sq.size, 1)
        return sq / (n - 1 if unbiased else n)
        # END SOLUTION

    def _extreme(self, op: str, fn, axis, keepdims) -> "Tensor":
        self._check_axis(op, axis)
        if self.size == 0:
            raise TensorError(f"{op}: tensor of shape {self.shape} is empty")
        # BEGIN SOLUTION
        out = fn(self.data, axis=axis, keepdims=keepdims)
        return Tensor._make(np.asarray(out), op, (self,), (axis, keepdims, out))
        # END SOLUTION

    def max(self, axis=None, keepdims: bool = False) -> "Tensor":
        """Largest value over `axis`; ties share the gradient equally."""
        return self._extreme("max", np.max, axis, keepdims)

    def min(self, axis=None, keepdims: bool = False) -> "Tensor":
        return self._extreme("min", np.min, axis, keepdims)

    def argmax(self, axis=None, keepdims: bool = False) -> "Tensor":
        """Index of the largest value (int64, no gradient)."""
        self._check_axis("argmax", axis)
        # BEGIN SOLUTION
        return Tensor(np.argmax(self.data, axis=axis, keepdims=keepdims))
        # END SOLUTION

    # ---- shape manipulation ------------------------------------------------------------------------
    def reshape(self, *shape) -> "Tensor":
        """Same data, new shape; one dimension may be -1 (inferred)."""
        shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        # BEGIN SOLUTION
        try:
            data = self.data.reshape(shape)
        except ValueError:
            raise TensorError(f"reshape: cannot reshape a tensor of shape {self.shape} ({self.size} elements) "
                              f"into {shape}") from None
        return Tensor._make(data, "reshape", (self,))
        # END SOLUTION

    view = reshape

    def permute(self, *axes) -> "Tensor":
        """Reorder dimensions: x.permute(0, 2, 1) swaps the last two of a 3-D tensor."""
        axes = tuple(axes[0]) if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else axes
        if sorted(a % max(self.ndim, 1) for a in axes) != list(range(self.ndim)):
            raise TensorError(f"permute: {axes} is not an ordering of the {self.ndim} dimensions of shape {self.shape}")
        # BEGIN SOLUTION
        return Tensor._make(np.transpose(self.data, axes), "permute", (self,), (axes,))
        # END SOLUTION

    def transpose(self, dim0: int = -2, dim1: int = -1) -> "Tensor":
        """Swap two dimensions (by default the last two, the matrix transpose)."""
        if self.ndim < 2:
            raise TensorError(f"transpose: needs at least 2 dimensions, got shape {self.shape}")
        axes = list(range(self.ndim))
        axes[dim0], axes[dim1] = axes[dim1], axes[dim0]
        return self.permute(*axes)

    @property
    def T(self) -> "Tensor":
        return self.permute(*reversed(range(self.ndim)))

    def squeeze(self, axis=None) -> "Tensor":
        """Drop dimensions of size 1 (all of them, or just `axis`)."""
        if axis is None:
            shape = tuple(s for s in self.shape if s != 1)
        else:
            if self.shape[axis] != 1:
                raise TensorError(f"squeeze: dimension {axis} of shape {self.shape} has size {self.shape[axis]}, not 1")
            shape = self.shape[:axis % self.ndim] + self.shape[axis % self.ndim + 1:]
        return self.reshape(shape)

    def unsqueeze(self, axis: int) -> "Tensor":
        """Insert a dimension of size 1 at `axis`."""
        axis = axis % (self.ndim + 1)
        return self.reshape(self.shape[:axis] + (1,) + self.shape[axis:])

    def flatten(self, start_dim: int = 0) -> "Tensor":
        """Merge dimensions start_dim.. into one: (N, C, H, W).flatten(1) -> (N, C*H*W)."""
        start = start_dim % max(self.ndim, 1)
        return self.reshape(self.shape[:start] + (-1,))

    def __getitem__(self, index) -> "Tensor":
        """Basic slicing and NumPy fancy indexing; integer tensors may be used as indices."""
        if isinstance(index, Tensor):
            index = index.data
        elif isinstance(index, tuple):
            index = tuple(i.data if isinstance(i, Tensor) else i for i in index)
        # BEGIN SOLUTION
        try:
            data = self.data[index]
        except IndexError as exc:
            raise TensorError(f"getitem: index {index!r} is invalid for shape {self.shape}: {exc}") from None
        return Tensor._make(np.asarray(data), "getitem", (self,), (index,))
        # END SOLUTION


# ---- functions that build tensors -------------------------------------------------------------------
def tensor(data, dtype=None, requires_grad: bool = False) -> Tensor:
    return Tensor(data, dtype=dtype, requires_grad=requires_grad)


def zeros(*shape, dtype=DEFAULT_FLOAT, requires_grad: bool = False) -> Tensor:
    shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
    return Tensor(np.zeros(shape, dtype=dtype), requires_grad=requires_grad)


def ones(*shape, dtype=DEFAULT_FLOAT, requires_grad: bool = False) -> Tensor:
    shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
    return Tensor(np.ones(shape, dtype=dtype), requires_grad=requires_grad)


def randn(*shape, requires_grad: bool = False) -> Tensor:
    """Standard normal samples (float32) from TinyTorch's seeded generator."""
    shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
    return Tensor(_rng.standard_normal(shape, dtype=DEFAULT_FLOAT), requires_grad=requires_grad)


def arange(*args, dtype=None) -> Tensor:
    return Tensor(np.arange(*args, dtype=dtype))


def cat(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """Join tensors along an existing axis; all other dimensions must match."""
    tensors = list(tensors)
    if not tensors:
        raise TensorError("cat: needs at least one tensor")
    # BEGIN SOLUTION
    try:
        data = np.concatenate([t.data for t in tensors], axis=axis)
    except (ValueError, np.exceptions.AxisError):
        raise TensorError(f"cat: shapes {[t.shape for t in tensors]} differ outside axis {axis}") from None
    sizes = tuple(t.shape[axis] for t in tensors)
    return Tensor._make(data, "cat", tuple(tensors), (axis, sizes))
    # END SOLUTION


def stack(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """Join same-shaped tensors along a new axis."""
    tensors = list(tensors)
    if not tensors:
        raise TensorError("stack: needs at least one tensor")
    if len({t.shape for t in tensors}) != 1:
        raise TensorError(f"stack: all tensors need the same shape, got {[t.shape for t in tensors]}")
    return cat([t.unsqueeze(axis) for t in tensors], axis=axis)


def where(condition, a, b) -> Tensor:
    """Element-wise choice: a where condition is True, else b (gradients flow to both sides)."""
    cond = condition.data if isinstance(condition, Tensor) else np.asarray(condition, dtype=bool)
    a = a if isinstance(a, Tensor) else Tensor(a)
    return a.masked_fill(~cond, 0.0) + a._lift(b).masked_fill(cond, 0.0)


def as_tensors(values: Iterable) -> list[Tensor]:
    return [v if isinstance(v, Tensor) else Tensor(v) for v in values]
