"""Probes of module 12 (compression): what each probe calls and why it cannot be passed without the work.

- quantize_per_channel of random weights (Linear rows and conv filters, one all-zero channel): int8 values
  and scales; affine_qparams of random ranges and quantize_affine of random values (saturating);
- QuantizedLinear.from_float outputs on random inputs, and quantize_model of a small random MLP calibrated on
  random data: the quantized model's outputs;
- magnitude_prune (per layer and global) and channel_prune of random models: the masks and pruned weights
  (sizes and amounts chosen so the number of weights to remove is a whole number);
- compression_report of a pruned + quantized model on random labelled data: its byte counts and accuracies.
Quantized integers are compared exactly: a rounding tie between two honest formulas needs an input within
about 1e-5 of a half-integer step, rare at these sizes.
"""
from __future__ import annotations

import importlib

import numpy as np

MODULE = "12_compression"


def _compression(tt):
    return importlib.import_module(f"{tt.__name__}.compression")


def _mlp(tt, rng, sizes):
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(tt.nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(tt.nn.ReLU())
    model = tt.nn.Sequential(*layers)
    for p in model.parameters():
        p.data = rng.normal(0.0, 0.5, p.shape).astype(np.float32)
    return model


def probe_quantization_primitives(tt, rng) -> dict[str, np.ndarray]:
    c = _compression(tt)
    w = rng.normal(0.0, 1.0, (int(rng.integers(2, 8)), int(rng.integers(2, 8)))).astype(np.float32)
    w[int(rng.integers(0, w.shape[0]))] = 0.0
    filters = rng.normal(0.0, 0.3, (int(rng.integers(1, 5)), 2, 3, 3)).astype(np.float32)
    q, scale = c.quantize_per_channel(w)
    qf, scale_f = c.quantize_per_channel(filters)
    lo, hi = sorted(float(v) for v in rng.uniform(-5, 5, 2))
    qscale, zero = c.affine_qparams(lo, hi)
    x = rng.uniform(lo - 1, hi + 1, 40).astype(np.float32)
    positive = c.affine_qparams(abs(lo), abs(lo) + abs(hi) + 0.5)
    return {"q": q.astype(np.int64), "scale": np.asarray(scale), "q_filters": qf.astype(np.int64),
            "scale_filters": np.asarray(scale_f), "qparams": np.array([qscale, zero, *positive], dtype=np.float64),
            "affine": c.quantize_affine(x, qscale, zero).astype(np.int64)}


def probe_quantized_layers_and_model(tt, rng) -> dict[str, np.ndarray]:
    c = _compression(tt)
    sizes = [int(v) for v in rng.integers(2, 10, size=3)]
    model = _mlp(tt, rng, sizes)
    calibration = rng.normal(0.0, 1.0, (64, sizes[0])).astype(np.float32)
    x = tt.Tensor(rng.normal(0.0, 1.0, (int(rng.integers(1, 6)), sizes[0])).astype(np.float32))
    lo, hi = float(calibration.min()), float(calibration.max())
    layer = c.QuantizedLinear.from_float(model[0], (lo, hi))
    quantized = c.quantize_model(model, calibration)
    return {"layer": layer(x).data, "model": quantized(x).data, "float_unchanged": model(x).data}


def probe_pruning(tt, rng) -> dict[str, np.ndarray]:
    c = _compression(tt)
    # amount * count is a whole number for every layer, channel set and their union, so how an implementation
    # rounds the number of weights to remove (floor, round) does not matter
    sizes = [int(rng.integers(3, 10)), 4 * int(rng.integers(1, 5)), 4 * int(rng.integers(1, 4))]
    amount = float(rng.choice([0.25, 0.5, 0.75]))
    out = {}
    for scope in ("layer", "global"):
        model = _mlp(tt, rng, sizes)
        masks = c.magnitude_prune(model, amount, scope=scope)
        for name, mask in sorted(masks.items()):
            out[f"{scope}_{name.replace('.', '_')}"] = np.asarray(mask).astype(np.int64)
        out[f"{scope}_weights"] = np.concatenate([p.data.ravel() for p in model.parameters()])
    model = _mlp(tt, rng, sizes)
    masks = c.channel_prune(model, amount)
    for name, mask in sorted(masks.items()):
        out[f"channel_{name.replace('.', '_')}"] = np.asarray(mask).astype(np.int64)
    out["channel_weights"] = np.concatenate([p.data.ravel() for p in model.parameters()])
    return out


def probe_compression_report(tt, rng) -> dict[str, np.ndarray]:
    c = _compression(tt)
    sizes = [int(rng.integers(4, 10)), int(rng.integers(4, 10)), int(rng.integers(2, 5))]
    model = _mlp(tt, rng, sizes)
    x = rng.normal(0.0, 1.0, (int(rng.integers(50, 120)), sizes[0])).astype(np.float32)
    y = rng.integers(0, sizes[-1], size=len(x))
    quantized = c.quantize_model(model, x[:32])
    report = c.compression_report(model, quantized, x, y)
    keys = ("bytes_before", "bytes_after", "compression_ratio", "weight_bytes_before", "weight_bytes_after",
            "weight_compression_ratio", "accuracy_before", "accuracy_after", "accuracy_drop_points", "sparsity_after",
            "examples")
    return {"report": np.array([float(report[k]) for k in keys])}


PROBES = [probe_quantization_primitives, probe_quantized_layers_and_model, probe_pruning, probe_compression_report]
