"""Milestone 5 - Language Generation: your framework trains a GPT that writes (almost) Shakespeare.

What you build (modules 02-16): tensors, activations, layers, LayerNorm and cross-entropy (05),
embeddings and causal multi-head attention with a KV cache (07), autograd (09), AdamW (10), and the
TinyGPT composition with its tokenizer and sampler (16).
What this program does: it reads the training part of the corpus (Tiny Shakespeare; where it is
unavailable, the Python documentation that ships with CPython, `pydoc_data`): the judge keeps the last
10% of the characters. It trains a character-level GPT (4 blocks, 4 heads, width 128, context 64:
0.82 M parameters) on random windows with AdamW for the fixed number of steps in course.yaml (the
learning rate warms up, then follows a cosine over those steps), in many small steps (12 windows of
64 characters): on a CPU, more updates per second beat bigger batches. Every `check_every` steps it
measures a validation tail of its training text and stops early once the stricter stop bar of
course.yaml holds. Then the judge scores every held-out character: it streams the held-out text one
character per stream per round and asks for the next character's scores before it sends it, and the
program returns samples written with the KV cache.
Metrics: `val_loss` - mean cross-entropy in nats per character over the held-out text, in windows
of the context length (lower is better; a uniform guess over 65 characters is ln 65 = 4.17);
`readability` - the share of the words of 8 samples of 400 characters (temperature 0.7) that occur
in the training text (computed by the judge).
Victory (assignments/course.yaml): val_loss <= 1.80 and readability >= 0.80 on Tiny Shakespeare.
On the offline corpus (pydoc_data: English prose mixed with code, 103 distinct characters) the
same recipe reaches much lower losses (1.25 where Shakespeare gives 1.70), so course.yaml gives
that corpus its own bar (`victory_by_corpus`), calibrated with the reference framework:
val_loss <= 1.32 and readability >= 0.80 (milestones/README.md, "Milestone 5 on the offline corpus").
The judge picks the bar from the corpus it served.
"""
from __future__ import annotations

import math
import time

import numpy as np

from milestones.common import stop_bar_met

CAPABILITIES = [
    "train a transformer language model from scratch with your own autograd and optimizer",
    "generate new text one character at a time with temperature, top-k and a KV cache",
    "measure a language model honestly: loss per character on text it never saw",
]
MODEL = dict(context_length=64, dim=128, layers=4, heads=4)   # 0.82 M parameters at 65 characters
TINY_MODEL = dict(context_length=32, dim=32, layers=2, heads=4)
BATCH = 12                   # windows per step: many small steps learn more per second than few big ones
PEAK_LR = 2e-3
BETAS = (0.9, 0.99)
FINAL_LR_FRACTION = 0.1      # the cosine ends at 10% of the peak
WARMUP_STEPS = 30
WEIGHT_DECAY = 0.1
CLIP = 1.0
EVAL_BATCH = 64              # windows per forward pass when measuring the validation loss (no graph)
TINY_STEPS, TINY_CHECK = 60, 20   # tiny (unit-test) runs: the plumbing, in seconds
SAMPLE_ROWS, SAMPLE_CHARS = 8, 400
TEMPERATURE = 0.7            # the sample judged for readability
VALIDATION_BLOCKS = 50       # the validation split: this many pieces spread over the training text
PROBE_WINDOWS = 256          # validation windows per check (the judged number uses every held-out character)
SHAKESPEARE_VOCABULARY = 65  # distinct characters of Tiny Shakespeare: the head's width in profile_case


def lr_at(step: int, total_steps: int) -> float:
    """Linear warm-up over WARMUP_STEPS, then cosine from PEAK_LR to FINAL_LR_FRACTION * PEAK_LR at total_steps."""
    if step < WARMUP_STEPS:
        return PEAK_LR * (step + 1) / WARMUP_STEPS
    progress = (step - WARMUP_STEPS) / max(1, total_steps - WARMUP_STEPS)
    cosine = 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    return PEAK_LR * (FINAL_LR_FRACTION + (1 - FINAL_LR_FRACTION) * cosine)


def probe_loss(model, windows: np.ndarray) -> float:
    """Mean loss over the given (n, T + 1) windows of validation ids, EVAL_BATCH windows at a time."""
    import tinytorch as tt

    was_training = model.training
    model.eval()
    total = 0.0
    with tt.no_grad():
        for i in range(0, len(windows), EVAL_BATCH):
            w = windows[i:i + EVAL_BATCH]
            total += float(model.loss(w[:, :-1], w[:, 1:]).item()) * len(w)
    model.train(was_training)
    return total / len(windows)


def split_validation(text: str, size: int, blocks: int = VALIDATION_BLOCKS) -> tuple[str, str]:
    """(training text, validation text): `blocks` evenly spaced pieces of `size` characters in all.

    Spread out, not a tail: the held-out text continues the last play of the corpus, and a tail split
    would take that play's names and voices out of training (measured: a 50,000-character tail made the
    held-out loss 1.826 after 4,500 steps, where training on all of it gives about 1.65).
    """
    if size <= 0:
        return text, ""
    piece = max(1, size // blocks)
    stride = len(text) // blocks
    starts = [i * stride + (stride - piece) // 2 for i in range(blocks)]
    train = "".join(text[a:b] for a, b in zip([0] + [s + piece for s in starts], starts + [len(text)]))
    return train, "".join(text[s:s + piece] for s in starts)


class StreamScorer:
    """Next-character scores for the judge's held-out streams, one character per stream per call.

    The judge sends each character only after it has the scores for it; the KV cache (module 16) makes
    each call one position's work. `reset` starts new streams (a new window of context_length).
    """

    def __init__(self, model):
        self.model, self.caches = model, None

    def __call__(self, ids: np.ndarray, reset: bool) -> np.ndarray:
        import tinytorch as tt

        if reset or self.caches is None:
            self.caches = self.model.new_caches()
        with tt.no_grad():
            return self.model(ids[:, None], kv_caches=self.caches).data[:, -1]


def samples_of(model, tokenizer, rows: int, chars: int, temperature: float, seed: int) -> list[str]:
    newline = tokenizer.stoi.get("\n", 0)
    out = model.generate(np.full((rows, 1), newline), chars, temperature=temperature,
                         rng=np.random.default_rng(seed))
    return [tokenizer.decode(r[1:]) for r in out]


def gpt_chain(model) -> list:
    """The GPT as a chain of layers for module 14's profiler: its embedding stage, each block, the final
    LayerNorm, the head (the same modules, in the order GPT.forward calls them without a KV cache)."""
    import tinytorch as tt

    class Embeddings(tt.nn.Module):
        """Token embedding + position (embedding or encoding) + dropout of `model`: ids (N, T) -> (N, T, dim)."""

        def __init__(self):
            super().__init__()
            self.tok_emb, self.drop = model.tok_emb, model.drop
            self.pos = model.pos_emb if hasattr(model, "pos_emb") else model.pos_enc

        def forward(self, ids):
            ids = np.asarray(ids.data if isinstance(ids, tt.Tensor) else ids)
            x = self.tok_emb(ids)
            if hasattr(model, "pos_emb"):
                x = x + self.pos(np.arange(ids.shape[1]))                    # (T, D) broadcasts over N
            else:
                x = self.pos(x)
            return self.drop(x)

    return [Embeddings(), *model.blocks, model.ln_f, model.head]


def profile_case(ctx) -> dict:
    """What the judge profiles when a run is too slow (grading/profiling.py): the GPT run() trains (for Tiny
    Shakespeare's vocabulary), as a chain (gpt_chain), in training mode, one batch of
    BATCH random windows (seeded; no data needed) and the training loss (module 05's cross-entropy)."""
    import tinytorch as tt
    from tinytorch.networks import cross_entropy

    tt.manual_seed(ctx.seed)
    shape = TINY_MODEL if ctx.tiny else MODEL
    vocab = SHAKESPEARE_VOCABULARY
    model = build_gpt(vocab, shape)
    model.train()
    rng = np.random.default_rng(ctx.seed)
    ids = rng.integers(0, vocab, (BATCH, shape["context_length"] + 1))
    x, y = ids[:, :-1], ids[:, 1:]
    return {"layers": gpt_chain(model), "input": tt.Tensor(x), "loss": lambda logits: cross_entropy(logits, y)}


def build_gpt(vocab_size: int, shape: dict):
    """The GPT of this milestone (one home for run() and profile_case())."""
    from tinytorch.tinygpt import GPT
    return GPT(vocab_size, **shape)


def run(ctx) -> dict:
    import tinytorch as tt
    from tinytorch.tinygpt import CharTokenizer, random_windows, readability, words_of

    run_start = time.perf_counter()
    tt.manual_seed(ctx.seed)
    rng = np.random.default_rng(ctx.seed)
    plan = ctx.schedule
    text, corpus = ctx.load_text()                  # the training 90% of the corpus; the rest stays with the judge
    train_text, val_text = split_validation(text, min(plan.get("validation", 0), len(text) // 10))
    tokenizer = CharTokenizer.from_text(text)
    train_ids, val_ids = tokenizer.encode(train_text), tokenizer.encode(val_text)
    shape = TINY_MODEL if ctx.tiny else MODEL
    model = build_gpt(tokenizer.vocab_size, shape)
    params = model.num_parameters()
    T = shape["context_length"]
    total_steps = TINY_STEPS if ctx.tiny else plan.get("steps", 3000)
    check_every = TINY_CHECK if ctx.tiny else plan.get("check_every", 0)
    min_steps = 0 if ctx.tiny else plan.get("min_steps", 0)
    if corpus != "tinyshakespeare" and not ctx.tiny:
        # the stop bar is calibrated on Tiny Shakespeare; another corpus (pydoc_data: much lower losses)
        # runs the whole schedule rather than stopping on a bar that means something else there
        plan = {k: v for k, v in plan.items() if k != "stop_bar"}
        ctx.log(f"corpus {corpus}: the stop rule is calibrated on Tiny Shakespeare, so all {total_steps} steps run")
    ctx.log(f"corpus {corpus}: {len(train_text):,} training and {len(val_text):,} validation characters, "
            f"{tokenizer.vocab_size} distinct")
    ctx.log(f"GPT: {shape['layers']} blocks, {shape['heads']} heads, width {shape['dim']}, context {T}: "
            f"{params:,} parameters; {total_steps} steps of {BATCH} x {T} characters, AdamW, peak lr {PEAK_LR}")

    # Decay everything that multiplies (matrices, embeddings); not biases and LayerNorm gains.
    decay = [p for name, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for name, p in model.named_parameters() if p.ndim < 2]
    optimizer = tt.optim.AdamW([{"params": decay, "weight_decay": WEIGHT_DECAY},
                                {"params": no_decay, "weight_decay": 0.0}], lr=PEAK_LR, betas=BETAS)
    n_windows = max(1, (len(val_ids) - 1) // T)
    probe_starts = np.linspace(0, n_windows - 1, min(PROBE_WINDOWS, n_windows)).astype(np.int64) * T
    probe = val_ids[probe_starts[:, None] + np.arange(T + 1)[None, :]]
    known_words = set(words_of(train_text))
    history: list[dict] = []
    recent: list[float] = []
    stopped_at = None
    params_list = model.parameters()
    start = time.perf_counter()
    model.train()
    step, tokens = 0, 0
    for step in range(1, total_steps + 1):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step - 1, total_steps)
        x, y = random_windows(train_ids, BATCH, T, rng)
        loss = model.loss(x, y)
        optimizer.zero_grad()
        loss.backward()
        tt.optim.clip_grad_norm_(params_list, CLIP)
        optimizer.step()
        value = float(loss.item())
        if not math.isfinite(value):
            raise FloatingPointError(f"the training loss became {value} at step {step}; check the backward rules "
                                     "of softmax/log_softmax/layer_norm and the optimizer")
        recent.append(value)
        tokens += BATCH * T
        if check_every and (step % check_every == 0 or step == total_steps):
            entry = {"step": step, "train_loss": float(np.mean(recent)), "valid_loss": probe_loss(model, probe),
                     "lr": optimizer.param_groups[0]["lr"]}
            recent = []
            check = step >= min_steps and step < total_steps and entry["valid_loss"] <= plan.get(
                "stop_bar", {}).get("val_loss", {}).get("value", -1.0)
            if check:   # samples cost a few seconds: only when the loss part of the stop bar already holds
                entry["readability"] = readability("\n".join(samples_of(model, tokenizer, 2, 200, TEMPERATURE,
                                                                        ctx.seed + step)), known_words)
                model.train()
            history.append(entry)
            ctx.log(f"  step {step:5d}/{total_steps}  {time.perf_counter() - start:5.0f} s  train "
                    f"{entry['train_loss']:.3f}  validation {entry['valid_loss']:.3f}  lr {entry['lr']:.2e}"
                    + (f"  readability {entry['readability']:.2f}" if "readability" in entry else ""))
            if check and stop_bar_met(plan, {"val_loss": entry["valid_loss"], "readability": entry["readability"]}):
                stopped_at = {"step": step, "of_steps": total_steps}
                ctx.log(f"stop rule met at step {step} of {total_steps}: {plan['stop_bar']}")
                break
    train_time = time.perf_counter() - start

    # The judge scores every held-out character, streaming it one character per stream per round.
    model.eval()
    t0 = time.perf_counter()
    ctx.evaluate_text(StreamScorer(model), tokenizer.chars)
    eval_time = time.perf_counter() - t0
    t0 = time.perf_counter()
    n_chars = SAMPLE_CHARS if not ctx.tiny else 80
    samples = samples_of(model, tokenizer, SAMPLE_ROWS, n_chars, TEMPERATURE, ctx.seed + 1)
    sample_time = time.perf_counter() - t0
    ctx.log("sample:\n" + samples[0][:400])
    return {"history": history, "samples": samples, "stopped_at": stopped_at,
            "details": {"corpus": corpus, "parameters": int(params),
                        "model": {**shape, "vocab_size": tokenizer.vocab_size}, "steps": step,
                        "steps_planned": total_steps, "characters_seen": int(tokens),
                        "epochs": round(tokens / len(train_ids), 3), "train_seconds": round(train_time, 1),
                        "eval_seconds": round(eval_time, 1), "sample_seconds": round(sample_time, 1),
                        "seconds_per_step": round(train_time / max(step, 1), 4),
                        "temperature": TEMPERATURE, "batch": BATCH, "peak_lr": PEAK_LR,
                        "total_seconds": round(time.perf_counter() - run_start, 1)}}
