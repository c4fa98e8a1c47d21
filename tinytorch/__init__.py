"""TinyTorch: a PyTorch-shaped deep-learning framework you build yourself, on NumPy.

    import tinytorch as tt
    x = tt.tensor([[1.0, 2.0]], requires_grad=True)
    model = tt.nn.Sequential(tt.nn.Linear(2, 4), tt.nn.ReLU(), tt.nn.Linear(4, 1))

Importing never runs a student's unfinished code: every module file imports even when its
solutions are replaced by `raise NotImplementedError(...)`.
"""
from tinytorch.runtime import ensure_tuned
from tinytorch.tensor import (DEFAULT_FLOAT, Tensor, TensorError, arange, cat, full, get_rng, manual_seed,
                              ones, ones_like, pad, rand, randn, stack, tensor, where, zeros, zeros_like)
from tinytorch.activations import gelu, leaky_relu, log_softmax, relu, sigmoid, softmax, tanh
from tinytorch.autograd import enable_grad, is_grad_enabled, no_grad
from tinytorch import nn, optim, data  # noqa: E402  (PyTorch-style namespaces)

ensure_tuned()   # reuse large freed arrays instead of re-faulting them every step (see runtime.py)
__version__ = "0.1.0"
float32 = DEFAULT_FLOAT
