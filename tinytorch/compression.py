"""Module 12 - Compression: make a trained model smaller (int8 quantization, magnitude pruning)
and measure what it cost.

Quantization stores each number in 8 bits instead of 32. A float x is represented by an integer q
and a scale s (and, for activations, a zero point z):  x ~= s * (q - z).
- Weights: SYMMETRIC and PER OUTPUT CHANNEL. Row c of a Linear weight (out, in) - or filter c of a
  Conv2d weight (out, in, kh, kw) - gets its own scale s_c = max|W_c| / 127, q = round(W / s_c)
  in [-127, 127]. One scale per row costs 4 bytes per row and keeps a row of small weights from
  being crushed by another row's large ones.
- Activations (the input of each quantized layer): AFFINE (asymmetric) and PER TENSOR, from a
  range [lo, hi] observed while CALIBRATING on sample data: s = (hi - lo) / 255, and z chosen so
  that lo maps to -128. The range comes from the min/max of the calibration data, or from
  percentiles (ignore rare outliers, which would otherwise stretch the range and waste levels).
- Inference: y = s_x * s_w[c] * sum_k (q_x - z_x)[k] * q_w[c, k] + b. The sum is an integer
  computation (what an int8 kernel accumulates in int32); NumPy has no fast integer matmul, so we
  run the integer values through the float64 BLAS, which holds every such sum exactly (< 2^53).

Pruning sets weights to zero: UNSTRUCTURED by magnitude (the smallest |w| in each layer, or over the
whole model) or STRUCTURED (whole output channels with the smallest L2 norm, which a deployment
can then physically remove). `compression_report` measures bytes before/after, the ratio, and
held-out accuracy before/after - the numbers that decide whether a compression is worth it.

All forward-only: nothing here needs backward (module 09), except fine-tuning a pruned model,
for which `apply_masks` keeps the pruned weights at zero after each optimizer step.
"""
from __future__ import annotations

import copy

import numpy as np

from tinytorch.autograd import no_grad
from tinytorch.layers import Linear, Module
from tinytorch.networks import model_bytes
from tinytorch.spatial import Conv2d, conv2d
from tinytorch.tensor import DEFAULT_FLOAT, Tensor, TensorError

QMIN, QMAX = -128, 127          # the int8 range
WEIGHT_QMAX = 127               # symmetric weights use [-127, 127] so that 0 maps to 0 exactly


# ---- quantization arithmetic ---------------------------------------------------------------------------
def quantize_per_channel(weight, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 quantization with one scale per slice along `axis` (the output channel).

    weight: float array (C, ...) -> (q int8 of the same shape, scale float32 (C,)), with
    weight ~= q * scale (scale broadcast along `axis`). A channel of all zeros gets scale 1.
    """
    w = np.asarray(weight.data if isinstance(weight, Tensor) else weight)
    if w.dtype.kind != "f" or w.ndim == 0:
        raise TensorError(f"quantize_per_channel: expected a floating-point weight array, got dtype {w.dtype} "
                          f"and shape {w.shape}")
    axis = axis % w.ndim
    other = tuple(i for i in range(w.ndim) if i != axis)
    shape = [1] * w.ndim
    shape[axis] = w.shape[axis]
    # BEGIN SOLUTION scale = max|w| / 127 per channel (1 for an all-zero channel), q = round(w / scale)
    max_abs = np.abs(w).max(axis=other) if other else np.abs(w)
    scale = np.where(max_abs > 0, max_abs / WEIGHT_QMAX, 1.0).astype(DEFAULT_FLOAT)
    q = np.clip(np.rint(w / scale.reshape(shape)), -WEIGHT_QMAX, WEIGHT_QMAX).astype(np.int8)
    return q, scale
    # END SOLUTION


def dequantize_per_channel(q: np.ndarray, scale: np.ndarray, axis: int = 0) -> np.ndarray:
    """q * scale (scale broadcast along `axis`) as float32: the weights the quantized model uses."""
    shape = [1] * q.ndim
    shape[axis % q.ndim] = q.shape[axis % q.ndim]
    return (q.astype(DEFAULT_FLOAT) * np.asarray(scale, dtype=DEFAULT_FLOAT).reshape(shape))


def affine_qparams(lo: float, hi: float) -> tuple[float, int]:
    """Scale and zero point that map the float range [lo, hi] onto the int8 range [-128, 127].

    The range is first widened to contain 0, so that 0.0 (padding, ReLU's zeros) is represented
    exactly by the integer z. Returns (scale > 0, zero_point in [-128, 127]).
    """
    lo, hi = float(lo), float(hi)
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo > hi:
        raise TensorError(f"affine_qparams: need a finite range lo <= hi, got [{lo}, {hi}]")
    # BEGIN SOLUTION
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = (hi - lo) / (QMAX - QMIN)
    if scale == 0.0:                      # an all-zero tensor: any scale represents it
        return 1.0, 0
    zero_point = int(np.clip(round(QMIN - lo / scale), QMIN, QMAX))
    return float(scale), zero_point
    # END SOLUTION


def quantize_affine(x, scale: float, zero_point: int) -> np.ndarray:
    """int8 q = clip(round(x / scale) + zero_point, -128, 127); values outside the range saturate."""
    x = np.asarray(x.data if isinstance(x, Tensor) else x)
    # BEGIN SOLUTION
    return np.clip(np.rint(x / scale) + zero_point, QMIN, QMAX).astype(np.int8)
    # END SOLUTION


def dequantize_affine(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return ((q.astype(np.int32) - zero_point) * scale).astype(DEFAULT_FLOAT)


# ---- calibration: observing the range of activations ---------------------------------------------------
class MinMaxObserver:
    """Remembers the smallest and largest value it has seen (over all calibration batches)."""

    def __init__(self):
        self.lo, self.hi = np.inf, -np.inf

    def observe(self, x: np.ndarray) -> None:
        if x.size:
            self.lo = min(self.lo, float(x.min()))
            self.hi = max(self.hi, float(x.max()))

    def range(self) -> tuple[float, float]:
        if self.lo > self.hi:
            raise TensorError("calibration: this layer saw no data; run calibration batches through the model")
        return self.lo, self.hi


class PercentileObserver(MinMaxObserver):
    """Range from percentiles (e.g. 0.01% .. 99.99%) of the values seen: rare outliers are clipped
    instead of stretching the range. Keeps a bounded random sample of the values to stay cheap."""

    def __init__(self, percentile: float = 99.99, max_samples: int = 1_000_000, seed: int = 0):
        super().__init__()
        if not 50.0 < percentile <= 100.0:
            raise TensorError(f"PercentileObserver: percentile must be in (50, 100], got {percentile}")
        self.percentile, self.max_samples = float(percentile), int(max_samples)
        self._rng = np.random.default_rng(seed)
        self._samples: list[np.ndarray] = []
        self._count = 0

    def observe(self, x: np.ndarray) -> None:
        flat = np.asarray(x, dtype=np.float32).ravel()
        if flat.size > self.max_samples // 8:
            flat = self._rng.choice(flat, self.max_samples // 8, replace=False)
        self._samples.append(flat)
        self._count += flat.size
        if self._count > self.max_samples:  # keep memory bounded: thin out what we have
            merged = np.concatenate(self._samples)
            self._samples = [self._rng.choice(merged, self.max_samples // 2, replace=False)]
            self._count = self.max_samples // 2

    def range(self) -> tuple[float, float]:
        if not self._samples:
            raise TensorError("calibration: this layer saw no data; run calibration batches through the model")
        values = np.concatenate(self._samples)
        lo, hi = np.percentile(values, [100.0 - self.percentile, self.percentile])
        return float(lo), float(hi)


def make_observer(method: str = "minmax", percentile: float = 99.99):
    if method == "minmax":
        return MinMaxObserver()
    if method == "percentile":
        return PercentileObserver(percentile)
    raise TensorError(f"calibration method must be 'minmax' or 'percentile', got {method!r}")


# ---- quantized layers ----------------------------------------------------------------------------------
class _QuantizedLayer(Module):
    """Shared parts: int8 `weight` with per-channel `weight_scale`, float `bias`, input qparams.

    Everything is a buffer (saved by state_dict, counted by model_bytes) - nothing here is learned.
    """

    def _setup(self, weight: Tensor, bias: Tensor | None, input_scale: float, input_zero_point: int) -> None:
        q, scale = quantize_per_channel(weight, axis=0)
        self.register_buffer("weight", Tensor(q))                       # int8 (out, ...): 1 byte per weight
        self.register_buffer("weight_scale", Tensor(scale))             # float32 (out,)
        if bias is not None:
            self.register_buffer("bias", Tensor(np.array(bias.data, dtype=DEFAULT_FLOAT)))
        else:
            self.bias = None
        self.register_buffer("input_scale", Tensor(np.array(input_scale, dtype=DEFAULT_FLOAT)))
        self.register_buffer("input_zero_point", Tensor(np.array(input_zero_point, dtype=np.int32)))

    def _quantized_input(self, x) -> np.ndarray:
        """The input as integers q - z (float64 holding whole numbers, ready for BLAS)."""
        x = x if isinstance(x, Tensor) else Tensor(x)
        if x.dtype.kind != "f":
            raise TensorError(f"{type(self).__name__}: input must be floating point, got dtype {x.dtype}")
        s, z = float(self.input_scale.data), int(self.input_zero_point.data)
        return quantize_affine(x.data, s, z).astype(np.float64) - z

    def _output_scale(self) -> np.ndarray:
        """s_x * s_w[c] per output channel (float64)."""
        return float(self.input_scale.data) * self.weight_scale.data.astype(np.float64)

    def dequantized_weight(self) -> np.ndarray:
        return dequantize_per_channel(self.weight.data, self.weight_scale.data, axis=0)


class QuantizedLinear(_QuantizedLayer):
    """An int8 Linear for inference: (..., in) float -> (..., out) float32.

    Built from a trained Linear and the calibrated range of its input:
        QuantizedLinear.from_float(linear, input_range=(lo, hi))
    """

    def __init__(self, weight: Tensor, bias: Tensor | None, input_scale: float, input_zero_point: int):
        super().__init__()
        if weight.ndim != 2:
            raise TensorError(f"QuantizedLinear: weight must be (out_features, in_features), got {weight.shape}")
        self.out_features, self.in_features = weight.shape
        self._setup(weight, bias, input_scale, input_zero_point)

    @classmethod
    def from_float(cls, linear: Linear, input_range: tuple[float, float]) -> "QuantizedLinear":
        scale, zero_point = affine_qparams(*input_range)
        return cls(linear.weight, linear.bias, scale, zero_point)

    def forward(self, x) -> Tensor:
        xq = self._quantized_input(x)
        if xq.shape[-1] != self.in_features:
            raise TensorError(f"QuantizedLinear: input has {xq.shape[-1]} features (shape {xq.shape}) but the "
                              f"layer expects {self.in_features}")
        # BEGIN SOLUTION integer products summed exactly, then one rescale per output channel, plus bias
        acc = xq @ self.weight.data.astype(np.float64).T                # (..., out): the int32 accumulator
        y = acc * self._output_scale()
        if self.bias is not None:
            y = y + self.bias.data
        return Tensor(y.astype(DEFAULT_FLOAT))
        # END SOLUTION

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8"


class QuantizedConv2d(_QuantizedLayer):
    """An int8 Conv2d for inference, computed with module 06's conv2d on the integer values."""

    def __init__(self, weight: Tensor, bias: Tensor | None, input_scale: float, input_zero_point: int,
                 stride=1, padding=0):
        super().__init__()
        if weight.ndim != 4:
            raise TensorError(f"QuantizedConv2d: weight must be (out, in, kh, kw), got {weight.shape}")
        self.out_channels, self.in_channels = weight.shape[:2]
        self.stride, self.padding = stride, padding
        self._setup(weight, bias, input_scale, input_zero_point)

    @classmethod
    def from_float(cls, conv: Conv2d, input_range: tuple[float, float]) -> "QuantizedConv2d":
        scale, zero_point = affine_qparams(*input_range)
        return cls(conv.weight, conv.bias, scale, zero_point, conv.stride, conv.padding)

    def forward(self, x) -> Tensor:
        # Padding adds zeros of (q - z), i.e. the float value 0.0 - exactly what the float conv pads with.
        xq = self._quantized_input(x)
        with no_grad():
            acc = conv2d(Tensor(xq, dtype=np.float64), Tensor(self.weight.data.astype(np.float64), dtype=np.float64),
                         None, self.stride, self.padding).data          # (N, out, H', W') integers
        y = acc * self._output_scale()[None, :, None, None]
        if self.bias is not None:
            y = y + self.bias.data[None, :, None, None]
        return Tensor(y.astype(DEFAULT_FLOAT))

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={tuple(self.weight.shape[2:])}, "
                f"stride={self.stride}, padding={self.padding}, int8")


_QUANTIZABLE = {Linear: QuantizedLinear, Conv2d: QuantizedConv2d}


class _Calibrating(Module):
    """Stands in for a float layer during calibration: records the range of its input, then runs it."""

    def __init__(self, layer: Module, observer):
        super().__init__()
        self.layer, self.observer = layer, observer

    def forward(self, x):
        self.observer.observe(np.asarray(x.data if isinstance(x, Tensor) else x))
        return self.layer(x)


def _replace_children(model: Module, make) -> int:
    """Swap every child `c` of every module for `make(c)` when that returns a module; count swaps."""
    swapped = 0
    for _, parent in model.named_modules():
        for name, child in parent.named_children():
            new = make(child)
            if new is not None:
                setattr(parent, name, new)      # same attribute name: state-dict keys stay the same
                swapped += 1
    return swapped


def quantize_model(model: Module, calibration_data, method: str = "minmax", percentile: float = 99.99) -> Module:
    """Post-training int8 quantization: a copy of `model` with every Linear / Conv2d replaced by its
    quantized version. The model itself is not changed.

    calibration_data: an array/Tensor batch, or an iterable of batches (a few hundred typical inputs);
    they run through the float model once to find each layer's input range (method "minmax" or
    "percentile"). Layers that are not Linear/Conv2d (ReLU, pooling, ...) stay as they are, and so
    do subclasses with extra behaviour (e.g. module 13's fused conv + pool): only exact Linear and
    Conv2d layers are swapped.
    """
    qmodel = copy.deepcopy(model)
    if isinstance(qmodel, tuple(_QUANTIZABLE)):
        raise TensorError("quantize_model: the model itself is a single layer; wrap it, e.g. Sequential(layer)")
    if isinstance(calibration_data, (np.ndarray, Tensor)):
        calibration_data = [calibration_data]
    # BEGIN SOLUTION prepare (wrap layers with observers), calibrate (run the data), convert (swap in int8 layers)
    def wrap(child):
        if type(child) in _QUANTIZABLE:
            return _Calibrating(child, make_observer(method, percentile))
        return None

    if _replace_children(qmodel, wrap) == 0:
        raise TensorError(f"quantize_model: {type(model).__name__} has no Linear or Conv2d layer to quantize")
    qmodel.eval()
    batches = 0
    with no_grad():
        for batch in calibration_data:
            qmodel(batch if isinstance(batch, Tensor) else Tensor(batch))
            batches += 1
    if batches == 0:
        raise TensorError("quantize_model: calibration_data is empty; give a few batches of typical inputs")

    def convert(child):
        if isinstance(child, _Calibrating):
            return _QUANTIZABLE[type(child.layer)].from_float(child.layer, child.observer.range())
        return None

    _replace_children(qmodel, convert)
    # END SOLUTION
    return qmodel


# ---- pruning -------------------------------------------------------------------------------------------
def prunable_weights(model: Module) -> list[tuple[str, Tensor]]:
    """(name, weight) of every Linear and Conv2d weight: the matrices pruning acts on (biases are kept)."""
    return [(f"{name}.weight" if name else "weight", m.weight) for name, m in model.named_modules()
            if isinstance(m, (Linear, Conv2d))]


def _check_amount(op: str, amount: float) -> float:
    if not 0.0 <= amount < 1.0:
        raise TensorError(f"{op}: amount is the fraction of weights to remove and must be in [0, 1), got {amount}")
    return float(amount)


def magnitude_prune(model: Module, amount: float, scope: str = "global") -> dict[str, np.ndarray]:
    """Unstructured pruning: zero the `amount` fraction of weights with the smallest |w|, in place.

    scope "layer": that fraction in every layer; "global": one threshold over all layers together
    (layers with many small weights lose more, which usually costs less accuracy).
    Returns {weight name: boolean keep-mask} for `apply_masks` (to keep the zeros while fine-tuning).
    """
    _check_amount("magnitude_prune", amount)
    if scope not in ("global", "layer"):
        raise TensorError(f"magnitude_prune: scope must be 'global' or 'layer', got {scope!r}")
    weights = prunable_weights(model)
    if not weights:
        raise TensorError(f"magnitude_prune: {type(model).__name__} has no Linear or Conv2d weights")
    # BEGIN SOLUTION find the threshold(s) as the amount-quantile of |w|, keep weights above it
    def threshold(values: np.ndarray) -> float:
        k = int(amount * values.size)                  # number of weights to remove
        return -np.inf if k == 0 else np.partition(values, k - 1)[k - 1]

    if scope == "global":
        cut = threshold(np.concatenate([np.abs(w.data).ravel() for _, w in weights]))
    masks = {}
    for name, w in weights:
        t = cut if scope == "global" else threshold(np.abs(w.data).ravel())
        keep = np.abs(w.data) > t
        w.data *= keep
        masks[name] = keep
    return masks
    # END SOLUTION


def channel_prune(model: Module, amount: float, layers: list[str] | None = None) -> dict[str, np.ndarray]:
    """Structured pruning: in each chosen layer, zero the `amount` fraction of OUTPUT channels (rows
    of a Linear weight, filters of a Conv2d) with the smallest L2 norm, and their biases. In place.

    layers: names of the modules to prune (as in `named_modules()`); default every Linear/Conv2d
    except the last one, whose outputs are the model's answers (pruning a row there deletes a class).
    Returns {weight name: boolean keep-mask of the weight's shape}.
    """
    _check_amount("channel_prune", amount)
    found = [(name, m) for name, m in model.named_modules() if isinstance(m, (Linear, Conv2d))]
    if layers is None:
        chosen = found[:-1]
    else:
        by_name = dict(found)
        missing = [n for n in layers if n not in by_name]
        if missing:
            raise TensorError(f"channel_prune: no Linear/Conv2d named {missing}; prunable layers are "
                              f"{[n for n, _ in found]}")
        chosen = [(n, by_name[n]) for n in layers]
    masks = {}
    for name, layer in chosen:
        w = layer.weight.data
        # BEGIN SOLUTION rank output channels by L2 norm, zero the weakest `amount` fraction (weight rows and bias)
        norms = np.sqrt((w.reshape(w.shape[0], -1).astype(np.float64) ** 2).sum(axis=1))
        n_remove = int(amount * w.shape[0])
        keep_rows = np.ones(w.shape[0], dtype=bool)
        keep_rows[np.argsort(norms, kind="stable")[:n_remove]] = False
        keep = np.broadcast_to(keep_rows.reshape((-1,) + (1,) * (w.ndim - 1)), w.shape).copy()
        layer.weight.data *= keep
        if layer.bias is not None:
            layer.bias.data *= keep_rows
        # END SOLUTION
        masks[f"{name}.weight" if name else "weight"] = keep
    return masks


def apply_masks(model: Module, masks: dict[str, np.ndarray]) -> None:
    """Zero the pruned weights again (call after each optimizer step when fine-tuning a pruned model)."""
    weights = dict(prunable_weights(model))
    for name, keep in masks.items():
        if name not in weights:
            raise TensorError(f"apply_masks: the model has no prunable weight {name!r}")
        weights[name].data *= keep


def sparsity(model: Module, by_layer: bool = False):
    """Fraction of Linear/Conv2d weights that are exactly zero (overall, or {name: fraction})."""
    weights = prunable_weights(model)
    if by_layer:
        return {name: float((w.data == 0).mean()) for name, w in weights}
    total = sum(w.numel() for _, w in weights)
    return float(sum(int((w.data == 0).sum()) for _, w in weights) / max(total, 1))


# ---- measuring ---------------------------------------------------------------------------------------------
def weight_bytes(model: Module) -> int:
    """Bytes of the Linear/Conv2d weights (float or int8) and their quantization scales."""
    total = 0
    for _, m in model.named_modules():
        if isinstance(m, (Linear, Conv2d)):
            total += m.weight.data.nbytes
        elif isinstance(m, _QuantizedLayer):
            total += m.weight.data.nbytes + m.weight_scale.data.nbytes
    return total


def accuracy(model: Module, x, y, batch_size: int = 1000) -> float:
    """Share of rows of `x` whose argmax output equals the label in `y` (eval mode, no graph)."""
    x = np.asarray(x.data if isinstance(x, Tensor) else x)
    y = np.asarray(y.data if isinstance(y, Tensor) else y)
    if len(x) != len(y) or len(y) == 0:
        raise TensorError(f"accuracy: need as many labels as inputs (and at least one), got {len(x)} inputs "
                          f"and {len(y)} labels")
    was_training = model.training
    model.eval()
    correct = 0
    try:
        with no_grad():
            for i in range(0, len(x), batch_size):
                out = model(Tensor(x[i:i + batch_size]))
                correct += int((np.argmax(out.data, axis=-1) == y[i:i + batch_size]).sum())
    finally:
        model.train(was_training)
    return correct / len(y)


def compression_report(model: Module, quantized_model: Module, x_eval, y_eval, batch_size: int = 1000) -> dict:
    """What compression bought and what it cost, measured on held-out data.

    Returns {"bytes_before", "bytes_after", "compression_ratio" (all parameters and buffers),
    "weight_bytes_before", "weight_bytes_after", "weight_compression_ratio" (the weight matrices
    and their scales), "accuracy_before", "accuracy_after", "accuracy_drop_points" (percentage
    points, positive = worse), "sparsity_after", "examples"}.
    `quantized_model` may be any compressed version of `model` (quantized, pruned, or both).
    """
    # BEGIN SOLUTION
    before, after = model_bytes(model), model_bytes(quantized_model)
    w_before, w_after = weight_bytes(model), weight_bytes(quantized_model)
    acc_before = accuracy(model, x_eval, y_eval, batch_size)
    acc_after = accuracy(quantized_model, x_eval, y_eval, batch_size)
    try:
        zeros = sparsity(quantized_model)
    except TensorError:
        zeros = 0.0
    return {"bytes_before": int(before), "bytes_after": int(after),
            "compression_ratio": before / max(after, 1),
            "weight_bytes_before": int(w_before), "weight_bytes_after": int(w_after),
            "weight_compression_ratio": w_before / max(w_after, 1),
            "accuracy_before": acc_before, "accuracy_after": acc_after,
            "accuracy_drop_points": 100.0 * (acc_before - acc_after),
            "sparsity_after": zeros, "examples": int(len(y_eval))}
    # END SOLUTION


def format_report(report: dict) -> str:
    """The report as a small table for people."""
    kb = lambda n: f"{n / 1024:,.1f} KiB"  # noqa: E731
    return "\n".join([
        f"{'':22}{'before':>14}{'after':>14}",
        f"{'all tensors':22}{kb(report['bytes_before']):>14}{kb(report['bytes_after']):>14}"
        f"   x{report['compression_ratio']:.2f} smaller",
        f"{'weight matrices':22}{kb(report['weight_bytes_before']):>14}{kb(report['weight_bytes_after']):>14}"
        f"   x{report['weight_compression_ratio']:.2f} smaller",
        f"{'accuracy':22}{report['accuracy_before']:>14.4f}{report['accuracy_after']:>14.4f}"
        f"   {report['accuracy_drop_points']:+.2f} points lost on {report['examples']:,} held-out examples",
    ])
