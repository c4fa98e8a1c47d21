"""Module 09 - gradient rules behind the layers of modules 04, 05 and 07.

linear, layer_norm, mse_loss, cross_entropy (with label smoothing), embedding, scaled dot-product
attention (causal and padding masks), multi-head attention (input and every parameter), dropout and
positional encoding: each backward() is checked against central finite differences in float64 at
every input element (`tinytorch.testing.gradcheck`).
"""
import numpy as np
import pytest

import tinytorch as tt
from tinytorch.attention import MultiHeadAttention, PositionalEncoding, embedding, scaled_dot_product_attention
from tinytorch.layers import Dropout, Linear, linear
from tinytorch.networks import MLP, LayerNorm, Residual, cross_entropy, layer_norm, mse_loss
from tinytorch.tensor import Tensor
from tinytorch.testing import assert_close, gradcheck


@pytest.fixture(autouse=True)
def _seed():
    tt.manual_seed(0)


def rand(*shape, seed=1):
    return np.random.default_rng(seed).standard_normal(shape)


def with_parameters(module, names):
    """fn(x, *params) running `module` with its parameters `names` replaced by gradcheck's tensors."""
    def fn(x, *params):
        for name, p in zip(names, params):
            *path, attr = name.split(".")
            owner = module
            for part in path:
                owner = getattr(owner, part)
            setattr(owner, attr, p)
        return module(x)
    return fn


def check_module(module, x, name):
    """gradcheck of `module(x)` with respect to x and every parameter (module run in float64)."""
    module.to(np.float64)
    named = module.named_parameters()
    gradcheck(with_parameters(module, [n for n, _ in named]), x, *[p.data.copy() for _, p in named], name=name)


# ---- module 04 ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(3, 4), (2, 3, 4), (4,)])
def test_linear_gradients(shape):
    gradcheck(linear, rand(*shape), rand(5, 4, seed=2), rand(5, seed=3), name=f"linear on {shape}")
    gradcheck(lambda x, w: linear(x, w), rand(*shape), rand(2, 4, seed=2), name="linear without bias")


def test_linear_module_gradients():
    check_module(Linear(4, 3), rand(2, 4), "Linear")


def test_dropout_gradients():
    gradcheck(Dropout(0.5).eval(), rand(3, 4), name="Dropout in eval mode (identity)")
    x = Tensor(np.ones((50, 40)), requires_grad=True)
    y = Dropout(0.3)(x)
    y.sum().backward()
    assert_close(x.grad, y.data, atol=0, rtol=0,
                 what="training-mode dropout: the gradient is the same mask * 1/(1-p) as the forward pass")


# ---- module 05 ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(4, 6), (2, 3, 5)])
def test_layer_norm_gradients(shape):
    D = shape[-1]
    gradcheck(layer_norm, rand(*shape) * 2 + 1, rand(D, seed=2), rand(D, seed=3), name=f"layer_norm {shape}")
    gradcheck(lambda x: layer_norm(x), rand(*shape), name="layer_norm without affine parameters")


def test_layer_norm_module_and_residual_gradients():
    check_module(LayerNorm(5), rand(3, 5), "LayerNorm")
    check_module(Residual(MLP([4, 6, 4], activation="tanh")), rand(2, 4), "Residual(MLP)")


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss_gradients(reduction):
    gradcheck(lambda p, t: mse_loss(p, t, reduction), rand(3, 4), rand(3, 4, seed=2), name=f"mse_loss {reduction}")


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_gradients(smoothing, reduction):
    targets = np.array([2, 0, 3, 3, 1])
    gradcheck(lambda z, t: cross_entropy(z, t, label_smoothing=smoothing, reduction=reduction),
              rand(5, 4) * 2, targets, name=f"cross_entropy smoothing={smoothing} reduction={reduction}")


def test_cross_entropy_sequence_gradients():
    targets = np.array([[0, 4, 2], [1, 1, 3]])
    gradcheck(lambda z, t: cross_entropy(z, t, label_smoothing=0.2), rand(2, 3, 5), targets,
              name="cross_entropy (N, T, C)")


def test_cross_entropy_gradient_formula():
    # d/dz mean CE = (softmax(z) - q) / N, q the (smoothed) target distribution
    z = Tensor(rand(4, 3), dtype=np.float64, requires_grad=True)
    t, eps = np.array([0, 2, 1, 2]), 0.1
    cross_entropy(z, t, label_smoothing=eps).backward()
    e = np.exp(z.data - z.data.max(1, keepdims=True))
    q = np.full((4, 3), eps / 3)
    q[np.arange(4), t] += 1 - eps
    assert_close(z.grad, (e / e.sum(1, keepdims=True) - q) / 4, atol=1e-12, what="cross-entropy gradient")


# ---- module 07 ---------------------------------------------------------------------------------------
def test_embedding_gradients_accumulate_repeated_ids():
    ids = np.array([[1, 3, 1], [0, 1, 4]])          # id 1 three times
    gradcheck(lambda w: embedding(ids, w), rand(5, 3), name="embedding")
    w = Tensor(rand(5, 3), dtype=np.float64, requires_grad=True)
    embedding(ids, w).sum().backward()
    assert_close(w.grad.data[:, 0], [1, 3, 0, 1, 1], atol=0, what="row gradient = number of times the id appears")


def test_sdpa_gradients():
    q, k, v = rand(2, 3, 4), rand(2, 5, 4, seed=2), rand(2, 5, 3, seed=3)
    gradcheck(scaled_dot_product_attention, q, k, v, name="scaled_dot_product_attention")


def test_sdpa_causal_gradients():
    q, k, v = rand(2, 4, 3), rand(2, 4, 3, seed=2), rand(2, 4, 3, seed=3)
    gradcheck(lambda q, k, v: scaled_dot_product_attention(q, k, v, causal=True), q, k, v, name="causal attention")


def test_sdpa_padding_mask_gradients():
    keep = np.array([[True, True, True, True], [True, True, False, False]])[:, None, :]   # (N, 1, S)
    q, k, v = rand(2, 3, 3), rand(2, 4, 3, seed=2), rand(2, 4, 3, seed=3)
    gradcheck(lambda q, k, v: scaled_dot_product_attention(q, k, v, mask=keep, causal=False), q, k, v,
              name="attention with a padding mask")
    K = Tensor(k, dtype=np.float64, requires_grad=True)
    V = Tensor(v, dtype=np.float64, requires_grad=True)
    scaled_dot_product_attention(Tensor(q, dtype=np.float64), K, V, mask=keep).sum().backward()
    assert (K.grad.data[1, 2:] == 0).all() and (V.grad.data[1, 2:] == 0).all(), (
        "padded keys and values must get exactly zero gradient")


@pytest.mark.parametrize("causal", [False, True])
def test_multi_head_attention_gradients(causal):
    check_module(MultiHeadAttention(8, 2, causal=causal), rand(2, 3, 8), f"MultiHeadAttention causal={causal}")


def test_positional_encoding_gradient_is_identity():
    gradcheck(PositionalEncoding(4, max_len=10), rand(2, 3, 4), name="PositionalEncoding")
