"""Module 09 - Autograd: property-based tests (Hypothesis) of gradients over random shapes.

For random broadcastable shapes, random reduction axes, random permutations and random indices,
the gradient of every input has exactly that input's shape and matches finite differences.
"""
import numpy as np
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinytorch.tensor import Tensor, where
from tinytorch.testing import gradcheck

# No shrinking: examples are derandomized (reproducible) and shrinking the failures of an unfinished
# function would cost tens of seconds per test before the first useful message.
NO_SHRINK = (Phase.explicit, Phase.reuse, Phase.generate)

# derandomize: the same examples on every run, so a grade never depends on luck; no example database files
SETTINGS = settings(max_examples=25, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow], phases=NO_SHRINK)
BINARY = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
          "div": lambda a, b: a / b, "maximum": lambda a, b: a.maximum(b), "minimum": lambda a, b: a.minimum(b),
          "where": lambda a, b: where(a.data > 0, a, b)}


def values(shape, seed):
    """Distinct float64 values away from 0 (no ties for maximum, no division by ~0)."""
    n = int(np.prod(shape))
    v = (np.random.default_rng(seed).permutation(n) + 1.0) * 0.37 / max(n, 1) + 0.1
    return (v * np.where(np.arange(n) % 2, 1.0, -1.0)).reshape(shape)


@SETTINGS
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=3), op=st.sampled_from(sorted(BINARY)))
def test_binary_op_gradients_have_input_shapes_and_are_right(shapes, op):
    a_shape, b_shape = shapes.input_shapes
    a, b = values(a_shape, 0), values(b_shape, 1) + 0.011  # + 0.011: a != b, so no ties in maximum
    x, y = Tensor(a, dtype=np.float64, requires_grad=True), Tensor(b, dtype=np.float64, requires_grad=True)
    out = BINARY[op](x, y)
    assert out.shape == np.broadcast_shapes(a_shape, b_shape)
    out.sum().backward()
    assert x.grad.shape == a_shape and y.grad.shape == b_shape, \
        f"{op}: gradients must have the input shapes {a_shape} and {b_shape}, got {x.grad.shape} and {y.grad.shape}"
    gradcheck(BINARY[op], a, b, name=op)


@SETTINGS
@given(data=st.data(), keepdims=st.booleans(), op=st.sampled_from(["sum", "mean", "max", "min", "var"]))
def test_reduction_gradients_over_random_axes(data, keepdims, op):
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=3))
    axes = data.draw(st.lists(st.integers(-len(shape), len(shape) - 1), max_size=len(shape),
                              unique_by=lambda ax: ax % len(shape)))
    axis = None if not axes else (axes[0] if len(axes) == 1 else tuple(axes))
    x = values(shape, 2)
    gradcheck(lambda t: getattr(t, op)(axis=axis, keepdims=keepdims), x, name=f"{op}(axis={axis})")


@SETTINGS
@given(data=st.data())
def test_reshape_permute_round_trip_passes_the_gradient_through(data):
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=3))
    perm = data.draw(st.permutations(range(len(shape))))
    weight = np.random.default_rng(3).standard_normal(shape)
    x = Tensor(values(shape, 4), dtype=np.float64, requires_grad=True)
    y = x.permute(*perm).reshape(-1).reshape(tuple(shape[p] for p in perm)).permute(*np.argsort(perm))
    (y * weight).sum().backward()
    np.testing.assert_array_equal(x.grad.data, weight, err_msg="permute/reshape and back is the identity, so "
                                                                "the gradient must be the weights themselves")


@SETTINGS
@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4), data=st.data())
def test_getitem_gradients_for_random_indices(shape, data):
    index = data.draw(st.one_of(
        st.integers(-shape[0], shape[0] - 1),
        st.slices(shape[0]),
        st.lists(st.integers(-shape[0], shape[0] - 1), min_size=1, max_size=5),
        hnp.arrays(np.bool_, (shape[0],))))
    gradcheck(lambda t: t[index], values(shape, 5), name=f"getitem[{index!r}]")
