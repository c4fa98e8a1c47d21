"""Module 09 - Autograd: reverse-mode automatic differentiation.

Every op of modules 02-07 records a `Context(op, parents, saved)` on its output (see
`Tensor._make`). This module holds the other half: for each op name, a *gradient rule* that takes
the context and the gradient of the loss with respect to the op's output (an ndarray of the
output's shape) and returns one gradient per parent (an ndarray of that parent's shape, or None
when the parent needs none). A rule reads what its forward saved by name (`ctx.saved.axis`); the
forward's docstring lists those names, and each rule's docstring names its forward.

`backward(root)` walks the graph in reverse topological order - found with an explicit stack, so a
graph 100 000 ops deep does not hit Python's recursion limit - and accumulates gradients, so a
tensor used twice receives the sum of both contributions.

Rules must not modify the arrays they are given (`g`, saved values, parents' data): they return new
arrays or views. Later modules that bring new fast ops (module 13) register their own rules with
`@gradient_of`.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable

import numpy as np

from tinytorch.channels_last import column_sums, nhwc_rows, scatter_windows
from tinytorch.tensor import Tensor, TensorError, grad_mode

GradientRule = Callable[..., tuple]
GRADIENTS: dict[str, GradientRule] = {}


def gradient_of(op: str):
    """Register the gradient rule of `op`: `rule(ctx, grad) -> tuple of parent gradients`."""
    def register(rule: GradientRule) -> GradientRule:
        GRADIENTS[op] = rule
        return rule
    return register


@contextmanager
def no_grad():
    """Inside this block no graph is recorded: use it for evaluation and for optimizer updates."""
    previous = grad_mode.enabled
    grad_mode.enabled = False
    try:
        yield
    finally:
        grad_mode.enabled = previous


@contextmanager
def enable_grad():
    previous = grad_mode.enabled
    grad_mode.enabled = True
    try:
        yield
    finally:
        grad_mode.enabled = previous


def is_grad_enabled() -> bool:
    return grad_mode.enabled


def unbroadcast(grad: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum `grad` down to `shape`, undoing NumPy broadcasting.

    Broadcasting copies an input along new leading axes and along axes of size 1; the gradient of a
    copy is the sum of the gradients of all the copies. (3, 4) -> (4,) sums axis 0; (3, 4) -> (3, 1)
    sums axis 1 keeping it.
    """
    # BEGIN SOLUTION sum grad over the broadcast axes so it gets the given shape
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, s in enumerate(shape) if s == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)
    # END SOLUTION


def topological_order(root: Tensor) -> list[Tensor]:
    """Every tensor `root` depends on through recorded ops, each after all of its parents.

    Only tensors that require a gradient are visited. Depth-first search with an explicit stack
    (no recursion, so a chain 100 000 ops long works): a node is looked at twice - the first time its
    parents are pushed on top of it, the second time (they are all finished) it joins the order.
    A node pushed by two children sits on the stack twice, so "finished" is checked before it
    joins; a leaf has no parents and is finished as soon as it is seen.

    The sets hold tensors by identity: Tensor.__hash__ is object.__hash__ and distinct live objects
    never share a hash, so `node in expanded` never calls Tensor.__eq__ (which compares values
    element-wise and returns a tensor).
    """
    # BEGIN SOLUTION order the graph with an explicit stack (no recursion)
    if root._ctx is None:
        return [root]
    order: list[Tensor] = []
    expanded: set[Tensor] = set()
    finished: set[Tensor] = set()
    stack = [root]
    while stack:
        node = stack[-1]
        if node in expanded:
            stack.pop()
            if node not in finished:
                finished.add(node)
                order.append(node)
            continue
        expanded.add(node)
        for parent in node._ctx.parents:
            if parent.requires_grad and parent not in expanded:
                if parent._ctx is None:
                    expanded.add(parent)
                    order.append(parent)
                else:
                    stack.append(parent)
    return order
    # END SOLUTION


def _keep_leaf_gradient(leaf: Tensor, g: np.ndarray, owned: set) -> None:
    """Add `g` to `leaf.grad`. The first gradient is stored without a copy when this pass made it
    (a fresh, writable array no other leaf holds), because optimizers update `.grad` in place."""
    if g.dtype is not leaf.data.dtype:
        g = g.astype(leaf.data.dtype)  # a fresh array
    if leaf.grad is not None:  # accumulate: the sum is a new array, so g itself is never kept
        leaf.grad.data = leaf.grad.data + g
        return
    if g.base is not None or id(g) in owned or not g.flags.writeable:
        g = g.copy()  # a view, the caller's gradient, or shared with another leaf
    owned.add(id(g))
    leaf.grad = Tensor._wrap(g)


def backward(root: Tensor, grad=None) -> None:
    """Accumulate d(root)/d(leaf) into `leaf.grad` for every leaf that requires a gradient.

    A dict holds the pending gradient of each node, starting with {root: grad}. Visiting the nodes
    in reverse topological order means a node used twice has collected every contribution before
    its own rule runs. A leaf keeps its gradient; any other node hands it to its rule, whose result
    is checked (one gradient per parent, of the parent's shape) so a wrong rule fails loudly here.
    """
    if not root.requires_grad:
        raise TensorError("backward: this tensor does not require a gradient; did you create the "
                          "parameters with requires_grad=True, or compute it inside no_grad()?")
    if grad is None:
        if root.data.size != 1:
            raise TensorError(f"backward: the output has shape {root.shape}; backward() without a gradient "
                              "argument only works on a scalar (e.g. a loss). Pass grad= of the same shape "
                              "or reduce with .sum() / .mean() first")
        # d root / d root = 1 (np.array is much faster than np.ones for the usual 0-d loss)
        grad = np.array(1, dtype=root.data.dtype) if root.data.ndim == 0 else np.ones_like(root.data)
        owned = set()
    else:
        grad = np.asarray(grad.data if isinstance(grad, Tensor) else grad, dtype=root.data.dtype)
        if grad.shape != root.data.shape:
            raise TensorError(f"backward: gradient shape {grad.shape} does not match output shape {root.shape}")
        owned = {id(grad)}  # the caller's array: a leaf must not keep it without copying
    # BEGIN SOLUTION run the gradient rules in reverse topological order, summing per node
    grads: dict[Tensor, np.ndarray] = {root: grad}  # gradient of root w.r.t. each pending node
    for node in reversed(topological_order(root)):
        g = grads.pop(node, None)
        if g is None:
            continue
        ctx = node._ctx
        if ctx is None:  # a leaf: keep its gradient
            _keep_leaf_gradient(node, g, owned)
            continue
        rule = GRADIENTS.get(ctx.op)
        if rule is None:
            raise TensorError(f"backward: no gradient rule for op '{ctx.op}'; register one with "
                              f"@gradient_of({ctx.op!r}) in tinytorch/autograd.py")
        parent_grads = rule(ctx, g)
        if not isinstance(parent_grads, (tuple, list)) or len(parent_grads) != len(ctx.parents):
            raise TensorError(f"backward: the rule for '{ctx.op}' must return a tuple with one gradient (or "
                              f"None) per input, {len(ctx.parents)} in all; got {type(parent_grads).__name__}")
        for parent, pg in zip(ctx.parents, parent_grads):
            if pg is None or not parent.requires_grad:
                continue
            if type(pg) is not np.ndarray:
                pg = np.asarray(pg)  # NumPy returns scalars for 0-d results
            if pg.shape != parent.data.shape:
                raise TensorError(f"backward: the rule for '{ctx.op}' gave a gradient of shape {pg.shape} "
                                  f"for an input of shape {parent.shape}")
            previous = grads.get(parent)
            grads[parent] = pg if previous is None else previous + pg
    # END SOLUTION


# ---- rules for module 02: tensor ops -----------------------------------------------------------------
# Each rule's docstring names its forward; the forward's docstring lists what it saved (ctx.saved.<name>).
@gradient_of("add")
def _add(ctx, g):
    """Rule of `a + b` (Tensor._binary): the gradient passes to both, summed back over broadcast axes."""
    # BEGIN SOLUTION
    a, b = ctx.parents
    return (unbroadcast(g, a.shape) if a.requires_grad else None,
            unbroadcast(g, b.shape) if b.requires_grad else None)
    # END SOLUTION


@gradient_of("sub")
def _sub(ctx, g):
    """Rule of `a - b` (Tensor._binary): g to a, -g to b."""
    # BEGIN SOLUTION
    a, b = ctx.parents
    return (unbroadcast(g, a.shape) if a.requires_grad else None,
            unbroadcast(-g, b.shape) if b.requires_grad else None)
    # END SOLUTION


@gradient_of("mul")
def _mul(ctx, g):
    """Rule of `a * b` (Tensor._binary): d(ab)/da = b, d(ab)/db = a."""
    # BEGIN SOLUTION
    a, b = ctx.parents
    ga = unbroadcast(g * b.data, a.shape) if a.requires_grad else None
    gb = unbroadcast(g * a.data, b.shape) if b.requires_grad else None
    return ga, gb
    # END SOLUTION


@gradient_of("div")
def _div(ctx, g):
    """Rule of `a / b` (Tensor._binary): d(a/b)/da = 1/b, d(a/b)/db = -a/b^2."""
    # BEGIN SOLUTION
    a, b = ctx.parents
    ga = unbroadcast(g / b.data, a.shape) if a.requires_grad else None
    gb = unbroadcast(-g * a.data / (b.data * b.data), b.shape) if b.requires_grad else None
    return ga, gb
    # END SOLUTION


@gradient_of("pow")
def _pow(ctx, g):
    """Rule of `Tensor.__pow__`: d(x^p)/dx = p x^(p-1); for p = 0 the result is constant (and
    0 * 0 ** -1 would be nan), so the gradient is 0."""
    # BEGIN SOLUTION
    (a,), p = ctx.parents, ctx.saved.p
    if p == 0.0:
        return (np.zeros_like(g),)
    return (g * (p * np.power(a.data, p - 1)).astype(a.data.dtype, copy=False),)
    # END SOLUTION


@gradient_of("neg")
def _neg(ctx, g):
    """Rule of `-x` (Tensor.__neg__)."""
    # BEGIN SOLUTION
    return (-g,)
    # END SOLUTION


@gradient_of("exp")
def _exp(ctx, g):
    """Rule of `Tensor.exp`: the derivative of exp is exp, the saved output."""
    # BEGIN SOLUTION
    return (g * ctx.saved.out,)
    # END SOLUTION


@gradient_of("log")
def _log(ctx, g):
    """Rule of `Tensor.log`: d log(x)/dx = 1/x."""
    # BEGIN SOLUTION
    return (g / ctx.parents[0].data,)
    # END SOLUTION


@gradient_of("sqrt")
def _sqrt(ctx, g):
    """Rule of `Tensor.sqrt`: d sqrt(x)/dx = 0.5 / sqrt(x), with sqrt(x) the saved output."""
    # BEGIN SOLUTION
    return (g * 0.5 / ctx.saved.out,)
    # END SOLUTION


@gradient_of("abs")
def _abs(ctx, g):
    """Rule of `Tensor.abs`: the sign of x (0 at 0, as PyTorch)."""
    # BEGIN SOLUTION
    return (g * np.sign(ctx.parents[0].data),)
    # END SOLUTION


@gradient_of("sin")
def _sin(ctx, g):
    """Rule of `Tensor.sin`: d sin(x) = cos(x) dx."""
    # BEGIN SOLUTION
    return (g * np.cos(ctx.parents[0].data),)
    # END SOLUTION


@gradient_of("cos")
def _cos(ctx, g):
    """Rule of `Tensor.cos`: d cos(x) = -sin(x) dx."""
    # BEGIN SOLUTION
    return (-g * np.sin(ctx.parents[0].data),)
    # END SOLUTION


@gradient_of("clip")
def _clip(ctx, g):
    """Rule of `Tensor.clip`: g where low <= x <= high, 0 where the value was clipped."""
    # BEGIN SOLUTION
    x, low, high = ctx.parents[0].data, ctx.saved.low, ctx.saved.high
    inside = np.ones(x.shape, dtype=bool)
    if low is not None:
        inside &= x >= low
    if high is not None:
        inside &= x <= high
    return (g * inside,)
    # END SOLUTION


@gradient_of("maximum")
def _maximum(ctx, g):
    """Rule of `Tensor.maximum`: g goes to the larger input; ties go to a (self)."""
    # BEGIN SOLUTION
    a, b = ctx.parents
    a_wins = a.data >= b.data
    return (unbroadcast(g * a_wins, a.shape) if a.requires_grad else None,
            unbroadcast(g * ~a_wins, b.shape) if b.requires_grad else None)
    # END SOLUTION


@gradient_of("minimum")
def _minimum(ctx, g):
    """Rule of `Tensor.minimum`: g goes to the smaller input; ties go to a (self)."""
    # BEGIN SOLUTION
    a, b = ctx.parents
    a_wins = a.data <= b.data
    return (unbroadcast(g * a_wins, a.shape) if a.requires_grad else None,
            unbroadcast(g * ~a_wins, b.shape) if b.requires_grad else None)
    # END SOLUTION


@gradient_of("where")
def _where(ctx, g):
    """Rule of `where(condition, a, b)`: a's gradient where the condition holds, b's elsewhere."""
    # BEGIN SOLUTION
    (a, b), cond = ctx.parents, ctx.saved.condition
    ga = unbroadcast(np.where(cond, g, 0), a.shape) if a.requires_grad else None
    gb = unbroadcast(np.where(cond, 0, g), b.shape) if b.requires_grad else None
    return ga, gb
    # END SOLUTION


@gradient_of("masked_fill")
def _masked_fill(ctx, g):
    """Rule of `Tensor.masked_fill`: the filled places were overwritten, so they get no gradient."""
    # BEGIN SOLUTION
    return (np.where(ctx.saved.mask, 0, g).astype(g.dtype, copy=False),)
    # END SOLUTION


def _mT(a: np.ndarray) -> np.ndarray:
    """Matrix transpose of the last two axes (a view)."""
    return a.T if a.ndim == 2 else np.swapaxes(a, -1, -2)


@gradient_of("matmul")
def _matmul(ctx, g):
    """Rule of `Tensor.matmul`: for C = A @ B, dA = dC @ B^T and dB = A^T @ dC, summed back over
    broadcast batch axes. 1-D operands are treated as (1, K) and (K, 1), as NumPy does in the
    forward, so the gradient gets those size-1 axes back (a reshape: same element order) and the
    results are reshaped to the 1-D shapes again."""
    # BEGIN SOLUTION
    a, b = ctx.parents
    A, B = a.data, b.data
    A2 = A[None, :] if A.ndim == 1 else A
    B2 = B[:, None] if B.ndim == 1 else B
    G = g
    if A.ndim == 1 or B.ndim == 1:
        G = g.reshape(np.broadcast_shapes(A2.shape[:-2], B2.shape[:-2]) + (A2.shape[-2], B2.shape[-1]))
    ga = unbroadcast(G @ _mT(B2), A2.shape).reshape(A.shape) if a.requires_grad else None
    gb = unbroadcast(_mT(A2) @ G, B2.shape).reshape(B.shape) if b.requires_grad else None
    return ga, gb
    # END SOLUTION


def _expand_reduced(g: np.ndarray, shape: tuple, axis, keepdims: bool) -> np.ndarray:
    """Re-insert the axes a reduction removed, so `g` broadcasts against the input shape.

    A reduction over all axes gives a 0-d `g`, which broadcasts against anything as it is.
    """
    if axis is None or keepdims:
        return g
    ndim = len(shape)
    axes = {axis % ndim} if isinstance(axis, int) else {a % ndim for a in axis}
    return g.reshape(tuple(1 if i in axes else s for i, s in enumerate(shape)))


@gradient_of("sum")
def _sum(ctx, g):
    """Rule of `Tensor.sum`: every input element contributes once, so each gets the output
    gradient: broadcast g back to the input shape - into a fresh contiguous array, not a broadcast
    view, because BLAS (and in-place optimizers) need one."""
    # BEGIN SOLUTION
    x = ctx.parents[0]
    out = np.empty(x.data.shape, dtype=g.dtype)
    out[...] = _expand_reduced(g, x.data.shape, ctx.saved.axis, ctx.saved.keepdims)
    return (out,)
    # END SOLUTION


@gradient_of("mean")
def _mean(ctx, g):
    """Rule of `Tensor.mean`: like sum's, divided by the number of elements each output averaged."""
    # BEGIN SOLUTION
    x = ctx.parents[0]
    count = x.data.size // max(g.size, 1) if x.data.size else 1
    out = np.empty(x.data.shape, dtype=g.dtype)
    np.divide(_expand_reduced(g, x.data.shape, ctx.saved.axis, ctx.saved.keepdims), count, out=out)
    return (out,)
    # END SOLUTION


@gradient_of("max")
@gradient_of("min")
def _max_min(ctx, g):
    """Rule of `Tensor.max` and `Tensor.min` (Tensor._extreme): the gradient goes to the elements
    equal to the saved result, split equally between ties; a NaN wins (max of [1, nan] is nan)."""
    # BEGIN SOLUTION
    x, axis, keepdims = ctx.parents[0], ctx.saved.axis, ctx.saved.keepdims
    out = _expand_reduced(np.asarray(ctx.saved.out), x.shape, axis, keepdims)
    g = _expand_reduced(g, x.shape, axis, keepdims)
    winners = x.data == out
    if out.dtype.kind == "f" and np.isnan(out).any():
        winners |= np.isnan(x.data) & np.isnan(out)
    count = winners.sum(axis=axis, keepdims=True)
    return ((winners * (g / count)).astype(x.data.dtype, copy=False),)
    # END SOLUTION


@gradient_of("reshape")
def _reshape(ctx, g):
    """Rule of `Tensor.reshape` (and `clone`): the gradient reshaped back to the input's shape."""
    # BEGIN SOLUTION
    return (g.reshape(ctx.parents[0].shape),)
    # END SOLUTION


@gradient_of("permute")
def _permute(ctx, g):
    """Rule of `Tensor.permute`: the inverse permutation (argsort of the saved axes) puts g back."""
    # BEGIN SOLUTION
    return (np.transpose(g, np.argsort(ctx.saved.axes)),)
    # END SOLUTION


def _picks_each_element_once(index) -> bool:
    """True for ints, slices, None, ... and bool masks; integer arrays may repeat an element."""
    for item in (index if isinstance(index, tuple) else (index,)):
        if isinstance(item, np.ndarray):
            if item.dtype != np.bool_:
                return False
        elif not isinstance(item, (int, np.integer, slice, type(None), type(Ellipsis))):
            return False
    return True


@gradient_of("getitem")
def _getitem(ctx, g):
    """Rule of `Tensor.__getitem__`: scatter g into zeros of the input's shape at the saved index.
    Add, not assign, when an integer array may pick the same element twice (`np.add.at`)."""
    # BEGIN SOLUTION
    x, index = ctx.parents[0], ctx.saved.index
    out = np.zeros(x.shape, dtype=g.dtype)
    if _picks_each_element_once(index):
        out[index] = g
    else:
        np.add.at(out, index, g)
    return (out,)
    # END SOLUTION


@gradient_of("broadcast_to")
def _broadcast_to(ctx, g):
    """Rule of `Tensor.broadcast_to`: the copies' gradients summed back (unbroadcast)."""
    # BEGIN SOLUTION
    return (unbroadcast(g, ctx.parents[0].shape),)
    # END SOLUTION


@gradient_of("pad")
def _pad(ctx, g):
    """Rule of `pad`: the input's part of g, cut out with the saved slices; the border gets nothing."""
    # BEGIN SOLUTION
    return (g[ctx.saved.inside],)
    # END SOLUTION


@gradient_of("cat")
def _cat(ctx, g):
    """Rule of `cat`: g split along the saved axis at the saved sizes, one piece per input."""
    # BEGIN SOLUTION
    splits = np.cumsum(ctx.saved.sizes)[:-1]
    return tuple(np.split(g, splits, axis=ctx.saved.axis))
    # END SOLUTION


# ---- rules for module 03: activations ----------------------------------------------------------------
@gradient_of("relu")
def _relu(ctx, g):
    """Rule of `activations.relu`: g where x > 0."""
    # BEGIN SOLUTION
    return (g * (ctx.parents[0].data > 0),)
    # END SOLUTION


@gradient_of("leaky_relu")
def _leaky_relu(ctx, g):
    """Rule of `activations.leaky_relu`: g where x > 0, slope * g elsewhere."""
    # BEGIN SOLUTION
    x = ctx.parents[0].data
    return (np.where(x > 0, g, g * x.dtype.type(ctx.saved.slope)),)
    # END SOLUTION


@gradient_of("sigmoid")
def _sigmoid(ctx, g):
    """Rule of `activations.sigmoid`: s (1 - s), with s the saved output."""
    # BEGIN SOLUTION
    s = ctx.saved.out
    return (g * s * (1 - s),)
    # END SOLUTION


@gradient_of("tanh")
def _tanh(ctx, g):
    """Rule of `activations.tanh`: 1 - t^2, with t the saved output."""
    # BEGIN SOLUTION
    t = ctx.saved.out
    return (g * (1 - t * t),)
    # END SOLUTION


@gradient_of("gelu")
def _gelu(ctx, g):
    """Rule of `activations.gelu` (tanh approximation): with u = c (x + 0.044715 x^3), c = sqrt(2/pi)
    and t = tanh(u) saved, d/dx [0.5 x (1 + t)] = 0.5 (1 + t) + 0.5 x (1 - t^2) du/dx."""
    # BEGIN SOLUTION
    x, t = ctx.parents[0].data, ctx.saved.tanh
    c = x.dtype.type(np.sqrt(2.0 / np.pi))
    du = c * (1 + 3 * x.dtype.type(0.044715) * x * x)
    return (g * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du),)
    # END SOLUTION


@gradient_of("softmax")
def _softmax(ctx, g):
    """Rule of `activations.softmax`: with s the saved output, dx = s * (g - sum(g * s, axis))."""
    # BEGIN SOLUTION
    s, axis = ctx.saved.out, ctx.saved.axis
    return (s * (g - (g * s).sum(axis=axis, keepdims=True)),)
    # END SOLUTION


@gradient_of("log_softmax")
def _log_softmax(ctx, g):
    """Rule of `activations.log_softmax`: dx = g - exp(logp) * sum(g, axis), logp the saved output."""
    # BEGIN SOLUTION
    logp, axis = ctx.saved.out, ctx.saved.axis
    return (g - np.exp(logp) * g.sum(axis=axis, keepdims=True),)
    # END SOLUTION


# ---- rules for module 05: networks -------------------------------------------------------------------
@gradient_of("layer_norm")
def _layer_norm(ctx, g):
    """Rule of `networks.layer_norm`: with dxhat = g * weight, over the last axis
    dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)); dW = sum(g * xhat), db = sum(g)."""
    # BEGIN SOLUTION
    x, weight, bias = ctx.parents
    xhat, rstd = ctx.saved.xhat, ctx.saved.rstd
    gw = (g * xhat).reshape(-1, xhat.shape[-1]).sum(axis=0) if weight.requires_grad else None
    gb = g.reshape(-1, g.shape[-1]).sum(axis=0) if bias.requires_grad else None
    gx = None
    if x.requires_grad:
        gxhat = g * weight.data
        gx = rstd * (gxhat - gxhat.mean(axis=-1, keepdims=True)
                     - xhat * (gxhat * xhat).mean(axis=-1, keepdims=True))
    return gx, gw, gb
    # END SOLUTION


# ---- rules for module 06: spatial ---------------------------------------------------------------------
# The forward ops live in tinytorch/spatial.py and keep image data in channels-last (NHWC) memory,
# handing out (N, C, H, W) views; these rules work on the NHWC views too (`nhwc_rows(g)` is free when
# g came from those ops) and return (N, C, H, W) views of NHWC arrays. The plumbing they share with
# modules 06 and 13 (`nhwc_rows`, `scatter_windows`, `column_sums`) is given in channels_last.py.
@gradient_of("conv2d")
def _conv2d(ctx, g):
    """Rule of `spatial.conv2d`: with g_rows the (N*Ho*Wo, C_out) matrix of g, dW = cols^T @ g_rows
    (one GEMM reducing over every output pixel) and db = column sums of g_rows; the input gradient
    is one matmul per kernel offset, added into the padded image (`scatter_windows`)."""
    # BEGIN SOLUTION
    x, weight = ctx.parents[:2]
    bias = ctx.parents[2] if len(ctx.parents) == 3 else None
    C_out, C_in, kh, kw = weight.shape
    N, _, Ho, Wo = g.shape
    g_rows = nhwc_rows(g)                                                 # (N*Ho*Wo, C_out)
    gw = gb = gx = None
    if weight.requires_grad:
        gw = (ctx.saved.cols.T @ g_rows).reshape(kh, kw, C_in, C_out).transpose(3, 2, 0, 1)
    if bias is not None and bias.requires_grad:
        gb = g_rows.sum(axis=0)
    if x.requires_grad:
        w = weight.data
        gx = scatter_windows(lambda i, j: (g_rows @ w[:, :, i, j]).reshape(N, Ho, Wo, C_in),
                             x.shape, (kh, kw), ctx.saved.stride, ctx.saved.padding, np.result_type(g, w))
    return (gx, gw) if bias is None else (gx, gw, gb)
    # END SOLUTION


@gradient_of("max_pool2d")
def _max_pool2d(ctx, g):
    """Rule of `spatial.max_pool2d`: each window's gradient goes to its winner; for kernel offset
    k = i*kW + j the part is g * (index == k), scattered with `scatter_windows`."""
    # BEGIN SOLUTION
    kernel, index = ctx.saved.kernel, ctx.saved.index
    g_nhwc = g.transpose(0, 2, 3, 1)
    return (scatter_windows(lambda i, j: g_nhwc * (index == i * kernel[1] + j),
                            ctx.parents[0].shape, kernel, ctx.saved.stride, ctx.saved.padding, g.dtype),)
    # END SOLUTION


@gradient_of("avg_pool2d")
def _avg_pool2d(ctx, g):
    """Rule of `spatial.avg_pool2d`: every input of a window gets 1/(kH*kW) of its gradient."""
    # BEGIN SOLUTION
    kernel = ctx.saved.kernel
    share = g.transpose(0, 2, 3, 1) / g.dtype.type(kernel[0] * kernel[1])
    return (scatter_windows(lambda i, j: share, ctx.parents[0].shape, kernel, ctx.saved.stride,
                            ctx.saved.padding, g.dtype),)
    # END SOLUTION


@gradient_of("batch_norm2d")
def _batch_norm2d(ctx, g):
    """Rule of `spatial.batch_norm2d`. Closed form, with the means over the M = N*H*W rows of xhat:
    dx = w * rstd * (g - mean(g) - xhat * mean(g * xhat)) in training (the batch statistics depend
    on x), dx = w * rstd * g in evaluation (the running statistics are constants)."""
    # BEGIN SOLUTION
    x, weight, bias = ctx.parents
    xhat, rstd = ctx.saved.xhat, ctx.saved.rstd
    M, C = xhat.shape
    g_rows = nhwc_rows(g)                                                 # (M, C)
    gb = column_sums(g_rows)                                              # dL/d bias
    gw = np.einsum("ij,ij->j", g_rows, xhat)                              # dL/d weight
    gx = None
    if x.requires_grad:
        if ctx.saved.training:
            gx = xhat * (-gw / M)
            gx += g_rows
            gx -= gb / M
        else:
            gx = g_rows.copy()
        gx *= (weight.data * rstd).astype(g.dtype)
        N, _, H, W = x.shape
        gx = gx.reshape(N, H, W, C).transpose(0, 3, 1, 2)
    return gx, (gw if weight.requires_grad else None), (gb if bias.requires_grad else None)
    # END SOLUTION


# ---- custom ops written in Python (given): PyTorch's torch.autograd.Function, see tinytorch/function.py --
from tinytorch.function import Function, FunctionCtx, function_backward  # noqa: E402,F401

gradient_of("function")(function_backward)
