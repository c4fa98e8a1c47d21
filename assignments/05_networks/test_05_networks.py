"""Module 05 - Networks: MLP, LayerNorm, Residual, init, counting, FLOPs, losses.

Forward passes only (no .backward(): autograd is module 09). Expected values are computed by hand
with NumPy next to each test.
"""
import numpy as np
import pytest

import tinytorch as tt
from tinytorch.layers import GELU, Dropout, Linear, Module, Parameter, ReLU, Sequential, Tanh
from tinytorch.networks import (MLP, CrossEntropyLoss, LayerNorm, MSELoss, Residual, count_parameters,
                                cross_entropy, init, layer_norm, model_bytes, model_flops, mse_loss)
from tinytorch.tensor import Tensor, TensorError
from tinytorch.testing import assert_close


@pytest.fixture(autouse=True)
def _seed():
    tt.manual_seed(0)


def rand(*shape, seed=1, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def np_log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


# ---- MLP ---------------------------------------------------------------------------------------------
def test_mlp_structure():
    model = MLP([784, 128, 64, 10])
    kinds = [type(layer).__name__ for layer in model]
    assert kinds == ["Linear", "ReLU", "Linear", "ReLU", "Linear"], (
        f"an activation after every Linear except the last (the output is logits), got {kinds}")
    assert [(l.in_features, l.out_features) for l in model if isinstance(l, Linear)] == [(784, 128), (128, 64), (64, 10)]
    assert [type(l).__name__ for l in MLP([4, 8, 2], activation="gelu")] == ["Linear", "GELU", "Linear"]
    assert [type(l).__name__ for l in MLP([4, 8, 2], activation=Tanh)] == ["Linear", "Tanh", "Linear"]
    assert [type(l).__name__ for l in MLP([4, 8, 8, 2], dropout=0.1)] == [
        "Linear", "ReLU", "Dropout", "Linear", "ReLU", "Dropout", "Linear"]
    assert list(MLP([3, 2]).state_dict()) == ["0.weight", "0.bias"], "a single Linear for two sizes"


def test_mlp_forward_matches_numpy():
    model = MLP([4, 5, 3], activation=GELU())
    x = rand(6, 4)
    h = x @ model[0].weight.data.T + model[0].bias.data
    h = 0.5 * h * (1 + np.tanh(np.sqrt(2 / np.pi) * (h + 0.044715 * h ** 3)))
    expected = h @ model[2].weight.data.T + model[2].bias.data
    assert_close(model(Tensor(x)), expected, atol=1e-5, what="MLP([4, 5, 3], GELU) forward")
    assert model[1] is not MLP([4, 5, 3], activation=GELU())[1]


@pytest.mark.given   # passes with no work in this module: checks code the course gives
def test_mlp_rejects_bad_sizes_and_activations():
    with pytest.raises(TensorError, match="at least"):
        MLP([10])
    with pytest.raises(TensorError, match="unknown activation"):
        MLP([2, 2, 2], activation="swish")


# ---- LayerNorm ---------------------------------------------------------------------------------------
def np_layer_norm(x, w, b, eps=1e-5):
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w + b


@pytest.mark.parametrize("shape", [(4, 6), (2, 3, 6), (6,)])
def test_layer_norm_matches_numpy(shape):
    ln = LayerNorm(6)
    ln.weight.data[...] = rand(6, seed=2)
    ln.bias.data[...] = rand(6, seed=3)
    x = rand(*shape) * 3 + 1
    out = ln(Tensor(x))
    assert out.shape == shape and out.dtype == np.float32
    assert_close(out, np_layer_norm(x, ln.weight.data, ln.bias.data), atol=1e-5,
                 what=f"LayerNorm on {shape}: (x - mean) / sqrt(var + eps) * weight + bias over the last axis")


def test_layer_norm_default_output_is_standardised():
    x = rand(8, 32) * 5 - 2
    out = LayerNorm(32)(Tensor(x)).data
    assert_close(out.mean(axis=-1), np.zeros(8), atol=1e-5, what="each row's mean after LayerNorm")
    assert_close(out.var(axis=-1), np.ones(8), atol=1e-3, what="each row's (biased) variance after LayerNorm")
    assert [n for n, _ in LayerNorm(32).named_parameters()] == ["weight", "bias"]
    np.testing.assert_array_equal(LayerNorm(3).weight.data, np.ones(3, dtype=np.float32), err_msg="weight starts at 1")


def test_layer_norm_is_stable_for_large_offsets():
    x = 1e4 + rand(4, 16)          # a large common offset, small spread
    out = LayerNorm(16)(Tensor(x)).data
    x64 = x.astype(np.float64)
    assert_close(out, np_layer_norm(x64, 1.0, 0.0), atol=2e-2,
                 what="subtract the mean before squaring (var = E[(x - mean)^2]), else float32 cancels")


def test_layer_norm_records_the_op_contract_of_autograd():
    x = Tensor(rand(3, 5), requires_grad=True)
    ln = LayerNorm(5)
    out = ln(x)
    ctx = out._ctx
    assert ctx is not None and ctx.op == "layer_norm", "record the op as 'layer_norm' (autograd.py has its rule)"
    assert ctx.parents[0] is x and ctx.parents[1] is ln.weight and ctx.parents[2] is ln.bias, (
        "parents must be (x, weight, bias)")
    assert vars(ctx.saved).keys() == {"xhat", "rstd"}, f"layer_norm saves xhat and rstd, got {ctx.saved}"
    xhat, rstd = ctx.saved.xhat, ctx.saved.rstd
    assert xhat.shape == (3, 5) and rstd.shape == (3, 1), (
        f"saved must be (xhat of x's shape, rstd of shape (..., 1)), got {xhat.shape} and {rstd.shape}")
    assert_close(xhat, np_layer_norm(x.data, 1.0, 0.0), atol=1e-5, what="saved xhat")


def test_layer_norm_preserves_float64_and_checks_shape():
    x = Tensor(rand(2, 4, dtype=np.float64), dtype=np.float64)
    assert layer_norm(x).dtype == np.float64, "float64 in must give float64 out (gradcheck runs in float64)"
    assert_close(layer_norm(x), np_layer_norm(x.data, 1.0, 0.0), atol=1e-12, what="functional layer_norm")
    with pytest.raises(TensorError, match="last dimension must be 5"):
        LayerNorm(5)(Tensor(rand(2, 4)))


# ---- Residual ----------------------------------------------------------------------------------------
def test_residual_adds_the_input():
    block = Sequential(Linear(4, 4), ReLU())
    x = rand(3, 4)
    expected = x + np.maximum(x @ block[0].weight.data.T + block[0].bias.data, 0)
    assert_close(Residual(block)(Tensor(x)), expected, atol=1e-6, what="Residual: x + block(x)")
    assert [n for n, _ in Residual(block).named_parameters()] == ["block.0.weight", "block.0.bias"]
    with pytest.raises(TensorError, match=r"\(3, 4\) to \(3, 2\)"):
        Residual(Linear(4, 2))(Tensor(x))


# ---- init --------------------------------------------------------------------------------------------
def test_init_functions_work_in_place():
    w = Parameter(np.zeros((200, 300)))
    data = w.data
    assert init.xavier_uniform_(w) is w, "init functions return their argument"
    assert w.data is data, "init must write into the existing array (in place), keeping the Parameter"
    assert w.dtype == np.float32
    init.ones_(w)
    assert (w.data == 1).all()
    init.zeros_(w)
    assert (w.data == 0).all()


@pytest.mark.parametrize("fn, kwargs, kind, spread", [
    (init.xavier_uniform_, {}, "uniform", np.sqrt(6 / (300 + 200))),
    (init.xavier_normal_, {}, "normal", np.sqrt(2 / (300 + 200))),
    (init.kaiming_uniform_, {}, "uniform", np.sqrt(2) * np.sqrt(3 / 300)),
    (init.kaiming_normal_, {}, "normal", np.sqrt(2) / np.sqrt(300)),
    (init.kaiming_normal_, {"mode": "fan_out"}, "normal", np.sqrt(2) / np.sqrt(200)),
])
def test_init_scales(fn, kwargs, kind, spread):
    # weight (out=200, in=300): fan_in = 300, fan_out = 200
    w = fn(Parameter(np.zeros((200, 300))), **kwargs).data
    if kind == "uniform":
        assert np.abs(w).max() <= spread + 1e-6, f"{fn.__name__}: values must lie in +-{spread:.4f}"
        assert np.abs(w).max() > 0.95 * spread, f"{fn.__name__}: values should fill +-{spread:.4f}"
    else:
        assert abs(w.std() - spread) < 0.03 * spread, f"{fn.__name__}: std should be {spread:.4f}, got {w.std():.4f}"
    assert abs(w.mean()) < 0.05 * spread, f"{fn.__name__}: mean should be 0, got {w.mean()}"


def test_init_is_reproducible_and_checks_dims():
    tt.manual_seed(3)
    a = init.kaiming_uniform_(Parameter(np.zeros((4, 5)))).data.copy()
    tt.manual_seed(3)
    b = init.kaiming_uniform_(Parameter(np.zeros((4, 5)))).data
    np.testing.assert_array_equal(a, b, err_msg="init must draw from tinytorch.get_rng()")
    with pytest.raises(TensorError, match="at least 2 dimensions"):
        init.xavier_uniform_(Parameter(np.zeros(5)))
    conv_like = init.kaiming_normal_(Parameter(np.zeros((8, 3, 3, 3)))).data   # fan_in = 3 * 3 * 3 = 27
    assert abs(conv_like.std() - np.sqrt(2 / 27)) < 0.1 * np.sqrt(2 / 27)


# ---- counting ----------------------------------------------------------------------------------------
def test_count_parameters_and_bytes():
    model = MLP([784, 128, 10])
    expected = 784 * 128 + 128 + 128 * 10 + 10
    assert count_parameters(model) == expected, f"expected {expected} parameters, got {count_parameters(model)}"
    assert model_bytes(model) == 4 * expected, "float32 numbers take 4 bytes each"
    assert model_bytes(model.to(np.float64)) == 8 * expected
    tied = Sequential(Linear(3, 3), Linear(3, 3))
    tied[1].weight = tied[0].weight
    assert count_parameters(tied) == 9 + 3 + 3, "a shared weight counts once"
    assert count_parameters(tied) * 4 == model_bytes(tied)


class Scale(Module):
    """A custom layer with its own matrix product, reporting it through the flops hook."""

    def __init__(self, n):
        self.m = Parameter(np.eye(n))

    def forward(self, x):
        return x @ self.m

    def flops(self, input_shape, output_shape):
        return 2 * int(np.prod(input_shape)) * self.m.shape[1]


def test_model_flops_counts_matrix_products():
    model = MLP([784, 128, 10])
    expected = 2 * (784 * 128 + 128 * 10)
    assert model_flops(model, (1, 784)) == expected, (
        f"Linear(in, out) on (N, in) costs 2*N*in*out FLOPs (a multiply-add is 2); expected {expected}")
    assert model_flops(model, (32, 784)) == 32 * expected, "FLOPs grow linearly with the batch"
    assert model_flops(Linear(8, 4), (2, 5, 8)) == 2 * 10 * 8 * 4, "leading dims all multiply the rows"
    assert model_flops(Sequential(ReLU(), Dropout(0.5)), (4, 4)) == 0, "element-wise layers count 0"
    model = Sequential(Residual(Linear(6, 6)), Scale(6))
    assert model_flops(model, (3, 6)) == 2 * 3 * 6 * 6 + 2 * 3 * 6 * 6, "Residual's block and custom hooks count"
    per_layer = model_flops(model, (3, 6), by_layer=True)
    assert ("0.block", "Linear", 216) in per_layer and ("1", "Scale", 216) in per_layer, per_layer


def test_model_flops_restores_modes_and_records_no_graph():
    model = MLP([4, 4, 2], dropout=0.5)
    model[2].eval()
    model_flops(model, (1, 4))
    assert [m.training for m in model] == [True, True, False, True], "training flags must be restored"
    assert all(p.grad is None for p in model.parameters())


# ---- losses ------------------------------------------------------------------------------------------
def test_mse_loss_matches_numpy():
    pred, target = rand(4, 3), rand(4, 3, seed=2)
    assert_close(mse_loss(Tensor(pred), Tensor(target)), np.mean((pred - target) ** 2), atol=1e-6, what="mse mean")
    assert_close(mse_loss(Tensor(pred), target, reduction="sum"), np.sum((pred - target) ** 2), atol=1e-5,
                 what="mse sum")
    assert_close(MSELoss(reduction="none")(Tensor(pred), target), (pred - target) ** 2, atol=1e-6, what="mse none")
    assert mse_loss(Tensor(pred), target).dtype == np.float32
    assert_close(mse_loss(Tensor([1.0, 2.0]), np.array([1, 4])), 2.0, what="integer targets are converted")


@pytest.mark.given   # passes with no work in this module: checks code the course gives
def test_mse_loss_refuses_silent_broadcasting():
    with pytest.raises(TensorError, match=r"\(4, 1\).*\(4,\)"):
        mse_loss(Tensor(rand(4, 1)), Tensor(rand(4)))


def test_cross_entropy_matches_numpy():
    logits = rand(5, 4) * 3
    targets = np.array([0, 3, 1, 1, 2])
    nll = -np_log_softmax(logits.astype(np.float64))[np.arange(5), targets]
    out = cross_entropy(Tensor(logits), targets)
    assert out.shape == () and out.dtype == np.float32
    assert_close(out, nll.mean(), atol=1e-5, what="cross_entropy = mean of -log softmax(logits)[target]")
    assert_close(cross_entropy(Tensor(logits), Tensor(targets), reduction="sum"), nll.sum(), atol=1e-5, what="sum")
    assert_close(cross_entropy(Tensor(logits), targets, reduction="none"), nll, atol=1e-5, what="none")


def test_cross_entropy_sequence_layout():
    logits = rand(2, 3, 5)                   # (N, T, C): classes on the last axis
    targets = np.array([[0, 4, 2], [1, 1, 3]])
    nll = -np.take_along_axis(np_log_softmax(logits.astype(np.float64)), targets[..., None], axis=-1)[..., 0]
    assert_close(cross_entropy(Tensor(logits), targets), nll.mean(), atol=1e-5, what="(N, T, C) with (N, T)")
    none = cross_entropy(Tensor(logits), targets, reduction="none")
    assert none.shape == (2, 3), f"reduction='none' gives one loss per target, shape (2, 3), got {none.shape}"


def test_cross_entropy_label_smoothing():
    logits, targets, eps, C = rand(6, 4), np.array([0, 1, 2, 3, 0, 1]), 0.1, 4
    logp = np_log_softmax(logits.astype(np.float64))
    q = np.full((6, C), eps / C)
    q[np.arange(6), targets] += 1 - eps                  # smoothed target distribution
    expected = -(q * logp).sum(axis=1).mean()
    assert_close(cross_entropy(Tensor(logits), targets, label_smoothing=eps), expected, atol=1e-5,
                 what="label smoothing: targets (1 - e) on the true class + e / C everywhere")
    assert_close(CrossEntropyLoss(label_smoothing=eps)(Tensor(logits), targets), expected, atol=1e-5,
                 what="CrossEntropyLoss module")


def reaches(out, leaf) -> bool:
    """Whether the graph that produced `out` reaches the tensor `leaf` (so gradients can flow to it)."""
    seen, stack = set(), [out]
    while stack:
        t = stack.pop()
        if t is leaf:
            return True
        if id(t) in seen or t._ctx is None:
            continue
        seen.add(id(t))
        stack.extend(t._ctx.parents)
    return False


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_losses_are_built_from_tensor_ops_so_gradients_can_flow(reduction):
    """The README: losses are tensor ops, not NumPy on .data; module 09 differentiates what is recorded."""
    logits = Tensor(rand(4, 3), requires_grad=True)
    loss = cross_entropy(logits, np.array([0, 2, 1, 1]), reduction=reduction)
    assert reaches(loss, logits), "cross_entropy's result is not connected to the logits on the graph: " \
                                  "build it from tensor ops (log_softmax, indexing, mean), not from .data"
    pred, target = Tensor(rand(4, 3), requires_grad=True), rand(4, 3, seed=5)
    assert reaches(mse_loss(pred, target, reduction=reduction), pred), "mse_loss must be built from tensor ops"


def test_cross_entropy_is_stable_and_keeps_float64():
    logits = np.array([[1e4, 0.0, -1e4], [0.0, 1e4, 1e4]], dtype=np.float32)
    out = cross_entropy(Tensor(logits), np.array([0, 1]), reduction="none")
    assert np.isfinite(out.data).all(), f"huge logits must not overflow, got {out.data}"
    assert_close(out, [0.0, np.log(2.0)], atol=1e-5, what="cross_entropy with logits of size 1e4")
    x64 = Tensor(rand(3, 4, dtype=np.float64), dtype=np.float64)
    assert cross_entropy(x64, np.array([0, 1, 2]), label_smoothing=0.2).dtype == np.float64


def test_cross_entropy_lets_nan_through():
    logits = rand(2, 3)
    logits[0, 1] = np.nan
    assert np.isnan(cross_entropy(Tensor(logits), np.array([0, 1])).item()), "NaN in the logits must show in the loss"


@pytest.mark.parametrize("targets, kwargs, pattern", [
    (np.array([0.0, 1.0, 2.0]), {}, "integer class indices.*float"),
    (np.array([0, 1, 4]), {}, r"\[0, 4\).*0 to 4"),
    (np.array([0, -1, 2]), {}, r"\[0, 4\).*-1 to 2"),
    (np.array([0, 1]), {}, r"targets of shape \(3,\).*got \(2,\)"),
    (np.array([[0], [1], [2]]), {}, r"targets of shape \(3,\)"),
    (np.array([0, 1, 2]), {"label_smoothing": 1.0}, r"label_smoothing must be in \[0, 1\)"),
    (np.array([0, 1, 2]), {"label_smoothing": -0.1}, r"label_smoothing must be in \[0, 1\)"),
    (np.array([0, 1, 2]), {"reduction": "avg"}, "reduction must be one of"),
])
@pytest.mark.given   # passes with no work in this module: checks code the course gives
def test_cross_entropy_errors_name_the_problem(targets, kwargs, pattern):
    with pytest.raises(TensorError, match=pattern):
        cross_entropy(Tensor(rand(3, 4)), targets, **kwargs)


@pytest.mark.given   # passes with no work in this module: checks code the course gives
def test_loss_modules_repr():
    assert repr(CrossEntropyLoss(label_smoothing=0.1)) == "CrossEntropyLoss(label_smoothing=0.1, reduction='mean')"
    assert repr(MSELoss()) == "MSELoss(reduction='mean')"
    assert repr(LayerNorm(8)) == "LayerNorm((8,), eps=1e-05, elementwise_affine=True)"
