"""Module 09 - Autograd: gradient rules of modules 02, 03 and 05's layer_norm, and graph semantics.

Part 1 checks every gradient rule against central finite differences in float64 at every input
element (`tinytorch.testing.gradcheck`), and that no rule of those modules is left unchecked.
Part 2 checks how backward() walks the graph: accumulation, broadcasting, no_grad, detach,
zero_grad, very deep graphs, calling backward twice, and the errors it raises.
"""
import inspect
import sys

import numpy as np
import pytest

import tinytorch as tt
from tinytorch import autograd
from tinytorch.activations import gelu, leaky_relu, log_softmax, relu, sigmoid, softmax, tanh
from tinytorch.autograd import GRADIENTS, gradient_of, no_grad, topological_order, unbroadcast
from tinytorch.networks import layer_norm
from tinytorch.tensor import Tensor, TensorError, cat, pad, stack, where
from tinytorch.testing import assert_close, gradcheck


def r(*shape, seed=0):
    """Standard normal float64 values."""
    return np.random.default_rng(seed + 17 * len(shape)).standard_normal(shape)


def pos(*shape, seed=0):
    """Positive values, away from 0 (for log, sqrt, division, fractional powers)."""
    return np.abs(r(*shape, seed=seed)) + 0.5


def away(*shape, seed=0, kink=0.0):
    """Values at least 0.1 away from a kink (abs, relu, clip bounds) so finite differences are exact."""
    v = r(*shape, seed=seed)
    return np.where(v >= 0, v + 0.1, v - 0.1) + kink


def distinct(*shape, seed=0):
    """Values with no ties (max/min), at least 0.1 apart."""
    n = int(np.prod(shape))
    return np.random.default_rng(seed).permutation(n).reshape(shape) * 0.1 - 0.05 * n


MASK = np.array([[True, False, True, False]])
PICK = np.array([[True, False, True], [False, False, True]])

# (name, fn, inputs): gradcheck(fn, *inputs). Integer inputs (indices) are passed through untouched.
CASES = [
    ("add", lambda a, b: a + b, [r(3, 4), r(4)]),
    ("add_keepdim_broadcast", lambda a, b: a + b, [r(2, 1, 3), r(4, 1)]),
    ("add_number", lambda a: a + 2.0, [r(3)]),
    ("radd_number", lambda a: 2.0 + a, [r(3)]),
    ("sub", lambda a, b: a - b, [r(3, 1), r(1, 4)]),
    ("rsub_number", lambda a: 1.0 - a, [r(2, 2)]),
    ("mul", lambda a, b: a * b, [r(2, 3), r(3)]),
    ("mul_reused_input", lambda a: a * a, [r(5)]),
    ("div", lambda a, b: a / b, [r(2, 3), pos(2, 1)]),
    ("rdiv_number", lambda a: 2.0 / a, [pos(4)]),
    ("pow_2", lambda a: a ** 2, [r(3, 2)]),
    ("pow_3", lambda a: a ** 3, [r(4)]),
    ("pow_half", lambda a: a ** 0.5, [pos(4)]),
    ("pow_negative", lambda a: a ** -1.5, [pos(4)]),
    ("pow_0", lambda a: a ** 0, [r(3)]),
    ("rpow", lambda a: 2.0 ** a, [r(3)]),
    ("neg", lambda a: -a, [r(2, 3)]),
    ("exp", lambda a: a.exp(), [r(2, 3)]),
    ("log", lambda a: a.log(), [pos(2, 3)]),
    ("sqrt", lambda a: a.sqrt(), [pos(2, 3)]),
    ("abs", lambda a: a.abs(), [away(2, 3)]),
    ("sin", lambda a: a.sin(), [r(2, 3)]),
    ("cos", lambda a: a.cos(), [r(2, 3)]),
    ("clip", lambda a: a.clip(-0.5, 0.5), [np.array([-1.2, -0.3, 0.1, 0.4, 0.9, -0.7])]),
    ("clip_low_only", lambda a: a.clip(low=0.25), [away(5, kink=0.25)]),
    ("clip_high_only", lambda a: a.clip(high=-0.25), [away(5, kink=-0.25)]),
    ("maximum", lambda a, b: a.maximum(b), [distinct(2, 3), distinct(2, 3, seed=1) + 0.05]),
    ("maximum_broadcast", lambda a, b: a.maximum(b), [distinct(2, 3), np.array([0.03, -0.12, 0.21])]),
    ("minimum", lambda a, b: a.minimum(b), [distinct(3, 2), np.array([[0.07], [-0.13], [0.02]])]),
    ("masked_fill", lambda a: a.masked_fill(MASK, 3.0), [r(3, 4)]),
    ("matmul_2d", lambda a, b: a @ b, [r(3, 4), r(4, 5)]),
    ("matmul_1d_left", lambda a, b: a @ b, [r(4), r(4, 5)]),
    ("matmul_1d_right", lambda a, b: a @ b, [r(3, 4), r(4)]),
    ("matmul_dot", lambda a, b: a @ b, [r(4), r(4, seed=1)]),
    ("matmul_batched", lambda a, b: a @ b, [r(2, 3, 4), r(2, 4, 2)]),
    ("matmul_batch_times_matrix", lambda a, b: a @ b, [r(2, 3, 4), r(4, 2)]),
    ("matmul_broadcast_batch", lambda a, b: a @ b, [r(2, 1, 3, 4), r(3, 4, 2)]),
    ("matmul_1d_times_batch", lambda a, b: a @ b, [r(4), r(2, 4, 3)]),
    ("matmul_batch_times_1d", lambda a, b: a @ b, [r(2, 3, 4), r(4)]),
    ("rmatmul_array", lambda a: np.ones((2, 3)) @ a, [r(3, 2)]),
    ("sum_all", lambda a: a.sum(), [r(2, 3)]),
    ("sum_axis0", lambda a: a.sum(0), [r(2, 3)]),
    ("sum_negative_axis_keepdims", lambda a: a.sum(-1, keepdims=True), [r(2, 3, 2)]),
    ("sum_tuple_axes", lambda a: a.sum((0, 2)), [r(2, 3, 2)]),
    ("mean_all", lambda a: a.mean(), [r(2, 3)]),
    ("mean_axis1", lambda a: a.mean(1), [r(2, 3, 2)]),
    ("mean_tuple_keepdims", lambda a: a.mean((0, -1), keepdims=True), [r(2, 3, 2)]),
    ("max_all", lambda a: a.max(), [distinct(2, 3)]),
    ("max_axis", lambda a: a.max(axis=1), [distinct(2, 3, 2)]),
    ("max_keepdims", lambda a: a.max(axis=-1, keepdims=True), [distinct(3, 4)]),
    ("max_tuple_axes", lambda a: a.max((0, 2)), [distinct(2, 3, 2)]),
    ("min_all", lambda a: a.min(), [distinct(2, 3)]),
    ("min_axis", lambda a: a.min(axis=-2), [distinct(3, 4)]),
    ("var_all", lambda a: a.var(), [r(2, 3)]),
    ("var_axis_unbiased", lambda a: a.var(0, unbiased=True), [r(3, 2)]),
    ("std_axis_keepdims", lambda a: a.std(1, keepdims=True), [r(2, 4)]),
    ("reshape", lambda a: a.reshape(3, 2) * np.arange(6.0).reshape(3, 2), [r(2, 3)]),
    ("view_flat", lambda a: a.view(-1), [r(2, 3)]),
    ("permute", lambda a: a.permute(2, 0, 1), [r(2, 3, 4)]),
    ("permute_negative_axes", lambda a: a.permute(0, -1, 1), [r(2, 3, 4)]),
    ("transpose", lambda a: a.transpose(0, 2), [r(2, 3, 4)]),
    ("T", lambda a: a.T @ np.arange(6.0).reshape(2, 3), [r(2, 4)]),
    ("squeeze", lambda a: a.squeeze(1), [r(3, 1, 2)]),
    ("unsqueeze", lambda a: a.unsqueeze(-1), [r(3, 2)]),
    ("flatten", lambda a: a.flatten(1), [r(2, 3, 2)]),
    ("getitem_int", lambda a: a[1], [r(3, 4)]),
    ("getitem_slice_step", lambda a: a[::2, 1:], [r(5, 3)]),
    ("getitem_negative_slice", lambda a: a[:, ::-1][-2:], [r(4, 3)]),
    ("getitem_fancy_with_repeats", lambda a: a[[0, 2, 2, 0]], [r(3, 2)]),
    ("getitem_bool_mask", lambda a: a[PICK], [r(2, 3)]),
    ("getitem_tuple_of_arrays", lambda a: a[np.array([0, 1, 1]), np.array([2, 0, 2])], [r(2, 3)]),
    ("getitem_ellipsis_none", lambda a: a[..., None, 1], [r(2, 3)]),
    ("getitem_labels_tensor", lambda a, labels: a[np.arange(4), labels], [r(4, 3), np.array([2, 0, 0, 1])]),
    ("cat_axis0", lambda a, b, c: cat([a, b, c]), [r(2, 3), r(1, 3), r(3, 3)]),
    ("cat_negative_axis_reused", lambda a, b: cat([a, b, a], axis=-1), [r(2, 2), r(2, 3)]),
    ("stack", lambda a, b: stack([a, b], axis=1), [r(2, 3), r(2, 3, seed=1)]),
    ("split", lambda a: cat([p * (i + 1.0) for i, p in enumerate(a.split(2))]) + a.split([1, 2], axis=1)[1].sum(),
     [r(5, 3)]),
    ("where", lambda a, b: where(PICK, a, b), [r(2, 3), r(2, 3, seed=1)]),
    ("where_broadcast", lambda a, b: where(PICK, a, b), [r(3), r(2, 1)]),
    ("where_number", lambda a: where(PICK, a, 0.0), [r(2, 3)]),
    ("broadcast_to", lambda a: a.broadcast_to(2, 3, 4), [r(3, 1)]),
    ("expand", lambda a: a.expand(4, -1), [r(1, 3)]),
    ("pad", lambda a: pad(a, ((1, 0), (2, 1)), value=5.0), [r(2, 3)]),
    ("clone", lambda a: a.clone() * a, [r(3)]),
    ("relu", relu, [away(3, 4)]),
    ("leaky_relu", lambda a: leaky_relu(a, 0.2), [away(3, 4)]),
    ("sigmoid", sigmoid, [r(3, 4) * 3]),
    ("tanh", tanh, [r(3, 4) * 2]),
    ("gelu", gelu, [r(3, 4) * 2]),
    ("softmax_last_axis", softmax, [r(3, 4)]),
    ("softmax_axis0", lambda a: softmax(a, axis=0), [r(3, 4)]),
    ("log_softmax_last_axis", log_softmax, [r(3, 4)]),
    ("log_softmax_axis0", lambda a: log_softmax(a, axis=0), [r(3, 4)]),
    ("layer_norm", lambda x, w, b: layer_norm(x, w, b), [r(2, 3, 4), r(4, seed=1), r(4, seed=2)]),
    ("layer_norm_no_affine", lambda x: layer_norm(x), [r(3, 5)]),
    ("mlp", lambda x, w1, b1, w2: log_softmax(tanh(x @ w1 + b1) @ w2).mean(), [r(4, 3), r(3, 5), r(5), r(5, 2)]),
]


@pytest.mark.parametrize("name, fn, inputs", CASES, ids=[c[0] for c in CASES])
def test_gradcheck(name, fn, inputs):
    """backward() must agree with central finite differences (float64) at every input element."""
    gradcheck(fn, *inputs, name=name)


def _ops_in_graph(out: Tensor) -> set:
    return {node._ctx.op for node in topological_order(out) if node._ctx is not None}


def _core_rules() -> set:
    """Ops whose rule is written in autograd.py for modules 02, 03 and 05 (before module 06's section)."""
    source = inspect.getsourcefile(autograd)
    lines = open(source, encoding="utf-8").read().splitlines()
    end = next((i + 1 for i, line in enumerate(lines) if line.startswith("# ---- rules for module 06")), len(lines) + 1)
    return {op for op, rule in GRADIENTS.items()
            if inspect.getsourcefile(rule) == source and inspect.getsourcelines(rule)[1] < end}


def test_every_rule_of_modules_02_03_05_is_gradchecked():
    covered = set()
    for _, fn, inputs in CASES:
        tensors = [Tensor(a, dtype=a.dtype, requires_grad=a.dtype.kind == "f") for a in inputs]
        covered |= _ops_in_graph(fn(*tensors))
    missing = _core_rules() - covered
    assert not missing, f"these ops have a rule in autograd.py but no gradcheck case here: {sorted(missing)}"
    assert {"add", "matmul", "getitem", "softmax", "layer_norm", "where", "pad"} <= covered


# ---- graph semantics --------------------------------------------------------------------------------
def test_reused_node_accumulates_gradients():
    x = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    (x * x + x).sum().backward()  # d/dx (x^2 + x) = 2x + 1: x is used three times
    assert_close(x.grad, [3.0, 5.0, 7.0], what="gradient of a tensor used 3 times is the sum of 3 contributions")
    y = Tensor([2.0], requires_grad=True)
    a = y * 3.0
    (a * a + a).sum().backward()  # a = 3y reused: d/dy (9y^2 + 3y) = 18y + 3
    assert_close(y.grad, [39.0], what="a reused intermediate node passes the summed gradient on")


def test_broadcasting_is_reduced_to_the_input_shapes():
    x = Tensor(np.ones((3, 1)), requires_grad=True)
    y = Tensor(np.ones(4), requires_grad=True)
    b = Tensor(2.0, requires_grad=True)
    ((x + y) * b).sum().backward()
    assert x.grad.shape == (3, 1) and y.grad.shape == (4,) and b.grad.shape == (), "grads have the inputs' shapes"
    assert_close(x.grad, np.full((3, 1), 8.0), what="x (3,1) was copied along 4 columns: grad 4 * b")
    assert_close(y.grad, np.full(4, 6.0), what="y (4,) was copied along 3 rows: grad 3 * b")
    assert_close(b.grad, 24.0, what="b was copied to all 12 elements, each x + y = 2")


def test_gradients_have_the_leaf_dtype_and_are_independent_writable_arrays():
    x = Tensor(np.ones(4, np.float32), requires_grad=True)
    y = Tensor(np.ones(4, np.float32), requires_grad=True)
    (x + y).sum().backward()
    assert x.grad.dtype == np.float32 and x.grad.data.flags.writeable and x.grad.data.flags.c_contiguous
    assert not np.shares_memory(x.grad.data, y.grad.data), "two leaves must never share one gradient array"
    x.grad.data *= 10  # an optimizer may scale gradients in place
    assert_close(y.grad, np.ones(4), what="scaling x.grad in place must not change y.grad")
    z = Tensor(np.ones(3, np.float32), requires_grad=True)
    (z * np.float64(2.0)).sum().backward()
    assert z.grad.dtype == np.float32, "a float32 leaf gets a float32 gradient"
    given = np.ones(3, np.float32)
    w = Tensor(np.ones(3, np.float32), requires_grad=True)
    w.backward(given)
    w.grad.data += 1
    assert given.tolist() == [1.0, 1.0, 1.0], "the gradient passed to backward() must not become leaf.grad itself"


def test_only_leaves_keep_gradients_and_integer_inputs_get_none():
    x = Tensor(r(4, 3), requires_grad=True)
    labels = Tensor(np.array([0, 2, 1, 1]))
    h = x * 2
    h[np.arange(4), labels].sum().backward()
    assert h.grad is None and labels.grad is None
    expected = np.zeros((4, 3))
    expected[np.arange(4), [0, 2, 1, 1]] = 2
    assert_close(x.grad, expected)


def test_max_ties_share_the_gradient_and_maximum_ties_go_to_self():
    x = Tensor([1.0, 3.0, 3.0], requires_grad=True)
    x.max().backward()
    assert_close(x.grad, [0.0, 0.5, 0.5], what="max with a tie: the two winners share the gradient")
    m = Tensor([[2.0, 2.0], [1.0, 5.0]], requires_grad=True)
    m.min(axis=1).sum().backward()
    assert_close(m.grad, [[0.5, 0.5], [1.0, 0.0]])
    a, b = Tensor([1.0, 2.0], requires_grad=True), Tensor([1.0, 0.0], requires_grad=True)
    a.maximum(b).sum().backward()
    assert_close(a.grad, [1.0, 1.0]); assert_close(b.grad, [0.0, 0.0])


def test_fancy_index_with_repeats_adds_up():
    x = Tensor(np.zeros(3), requires_grad=True)
    x[[0, 0, 2, 0]].sum().backward()
    assert_close(x.grad, [3.0, 0.0, 1.0], what="an element picked 3 times gets 3 gradients (np.add.at, not =)")


@pytest.mark.given   # passes with no work in this module: checks code the course gives
def test_no_grad_records_nothing_and_restores_the_mode():
    x = Tensor([1.0], requires_grad=True)
    with no_grad():
        y = x * 2
        assert not tt.is_grad_enabled()
        with tt.enable_grad():
            z = x * 2
        assert not tt.is_grad_enabled()
    assert tt.is_grad_enabled()
    assert not y.requires_grad and y._ctx is None, "inside no_grad() no graph is recorded"
    assert z.requires_grad, "enable_grad() inside no_grad() records again"

    @no_grad()
    def evaluate():
        return x * 3
    assert not evaluate().requires_grad, "no_grad() also works as a decorator"
    try:
        with no_grad():
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert tt.is_grad_enabled(), "an exception inside no_grad() must not leave gradients switched off"


def test_detach_stops_the_gradient():
    x = Tensor([2.0], requires_grad=True)
    (x * x.detach()).sum().backward()
    assert_close(x.grad, [2.0], what="d/dx (x * const) = const: the detached copy is a constant")


def test_zero_grad_and_backward_twice_accumulates():
    x = Tensor([1.0, 2.0], requires_grad=True)
    loss = (x * x).sum()
    loss.backward()
    loss.backward()
    assert_close(x.grad, [4.0, 8.0], what="two backward() calls add up (2 * 2x)")
    x.zero_grad()
    assert x.grad is None
    (x * 3).sum().backward()
    assert_close(x.grad, [3.0, 3.0], what="after zero_grad() the gradient starts from zero")


def test_explicit_gradient_for_a_non_scalar_output():
    x = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    (x * 2).backward(np.array([1.0, 0.0, -1.0]))
    assert_close(x.grad, [2.0, 0.0, -2.0])


def test_scalar_leaf_backward():
    x = Tensor(3.0, requires_grad=True)
    x.backward()
    assert_close(x.grad, 1.0)


def test_a_100_000_deep_chain_needs_no_recursion():
    x = Tensor(np.ones(1, np.float32), requires_grad=True)
    y = x
    for _ in range(100_000):
        y = -y  # an even number of negations: the gradient is 1
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(200)  # a recursive topological sort would fail at once
    try:
        y.sum().backward()
    finally:
        sys.setrecursionlimit(limit)
    assert_close(x.grad, [1.0], what="gradient through 100 000 additions")
    del y  # freeing a 100 000-deep graph must not crash either


def test_topological_order_puts_parents_first():
    x = Tensor([1.0], requires_grad=True)
    c = Tensor([2.0])
    a = x * 2
    b = a + x
    out = (b * a * c).sum()
    order = topological_order(out)
    position = {id(t): i for i, t in enumerate(order)}
    for node in order:
        for parent in (node._ctx.parents if node._ctx else ()):
            if parent.requires_grad:
                assert position[id(parent)] < position[id(node)], "every node must come after its parents"
    assert order[-1] is out and id(c) not in position, "constants that need no gradient are skipped"
    assert len(order) == len({id(t) for t in order}) == 6, "each node once"


def test_unbroadcast():
    g = np.arange(24.0).reshape(2, 3, 4)
    assert_close(unbroadcast(g, (2, 3, 4)), g)
    assert_close(unbroadcast(g, (4,)), g.sum((0, 1)))
    assert_close(unbroadcast(g, (3, 1)), g.sum(0).sum(1, keepdims=True))
    assert_close(unbroadcast(g, ()), g.sum())
    assert_close(unbroadcast(g, (2, 1, 1)), g.sum((1, 2), keepdims=True))


def test_softmax_gradient_is_finite_at_huge_inputs():
    x = Tensor(np.array([[1e4, 0.0, -1e4]], np.float32), requires_grad=True)
    (log_softmax(x)[0, 1] + softmax(x)[0, 0]).backward()
    assert np.isfinite(x.grad.data).all(), f"gradients at |x| ~ 1e4 must be finite, got {x.grad.data}"


# ---- errors -----------------------------------------------------------------------------------------
@pytest.mark.given   # passes with no work in this module: checks code the course gives
def test_backward_on_a_non_scalar_without_gradient_says_so():
    x = Tensor(np.ones((2, 3)), requires_grad=True)
    with pytest.raises(TensorError, match=r"backward.*\(2, 3\).*scalar"):
        (x * 2).backward()


@pytest.mark.given   # passes with no work in this module: checks code the course gives
def test_backward_errors_name_the_problem():
    with pytest.raises(TensorError, match="does not require a gradient"):
        Tensor([1.0]).sum().backward()
    x = Tensor(np.ones(3), requires_grad=True)
    with pytest.raises(TensorError, match=r"gradient shape \(2,\) does not match output shape \(3,\)"):
        (x * 2).backward(np.ones(2))
    with no_grad():
        y = x * 2
    with pytest.raises(TensorError, match="no_grad"):
        y.sum().backward()


def test_missing_or_broken_rules_are_named():
    """The README asks for a TensorError that names the op, and for a wrong shape both shapes."""
    x = Tensor(np.ones(3), requires_grad=True)
    with pytest.raises(TensorError, match="mystery_op"):
        Tensor._make(x.data * 2, "mystery_op", (x,)).sum().backward()
    try:
        @gradient_of("bad_shape_op")
        def _bad(ctx, g):
            return (g.sum(keepdims=True),)

        @gradient_of("bad_arity_op")
        def _bad_arity(ctx, g):
            return g
        with pytest.raises(TensorError, match="bad_shape_op") as info:
            Tensor._make(x.data * 2, "bad_shape_op", (x,)).sum().backward()
        assert "(1,)" in str(info.value) and "(3,)" in str(info.value), \
            f"a wrong-shape error names both shapes, the gradient's (1,) and the input's (3,): {info.value}"
        with pytest.raises(TensorError, match="bad_arity_op"):
            Tensor._make(x.data * 2, "bad_arity_op", (x,)).sum().backward()
    finally:
        GRADIENTS.pop("bad_shape_op", None)
        GRADIENTS.pop("bad_arity_op", None)


def test_gradcheck_itself_catches_a_wrong_rule():
    original = GRADIENTS["exp"]
    GRADIENTS["exp"] = lambda ctx, g: (g * 2 * ctx.saved.out,)
    try:
        with pytest.raises(AssertionError, match="gradcheck exp"):
            gradcheck(lambda a: a.exp(), r(3), name="exp")
    finally:
        GRADIENTS["exp"] = original
