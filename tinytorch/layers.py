"""Module 04 - Layers: `Module`, `Parameter` and the first layers (Linear, Sequential, Dropout, ...).

A `Module` is a box of learnable tensors (`Parameter`s) and of other Modules (its children) with a
`forward` method. Nothing has to be registered by hand: a Module finds its parameters and children
by looking at its own attributes, in the order `__init__` assigned them, so

    class TwoLayer(Module):
        def __init__(self):
            self.fc1 = Linear(784, 128)      # child "fc1": parameters fc1.weight, fc1.bias
            self.fc2 = Linear(128, 10)       # child "fc2"
        def forward(self, x):
            return self.fc2(relu(self.fc1(x)))

has `named_parameters()` == [("fc1.weight", ...), ("fc1.bias", ...), ("fc2.weight", ...), ...].
(Calling `super().__init__()` is welcome but not required.) Tensors that belong to the model's
state but are not learned (BatchNorm's running mean, a positional-encoding table) are *buffers*:
declare them with `self.register_buffer(name, value)` so they are saved and loaded too.

Shapes in docstrings: (N, D) is a batch of N rows of D features; (..., D) allows any leading dims.
Everything here is forward-only: gradients come from module 09 once you call `.backward()`.
"""
from __future__ import annotations

import math
import os
import tempfile
from collections import namedtuple
from contextlib import contextmanager
from typing import Iterator

import numpy as np

from tinytorch import activations as F
from tinytorch.devices import Device, check_device
from tinytorch.tensor import DEFAULT_FLOAT, Tensor, TensorError, get_rng


def atomic_savez(path, arrays: dict) -> None:
    """np.savez(path, **arrays) atomically: write a temporary file in the same folder, fsync, rename.

    A crash or a full disk mid-write leaves the old file (or none), never half a file: `os.replace`
    is atomic on POSIX and Windows within one folder. Used by Module.save, checkpoints (module 11)
    and deployment artifacts (module 15).
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class StateDictError(TensorError):
    """A state dict does not fit the model: keys missing or unexpected, or shapes that differ."""


def read_npz(path, where: str, written_by: str) -> dict[str, np.ndarray]:
    """The arrays of an .npz file written by `atomic_savez`, without pickles. A missing file is a
    FileNotFoundError; a truncated or foreign one a StateDictError that says so (never a bare BadZipFile)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{where}: no file at {path!r}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except Exception as exc:  # truncated or not an .npz (BadZipFile, EOFError, ValueError, ...)
        raise StateDictError(f"{where}: {path} is not a readable .npz written by {written_by} "
                             f"({type(exc).__name__}: {exc}); the file is damaged or incomplete") from None


IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


# ---- Parameter ---------------------------------------------------------------------------------------
class Parameter(Tensor):
    """A Tensor that a Module learns: floating point (float32 unless `dtype` says otherwise) and
    `requires_grad=True`. Assigning one to a Module attribute makes it part of `parameters()`."""

    __slots__ = ()

    def __init__(self, data, requires_grad: bool = True, dtype=None):
        arr = np.asarray(data.data if isinstance(data, Tensor) else data)
        if dtype is None and arr.dtype.kind != "f":
            dtype = DEFAULT_FLOAT  # integer initial values still make a float parameter
        super().__init__(arr, dtype=dtype, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


# ---- call tracing (used by networks.model_flops; plumbing, not an exercise) ----------------------------
_call_trace: list | None = None


@contextmanager
def trace_calls():
    """Record `(module, input_shape, output_shape)` for every Module call made inside the block.

    `input_shape` is the shape of the first positional argument (None if it is not a tensor), and
    the list is in the order the calls *finished* (children before their parent).
    """
    global _call_trace
    previous, _call_trace = _call_trace, []
    try:
        yield _call_trace
    finally:
        _call_trace = previous


def _shape_of(value):
    if isinstance(value, (Tensor, np.ndarray)):
        return tuple(value.shape)
    return None


# ---- Module ------------------------------------------------------------------------------------------
class Module:
    """Base class of every layer and model.

    Parameters, buffers and child modules are found by scanning the instance's attributes (in
    assignment order): a `Parameter` attribute is a parameter, a `Module` attribute is a child,
    names declared with `register_buffer` are buffers. Names are dotted paths as in PyTorch
    ("0.weight", "encoder.fc1.bias"), so state dicts look like PyTorch's.
    """

    training: bool = True          # class-level default, so subclasses need not call super().__init__()
    _buffer_names: dict = {}       # replaced by a per-instance dict on the first register_buffer()

    def __init__(self):
        self.training = True

    # -- the forward pass ---------------------------------------------------------------------------
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} has no forward() method; every Module subclass "
                                  "defines forward(self, x) to say what the layer computes")

    def __call__(self, *args, **kwargs):
        """`model(x)` runs `model.forward(x)` (so layers can be used like functions)."""
        out = self.forward(*args, **kwargs)
        if _call_trace is not None:
            _call_trace.append((self, _shape_of(args[0]) if args else None, _shape_of(out)))
        return out

    def flops(self, input_shape: tuple, output_shape: tuple) -> int:
        """FLOPs of this module's OWN computation for one call (children are counted separately).

        The hook behind `tinytorch.networks.model_flops`: a layer that multiplies matrices or
        convolves overrides it and returns 2 x (number of multiply-adds) for an input of
        `input_shape` (the shape of forward's first argument) giving `output_shape`. Element-wise
        work is not counted (the convention of torch.utils.flop_counter). The default is 0, right for
        containers (Sequential) and element-wise layers (ReLU, Dropout, LayerNorm, pooling).
        """
        return 0

    # -- finding parameters, buffers and children ---------------------------------------------------
    def named_children(self) -> list[tuple[str, "Module"]]:
        """Direct sub-modules, in the order they were assigned: [(attribute name, module), ...]."""
        return [(name, value) for name, value in vars(self).items() if isinstance(value, Module)]

    def children(self) -> list["Module"]:
        return [child for _, child in self.named_children()]

    def named_modules(self, prefix: str = "") -> list[tuple[str, "Module"]]:
        """This module (name `prefix`, "" at the top) and every descendant, parents before children.

        A module reachable along two paths is listed once, under the first path.
        """
        # BEGIN SOLUTION walk the children recursively, joining names with "."
        found: list[tuple[str, Module]] = []
        seen: set[int] = set()

        def visit(name: str, module: Module) -> None:
            if id(module) in seen:
                return
            seen.add(id(module))
            found.append((name, module))
            for child_name, child in module.named_children():
                visit(f"{name}.{child_name}" if name else child_name, child)

        visit(prefix, self)
        return found
        # END SOLUTION

    def modules(self) -> list["Module"]:
        return [module for _, module in self.named_modules()]

    def named_parameters(self) -> list[tuple[str, Parameter]]:
        """Every Parameter of this module and its descendants as (dotted name, parameter).

        Order: each module's own parameters (in assignment order), modules visited as in
        `named_modules()`. A parameter shared by two layers (tied weights) is listed once, so an
        optimizer never updates it twice.
        """
        # BEGIN SOLUTION collect each module's Parameter attributes under dotted names, skipping repeats
        found: list[tuple[str, Parameter]] = []
        seen: set[int] = set()
        for module_name, module in self.named_modules():
            for name, value in vars(module).items():
                if isinstance(value, Parameter) and id(value) not in seen:
                    seen.add(id(value))
                    found.append((f"{module_name}.{name}" if module_name else name, value))
        return found
        # END SOLUTION

    def parameters(self) -> list[Parameter]:
        """The list of Parameters (what you give an optimizer)."""
        return [p for _, p in self.named_parameters()]

    def register_buffer(self, name: str, value, persistent: bool = True) -> None:
        """Attach a non-learned tensor (e.g. running statistics) as `self.<name>`.

        Persistent buffers are part of `state_dict()` (saved and loaded); non-persistent ones (a
        table that can be recomputed) are not. Buffers follow `to(dtype)` but never get gradients.
        """
        if not isinstance(name, str) or not name.isidentifier():
            raise TensorError(f"register_buffer: buffer name must be an identifier, got {name!r}")
        if "_buffer_names" not in vars(self):
            self._buffer_names = {}
        value = value if isinstance(value, Tensor) else Tensor(value)
        if value.requires_grad:
            value = value.detach()
        setattr(self, name, value)
        self._buffer_names[name] = bool(persistent)

    def named_buffers(self, persistent_only: bool = False) -> list[tuple[str, Tensor]]:
        found = []
        for module_name, module in self.named_modules():
            for name, persistent in module._buffer_names.items():
                if persistent or not persistent_only:
                    found.append((f"{module_name}.{name}" if module_name else name, getattr(module, name)))
        return found

    def buffers(self) -> list[Tensor]:
        return [b for _, b in self.named_buffers()]

    # -- modes and gradients ------------------------------------------------------------------------
    def train(self, mode: bool = True) -> "Module":
        """Set `training = mode` on this module and every descendant (Dropout and BatchNorm read it)."""
        # BEGIN SOLUTION
        for module in self.modules():
            module.training = bool(mode)
        return self
        # END SOLUTION

    def eval(self) -> "Module":
        """Evaluation mode: `train(False)`. Dropout becomes the identity."""
        return self.train(False)

    def zero_grad(self) -> None:
        """Forget the gradients of all parameters (set `.grad = None`) before the next backward()."""
        # BEGIN SOLUTION
        for p in self.parameters():
            p.grad = None
        # END SOLUTION

    def to(self, *args, dtype=None, device=None) -> "Module":
        """Convert every floating-point parameter and buffer to `dtype` in place (e.g. np.float64).

        PyTorch's `model.to(device)` is accepted for the CPU, the only device (see devices.py).
        """
        for arg in args:
            if isinstance(arg, (str, Device)):
                device = arg
            else:
                dtype = arg
        check_device(device, f"{type(self).__name__}.to")
        if dtype is None:
            return self
        dtype = np.dtype(dtype)
        if dtype.kind != "f":
            raise TensorError(f"to: parameters must stay floating point, got dtype {dtype}")
        for _, t in self.named_parameters() + self.named_buffers():
            if t.data.dtype.kind == "f":
                t.data = t.data.astype(dtype)
        return self

    def double(self) -> "Module":
        return self.to(np.float64)

    def float(self) -> "Module":
        return self.to(DEFAULT_FLOAT)

    # -- saving and loading -------------------------------------------------------------------------
    def _state_tensors(self) -> dict[str, Tensor]:
        """Name -> tensor of everything a state dict holds (tied weights under every name)."""
        tensors: dict[str, Tensor] = {}
        for module_name, module in self.named_modules():
            prefix = f"{module_name}." if module_name else ""
            for name, value in vars(module).items():
                if isinstance(value, Parameter):
                    tensors[prefix + name] = value
            for name, persistent in module._buffer_names.items():
                if persistent:
                    tensors[prefix + name] = getattr(module, name)
        return tensors

    def state_dict(self) -> dict[str, np.ndarray]:
        """{dotted name: copy of the array} for every parameter and persistent buffer.

        Copies, so that later training steps do not change a state dict you kept.
        """
        # BEGIN SOLUTION
        return {name: t.data.copy() for name, t in self._state_tensors().items()}
        # END SOLUTION

    def load_state_dict(self, state: dict, strict: bool = True) -> IncompatibleKeys:
        """Copy the arrays of `state` into this model's parameters and buffers, by name.

        strict=True (default): every key must match, else StateDictError naming the missing and
        unexpected keys. Shapes must always match. Nothing is changed unless everything fits.
        Values are converted to each parameter's dtype. Returns (missing_keys, unexpected_keys).
        """
        own = self._state_tensors()
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        where = f"load_state_dict for {type(self).__name__}"
        if strict and (missing or unexpected):
            parts = []
            if missing:
                parts.append(f"missing keys {missing} (the model has them, the state dict does not)")
            if unexpected:
                parts.append(f"unexpected keys {unexpected} (the state dict has them, the model does not)")
            raise StateDictError(f"{where}: " + "; ".join(parts) + ". The names must match those of "
                                 "model.state_dict(); was the state saved from a model of another architecture?")
        arrays: dict[str, np.ndarray] = {}
        mismatches = []
        for name, target in own.items():
            if name not in state:
                continue
            value = state[name]
            value = np.asarray(value.data if isinstance(value, Tensor) else value)
            if value.dtype.kind not in "fiub":
                raise StateDictError(f"{where}: '{name}' has dtype {value.dtype}; expected numbers")
            if value.shape != target.shape:
                mismatches.append(f"'{name}': the state dict has shape {value.shape} but the model's "
                                  f"tensor has shape {target.shape}")
            arrays[name] = value
        if mismatches:
            raise StateDictError(f"{where}: size mismatch for " + "; ".join(mismatches))
        # BEGIN SOLUTION copy every array into its tensor, converting to the tensor's dtype
        for name, value in arrays.items():
            target = own[name]
            target.data = np.array(value, dtype=target.data.dtype)  # a copy: never alias the caller's array
        # END SOLUTION
        return IncompatibleKeys(missing, unexpected)

    def save(self, path) -> None:
        """Write `state_dict()` to an .npz file, atomically: a crash mid-write leaves the old file."""
        atomic_savez(path, self.state_dict())

    def load(self, path, strict: bool = True) -> "Module":
        """Load parameters written by `save(path)` (an .npz file); returns self."""
        state = read_npz(path, f"{type(self).__name__}.load", "save()")
        self.load_state_dict(state, strict=strict)
        return self

    # -- printing -----------------------------------------------------------------------------------
    def extra_repr(self) -> str:
        """The text inside the parentheses of this module's repr, e.g. 'in_features=2, ...'."""
        return ""

    def __repr__(self) -> str:
        lines = self.extra_repr().split("\n") if self.extra_repr() else []
        children = self.named_children()
        for name, child in children:
            lines.append(f"({name}): " + repr(child).replace("\n", "\n  "))
        if not children and len(lines) <= 1:
            return f"{type(self).__name__}({''.join(lines)})"
        return f"{type(self).__name__}(\n  " + "\n  ".join(lines) + "\n)"


# ---- Linear ------------------------------------------------------------------------------------------
def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """x @ weight.T + bias.   x: (..., in), weight: (out, in), bias: (out,) -> (..., out).

    One matrix product for the whole batch: leading dimensions are folded into the rows first, so
    (N, T, in) becomes one (N*T, in) @ (in, out) BLAS call instead of N small ones.
    """
    if not isinstance(x, Tensor):
        x = Tensor(x)
    if x.dtype.kind != "f":
        raise TensorError(f"linear: input must be floating point, got dtype {x.dtype} (shape {x.shape}); "
                          "convert with x.float() (images: also scale the pixel values)")
    if x.ndim == 0 or weight.ndim != 2 or x.shape[-1] != weight.shape[1]:
        raise TensorError(f"linear: input has {x.shape[-1] if x.ndim else 0} features (last dimension of "
                          f"shape {x.shape}) but the layer expects {weight.shape[-1]} (weight shape "
                          f"{weight.shape} = (out_features, in_features))")
    # BEGIN SOLUTION
    lead = x.shape[:-1]
    rows = x.reshape(-1, x.shape[-1]) if x.ndim > 2 else x
    out = rows @ weight.T          # weight.T is a view: BLAS reads it transposed, no copy
    if bias is not None:
        out = out + bias
    return out.reshape(*lead, weight.shape[0]) if x.ndim > 2 else out
    # END SOLUTION


class Linear(Module):
    """y = x @ W.T + b, with W of shape (out_features, in_features) as in PyTorch.

    Initialisation (PyTorch's default): W and b uniform in [-1/sqrt(in), 1/sqrt(in)], which keeps
    the output variance close to the input's. Drawn from `tinytorch.get_rng()`, so
    `tt.manual_seed(s)` makes it reproducible.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        if int(in_features) <= 0 or int(out_features) <= 0:
            raise TensorError(f"Linear: sizes must be positive, got in_features={in_features}, "
                              f"out_features={out_features}")
        self.in_features, self.out_features = int(in_features), int(out_features)
        # BEGIN SOLUTION initialise weight (out, in) and bias (out,) uniformly in +-1/sqrt(in_features)
        bound = 1.0 / math.sqrt(self.in_features)
        rng = get_rng()
        self.weight = Parameter(rng.uniform(-bound, bound, (self.out_features, self.in_features)).astype(DEFAULT_FLOAT))
        self.bias = Parameter(rng.uniform(-bound, bound, self.out_features).astype(DEFAULT_FLOAT)) if bias else None
        # END SOLUTION

    def forward(self, x: Tensor) -> Tensor:
        return linear(x, self.weight, self.bias)

    def flops(self, input_shape, output_shape) -> int:
        rows = math.prod(input_shape[:-1]) if input_shape else 1
        return 2 * rows * self.in_features * self.out_features

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


# ---- containers --------------------------------------------------------------------------------------
def _check_module(owner: str, index: int, value) -> "Module":
    if not isinstance(value, Module):
        raise TensorError(f"{owner}: item {index} is a {type(value).__name__}, not a Module; layers must be "
                          "Module instances (did you write nn.ReLU instead of nn.ReLU()?)")
    return value


class Sequential(Module):
    """Layers applied one after the other: Sequential(Linear(4, 8), ReLU(), Linear(8, 2)).

    Children are named "0", "1", ... (so state-dict keys are "0.weight", ... as in PyTorch);
    indexable (`model[0]`, `model[-1]`, `model[1:]` is a Sequential), `len()` and iterable.
    """

    def __init__(self, *layers: Module):
        super().__init__()
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = tuple(layers[0])
        for i, layer in enumerate(layers):
            setattr(self, str(i), _check_module(type(self).__name__, i, layer))

    def forward(self, x):
        # BEGIN SOLUTION
        for layer in self:
            x = layer(x)
        return x
        # END SOLUTION

    def append(self, layer: Module) -> "Sequential":
        setattr(self, str(len(self)), _check_module(type(self).__name__, len(self), layer))
        return self

    def __len__(self) -> int:
        return len(self.named_children())

    def __iter__(self) -> Iterator[Module]:
        return iter(self.children())

    def __getitem__(self, index):
        layers = self.children()
        if isinstance(index, slice):
            return Sequential(*layers[index])
        try:
            return layers[index]
        except (IndexError, TypeError):
            raise IndexError(f"{type(self).__name__}: index {index!r} is out of range for {len(layers)} layers") from None


class ModuleList(Module):
    """A list of Modules whose parameters count (a plain Python list would hide them from
    `parameters()`). Children are named "0", "1", ...; no forward of its own."""

    def __init__(self, modules=()):
        super().__init__()
        for module in modules:
            self.append(module)

    def append(self, module: Module) -> "ModuleList":
        setattr(self, str(len(self)), _check_module("ModuleList", len(self), module))
        return self

    def __len__(self) -> int:
        return len(self.named_children())

    def __iter__(self) -> Iterator[Module]:
        return iter(self.children())

    def __getitem__(self, index):
        return self.children()[index]


# ---- shape and regularisation layers -----------------------------------------------------------------
class Flatten(Module):
    """Merge dimensions start_dim..end_dim into one: (N, C, H, W) -> (N, C*H*W) by default."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim == 0:
            raise TensorError("Flatten: cannot flatten a 0-d tensor")
        start, end = self.start_dim % x.ndim, self.end_dim % x.ndim
        if start > end:
            raise TensorError(f"Flatten: start_dim {self.start_dim} comes after end_dim {self.end_dim} "
                              f"for input shape {x.shape}")
        # BEGIN SOLUTION
        return x.reshape(*x.shape[:start], -1, *x.shape[end + 1:])
        # END SOLUTION

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


def dropout(x: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Inverted dropout: in training, zero each element with probability p and scale the survivors
    by 1/(1-p), so the expected value is unchanged and evaluation needs no rescaling."""
    if not 0.0 <= p <= 1.0:
        raise TensorError(f"dropout: probability p must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    # BEGIN SOLUTION draw a keep-mask from get_rng() and scale the kept values by 1/(1-p)
    keep = get_rng().random(x.shape, dtype=np.float32) >= p
    scale = keep.astype(x.dtype) * x.dtype.type(1.0 / (1.0 - p))
    return x * Tensor(scale, dtype=x.dtype)
    # END SOLUTION


class Dropout(Module):
    """Randomly zero elements with probability p while training; the identity in eval mode."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise TensorError(f"Dropout: probability p must be in [0, 1], got {p}")
        self.p = float(p)

    def forward(self, x: Tensor) -> Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Identity(Module):
    """Returns its input unchanged (a placeholder, e.g. for an optional layer)."""

    def forward(self, x):
        return x


# ---- activation layers: Module wrappers of tinytorch.activations (module 03) -------------------------
class ReLU(Module):
    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x)


class LeakyReLU(Module):
    def __init__(self, negative_slope: float = 0.01):
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(x, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class Sigmoid(Module):
    def forward(self, x: Tensor) -> Tensor:
        return F.sigmoid(x)


class Tanh(Module):
    def forward(self, x: Tensor) -> Tensor:
        return F.tanh(x)


class GELU(Module):
    """GELU, tanh approximation (see activations.gelu)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.gelu(x)


class Softmax(Module):
    def __init__(self, dim: int = -1):
        super().__init__()
        self.dim = dim

    def forward(self, x: Tensor) -> Tensor:
        return F.softmax(x, axis=self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Module):
    def __init__(self, dim: int = -1):
        super().__init__()
        self.dim = dim

    def forward(self, x: Tensor) -> Tensor:
        return F.log_softmax(x, axis=self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"
