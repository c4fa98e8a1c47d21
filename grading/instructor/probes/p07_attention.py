"""Probes of module 07 (attention): what each probe calls and why it cannot be passed without the work.

embedding (functional and module) for ids of random shape; scaled dot-product attention with broadcast batch
dims, a padding mask, causal masking (also with more keys than queries), a fully masked row, and its weights;
multi-head attention with weights drawn by the probe, random heads, causal and padding masks; generation with a
KVCache, one new position at a time; the sinusoidal table and PositionalEncoding with an offset.
Forward only (module 09 probes the gradients).
"""
from __future__ import annotations

import numpy as np

MODULE = "07_attention"


def _floats(rng, shape, scale=1.0) -> np.ndarray:
    return rng.normal(0.0, scale, shape).astype(np.float32)


def _mha(tt, rng, dim, heads, causal):
    mha = tt.nn.MultiHeadAttention(dim, heads, causal=causal)
    for p in mha.parameters():
        p.data = _floats(rng, p.shape, 0.4)
    return mha


def probe_embedding(tt, rng) -> dict[str, np.ndarray]:
    num, dim = int(rng.integers(2, 20)), int(rng.integers(1, 8))
    weight = tt.Tensor(_floats(rng, (num, dim)))
    ids = rng.integers(0, num, size=tuple(int(s) for s in rng.integers(1, 5, size=int(rng.integers(1, 3)))))
    layer = tt.nn.Embedding(num, dim)
    layer.weight.data = weight.data.copy()
    attention = __import__(f"{tt.__name__}.attention", fromlist=["embedding"])
    return {"functional": attention.embedding(ids, weight).data, "module": layer(tt.Tensor(ids)).data}


def probe_scaled_dot_product_attention(tt, rng) -> dict[str, np.ndarray]:
    n, h = int(rng.integers(1, 4)), int(rng.integers(1, 3))
    t, extra, d, dv = (int(v) for v in rng.integers(1, 6, 4))
    s = t + extra
    q = tt.Tensor(_floats(rng, (n, h, t, d)))
    k = tt.Tensor(_floats(rng, (1, h, s, d)))
    v = tt.Tensor(_floats(rng, (n, 1, s, dv)))
    padding = rng.random((n, 1, 1, s)) < 0.7
    padding[0, 0, 0, :] = False                  # one sequence fully masked: uniform weights, no NaN
    sdpa = tt.nn.scaled_dot_product_attention
    out, weights = sdpa(q, k, v, mask=padding, return_weights=True)
    square = tt.Tensor(_floats(rng, (n, t, d)))
    return {"masked": out.data, "weights": weights.data, "plain": sdpa(q, k, v).data,
            "causal_more_keys": sdpa(q, k, v, causal=True).data,
            "causal_self": sdpa(square, square, square, causal=True).data}


def probe_multi_head_attention(tt, rng) -> dict[str, np.ndarray]:
    heads = int(rng.integers(1, 4))
    dim = heads * int(rng.integers(1, 5))
    n, t = int(rng.integers(1, 4)), int(rng.integers(1, 7))
    mha = _mha(tt, rng, dim, heads, causal=False)
    x = tt.Tensor(_floats(rng, (n, t, dim)))
    padding = rng.random((n, 1, t)) < 0.8
    padding[:, :, 0] = True
    causal = _mha(tt, rng, dim, heads, causal=True)
    return {"plain": mha(x).data, "padding": mha(x, mask=padding).data, "causal": causal(x).data,
            "shared_mask": mha(x, mask=np.tri(t, dtype=bool)).data}


def probe_kv_cache_generation(tt, rng) -> dict[str, np.ndarray]:
    """A prompt, then one position at a time through the cache; each step's output and the cached keys."""
    heads = int(rng.integers(1, 3))
    dim = heads * int(rng.integers(2, 5))
    n, prompt, steps = int(rng.integers(1, 3)), int(rng.integers(1, 5)), int(rng.integers(1, 5))
    mha = _mha(tt, rng, dim, heads, causal=True)
    x = _floats(rng, (n, prompt + steps, dim))
    cache = tt.nn.KVCache()
    outs = [mha(tt.Tensor(x[:, :prompt]), kv_cache=cache).data]
    for i in range(prompt, prompt + steps):
        outs.append(mha(tt.Tensor(x[:, i:i + 1]), kv_cache=cache).data)
    return {"cached": np.concatenate(outs, axis=1), "keys": cache.keys.data, "values": cache.values.data,
            "length": np.array([cache.length])}


def probe_positional_encoding(tt, rng) -> dict[str, np.ndarray]:
    max_len, dim = int(rng.integers(5, 60)), int(rng.integers(1, 17))
    attention = __import__(f"{tt.__name__}.attention", fromlist=["sinusoidal_table"])
    t = int(rng.integers(1, max_len + 1))
    offset = int(rng.integers(0, max_len - t + 1))
    x = tt.Tensor(_floats(rng, (int(rng.integers(1, 3)), t, dim)))
    return {"table": np.asarray(attention.sinusoidal_table(max_len, dim)),
            "added": tt.nn.PositionalEncoding(dim, max_len)(x, offset=offset).data}


PROBES = [probe_embedding, probe_scaled_dot_product_attention, probe_multi_head_attention, probe_kv_cache_generation,
          probe_positional_encoding]
