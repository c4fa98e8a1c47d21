"""Module 05 - Networks: building models from layers, normalising, initialising, measuring, and losses.

What is here:
- `MLP(sizes)`: a multi-layer perceptron as a `Sequential` of Linear + activation layers.
- `LayerNorm` / `layer_norm`: normalise each feature vector over its last axis (transformers use it).
- `Residual(block)`: x + block(x), the skip connection that lets deep networks train.
- `init`: weight initialisation schemes (Xavier/Glorot and Kaiming/He), in place, like `torch.nn.init`.
- `count_parameters`, `model_flops`, `model_bytes`: how big and how expensive a model is.
- Losses: `mse_loss` / `MSELoss` and `cross_entropy` / `CrossEntropyLoss` (from logits, integer
  class targets, optional label smoothing).

Forward code only: module 09 supplies the gradients. Every function keeps its input's floating dtype
(float64 in -> float64 out), float32 being the default everywhere.
"""
from __future__ import annotations

import copy
import math

import numpy as np

from tinytorch.activations import log_softmax
from tinytorch.layers import (GELU, LeakyReLU, Linear, Module, Parameter, ReLU, Sequential, Sigmoid, Tanh,
                              Dropout, trace_calls)
from tinytorch.tensor import DEFAULT_FLOAT, Tensor, TensorError, get_rng, grad_mode

# ---- MLP ---------------------------------------------------------------------------------------------
_ACTIVATIONS = {"relu": ReLU, "leaky_relu": LeakyReLU, "sigmoid": Sigmoid, "tanh": Tanh, "gelu": GELU}


def _activation_factory(activation):
    """Turn 'relu' / ReLU / ReLU() / a zero-argument function into a function that makes a new layer."""
    if isinstance(activation, str):
        if activation.lower() not in _ACTIVATIONS:
            raise TensorError(f"MLP: unknown activation {activation!r}; choose one of {sorted(_ACTIVATIONS)} "
                              "or pass a Module class such as nn.ReLU")
        return _ACTIVATIONS[activation.lower()]
    if isinstance(activation, Module):
        return lambda: copy.deepcopy(activation)
    if callable(activation):
        return activation
    raise TensorError(f"MLP: activation must be a name, a Module class or a Module, got {activation!r}")


class MLP(Sequential):
    """Multi-layer perceptron: MLP([784, 128, 10]) = Sequential(Linear(784, 128), ReLU(), Linear(128, 10)).

    sizes: [in, hidden..., out] (at least two numbers). An activation (a name such as "gelu", a
    Module class, or a Module to copy) follows every Linear except the last, so the output is raw
    scores (logits). dropout > 0 adds a Dropout after each hidden activation. Being a Sequential,
    its state-dict keys are "0.weight", "0.bias", "2.weight", ... as in PyTorch.
    """

    def __init__(self, sizes, activation=ReLU, bias: bool = True, dropout: float = 0.0):
        sizes = [int(s) for s in sizes]
        if len(sizes) < 2 or min(sizes) <= 0:
            raise TensorError(f"MLP: sizes must list at least an input and an output size, all positive, "
                              f"got {sizes}")
        make_activation = _activation_factory(activation)
        # BEGIN SOLUTION build Linear layers between consecutive sizes, an activation after all but the last
        layers = []
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(Linear(n_in, n_out, bias=bias))
            if i < len(sizes) - 2:
                layers.append(make_activation())
                if dropout > 0:
                    layers.append(Dropout(dropout))
        # END SOLUTION
        super().__init__(*layers)
        self.sizes = sizes


# ---- LayerNorm ---------------------------------------------------------------------------------------
def layer_norm(x: Tensor, weight: Tensor | None = None, bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """Normalise over the last axis, then scale and shift: (x - mean) / sqrt(var + eps) * weight + bias.

    x: (..., D); weight, bias: (D,) (None means ones / zeros). The variance is the biased one (divide
    by D), as in PyTorch. Records "layer_norm" (rule `_layer_norm` in autograd.py) with parents
    (x, weight, bias), saving `xhat` = (x - mean) * rstd of x's shape and `rstd` = 1/sqrt(var + eps)
    of shape (..., 1).
    """
    if not isinstance(x, Tensor) or x.dtype.kind != "f" or x.ndim == 0:
        raise TensorError(f"layer_norm: expected a floating-point Tensor with at least 1 dimension, got "
                          f"{type(x).__name__} {getattr(x, 'dtype', '')} {getattr(x, 'shape', '')}")
    D = x.shape[-1]
    weight = Tensor(np.ones(D, dtype=x.dtype)) if weight is None else weight
    bias = Tensor(np.zeros(D, dtype=x.dtype)) if bias is None else bias
    if weight.shape != (D,) or bias.shape != (D,):
        raise TensorError(f"layer_norm: input's last dimension is {D} (shape {x.shape}) but weight has shape "
                          f"{weight.shape} and bias {bias.shape}; both must be ({D},)")
    # BEGIN SOLUTION
    d = x.data
    centred = d - d.mean(axis=-1, keepdims=True)
    var = (centred * centred).mean(axis=-1, keepdims=True)
    rstd = 1.0 / np.sqrt(var + d.dtype.type(eps))          # (..., 1)
    xhat = centred * rstd
    out = xhat * weight.data + bias.data
    return Tensor._make(out, "layer_norm", (x, weight, bias), xhat=xhat, rstd=rstd)
    # END SOLUTION


class LayerNorm(Module):
    """LayerNorm over the last axis of size `dim`, with learned weight (ones) and bias (zeros)."""

    def __init__(self, dim: int, eps: float = 1e-5, elementwise_affine: bool = True):
        super().__init__()
        if isinstance(dim, (tuple, list)):
            if len(dim) != 1:
                raise TensorError(f"LayerNorm: only normalisation over the last axis is supported; "
                                  f"got normalized_shape {tuple(dim)}")
            dim = dim[0]
        self.dim, self.eps = int(dim), float(eps)
        self.weight = Parameter(np.ones(self.dim, dtype=DEFAULT_FLOAT)) if elementwise_affine else None
        self.bias = Parameter(np.zeros(self.dim, dtype=DEFAULT_FLOAT)) if elementwise_affine else None

    def forward(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor) or x.ndim == 0 or x.shape[-1] != self.dim:
            raise TensorError(f"LayerNorm: input's last dimension must be {self.dim} (the features the layer "
                              f"normalises), got shape {getattr(x, 'shape', None)}")
        return layer_norm(x, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"({self.dim},), eps={self.eps}, elementwise_affine={self.weight is not None}"


# ---- Residual ----------------------------------------------------------------------------------------
class Residual(Module):
    """x + block(x): the block learns a correction to its input; the gradient has a direct path back.

    The block must keep the shape of its input.
    """

    def __init__(self, block: Module):
        super().__init__()
        if not isinstance(block, Module):
            raise TensorError(f"Residual: block must be a Module, got {type(block).__name__}")
        self.block = block

    def forward(self, x: Tensor) -> Tensor:
        y = self.block(x)
        if y.shape != x.shape:
            raise TensorError(f"Residual: the block changed the shape from {x.shape} to {y.shape}; "
                              "x + block(x) needs the block to keep the shape")
        # BEGIN SOLUTION
        return x + y
        # END SOLUTION


# ---- initialisation ----------------------------------------------------------------------------------
def _fans(tensor: Tensor) -> tuple[int, int]:
    """fan_in, fan_out of a weight (out, in, *kernel): in*prod(kernel), out*prod(kernel)."""
    if tensor.ndim < 2:
        raise TensorError(f"init: fan in and fan out need a weight with at least 2 dimensions, got shape "
                          f"{tensor.shape} (biases are usually initialised with zeros_)")
    receptive = math.prod(tensor.shape[2:])
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def _gain(nonlinearity: str, a: float = 0.0) -> float:
    gains = {"linear": 1.0, "sigmoid": 1.0, "tanh": 5.0 / 3.0, "relu": math.sqrt(2.0),
             "leaky_relu": math.sqrt(2.0 / (1.0 + a * a))}
    if nonlinearity not in gains:
        raise TensorError(f"init: unknown nonlinearity {nonlinearity!r}; choose one of {sorted(gains)}")
    return gains[nonlinearity]


def _fill(tensor: Tensor, values: np.ndarray) -> Tensor:
    """Write values into tensor.data in place, keeping its dtype (the Parameter object stays the same)."""
    tensor.data[...] = values
    return tensor


class init:
    """Weight initialisation, in place, like `torch.nn.init` (`init.kaiming_uniform_(layer.weight)`).

    All draw from `tinytorch.get_rng()`. Names end in "_" because they modify their argument; the
    names without "_" are aliases. fan_in = in_features (x kernel size), fan_out = out_features (x ...).
    - xavier_uniform_:  U(-b, b), b = gain * sqrt(6 / (fan_in + fan_out))    (tanh / sigmoid nets)
    - xavier_normal_:   N(0, std), std = gain * sqrt(2 / (fan_in + fan_out))
    - kaiming_uniform_: U(-b, b), b = gain * sqrt(3 / fan)   gain = sqrt(2) for ReLU  (ReLU nets)
    - kaiming_normal_:  N(0, std), std = gain / sqrt(fan)    fan = fan_in (default) or fan_out
    """

    @staticmethod
    def zeros_(tensor: Tensor) -> Tensor:
        return _fill(tensor, 0)

    @staticmethod
    def ones_(tensor: Tensor) -> Tensor:
        return _fill(tensor, 1)

    @staticmethod
    def constant_(tensor: Tensor, value: float) -> Tensor:
        return _fill(tensor, value)

    @staticmethod
    def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0) -> Tensor:
        return _fill(tensor, get_rng().uniform(a, b, tensor.shape))

    @staticmethod
    def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0) -> Tensor:
        return _fill(tensor, get_rng().normal(mean, std, tensor.shape))

    @staticmethod
    def xavier_uniform_(tensor: Tensor, gain: float = 1.0) -> Tensor:
        fan_in, fan_out = _fans(tensor)
        # BEGIN SOLUTION
        bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
        return _fill(tensor, get_rng().uniform(-bound, bound, tensor.shape))
        # END SOLUTION

    @staticmethod
    def xavier_normal_(tensor: Tensor, gain: float = 1.0) -> Tensor:
        fan_in, fan_out = _fans(tensor)
        # BEGIN SOLUTION
        std = gain * math.sqrt(2.0 / (fan_in + fan_out))
        return _fill(tensor, get_rng().normal(0.0, std, tensor.shape))
        # END SOLUTION

    @staticmethod
    def kaiming_uniform_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in",
                         nonlinearity: str = "relu") -> Tensor:
        if mode not in ("fan_in", "fan_out"):
            raise TensorError(f"init: mode must be 'fan_in' or 'fan_out', got {mode!r}")
        fan = _fans(tensor)[0 if mode == "fan_in" else 1]
        # BEGIN SOLUTION
        bound = _gain(nonlinearity, a) * math.sqrt(3.0 / fan)
        return _fill(tensor, get_rng().uniform(-bound, bound, tensor.shape))
        # END SOLUTION

    @staticmethod
    def kaiming_normal_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in",
                        nonlinearity: str = "relu") -> Tensor:
        if mode not in ("fan_in", "fan_out"):
            raise TensorError(f"init: mode must be 'fan_in' or 'fan_out', got {mode!r}")
        fan = _fans(tensor)[0 if mode == "fan_in" else 1]
        # BEGIN SOLUTION
        std = _gain(nonlinearity, a) / math.sqrt(fan)
        return _fill(tensor, get_rng().normal(0.0, std, tensor.shape))
        # END SOLUTION

    calculate_gain = staticmethod(_gain)
    # Aliases without the trailing underscore.
    zeros, ones, constant, uniform, normal = zeros_, ones_, constant_, uniform_, normal_
    xavier_uniform, xavier_normal = xavier_uniform_, xavier_normal_
    kaiming_uniform, kaiming_normal = kaiming_uniform_, kaiming_normal_


# ---- measuring a model -------------------------------------------------------------------------------
def count_parameters(model: Module, trainable_only: bool = False) -> int:
    """Number of learnable numbers (shared parameters counted once)."""
    # BEGIN SOLUTION
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
    # END SOLUTION


def model_bytes(model: Module, include_buffers: bool = True) -> int:
    """Memory held by the parameters (and buffers): a float32 number takes 4 bytes."""
    tensors = model.parameters() + (model.buffers() if include_buffers else [])
    unique = {id(t): t for t in tensors}
    # BEGIN SOLUTION
    return sum(t.data.nbytes for t in unique.values())
    # END SOLUTION


def model_flops(model: Module, input_shape, dtype=DEFAULT_FLOAT, by_layer: bool = False):
    """Floating-point operations of one forward pass for an input of `input_shape` (batch included).

    Convention (that of torch.utils.flop_counter): a multiply-add is 2 FLOPs and only matrix
    products and convolutions are counted; element-wise work (activations, bias adds, norms, softmax)
    is ignored. Linear(in, out) on (N, in) costs 2 * N * in * out.

    How: run `model` once on zeros of `input_shape` (`dtype`: use an integer dtype for token ids)
    in eval mode without recording a graph, note every Module call with its input and output shape
    (`tinytorch.layers.trace_calls`), and add up each module's `flops(input_shape, output_shape)`.

    The hook (`Module.flops`): a layer returns the FLOPs of its OWN computation for one call,
    excluding its children, which report theirs. Linear and MultiHeadAttention implement it;
    module 06 adds e.g. Conv2d.flops = 2 * N * C_out * H_out * W_out * (C_in // groups) * kh * kw
    (input_shape (N, C_in, H, W), output_shape (N, C_out, H_out, W_out)); pooling and batch norm keep
    the default 0. A custom module that multiplies matrices in its own forward overrides `flops`.

    by_layer=True returns [(module name, type name, flops), ...] per call instead of the total.
    Training flags are restored afterwards (so BatchNorm statistics are not touched).
    """
    shape = (int(input_shape),) if isinstance(input_shape, (int, np.integer)) else tuple(int(s) for s in input_shape)
    names = {id(m): name for name, m in model.named_modules()}
    modes = [(m, m.training) for m in model.modules()]
    previous_grad = grad_mode.enabled
    model.eval()
    grad_mode.enabled = False
    try:
        with trace_calls() as calls:
            model(Tensor(np.zeros(shape, dtype=dtype)))
    finally:
        grad_mode.enabled = previous_grad
        for m, mode in modes:
            m.training = mode
    # BEGIN SOLUTION add up module.flops(input_shape, output_shape) over the recorded calls
    per_call = [(names.get(id(m), type(m).__name__), type(m).__name__, int(m.flops(ins, outs)))
                for m, ins, outs in calls]
    # END SOLUTION
    return per_call if by_layer else sum(f for _, _, f in per_call)


# ---- losses ------------------------------------------------------------------------------------------
_REDUCTIONS = ("mean", "sum", "none")


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _check_reduction(op: str, reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise TensorError(f"{op}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def mse_loss(pred: Tensor, target, reduction: str = "mean") -> Tensor:
    """Mean squared error: mean((pred - target)^2). Shapes must be equal (no silent broadcasting:
    (N, 1) against (N,) would give an (N, N) matrix of wrong differences)."""
    _check_reduction("mse_loss", reduction)
    if not isinstance(pred, Tensor) or pred.dtype.kind != "f":
        raise TensorError(f"mse_loss: predictions must be a floating-point Tensor, got {type(pred).__name__} "
                          f"{getattr(pred, 'dtype', '')}")
    target = target if isinstance(target, Tensor) else Tensor(target)
    if target.shape != pred.shape:
        raise TensorError(f"mse_loss: predictions have shape {pred.shape} but targets have shape {target.shape}; "
                          "they must be equal (reshape one of them)")
    if target.dtype.kind != "f":
        target = target.astype(pred.dtype)
    # BEGIN SOLUTION
    diff = pred - target
    return _reduce(diff * diff, reduction)
    # END SOLUTION


def cross_entropy(logits: Tensor, targets, label_smoothing: float = 0.0, reduction: str = "mean") -> Tensor:
    """Cross-entropy from raw scores: -log softmax(logits)[target], averaged.

    logits: (N, C) with targets (N,), or (N, T, C) with (N, T) - in general (..., C) with (...):
    the classes are on the LAST axis (PyTorch puts them on axis 1 for (N, C, T); we follow the
    layout language models produce). targets are integer class indices in [0, C).

    label_smoothing = e in [0, 1): the target distribution becomes (1 - e) on the true class plus
    e / C on every class, so loss = (1 - e) * nll + e * mean_c(-log p_c) (as in PyTorch).
    reduction: "mean" (over all targets), "sum", or "none" (the loss of each target, shape of targets).
    NaN in the logits gives a NaN loss (visible, not hidden).
    """
    _check_reduction("cross_entropy", reduction)
    if not isinstance(logits, Tensor) or logits.dtype.kind != "f" or logits.ndim == 0:
        raise TensorError(f"cross_entropy: logits must be a floating-point Tensor (..., C), got "
                          f"{type(logits).__name__} {getattr(logits, 'dtype', '')} {getattr(logits, 'shape', '')}")
    t = np.asarray(targets.data if isinstance(targets, Tensor) else targets)
    if t.dtype.kind not in "iu":
        raise TensorError(f"cross_entropy: targets must be integer class indices (e.g. int64), got dtype "
                          f"{t.dtype} (targets shape {t.shape}, logits shape {logits.shape}); for one-hot or probability targets take argmax over the class axis, "
                          "for float labels that hold whole numbers use .long()")
    C = logits.shape[-1]
    if t.shape != logits.shape[:-1]:
        raise TensorError(f"cross_entropy: logits of shape {logits.shape} need targets of shape {logits.shape[:-1]} "
                          f"(one class index per row of scores; classes on the last axis), got {t.shape}")
    if t.size and (t.min() < 0 or t.max() >= C):
        raise TensorError(f"cross_entropy: targets must be class indices in [0, {C}) for {C} classes, got values "
                          f"from {t.min()} to {t.max()} (logits shape {logits.shape}, targets shape {t.shape})")
    if not 0.0 <= label_smoothing < 1.0:
        raise TensorError(f"cross_entropy: label_smoothing must be in [0, 1), got {label_smoothing}")
    # BEGIN SOLUTION
    logp = log_softmax(logits, axis=-1).reshape(-1, C)       # (M, C)
    flat = t.reshape(-1)
    nll = -logp[np.arange(flat.size), flat]                  # (M,): -log p of each true class
    if label_smoothing > 0:
        loss = nll * (1.0 - label_smoothing) + (-logp.mean(axis=-1)) * label_smoothing
    else:
        loss = nll
    if reduction == "none":
        return loss.reshape(t.shape)
    return _reduce(loss, reduction)
    # END SOLUTION


class MSELoss(Module):
    def __init__(self, reduction: str = "mean"):
        super().__init__()
        _check_reduction("MSELoss", reduction)
        self.reduction = reduction

    def forward(self, pred: Tensor, target) -> Tensor:
        return mse_loss(pred, target, self.reduction)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


class CrossEntropyLoss(Module):
    """`CrossEntropyLoss()(logits, targets)` = `cross_entropy(logits, targets, ...)`."""

    def __init__(self, label_smoothing: float = 0.0, reduction: str = "mean"):
        super().__init__()
        _check_reduction("CrossEntropyLoss", reduction)
        if not 0.0 <= label_smoothing < 1.0:
            raise TensorError(f"CrossEntropyLoss: label_smoothing must be in [0, 1), got {label_smoothing}")
        self.label_smoothing, self.reduction = float(label_smoothing), reduction

    def forward(self, logits: Tensor, targets) -> Tensor:
        return cross_entropy(logits, targets, self.label_smoothing, self.reduction)

    def extra_repr(self) -> str:
        return f"label_smoothing={self.label_smoothing}, reduction={self.reduction!r}"
