"""Probes of module 16 (TinyGPT): what each probe calls and why it cannot be passed without the work.

- CharTokenizer: encode / decode of random text over a random alphabet (with non-ASCII characters);
- GPT.forward and Block.forward: logits and the loss of a small random model (weights drawn by the probe,
  learned or sinusoidal positions) on random ids;
- forward with KV caches, the sequence fed in random chunks: the logits must equal one full forward's;
- GPT.generate greedy (temperature 0): the new ids with and without the cache, for one and several prompts;
- sample_next: with top_k = k and a high temperature, the set of ids drawn in many draws is exactly the k
  best of each row (any honest sampler gives that set, whatever numbers it draws);
- random_windows: every row is a contiguous window of the stream, the targets are shifted by one, and the
  windows start at more than one place.
"""
from __future__ import annotations

import importlib

import numpy as np

MODULE = "16_tinygpt"

_ALPHABET = "abcdefghijklmnopqrstuvwxyz .,;:!?\néàüßλπ→€"


def _gpt_module(tt):
    return importlib.import_module(f"{tt.__name__}.tinygpt")


def _model(tt, rng, vocab):
    gpt = _gpt_module(tt)
    heads = int(rng.integers(1, 3))
    model = gpt.GPT(vocab, context_length=int(rng.integers(12, 20)), dim=heads * int(rng.integers(2, 5)),
                    layers=int(rng.integers(1, 3)), heads=heads, mlp_ratio=2,
                    positional=str(rng.choice(["learned", "sinusoidal"])))
    for name, p in model.named_parameters():
        centre = 1.0 if name.endswith(("ln1.weight", "ln2.weight", "ln_f.weight")) else 0.0
        p.data = (centre + rng.normal(0.0, 0.5, p.shape)).astype(np.float32)
    model.eval()
    return model


def probe_tokenizer(tt, rng) -> dict[str, np.ndarray]:
    gpt = _gpt_module(tt)
    chars = list(_ALPHABET)
    alphabet = [chars[i] for i in rng.choice(len(chars), size=int(rng.integers(5, 20)), replace=False)]
    text = "".join(rng.choice(alphabet, size=int(rng.integers(1, 60))))
    tok = gpt.CharTokenizer.from_text("".join(alphabet))
    ids = tok.encode(text)
    other = rng.integers(0, tok.vocab_size, size=int(rng.integers(1, 30)))
    decoded = tok.decode(other)
    return {"ids": np.asarray(ids), "decoded": np.array([ord(c) for c in decoded], dtype=np.int64),
            "round_trip": np.array([ord(c) for c in tok.decode(ids)], dtype=np.int64)}


def probe_forward_and_loss(tt, rng) -> dict[str, np.ndarray]:
    vocab = int(rng.integers(5, 15))
    model = _model(tt, rng, vocab)
    n, t = int(rng.integers(1, 4)), int(rng.integers(1, model.context_length + 1))
    ids = rng.integers(0, vocab, size=(n, t))
    targets = rng.integers(0, vocab, size=(n, t))
    block = model.blocks[0]
    x = tt.Tensor(rng.normal(0.0, 1.0, (n, t, model.config["dim"])).astype(np.float32))
    return {"logits": model(ids).data, "loss": model.loss(ids, targets).data, "block": block(x).data}


def probe_kv_cache_forward(tt, rng) -> dict[str, np.ndarray]:
    vocab = int(rng.integers(5, 15))
    model = _model(tt, rng, vocab)
    t = int(rng.integers(2, model.context_length + 1))
    ids = rng.integers(0, vocab, size=(int(rng.integers(1, 3)), t))
    cuts = np.sort(rng.choice(np.arange(1, t), size=min(t - 1, int(rng.integers(1, 4))), replace=False))
    caches = model.new_caches()
    pieces = [model(ids[:, a:b], kv_caches=caches).data for a, b in zip([0, *cuts], [*cuts, t])]
    return {"cached_logits": np.concatenate(pieces, axis=1), "cache_length": np.array([caches[0].length])}


def probe_greedy_generation(tt, rng) -> dict[str, np.ndarray]:
    vocab = int(rng.integers(5, 15))
    model = _model(tt, rng, vocab)
    t0 = int(rng.integers(1, 5))
    new = int(rng.integers(1, model.context_length - t0 + 1))
    prompt = rng.integers(0, vocab, size=t0)
    prompts = rng.integers(0, vocab, size=(int(rng.integers(2, 4)), t0))
    return {"cached": model.generate(prompt, new, temperature=0.0),
            "uncached": model.generate(prompt, new, temperature=0.0, use_cache=False),
            "batch": model.generate(prompts, new, temperature=0.0)}


def probe_sample_next_top_k(tt, rng) -> dict[str, np.ndarray]:
    gpt = _gpt_module(tt)
    rows, vocab = int(rng.integers(1, 4)), int(rng.integers(5, 12))
    k = int(rng.integers(2, 4))
    logits = rng.normal(0.0, 1.0, (rows, vocab))
    draws = np.stack([gpt.sample_next(logits, temperature=50.0, top_k=k, rng=np.random.default_rng(int(s)))
                      for s in rng.integers(0, 2**31, size=200)])          # (200, rows)
    chosen = np.stack([np.isin(np.arange(vocab), draws[:, r]).astype(np.int64) for r in range(rows)])
    return {"drawn_ids": chosen, "shape": np.array(draws.shape)}


def probe_random_windows(tt, rng) -> dict[str, np.ndarray]:
    gpt = _gpt_module(tt)
    stream = np.cumsum(rng.integers(1, 50, size=int(rng.integers(20, 60))))   # increasing: a window is findable
    batch, t = int(rng.integers(16, 33)), int(rng.integers(1, 10))
    x, y = gpt.random_windows(stream, batch, t, rng=np.random.default_rng(int(rng.integers(0, 2**31))))
    starts = np.searchsorted(stream, x[:, 0])
    rows = starts[:, None] + np.arange(t + 1)
    contiguous = (rows[:, -1] < len(stream)) & np.all(stream[np.minimum(rows, len(stream) - 1)][:, :-1] == x, axis=1)
    shifted = np.all(y[:, :-1] == x[:, 1:], axis=1) & (y[:, -1] == stream[np.minimum(rows[:, -1], len(stream) - 1)])
    return {"shape": np.array(x.shape + y.shape), "valid_rows": np.array([contiguous.sum(), shifted.sum()]),
            "random_starts": np.array([int(len(np.unique(starts)) > 1)]),
            "dtype_size": np.array([x.dtype.itemsize, y.dtype.itemsize])}


PROBES = [probe_tokenizer, probe_forward_and_loss, probe_kv_cache_forward, probe_greedy_generation,
          probe_sample_next_top_k, probe_random_windows]
