"""Custom ops written in Python: PyTorch's `torch.autograd.Function` (given code, used from module 09 on).

    class Cube(tt.autograd.Function):
        @staticmethod
        def forward(ctx, x):            # Tensors in, one Tensor out (computed without recording)
            ctx.save_for_backward(x)
            return x ** 3

        @staticmethod
        def backward(ctx, grad_output):  # d(loss)/d(output) in, one gradient per forward input out
            (x,) = ctx.saved_tensors
            return grad_output * 3 * x ** 2

    y = Cube.apply(x)

`apply` runs `forward` under no_grad and records ONE op, "function", whose gradient rule (below,
registered by tinytorch/autograd.py) calls your `backward`. So a custom op is one node of the graph,
exactly like a built-in op of module 02: the engine of module 09 does not know the difference.
"""
from __future__ import annotations

import numpy as np

from tinytorch.tensor import Tensor, TensorError, grad_mode


class FunctionCtx:
    """The `ctx` of a custom Function: `save_for_backward(*tensors)` / `saved_tensors`, and any
    attribute you set in forward (ctx.scale = 2) is there in backward."""

    def __init__(self, function: type, args: tuple):
        self.function = function
        self.args = args
        self.needs_input_grad = tuple(isinstance(a, Tensor) and a.requires_grad for a in args)
        self.saved_tensors: tuple = ()

    def save_for_backward(self, *tensors) -> None:
        self.saved_tensors = tensors

    def mark_non_differentiable(self, *tensors) -> None:
        """Accepted for compatibility: outputs of integer dtype get no gradient anyway."""


class Function:
    """Subclass with two staticmethods, `forward(ctx, *inputs)` and `backward(ctx, grad_output)`,
    then call `YourFunction.apply(*inputs)`. `backward` returns one gradient (Tensor, array or
    None) per input of forward, in order."""

    @staticmethod
    def forward(ctx, *args):
        raise NotImplementedError("a custom Function must define forward(ctx, *inputs)")

    @staticmethod
    def backward(ctx, grad_output):
        raise NotImplementedError("a custom Function must define backward(ctx, grad_output)")

    @classmethod
    def apply(cls, *args):
        ctx = FunctionCtx(cls, args)
        previous = grad_mode.enabled
        grad_mode.enabled = False  # forward's own ops are not recorded: this whole call is one op
        try:
            out = cls.forward(ctx, *args)
        finally:
            grad_mode.enabled = previous
        if not isinstance(out, Tensor):
            raise TensorError(f"{cls.__name__}.forward must return one Tensor, got {type(out).__name__}")
        inputs = tuple(a for a in args if isinstance(a, Tensor))
        return Tensor._make(out.data, "function", inputs, function_ctx=ctx)


def function_backward(ctx, g):
    """Gradient rule of op "function": call the user's backward, keep the gradients of Tensor inputs."""
    fctx = ctx.saved.function_ctx
    previous = grad_mode.enabled
    grad_mode.enabled = False
    try:
        grads = fctx.function.backward(fctx, Tensor._wrap(g))
    finally:
        grad_mode.enabled = previous
    grads = grads if isinstance(grads, (tuple, list)) else (grads,)
    name = fctx.function.__name__
    if len(grads) != len(fctx.args):
        raise TensorError(f"{name}.backward returned {len(grads)} gradient(s) for {len(fctx.args)} forward "
                          "input(s); return one per input (None for inputs that need none)")
    out = []
    for arg, grad in zip(fctx.args, grads):
        if isinstance(arg, Tensor):
            out.append(None if grad is None else np.asarray(grad.data if isinstance(grad, Tensor) else grad,
                                                            dtype=arg.data.dtype))
    return tuple(out)
