"""TinyTorch: a PyTorch-shaped deep-learning framework you build yourself, on NumPy.

    import tinytorch as tt
    x = tt.tensor([[1.0, 2.0]], requires_grad=True)
    model = tt.nn.Sequential(tt.nn.Linear(2, 4), tt.nn.ReLU(), tt.nn.Linear(4, 1))

Importing never runs a student's unfinished code: every module file imports even when its
solutions are replaced by `raise NotImplementedError(...)`.

A broken later file costs nothing earlier: `import tinytorch` loads only the tensor module (02); every
other name (`tt.relu`, `tt.nn`, `tt.no_grad`, ...) loads its module file the first time it is used. So
a syntax error in activations.py (module 03) leaves modules 01 and 02 working, and using `tt.relu`
then raises an ImportError that names the broken file and line.

PyTorch's names (given code, no maths of their own): dtypes (dtypes.py), devices (devices.py: the
CPU only), top-level functions (functions.py), `tt.save`/`tt.load` (serialization.py),
`tt.autograd.Function` (function.py), `tt.nn.functional`, `tt.utils.data`, and torchvision's
`datasets`/`transforms` as `tinytorch.vision`.
"""
from tinytorch.runtime import ensure_tuned

# name -> module file that defines it (loaded on first use, see __getattr__ below)
_LAZY = {
    **dict.fromkeys(("gelu", "leaky_relu", "log_softmax", "relu", "sigmoid", "softmax", "tanh"), "activations"),
    **dict.fromkeys(("enable_grad", "is_grad_enabled", "no_grad"), "autograd"),
    **dict.fromkeys(("bool", "double", "float", "float16", "float64", "half", "int", "int8", "int16", "int32",
                     "int64", "long", "short", "uint8"), "dtypes"),
    **dict.fromkeys(("accelerator", "backends", "cuda", "device"), "devices"),
    **dict.fromkeys(("abs", "add", "allclose", "argmax", "argmin", "clamp", "clip", "cos", "div", "eq", "equal",
                     "exp", "flatten", "is_tensor", "log", "matmul", "max", "maximum", "mean", "min", "minimum",
                     "mm", "mul", "neg", "numel", "permute", "pow", "reshape", "sin", "sqrt", "square", "squeeze",
                     "std", "sub", "sum", "t", "transpose", "unsqueeze", "var"), "functions"),
    **dict.fromkeys(("load", "save"), "serialization"),
}
# PyTorch-style namespaces: tt.nn, tt.optim, tt.data, tt.utils (.data), tt.autograd (.Function), tt.vision
_SUBMODULES = ("nn", "optim", "data", "utils", "autograd", "vision")
# `from tinytorch import *` must not replace Python's abs, bool, float, int, max, min, pow and sum
# (tt.max and friends are meant to be called as tt.max)
_NOT_STARRED = {"abs", "bool", "float", "int", "max", "min", "pow", "sum"}


def _broken_file_error(module: str, exc: BaseException) -> ImportError:
    """An ImportError naming the student's file and line that stopped `tinytorch.<module>` importing."""
    if isinstance(exc, SyntaxError) and exc.filename:
        location = f"{exc.filename}, line {exc.lineno}"
    else:
        tb, location = exc.__traceback__, f"tinytorch/{module}.py"
        while tb is not None:
            name = tb.tb_frame.f_code.co_filename.replace("\\", "/")
            if "/tinytorch/" in name:
                location = f"{name}, line {tb.tb_lineno}"
            tb = tb.tb_next
    return ImportError(f"tinytorch.{module} could not be imported because of {type(exc).__name__} "
                       f"in {location}: {exc}")


def _load(module: str):
    import importlib
    try:
        return importlib.import_module(f"tinytorch.{module}")
    except Exception as exc:   # a broken student file: say which one, where
        raise _broken_file_error(module, exc) from exc


def __getattr__(name: str):
    """Load the module file that defines `name` on first use (PEP 562)."""
    if name == "__all__":   # what `from tinytorch import *` takes (it loads every module file)
        return sorted(n for n in __dir__() if not n.startswith("_") and n not in _NOT_STARRED and n != "ensure_tuned")
    if name in _SUBMODULES:
        value = _load(name)
    elif name in _LAZY:
        value = getattr(_load(_LAZY[name]), "DEFAULT_FLOAT" if name == "float32" else name)
    else:
        raise AttributeError(f"module 'tinytorch' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY) | set(_SUBMODULES))



# Module 02, the tensor, is what everything else is built on. If tensor.py itself does not import yet,
# `import tinytorch` still succeeds (module 01 does not need it), and every tensor name raises the error.
try:
    from tinytorch.tensor import (DEFAULT_FLOAT, Tensor, TensorError, arange, as_tensor, cat, empty,  # noqa: F401
                                  empty_like, eye, from_numpy, full, full_like, get_rng, linspace, manual_seed,
                                  ones, ones_like, pad, rand, rand_like, randint, randn, randn_like, stack, tensor,
                                  where, zeros, zeros_like)
    float32 = DEFAULT_FLOAT
except Exception:  # noqa: BLE001 - re-raised with the file and line on first use of a tensor name
    _LAZY.update(dict.fromkeys(("DEFAULT_FLOAT", "Tensor", "TensorError", "arange", "as_tensor", "cat", "empty",
                                "empty_like", "eye", "from_numpy", "full", "full_like", "get_rng", "linspace",
                                "manual_seed", "ones", "ones_like", "pad", "rand", "rand_like", "randint", "randn",
                                "randn_like", "stack", "tensor", "where", "zeros", "zeros_like", "float32"),
                               "tensor"))

ensure_tuned()   # reuse large freed arrays instead of re-faulting them every step (see runtime.py)
__version__ = "0.1.0"
