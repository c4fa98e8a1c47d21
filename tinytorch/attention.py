"""Module 07 - Attention: embeddings, scaled dot-product attention, multi-head attention, positions.

The pieces of a transformer (module 16, TinyGPT, builds one from them):

- `Embedding(num, dim)`: a learned vector per token id; `forward(ids)` = `weight[ids]`.
- `scaled_dot_product_attention(q, k, v, mask, causal)`: softmax(q k^T / sqrt(d)) v over the last
  two axes, for any leading (batch, head) dimensions.
- `causal_mask(T, S)`: the boolean mask that stops a position from looking at later positions.
- `MultiHeadAttention(dim, heads, causal=...)`: one fused q/k/v projection, all heads in one batched
  matrix product, and an optional `KVCache` for fast generation.
- `PositionalEncoding(dim)`: the sinusoidal position signal added to token embeddings.

MASK CONVENTION (PyTorch's, for boolean masks): True = KEEP (this query may attend to this key),
False = masked out. A mask broadcasts against the scores of shape (..., T, S): (T, S) for one
pattern, (N, 1, S) or (N, 1, 1, S) for per-sequence padding. Example padding mask for lengths:
`keep = np.arange(S)[None, :] < lengths[:, None]` -> (N, S), then `keep[:, None, :]`.

Shapes: N batch, T query positions, S key positions (S = T without a cache), D model width,
H heads, d = D / H per head.
"""
from __future__ import annotations

import math

import numpy as np

from tinytorch.activations import softmax
from tinytorch.layers import Linear, Module, Parameter, dropout
from tinytorch.tensor import DEFAULT_FLOAT, Tensor, TensorError, cat, get_rng


# ---- Embedding ---------------------------------------------------------------------------------------
def _ids_array(op: str, ids, num: int) -> np.ndarray:
    arr = np.asarray(ids.data if isinstance(ids, Tensor) else ids)
    if arr.dtype.kind not in "iu":
        raise TensorError(f"{op}: ids must be integers (token or class indices), got dtype {arr.dtype} "
                          f"(ids shape {arr.shape}); convert with .long() if they hold whole numbers")
    if arr.size and (arr.min() < 0 or arr.max() >= num):
        raise TensorError(f"{op}: ids must be in [0, {num}) for a table of {num} rows, got values from "
                          f"{arr.min()} to {arr.max()} (ids shape {arr.shape})")
    return arr


def embedding(ids, weight: Tensor) -> Tensor:
    """Rows of `weight` (num, dim) picked by integer `ids` of any shape -> ids.shape + (dim,)."""
    ids = _ids_array("embedding", ids, weight.shape[0])
    # BEGIN SOLUTION
    return weight[ids]
    # END SOLUTION


class Embedding(Module):
    """A table of `num_embeddings` learned vectors of size `embedding_dim`, initialised N(0, 1).

    forward(ids): integer ids of any shape (N,), (N, T), ... -> ids.shape + (embedding_dim,).
    The gradient of a row is the sum over every place its id appears (module 09).
    """

    def __init__(self, num_embeddings: int, embedding_dim: int):
        super().__init__()
        if int(num_embeddings) <= 0 or int(embedding_dim) <= 0:
            raise TensorError(f"Embedding: sizes must be positive, got num_embeddings={num_embeddings}, "
                              f"embedding_dim={embedding_dim}")
        self.num_embeddings, self.embedding_dim = int(num_embeddings), int(embedding_dim)
        self.weight = Parameter(get_rng().standard_normal((self.num_embeddings, self.embedding_dim),
                                                          dtype=DEFAULT_FLOAT))

    def forward(self, ids) -> Tensor:
        return embedding(ids, self.weight)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}"


# ---- scaled dot-product attention --------------------------------------------------------------------
def causal_mask(T: int, S: int | None = None) -> Tensor:
    """Boolean (T, S) mask, True = may attend: query i sees keys 0 .. i + (S - T).

    With S = T (the default) it is lower triangular. With a cache, the T new queries are the
    LAST T of S positions, so query i (position S - T + i) sees every key up to its own position.
    """
    S = T if S is None else S
    if T < 0 or S < T:
        raise TensorError(f"causal_mask: needs 0 <= T <= S (the queries are the last T of S positions), "
                          f"got T={T}, S={S}")
    return Tensor(np.tri(T, S, k=S - T, dtype=bool))


def _bool_mask(op: str, mask) -> np.ndarray:
    arr = np.asarray(mask.data if isinstance(mask, Tensor) else mask)
    if arr.dtype != np.bool_:
        raise TensorError(f"{op}: mask must be boolean with True = keep (attend) and False = masked out "
                          f"(PyTorch's convention), got dtype {arr.dtype}")
    return arr


def scaled_dot_product_attention(q: Tensor, k: Tensor, v: Tensor, mask=None, causal: bool = False,
                                 dropout_p: float = 0.0, return_weights: bool = False):
    """softmax(q @ k^T / sqrt(d) with masked scores removed) @ v.

    q: (..., T, d), k: (..., S, d), v: (..., S, dv) -> (..., T, dv); leading dims broadcast.
    mask: bool, broadcastable to (..., T, S), True = keep. causal=True also hides later keys
    (combined with `mask`; with S > T the queries are the last T positions, see causal_mask).
    Masked scores are set to the most negative finite number, so they get weight exactly 0; a query
    whose keys are ALL masked attends uniformly instead of producing NaN.
    dropout_p > 0 drops attention weights (pass 0 in evaluation). return_weights=True also returns
    the (..., T, S) attention weights.
    """
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, Tensor) or t.dtype.kind != "f" or t.ndim < 2:
            raise TensorError(f"scaled_dot_product_attention: {name} must be a floating-point Tensor of shape "
                              f"(..., positions, features), got {type(t).__name__} {getattr(t, 'shape', '')}")
    T, S = q.shape[-2], k.shape[-2]
    if q.shape[-1] != k.shape[-1]:
        raise TensorError(f"scaled_dot_product_attention: queries and keys need the same feature size, got "
                          f"q {q.shape} and k {k.shape}")
    if v.shape[-2] != S:
        raise TensorError(f"scaled_dot_product_attention: keys and values need the same number of positions, "
                          f"got k {k.shape} and v {v.shape}")
    try:
        scores_shape = np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2]) + (T, S)
    except ValueError:
        raise TensorError(f"scaled_dot_product_attention: batch dimensions of q {q.shape}, k {k.shape}, "
                          f"v {v.shape} do not broadcast") from None
    if not 0.0 <= dropout_p < 1.0:
        raise TensorError(f"scaled_dot_product_attention: dropout_p must be in [0, 1), got {dropout_p}")
    keep = None
    if mask is not None:
        keep = _bool_mask("scaled_dot_product_attention", mask)
        try:
            fits = np.broadcast_shapes(keep.shape, scores_shape) == scores_shape
        except ValueError:
            fits = False
        if not fits:
            raise TensorError(f"scaled_dot_product_attention: mask of shape {keep.shape} does not broadcast to "
                              f"the scores' shape {scores_shape} (..., T, S); e.g. a padding mask (N, S) "
                              "becomes (N, 1, S)")
    if causal:
        future = causal_mask(T, S).data if T <= S else None
        if future is None:
            raise TensorError(f"scaled_dot_product_attention: causal attention needs at least as many keys as "
                              f"queries, got T={T} queries and S={S} keys")
        keep = future if keep is None else keep & future
    # BEGIN SOLUTION
    scale = 1.0 / math.sqrt(q.shape[-1])
    scores = (q * scale) @ k.transpose(-2, -1)                        # (..., T, S)
    if keep is not None:
        scores = scores.masked_fill(~keep, float(np.finfo(scores.dtype).min))
    weights = softmax(scores, axis=-1)
    if dropout_p > 0:
        weights = dropout(weights, dropout_p, training=True)
    out = weights @ v                                                 # (..., T, dv)
    # END SOLUTION
    return (out, weights) if return_weights else out


# ---- multi-head attention with a key/value cache -----------------------------------------------------
class KVCache:
    """The keys and values that ONE attention layer has already computed, for fast generation.

    Generating token by token, position t would otherwise recompute the keys and values of all
    earlier positions. With a cache, each call passes only the new positions:

        cache = KVCache()                        # one per attention layer (a list for a model)
        with tt.no_grad():
            y = mha(prompt, kv_cache=cache)      # (N, T0, D): fills the cache with T0 positions
            y = mha(x_next, kv_cache=cache)      # (N, 1, D): attends to T0 + 1 positions
        cache.length                             # number of positions seen so far (T0 + 1)

    The outputs equal those of running the whole sequence at once (with causal=True, row by row).
    `keys` and `values` are Tensors (N, H, S, d) or None while empty; `reset()` empties the cache.
    Positional information is the caller's job: add positions `cache.length ...` to the new tokens
    (PositionalEncoding.forward(x, offset=cache.length)) before the first layer.
    """

    def __init__(self):
        self.keys: Tensor | None = None
        self.values: Tensor | None = None

    @property
    def length(self) -> int:
        return 0 if self.keys is None else self.keys.shape[-2]

    def __len__(self) -> int:
        return self.length

    def reset(self) -> None:
        self.keys = self.values = None

    def update(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Append new keys/values (N, H, T, d) along the positions axis; return all (N, H, S, d)."""
        if self.keys is not None and (k.shape[:-2] != self.keys.shape[:-2] or k.shape[-1] != self.keys.shape[-1]):
            raise TensorError(f"KVCache: new keys of shape {k.shape} do not fit the cached keys of shape "
                              f"{self.keys.shape} (batch, heads and head size must stay the same); "
                              "use a new cache (or reset()) for a new batch")
        # BEGIN SOLUTION
        if self.keys is None:
            self.keys, self.values = k, v
        else:
            self.keys = cat([self.keys, k], axis=-2)
            self.values = cat([self.values, v], axis=-2)
        return self.keys, self.values
        # END SOLUTION

    def __repr__(self) -> str:
        shape = None if self.keys is None else self.keys.shape
        return f"KVCache(length={self.length}, keys_shape={shape})"


class MultiHeadAttention(Module):
    """Multi-head self-attention: H heads of size d = dim / H attend in parallel, then mix.

    Parameters: `qkv` = Linear(dim, 3 * dim) computes queries, keys and values of all heads in
    one matrix product; `proj` = Linear(dim, dim) mixes the heads' outputs.

    forward(x, mask=None, kv_cache=None): x (N, T, dim) -> (N, T, dim).
      mask: bool, True = keep; (T, S) shared by the batch, (N, T or 1, S) per sequence (e.g. padding),
            or (N, H or 1, T or 1, S). S = T, or cache length + T with a cache.
      kv_cache: a KVCache; its keys/values are prepended and the new ones appended (see KVCache).
    causal=True adds the causal mask (a language model must not see the future).
    dropout: probability of dropping attention weights while training (identity in eval()).
    """

    def __init__(self, dim: int, heads: int, dropout: float = 0.0, causal: bool = False, bias: bool = True):
        super().__init__()
        if int(heads) <= 0 or int(dim) % int(heads) != 0:
            raise TensorError(f"MultiHeadAttention: dim ({dim}) must be divisible by heads ({heads}); each head "
                              "gets dim / heads features")
        if not 0.0 <= dropout < 1.0:
            raise TensorError(f"MultiHeadAttention: dropout must be in [0, 1), got {dropout}")
        self.dim, self.heads, self.head_dim = int(dim), int(heads), int(dim) // int(heads)
        self.dropout, self.causal = float(dropout), bool(causal)
        self.qkv = Linear(self.dim, 3 * self.dim, bias=bias)
        self.proj = Linear(self.dim, self.dim, bias=bias)

    def _head_mask(self, mask):
        """Insert the head axis into a per-sequence (N, T, S) mask so it broadcasts to (N, H, T, S)."""
        if mask is None:
            return None
        keep = _bool_mask("MultiHeadAttention", mask)
        if keep.ndim == 3:
            return keep[:, None]
        if keep.ndim not in (2, 4):
            raise TensorError(f"MultiHeadAttention: mask must have 2 (T, S), 3 (N, T, S) or 4 (N, H, T, S) "
                              f"dimensions, got shape {keep.shape}")
        return keep

    def forward(self, x: Tensor, mask=None, kv_cache: KVCache | None = None) -> Tensor:
        if not isinstance(x, Tensor) or x.ndim != 3 or x.shape[-1] != self.dim:
            raise TensorError(f"MultiHeadAttention: expected input (N, T, {self.dim}), got shape "
                              f"{getattr(x, 'shape', None)}")
        N, T, D = x.shape
        H, d = self.heads, self.head_dim
        mask = self._head_mask(mask)
        p = self.dropout if self.training else 0.0
        # BEGIN SOLUTION
        qkv = self.qkv(x).reshape(N, T, 3, H, d).permute(2, 0, 3, 1, 4)   # (3, N, H, T, d)
        q, k, v = qkv[0], qkv[1], qkv[2]
        if kv_cache is not None:
            k, v = kv_cache.update(k, v)                                  # (N, H, S, d)
        y = scaled_dot_product_attention(q, k, v, mask=mask, causal=self.causal, dropout_p=p)
        y = y.permute(0, 2, 1, 3).reshape(N, T, D)                        # heads side by side again
        return self.proj(y)
        # END SOLUTION

    def flops(self, input_shape, output_shape) -> int:
        """The two attention products (q k^T and weights @ v): 2 * 2 * N * T * S * D, with S = T."""
        N, T, D = input_shape
        return 4 * N * T * T * D

    def extra_repr(self) -> str:
        return f"dim={self.dim}, heads={self.heads}, dropout={self.dropout}, causal={self.causal}"


# ---- positional encoding -----------------------------------------------------------------------------
def sinusoidal_table(max_len: int, dim: int) -> np.ndarray:
    """(max_len, dim) float32: pe[p, 2i] = sin(p / 10000^(2i/dim)), pe[p, 2i+1] = cos(same angle)."""
    # BEGIN SOLUTION
    positions = np.arange(max_len, dtype=np.float64)[:, None]                # (max_len, 1)
    freqs = np.exp(-math.log(10000.0) * np.arange(0, dim, 2) / dim)          # (ceil(dim/2),)
    angles = positions * freqs                                                # (max_len, ceil(dim/2))
    table = np.zeros((max_len, dim), dtype=np.float64)
    table[:, 0::2] = np.sin(angles)
    table[:, 1::2] = np.cos(angles[:, : dim // 2])
    return table.astype(DEFAULT_FLOAT)
    # END SOLUTION


class PositionalEncoding(Module):
    """Add the sinusoidal position signal to token embeddings (Vaswani et al., 2017).

    forward(x, offset=0): x (N, T, dim) or (T, dim) -> x + pe[offset : offset + T]. `offset` is the
    position of x's first token (the KVCache length when generating with a cache). The table is a
    non-persistent buffer `pe` (max_len, dim): not learned and not saved in state_dict().
    """

    def __init__(self, dim: int, max_len: int = 5000):
        super().__init__()
        if int(dim) <= 0 or int(max_len) <= 0:
            raise TensorError(f"PositionalEncoding: dim and max_len must be positive, got {dim}, {max_len}")
        self.dim, self.max_len = int(dim), int(max_len)
        self.register_buffer("pe", sinusoidal_table(self.max_len, self.dim), persistent=False)

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        if not isinstance(x, Tensor) or x.ndim < 2 or x.shape[-1] != self.dim:
            raise TensorError(f"PositionalEncoding: expected input (N, T, {self.dim}) or (T, {self.dim}), got "
                              f"shape {getattr(x, 'shape', None)}")
        T = x.shape[-2]
        if offset < 0 or offset + T > self.max_len:
            raise TensorError(f"PositionalEncoding: positions {offset}..{offset + T - 1} do not fit the table of "
                              f"max_len={self.max_len}; build it with a larger max_len")
        table = self.pe.data[offset:offset + T]
        return x + Tensor(table.astype(x.dtype, copy=False), dtype=x.dtype)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, max_len={self.max_len}"
