"""Module 16 - TinyGPT: a character-level, decoder-only transformer built from your own modules.

Everything mathematical here comes from earlier modules: `Embedding`, `MultiHeadAttention` with
its causal mask and `KVCache`, `PositionalEncoding` (07), `LayerNorm`, `cross_entropy`, `init` (05),
`Linear`, `GELU`, `Sequential` (04), and autograd (09) with `AdamW` (10) for training. This file
only *composes* them and *samples* from the result:

    text --CharTokenizer--> ids (N, T) --GPT--> logits (N, T, V) --softmax/sample--> next id

    GPT(ids):  x = tok_emb(ids) + position(0..T-1)                  (N, T, D)
               for each of L blocks (pre-LayerNorm, as GPT-2):
                   x = x + attn(ln1(x))      causal: position t sees positions <= t only
                   x = x + mlp(ln2(x))       Linear(D, 4D) -> GELU -> Linear(4D, D)
               logits = head(ln_f(x))                                  (N, T, V)

Training is next-character prediction: for a window of text `ids[i : i + T + 1]` the input is the
first T characters and the target is the same window shifted by one, so ONE forward pass gives T
training examples (position t predicts character t + 1 having seen characters <= t).

Generation feeds the model its own samples. A `KVCache` per block keeps the keys and values of the
positions already seen, so each new token costs one position's work instead of re-running the
whole context.

Shapes: N batch, T positions (<= context_length), D model width, V vocabulary size, L blocks.
"""
from __future__ import annotations

import math
import re
import time
from typing import Callable

import numpy as np

from tinytorch.attention import Embedding, KVCache, MultiHeadAttention, PositionalEncoding
from tinytorch.autograd import no_grad
from tinytorch.layers import GELU, Dropout, Linear, Module, ModuleList, Sequential
from tinytorch.networks import LayerNorm, count_parameters, cross_entropy, init
from tinytorch.tensor import Tensor, TensorError, get_rng


# ---- tokenizer ---------------------------------------------------------------------------------------
class CharTokenizer:
    """One token per character. The vocabulary is the sorted set of characters of a training text.

    >>> tok = CharTokenizer.from_text("hello world")
    >>> tok.encode("hello")          # array([3, 2, 4, 4, 5])
    >>> tok.decode(tok.encode("hello"))
    'hello'

    encode(text) -> int64 array (len(text),); decode(ids) -> str. A character that is not in the
    vocabulary is an error (a model cannot read a character it has never been trained on).
    """

    def __init__(self, chars):
        chars = list(chars)
        if not chars:
            raise TensorError("CharTokenizer: the vocabulary is empty; build it from a non-empty text")
        if any(not isinstance(c, str) or len(c) != 1 for c in chars):
            raise TensorError("CharTokenizer: the vocabulary must be a sequence of single characters")
        if len(set(chars)) != len(chars):
            raise TensorError("CharTokenizer: the vocabulary lists a character twice")
        self.chars = chars
        self.stoi = {c: i for i, c in enumerate(chars)}
        # A lookup table from Unicode code point to id (-1 = unknown) makes encode one NumPy gather.
        self._table = np.full(max(ord(c) for c in chars) + 1, -1, dtype=np.int64)
        self._table[[ord(c) for c in chars]] = np.arange(len(chars))

    @classmethod
    def from_text(cls, text: str) -> "CharTokenizer":
        """Vocabulary = every distinct character of `text`, sorted (so it does not depend on order)."""
        if not isinstance(text, str) or not text:
            raise TensorError("CharTokenizer.from_text: needs a non-empty string")
        return cls(sorted(set(text)))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def __len__(self) -> int:
        return self.vocab_size

    def encode(self, text: str) -> np.ndarray:
        """Character ids of `text`, int64 of shape (len(text),)."""
        if not isinstance(text, str):
            raise TensorError(f"CharTokenizer.encode: expected a str, got {type(text).__name__}")
        # BEGIN SOLUTION map every character to its id; an unknown character is an error that names it
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
        ids = np.where(codes < len(self._table), self._table[np.minimum(codes, len(self._table) - 1)], -1)
        if (ids < 0).any():
            pos = int(np.argmax(ids < 0))
            raise TensorError(f"CharTokenizer.encode: character {text[pos]!r} at position {pos} is not in the "
                              f"vocabulary of {self.vocab_size} characters (built from the training text); "
                              "remove it or build the tokenizer from a text that contains it")
        return ids
        # END SOLUTION

    def decode(self, ids) -> str:
        """The text of a sequence of ids (list, array or 1-D Tensor)."""
        arr = np.asarray(ids.data if isinstance(ids, Tensor) else ids)
        if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
            raise TensorError(f"CharTokenizer.decode: expected a 1-D sequence of integer ids, got shape "
                              f"{arr.shape} and dtype {arr.dtype}")
        if arr.size and (arr.min() < 0 or arr.max() >= self.vocab_size):
            raise TensorError(f"CharTokenizer.decode: ids must be in [0, {self.vocab_size}), got values from "
                              f"{arr.min()} to {arr.max()}")
        # BEGIN SOLUTION
        return "".join(self.chars[i] for i in arr.tolist())
        # END SOLUTION

    def to_config(self) -> dict:
        return {"chars": "".join(self.chars)}

    @classmethod
    def from_config(cls, config: dict) -> "CharTokenizer":
        return cls(list(config["chars"]))

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size})"


# ---- the transformer ---------------------------------------------------------------------------------
class Block(Module):
    """One pre-LayerNorm transformer block: x + attn(ln1(x)), then + mlp(ln2(x)).  (N, T, D) -> same.

    "Pre-LN" normalises the input of each branch, not the sum, so the residual stream x is a clean
    sum of every block's contribution; that trains stably without warm-up tricks.
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: int = 4, dropout: float = 0.0):
        super().__init__()
        self.ln1 = LayerNorm(dim)
        self.attn = MultiHeadAttention(dim, heads, dropout=dropout, causal=True)
        self.ln2 = LayerNorm(dim)
        layers = [Linear(dim, mlp_ratio * dim), GELU(), Linear(mlp_ratio * dim, dim)]
        if dropout > 0:
            layers.append(Dropout(dropout))
        self.mlp = Sequential(*layers)

    def forward(self, x: Tensor, kv_cache: KVCache | None = None) -> Tensor:
        # BEGIN SOLUTION the two residual branches: attention (causal, with the cache) then the MLP
        x = x + self.attn(self.ln1(x), kv_cache=kv_cache)
        x = x + self.mlp(self.ln2(x))
        return x
        # END SOLUTION


class GPT(Module):
    """A decoder-only transformer language model (GPT-2's layout, small).

    GPT(vocab_size, context_length=128, dim=128, layers=4, heads=4)
    forward(ids, kv_caches=None): ids int (N, T) with T <= context_length -> logits (N, T, vocab_size).
    `config` holds the constructor arguments (so a deployment artifact can rebuild the model).

    positional: "learned" (a trained Embedding per position, as GPT-2) or "sinusoidal" (the fixed
    PositionalEncoding of module 07). Weights start as GPT-2's: N(0, 0.02), with the projections
    that write into the residual stream scaled by 1/sqrt(2 * layers) so the stream's variance does
    not grow with depth.
    """

    def __init__(self, vocab_size: int, context_length: int = 128, dim: int = 128, layers: int = 4,
                 heads: int = 4, mlp_ratio: int = 4, dropout: float = 0.0, positional: str = "learned"):
        super().__init__()
        if positional not in ("learned", "sinusoidal"):
            raise TensorError(f"GPT: positional must be 'learned' or 'sinusoidal', got {positional!r}")
        if min(int(vocab_size), int(context_length), int(dim), int(layers), int(heads)) <= 0:
            raise TensorError(f"GPT: sizes must be positive, got vocab_size={vocab_size}, context_length="
                              f"{context_length}, dim={dim}, layers={layers}, heads={heads}")
        self.config = dict(vocab_size=int(vocab_size), context_length=int(context_length), dim=int(dim),
                           layers=int(layers), heads=int(heads), mlp_ratio=int(mlp_ratio),
                           dropout=float(dropout), positional=positional)
        self.context_length = int(context_length)
        self.tok_emb = Embedding(vocab_size, dim)
        if positional == "learned":
            self.pos_emb = Embedding(context_length, dim)
        else:
            self.pos_enc = PositionalEncoding(dim, max_len=context_length)
        self.drop = Dropout(dropout)
        self.blocks = ModuleList([Block(dim, heads, mlp_ratio, dropout) for _ in range(layers)])
        self.ln_f = LayerNorm(dim)
        self.head = Linear(dim, vocab_size)
        self._init_weights()

    def _init_weights(self) -> None:
        residual_std = 0.02 / math.sqrt(2 * self.config["layers"])
        for name, p in self.named_parameters():
            if name.endswith("bias"):
                init.zeros_(p)
            elif p.ndim == 2:
                std = residual_std if name.endswith(("attn.proj.weight", "mlp.2.weight")) else 0.02
                init.normal_(p, 0.0, std)

    def forward(self, ids, kv_caches: list | None = None) -> Tensor:
        ids = np.asarray(ids.data if isinstance(ids, Tensor) else ids)
        if ids.ndim != 2:
            raise TensorError(f"GPT: expected token ids of shape (N, T), got shape {ids.shape}; "
                              "for one sequence use ids[None, :]")
        N, T = ids.shape
        offset = kv_caches[0].length if kv_caches else 0
        if offset + T > self.context_length:
            raise TensorError(f"GPT: {offset + T} positions do not fit the context length "
                              f"{self.context_length}; crop the input to its last {self.context_length} tokens")
        if kv_caches is not None and len(kv_caches) != len(self.blocks):
            raise TensorError(f"GPT: expected one KVCache per block ({len(self.blocks)}), got {len(kv_caches)}")
        # BEGIN SOLUTION embeddings + positions, the blocks (each with its cache), final LayerNorm, head
        x = self.tok_emb(ids)                                              # (N, T, D)
        if hasattr(self, "pos_emb"):
            x = x + self.pos_emb(np.arange(offset, offset + T))            # (T, D) broadcasts over N
        else:
            x = self.pos_enc(x, offset=offset)
        x = self.drop(x)
        for i, block in enumerate(self.blocks):
            x = block(x, kv_cache=kv_caches[i] if kv_caches is not None else None)
        return self.head(self.ln_f(x))                                     # (N, T, V)
        # END SOLUTION

    def loss(self, ids, targets) -> Tensor:
        """Mean cross-entropy (nats per character) of predicting `targets` (N, T) from `ids` (N, T)."""
        return cross_entropy(self(ids), targets)

    def num_parameters(self) -> int:
        return count_parameters(self)

    def new_caches(self) -> list[KVCache]:
        """One empty KVCache per block, for `forward(ids, kv_caches=...)` and `generate`."""
        return [KVCache() for _ in self.blocks]

    # -- sampling ----------------------------------------------------------------------------------------
    def generate(self, prompt_ids, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                 rng: np.random.Generator | None = None, use_cache: bool = True) -> np.ndarray:
        """Continue `prompt_ids` by `max_new_tokens` sampled tokens; returns prompt + new ids.

        prompt_ids: (T0,) for one sequence or (N, T0) for N at once; the result has the same rank.
        temperature: divides the logits; < 1 sharper (safer), > 1 flatter (more surprising), 0 = greedy.
        top_k: sample only among the k most likely tokens (top_k=1 is greedy).
        use_cache=True keeps a KVCache per block, so each new token costs one position's work.
        Positions are absolute (0 .. context_length-1); when the text outgrows the context the
        cached path starts again from the last half context of text (one prefill), while the
        uncached path always re-reads the last context_length tokens.
        """
        ids = np.asarray(prompt_ids.data if isinstance(prompt_ids, Tensor) else prompt_ids)
        single = ids.ndim == 1
        ids = ids[None, :] if single else ids
        if ids.ndim != 2 or ids.shape[1] == 0 or ids.dtype.kind not in "iu":
            raise TensorError(f"generate: prompt_ids must be a non-empty integer array (T0,) or (N, T0), "
                              f"got shape {ids.shape} and dtype {ids.dtype}")
        if temperature < 0:
            raise TensorError(f"generate: temperature must be >= 0 (0 = greedy), got {temperature}")
        if top_k is not None and not 1 <= int(top_k) <= self.config["vocab_size"]:
            raise TensorError(f"generate: top_k must be in [1, {self.config['vocab_size']}], got {top_k}")
        rng = get_rng() if rng is None else rng
        N, T0 = ids.shape
        ctx = self.context_length
        seq = np.empty((N, T0 + int(max_new_tokens)), dtype=np.int64)
        seq[:, :T0] = ids
        was_training = self.training
        self.eval()
        try:
            with no_grad():
                caches = None
                for t in range(T0, seq.shape[1]):          # t = number of tokens known so far
                    # BEGIN SOLUTION feed the new position(s), sample the next token from the last logits
                    if not use_cache:
                        logits = self(seq[:, max(0, t - ctx):t]).data[:, -1]
                    else:
                        if caches is None:                   # first step: read the whole prompt
                            caches, start = self.new_caches(), max(0, t - ctx)
                        elif caches[0].length >= ctx:        # context full: restart from recent text
                            caches, start = self.new_caches(), t - max(1, ctx // 2)
                        else:                                # the usual case: only the newest token
                            start = t - 1
                        logits = self(seq[:, start:t], kv_caches=caches).data[:, -1]
                    seq[:, t] = sample_next(logits, temperature, top_k, rng)
                    # END SOLUTION
        finally:
            self.train(was_training)
        return seq[0] if single else seq


def sample_next(logits: np.ndarray, temperature: float = 1.0, top_k: int | None = None,
                rng: np.random.Generator | None = None) -> np.ndarray:
    """One token id per row of `logits` (N, V): softmax(logits / temperature), restricted to top_k.

    temperature 0 (or top_k 1) is greedy: the argmax. Returns int64 (N,).
    """
    logits = np.asarray(logits, dtype=np.float64)
    if temperature == 0 or top_k == 1:
        return np.argmax(logits, axis=-1).astype(np.int64)
    rng = get_rng() if rng is None else rng
    # BEGIN SOLUTION scale by 1/temperature, keep the top_k scores, softmax, draw by inverse CDF
    z = logits / temperature
    if top_k is not None and top_k < z.shape[-1]:
        kth = np.partition(z, -top_k, axis=-1)[:, -top_k][:, None]   # the k-th largest score per row
        z = np.where(z < kth, -np.inf, z)
    z = z - z.max(axis=-1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=-1, keepdims=True)
    u = rng.random((p.shape[0], 1))
    ids = (np.cumsum(p, axis=-1) < u).sum(axis=-1)               # first index whose CDF reaches u
    return np.minimum(ids, p.shape[-1] - 1).astype(np.int64)
    # END SOLUTION


# ---- training on a text ------------------------------------------------------------------------------
def random_windows(ids: np.ndarray, batch_size: int, context_length: int,
                   rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A batch of random contiguous windows of a token stream: inputs x and next-token targets y.

    x[b] = ids[s_b : s_b + T] and y[b] = ids[s_b + 1 : s_b + T + 1] for random starts s_b;
    both int64 (batch_size, T). The text must hold at least T + 1 tokens.
    """
    ids = np.asarray(ids)
    T = int(context_length)
    if ids.ndim != 1 or len(ids) < T + 1:
        raise TensorError(f"random_windows: need a 1-D token stream of at least context_length + 1 = {T + 1} "
                          f"tokens, got shape {ids.shape}")
    rng = get_rng() if rng is None else rng
    # BEGIN SOLUTION draw start positions, gather windows with one fancy index (no Python loop)
    starts = rng.integers(0, len(ids) - T, size=batch_size)
    offsets = starts[:, None] + np.arange(T + 1)[None, :]            # (B, T + 1)
    windows = ids[offsets].astype(np.int64)
    return windows[:, :-1], windows[:, 1:]
    # END SOLUTION


def evaluate_loss(model: GPT, ids: np.ndarray, context_length: int | None = None, batch_size: int = 32,
                  max_windows: int | None = None) -> float:
    """Mean next-character loss (nats/char) over consecutive non-overlapping windows of `ids`.

    Every position of every window counts once, so the number is the average over positions
    0..T-1 of a window: the same quantity the training loss measures on random windows.
    """
    T = int(context_length or model.context_length)
    ids = np.asarray(ids)
    n = (len(ids) - 1) // T
    if n < 1:
        raise TensorError(f"evaluate_loss: need at least {T + 1} tokens, got {len(ids)}")
    if max_windows is not None:
        n = min(n, int(max_windows))
    starts = np.arange(n) * T
    was_training = model.training
    model.eval()
    total = 0.0
    try:
        with no_grad():
            for i in range(0, n, batch_size):
                offsets = starts[i:i + batch_size, None] + np.arange(T + 1)[None, :]
                w = ids[offsets].astype(np.int64)
                total += float(model.loss(w[:, :-1], w[:, 1:]).item()) * len(w)
    finally:
        model.train(was_training)
    return total / n


def train_steps(model: GPT, optimizer, ids: np.ndarray, steps: int | None = None, *, seconds: float | None = None,
                batch_size: int = 32, context_length: int | None = None, rng: np.random.Generator | None = None,
                clip: float | None = 1.0, lr_at: Callable[[float], float] | None = None,
                on_step: Callable[[int, float], None] | None = None) -> list[float]:
    """Train on random windows of `ids` for `steps` steps or `seconds` of wall time (whichever ends first).

    lr_at(progress) -> learning rate, progress in [0, 1) = the larger of steps done / steps and
    seconds used / seconds (so a schedule works for a time budget too). clip: global gradient norm
    limit (None: off). on_step(step, loss) is called after every step. Returns the losses.
    """
    from tinytorch.optim import clip_grad_norm_

    if steps is None and seconds is None:
        raise TensorError("train_steps: give steps, seconds, or both")
    T = int(context_length or model.context_length)
    params = model.parameters()
    losses: list[float] = []
    start = time.perf_counter()
    model.train()
    step = 0
    while True:
        used = time.perf_counter() - start
        progress = max(step / steps if steps else 0.0, used / seconds if seconds else 0.0)
        if progress >= 1.0:
            break
        if lr_at is not None:
            for group in optimizer.param_groups:
                group["lr"] = lr_at(progress)
        x, y = random_windows(ids, batch_size, T, rng)
        loss = model.loss(x, y)
        optimizer.zero_grad()
        loss.backward()
        if clip is not None:
            clip_grad_norm_(params, clip)
        optimizer.step()
        losses.append(float(loss.item()))
        step += 1
        if on_step is not None:
            on_step(step, losses[-1])
    return losses


# ---- judging samples ---------------------------------------------------------------------------------
_WORD = re.compile(r"[a-z]+")


def words_of(text: str) -> list[str]:
    """Lower-case alphabetic words of `text` ("Thou art, my lord!" -> ['thou', 'art', 'my', 'lord'])."""
    return _WORD.findall(text.lower())


def readability(sample: str, vocabulary) -> float:
    """Share of the words of `sample` that occur in `vocabulary` (a set of words, or a text).

    A crude but honest test of "does it write words": random characters score near 0, a model that
    has learned spelling scores near 1. An empty sample scores 0.
    """
    known = set(words_of(vocabulary)) if isinstance(vocabulary, str) else set(vocabulary)
    words = words_of(sample)
    if not words:
        return 0.0
    return sum(w in known for w in words) / len(words)
