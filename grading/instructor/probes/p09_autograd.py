"""Probes of module 09 (autograd): what each probe calls and why it cannot be passed without the work.

Every probe builds a random expression (random shapes, values and, where natural, structure) from leaves that
require gradients, calls `.backward()` and returns the leaves' gradients (and a value or two), grouped like
the module's tests: the element-wise rules with broadcasting (and `unbroadcast` itself), the unary and
activation rules, reductions over random axes, shape ops and indexing with repeated indices, matmul / linear /
layer norm / losses, attention, the spatial rules, and the graph mechanics (accumulation over reused nodes and
repeated backward calls, an explicit output gradient, no_grad, detach, a chain thousands of ops deep, and the
number of nodes `topological_order` finds, each after its parents).
"""
from __future__ import annotations

import importlib

import numpy as np

MODULE = "09_autograd"


def _floats(rng, shape, low=-2.0, high=2.0) -> np.ndarray:
    return rng.uniform(low, high, shape).astype(np.float32)


def _shape(rng, ndim_low=1, ndim_high=3, high=4) -> tuple:
    return tuple(int(s) for s in rng.integers(1, high + 1, size=int(rng.integers(ndim_low, ndim_high + 1))))


def _partner(rng, shape) -> tuple:
    keep = int(rng.integers(0, len(shape) + 1))
    return tuple(1 if rng.random() < 0.4 else s for s in shape[len(shape) - keep:])


def _leaf(tt, array):
    return tt.Tensor(array, requires_grad=True)


def _grads(**leaves) -> dict[str, np.ndarray]:
    return {f"grad_{name}": leaf.grad.data for name, leaf in leaves.items()}


def _set_weights(rng, model, scale=0.5) -> None:
    for p in model.parameters():
        p.data = rng.normal(0.0, scale, p.shape).astype(np.float32)


def probe_elementwise_rules_and_unbroadcast(tt, rng) -> dict[str, np.ndarray]:
    shape = _shape(rng)
    a = _leaf(tt, _floats(rng, shape))
    b = _leaf(tt, _floats(rng, _partner(rng, shape), 0.5, 2.0))
    c = _leaf(tt, _floats(rng, _partner(rng, shape)))
    cond = rng.random(shape) < 0.5
    lo, hi = sorted(float(v) for v in rng.uniform(-1.5, 1.5, 2))
    y = (a * b + c / b - a) ** 2 + tt.where(cond, a, c) * 0.5 - a.maximum(c) + a.minimum(b) * 3.0
    y = y + a.clip(lo, hi) * b - a.masked_fill(~cond, 1.5) * c + (2.0 - a) / (b + 3.0)
    y.sum().backward()
    autograd = importlib.import_module(f"{tt.__name__}.autograd")
    big = rng.normal(size=(int(rng.integers(1, 4)),) + tuple(s if rng.random() < 0.5 else 1 for s in shape))
    small = tuple(1 if rng.random() < 0.5 else s for s in shape)
    grown = np.broadcast_to(rng.normal(size=small), big.shape[:1] + shape) + big
    return {**_grads(a=a, b=b, c=c), "value": y.data,
            "unbroadcast": np.asarray(autograd.unbroadcast(np.ascontiguousarray(grown), small))}


def probe_unary_and_activation_rules(tt, rng) -> dict[str, np.ndarray]:
    shape = _shape(rng, 2, 3)
    x = _leaf(tt, _floats(rng, shape))
    p = _leaf(tt, _floats(rng, shape, 0.2, 3.0))
    axis = int(rng.integers(-len(shape), len(shape)))
    slope = float(rng.uniform(0.01, 0.3))
    y = (-x).exp() * 0.3 + p.log() + p.sqrt() * x + x.abs() + p ** float(rng.choice([-1.0, 0.5, 3.0]))
    y = y + tt.relu(x) * 2.0 + tt.leaky_relu(x, slope) + tt.sigmoid(x) * p + tt.tanh(x) + tt.gelu(x) * 0.7
    w = _floats(rng, shape)
    z = (y * w).sum() + (tt.softmax(x, axis) * w).sum() + (tt.log_softmax(p, axis) * w).sum()
    z.backward()
    return {**_grads(x=x, p=p), "value": z.data}


def probe_reduction_rules(tt, rng) -> dict[str, np.ndarray]:
    shape = (int(rng.integers(2, 5)),) + _shape(rng, 1, 3)   # >= 2 elements: the unbiased std needs them
    x = _leaf(tt, _floats(rng, shape))
    ties = _leaf(tt, rng.integers(-2, 3, size=shape).astype(np.float32))   # ties share max/min gradients
    axis = int(rng.integers(-len(shape), len(shape)))
    axes = tuple(int(a) for a in rng.choice(len(shape), size=2, replace=False))
    keep = bool(rng.random() < 0.5)
    w = _floats(rng, x.sum(axis=axis, keepdims=keep).shape)
    y = (x.sum(axis=axis, keepdims=keep) * w).sum() + (x.mean(axis=axes) ** 2).sum() + x.var(axis=axis).sum()
    y = y + x.max(axis=axis).sum() * 2.0 + x.min() + x.std(unbiased=True)
    y = y + ties.max(axis=axis).sum() + ties.min() * 3.0 + ties.max()
    y.backward()
    return {**_grads(x=x, ties=ties), "value": y.data}


def probe_shape_and_indexing_rules(tt, rng) -> dict[str, np.ndarray]:
    shape = _shape(rng, 2, 3, 5)
    x = _leaf(tt, _floats(rng, shape))
    other = _leaf(tt, _floats(rng, shape))
    order = tuple(int(a) for a in rng.permutation(len(shape)))
    rows = rng.integers(0, shape[0], size=int(rng.integers(2, 8)))     # repeats add up
    w1 = _floats(rng, (int(np.prod(shape)),))
    y = (x.reshape(-1) * w1).sum() + (x.permute(*order) ** 2).sum() + (x[rows] * 1.5).sum()
    y = y + (x[x.data > 0] ** 3).sum() + x[-1].sum() * 4.0 + (x.T * x.T).sum() * 0.1
    y = y + (x.unsqueeze(0).broadcast_to((3,) + shape) * _floats(rng, (3,) + shape)).sum()
    y = y + (tt.pad(x, 1, 0.5) * _floats(rng, tuple(s + 2 for s in shape))).sum()
    axis = int(rng.integers(0, len(shape)))
    y = y + (tt.cat([x, other * 2.0], axis=axis) * _floats(rng, tuple(s * (2 if i == axis else 1)
                                                                       for i, s in enumerate(shape)))).sum()
    y = y + (tt.stack([x, other], axis=0) ** 2).sum() * 0.5
    y.backward()
    return {**_grads(x=x, other=other), "value": y.data}


def probe_matmul_linear_norm_and_losses(tt, rng) -> dict[str, np.ndarray]:
    n, d_in, d_hidden, classes = (int(v) for v in rng.integers(2, 7, 4))
    a = _leaf(tt, _floats(rng, (int(rng.integers(1, 3)), n, d_in)))
    b = _leaf(tt, _floats(rng, (d_in, d_hidden)))
    model = tt.nn.Sequential(tt.nn.Linear(d_hidden, d_hidden), tt.nn.LayerNorm(d_hidden), tt.nn.GELU(),
                             tt.nn.Dropout(0.0), tt.nn.Linear(d_hidden, classes))
    _set_weights(rng, model)
    h = model((a @ b).reshape(-1, d_hidden))
    targets = rng.integers(0, classes, size=h.shape[0])
    smoothing = float(rng.uniform(0.0, 0.3))
    regression = _floats(rng, h.shape)
    loss = tt.nn.cross_entropy(h, targets, label_smoothing=smoothing) + tt.nn.mse_loss(h, regression) * 0.5
    seq = _leaf(tt, _floats(rng, (2, n, classes)))
    loss = loss + tt.nn.cross_entropy(seq, rng.integers(0, classes, size=(2, n)), reduction="sum")
    loss.backward()
    out = {**_grads(a=a, b=b, seq=seq), "loss": loss.data}
    for name, p in model.named_parameters():
        out[f"grad_{name.replace('.', '_')}"] = p.grad.data
    return out


def probe_attention_rules(tt, rng) -> dict[str, np.ndarray]:
    heads = int(rng.integers(1, 3))
    dim, n, t, vocab = heads * int(rng.integers(1, 4)), int(rng.integers(1, 3)), int(rng.integers(2, 6)), 7
    emb = tt.nn.Embedding(vocab, dim)
    mha = tt.nn.MultiHeadAttention(dim, heads, causal=bool(rng.random() < 0.5))
    _set_weights(rng, emb, 1.0)
    _set_weights(rng, mha)
    ids = rng.integers(0, vocab, size=(n, t))                         # repeated ids accumulate
    x = tt.nn.PositionalEncoding(dim, 16)(emb(ids))
    padding = rng.random((n, 1, t)) < 0.8
    padding[:, :, 0] = True
    y = mha(x, mask=padding)
    q = _leaf(tt, _floats(rng, (n, t, dim)))
    z = tt.nn.scaled_dot_product_attention(q, q * 0.5, q, causal=True)
    ((y * _floats(rng, y.shape)).sum() + (z ** 2).sum()).backward()
    out = {"grad_q": q.grad.data, "grad_embedding": emb.weight.grad.data}
    for name, p in mha.named_parameters():
        out[f"grad_{name.replace('.', '_')}"] = p.grad.data
    return out


def probe_spatial_rules(tt, rng) -> dict[str, np.ndarray]:
    n, c, h, w = int(rng.integers(1, 3)), int(rng.integers(1, 3)), int(rng.integers(5, 9)), int(rng.integers(5, 9))
    x = _leaf(tt, _floats(rng, (n, c, h, w)))
    c_out, k = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    weight = _leaf(tt, _floats(rng, (c_out, c, k, k)))
    bias = _leaf(tt, _floats(rng, (c_out,)))
    stride, padding = int(rng.integers(1, 3)), int(rng.integers(0, 2))
    y = tt.nn.conv2d(x, weight, bias, stride=stride, padding=padding)
    bn = tt.nn.BatchNorm2d(c_out)
    _set_weights(rng, bn)
    y = tt.relu(bn(y)) + bn.eval()(y) * 0.5          # training statistics, then the running ones
    pooled = tt.nn.max_pool2d(y, 2, 1) if y.shape[2] >= 2 and y.shape[3] >= 2 else y
    avg = tt.nn.avg_pool2d(x, 2, 2, padding=int(rng.integers(0, 2)))
    ties = _leaf(tt, rng.integers(0, 3, size=(1, 1, 4, 4)).astype(np.float32))   # first maximum gets it
    loss = (pooled * _floats(rng, pooled.shape)).sum() + (avg ** 2).sum() + tt.nn.max_pool2d(ties, 2).sum()
    loss.backward()
    return {**_grads(x=x, weight=weight, bias=bias, ties=ties), "grad_bn_weight": bn.weight.grad.data,
            "grad_bn_bias": bn.bias.grad.data, "loss": loss.data}


def probe_graph_mechanics(tt, rng) -> dict[str, np.ndarray]:
    shape = _shape(rng)
    x = _leaf(tt, _floats(rng, shape))
    y = _leaf(tt, _floats(rng, shape))
    shared = x * y + 1.0                      # reused node
    out = shared * shared + shared * x
    seed_grad = _floats(rng, shape)
    out.backward(seed_grad)                   # explicit gradient of a non-scalar output
    first = x.grad.data.copy()
    (x * 3.0 + y.detach() * x).sum().backward()   # accumulates; nothing reaches y through detach
    with tt.no_grad():
        ignored = x * 100.0
    depth = int(rng.integers(2000, 4000))
    z = _leaf(tt, _floats(rng, (2,), 0.5, 1.0))
    chain = z
    for _ in range(depth):
        chain = chain * 0.999 + 0.001
    chain.sum().backward()
    autograd = importlib.import_module(f"{tt.__name__}.autograd")
    width = int(rng.integers(2, 6))
    leaves = [_leaf(tt, _floats(rng, (2,))) for _ in range(width)]
    node = leaves[0]
    made = [node]
    for i in range(1, width * 3):
        node = node * leaves[i % width] + made[int(rng.integers(0, len(made)))]
        made.append(node)
    order = autograd.topological_order(node)
    position = {id(t): i for i, t in enumerate(order)}
    after_parents = all(position[id(p)] < position[id(t)] for t in order if t._ctx is not None
                        for p in t._ctx.parents if id(p) in position)
    return {"grad_x_first": first, "grad_x_accumulated": x.grad.data, "grad_y": y.grad.data,
            "no_grad_recorded": np.array([int(ignored.requires_grad), int(ignored._ctx is not None)]),
            "grad_chain": z.grad.data, "chain": chain.data,
            "topological": np.array([len(order), int(after_parents), len({id(t) for t in order})])}


PROBES = [probe_elementwise_rules_and_unbroadcast, probe_unary_and_activation_rules, probe_reduction_rules,
          probe_shape_and_indexing_rules, probe_matmul_linear_norm_and_losses, probe_attention_rules,
          probe_spatial_rules, probe_graph_mechanics]
