"""Probes of module 05 (networks): what each probe calls and why it cannot be passed without the work.

- `MLP`: the parameter shapes and layer types of random size lists and activations, and its forward with
  weights the probe draws;
- `layer_norm` / `LayerNorm` on random rows (with a large offset), random weight and bias; `Residual`;
- the four initialisers: shape-dependent scale (gain * sqrt(...)) as a rounded ratio of the empirical
  standard deviation to the formula's, and the uniform/normal shape (fraction beyond 1.8 sigma), because two
  honest implementations draw different numbers;
- `count_parameters`, `model_bytes` and `model_flops` (total and per layer) of random models;
- `mse_loss` and `cross_entropy` (2-D and sequence layouts, label smoothing, every reduction) on random data.
"""
from __future__ import annotations

import numpy as np

MODULE = "05_networks"

_ACTIVATIONS = ("relu", "tanh", "sigmoid", "gelu", "leaky_relu")


def _floats(rng, shape, scale=1.0) -> np.ndarray:
    return rng.normal(0.0, scale, shape).astype(np.float32)


def _set_weights(rng, model) -> None:
    for p in model.parameters():
        p.data = _floats(rng, p.shape, 0.5)


def probe_mlp(tt, rng) -> dict[str, np.ndarray]:
    sizes = [int(v) for v in rng.integers(1, 8, size=int(rng.integers(2, 5)))]
    activation = str(rng.choice(_ACTIVATIONS))
    dropout = float(rng.choice([0.0, 0.25]))
    model = tt.nn.MLP(sizes, activation=activation, dropout=dropout)
    kinds = np.frombuffer("|".join(type(m).__name__ for m in model).encode(), dtype=np.uint8).astype(np.int64)
    shapes = np.array([s for p in model.parameters() for s in p.shape + (0,)])
    _set_weights(rng, model)
    model.eval()
    x = tt.Tensor(_floats(rng, (int(rng.integers(1, 5)), sizes[0])))
    no_bias = tt.nn.MLP(sizes, activation=activation, bias=False)
    return {"layer_types": kinds, "param_shapes": shapes, "forward": model(x).data,
            "no_bias_count": np.array([len(no_bias.parameters())])}


def probe_layer_norm_and_residual(tt, rng) -> dict[str, np.ndarray]:
    d = int(rng.integers(2, 9))
    lead = tuple(int(s) for s in rng.integers(1, 4, size=int(rng.integers(1, 3))))
    offset = float(rng.uniform(-100.0, 100.0))
    x = tt.Tensor(_floats(rng, lead + (d,), 2.0) + np.float32(offset))
    w, b = tt.Tensor(_floats(rng, (d,))), tt.Tensor(_floats(rng, (d,)))
    layer = tt.nn.LayerNorm(d, eps=float(rng.choice([1e-5, 1e-3])))
    layer.weight.data, layer.bias.data = w.data.copy(), b.data.copy()
    y = tt.Tensor(_floats(rng, lead + (d,)))
    block = tt.nn.Linear(d, d)
    _set_weights(rng, block)
    return {"functional": tt.nn.layer_norm(x, w, b).data, "plain": tt.nn.layer_norm(y).data,
            "module": layer(x).data, "residual": tt.nn.Residual(block)(y).data}


def probe_initialisers(tt, rng) -> dict[str, np.ndarray]:
    """std(W) / the formula's std rounded to 0.1, and the fraction of |W| > 1.8 std rounded to 0.1 (0 for uniform,
    0.1 for normal draws); over >= 5184 weights the rounding boundaries are >= 5 standard errors away."""
    tt.manual_seed(int(rng.integers(0, 2**31)))
    init = tt.nn.init
    shape = (int(rng.integers(24, 64)), int(rng.integers(24, 64)), 3, 3)   # >= 5184 values
    fan_in, fan_out = shape[1] * 9, shape[0] * 9
    gain = float(rng.uniform(0.5, 3.0))
    a = float(rng.uniform(0.0, 0.5))
    mode = str(rng.choice(["fan_in", "fan_out"]))
    fan = fan_in if mode == "fan_in" else fan_out
    lrelu_gain = np.sqrt(2.0 / (1.0 + a * a))
    cases = [
        (init.xavier_uniform_, {"gain": gain}, gain * np.sqrt(2.0 / (fan_in + fan_out))),
        (init.xavier_normal_, {"gain": gain}, gain * np.sqrt(2.0 / (fan_in + fan_out))),
        (init.kaiming_uniform_, {"a": a, "mode": mode, "nonlinearity": "leaky_relu"}, lrelu_gain / np.sqrt(fan)),
        (init.kaiming_normal_, {"a": a, "mode": mode, "nonlinearity": "relu"}, np.sqrt(2.0) / np.sqrt(fan)),
    ]
    ratios, tails = [], []
    for fn, kwargs, formula_std in cases:
        w = tt.nn.Parameter(np.zeros(shape, dtype=np.float32))
        fn(w, **kwargs)
        std = float(w.data.std())
        ratios.append(std / formula_std)
        tails.append(float((np.abs(w.data) > 1.8 * std).mean()))
    return {"std_ratio": np.round(np.array(ratios), 1), "tail_fraction": np.round(np.array(tails), 1),
            "formula_std": np.array([c[2] for c in cases])}


def probe_model_measures(tt, rng) -> dict[str, np.ndarray]:
    sizes = [int(v) for v in rng.integers(1, 30, size=int(rng.integers(2, 5)))]
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [tt.nn.Linear(a, b, bias=bool(rng.random() < 0.7)), tt.nn.ReLU()]
    model = tt.nn.Sequential(*layers)
    model.register_buffer("stat", np.zeros(int(rng.integers(1, 9)), dtype=np.float32))
    model[0].weight.requires_grad = bool(rng.random() < 0.5)
    batch = (int(rng.integers(1, 9)),)
    per_layer = tt.nn.model_flops(model, batch + (sizes[0],), by_layer=True)
    return {"count": np.array([tt.nn.count_parameters(model), tt.nn.count_parameters(model, trainable_only=True)]),
            "bytes": np.array([tt.nn.model_bytes(model), tt.nn.model_bytes(model, include_buffers=False)]),
            "flops": np.array([tt.nn.model_flops(model, batch + (sizes[0],))]),
            "flops_by_layer": np.array([f for _, _, f in per_layer], dtype=np.int64)}


def probe_mse_loss(tt, rng) -> dict[str, np.ndarray]:
    shape = tuple(int(s) for s in rng.integers(1, 6, size=int(rng.integers(1, 4))))
    pred, target = tt.Tensor(_floats(rng, shape)), _floats(rng, shape)
    return {reduction: tt.nn.mse_loss(pred, target, reduction=reduction).data for reduction in ("mean", "sum", "none")}


def probe_cross_entropy(tt, rng) -> dict[str, np.ndarray]:
    n, t, c = (int(v) for v in rng.integers(1, 7, 3))
    c += 1
    logits = tt.Tensor(_floats(rng, (n, c), 3.0))
    targets = rng.integers(0, c, size=n)
    seq_logits = tt.Tensor(_floats(rng, (n, t, c), 3.0))
    seq_targets = tt.Tensor(rng.integers(0, c, size=(n, t)))
    smoothing = float(rng.uniform(0.05, 0.5))
    huge = tt.Tensor(_floats(rng, (n, c), 1.0) * np.float32(1e4))
    return {"mean": tt.nn.cross_entropy(logits, targets).data,
            "sum": tt.nn.cross_entropy(logits, targets, reduction="sum").data,
            "none": tt.nn.cross_entropy(logits, targets, reduction="none").data,
            "sequence": tt.nn.cross_entropy(seq_logits, seq_targets, reduction="none").data,
            "smoothed": tt.nn.CrossEntropyLoss(label_smoothing=smoothing)(seq_logits, seq_targets).data,
            "huge_logits": tt.nn.cross_entropy(huge, targets, reduction="none").data}


PROBES = [probe_mlp, probe_layer_norm_and_residual, probe_initialisers, probe_model_measures, probe_mse_loss,
          probe_cross_entropy]
