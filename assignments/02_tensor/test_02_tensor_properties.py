"""Module 02 - Tensor: property-based tests (Hypothesis) of shapes, broadcasting and bad input.

Hypothesis generates many random shapes, dtypes and values and checks rules that must always hold:
- results have NumPy's shapes and values (broadcasting, reductions, reshape/permute round trips);
- bad input (mismatched shapes, wrong axes, odd dtypes, empty arrays, NaN/inf) either works like
  NumPy or raises a TensorError whose message names the operation and the shapes - never a bare
  NumPy error from deep inside.
When a property fails, Hypothesis prints the smallest input it found that breaks it.
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinytorch.tensor import Tensor, TensorError, cat

# No shrinking: examples are derandomized (reproducible) and shrinking the failures of an unfinished
# function would cost tens of seconds per test before the first useful message.
NO_SHRINK = (Phase.explicit, Phase.reuse, Phase.generate)

# derandomize: the same examples on every run, so a grade never depends on luck; no example database files
SETTINGS = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow], phases=NO_SHRINK)

BINARY = {"add": (lambda a, b: a + b, np.add), "sub": (lambda a, b: a - b, np.subtract),
          "mul": (lambda a, b: a * b, np.multiply), "div": (lambda a, b: a / b, np.true_divide),
          "maximum": (lambda a, b: a.maximum(b), np.maximum), "minimum": (lambda a, b: a.minimum(b), np.minimum)}
DTYPES = [np.bool_, np.uint8, np.int8, np.int32, np.int64, np.float16, np.float32, np.float64]

shapes = hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4)


def floats(shape):
    return hnp.arrays(np.float32, shape, elements=st.floats(-10, 10, width=32))


def assert_names(exc: TensorError, op: str, *shapes_):
    msg = str(exc)
    assert op in msg, f"the error must name the operation {op!r}: {msg!r}"
    for shape in shapes_:
        assert str(tuple(shape)) in msg, f"the error must quote the shape {tuple(shape)}: {msg!r}"


# ---- shapes and values follow NumPy ----------------------------------------------------------------
@SETTINGS
@given(data=st.data(), op=st.sampled_from(sorted(BINARY)))
def test_binary_ops_broadcast_to_numpy_shapes(data, op):
    shape_a, shape_b = data.draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=4, max_side=4)).input_shapes
    a, b = data.draw(floats(shape_a)), data.draw(floats(shape_b))
    if op == "div":
        b = np.where(np.abs(b) < 0.5, 1.0, b).astype(np.float32)
    ours, numpy_fn = BINARY[op]
    out = ours(Tensor(a), Tensor(b))
    assert out.shape == np.broadcast_shapes(shape_a, shape_b), f"{op}: shape {out.shape} for {shape_a} and {shape_b}"
    np.testing.assert_allclose(out.data, numpy_fn(a, b), rtol=1e-6, atol=1e-6)
    assert isinstance(out.data, np.ndarray) and out.dtype == np.float32


@SETTINGS
@given(a=shapes, b=shapes, op=st.sampled_from(sorted(BINARY)))
def test_binary_ops_on_any_shapes_work_or_name_op_and_shapes(a, b, op):
    x, y = Tensor(np.ones(a, np.float32)), Tensor(np.ones(b, np.float32))
    try:
        expected = np.broadcast_shapes(a, b)
    except ValueError:
        with pytest.raises(TensorError) as info:
            BINARY[op][0](x, y)
        assert_names(info.value, op, a, b)
    else:
        assert BINARY[op][0](x, y).shape == expected


@SETTINGS
@given(data=st.data(), keepdims=st.booleans(), op=st.sampled_from(["sum", "mean", "max", "min", "var"]))
def test_reductions_over_random_axes_match_numpy(data, keepdims, op):
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=4))
    a = data.draw(floats(shape))
    axes = data.draw(st.lists(st.integers(-len(shape), len(shape) - 1), max_size=len(shape),
                              unique_by=lambda ax: ax % len(shape)))
    axis = None if not axes else (axes[0] if len(axes) == 1 else tuple(axes))
    out = getattr(Tensor(a), op)(axis=axis, keepdims=keepdims)
    expected = getattr(np, op)(a.astype(np.float64), axis=axis, keepdims=keepdims)
    assert out.shape == np.shape(expected), f"{op}(axis={axis}, keepdims={keepdims}) of shape {shape}"
    np.testing.assert_allclose(out.data, expected, rtol=1e-4, atol=1e-4)


@SETTINGS
@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, max_side=3), axis=st.integers(-6, 6),
       op=st.sampled_from(["sum", "mean", "max", "min", "argmax", "var"]))
def test_any_axis_works_or_names_op_and_shape(shape, axis, op):
    x = Tensor(np.ones(shape, np.float32))
    if -len(shape) <= axis < len(shape):
        getattr(x, op)(axis=axis)
    else:
        with pytest.raises(TensorError) as info:
            getattr(x, op)(axis=axis)
        assert_names(info.value, op, shape)


@SETTINGS
@given(data=st.data())
def test_reshape_and_permute_round_trips(data):
    shape = data.draw(shapes)
    a = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
    x = Tensor(a)
    assert np.array_equal(x.reshape(-1).reshape(shape).data, a), "reshape to flat and back must give x again"
    perm = data.draw(st.permutations(range(len(shape))))
    y = x.permute(*perm)
    assert y.shape == tuple(shape[p] for p in perm)
    assert np.array_equal(y.permute(*np.argsort(perm)).data, a), "permuting back must give x again"
    assert np.array_equal(y.data, a.transpose(perm))


@SETTINGS
@given(a=hnp.array_shapes(min_dims=1, max_dims=4, max_side=4), b=hnp.array_shapes(min_dims=1, max_dims=4, max_side=4))
def test_matmul_on_any_shapes_matches_numpy_or_quotes_both_shapes(a, b):
    x, y = np.ones(a, np.float32), np.ones(b, np.float32)
    try:
        expected = np.matmul(x, y)
    except ValueError:
        with pytest.raises(TensorError) as info:
            Tensor(x) @ Tensor(y)
        assert_names(info.value, "matmul", a, b)
    else:
        np.testing.assert_array_equal((Tensor(x) @ Tensor(y)).data, expected)


# ---- fuzzing: odd dtypes, special values, bad indices -------------------------------------------------
OPS = {
    "add": lambda x, y: x + y, "sub": lambda x, y: x - y, "mul": lambda x, y: x * y, "div": lambda x, y: x / y,
    "pow": lambda x, y: x ** 2, "neg": lambda x, y: -x, "exp": lambda x, y: x.exp(), "log": lambda x, y: x.log(),
    "sqrt": lambda x, y: x.sqrt(), "abs": lambda x, y: x.abs(), "clip": lambda x, y: x.clip(-1, 1),
    "maximum": lambda x, y: x.maximum(y), "matmul": lambda x, y: x @ y, "sum": lambda x, y: x.sum(0),
    "mean": lambda x, y: x.mean(), "max": lambda x, y: x.max(), "argmax": lambda x, y: x.argmax(),
    "lt": lambda x, y: x < y, "cat": lambda x, y: cat([x, y]), "getitem": lambda x, y: x[0],
    "reshape": lambda x, y: x.reshape(-1), "permute": lambda x, y: x.T, "masked_fill": lambda x, y: x.masked_fill(
        y.data.astype(bool), 0), "var": lambda x, y: x.var(),
}


@settings(SETTINGS, max_examples=120)
@given(op=st.sampled_from(sorted(OPS)), da=st.sampled_from(DTYPES), db=st.sampled_from(DTYPES),
       a=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3),
       b=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3),
       special=st.sampled_from([0.0, 1.0, np.nan, np.inf, -np.inf]))
def test_fuzz_ops_work_or_raise_tensor_error_naming_the_op(op, da, db, a, b, special):
    """Random dtypes, shapes (empty ones too) and NaN/inf: a result, or a TensorError naming the op."""
    x = np.full(a, special).astype(da) if np.dtype(da).kind == "f" else np.ones(a, dtype=da)
    y = np.arange(int(np.prod(b)), dtype=np.float64).reshape(b).astype(db)
    tx, ty = Tensor(x, dtype=da), Tensor(y, dtype=db)
    with np.errstate(all="ignore"):
        try:
            out = OPS[op](tx, ty)
        except TensorError as exc:
            assert op in str(exc), f"{op}: the error must name the operation, got {exc!r}"
            assert str(tuple(a)) in str(exc), f"{op}: the error must quote the input shape {tuple(a)}, got {exc!r}"
            return
    assert isinstance(out, Tensor) and isinstance(out.data, np.ndarray), f"{op} must return a Tensor over an ndarray"
    assert out.dtype.kind in "fiub", f"{op}: unexpected result dtype {out.dtype}"


@SETTINGS
@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, max_side=4),
       index=st.one_of(st.integers(-6, 6), st.tuples(st.integers(-6, 6), st.integers(-6, 6)),
                       st.slices(6), st.lists(st.integers(-6, 6), max_size=4)))
def test_getitem_matches_numpy_or_names_getitem_and_shape(shape, index):
    a = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
    try:
        expected = a[index]
    except IndexError:
        with pytest.raises(TensorError) as info:
            Tensor(a)[index]
        assert_names(info.value, "getitem", shape)
    else:
        np.testing.assert_array_equal(Tensor(a)[index].data, expected)


@SETTINGS
@given(shapes_=st.lists(hnp.array_shapes(min_dims=0, max_dims=3, max_side=3), min_size=1, max_size=3),
       axis=st.integers(-3, 3))
def test_cat_matches_numpy_or_names_cat_and_shapes(shapes_, axis):
    arrays = [np.ones(s, np.float32) for s in shapes_]
    try:
        expected = np.concatenate(arrays, axis=axis)
    except (ValueError, IndexError):
        with pytest.raises(TensorError) as info:
            cat([Tensor(x) for x in arrays], axis=axis)
        assert_names(info.value, "cat", *shapes_)
    else:
        np.testing.assert_array_equal(cat([Tensor(x) for x in arrays], axis=axis).data, expected)


@SETTINGS
@given(shape=shapes, target=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=6))
def test_reshape_to_any_shape_works_or_names_reshape_and_shape(shape, target):
    x = Tensor(np.zeros(shape, np.float32))
    if int(np.prod(shape)) == int(np.prod(target)):
        assert x.reshape(target).shape == tuple(target)
    else:
        with pytest.raises(TensorError) as info:
            x.reshape(target)
        assert_names(info.value, "reshape", shape)


@SETTINGS
@given(special=st.sampled_from([np.nan, np.inf, -np.inf]), shape=hnp.array_shapes(min_dims=1, max_dims=2, max_side=3))
def test_nan_and_inf_propagate_like_numpy(special, shape):
    a = np.full(shape, special, dtype=np.float32)
    with np.errstate(all="ignore"):
        for ours, theirs in [(Tensor(a).exp(), np.exp(a)), ((Tensor(a) * 2).sum(), (a * 2).sum()),
                             (Tensor(a).max(axis=0), a.max(0)), (Tensor(a) @ Tensor(a.T), a @ a.T)]:
            np.testing.assert_array_equal(ours.data, theirs)
