"""Probes of module 02 (tensor): what each probe calls and why it cannot be passed without the work.

Every probe builds tensors from arrays of random shapes and values drawn for this regrade, so a result
can only be matched by computing it: conversion and the dtype rules (`_as_array`, `_binary`), element-wise
arithmetic with broadcasting, the unary ops, clip / maximum / minimum / masked_fill, matmul (batched and
1-D), the reductions over random axes, reshape / permute / broadcast_to / indexing, and cat / where / pad.
No probe calls backward (module 09).
"""
from __future__ import annotations

import numpy as np

MODULE = "02_tensor"


def _shape(rng, ndim_low=1, ndim_high=4, size_high=5) -> tuple:
    return tuple(int(s) for s in rng.integers(1, size_high + 1, size=int(rng.integers(ndim_low, ndim_high + 1))))


def _broadcast_partner(rng, shape: tuple) -> tuple:
    """A shape that broadcasts with `shape`: some trailing dims kept, some set to 1, maybe fewer dims."""
    keep = int(rng.integers(0, len(shape) + 1))
    tail = shape[len(shape) - keep:]
    return tuple(1 if rng.random() < 0.4 else s for s in tail)


def _floats(rng, shape, low=-3.0, high=3.0) -> np.ndarray:
    return rng.uniform(low, high, shape).astype(np.float32)


def probe_conversion_and_dtypes(tt, rng) -> dict[str, np.ndarray]:
    """Tensor() of float64 arrays, nested lists, ints and tensors; item sizes and kinds follow the dtype rules."""
    shape = _shape(rng)
    f64 = rng.normal(size=shape)
    ints = rng.integers(-50, 50, size=shape)
    a = tt.Tensor(f64)
    b = tt.Tensor(f64.tolist())
    c = tt.Tensor(ints)
    d = tt.Tensor(f64, dtype=np.float64)
    e = tt.Tensor(d)
    mixed = c * a            # int (op) float32 -> float32
    int_div = c / (c * 0 + 7)  # int / int -> float32
    sizes = np.array([t.data.dtype.itemsize for t in (a, b, c, d, e, mixed, int_div)], dtype=np.int64)
    kinds = np.array([ord(t.data.dtype.kind) for t in (a, b, c, d, e, mixed, int_div)], dtype=np.int64)
    return {"a": a.data, "b": b.data, "c": c.data, "e": e.data, "mixed": mixed.data, "int_div": int_div.data,
            "itemsizes": sizes, "kinds": kinds}


def probe_binary_ops_broadcast(tt, rng) -> dict[str, np.ndarray]:
    """+ - * / between tensors of broadcasting random shapes, and with Python numbers and arrays on either side."""
    shape = _shape(rng)
    x = tt.Tensor(_floats(rng, shape))
    y = tt.Tensor(_floats(rng, _broadcast_partner(rng, shape), 0.5, 3.0))
    k = float(rng.uniform(0.5, 4.0))
    arr = _floats(rng, shape[-1:], 1.0, 2.0)
    return {"add": (x + y).data, "sub": (y - x).data, "mul": (x * y).data, "div": (x / y).data,
            "radd": (k + x).data, "rsub": (k - x).data, "rmul": (arr * x).data, "rdiv": (k / y).data,
            "arr_sub": (x - arr).data}


def probe_unary_ops(tt, rng) -> dict[str, np.ndarray]:
    """pow (integer, fractional, negative exponents), neg, exp, log, sqrt, abs on random values."""
    shape = _shape(rng)
    x = tt.Tensor(_floats(rng, shape))
    pos = tt.Tensor(_floats(rng, shape, 0.1, 5.0))
    p = float(rng.choice([2.0, 3.0, 0.5, -1.0, 1.5]))
    ints = tt.Tensor(rng.integers(0, 9, size=shape))
    return {"pow": (pos ** p).data, "pow2": (x ** 2).data, "pow3_int": (ints ** 3).data, "neg": (-x).data,
            "exp": x.exp().data, "log": pos.log().data, "sqrt": pos.sqrt().data, "abs": x.abs().data}


def probe_clip_maximum_minimum_masked_fill(tt, rng) -> dict[str, np.ndarray]:
    shape = _shape(rng)
    x = tt.Tensor(_floats(rng, shape))
    y = tt.Tensor(_floats(rng, _broadcast_partner(rng, shape)))
    low, high = sorted(float(v) for v in rng.uniform(-2, 2, 2))
    mask = rng.random(_broadcast_partner(rng, shape)) < 0.5
    value = float(rng.uniform(-10, 10))
    return {"clip": x.clip(low, high).data, "clip_low": x.clip(low=low).data, "maximum": x.maximum(y).data,
            "minimum": x.minimum(y).data, "masked_fill": x.masked_fill(mask, value).data}


def probe_matmul(tt, rng) -> dict[str, np.ndarray]:
    """(M, K) @ (K, N), batched with broadcast batch dims, and 1-D operands, on random sizes."""
    m, k, n = (int(v) for v in rng.integers(1, 9, 3))
    batch = (int(rng.integers(1, 4)),)
    a = tt.Tensor(_floats(rng, batch + (m, k)))
    b = tt.Tensor(_floats(rng, (k, n)))
    c = tt.Tensor(_floats(rng, (m, k)))
    v = tt.Tensor(_floats(rng, (k,)))
    w = tt.Tensor(_floats(rng, (m,)))
    return {"batched": (a @ b).data, "plain": (c @ b).data, "mat_vec": c.matmul(v).data, "vec_mat": (w @ c).data,
            "dot": (v @ v).data, "with_array": (c @ b.data).data}


def probe_reductions(tt, rng) -> dict[str, np.ndarray]:
    """sum, mean, var (biased and unbiased), max, min over a random axis, a tuple of axes and everything."""
    shape = (int(rng.integers(2, 5)),) + _shape(rng, 1, 3)   # >= 2 elements: the unbiased variance needs them
    x = tt.Tensor(_floats(rng, shape))
    axis = int(rng.integers(-len(shape), len(shape)))
    axes = tuple(int(a) for a in rng.choice(len(shape), size=2, replace=False))
    keep = bool(rng.random() < 0.5)
    ints = tt.Tensor(rng.integers(-20, 20, size=shape))
    return {"sum_all": x.sum().data, "sum_axis": x.sum(axis=axis, keepdims=keep).data,
            "sum_axes": x.sum(axis=axes).data,
            "mean_axis": x.mean(axis=axis).data, "mean_int": ints.mean(axis=axes, keepdims=keep).data,
            "var_axis": x.var(axis=axis).data, "var_unbiased": x.var(unbiased=True).data,
            "max_axis": x.max(axis=axis, keepdims=keep).data, "min_axes": x.min(axis=axes).data,
            "max_all": x.max().data}


def probe_reshape_permute_broadcast(tt, rng) -> dict[str, np.ndarray]:
    """reshape (with -1), permute to a random order, transpose, broadcast_to a larger random shape."""
    shape = _shape(rng, 2, 4)
    x = tt.Tensor(_floats(rng, shape))
    size = int(np.prod(shape))
    order = tuple(int(a) for a in rng.permutation(len(shape)))
    col = tt.Tensor(_floats(rng, (int(rng.integers(2, 5)), 1)))
    target = (int(rng.integers(1, 4)), col.shape[0], int(rng.integers(2, 5)))
    return {"reshape": x.reshape(size, -1).data, "reshape_back": x.reshape(-1).reshape(*shape[::-1]).data,
            "permute": x.permute(*order).data, "transpose": x.transpose().data,
            "broadcast": col.broadcast_to(target).data}


def probe_indexing(tt, rng) -> dict[str, np.ndarray]:
    """Slices with random bounds and steps, integer arrays (with repeats), integer tensors and boolean masks."""
    shape = (int(rng.integers(3, 8)), int(rng.integers(3, 8)))
    x = tt.Tensor(_floats(rng, shape))
    start = int(rng.integers(0, shape[0] - 1))
    step = int(rng.integers(1, 3))
    rows = rng.integers(0, shape[0], size=int(rng.integers(1, 6)))
    cols = rng.integers(0, shape[1], size=rows.size)
    mask = x.data > float(rng.uniform(-1, 1))
    return {"slice": x[start::step, 1:].data, "row": x[int(rng.integers(0, shape[0]))].data,
            "fancy": x[rows].data, "pairs": x[tt.Tensor(rows), tt.Tensor(cols)].data, "mask": x[mask].data,
            "negative": x[-1, ::-1].data}


def probe_cat_where_pad(tt, rng) -> dict[str, np.ndarray]:
    shape = _shape(rng, 2, 3)
    axis = int(rng.integers(0, len(shape)))
    parts = []
    for _ in range(int(rng.integers(2, 4))):
        s = list(shape)
        s[axis] = int(rng.integers(1, 4))
        parts.append(tt.Tensor(_floats(rng, tuple(s))))
    x = tt.Tensor(_floats(rng, shape))
    y = tt.Tensor(_floats(rng, _broadcast_partner(rng, shape)))
    cond = rng.random(shape) < 0.5
    widths = tuple((int(rng.integers(0, 3)), int(rng.integers(0, 3))) for _ in shape)
    value = float(rng.uniform(-5, 5))
    return {"cat": tt.cat(parts, axis=axis).data, "stack": tt.stack([x, x * 2.0], axis=axis).data,
            "where": tt.where(cond, x, y).data, "where_number": tt.where(cond, x, value).data,
            "pad": tt.pad(x, widths, value).data}


PROBES = [probe_conversion_and_dtypes, probe_binary_ops_broadcast, probe_unary_ops,
          probe_clip_maximum_minimum_masked_fill, probe_matmul, probe_reductions, probe_reshape_permute_broadcast,
          probe_indexing, probe_cat_where_pad]
