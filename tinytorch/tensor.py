"""Module 02 - Tensor: an n-dimensional array that remembers how it was made.

A `Tensor` wraps a NumPy array (`.data`). Floating-point data is float32 unless you ask for another
dtype, because float32 is what deep-learning hardware and BLAS run fastest; integer dtypes are kept
as they are, for class labels and token ids.

Dtype rules (the same as PyTorch's where it matters):
- Python numbers, lists and NumPy float arrays become float32; pass `dtype=np.float64` to keep float64
  (gradient checks do, for precise finite differences); integers and bools keep their dtype.
- A Python number or array combined with a tensor takes the tensor's dtype (`x * 0.5` stays float32).
- integer (op) float32 -> float32; float64 survives only if an operand already is float64.
- `/` of two integer tensors, exp, log and sqrt of integers give float32.

Every operation here computes its result with NumPy and hands it to `Tensor._make`, which records
the operation's name, its inputs and, by name, whatever the backward pass will need (the "context",
`Tensor._make(data, "sum", (x,), axis=axis, keepdims=keepdims)` -> `ctx.saved.axis`) - but only
when some input requires a gradient and gradient mode is on. Each op's docstring says what it
records and saves: that is the one list of those names. The rules that turn an output gradient into
input gradients live in module 09 (`tinytorch/autograd.py`, named `_<op>`); nothing in this file
needs them until you call `.backward()`.

When an operation cannot work on its input it raises `TensorError` naming the operation, the shapes
and, where they matter, the dtypes - never a bare NumPy error from deep inside. The given helpers
`numpy_call` (NumPy's errors in the course's words) and `keep_float32` (the dtype rule) do that
plumbing, so what you write is the maths.

Shapes in docstrings: `(N, D)` means a 2-D tensor with N rows and D columns; `(..., M, K)` means any
number of leading (batch) dimensions.
"""
from __future__ import annotations

import functools
import math
import operator
from collections import namedtuple
from types import SimpleNamespace
from typing import Iterable, Sequence

import numpy as np

from tinytorch.devices import CPU, Device, check_device

DEFAULT_FLOAT = np.float32
_F64 = np.dtype(np.float64)


class TensorError(ValueError):
    """A TinyTorch operation got input it cannot work with; the message names the op and shapes."""


class _GradMode:
    """Global switch for graph recording (`tinytorch.autograd.no_grad` turns it off)."""

    enabled = True


grad_mode = _GradMode()


class Saved(SimpleNamespace):
    """The values one op saved for its backward rule, read by name: `ctx.saved.axis`.

    `Tensor._make(data, "sum", (x,), axis=1, keepdims=False)` saves `axis` and `keepdims`. Asking
    for a name the forward did not save is an AttributeError that lists the names it did save.
    """

    def __getattr__(self, name: str):  # only called for a name that was not saved
        if name.startswith("__"):
            raise AttributeError(name)
        raise AttributeError(f"no saved value named {name!r}; the forward op saved "
                             f"{', '.join(self.__dict__) or 'nothing'} (see its docstring)")

    def __repr__(self) -> str:
        return f"Saved({', '.join(self.__dict__)})"


class Context:
    """What the backward rule of one operation needs: its name, its inputs, and saved values by name."""

    __slots__ = ("op", "parents", "saved")

    def __init__(self, op: str, parents: tuple, saved: dict):
        self.op = op
        self.parents = parents
        self.saved = Saved(**saved) if saved else _NOTHING_SAVED

    def __repr__(self) -> str:
        return f"Context(op={self.op!r}, parents={len(self.parents)}, saved={self.saved!r})"


_NOTHING_SAVED = Saved()  # shared by every op that saves nothing (rules only read ctx.saved)


class GradFn:
    """What PyTorch shows as `tensor.grad_fn`: a read-only view of the Context of a recorded op.

    `name()` is PyTorch-styled ("MatmulBackward"); `next_functions` gives, per input, the GradFn of
    the op that made it, an AccumulateGrad for a leaf that requires grad, or None.
    """

    __slots__ = ("context",)

    def __init__(self, context: Context):
        self.context = context

    def name(self) -> str:
        return "".join(part[:1].upper() + part[1:] for part in self.context.op.split("_")) + "Backward"

    @property
    def next_functions(self) -> tuple:
        return tuple(((GradFn(p._ctx) if p._ctx is not None else AccumulateGrad(p) if p.requires_grad else None), 0)
                     for p in self.context.parents)

    def __repr__(self) -> str:
        return f"<{self.name()}>"


class AccumulateGrad:
    """The end of a `next_functions` chain: the leaf whose `.grad` receives the gradient."""

    __slots__ = ("variable",)

    def __init__(self, variable):
        self.variable = variable

    def name(self) -> str:
        return "AccumulateGrad"

    next_functions = ()

    def __repr__(self) -> str:
        return "<AccumulateGrad>"


ValuesIndices = namedtuple("ValuesIndices", ["values", "indices"])
ValuesIndices.__doc__ = "What `x.max(dim)` / `tt.max(x, dim)` return, as in PyTorch: the values and where they are."


def torch_dims(fn):
    """Let `fn`, written with NumPy's `axis=`/`keepdims=`, also take PyTorch's `dim=`/`keepdim=`.

    Given glue, not maths: it renames the keywords and calls `fn`; a call without keywords costs one
    extra function call.
    """
    @functools.wraps(fn)
    def with_torch_names(*args, **kwargs):
        if kwargs:
            _rename_dims(fn.__name__, kwargs)
        return fn(*args, **kwargs)
    return with_torch_names


def torch_reduction_dims(fn):
    """`torch_dims` for reductions `fn(self, axis=None, keepdims=False, ...)`, kept cheap for the hot
    path: the wrapper has the same leading parameters, so a call costs no keyword repacking."""
    @functools.wraps(fn)
    def with_torch_names(self, axis=None, keepdims=False, *args, dim=None, keepdim=None, **kwargs):
        if dim is not None:
            if axis is not None:
                raise TensorError(f"{fn.__name__}: give dim (PyTorch's name) or axis (NumPy's), not both")
            axis = dim
        if keepdim is not None:
            keepdims = keepdim
        return fn(self, axis, keepdims, *args, **kwargs)
    return with_torch_names


def _rename_dims(op: str, kwargs: dict) -> None:
    for torch_name, numpy_name in (("dim", "axis"), ("keepdim", "keepdims")):
        if torch_name in kwargs:
            if numpy_name in kwargs:
                raise TensorError(f"{op}: give {torch_name}= (PyTorch's name) or {numpy_name}= (NumPy's), not both")
            kwargs[numpy_name] = kwargs.pop(torch_name)


_rng = np.random.default_rng(0)


def manual_seed(seed: int) -> None:
    """Seed TinyTorch's random generator (weight init, dropout, shuffling) for reproducible runs."""
    global _rng
    _rng = np.random.default_rng(seed)


def get_rng() -> np.random.Generator:
    """The random generator every TinyTorch component draws from."""
    return _rng


def _shape_str(*tensors) -> str:
    """'(2, 3) and (4,)': the shapes of tensors or arrays, for error messages."""
    return " and ".join(str(tuple(np.shape(t.data if isinstance(t, Tensor) else t))) for t in tensors)


def _dtype_str(*tensors) -> str:
    return " and ".join(str(t.data.dtype if isinstance(t, Tensor) else np.asarray(t).dtype) for t in tensors)


# ---- given: NumPy's errors in the course's words, and the float32 rule --------------------------------
BROADCASTING = "compared from the right, each pair of dimensions must be equal or one of them 1"
INDEXING = ("use ints, slices, None, ..., integer arrays (each within the axis' size) or a bool mask "
            "of the indexed axes' shape")


def _describe(arg) -> str:
    """An argument of a failed NumPy call, for the message: arrays by shape and dtype, the rest by repr."""
    if isinstance(arg, np.ndarray):
        return f"{tuple(arg.shape)} {arg.dtype}"
    text = repr(arg)
    return text if len(text) <= 60 else text[:57] + "..."


def numpy_call(op: str, fn, *args, explain: str = BROADCASTING):
    """`fn(*args)`, with NumPy's error turned into a TensorError that names `op` and the arguments.

    A ValueError or IndexError (shapes that do not fit, an index out of range) says what must hold
    (`explain`); a TypeError (NumPy has no such operation for these dtypes) names the dtypes. NumPy's
    own words follow in brackets. When nothing goes wrong this costs one function call.

        numpy_call("add", np.add, a, b)   ->  TensorError("add: fails for (2, 3) float32 and (4,) float32:
                                               compared from the right, ... (NumPy: ...)")
    """
    try:
        return fn(*args)
    except (ValueError, IndexError) as exc:
        if isinstance(exc, TensorError):
            raise
        what = " and ".join(_describe(a) for a in args if a is not None)
        raise TensorError(f"{op}: fails for {what}: {explain} (NumPy: {exc})") from None
    except TypeError as exc:
        what = " and ".join(_describe(a) for a in args if a is not None)
        raise TensorError(f"{op}: not defined for {what} (NumPy: {exc})") from None


def keep_float32(result: np.ndarray, *inputs: np.ndarray) -> np.ndarray:
    """The dtype rule for results: float64 only if an input was float64, else float32.

    NumPy promotes int (op) float32, int / int and the mean of ints to float64; a framework keeps
    float32 (half the memory, twice the BLAS speed) unless you asked for float64 yourself.
    """
    if result.dtype is _F64 and all(x.dtype is not _F64 for x in inputs):
        return result.astype(DEFAULT_FLOAT)
    return result


def _shape_arg(shape: tuple) -> tuple:
    """Accept both f(2, 3) and f((2, 3)) for shape arguments, as PyTorch does."""
    return tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape


def _as_array(value, dtype=None) -> np.ndarray:
    """Convert tensors, arrays, scalars and nested lists to an ndarray; floats become float32.

    A Tensor keeps its dtype (so `Tensor(t)` of a float64 tensor stays float64); everything else
    that is floating point becomes float32 unless `dtype` says otherwise. (Tensor.__init__ then
    rejects arrays that do not hold numbers, such as strings.)
    """
    # BEGIN SOLUTION convert the data to an ndarray (floats to float32 unless dtype is given)
    if isinstance(value, Tensor):
        return value.data if dtype is None else value.data.astype(dtype, copy=False)
    arr = numpy_call("Tensor", np.asarray, value, dtype, explain="nested lists must be rectangular and hold numbers")
    if dtype is None and arr.dtype.kind == "f" and arr.dtype != DEFAULT_FLOAT:
        arr = arr.astype(DEFAULT_FLOAT)
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
        if self.data.dtype.kind not in "fiub":
            raise TensorError(f"Tensor: unsupported dtype {self.data.dtype}; use a float, integer or bool array")
        if requires_grad and self.data.dtype.kind != "f":
            raise TensorError(
                f"Tensor: only floating-point tensors can require gradients, got dtype {self.data.dtype} "
                "(integer tensors hold labels or indices, which have no gradient)")
        self.requires_grad = bool(requires_grad)
        self.grad: Tensor | None = None
        self._ctx: Context | None = None

    # ---- plumbing given to you -------------------------------------------------------------------
    @staticmethod
    def _make(data: np.ndarray, op: str, parents: tuple, **saved) -> "Tensor":
        """Wrap the result of an op; record the graph only when a parent needs a gradient.

        `op` names the gradient rule (module 09 looks it up by this name), `parents` are the input
        tensors, and the keyword arguments are what the rule needs, read back by name:
        `Tensor._make(data, "pow", (x,), p=2.0)` -> `ctx.saved.p` in the rule.
        NumPy returns scalars (np.float32) instead of 0-d arrays from ufuncs on 0-d input; `.data`
        is always an ndarray, so those are wrapped here once for every op.
        """
        out = _new_tensor(Tensor)
        out.data = data if type(data) is np.ndarray else np.asarray(data)
        out.grad = None
        if grad_mode.enabled:
            for p in parents:
                if p.requires_grad:
                    out.requires_grad = True
                    out._ctx = Context(op, parents, saved)
                    return out
        out.requires_grad = False
        out._ctx = None
        return out

    @staticmethod
    def _wrap(data: np.ndarray) -> "Tensor":
        """A leaf Tensor around an ndarray we made ourselves (no conversion, no checks: fast)."""
        out = _new_tensor(Tensor)
        out.data = data if type(data) is np.ndarray else np.asarray(data)
        out.requires_grad = False
        out.grad = None
        out._ctx = None
        return out

    def _lift(self, other, op: str = "Tensor") -> "Tensor":
        """Turn a Python number or array into a Tensor whose dtype suits `self` (see the dtype rules)."""
        if isinstance(other, Tensor):
            return other
        dtype = self.data.dtype
        if isinstance(other, (int, float)):  # the common case: x * 0.5, x + 1
            if isinstance(other, float) and dtype.kind != "f":
                dtype = DEFAULT_FLOAT
            elif dtype.kind == "b" and not isinstance(other, bool):
                dtype = np.dtype(np.int64)  # mask + 1 counts, it does not stay a bool
            try:
                return Tensor._wrap(np.array(other, dtype=dtype))
            except OverflowError:
                raise TensorError(f"{op}: the number {other} does not fit in the tensor's dtype {dtype}") from None
        try:
            arr = np.asarray(other)
        except (ValueError, TypeError) as exc:
            raise TensorError(f"{op}: cannot combine a tensor with {type(other).__name__} ({exc})") from None
        if arr.dtype.kind not in "fiub":
            raise TensorError(f"{op}: cannot combine a tensor of dtype {dtype} with "
                              f"{type(other).__name__} of dtype {arr.dtype}; use numbers, arrays or Tensors")
        if dtype.kind == "f":
            arr = arr.astype(dtype, copy=False)
        elif arr.dtype.kind == "f":
            arr = arr.astype(DEFAULT_FLOAT, copy=False)
        return Tensor._wrap(arr)

    def _floating(self) -> "Tensor":
        """self if it is floating point, else a float32 copy (ints have no gradient to lose)."""
        return self if self.data.dtype.kind == "f" else Tensor._wrap(self.data.astype(DEFAULT_FLOAT))

    def backward(self, gradient=None, retain_graph=None, create_graph: bool = False, grad=None) -> None:
        """Fill `.grad` of every leaf this tensor depends on (see module 09).

        `gradient` (PyTorch's name; `grad` is the older one here) is d(loss)/d(self) for a non-scalar
        self. The graph is kept after backward, so `retain_graph` changes nothing; gradients of
        gradients (`create_graph=True`) are not supported.
        """
        if create_graph or grad is not None:  # rare: checked off the common path (tiny ops are timed)
            if create_graph:
                raise TensorError("backward: create_graph=True (gradients of gradients) is not supported by TinyTorch")
            if gradient is not None:
                raise TensorError("backward: give gradient= or grad=, not both")
            gradient = grad
        _autograd().backward(self, gradient)

    # ---- properties --------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    def size(self, dim: int | None = None):
        """The shape, as PyTorch's `x.size()`; `x.size(d)` is the length of dimension d.

        (NumPy's `.size`, the number of elements, is `x.numel()` here, as in PyTorch.)
        """
        if dim is None:
            return self.data.shape
        try:
            return self.data.shape[dim]
        except (IndexError, TypeError):
            raise TensorError(f"size: dimension {dim!r} is out of range for shape {self.shape}") from None

    def numel(self) -> int:
        """Number of elements."""
        return self.data.size

    def dim(self) -> int:
        """Number of dimensions (PyTorch's name for ndim)."""
        return self.data.ndim

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
        """The same data (and dtype), cut from the graph: no gradient flows through it."""
        return Tensor._wrap(self.data)

    def clone(self) -> "Tensor":
        """A copy of the data that stays in the graph (recorded as a same-shape "reshape", rule `_reshape`)."""
        return Tensor._make(self.data.copy(), "reshape", (self,))

    def astype(self, dtype) -> "Tensor":
        """A copy converted to `dtype`, cut from the graph."""
        return Tensor._wrap(self.data.astype(dtype))

    def float(self) -> "Tensor":
        return self.to(DEFAULT_FLOAT)

    def double(self) -> "Tensor":
        return self.to(np.float64)

    def long(self) -> "Tensor":
        return self.to(np.int64)

    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        """Switch gradient tracking on (or off) for this leaf, in place; returns self."""
        if requires_grad and self.data.dtype.kind != "f":
            raise TensorError(f"requires_grad_: only floating-point tensors can require gradients, got dtype {self.dtype}")
        self.requires_grad = bool(requires_grad)
        return self

    def zero_grad(self) -> None:
        self.grad = None

    def __len__(self) -> int:
        if self.data.ndim == 0:
            raise TensorError("len() of a 0-d tensor")
        return self.data.shape[0]

    def __iter__(self):
        """Iterate over the first dimension, like a list of rows."""
        if self.data.ndim == 0:
            raise TensorError("iter: cannot iterate over a 0-d tensor")
        for i in range(self.data.shape[0]):
            yield self[i]

    def __bool__(self) -> bool:
        if self.data.size != 1:
            raise TensorError(f"bool: the truth value of a tensor of shape {self.shape} is ambiguous; "
                              "use .any() or .all() (e.g. (x > 0).all())")
        return bool(self.data)

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        """A one-element integer tensor can index a list: classes[pred.argmax()] (as in PyTorch)."""
        if self.data.dtype.kind not in "iu" or self.data.size != 1:
            raise TensorError(f"index: only a one-element integer tensor can be used as an index, got dtype "
                              f"{self.dtype} and shape {self.shape}")
        return int(self.data.item())

    def __format__(self, spec: str) -> str:
        return format(self.item(), spec) if spec and self.data.size == 1 else format(str(self), spec)

    def __array__(self, dtype=None, copy=None):
        """np.asarray(t) shares t.data; np.array(t, copy=True) gets its own copy."""
        data = self.data if dtype is None else self.data.astype(dtype, copy=False)
        return data.copy() if copy and data is self.data else data

    def __repr__(self) -> str:
        body = np.array2string(self.data, precision=4, separator=", ", threshold=20, edgeitems=2)
        extra = ", requires_grad=True" if self.requires_grad else ""
        if self.data.dtype != DEFAULT_FLOAT:
            extra = f", dtype={self.data.dtype}" + extra
        return f"Tensor({body}{extra})"

    __hash__ = object.__hash__

    # ---- element-wise arithmetic -------------------------------------------------------------------
    def _binary(self, other, op: str, fn) -> "Tensor":
        """Apply NumPy `fn` element-wise with broadcasting: (2, 3) (op) (3,) -> (2, 3).

        Records `op` ("add", "sub", "mul", "div", "maximum" or "minimum"; rules `_add` ... in
        autograd.py) with parents (self, other) and saves nothing: the rules read the parents. The
        result follows the dtype rule (`keep_float32`): int (op) float32 is float32.
        """
        other = other if isinstance(other, Tensor) else self._lift(other, op)  # (inline: the hot path)
        # BEGIN SOLUTION apply fn with broadcasting (numpy_call) and the dtype rule, then Tensor._make
        data = keep_float32(numpy_call(op, fn, self.data, other.data), self.data, other.data)
        return Tensor._make(data, op, (self, other))
        # END SOLUTION

    def __add__(self, other):
        return self._binary(other, "add", np.add)

    def __radd__(self, other):
        return self._lift(other, "add")._binary(self, "add", np.add)

    def __sub__(self, other):
        return self._binary(other, "sub", np.subtract)

    def __rsub__(self, other):
        return self._lift(other, "sub")._binary(self, "sub", np.subtract)

    def __mul__(self, other):
        return self._binary(other, "mul", np.multiply)

    def __rmul__(self, other):
        return self._lift(other, "mul")._binary(self, "mul", np.multiply)

    def __truediv__(self, other):
        return self._binary(other, "div", np.true_divide)

    def __rtruediv__(self, other):
        return self._lift(other, "div")._binary(self, "div", np.true_divide)

    def __pow__(self, exponent) -> "Tensor":
        """Element-wise power with a constant (Python number) exponent.

        Records "pow" (rule `_pow`), saving `p`, the exponent as a float.
        """
        if isinstance(exponent, Tensor) or not isinstance(exponent, (int, float, np.integer, np.floating)):
            raise TensorError(f"pow: the exponent must be a Python number, got {type(exponent).__name__}; "
                              "for a tensor exponent use (b * a.log()).exp()")
        # integers keep their dtype only for whole, non-negative exponents (2 ** -1 is not an integer)
        x = self if float(exponent).is_integer() and exponent >= 0 else self._floating()
        # BEGIN SOLUTION
        p = float(exponent)
        if p == 2.0:
            data = x.data * x.data
        elif p == 0.5 and x.data.dtype.kind == "f":
            data = np.sqrt(x.data)
        else:
            data = np.power(x.data, x.data.dtype.type(p))
        return Tensor._make(data, "pow", (x,), p=p)
        # END SOLUTION

    def __rpow__(self, base) -> "Tensor":
        """number ** tensor, as exp(tensor * log(number)); the number must be positive."""
        if not isinstance(base, (int, float)) or base <= 0:
            raise TensorError(f"pow: number ** tensor needs a positive Python number as the base, got {base!r}")
        return (self._floating() * math.log(base)).exp()

    def __neg__(self):
        """-x. Records "neg" (rule `_neg`), saving nothing."""
        if self.data.dtype.kind == "b":
            raise TensorError(f"neg: cannot negate a bool tensor (shape {self.shape}); use ~mask for logical not")
        # BEGIN SOLUTION
        return Tensor._make(np.negative(self.data), "neg", (self,))
        # END SOLUTION

    def exp(self) -> "Tensor":
        """e ** x. Records "exp" (rule `_exp`), saving `out`, the result: exp is its own derivative."""
        x = self._floating()
        # BEGIN SOLUTION
        out = np.exp(x.data)
        return Tensor._make(out, "exp", (x,), out=out)
        # END SOLUTION

    def log(self) -> "Tensor":
        """Natural logarithm; log(0) is -inf, as in NumPy and PyTorch. Records "log" (rule `_log`), saving nothing."""
        x = self._floating()
        # BEGIN SOLUTION
        return Tensor._make(np.log(x.data), "log", (x,))
        # END SOLUTION

    def sqrt(self) -> "Tensor":
        """Square root. Records "sqrt" (rule `_sqrt`), saving `out`, the result (d sqrt = 0.5 / sqrt)."""
        x = self._floating()
        # BEGIN SOLUTION
        out = np.sqrt(x.data)
        return Tensor._make(out, "sqrt", (x,), out=out)
        # END SOLUTION

    def abs(self) -> "Tensor":
        """|x|. Records "abs" (rule `_abs`), saving nothing."""
        # BEGIN SOLUTION
        return Tensor._make(np.abs(self.data), "abs", (self,))
        # END SOLUTION

    def sin(self) -> "Tensor":
        """Element-wise sine.

        Records "sin" (rule `_sin`), saving nothing: d sin(x) = cos(x) dx needs only the parent.
        """
        x = self._floating()
        # BEGIN SOLUTION
        return Tensor._make(np.sin(x.data), "sin", (x,))
        # END SOLUTION

    def cos(self) -> "Tensor":
        """Element-wise cosine.

        Records "cos" (rule `_cos`), saving nothing: d cos(x) = -sin(x) dx needs only the parent.
        """
        x = self._floating()
        # BEGIN SOLUTION
        return Tensor._make(np.cos(x.data), "cos", (x,))
        # END SOLUTION

    def clip(self, low=None, high=None) -> "Tensor":
        """Limit values to [low, high]; either bound may be None. The gradient is 0 where clipped.

        Records "clip" (rule `_clip`), saving `low` and `high`.
        """
        if low is None and high is None:
            raise TensorError("clip: give at least one of low and high")
        for bound in (low, high):
            if bound is not None and not isinstance(bound, (int, float, np.integer, np.floating)):
                raise TensorError(f"clip: bounds must be numbers or None, got {type(bound).__name__}")
        x = self if isinstance(low, (int, np.integer, type(None))) and isinstance(high, (int, np.integer, type(None))) \
            else self._floating()
        # BEGIN SOLUTION
        return Tensor._make(np.clip(x.data, low, high), "clip", (x,), low=low, high=high)
        # END SOLUTION

    def clamp(self, min=None, max=None) -> "Tensor":
        """PyTorch's name (and keywords) for clip: x.clamp(min=0)."""
        return self.clip(min, max)

    def maximum(self, other) -> "Tensor":
        """Element-wise maximum of two tensors (broadcasting); ties send the gradient to `self`.

        Records "maximum" (rule `_maximum`) through `_binary`.
        """
        return self._binary(other, "maximum", np.maximum)

    def minimum(self, other) -> "Tensor":
        """Element-wise minimum of two tensors (broadcasting); ties send the gradient to `self`.

        Records "minimum" (rule `_minimum`) through `_binary`.
        """
        return self._binary(other, "minimum", np.minimum)

    def masked_fill(self, mask, value: float) -> "Tensor":
        """Copy of self with `value` where the boolean `mask` (broadcastable to self) is True.

        Records "masked_fill" (rule `_masked_fill`), saving `mask`: the filled places get no gradient.
        """
        mask = mask.data if isinstance(mask, Tensor) else np.asarray(mask)
        if mask.dtype != np.bool_:
            raise TensorError(f"masked_fill: mask must be bool, got dtype {mask.dtype} (shape {mask.shape})")
        if mask.shape != self.shape:
            try:
                fits = np.broadcast_shapes(mask.shape, self.shape) == self.shape
            except ValueError:
                fits = False
            if not fits:
                raise TensorError(f"masked_fill: mask shape {mask.shape} does not broadcast to the tensor's shape "
                                  f"{self.shape}; {BROADCASTING}, and the tensor's shape may not grow")
        if isinstance(value, Tensor):
            value = value.item()
        try:
            fill = self.data.dtype.type(value)
        except (OverflowError, ValueError, TypeError):
            raise TensorError(f"masked_fill: value {value!r} does not fit the tensor's dtype {self.dtype}") from None
        # BEGIN SOLUTION
        return Tensor._make(np.where(mask, fill, self.data), "masked_fill", (self,), mask=mask)
        # END SOLUTION

    # ---- comparisons and logic (no gradient: the result is bool) -----------------------------------
    def _compare(self, other, fn, op) -> "Tensor":
        other = self._lift(other, op)
        return Tensor._wrap(numpy_call(op, fn, self.data, other.data))

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

    def _logical(self, other, fn, op) -> "Tensor":
        if self.data.dtype.kind not in "biu" or (isinstance(other, Tensor) and other.dtype.kind not in "biu"):
            raise TensorError(f"{op}: needs bool or integer tensors, got dtypes {_dtype_str(self, other)} "
                              f"(shapes {_shape_str(self, other)})")
        return self._compare(other, fn, op)

    def __and__(self, other):
        return self._logical(other, np.bitwise_and, "and")

    def __or__(self, other):
        return self._logical(other, np.bitwise_or, "or")

    def __xor__(self, other):
        return self._logical(other, np.bitwise_xor, "xor")

    def __invert__(self):
        if self.data.dtype.kind not in "biu":
            raise TensorError(f"invert: ~ needs a bool or integer tensor, got dtype {self.dtype} (shape {self.shape})")
        return Tensor._wrap(np.invert(self.data))

    def any(self) -> bool:
        return bool(self.data.any())

    def all(self) -> bool:
        return bool(self.data.all())

    # ---- matrix multiplication ---------------------------------------------------------------------
    def matmul(self, other) -> "Tensor":
        """(..., M, K) @ (..., K, N) -> (..., M, N), batch dims broadcast; 1-D operands as in NumPy.

        Records "matmul" (rule `_matmul`), saving nothing: dA = dC @ B^T and dB = A^T @ dC need
        only the parents.
        """
        other = self._lift(other, "matmul")
        a, b = self.data, other.data
        if a.ndim == 0 or b.ndim == 0:
            raise TensorError(f"matmul: both operands need at least 1 dimension, got shapes {_shape_str(a, b)}")
        k_left, k_right = a.shape[-1], (b.shape[-2] if b.ndim > 1 else b.shape[0])
        if k_left != k_right:
            raise TensorError(
                f"matmul: shapes {_shape_str(a, b)} are not aligned: the last dimension of the left "
                f"operand ({k_left}) must equal the {'second-to-last' if b.ndim > 1 else 'only'} dimension "
                f"of the right operand ({k_right})")
        # BEGIN SOLUTION
        data = numpy_call("matmul", np.matmul, a, b, explain="the batch dimensions (all but the last two) "
                          f"must broadcast: {BROADCASTING}")
        return Tensor._make(keep_float32(data, a, b), "matmul", (self, other))
        # END SOLUTION

    __matmul__ = matmul

    def __rmatmul__(self, other):
        return self._lift(other, "matmul").matmul(self)

    # ---- reductions --------------------------------------------------------------------------------
    def _check_axis(self, op: str, axis):
        """Validate `axis` (an int or a tuple of ints, negative counts from the end); lists become tuples."""
        ndim = self.data.ndim
        many = isinstance(axis, (tuple, list))
        axes = tuple(axis) if many else (axis,)
        seen = set()
        for ax in axes:
            if not isinstance(ax, (int, np.integer)) or isinstance(ax, bool):
                raise TensorError(f"{op}: axis must be an int or a tuple of ints, got {axis!r}")
            if not -ndim <= ax < ndim:
                raise TensorError(f"{op}: axis {ax} is out of range for a tensor of shape {self.shape} "
                                  f"({ndim} dimensions, so axes {-ndim}..{ndim - 1})")
            if ax % ndim in seen:
                raise TensorError(f"{op}: axis {ax} appears twice in {axis!r} (shape {self.shape})")
            seen.add(ax % ndim)
        return tuple(int(a) for a in axes) if many else int(axis)

    def _reduced_count(self, axis) -> int:
        """How many elements each output element of a reduction over `axis` combines."""
        if axis is None:
            return self.data.size
        return math.prod(self.data.shape[a] for a in ((axis,) if isinstance(axis, int) else axis))

    @torch_reduction_dims
    def sum(self, axis=None, keepdims: bool = False) -> "Tensor":
        """Sum over `axis` (int, tuple or None for all).

        Records "sum" (rule `_sum`), saving `axis` (checked: an int, a tuple or None) and `keepdims`.
        """
        if axis is not None:
            axis = self._check_axis("sum", axis)
        # BEGIN SOLUTION
        data = self.data.sum(axis=axis, keepdims=keepdims)
        return Tensor._make(data, "sum", (self,), axis=axis, keepdims=keepdims)
        # END SOLUTION

    @torch_reduction_dims
    def mean(self, axis=None, keepdims: bool = False) -> "Tensor":
        """Average over `axis` (float32 for integer tensors).

        Records "mean" (rule `_mean`), saving `axis` and `keepdims`, like `sum`.
        """
        if axis is not None:
            axis = self._check_axis("mean", axis)
        if self.data.size == 0 and self._reduced_count(axis) == 0:
            raise TensorError(f"mean: cannot average over an empty axis (shape {self.shape}, axis {axis})")
        # BEGIN SOLUTION
        data = keep_float32(self.data.mean(axis=axis, keepdims=keepdims), self.data)
        return Tensor._make(data, "mean", (self,), axis=axis, keepdims=keepdims)
        # END SOLUTION

    @torch_reduction_dims
    def var(self, axis=None, keepdims: bool = False, unbiased: bool = False) -> "Tensor":
        """Variance, composed from mean, sub, mul and sum (so it is differentiable for free).

        `unbiased=True` divides by n - 1 (sample variance), the default by n (as BatchNorm does).
        """
        if axis is not None:
            axis = self._check_axis("var", axis)
        n = self._reduced_count(axis)
        if n < (2 if unbiased else 1):
            raise TensorError(f"var: needs at least {2 if unbiased else 1} element(s) per output, got {n} "
                              f"(shape {self.shape}, axis {axis})")
        # BEGIN SOLUTION
        centred = self - self.mean(axis=axis, keepdims=True)
        return (centred * centred).sum(axis=axis, keepdims=keepdims) / (n - 1 if unbiased else n)
        # END SOLUTION

    @torch_reduction_dims
    def std(self, axis=None, keepdims: bool = False, unbiased: bool = False) -> "Tensor":
        return self.var(axis=axis, keepdims=keepdims, unbiased=unbiased).sqrt()

    def _extreme(self, op: str, fn, axis, keepdims) -> "Tensor":
        """max or min over `axis`: records `op` ("max" or "min", rule `_max_min`), saving `axis`,
        `keepdims` and `out`, the result (the rule finds the winners as the elements equal to it)."""
        if axis is not None:
            axis = self._check_axis(op, axis)
        if self.data.size == 0 and self._reduced_count(axis) == 0:
            raise TensorError(f"{op}: an empty axis has no {op}imum (shape {self.shape}, axis {axis})")
        # BEGIN SOLUTION
        out = np.asarray(fn(self.data, axis=axis, keepdims=keepdims))
        return Tensor._make(out, op, (self,), axis=axis, keepdims=keepdims, out=out)
        # END SOLUTION

    def max(self, dim=None, keepdim: bool = False, *, axis=None, keepdims: bool = False):
        """Largest value; ties share the gradient equally.

        x.max(), NumPy's x.max(axis=1) and several dims x.max((0, 2)) give a Tensor; PyTorch's x.max(1)
        / x.max(dim=1) give (values, indices), as torch.max does; x.max(other) is the element-wise maximum.
        """
        return self._max_or_min("max", dim, keepdim, axis, keepdims)

    def min(self, dim=None, keepdim: bool = False, *, axis=None, keepdims: bool = False):
        """Smallest value; the same forms as max."""
        return self._max_or_min("min", dim, keepdim, axis, keepdims)

    def _max_or_min(self, op: str, dim, keepdim: bool, axis, keepdims: bool):
        """The call forms of max/min (see max), sorted out before module 02's `_extreme` does the work."""
        if isinstance(dim, Tensor):
            return self.maximum(dim) if op == "max" else self.minimum(dim)
        reduce = np.max if op == "max" else np.min
        if dim is None or isinstance(dim, (tuple, list)):  # all axes, NumPy's axis=, or several (torch.amax)
            return self._extreme(op, reduce, dim if axis is None else axis, keepdims or keepdim)
        if axis is not None:
            raise TensorError(f"{op}: give dim (PyTorch's name) or axis (NumPy's), not both")
        index = self.argmax(dim, keepdim) if op == "max" else self.argmin(dim, keepdim)
        return ValuesIndices(self._extreme(op, reduce, dim, keepdim), index)

    def _arg_extreme(self, op: str, fn, axis, keepdims) -> "Tensor":
        if axis is not None and not isinstance(axis, (int, np.integer)):
            raise TensorError(f"{op}: axis must be an int or None, got {axis!r}")
        if axis is not None:
            axis = self._check_axis(op, axis)
        if self.data.size == 0 and self._reduced_count(axis) == 0:
            raise TensorError(f"{op}: an empty tensor (shape {self.shape}) has no {op[3:]}imum")
        return Tensor._wrap(np.asarray(fn(self.data, axis=axis, keepdims=keepdims)))

    @torch_reduction_dims
    def argmax(self, axis=None, keepdims: bool = False) -> "Tensor":
        """Index of the largest value (int64, no gradient); over the flattened tensor if axis is None."""
        return self._arg_extreme("argmax", np.argmax, axis, keepdims)

    @torch_reduction_dims
    def argmin(self, axis=None, keepdims: bool = False) -> "Tensor":
        return self._arg_extreme("argmin", np.argmin, axis, keepdims)

    # ---- shape manipulation ------------------------------------------------------------------------
    def reshape(self, *shape) -> "Tensor":
        """Same data, new shape; one dimension may be -1 (inferred).

        Records "reshape" (rule `_reshape`), saving nothing: the gradient is reshaped back to the
        parent's shape.
        """
        shape = _shape_arg(shape)
        # BEGIN SOLUTION
        data = numpy_call("reshape", np.reshape, self.data, shape,
                          explain=f"the new shape must hold the same {self.numel()} elements (one dimension may be -1)")
        return Tensor._make(data, "reshape", (self,))
        # END SOLUTION

    view = reshape

    def permute(self, *axes) -> "Tensor":
        """Reorder dimensions: x.permute(0, 2, 1) swaps the last two of a 3-D tensor.

        Records "permute" (rule `_permute`), saving `axes` (non-negative, so the rule can invert them).
        """
        axes = _shape_arg(axes)
        ndim = self.data.ndim
        if (len(axes) != ndim or not all(isinstance(a, (int, np.integer)) and -ndim <= a < ndim for a in axes)
                or len({a % ndim for a in axes}) != ndim):
            raise TensorError(f"permute: {axes} is not an ordering of the {ndim} dimensions of shape {self.shape}")
        axes = tuple(int(a) % ndim for a in axes)  # non-negative, so the backward rule can invert it
        # BEGIN SOLUTION
        return Tensor._make(np.transpose(self.data, axes), "permute", (self,), axes=axes)
        # END SOLUTION

    def transpose(self, dim0: int = -2, dim1: int = -1) -> "Tensor":
        """Swap two dimensions (by default the last two, the matrix transpose)."""
        ndim = self.data.ndim
        if ndim < 2:
            raise TensorError(f"transpose: needs at least 2 dimensions, got shape {self.shape}")
        if not (-ndim <= dim0 < ndim and -ndim <= dim1 < ndim):
            raise TensorError(f"transpose: dimensions ({dim0}, {dim1}) are out of range for shape {self.shape}")
        axes = list(range(ndim))
        axes[dim0], axes[dim1] = axes[dim1], axes[dim0]
        return self.permute(*axes)

    @property
    def T(self) -> "Tensor":
        return self.permute(*reversed(range(self.ndim)))

    @torch_dims
    def squeeze(self, axis=None) -> "Tensor":
        """Drop dimensions of size 1 (all of them, or just `axis`, which must have size 1)."""
        if axis is None:
            shape = tuple(s for s in self.shape if s != 1)
        else:
            axis = self._check_axis("squeeze", axis)
            if not isinstance(axis, int):
                raise TensorError(f"squeeze: axis must be one int, got {axis!r}")
            if self.shape[axis] != 1:
                raise TensorError(f"squeeze: dimension {axis} of shape {self.shape} has size {self.shape[axis]}, not 1")
            shape = self.shape[:axis % self.ndim] + self.shape[axis % self.ndim + 1:]
        return self.reshape(shape)

    @torch_dims
    def unsqueeze(self, axis: int) -> "Tensor":
        """Insert a dimension of size 1 at `axis` (-1 appends one at the end)."""
        ndim = self.data.ndim
        if not isinstance(axis, (int, np.integer)) or not -ndim - 1 <= axis <= ndim:
            raise TensorError(f"unsqueeze: axis {axis!r} is out of range for shape {self.shape} "
                              f"(a new axis can go at {-ndim - 1}..{ndim})")
        axis = axis % (ndim + 1)
        return self.reshape(self.shape[:axis] + (1,) + self.shape[axis:])

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> "Tensor":
        """Merge dimensions start_dim..end_dim into one: (N, C, H, W).flatten(1) -> (N, C*H*W)."""
        ndim = max(self.data.ndim, 1)
        if not (-ndim <= start_dim < ndim and -ndim <= end_dim < ndim):
            raise TensorError(f"flatten: dimensions {start_dim}..{end_dim} are out of range for shape {self.shape}")
        start, end = start_dim % ndim, end_dim % ndim
        if start > end:
            raise TensorError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim} (shape {self.shape})")
        shape = self.shape or (1,)
        return self.reshape(shape[:start] + (math.prod(shape[start:end + 1]),) + shape[end + 1:])

    def broadcast_to(self, *shape) -> "Tensor":
        """A read-only view repeated along new or size-1 axes: (3, 1) -> (2, 3, 4). The gradient sums back.

        Records "broadcast_to" (rule `_broadcast_to`), saving nothing.
        """
        shape = _shape_arg(shape)
        # BEGIN SOLUTION
        data = numpy_call("broadcast_to", np.broadcast_to, self.data, shape)
        return Tensor._make(data, "broadcast_to", (self,))
        # END SOLUTION

    def expand(self, *sizes) -> "Tensor":
        """PyTorch's name for broadcast_to; -1 keeps a dimension as it is."""
        sizes = _shape_arg(sizes)
        offset = len(sizes) - self.ndim
        if offset < 0:
            raise TensorError(f"expand: {sizes} has fewer dimensions than the tensor's shape {self.shape}")
        return self.broadcast_to(tuple(self.shape[i - offset] if s == -1 and i >= offset else s
                                       for i, s in enumerate(sizes)))

    @torch_dims
    def split(self, split_size, axis: int = 0) -> list["Tensor"]:
        """Cut along `axis` into pieces of `split_size` (the last may be shorter) or of the listed sizes."""
        axis = self._check_axis("split", axis)
        length = self.shape[axis]
        if isinstance(split_size, (int, np.integer)):
            if split_size <= 0:
                raise TensorError(f"split: split_size must be positive, got {split_size}")
            sizes = [min(split_size, length - start) for start in range(0, length, split_size)]
        else:
            sizes = list(split_size)
            if sum(sizes) != length or any(s < 0 for s in sizes):
                raise TensorError(f"split: sizes {sizes} must be non-negative and add up to {length}, the size "
                                  f"of axis {axis} of shape {self.shape}")
        lead = (slice(None),) * (axis % self.ndim)
        pieces, start = [], 0
        for size in sizes:
            pieces.append(self[lead + (slice(start, start + size),)])
            start += size
        return pieces

    def __getitem__(self, index) -> "Tensor":
        """Basic slicing and NumPy fancy indexing; integer or bool tensors may be used as indices.

        Records "getitem" (rule `_getitem`), saving `index` (with tensors unwrapped to arrays).
        """
        index = _unwrap_index(index)
        # BEGIN SOLUTION
        data = numpy_call("getitem", operator.getitem, self.data, index, explain=INDEXING)  # self.data[index]
        return Tensor._make(data, "getitem", (self,), index=index)
        # END SOLUTION

    def __setitem__(self, index, value) -> None:
        """In-place assignment into the data, for tensors outside the graph (masks, one-hot targets)."""
        if grad_mode.enabled and (self.requires_grad or self._ctx is not None):
            raise TensorError(f"setitem: cannot assign into a tensor that requires grad (shape {self.shape}): its "
                              "gradient would be wrong. Build a new tensor (where / masked_fill / cat) or assign "
                              "inside no_grad()")
        index = _unwrap_index(index)
        try:
            self.data[index] = value.data if isinstance(value, Tensor) else value
        except (IndexError, TypeError, ValueError, OverflowError) as exc:
            raise TensorError(f"setitem: cannot assign {type(value).__name__} at {index!r} into shape "
                              f"{self.shape}: {exc}") from None

    # ---- activations as methods (the functions live in module 03) -----------------------------------
    def relu(self) -> "Tensor":
        from tinytorch.activations import relu
        return relu(self)

    def sigmoid(self) -> "Tensor":
        from tinytorch.activations import sigmoid
        return sigmoid(self)

    def tanh(self) -> "Tensor":
        from tinytorch.activations import tanh
        return tanh(self)

    @torch_dims
    def softmax(self, axis: int = -1) -> "Tensor":
        from tinytorch.activations import softmax
        return softmax(self, axis)

    @torch_dims
    def log_softmax(self, axis: int = -1) -> "Tensor":
        from tinytorch.activations import log_softmax
        return log_softmax(self, axis)

    # ---- in-place updates (given): PyTorch's `x += y`, `x.add_(y)`, `x.zero_()` ... ----------------------
    # They write into `.data` (so NumPy views of it, and `from_numpy` arrays, see the change) and return
    # self. Autograd records no in-place op, so `_check_in_place` refuses the updates that would make
    # a gradient wrong, with PyTorch's rules: a leaf that requires grad may change only inside
    # no_grad() (how optimizers and `p -= lr * p.grad` update parameters); a tensor computed by a
    # recorded op never (its value may be needed by backward; write `x = x + y` instead).
    def _check_in_place(self, op: str, other=None) -> None:
        if self._ctx is not None:
            raise TensorError(f"{op}: cannot change a tensor computed by a recorded op ('{self._ctx.op}', shape "
                              f"{self.shape}) in place: backward may need its old value. Write x = x + y (a new "
                              "tensor) instead, or detach() it first")
        if grad_mode.enabled:
            if self.requires_grad:
                raise TensorError(f"{op}: a leaf tensor that requires grad (shape {self.shape}) cannot be changed "
                                  "in place while gradients are recorded. Update parameters inside `with "
                                  "tt.no_grad():` (as optimizers do), or write x = x + y for a new tensor")
            if isinstance(other, Tensor) and other.requires_grad:
                raise TensorError(f"{op}: the value written in place requires grad, but in-place ops are not "
                                  "recorded by autograd; write x = x + y (a new tensor) so the gradient flows")

    def _in_place(self, op: str, ufunc, other) -> "Tensor":
        """self.data = ufunc(self.data, other), written into the same array; dtype and shape stay."""
        self._check_in_place(op, other)
        try:
            ufunc(self.data, other.data if isinstance(other, Tensor) else other, out=self.data)
        except (ValueError, TypeError) as exc:  # a shape that does not fit, a dtype that cannot hold the result
            raise TensorError(f"{op}: cannot write the result into this tensor of shape {self.shape} and dtype "
                              f"{self.dtype} ({exc}); an in-place op keeps the tensor's shape and dtype") from None
        return self

    def _write(self, op: str, values, casting: str = "unsafe") -> "Tensor":
        """Copy `values` (broadcast) into self.data, converting to self's dtype."""
        self._check_in_place(op, values)
        try:
            np.copyto(self.data, values.data if isinstance(values, Tensor) else values, casting=casting)
        except (ValueError, TypeError) as exc:
            raise TensorError(f"{op}: cannot write into this tensor of shape {self.shape} and dtype {self.dtype} "
                              f"({exc})") from None
        return self

    def __iadd__(self, other):
        return self._in_place("add_ (+=)", np.add, other)

    def __isub__(self, other):
        return self._in_place("sub_ (-=)", np.subtract, other)

    def __imul__(self, other):
        return self._in_place("mul_ (*=)", np.multiply, other)

    def __itruediv__(self, other):
        return self._in_place("div_ (/=)", np.true_divide, other)

    def add_(self, other, alpha=1) -> "Tensor":
        return self._in_place("add_", np.add, other if alpha == 1 else _scaled(other, alpha))

    def sub_(self, other, alpha=1) -> "Tensor":
        return self._in_place("sub_", np.subtract, other if alpha == 1 else _scaled(other, alpha))

    def mul_(self, other) -> "Tensor":
        return self._in_place("mul_", np.multiply, other)

    def div_(self, other) -> "Tensor":
        return self._in_place("div_", np.true_divide, other)

    def zero_(self) -> "Tensor":
        return self._write("zero_", 0)

    def fill_(self, value) -> "Tensor":
        return self._write("fill_", value)

    def copy_(self, src) -> "Tensor":
        """Copy `src` (broadcast to self's shape, converted to self's dtype) into self."""
        return self._write("copy_", src)

    def clamp_(self, min=None, max=None) -> "Tensor":
        if min is None and max is None:
            raise TensorError("clamp_: give at least one of min and max")
        self._check_in_place("clamp_")
        np.clip(self.data, min, max, out=self.data)
        return self

    def normal_(self, mean: float = 0.0, std: float = 1.0) -> "Tensor":
        return self._write("normal_", _rng.normal(mean, std, self.shape))

    def uniform_(self, a: float = 0.0, b: float = 1.0) -> "Tensor":
        return self._write("uniform_", _rng.uniform(a, b, self.shape))

    def scatter_(self, dim: int, index, src=None, value=None) -> "Tensor":
        """self[index[i, j], j] = src[i, j] (dim 0) and so on: NumPy's put_along_axis; `value` for one number."""
        if (src is None) == (value is None):
            raise TensorError("scatter_: give exactly one of src (a tensor) and value (a number)")
        self._check_in_place("scatter_", src)
        idx = np.asarray(index.data if isinstance(index, Tensor) else index)
        idx = idx.reshape(1) if idx.ndim == 0 and self.ndim == 1 else idx
        try:
            np.put_along_axis(self.data, idx, value if src is None else np.asarray(src), axis=dim)
        except (ValueError, IndexError, TypeError) as exc:
            raise TensorError(f"scatter_: index of shape {idx.shape} along dim {dim} does not fit a tensor of "
                              f"shape {self.shape} ({exc})") from None
        return self

    # ---- PyTorch's names for what is above (given: each one line over an op of this module) -----------
    @property
    def grad_fn(self) -> GradFn | None:
        """The recorded op that made this tensor (None for a leaf), as PyTorch prints it."""
        return None if self._ctx is None else GradFn(self._ctx)

    @property
    def device(self):
        """Always the CPU: TinyTorch computes with NumPy."""
        return CPU

    is_cuda = False

    def to(self, *args, **kwargs) -> "Tensor":
        """PyTorch's x.to(device), x.to(dtype), x.to(other_tensor), x.to(device, dtype).

        The device must be the CPU. Returns self when nothing changes. A dtype change gives a copy
        cut from the graph, so it is refused on a tensor that requires grad while gradients are
        recorded (convert the inputs or the model before the forward pass instead).
        """
        dtype, device = kwargs.pop("dtype", None), kwargs.pop("device", None)
        copy = kwargs.pop("copy", False)
        kwargs.pop("non_blocking", None)
        if kwargs:
            raise TensorError(f"to: unexpected arguments {sorted(kwargs)}")
        for arg in args:
            if isinstance(arg, Tensor):
                dtype = arg.dtype
            elif isinstance(arg, (str, Device)):  # "cpu", "cuda:0", tt.device("cpu")
                device = arg
            else:
                dtype = arg
        check_device(device, "to")
        if dtype is None or _dtype_of(dtype, "to") == self.data.dtype:
            return self.clone() if copy else self
        if grad_mode.enabled and self.requires_grad:
            raise TensorError(f"to: converting a tensor that requires grad from {self.dtype} to "
                              f"{np.dtype(dtype)} would cut it from the graph; convert inputs or the model "
                              "(model.double()) before the forward pass")
        return self.astype(dtype)

    def cpu(self) -> "Tensor":
        return self

    def cuda(self, device=None) -> "Tensor":
        check_device(device or "cuda", "cuda")
        return self

    def bool(self) -> "Tensor":
        return self.to(np.bool_)

    def int(self) -> "Tensor":
        return self.to(np.int32)

    def t(self) -> "Tensor":
        """Transpose of a matrix (a 0-d or 1-d tensor is returned as it is)."""
        if self.ndim > 2:
            raise TensorError(f"t: expects a tensor with at most 2 dimensions, got shape {self.shape}; use transpose")
        return self if self.ndim < 2 else self.transpose(0, 1)

    def add(self, other, alpha=1) -> "Tensor":
        return self + (other if alpha == 1 else other * alpha)

    def sub(self, other, alpha=1) -> "Tensor":
        return self - (other if alpha == 1 else other * alpha)

    def mul(self, other) -> "Tensor":
        return self * other

    def div(self, other) -> "Tensor":
        return self / other

    def neg(self) -> "Tensor":
        return -self

    def square(self) -> "Tensor":
        return self * self

    mm = matmul

    def pow(self, exponent) -> "Tensor":
        """self ** exponent; the exponent may also be a tensor (that needs no gradient), broadcast with self.

        A tensor exponent is handled as a sum of powers by constant exponents, one per distinct value
        (at most 16), each kept where the exponent has that value: the gradient is then module 09's.
        """
        if not isinstance(exponent, Tensor):
            return self ** exponent
        if exponent.requires_grad and grad_mode.enabled:
            raise TensorError("pow: an exponent that requires grad is not supported; use (b * a.log()).exp()")
        e = exponent.data
        values = np.unique(e)
        if values.size > 16:
            raise TensorError(f"pow: a tensor exponent may hold at most 16 distinct values, got {values.size}")
        try:
            shape = np.broadcast_shapes(self.shape, e.shape)
        except ValueError:
            raise TensorError(f"pow: shapes {_shape_str(self, e)} (base, exponent) do not broadcast") from None
        base = self if self.shape == shape else self.broadcast_to(shape)
        total = None
        for v in values.tolist():
            term = (base ** v).masked_fill(np.broadcast_to(e != v, shape), 0)
            total = term if total is None else total + term
        return total

    def eq(self, other) -> "Tensor":
        return self == other

    def ne(self, other) -> "Tensor":
        return self != other

    def gt(self, other) -> "Tensor":
        return self > other

    def lt(self, other) -> "Tensor":
        return self < other

    def view_as(self, other) -> "Tensor":
        return self.reshape(other.shape)

    reshape_as = view_as

    def expand_as(self, other) -> "Tensor":
        return self.broadcast_to(other.shape)

    def new_tensor(self, data, dtype=None, requires_grad: bool = False) -> "Tensor":
        """A new tensor from `data`, with self's dtype unless `dtype` is given."""
        return Tensor(data, dtype=self.dtype if dtype is None else dtype, requires_grad=requires_grad)

    def new_full(self, size, fill_value, dtype=None, device=None, requires_grad: bool = False) -> "Tensor":
        check_device(device, "new_full")
        return full(size, fill_value, dtype=self.dtype if dtype is None else dtype, requires_grad=requires_grad)

    def new_zeros(self, *size, dtype=None, device=None, requires_grad: bool = False) -> "Tensor":
        return self.new_full(_shape_arg(size), 0, dtype, device, requires_grad)

    def new_ones(self, *size, dtype=None, device=None, requires_grad: bool = False) -> "Tensor":
        return self.new_full(_shape_arg(size), 1, dtype, device, requires_grad)

    new_empty = new_zeros

    _TYPE_NAMES = {"float32": "FloatTensor", "float64": "DoubleTensor", "float16": "HalfTensor",
                   "int64": "LongTensor", "int32": "IntTensor", "int16": "ShortTensor", "int8": "CharTensor",
                   "uint8": "ByteTensor", "bool": "BoolTensor"}

    def type(self, dtype=None):
        """With no argument, the type name ('tinytorch.FloatTensor'); with a dtype, self.to(dtype)."""
        if dtype is None:
            return "tinytorch." + self._TYPE_NAMES.get(self.data.dtype.name, self.data.dtype.name)
        return self.to(dtype)


_new_tensor = object.__new__  # Tensor._make skips __init__: its data is already a checked ndarray


def _scaled(other, alpha):
    """other * alpha for the `alpha=` of add_/sub_, as an array (in-place ops need no graph)."""
    return (other.data if isinstance(other, Tensor) else np.asarray(other)) * alpha


def _dtype_of(dtype, op: str) -> np.dtype:
    try:
        return np.dtype(dtype)
    except TypeError:
        raise TensorError(f"{op}: {dtype!r} is not a dtype (use tt.float32, tt.int64, np.float64, ...)") from None


def _autograd():
    """Module 09, imported on first use (this file must work without it until backward())."""
    global _autograd_module
    if _autograd_module is None:
        from tinytorch import autograd
        _autograd_module = autograd
    return _autograd_module


_autograd_module = None


def _unwrap_index(index):
    """Tensors inside an index become their arrays; lists become arrays (so [True, False] is a mask)."""
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, list):
        return _list_index(index)
    if isinstance(index, tuple):
        return tuple(i.data if isinstance(i, Tensor) else (_list_index(i) if isinstance(i, list) else i)
                     for i in index)
    return index


def _list_index(items: list) -> np.ndarray:
    arr = np.asarray([i.data if isinstance(i, Tensor) else i for i in items])
    return arr.astype(np.intp) if arr.size == 0 else arr  # [] is an empty integer index, not float


# ---- functions of several tensors -------------------------------------------------------------------
@torch_dims
def cat(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """Join tensors along an existing axis; all other dimensions must match: (2, 3) + (2, 4) -> (2, 7) on axis 1.

    Records "cat" (rule `_cat`) with every tensor as a parent, saving `axis` (non-negative) and
    `sizes`, each input's size along it (the rule splits the gradient at those sizes).
    """
    tensors = as_tensors(tensors)
    if not tensors:
        raise TensorError("cat: needs at least one tensor")
    shapes = [t.shape for t in tensors]
    ndim = len(shapes[0])
    if ndim == 0 or any(len(s) != ndim for s in shapes):
        raise TensorError(f"cat: all tensors need the same number (>= 1) of dimensions, got shapes {shapes}")
    if not isinstance(axis, (int, np.integer)) or not -ndim <= axis < ndim:
        raise TensorError(f"cat: axis {axis!r} is out of range for shapes {shapes}")
    axis = int(axis) % ndim
    if any(s[:axis] + s[axis + 1:] != shapes[0][:axis] + shapes[0][axis + 1:] for s in shapes):
        raise TensorError(f"cat: shapes {shapes} differ outside axis {axis}; only the size along the axis may differ")
    # BEGIN SOLUTION
    arrays = [t.data for t in tensors]
    data = keep_float32(np.concatenate(arrays, axis=axis), *arrays)
    return Tensor._make(data, "cat", tuple(tensors), axis=axis, sizes=tuple(s[axis] for s in shapes))
    # END SOLUTION


@torch_dims
def stack(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """Join same-shaped tensors along a new axis."""
    tensors = as_tensors(tensors)
    if not tensors:
        raise TensorError("stack: needs at least one tensor")
    if len({t.shape for t in tensors}) != 1:
        raise TensorError(f"stack: all tensors need the same shape, got {[t.shape for t in tensors]}")
    ndim = tensors[0].ndim
    if not isinstance(axis, (int, np.integer)) or not -ndim - 1 <= axis <= ndim:
        raise TensorError(f"stack: axis {axis!r} is out of range for tensors of shape {tensors[0].shape}")
    return cat([t.unsqueeze(axis) for t in tensors], axis=axis)


def where(condition, a, b) -> Tensor:
    """Element-wise choice: a where condition is True, else b; all three broadcast together.

    Gradients flow to `a` where the condition holds and to `b` elsewhere: records "where" (rule
    `_where`) with parents (a, b), saving `condition` (the bool array).
    """
    cond = condition.data if isinstance(condition, Tensor) else np.asarray(condition)
    if cond.dtype != np.bool_:
        raise TensorError(f"where: condition must be bool, got dtype {cond.dtype} (shape {cond.shape})")
    if not isinstance(a, Tensor):
        a = b._lift(a, "where") if isinstance(b, Tensor) else Tensor(a)
    b = a._lift(b, "where")
    # BEGIN SOLUTION
    data = numpy_call("where", np.where, cond, a.data, b.data)       # condition, a, b broadcast together
    return Tensor._make(keep_float32(data, a.data, b.data), "where", (a, b), condition=cond)
    # END SOLUTION


def pad(x: Tensor, pad_width, value: float = 0.0) -> Tensor:
    """Pad with a constant. `pad_width` is NumPy's: one (before, after) pair per axis, or one int for all.

    pad(images, ((0, 0), (0, 0), (1, 1), (1, 1))) adds a 1-pixel border to (N, C, H, W) images.
    Records "pad" (rule `_pad`), saving `inside`: the tuple of slices of the output that hold x.
    """
    if isinstance(pad_width, (int, np.integer)):
        pad_width = ((pad_width, pad_width),) * x.ndim
    try:
        widths = tuple((int(before), int(after)) for before, after in pad_width)
    except (TypeError, ValueError):
        raise TensorError(f"pad: pad_width must be one (before, after) pair per axis, got {pad_width!r}") from None
    if len(widths) != x.ndim or any(w < 0 for pair in widths for w in pair):
        raise TensorError(f"pad: need {x.ndim} non-negative (before, after) pairs for shape {x.shape}, got {widths}")
    # BEGIN SOLUTION
    shape = tuple(s + before + after for s, (before, after) in zip(x.shape, widths))
    inside = tuple(slice(before, before + s) for s, (before, _) in zip(x.shape, widths))
    data = np.full(shape, value, dtype=x.dtype)
    data[inside] = x.data
    return Tensor._make(data, "pad", (x,), inside=inside)
    # END SOLUTION


# ---- functions that build tensors -------------------------------------------------------------------
# PyTorch's signatures: `dtype=` (float32 when None for floating-point data), `device=` (only the CPU
# exists, see tinytorch/devices.py) and `requires_grad=`.
def _float_dtype(dtype):
    return DEFAULT_FLOAT if dtype is None else dtype


def tensor(data, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    check_device(device, "tensor")
    return Tensor(data, dtype=dtype, requires_grad=requires_grad)


def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor that SHARES `array`'s memory and keeps its dtype (float64 stays float64, as in PyTorch):
    changing one changes the other."""
    if not isinstance(array, np.ndarray):
        raise TensorError(f"from_numpy: expected a NumPy array, got {type(array).__name__} (use tt.tensor)")
    if array.dtype.kind not in "fiub":
        raise TensorError(f"from_numpy: unsupported dtype {array.dtype}; use a float, integer or bool array")
    return Tensor._wrap(array)


def as_tensor(data, dtype=None, device=None) -> Tensor:
    """Like tensor(), but shares memory with `data` when it already is an array of the right dtype."""
    check_device(device, "as_tensor")
    if isinstance(data, Tensor) and dtype is None:
        return data
    if isinstance(data, np.ndarray) and (dtype is None or np.dtype(dtype) == data.dtype):
        return from_numpy(data)
    return Tensor(data, dtype=dtype)


def zeros(*shape, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    check_device(device, "zeros")
    dtype = _float_dtype(dtype)
    return Tensor(np.zeros(_shape_arg(shape), dtype=dtype), dtype=dtype, requires_grad=requires_grad)


def ones(*shape, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    check_device(device, "ones")
    dtype = _float_dtype(dtype)
    return Tensor(np.ones(_shape_arg(shape), dtype=dtype), dtype=dtype, requires_grad=requires_grad)


def empty(*shape, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """PyTorch leaves the values unset; here they are zeros (any value is allowed, zeros are reproducible)."""
    return zeros(*shape, dtype=dtype, device=device, requires_grad=requires_grad)


def full(shape, value, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    check_device(device, "full")
    dtype = _float_dtype(dtype)
    return Tensor(np.full(shape, value, dtype=dtype), dtype=dtype, requires_grad=requires_grad)


def eye(n: int, m: int | None = None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """The n x m identity matrix (ones on the diagonal)."""
    check_device(device, "eye")
    dtype = _float_dtype(dtype)
    return Tensor(np.eye(n, m, dtype=dtype), dtype=dtype, requires_grad=requires_grad)


def linspace(start, end, steps: int, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """`steps` evenly spaced values from start to end, both included."""
    check_device(device, "linspace")
    dtype = _float_dtype(dtype)
    return Tensor(np.linspace(start, end, steps, dtype=dtype), dtype=dtype, requires_grad=requires_grad)


def _like(x: Tensor, dtype, device, op: str):
    check_device(device, op)
    if not isinstance(x, Tensor):
        raise TensorError(f"{op}: expected a Tensor, got {type(x).__name__}")
    return x.shape, (x.dtype if dtype is None else dtype)


def zeros_like(x: Tensor, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    shape, dtype = _like(x, dtype, device, "zeros_like")
    return Tensor(np.zeros(shape, dtype=dtype), dtype=dtype, requires_grad=requires_grad)


def ones_like(x: Tensor, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    shape, dtype = _like(x, dtype, device, "ones_like")
    return Tensor(np.ones(shape, dtype=dtype), dtype=dtype, requires_grad=requires_grad)


def full_like(x: Tensor, value, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    shape, dtype = _like(x, dtype, device, "full_like")
    return Tensor(np.full(shape, value, dtype=dtype), dtype=dtype, requires_grad=requires_grad)


empty_like = zeros_like


def _random_dtype(dtype, op: str):
    dtype = np.dtype(_float_dtype(dtype))
    if dtype.kind != "f":
        raise TensorError(f"{op}: random floats need a floating-point dtype, got {dtype} (use randint for integers)")
    return dtype


def randn(*shape, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Standard normal samples (float32 unless dtype says otherwise) from TinyTorch's seeded generator."""
    check_device(device, "randn")
    dtype = _random_dtype(dtype, "randn")
    return Tensor(_rng.standard_normal(_shape_arg(shape), dtype=dtype), dtype=dtype, requires_grad=requires_grad)


def rand(*shape, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Uniform samples in [0, 1) (float32 unless dtype says otherwise) from TinyTorch's seeded generator."""
    check_device(device, "rand")
    dtype = _random_dtype(dtype, "rand")
    return Tensor(_rng.random(_shape_arg(shape), dtype=dtype), dtype=dtype, requires_grad=requires_grad)


def randn_like(x: Tensor, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    shape, dtype = _like(x, dtype, device, "randn_like")
    return randn(*shape, dtype=_random_dtype(dtype, "randn_like"), requires_grad=requires_grad)


def rand_like(x: Tensor, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    shape, dtype = _like(x, dtype, device, "rand_like")
    return rand(*shape, dtype=_random_dtype(dtype, "rand_like"), requires_grad=requires_grad)


def randint(*args, size=None, dtype=np.int64, device=None) -> Tensor:
    """Random integers in [low, high): randint(high, size) or randint(low, high, size), as in PyTorch."""
    check_device(device, "randint")
    if size is None and args and isinstance(args[-1], (tuple, list)):
        args, size = args[:-1], args[-1]
    if size is None or len(args) not in (1, 2):
        raise TensorError(f"randint: call randint(high, size) or randint(low, high, size), got {args!r} size={size!r}")
    low, high = (0, args[0]) if len(args) == 1 else args
    if high <= low:
        raise TensorError(f"randint: high ({high}) must be larger than low ({low})")
    return Tensor(_rng.integers(low, high, size=_shape_arg(tuple(size)) if not isinstance(size, int) else size,
                                dtype=dtype), dtype=dtype)


def arange(*args, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    check_device(device, "arange")
    data = np.arange(*args, dtype=dtype)
    return Tensor(data, dtype=dtype, requires_grad=requires_grad)


def as_tensors(values: Iterable) -> list[Tensor]:
    return [v if isinstance(v, Tensor) else Tensor(v) for v in values]
