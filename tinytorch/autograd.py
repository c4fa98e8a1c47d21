"""Module 09 - Autograd: reverse-mode automatic differentiation.

Every op of modules 02-07 records a `Context(op, parents, saved)` on its output (see
`Tensor._make`). This module holds the other half: for each op name, a *gradient rule* that takes
the context and the gradient of the loss with respect to the op's output (an ndarray of the
output's shape) and returns one gradient per parent (an ndarray of that parent's shape, or None
when the parent needs none).

`backward(root)` walks the graph in reverse topological order - found with an explicit stack, so a
graph 100 000 ops deep does not hit Python's recursion limit - and accumulates gradients, so a
tensor used twice receives the sum of both contributions.

Later modules that bring new fast ops (module 13) register their own rules with `@gradient_of`.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable

import numpy as np

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


def unbroadcast(grad: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum `grad` down to `shape`, undoing NumPy broadcasting.

    Broadcasting copies an input along new leading axes and along axes of size 1; the gradient of a
    copy is the sum of the gradients of all the copies. (3, 4) -> (4,) sums axis 0; (3, 4) -> (3, 1)
    sums axis 1 keeping it.
    """
    # BEGIN SOLUTION
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

    Iterative depth-first search with an explicit stack (no recursion limit).
    """
    # BEGIN SOLUTION
    order: list[Tensor] = []
    visited: set[int] = set()
    stack: list[tuple[Tensor, bool]] = [(root, False)]
    while stack:
        node, parents_done = stack.pop()
        if parents_done:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        if node._ctx is not None:
            for parent in node._ctx.parents:
                if parent.requires_grad and id(parent) not in visited:
                    stack.append((parent, False))
    return order
    # END SOLUTION


def backward(root: Tensor, grad=None) -> None:
    """Accumulate d(root)/d(leaf) into `leaf.grad` for every leaf that requires a gradient."""
    if not root.requires_grad:
        raise TensorError("backward: this tensor does not require a gradient; did you create the "
                          "parameters with requires_grad=True, or compute it inside no_grad()?")
    if grad is None:
        if root.size != 1:
            raise TensorError(f"backward: the output has shape {root.shape}; backward() without a gradient "
                              "argument only works on a scalar (e.g. a loss). Pass grad= of the same shape "
                              "or reduce with .sum() / .mean() first")
        grad = np.ones_like(root.data)
    else:
        grad = np.asarray(grad.data if isinstance(grad, Tensor) else grad, dtype=root.data.dtype)
        if grad.shape != root.shape:
            raise TensorError(f"backward: gradient shape {grad.shape} does not match output shape {root.shape}")
    # BEGIN SOLUTION
    grads: dict[int, np.ndarray] = {id(root): grad}
    for node in reversed(topological_order(root)):
        g = grads.pop(id(node), None)
        if g is None:
            continue
        if node._ctx is None:  # a leaf: keep its gradient
            g = g.astype(node.data.dtype, copy=False)
            if node.grad is None:
                node.grad = Tensor(g.copy())
            else:
                node.grad.data = node.grad.data + g
            continue
        rule = GRADIENTS.get(node._ctx.op)
        if rule is None:
            raise TensorError(f"backward: no gradient rule for op '{node._ctx.op}'")
        parent_grads = rule(node._ctx, g)
        for parent, pg in zip(node._ctx.parents, parent_grads):
            if pg is None or not parent.requires_grad:
                continue
            if pg.shape != parent.shape:
                raise TensorError(f"backward: rule for '{node._ctx.op}' gave a gradient of shape {pg.shape} "
                                  f"for an input of shape {parent.shape}")
            key = id(parent)
            grads[key] = grads[key] + pg if key in grads else pg
    # END SOLUTION


# ---- rules for module 02: tensor ops -----------------------------------------------------------------
@gradient_of("add")
def _add(ctx, g):
    # BEGIN SOLUTION
    a, b = ctx.parents
    return unbroadcast(g, a.shape), unbroadcast(g, b.shape)
    # END SOLUTION


@gradient_of("sub")
def _sub(ctx, g):
    # BEGIN SOLUTION
    a, b = ctx.parents
    return unbroadcast(g, a.shape), unbroadcast(-g, b.shape)
    # END SOLUTION


@gradient_of("mul")
def _mul(ctx, g):
    # BEGIN SOLUTION
    a, b = ctx.parents
    ga = unbroadcast(g * b.data, a.shape) if a.requires_grad else None
    gb = unbroadcast(g * a.data, b.shape) if b.requires_grad else None
    return ga, gb
    # END SOLUTION


@gradient_of("div")
def _div(ctx, g):
    # BEGIN SOLUTION
    a, b = ctx.parents
    ga = unbroadcast(g / b.data, a.shape) if a.requires_grad else None
    gb = unbroadcast(-g * a.data / (b.data * b.data), b.shape) if b.requires_grad else None
    return ga, gb
    # END SOLUTION


@gradient_of("pow")
def _pow(ctx, g):
    # BEGIN SOLUTION
    (a,), (p,) = ctx.parents, ctx.saved
    return (g * (p * np.power(a.data, p - 1)).astype(a.data.dtype, copy=False),)
    # END SOLUTION


@gradient_of("neg")
def _neg(ctx, g):
    # BEGIN SOLUTION
    return (-g,)
    # END SOLUTION


@gradient_of("exp")
def _exp(ctx, g):
    # BEGIN SOLUTION
    return (g * ctx.saved[0],)
    # END SOLUTION


@gradient_of("log")
def _log(ctx, g):
    # BEGIN SOLUTION
    return (g / ctx.parents[0].data,)
    # END SOLUTION


@gradient_of("sqrt")
def _sqrt(ctx, g):
    # BEGIN SOLUTION
    return (g * 0.5 / ctx.saved[0],)
    # END SOLUTION


@gradient_of("abs")
def _abs(ctx, g):
    # BEGIN SOLUTION
    return (g * np.sign(ctx.parents[0].data),)
    # END SOLUTION


@gradient_of("clip")
def _clip(ctx, g):
    # BEGIN SOLUTION
    x, (low, high) = ctx.parents[0].data, ctx.saved
    inside = np.ones(x.shape, dtype=bool)
    if low is not None:
        inside &= x >= low
    if high is not None:
        inside &= x <= high
    return (g * inside,)
    # END SOLUTION


@gradient_of("maximum")
def _maximum(ctx, g):
    # BEGIN SOLUTION
    a, b = ctx.parents
    a_wins = a.data >= b.data
    return unbroadcast(g * a_wins, a.shape), unbroadcast(g * ~a_wins, b.shape)
    # END SOLUTION


@gradient_of("masked_fill")
def _masked_fill(ctx, g):
    # BEGIN SOLUTION
    return (np.where(ctx.saved[0], 0, g).astype(g.dtype, copy=False),)
    # END SOLUTION


@gradient_of("matmul")
def _matmul(ctx, g):
    # BEGIN SOLUTION
    a, b = ctx.parents
    A, B = a.data, b.data
    # 1-D operands are treated as (1, K) and (K, 1) and squeezed back, as NumPy does in forward.
    A2 = A[None, :] if A.ndim == 1 else A
    B2 = B[:, None] if B.ndim == 1 else B
    G = g
    if A.ndim == 1:
        G = np.expand_dims(G, -2)
    if B.ndim == 1:
        G = np.expand_dims(G, -1)
    ga = unbroadcast(G @ np.swapaxes(B2, -1, -2), A2.shape).reshape(A.shape) if a.requires_grad else None
    gb = unbroadcast(np.swapaxes(A2, -1, -2) @ G, B2.shape).reshape(B.shape) if b.requires_grad else None
    return ga, gb
    # END SOLUTION


def _expand_reduced(g: np.ndarray, shape: tuple, axis, keepdims: bool) -> np.ndarray:
    """Re-insert the axes a reduction removed, so `g` broadcasts against the input shape."""
    if axis is None:
        return g.reshape((1,) * len(shape))
    if keepdims:
        return g
    axes = (axis,) if isinstance(axis, int) else axis
    return np.expand_dims(g, tuple(a % len(shape) for a in axes))


@gradient_of("sum")
def _sum(ctx, g):
    # BEGIN SOLUTION
    x, (axis, keepdims) = ctx.parents[0], ctx.saved
    return (np.broadcast_to(_expand_reduced(g, x.shape, axis, keepdims), x.shape).copy(),)
    # END SOLUTION


@gradient_of("mean")
def _mean(ctx, g):
    # BEGIN SOLUTION
    x, (axis, keepdims) = ctx.parents[0], ctx.saved
    count = x.size // max(np.size(g), 1) if x.size else 1
    g = _expand_reduced(g, x.shape, axis, keepdims) / x.data.dtype.type(count)
    return (np.broadcast_to(g, x.shape).copy(),)
    # END SOLUTION


def _extreme_rule(ctx, g):
    """max/min: the gradient goes to the winning elements, split equally between ties."""
    # BEGIN SOLUTION
    x, (axis, keepdims, out) = ctx.parents[0], ctx.saved
    out = _expand_reduced(np.asarray(out), x.shape, axis, keepdims)
    g = _expand_reduced(g, x.shape, axis, keepdims)
    winners = x.data == out
    count = winners.sum(axis=axis, keepdims=True) if axis is not None else winners.sum()
    return ((winners * (g / count)).astype(x.data.dtype, copy=False),)
    # END SOLUTION


gradient_of("max")(_extreme_rule)
gradient_of("min")(_extreme_rule)


@gradient_of("reshape")
def _reshape(ctx, g):
    # BEGIN SOLUTION
    return (g.reshape(ctx.parents[0].shape),)
    # END SOLUTION


@gradient_of("permute")
def _permute(ctx, g):
    # BEGIN SOLUTION
    axes = ctx.saved[0]
    return (np.transpose(g, np.argsort(axes)),)
    # END SOLUTION


@gradient_of("getitem")
def _getitem(ctx, g):
    # BEGIN SOLUTION
    x, index = ctx.parents[0], ctx.saved[0]
    out = np.zeros(x.shape, dtype=g.dtype)
    np.add.at(out, index, g)  # add, not assign: a fancy index may pick the same element twice
    return (out,)
    # END SOLUTION


@gradient_of("cat")
def _cat(ctx, g):
    # BEGIN SOLUTION
    axis, sizes = ctx.saved
    splits = np.cumsum(sizes)[:-1]
    return tuple(np.split(g, splits, axis=axis))
    # END SOLUTION


# ---- rules for module 03: activations ----------------------------------------------------------------
@gradient_of("relu")
def _relu(ctx, g):
    # BEGIN SOLUTION
    return (g * (ctx.parents[0].data > 0),)
    # END SOLUTION


@gradient_of("leaky_relu")
def _leaky_relu(ctx, g):
    # BEGIN SOLUTION
    x, (slope,) = ctx.parents[0].data, ctx.saved
    return (np.where(x > 0, g, g * x.dtype.type(slope)),)
    # END SOLUTION


@gradient_of("sigmoid")
def _sigmoid(ctx, g):
    # BEGIN SOLUTION
    s = ctx.saved[0]
    return (g * s * (1 - s),)
    # END SOLUTION


@gradient_of("tanh")
def _tanh(ctx, g):
    # BEGIN SOLUTION
    t = ctx.saved[0]
    return (g * (1 - t * t),)
    # END SOLUTION


@gradient_of("gelu")
def _gelu(ctx, g):
    # BEGIN SOLUTION
    # tanh approximation: 0.5 x (1 + tanh(u)), u = c (x + 0.044715 x^3), c = sqrt(2 / pi)
    x, (t,) = ctx.parents[0].data, ctx.saved
    c = x.dtype.type(np.sqrt(2.0 / np.pi))
    du = c * (1 + 3 * x.dtype.type(0.044715) * x * x)
    return (g * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du),)
    # END SOLUTION


@gradient_of("softmax")
def _softmax(ctx, g):
    # BEGIN SOLUTION
    s, axis = ctx.saved
    return (s * (g - (g * s).sum(axis=axis, keepdims=True)),)
    # END SOLUTION


@gradient_of("log_softmax")
def _log_softmax(ctx, g):
    # BEGIN SOLUTION
    logp, axis = ctx.saved
    return (g - np.exp(logp) * g.sum(axis=axis, keepdims=True),)
    # END SOLUTION


# ---- rules for module 05: networks -------------------------------------------------------------------
@gradient_of("layer_norm")
def _layer_norm(ctx, g):
    """Parents (x, weight, bias); saved (xhat, rstd): xhat = (x - mean) * rstd over the last axis."""
    # BEGIN SOLUTION
    x, weight, bias = ctx.parents
    xhat, rstd = ctx.saved
    gw = (g * xhat).reshape(-1, xhat.shape[-1]).sum(axis=0) if weight.requires_grad else None
    gb = g.reshape(-1, g.shape[-1]).sum(axis=0) if bias.requires_grad else None
    gx = None
    if x.requires_grad:
        gxhat = g * weight.data
        gx = rstd * (gxhat - gxhat.mean(axis=-1, keepdims=True)
                     - xhat * (gxhat * xhat).mean(axis=-1, keepdims=True))
    return gx, gw, gb
    # END SOLUTION
