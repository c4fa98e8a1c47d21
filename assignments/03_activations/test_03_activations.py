"""Module 03 - Activations: forward values, numerical stability, and what each op records.

(Forward only: gradients of these functions are checked in module 09.)
"""
import math

import numpy as np
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinytorch as tt
from tinytorch.activations import gelu, leaky_relu, log_softmax, relu, sigmoid, softmax, tanh
from tinytorch.tensor import Tensor, TensorError
from tinytorch.testing import assert_close

# No shrinking: examples are derandomized (reproducible) and shrinking the failures of an unfinished
# function would cost tens of seconds per test before the first useful message.
NO_SHRINK = (Phase.explicit, Phase.reuse, Phase.generate)

rng = np.random.default_rng(0)
A = rng.standard_normal((4, 5)).astype(np.float32) * 3


def ref_gelu(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def ref_softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


REFERENCES = {
    "relu": (relu, lambda x: np.maximum(x, 0)),
    "leaky_relu": (leaky_relu, lambda x: np.where(x > 0, x, 0.01 * x)),
    "sigmoid": (sigmoid, lambda x: 1 / (1 + np.exp(-x))),
    "tanh": (tanh, np.tanh),
    "gelu": (gelu, ref_gelu),
    "softmax": (softmax, ref_softmax),
    "log_softmax": (log_softmax, lambda x: np.log(ref_softmax(x))),
}


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_forward_matches_the_formula(name):
    ours, reference = REFERENCES[name]
    out = ours(Tensor(A))
    assert out.shape == A.shape, f"{name} keeps the shape"
    assert out.dtype == np.float32, f"{name} keeps float32, got {out.dtype}"
    assert_close(out, reference(A.astype(np.float64)), atol=1e-5, rtol=1e-5, what=name)


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_nan_in_nan_out(name):
    """The README's contract: a NaN stays NaN (module 11 stops training on it); it never becomes a number."""
    x = A.copy()
    x[1, 2] = np.nan
    out = REFERENCES[name][0](Tensor(x)).data
    if name in ("softmax", "log_softmax"):   # the NaN spreads over its slice (axis -1), no further
        assert np.isnan(out[1]).all(), f"{name}: a row holding a NaN must give NaN, got {out[1]}"
        assert np.isfinite(np.delete(out, 1, axis=0)).all(), f"{name}: rows without NaN stay finite"
    else:
        assert np.isnan(out[1, 2]), f"{name}(NaN) must be NaN, got {out[1, 2]}"
        assert np.isfinite(np.delete(out.ravel(), 1 * 5 + 2)).all(), f"{name}: other entries stay finite"


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_float64_stays_float64(name):
    out = REFERENCES[name][0](Tensor(A, dtype=np.float64))
    assert out.dtype == np.float64, f"{name} must keep float64 input in float64 (gradcheck relies on it)"


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_records_its_op_name(name):
    out = REFERENCES[name][0](Tensor(A, requires_grad=True))
    assert out.requires_grad and out._ctx.op == name, f"expected op {name!r}, got {out._ctx and out._ctx.op!r}"


def test_saved_values_are_what_the_backward_rules_use():
    x = Tensor(A, requires_grad=True)
    s = sigmoid(x)
    assert vars(s._ctx.saved).keys() == {"out"} and np.array_equal(s._ctx.saved.out, s.data), (
        "sigmoid saves out, its output s (the gradient is s (1 - s))")
    t = tanh(x)
    assert vars(t._ctx.saved).keys() == {"out"} and np.array_equal(t._ctx.saved.out, t.data), "tanh saves its output"
    assert vars(leaky_relu(x, 0.2)._ctx.saved) == {"slope": 0.2}, "leaky_relu saves its slope"
    assert vars(relu(x)._ctx.saved) == {}, "relu saves nothing: its rule reads the input"
    sm = softmax(x, axis=0)
    assert vars(sm._ctx.saved).keys() == {"out", "axis"}, "softmax saves out and axis"
    assert np.array_equal(sm._ctx.saved.out, sm.data) and sm._ctx.saved.axis == 0, "softmax saves (out, axis)"
    ls = log_softmax(x)
    assert np.array_equal(ls._ctx.saved.out, ls.data) and ls._ctx.saved.axis == -1, "log_softmax saves (out, axis)"
    g = gelu(x)
    assert_close(g._ctx.saved.tanh, np.tanh(math.sqrt(2 / math.pi) * (A + 0.044715 * A.astype(np.float64) ** 3)),
                 atol=1e-5, what="gelu saves tanh(sqrt(2/pi) (x + 0.044715 x^3))")


def test_relu_and_leaky_relu_details():
    x = Tensor([-2.0, -0.0, 0.0, 3.0])
    assert relu(x).tolist() == [0.0, 0.0, 0.0, 3.0]
    assert_close(leaky_relu(x, negative_slope=0.1), [-0.2, 0.0, 0.0, 3.0])
    assert x.relu().tolist() == relu(x).tolist(), "x.relu() is the same as relu(x)"


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_softmax_rows_sum_to_one_along_axis(axis):
    s = softmax(Tensor(A), axis=axis)
    assert_close(s.data.sum(axis=axis), np.ones(A.shape[:axis % 2] + A.shape[axis % 2 + 1:]), atol=1e-6,
                 what=f"softmax(axis={axis}) sums to 1 along the axis")
    assert_close(s, ref_softmax(A.astype(np.float64), axis=axis), atol=1e-6)
    assert_close(Tensor(A).softmax(axis), s)
    assert_close(log_softmax(Tensor(A), axis=axis), np.log(ref_softmax(A.astype(np.float64), axis=axis)), atol=1e-5)


def test_softmax_is_shift_invariant():
    assert_close(softmax(Tensor(A + 50.0)), softmax(Tensor(A)), atol=2e-5,
                 what="softmax(x + c) == softmax(x): subtract the max before exp")


@pytest.mark.parametrize("scale", [1e4, -1e4])
def test_stable_for_huge_inputs(scale):
    """|x| ~ 1e4: a naive exp overflows float32 (inf / inf = nan); a stable version gives exact answers."""
    x = np.array([[1.0, 0.0, -1.0], [0.5, 0.5, -2.0]], dtype=np.float32) * scale
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        s = softmax(Tensor(x)).data
        ls = log_softmax(Tensor(x)).data
        sg = sigmoid(Tensor(x)).data
        th = tanh(Tensor(x)).data
    assert np.isfinite(s).all() and np.isfinite(ls).all() and np.isfinite(sg).all(), "no inf/nan at |x| ~ 1e4"
    assert_close(s, ref_softmax(x.astype(np.float64)), atol=1e-6, what=f"softmax at scale {scale}")
    x64 = x.astype(np.float64)
    assert_close(ls, x64 - x64.max(-1, keepdims=True) - np.log(np.exp(x64 - x64.max(-1, keepdims=True)).sum(-1, keepdims=True)),
                 rtol=1e-6, what=f"log_softmax at scale {scale}")
    assert_close(sg, np.where(x > 0, 1.0, np.where(x < 0, 0.0, 0.5)), atol=1e-6, what="sigmoid saturates to 0 / 1")
    assert_close(th, np.sign(x), atol=1e-6)


def test_log_softmax_never_gives_log_zero():
    ls = log_softmax(Tensor([[0.0, -1e4]]))
    assert np.isfinite(ls.data).all() and abs(ls.data[0, 1] + 1e4) < 1, \
        f"log_softmax of [0, -1e4] is about [0, -1e4], not -inf: got {ls.data}"


def test_empty_input_gives_empty_output():
    for name, (fn, _) in REFERENCES.items():
        assert fn(Tensor(np.zeros((3, 0), np.float32))).shape == (3, 0), name


@pytest.mark.given   # the input checks are given code: passes once module 02 works, with no work here
@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_bad_input_names_the_activation(name):
    fn = REFERENCES[name][0]
    with pytest.raises(TensorError, match=name):
        fn(Tensor([1, 2, 3]))  # integers: no activation of labels
    with pytest.raises(TensorError, match=name):
        fn(np.ones(3))  # not a Tensor


@pytest.mark.given   # the input checks are given code: passes once module 02 works, with no work here
@pytest.mark.parametrize("fn", [softmax, log_softmax])
def test_softmax_axis_out_of_range(fn):
    with pytest.raises(TensorError, match=r"axis 2.*\(4, 5\)"):
        fn(Tensor(A), axis=2)


@pytest.mark.given   # passes with no work in this module: checks code the course gives
def test_package_exports_the_activations():
    for name in REFERENCES:
        assert getattr(tt, name) is REFERENCES[name][0], f"tt.{name} should be tinytorch.activations.{name}"


@settings(max_examples=40, deadline=None, derandomize=True, database=None, phases=NO_SHRINK)  # the same examples every run
@given(x=hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=3, max_side=5),
                    elements=st.floats(-3e4, 3e4, width=32)))
def test_softmax_is_a_distribution_for_any_input(x):
    with np.errstate(over="raise", invalid="raise"):
        s = softmax(Tensor(x)).data
        ls = log_softmax(Tensor(x)).data
        sg = sigmoid(Tensor(x)).data
    assert np.all((s >= 0) & (s <= 1)) and np.allclose(s.sum(-1), 1, atol=1e-5)
    assert np.all(ls <= 1e-6) and np.isfinite(ls).all()
    assert np.all((sg >= 0) & (sg <= 1))
