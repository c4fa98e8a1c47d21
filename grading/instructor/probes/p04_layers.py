"""Probes of module 04 (layers): what each probe calls and why it cannot be passed without the work.

- a random tree of modules (custom modules with parameters of random shapes, nested Sequentials, a shared
  parameter, a module used twice): the dotted names and values of `named_parameters()`, the names of
  `named_modules()`, the training flags after `train()` / `eval()` on a random node, which grads
  `zero_grad()` cleared;
- `linear` and `Linear` on random inputs with any leading dims, weights the probe draws;
- `Linear.__init__`: shapes and the uniform +-1/sqrt(in) scale, as rounded ratios (two honest
  implementations draw different numbers, so the values themselves are not compared), new numbers for
  another layer and the same ones after `manual_seed` with the same seed;
- `Sequential` and `Flatten` forward on random images;
- `dropout`: the kept values rescaled back must give the input (whatever the mask) and the dropped fraction,
  rounded, is p; a new mask each call, the same after `manual_seed` with the same seed;
- `state_dict` / `load_state_dict`: the arrays of a model with random weights, and a second model's outputs
  after loading them.
Strings (names) are returned as arrays of UTF-8 bytes.
"""
from __future__ import annotations

import numpy as np

MODULE = "04_layers"


def _text(names) -> np.ndarray:
    return np.frombuffer("|".join(names).encode("utf-8"), dtype=np.uint8).astype(np.int64)


def _floats(rng, shape, scale=1.0) -> np.ndarray:
    return rng.normal(0.0, scale, shape).astype(np.float32)


def _set_weights(rng, model) -> None:
    """Overwrite every parameter with values drawn from rng (init draws differ between implementations)."""
    for p in model.parameters():
        p.data = _floats(rng, p.shape, 0.5)


def _random_tree(tt, rng):
    """A model of random depth and width whose parameters are drawn from rng; returns (model, shared param)."""
    Module, Parameter, Sequential = tt.nn.Module, tt.nn.Parameter, tt.nn.Sequential

    class Leaf(Module):
        def __init__(self, k):
            super().__init__()
            for i in range(k):
                setattr(self, f"p{int(rng.integers(0, 100))}_{i}", Parameter(_floats(rng, (int(rng.integers(1, 4)),))))

    class Node(Module):
        def __init__(self, depth):
            super().__init__()
            self.w = Parameter(_floats(rng, (2, int(rng.integers(1, 4)))))
            for i in range(int(rng.integers(1, 3))):
                child = Node(depth - 1) if depth > 0 and rng.random() < 0.6 else Leaf(int(rng.integers(1, 3)))
                setattr(self, f"c{i}", child)

    root = Sequential(Node(int(rng.integers(1, 3))), Leaf(2), Sequential(Leaf(1), Node(1)))
    shared = root[1]
    root.append(shared)                      # a module reachable twice
    first = root.parameters()[0]
    root[2][0].tied = first                  # a parameter reachable twice
    return root, first


def probe_module_tree(tt, rng) -> dict[str, np.ndarray]:
    model, _ = _random_tree(tt, rng)
    named = model.named_parameters()
    modules = model.named_modules()
    values = np.concatenate([p.data.ravel() for _, p in named])
    target = modules[int(rng.integers(1, len(modules)))][1]
    model.train()
    target.eval()
    flags_after_eval = [int(m.training) for _, m in modules]
    model.eval()
    target.train()
    flags_after_train = [int(m.training) for _, m in modules]
    params = model.parameters()
    for p in params:
        p.grad = tt.Tensor(np.ones(p.shape, dtype=np.float32))
    model[2].zero_grad()
    cleared = [int(p.grad is None) for p in params]
    return {"param_names": _text(n for n, _ in named), "param_values": values,
            "module_names": _text(n for n, _ in modules), "flags_after_eval": np.array(flags_after_eval),
            "flags_after_train": np.array(flags_after_train), "grads_cleared": np.array(cleared)}


def probe_linear(tt, rng) -> dict[str, np.ndarray]:
    n_in, n_out = (int(v) for v in rng.integers(1, 9, 2))
    lead = tuple(int(s) for s in rng.integers(1, 4, size=int(rng.integers(1, 4))))
    x = tt.Tensor(_floats(rng, lead + (n_in,)))
    w = tt.Tensor(_floats(rng, (n_out, n_in)))
    b = tt.Tensor(_floats(rng, (n_out,)))
    layer = tt.nn.Linear(n_in, n_out)
    layer.weight.data, layer.bias.data = w.data.copy(), b.data.copy()
    no_bias = tt.nn.Linear(n_in, n_out, bias=False)
    no_bias.weight.data = w.data.copy()
    from_layers = __import__(f"{tt.__name__}.layers", fromlist=["linear"])
    return {"functional": from_layers.linear(x, w, b).data, "functional_no_bias": from_layers.linear(x, w).data,
            "module": layer(x).data, "module_no_bias": no_bias(x).data}


def probe_linear_init(tt, rng) -> dict[str, np.ndarray]:
    """Shapes, and max|W| * sqrt(in) and std(W) * sqrt(3 in) rounded to 0.1: both 1.0 for U(-1/sqrt(in), 1/sqrt(in))
    (over >= 4096 weights the rounding boundaries are many standard errors away)."""
    seed = int(rng.integers(0, 2**31))
    tt.manual_seed(seed)
    n_in, n_out = int(rng.integers(16, 128)), int(rng.integers(256, 400))
    layer = tt.nn.Linear(n_in, n_out)
    w, b = layer.weight.data, layer.bias.data
    root = np.sqrt(n_in)
    stats = [np.abs(w).max() * root, w.std() * np.sqrt(3) * root, np.abs(b).max() * root]
    second = tt.nn.Linear(n_in, n_out).weight.data           # another draw: different numbers
    tt.manual_seed(seed)
    again = tt.nn.Linear(n_in, n_out).weight.data            # the same seed: the same numbers
    return {"shapes": np.array(w.shape + b.shape), "scale": np.round(np.array(stats, dtype=np.float64), 1),
            "dtype_size": np.array([w.dtype.itemsize, b.dtype.itemsize, int(layer.weight.requires_grad)]),
            "random_and_seeded": np.array([int(not np.array_equal(second, w)), int(np.array_equal(again, w))])}


def probe_sequential_and_flatten(tt, rng) -> dict[str, np.ndarray]:
    n, c, h, w = (int(v) for v in rng.integers(1, 5, 4))
    hidden, out = int(rng.integers(2, 8)), int(rng.integers(1, 5))
    model = tt.nn.Sequential(tt.nn.Flatten(), tt.nn.Linear(c * h * w, hidden), tt.nn.ReLU(),
                             tt.nn.Linear(hidden, out), tt.nn.Tanh())
    _set_weights(rng, model)
    x = tt.Tensor(_floats(rng, (n, c, h, w)))
    start = int(rng.integers(0, 3))
    return {"sequential": model(x).data, "flatten": tt.nn.Flatten(start, -1)(x).data,
            "flatten_middle": tt.nn.Flatten(1, 2)(x).data}


def probe_dropout(tt, rng) -> dict[str, np.ndarray]:
    """Kept values * (1 - p) restore the input and the dropped fraction is p: true for any honest mask."""
    seed = int(rng.integers(0, 2**31))
    tt.manual_seed(seed)
    p = float(rng.choice([0.2, 0.3, 0.5, 0.7]))
    x_np = rng.uniform(0.5, 2.0, (int(rng.integers(80, 120)), 200)).astype(np.float32)
    layer = tt.nn.Dropout(p)
    out = layer(tt.Tensor(x_np)).data
    kept = out != 0
    restored = np.where(kept, out * np.float32(1 - p), x_np)
    other_mask = layer(tt.Tensor(x_np)).data != 0           # a new mask every call
    tt.manual_seed(seed)
    same_mask = layer(tt.Tensor(x_np)).data != 0            # the same seed: the same mask
    layer.eval()
    return {"restored": restored, "dropped_fraction": np.round(np.array([1.0 - kept.mean()]), 1),
            "eval_output": layer(tt.Tensor(x_np)).data,
            "random_and_seeded": np.array([int(not np.array_equal(other_mask, kept)),
                                           int(np.array_equal(same_mask, kept))])}


def probe_state_dict_round_trip(tt, rng) -> dict[str, np.ndarray]:
    sizes = [int(v) for v in rng.integers(1, 7, size=int(rng.integers(2, 4)))]

    def build():
        layers = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [tt.nn.Linear(a, b), tt.nn.Sigmoid()]
        return tt.nn.Sequential(*layers)

    source, target = build(), build()
    _set_weights(rng, source)
    state = source.state_dict()
    out = {f"state_{name.replace('.', '_')}": value for name, value in state.items()}
    out["state_names"] = _text(state)
    target.load_state_dict(state)
    for p in source.parameters():
        p.data = p.data * 0       # a state dict is a copy: changing the model must not change it
    out["kept_after_change"] = np.concatenate([v.ravel() for v in state.values()])
    x = tt.Tensor(_floats(rng, (int(rng.integers(1, 5)), sizes[0])))
    out["loaded_output"] = target(x).data
    return out


PROBES = [probe_module_tree, probe_linear, probe_linear_init, probe_sequential_and_flatten, probe_dropout,
          probe_state_dict_round_trip]
