"""Module 16 - TinyGPT: tokenizer, causal transformer, KV-cached sampling, training on text."""
from __future__ import annotations

import time

import numpy as np
import pytest

import tinytorch as tt
from tinytorch.tinygpt import (GPT, CharTokenizer, evaluate_loss, random_windows, readability, sample_next,
                               train_steps, words_of)


def small_gpt(seed=0, **kw):
    tt.manual_seed(seed)
    args = dict(vocab_size=13, context_length=16, dim=32, layers=2, heads=4)
    args.update(kw)
    return GPT(**args)


# ---- tokenizer --------------------------------------------------------------------------------------------
def test_16_tokenizer_vocab_is_sorted_unique_characters():
    tok = CharTokenizer.from_text("hello world")
    assert tok.chars == sorted(set("hello world"))
    assert tok.vocab_size == len(tok) == 8
    np.testing.assert_array_equal(tok.encode("lo w"), [tok.chars.index(c) for c in "lo w"])


def test_16_tokenizer_round_trip_including_unicode():
    text = "To be, or not to be: that is the question.\nAy, there's the rub — ü!"
    tok = CharTokenizer.from_text(text)
    ids = tok.encode(text)
    assert ids.dtype == np.int64 and ids.shape == (len(text),)
    assert ids.min() >= 0 and ids.max() < tok.vocab_size
    assert tok.decode(ids) == text
    assert tok.decode(list(ids[:5])) == text[:5]
    assert tok.encode("").shape == (0,)
    # readability (given) judges generated text by its words: decoded ids of known words score 1
    assert words_of(tok.decode(tok.encode("Ay, there's the rub"))) == ["ay", "there", "s", "the", "rub"]
    assert readability(tok.decode(tok.encode("the question rub")), text) == 1.0
    assert readability("thou art my lrod", "Thou art my lord") == 0.75
    assert readability("", "anything") == 0.0


def test_16_tokenizer_ids_follow_vocabulary_order():
    tok = CharTokenizer.from_text("cab")
    np.testing.assert_array_equal(tok.encode("abcab"), [0, 1, 2, 0, 1])


def test_16_tokenizer_unknown_character_is_an_error_naming_it():
    tok = CharTokenizer.from_text("abc")
    with pytest.raises(ValueError, match=r"'z'.*position 2"):
        tok.encode("abz")
    with pytest.raises(ValueError, match="not in the vocabulary"):
        tok.encode("\u20ac")  # a code point beyond the table


def test_16_tokenizer_decode_rejects_bad_ids():
    tok = CharTokenizer.from_text("abc")
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        tok.decode([0, 3])
    with pytest.raises(ValueError, match="1-D"):
        tok.decode(np.zeros((2, 2), dtype=np.int64))
    assert tok.decode(np.array([2, 0, 1])) == "cab"


def test_16_tokenizer_config_round_trip():
    tok = CharTokenizer.from_text("the quick brown fox")
    again = CharTokenizer.from_config(tok.to_config())
    assert again.chars == tok.chars
    np.testing.assert_array_equal(again.encode("the fox"), tok.encode("the fox"))


# ---- the model --------------------------------------------------------------------------------------------
def test_16_gpt_shapes_and_parameter_count():
    V, T, D, L = 13, 16, 32, 2
    model = small_gpt()
    ids = np.random.default_rng(0).integers(0, V, (3, 10))
    logits = model(ids)
    assert logits.shape == (3, 10, V) and logits.dtype == np.float32
    per_block = 2 * (2 * D) + (D * 3 * D + 3 * D) + (D * D + D) + (D * 4 * D + 4 * D) + (4 * D * D + D)
    expected = V * D + T * D + L * per_block + 2 * D + (D * V + V)
    assert model.num_parameters() == expected == tt.nn.count_parameters(model)


def test_16_gpt_config_rebuilds_the_same_architecture():
    model = small_gpt()
    clone = GPT(**model.config)
    clone.load_state_dict(model.state_dict())
    ids = np.arange(8)[None] % 13
    np.testing.assert_allclose(clone(ids).data, model(ids).data, rtol=1e-6, atol=1e-6)


def test_16_gpt_rejects_too_long_inputs_and_wrong_rank():
    model = small_gpt()
    with pytest.raises(ValueError, match="context length 16"):
        model(np.zeros((1, 17), dtype=np.int64))
    with pytest.raises(ValueError, match=r"\(N, T\)"):
        model(np.zeros(5, dtype=np.int64))
    assert model(np.zeros((1, 16), dtype=np.int64)).shape == (1, 16, 13)   # exactly the context fits


def test_16_causal_masking_future_tokens_do_not_change_past_logits():
    model = small_gpt()
    rng = np.random.default_rng(1)
    ids = rng.integers(0, 13, (2, 16))
    changed = ids.copy()
    changed[:, 9:] = (changed[:, 9:] + 1 + rng.integers(0, 11, changed[:, 9:].shape)) % 13
    with tt.no_grad():
        a, b = model(ids).data, model(changed).data
    np.testing.assert_allclose(a[:, :9], b[:, :9], rtol=1e-5, atol=1e-6)   # positions 0..8 cannot see 9..
    assert np.abs(a[:, 9:] - b[:, 9:]).max() > 1e-4                         # later positions do see them


@pytest.mark.parametrize("positional", ["learned", "sinusoidal"])
def test_16_kv_cache_gives_the_same_logits_as_a_full_forward(positional):
    model = small_gpt(positional=positional)
    ids = np.random.default_rng(2).integers(0, 13, (2, 12))
    with tt.no_grad():
        full = model(ids).data
        caches = model.new_caches()
        first = model(ids[:, :7], kv_caches=caches).data
        steps = [model(ids[:, t:t + 1], kv_caches=caches).data for t in range(7, 12)]
    assert caches[0].length == 12
    np.testing.assert_allclose(first, full[:, :7], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full[:, 7:], rtol=1e-4, atol=1e-5)


def test_16_cached_greedy_generation_equals_uncached():
    model = small_gpt(seed=3)
    prompt = np.array([1, 5, 2, 7])
    cached = model.generate(prompt, 12, temperature=0, use_cache=True)     # 4 + 12 = 16 = context
    uncached = model.generate(prompt, 12, temperature=0, use_cache=False)
    np.testing.assert_array_equal(cached, uncached)
    assert cached.shape == (16,)
    np.testing.assert_array_equal(cached[:4], prompt)


def test_16_generate_beyond_the_context_and_in_batches():
    model = small_gpt()
    prompts = np.array([[1, 2, 3], [4, 5, 6]])
    out = model.generate(prompts, 40, temperature=1.0, top_k=5, rng=np.random.default_rng(0))
    assert out.shape == (2, 43) and out.dtype == np.int64
    np.testing.assert_array_equal(out[:, :3], prompts)
    assert out.min() >= 0 and out.max() < 13
    again = model.generate(prompts, 40, temperature=1.0, top_k=5, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(out, again)                             # same rng -> same text
    assert model.training                                                 # mode restored


def test_16_generate_validates_its_arguments():
    model = small_gpt()
    with pytest.raises(ValueError, match="temperature"):
        model.generate([1, 2], 3, temperature=-1)
    with pytest.raises(ValueError, match="top_k"):
        model.generate([1, 2], 3, top_k=0)
    with pytest.raises(ValueError, match="prompt_ids"):
        model.generate(np.array([], dtype=np.int64), 3)
    assert model.generate([1, 2], 0).tolist() == [1, 2]                   # nothing new asked for
    assert model.generate([1, 2], 1, temperature=0).shape == (3,)


def test_16_top_k_one_is_greedy():
    model = small_gpt(seed=4)
    prompt = np.array([3, 1, 4])
    greedy = model.generate(prompt, 10, temperature=0)
    top1 = model.generate(prompt, 10, temperature=1.5, top_k=1, rng=np.random.default_rng(9))
    np.testing.assert_array_equal(top1, greedy)


def test_16_sampling_follows_softmax_of_logits_over_temperature():
    logits = np.log(np.array([[0.5, 0.3, 0.15, 0.05]]))
    rng = np.random.default_rng(0)
    draws = np.array([sample_next(np.repeat(logits, 4000, axis=0), 1.0, None, rng)]).ravel()
    freq = np.bincount(draws, minlength=4) / draws.size
    np.testing.assert_allclose(freq, [0.5, 0.3, 0.15, 0.05], atol=0.03)


def test_16_temperature_sharpens_or_flattens_the_distribution():
    logits = np.repeat(np.log(np.array([[0.5, 0.3, 0.15, 0.05]])), 5000, axis=0)
    rng = np.random.default_rng(1)
    cold = np.bincount(sample_next(logits, 0.3, None, rng), minlength=4) / 5000
    hot = np.bincount(sample_next(logits, 5.0, None, rng), minlength=4) / 5000
    assert cold[0] > 0.8                        # low temperature: nearly always the favourite
    assert hot.max() - hot.min() < 0.15         # high temperature: close to uniform
    np.testing.assert_array_equal(sample_next(logits[:3], 0.0), [0, 0, 0])   # 0 = greedy


def test_16_top_k_only_samples_the_k_best():
    logits = np.repeat(np.array([[2.0, 0.5, 1.5, -1.0, 1.0]]), 3000, axis=0)
    draws = sample_next(logits, 1.0, 2, np.random.default_rng(2))
    assert set(np.unique(draws)) == {0, 2}


# ---- training -----------------------------------------------------------------------------------------------
def test_16_random_windows_are_shifted_contiguous_slices():
    ids = np.arange(100)
    x, y = random_windows(ids, 8, 10, np.random.default_rng(0))
    assert x.shape == y.shape == (8, 10) and x.dtype == np.int64
    np.testing.assert_array_equal(y, x + 1)                   # the target is the next token
    np.testing.assert_array_equal(np.diff(x, axis=1), 1)      # contiguous
    assert x.min() >= 0 and y.max() <= 99
    with pytest.raises(ValueError, match="at least"):
        random_windows(np.arange(5), 2, 10)


def test_16_loss_of_an_untrained_uniform_model_is_log_vocab():
    model = small_gpt()
    model.head.weight.data[...] = 0
    model.head.bias.data[...] = 0
    ids = np.random.default_rng(0).integers(0, 13, 200)
    assert abs(evaluate_loss(model, ids, batch_size=4) - np.log(13)) < 1e-5
    x, y = random_windows(ids, 4, 16)
    assert abs(model.loss(x, y).item() - np.log(13)) < 1e-5


def test_16_every_parameter_gets_a_gradient():
    model = small_gpt()
    x, y = random_windows(np.random.default_rng(0).integers(0, 13, 300), 4, 16, np.random.default_rng(1))
    model.loss(x, y).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.shape == p.shape, name
        assert np.abs(p.grad.data).sum() > 0, f"{name} got an all-zero gradient"


def test_16_overfits_a_tiny_text():
    """A model that cannot memorise 50 characters has a bug in its wiring (mask, residuals, loss)."""
    text = "first citizen: we are accounted poor citizens.\n" * 8
    tok = CharTokenizer.from_text(text)
    ids = tok.encode(text)
    tt.manual_seed(0)
    model = GPT(tok.vocab_size, context_length=32, dim=32, layers=1, heads=2)
    opt = tt.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    losses = train_steps(model, opt, ids, steps=120, batch_size=8, rng=np.random.default_rng(0))
    assert losses[-1] < 0.25 and losses[-1] < losses[0] / 10, (
        f"after 120 steps on a repeated sentence the loss should fall from ~ln(vocab) to < 0.25; "
        f"got {losses[0]:.3f} -> {losses[-1]:.3f}")
    out = tok.decode(model.generate(tok.encode("first "), 40, temperature=0))
    assert out.startswith("first citizen: we are accounted poor"), out


def test_16_train_steps_respects_a_time_budget_and_schedule():
    model = small_gpt()
    opt = tt.optim.AdamW(model.parameters(), lr=1.0)
    seen = []
    ids = np.random.default_rng(0).integers(0, 13, 500)
    start = time.perf_counter()
    train_steps(model, opt, ids, seconds=0.5, batch_size=2, lr_at=lambda p: 1e-3 * (1 - p),
                on_step=lambda step, loss: seen.append(opt.param_groups[0]["lr"]))
    assert time.perf_counter() - start < 5.0, "train_steps(seconds=0.5) must stop soon after its time budget"
    assert seen and all(0 < lr <= 1e-3 for lr in seen) and seen == sorted(seen, reverse=True)


def test_16_gpt_deploys_as_an_artifact(tmp_path):
    from tinytorch.deployment import load_artifact, save_artifact
    model = small_gpt(positional="sinusoidal")
    save_artifact(model, tmp_path / "gpt.npz", input_shape=(None,), input_dtype="int64", task="raw",
                  extra={"tokenizer": CharTokenizer.from_text("abcdefghijklm").to_config()})
    art = load_artifact(tmp_path / "gpt.npz")
    assert isinstance(art.model, GPT) and art.model.config == model.config
    ids = np.array([[1, 2, 3, 4, 5]])
    np.testing.assert_allclose(art.forward(ids), model.eval()(ids).data, rtol=1e-5, atol=1e-6)
    tok = CharTokenizer.from_config(art.metadata["extra"]["tokenizer"])
    assert tok.vocab_size == 13
