"""Module 07 - Attention: Embedding, scaled dot-product attention, masks, MultiHeadAttention with a
KV cache, positional encoding.

Forward passes only (no .backward(): autograd is module 09). The NumPy references below are written
the slow, obvious way (a loop over heads) so they are easy to trust.
"""
import numpy as np
import pytest
from hypothesis import Phase, given, settings, strategies as st

import tinytorch as tt
from tinytorch.attention import (Embedding, KVCache, MultiHeadAttention, PositionalEncoding, causal_mask,
                                 embedding, scaled_dot_product_attention, sinusoidal_table)
from tinytorch.networks import model_flops
from tinytorch.tensor import Tensor, TensorError
from tinytorch.testing import assert_close

# No shrinking: examples are derandomized (reproducible) and shrinking the failures of an unfinished
# function would cost tens of seconds per test before the first useful message.
NO_SHRINK = (Phase.explicit, Phase.reuse, Phase.generate)


@pytest.fixture(autouse=True)
def _seed():
    tt.manual_seed(0)


def rand(*shape, seed=1, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def T64(a):
    return Tensor(np.asarray(a, dtype=np.float64), dtype=np.float64)


def np_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def np_attention(q, k, v, keep=None):
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    if keep is not None:
        scores = np.where(keep, scores, -np.inf)
    return np_softmax(scores) @ v


# ---- Embedding ---------------------------------------------------------------------------------------
def test_embedding_looks_up_rows_for_ids_of_any_shape():
    emb = Embedding(10, 4)
    assert emb.weight.shape == (10, 4) and emb.weight.dtype == np.float32 and emb.weight.requires_grad
    ids = np.array([[1, 2, 2], [9, 0, 1]])
    out = emb(ids)
    assert out.shape == (2, 3, 4), f"ids (2, 3) -> (2, 3, embedding_dim), got {out.shape}"
    assert_close(out, emb.weight.data[ids], atol=0, rtol=0, what="Embedding(ids) = weight[ids]")
    assert emb(Tensor([3])).shape == (1, 4) and emb([5, 6]).shape == (2, 4), "Tensors and lists of ids work"
    assert abs(Embedding(1000, 64).weight.data.std() - 1) < 0.05, "initialised N(0, 1) like PyTorch"
    assert repr(emb) == "Embedding(10, 4)"


@pytest.mark.parametrize("ids, pattern", [
    (np.array([0.0, 1.0]), "must be integers.*float64"),
    (np.array([0, 10]), r"\[0, 10\).*0 to 10"),
    (np.array([-1, 3]), r"\[0, 10\).*-1 to 3"),
])
@pytest.mark.given   # passes with no work in this module: checks code the course gives
def test_embedding_errors(ids, pattern):
    with pytest.raises(TensorError, match=pattern):
        Embedding(10, 4)(ids)


def test_embedding_functional_keeps_float64():
    w = T64(rand(5, 3))
    assert embedding(np.array([4, 0]), w).dtype == np.float64


# ---- masks and scaled dot-product attention ----------------------------------------------------------
@pytest.mark.given   # passes with no work in this module: checks code the course gives
def test_causal_mask():
    m = causal_mask(4)
    assert m.dtype == np.bool_, "masks are boolean"
    np.testing.assert_array_equal(m.data, np.tril(np.ones((4, 4), dtype=bool)),
                                  err_msg="True on and below the diagonal: position i sees keys 0..i")
    offset = causal_mask(2, 5).data   # 2 new queries at positions 3 and 4 of 5
    np.testing.assert_array_equal(offset, [[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]],
                                  err_msg="with S > T the queries are the LAST T positions")


def test_sdpa_matches_numpy_with_batch_dims():
    q, k, v = rand(2, 3, 4, 8, seed=1), rand(2, 3, 6, 8, seed=2), rand(2, 3, 6, 5, seed=3)
    out = scaled_dot_product_attention(Tensor(q), Tensor(k), Tensor(v))
    assert out.shape == (2, 3, 4, 5) and out.dtype == np.float32
    assert_close(out, np_attention(q, k, v), atol=1e-5, what="softmax(q k^T / sqrt(d)) v")
    out, weights = scaled_dot_product_attention(Tensor(q), Tensor(k), Tensor(v), return_weights=True)
    assert weights.shape == (2, 3, 4, 6)
    assert_close(weights.data.sum(-1), np.ones((2, 3, 4)), atol=1e-5, what="attention weights sum to 1 per query")


def test_sdpa_causal_hides_the_future():
    q, k, v = rand(2, 5, 4, seed=1), rand(2, 5, 4, seed=2), rand(2, 5, 4, seed=3)
    out = scaled_dot_product_attention(Tensor(q), Tensor(k), Tensor(v), causal=True).data
    assert_close(out, np_attention(q, k, v, np.tril(np.ones((5, 5), dtype=bool))), atol=1e-5, what="causal attention")
    v2, k2 = v.copy(), k.copy()
    v2[:, 3:] += 100.0
    k2[:, 3:] -= 100.0
    out2 = scaled_dot_product_attention(Tensor(q), Tensor(k2), Tensor(v2), causal=True).data
    assert_close(out2[:, :3], out[:, :3], atol=1e-5, what="positions 0..2 must not change when keys/values 3.. change")
    assert_close(out[:, 0], v[:, 0], atol=1e-6, what="position 0 can only attend to itself")


def test_sdpa_padding_mask():
    N, T, S, d = 2, 3, 5, 4
    q, k, v = rand(N, T, d, seed=1), rand(N, S, d, seed=2), rand(N, S, d, seed=3)
    lengths = np.array([5, 2])
    keep = (np.arange(S)[None, :] < lengths[:, None])[:, None, :]      # (N, 1, S): True = real token
    out, w = scaled_dot_product_attention(Tensor(q), Tensor(k), Tensor(v), mask=keep, return_weights=True)
    assert_close(out, np_attention(q, k, v, keep), atol=1e-5, what="attention with a padding mask")
    assert (w.data[1, :, 2:] == 0).all(), "padded keys must get attention weight exactly 0"
    v2 = v.copy()
    v2[1, 2:] = 1e6
    out2 = scaled_dot_product_attention(Tensor(q), Tensor(k), Tensor(v2), mask=Tensor(keep))
    assert_close(out2, out, atol=1e-5, what="values at padded positions must not leak into the output")


@settings(max_examples=25, deadline=None, derandomize=True, database=None, phases=NO_SHRINK)
@given(batch=st.lists(st.integers(1, 3), max_size=2), T=st.integers(1, 5), S=st.integers(1, 5),
       d=st.integers(1, 4), dv=st.integers(1, 4), causal=st.booleans())
def test_sdpa_shapes_property(batch, T, S, d, dv, causal):
    batch = tuple(batch)
    q, k, v = rand(*batch, T, d, seed=1), rand(*batch, S, d, seed=2), rand(*batch, S, dv, seed=3)
    keep = np.tri(T, S, k=S - T, dtype=bool) if causal and S >= T else None
    out, w = scaled_dot_product_attention(Tensor(q), Tensor(k), Tensor(v), causal=keep is not None,
                                          return_weights=True)
    assert out.shape == batch + (T, dv), f"(..., T, d), (..., S, d), (..., S, dv) -> (..., T, dv), got {out.shape}"
    assert_close(w.data.sum(-1), np.ones(batch + (T,)), atol=1e-5, what="attention weights sum to 1")
    assert_close(out, np_attention(q, k, v, keep), atol=1e-5, what=f"attention for batch {batch}, T={T}, S={S}")


def test_sdpa_fully_masked_row_gives_no_nan():
    q, k, v = rand(1, 2, 4), rand(1, 3, 4), rand(1, 3, 4)
    keep = np.array([[True, True, False], [False, False, False]])
    out = scaled_dot_product_attention(Tensor(q), Tensor(k), Tensor(v), mask=keep).data
    assert np.isfinite(out).all(), "a query with every key masked must not produce NaN"


def test_sdpa_keeps_float64():
    q = T64(rand(3, 4))
    assert scaled_dot_product_attention(q, q, q, causal=True).dtype == np.float64


@pytest.mark.parametrize("shapes, kwargs, pattern", [
    (((2, 3, 4), (2, 5, 6), (2, 5, 6)), {}, "same feature size"),
    (((2, 3, 4), (2, 5, 4), (2, 4, 4)), {}, "same number of positions"),
    (((2, 3, 4), (2, 5, 4), (2, 5, 4)), {"mask": np.ones((3, 5), dtype=np.int64)}, "must be boolean.*True = keep"),
    (((2, 3, 4), (2, 5, 4), (2, 5, 4)), {"mask": np.ones((3, 4), dtype=bool)}, r"\(3, 4\) does not broadcast"),
    (((2, 6, 4), (2, 5, 4), (2, 5, 4)), {"causal": True}, "at least as many keys"),
])
@pytest.mark.given   # passes with no work in this module: checks code the course gives
def test_sdpa_errors(shapes, kwargs, pattern):
    q, k, v = (Tensor(rand(*s)) for s in shapes)
    with pytest.raises(TensorError, match=pattern):
        scaled_dot_product_attention(q, k, v, **kwargs)


# ---- MultiHeadAttention ------------------------------------------------------------------------------
def np_mha(mha, x, keep=None):
    """Reference multi-head attention with an explicit loop over heads."""
    D, H = mha.dim, mha.heads
    d = D // H
    qkv = x @ mha.qkv.weight.data.T + mha.qkv.bias.data
    q, k, v = qkv[..., :D], qkv[..., D:2 * D], qkv[..., 2 * D:]
    heads = [np_attention(q[..., h * d:(h + 1) * d], k[..., h * d:(h + 1) * d], v[..., h * d:(h + 1) * d], keep)
             for h in range(H)]
    return np.concatenate(heads, axis=-1) @ mha.proj.weight.data.T + mha.proj.bias.data


def test_mha_matches_a_reference_with_a_loop_over_heads():
    mha = MultiHeadAttention(12, 3)
    x = rand(2, 5, 12)
    out = mha(Tensor(x))
    assert out.shape == (2, 5, 12) and out.dtype == np.float32
    assert_close(out, np_mha(mha, x), atol=1e-5, what="MultiHeadAttention (qkv columns: all q, then k, then v)")
    assert [n for n, _ in mha.named_parameters()] == ["qkv.weight", "qkv.bias", "proj.weight", "proj.bias"]
    assert mha.qkv.weight.shape == (36, 12), "one fused projection for queries, keys and values"


def test_mha_causal_and_padding_masks():
    mha = MultiHeadAttention(8, 2, causal=True)
    x = rand(2, 6, 8)
    tril = np.tril(np.ones((6, 6), dtype=bool))
    assert_close(mha(Tensor(x)), np_mha(mha, x, tril), atol=1e-5, what="causal MultiHeadAttention")
    x2 = x.copy()
    x2[:, 4:] = 50.0
    assert_close(mha(Tensor(x2)).data[:, :4], mha(Tensor(x)).data[:, :4], atol=1e-5,
                 what="causal: changing tokens 4.. must not change outputs 0..3")
    pad = np.array([[True] * 6, [True] * 3 + [False] * 3])[:, None, :]   # (N, 1, S)
    assert_close(mha(Tensor(x), mask=pad), np_mha(mha, x, tril & pad), atol=1e-5,
                 what="a (N, 1, S) padding mask combined with the causal mask")


def count_ops(out, op):
    """Number of recorded `op` nodes in the graph that produced `out`."""
    seen, stack, n = set(), [out], 0
    while stack:
        t = stack.pop()
        if id(t) in seen or t._ctx is None:
            continue
        seen.add(id(t))
        n += t._ctx.op == op
        stack.extend(t._ctx.parents)
    return n


@pytest.mark.parametrize("heads", [1, 4, 8])
def test_mha_uses_batched_products_not_a_loop_over_heads(heads):
    mha = MultiHeadAttention(16, heads, causal=True)
    out = mha(Tensor(rand(2, 5, 16), requires_grad=True))
    assert count_ops(out, "matmul") == 4, (
        "expected 4 matrix products whatever the number of heads (qkv projection, q k^T, weights @ v, output "
        f"projection), got {count_ops(out, 'matmul')} with {heads} heads: are the heads computed in a Python loop?")


def test_mha_dropout_only_in_training():
    mha = MultiHeadAttention(8, 2, dropout=0.5)
    x = Tensor(rand(2, 4, 8))
    mha.eval()
    assert_close(mha(x), mha(x), atol=0, rtol=0, what="eval mode must be deterministic")
    assert_close(mha(x), np_mha(mha, x.data), atol=1e-5, what="eval mode ignores dropout")
    mha.train()
    assert not np.allclose(mha(x).data, np_mha(mha, x.data), atol=1e-4), "training mode must drop attention weights"


@pytest.mark.given   # passes with no work in this module: checks code the course gives
def test_mha_errors_and_repr():
    with pytest.raises(TensorError, match="divisible by heads"):
        MultiHeadAttention(10, 3)
    with pytest.raises(TensorError, match=r"\(N, T, 8\)"):
        MultiHeadAttention(8, 2)(Tensor(rand(2, 4, 6)))
    assert repr(MultiHeadAttention(8, 2, causal=True)).startswith(
        "MultiHeadAttention(\n  dim=8, heads=2, dropout=0.0, causal=True\n  (qkv): Linear(in_features=8, out_features=24")


@pytest.mark.parametrize("dtype, atol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_kv_cache_generation_equals_full_recompute(dtype, atol):
    mha = MultiHeadAttention(16, 4, causal=True).to(dtype)
    x = Tensor(rand(2, 9, 16, dtype=dtype), dtype=dtype)
    full = mha(x).data
    cache = KVCache()
    with tt.no_grad():
        pieces = [mha(x[:, :4], kv_cache=cache).data]       # the prompt: 4 positions at once
        assert cache.length == 4 and cache.keys.shape == (2, 4, 4, 4), f"cache after the prompt: {cache}"
        for t in range(4, 9):                                 # then one token at a time
            pieces.append(mha(x[:, t:t + 1], kv_cache=cache).data)
    assert cache.length == 9 and len(cache) == 9
    assert_close(np.concatenate(pieces, axis=1), full, atol=atol, rtol=0,
                 what=f"{np.dtype(dtype).name} generation with a KV cache vs recomputing the full sequence")
    cache.reset()
    assert cache.length == 0 and cache.keys is None


def test_kv_cache_rejects_a_different_batch():
    mha = MultiHeadAttention(8, 2, causal=True)
    cache = KVCache()
    mha(Tensor(rand(2, 3, 8)), kv_cache=cache)
    with pytest.raises(TensorError, match="KVCache"):
        mha(Tensor(rand(3, 1, 8)), kv_cache=cache)


def test_mha_flops():
    mha = MultiHeadAttention(16, 4)
    N, T, D = 2, 10, 16
    projections = 2 * N * T * D * 3 * D + 2 * N * T * D * D
    attention = 2 * 2 * N * T * T * D            # q k^T and weights @ v
    assert model_flops(mha, (N, T, D)) == projections + attention


# ---- positional encoding -----------------------------------------------------------------------------
def test_sinusoidal_table_values():
    pe = sinusoidal_table(50, 6)
    assert pe.shape == (50, 6) and pe.dtype == np.float32
    pos, i = 7, 1                                         # columns 2i and 2i+1 share the angle
    angle = pos / 10000 ** (2 * i / 6)
    assert_close(pe[pos, 2 * i], np.sin(angle), atol=1e-6, what="pe[p, 2i] = sin(p / 10000^(2i/D))")
    assert_close(pe[pos, 2 * i + 1], np.cos(angle), atol=1e-6, what="pe[p, 2i+1] = cos(p / 10000^(2i/D))")
    assert_close(pe[0], [0, 1, 0, 1, 0, 1], atol=0, what="position 0: sin 0 = 0, cos 0 = 1")
    assert sinusoidal_table(4, 5).shape == (4, 5), "odd sizes work (the last column is a sine)"


def test_positional_encoding_adds_the_table():
    pe = PositionalEncoding(8, max_len=20)
    x = rand(2, 5, 8)
    assert_close(pe(Tensor(x)), x + sinusoidal_table(20, 8)[:5], atol=1e-6, what="x + pe[:T]")
    assert_close(pe(Tensor(x), offset=3), x + sinusoidal_table(20, 8)[3:8], atol=1e-6, what="offset")
    assert pe.parameters() == [] and pe.state_dict() == {}, "the table is neither learned nor saved"
    assert pe(T64(x)).dtype == np.float64
    with pytest.raises(TensorError, match="max_len=20"):
        pe(Tensor(x), offset=16)
    with pytest.raises(TensorError, match=r"\(N, T, 8\)"):
        pe(Tensor(rand(2, 5, 6)))
