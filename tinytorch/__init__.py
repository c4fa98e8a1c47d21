"""TinyTorch: a PyTorch-shaped deep-learning framework you build yourself, on NumPy.

    import tinytorch as tt
    x = tt.tensor([[1.0, 2.0]], requires_grad=True)
    model = tt.nn.Sequential(tt.nn.Linear(2, 4), tt.nn.ReLU(), tt.nn.Linear(4, 1))

Importing never runs a student's unfinished code: every module file imports even when its
solutions are replaced by `raise NotImplementedError(...)`.

PyTorch's names (given code, no maths of their own): dtypes (dtypes.py), devices (devices.py: the
CPU only), top-level functions (functions.py), `tt.save`/`tt.load` (serialization.py),
`tt.autograd.Function` (function.py), `tt.nn.functional`, `tt.utils.data`, and torchvision's
`datasets`/`transforms` as `tinytorch.vision`.
"""
from tinytorch.runtime import ensure_tuned
from tinytorch.tensor import (DEFAULT_FLOAT, Tensor, TensorError, arange, as_tensor, cat, empty, empty_like, eye,
                              from_numpy, full, full_like, get_rng, linspace, manual_seed, ones, ones_like, pad,
                              rand, rand_like, randint, randn, randn_like, stack, tensor, where, zeros, zeros_like)
from tinytorch.activations import gelu, leaky_relu, log_softmax, relu, sigmoid, softmax, tanh
from tinytorch.autograd import enable_grad, is_grad_enabled, no_grad
from tinytorch.dtypes import (bool, double, float, float16, float32, float64, half, int, int8, int16, int32,  # noqa: A004
                              int64, long, short, uint8)
from tinytorch.devices import accelerator, backends, cuda, device
from tinytorch.functions import (abs, add, allclose, argmax, argmin, clamp, clip, cos, div, eq, equal, exp,  # noqa: A004
                                 flatten, is_tensor, log, matmul, max, maximum, mean, min, minimum, mm, mul, neg,
                                 numel, permute, pow, reshape, sin, sqrt, square, squeeze, std, sub, sum, t,
                                 transpose, unsqueeze, var)
from tinytorch.serialization import load, save
from tinytorch import nn, optim, data, utils, autograd  # noqa: E402  (PyTorch-style namespaces)

ensure_tuned()   # reuse large freed arrays instead of re-faulting them every step (see runtime.py)
__version__ = "0.1.0"

# `from tinytorch import *` must not replace Python's abs, bool, float, int, max, min, pow and sum
# (tt.max and friends are meant to be called as tt.max); everything else public is exported.
__all__ = sorted(name for name in dir() if not name.startswith("_") and name != "ensure_tuned"
                 and name not in {"abs", "bool", "float", "int", "max", "min", "pow", "sum"})
