"""Bad input to the framework's layers (issue 6, "Bad input to the framework").

Hypothesis throws random shapes (empty ones too), dtypes, NaN/inf values and mismatched shapes at
Linear, Conv2d, max/avg pooling, LayerNorm, Embedding and cross_entropy. Every call must either
- return a Tensor of exactly the shape the layer documents (never a silently wrong shape), with NaN
  in the input still visible in the output, or
- raise `TensorError` (or a documented subclass) whose message names the operation and the shape of
  the offending input - never a bare NumPy/Python error from deep inside.

The tensor ops themselves are fuzzed in assignments/02_tensor/test_02_tensor_properties.py; this file
checks the layers of modules 04-07 built on them, against the reference framework.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinytorch as tt
from tinytorch.tensor import Tensor, TensorError

# Same examples on every run (a flaky security test helps nobody); no example database on disk.
SETTINGS = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

DTYPES = [np.float32, np.float64, np.float16, np.int64, np.int32, np.uint8, np.bool_]
SPECIALS = [None, np.nan, np.inf, -np.inf]
any_shape = hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=5)


def make_input(shape, dtype, special) -> Tensor:
    """A tensor of `shape`/`dtype` with small values, and (for floats) one special value if asked."""
    size = int(np.prod(shape))
    data = (np.arange(size, dtype=np.float64) % 7 - 3).reshape(shape) / 3.0
    data = data.astype(dtype) if np.dtype(dtype).kind == "f" else np.abs(data * 3).astype(dtype)
    if special is not None and np.dtype(dtype).kind == "f" and size:
        data.flat[size // 2] = special
    return Tensor(data, dtype=dtype)


def call(fn, *args):
    """Run fn; returns (result, None) or (None, TensorError). Any other exception fails the test."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            return fn(*args), None
        except TensorError as exc:
            return None, exc


def assert_names(exc: TensorError, ops: tuple[str, ...], *shapes) -> None:
    msg = str(exc)
    assert any(op.lower() in msg.lower() for op in ops), f"the error must name the operation ({ops}): {msg!r}"
    for shape in shapes:
        assert str(tuple(shape)) in msg, f"the error must quote the shape {tuple(shape)}: {msg!r}"


def assert_result(out, shape, x: Tensor) -> None:
    assert isinstance(out, Tensor) and isinstance(out.data, np.ndarray), f"expected a Tensor, got {type(out)}"
    assert out.shape == tuple(shape), f"output shape {out.shape}, expected {tuple(shape)}"
    assert out.dtype.kind == "f", f"output dtype {out.dtype}"
    if out.size and np.isnan(x.data).any():
        assert np.isnan(out.data).any(), "a NaN in the input vanished from the output"


# ---- Linear ---------------------------------------------------------------------------------------
@SETTINGS
@given(shape=any_shape, dtype=st.sampled_from(DTYPES), special=st.sampled_from(SPECIALS),
       fin=st.integers(1, 5), fout=st.integers(1, 5), match=st.booleans())
def test_linear(shape, dtype, special, fin, fout, match):
    if match and len(shape):
        shape = (*shape[:-1], fin)
    x = make_input(shape, dtype, special)
    out, err = call(tt.nn.Linear(fin, fout), x)
    ok = np.dtype(dtype).kind == "f" and len(shape) >= 1 and shape[-1] == fin
    if ok:
        assert err is None, f"Linear({fin}, {fout}) refused a valid input of shape {shape}: {err}"
        assert_result(out, (*shape[:-1], fout), x)
    else:
        assert err is not None, f"Linear({fin}, {fout}) accepted shape {shape} dtype {np.dtype(dtype)}"
        assert_names(err, ("linear",), shape)


# ---- Conv2d and pooling ---------------------------------------------------------------------------
image_shape = hnp.array_shapes(min_dims=2, max_dims=5, min_side=0, max_side=6)


def _expected_spatial(shape, channels, k, s, p):
    """Output shape of a conv/pool over `shape`, or None when the input is invalid."""
    if len(shape) != 4 or (channels is not None and shape[1] != channels):
        return None
    n, c, h, w = shape
    if k > h + 2 * p or k > w + 2 * p:
        return None
    return n, c, (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1


@SETTINGS
@given(shape=image_shape, dtype=st.sampled_from(DTYPES), special=st.sampled_from(SPECIALS),
       cin=st.integers(1, 3), cout=st.integers(1, 3), k=st.integers(1, 3), s=st.integers(1, 2),
       p=st.integers(0, 1), match=st.booleans())
def test_conv2d(shape, dtype, special, cin, cout, k, s, p, match):
    if match and len(shape) == 4:
        shape = (shape[0], cin, *shape[2:])
    x = make_input(shape, dtype, special)
    out, err = call(tt.nn.Conv2d(cin, cout, k, stride=s, padding=p), x)
    expected = _expected_spatial(shape, cin, k, s, p) if np.dtype(dtype).kind == "f" else None
    if expected is not None:
        assert err is None, f"Conv2d({cin}, {cout}, {k}, stride={s}, padding={p}) refused shape {shape}: {err}"
        assert_result(out, (expected[0], cout, *expected[2:]), x)
    else:
        assert err is not None, f"Conv2d({cin}, {cout}, {k}) accepted shape {shape} dtype {np.dtype(dtype)}"
        assert_names(err, ("conv2d",), shape)


@SETTINGS
@given(shape=image_shape, dtype=st.sampled_from(DTYPES), special=st.sampled_from(SPECIALS),
       k=st.integers(1, 3), s=st.one_of(st.none(), st.integers(1, 2)), pad=st.booleans(),
       kind=st.sampled_from(["max", "avg"]))
def test_pooling(shape, dtype, special, k, s, pad, kind):
    p = k // 2 if pad else 0
    layer = (tt.nn.MaxPool2d if kind == "max" else tt.nn.AvgPool2d)(k, stride=s, padding=p)
    x = make_input(shape, dtype, special)
    out, err = call(layer, x)
    expected = _expected_spatial(shape, None, k, s or k, p) if np.dtype(dtype).kind == "f" else None
    if expected is not None:
        assert err is None, f"{kind}_pool2d(k={k}, s={s}, p={p}) refused shape {shape}: {err}"
        assert_result(out, expected, x)
    else:
        assert err is not None, f"{kind}_pool2d(k={k}) accepted shape {shape} dtype {np.dtype(dtype)}"
        assert_names(err, (f"{kind}_pool2d",), shape)


@pytest.mark.parametrize("bad", ["2", (2, 2, 2), 0, -1, 1.5])
def test_conv_and_pool_hyperparameters_are_teaching_errors(bad):
    image = Tensor(np.ones((1, 1, 4, 4), np.float32))
    for name, make in (("conv2d", lambda: tt.nn.Conv2d(1, 1, bad)(image)),
                       ("max_pool2d", lambda: tt.nn.MaxPool2d(bad)(image))):
        out, err = call(make)
        assert err is not None, f"{name}: kernel_size={bad!r} was accepted"
        assert "kernel_size" in str(err) and repr(bad) in str(err), str(err)


# ---- LayerNorm --------------------------------------------------------------------------------------
@SETTINGS
@given(shape=any_shape, dtype=st.sampled_from(DTYPES), special=st.sampled_from(SPECIALS),
       dim=st.integers(1, 5), match=st.booleans())
def test_layer_norm(shape, dtype, special, dim, match):
    if match and len(shape):
        shape = (*shape[:-1], dim)
    x = make_input(shape, dtype, special)
    out, err = call(tt.nn.LayerNorm(dim), x)
    if np.dtype(dtype).kind == "f" and len(shape) >= 1 and shape[-1] == dim:
        assert err is None, f"LayerNorm({dim}) refused shape {shape} dtype {np.dtype(dtype)}: {err}"
        assert_result(out, shape, x)
    else:
        assert err is not None, f"LayerNorm({dim}) accepted shape {shape} dtype {np.dtype(dtype)}"
        assert_names(err, ("layernorm", "layer_norm"), shape)


# ---- Embedding --------------------------------------------------------------------------------------
@SETTINGS
@given(shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4), dtype=st.sampled_from(DTYPES),
       num=st.integers(1, 6), dim=st.integers(1, 4), offset=st.sampled_from([0, 0, -3, 4]))
def test_embedding(shape, dtype, num, dim, offset):
    size = int(np.prod(shape))
    ids = (np.arange(size) % num + offset).reshape(shape)
    kind = np.dtype(dtype).kind
    ids = ids.astype(dtype) if kind != "u" else np.abs(ids).astype(dtype)
    out, err = call(tt.nn.Embedding(num, dim), Tensor(ids, dtype=dtype))
    in_range = size == 0 or (ids.min() >= 0 and ids.max() < num)
    if kind in "iu" and in_range:
        assert err is None, f"Embedding({num}, {dim}) refused ids {ids.tolist()}: {err}"
        assert isinstance(out, Tensor) and out.shape == (*shape, dim) and out.dtype == np.float32
    else:
        assert err is not None, f"Embedding({num}, {dim}) accepted ids of dtype {ids.dtype}: {ids.tolist()}"
        assert_names(err, ("embedding",), shape)


# ---- cross_entropy ----------------------------------------------------------------------------------
@SETTINGS
@given(shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
       tshape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
       dtype=st.sampled_from(DTYPES), tdtype=st.sampled_from(DTYPES), special=st.sampled_from(SPECIALS),
       match=st.booleans(), offset=st.sampled_from([0, 0, -1, 3]))
def test_cross_entropy(shape, tshape, dtype, tdtype, special, match, offset):
    if match and len(shape):
        tshape = shape[:-1]
    logits = make_input(shape, dtype, special)
    classes = shape[-1] if len(shape) else 1
    targets = (np.arange(int(np.prod(tshape))) % max(classes, 1) + offset).reshape(tshape)
    targets = np.abs(targets).astype(tdtype) if np.dtype(tdtype).kind == "u" else targets.astype(tdtype)
    out, err = call(tt.nn.cross_entropy, logits, targets)
    valid = (np.dtype(dtype).kind == "f" and len(shape) >= 1 and np.dtype(tdtype).kind in "iu"
             and tuple(tshape) == tuple(shape[:-1])
             and (targets.size == 0 or (targets.min() >= 0 and targets.max() < classes)))
    if valid:
        assert err is None, f"cross_entropy refused logits {shape} {np.dtype(dtype)}, targets {tshape}: {err}"
        assert isinstance(out, Tensor) and out.shape == () and out.dtype.kind == "f"
        if targets.size and np.isnan(logits.data).any():
            assert np.isnan(out.item()), "a NaN logit must give a NaN loss (visible, not hidden)"
    else:
        assert err is not None, (f"cross_entropy accepted logits {shape} {np.dtype(dtype)} with targets "
                                 f"{tshape} {np.dtype(tdtype)} {targets.tolist()}")
        assert_names(err, ("cross_entropy",), shape)


def test_non_tensor_inputs_are_teaching_errors():
    """Lists, None and strings given to layers: a TensorError, not an AttributeError from inside."""
    cases = [(tt.nn.Conv2d(1, 1, 1), None), (tt.nn.MaxPool2d(2), "image"), (tt.nn.LayerNorm(2), [1.0, 2.0]),
             (tt.nn.Embedding(3, 2), "abc"), (tt.nn.Linear(2, 2), "xy")]
    for layer, value in cases:
        out, err = call(layer, value)
        if err is None:  # a plain list may be accepted and converted, like torch.as_tensor would
            assert isinstance(out, Tensor) and isinstance(value, list), f"{layer!r} accepted {value!r}"
        else:
            assert type(layer).__name__.lower()[:6] in str(err).lower() or "tensor" in str(err).lower(), str(err)
