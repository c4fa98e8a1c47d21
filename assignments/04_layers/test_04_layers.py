"""Module 04 - Layers: Module, Parameter, Linear, Sequential, Flatten, Dropout, state dicts.

Forward passes only (no .backward(): autograd is module 09). Expected values are computed by hand
with NumPy next to each test.
"""
import os

import numpy as np
import pytest
from hypothesis import Phase, given, settings, strategies as st

import tinytorch as tt
from tinytorch import activations as F
from tinytorch.layers import (GELU, Dropout, Flatten, Identity, LeakyReLU, Linear, LogSoftmax, Module,
                              ModuleList, Parameter, ReLU, Sequential, Sigmoid, Softmax, StateDictError, Tanh,
                              linear)
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


class Block(Module):
    """A custom module with its own parameter, a child, a buffer, and another parameter."""

    def __init__(self):
        super().__init__()
        self.scale = Parameter(np.ones(3))
        self.fc = Linear(3, 2)
        self.register_buffer("count", np.zeros(1))
        self.offset = Parameter(np.zeros(2))

    def forward(self, x):
        return self.fc(x * self.scale) + self.offset


# ---- Parameter ---------------------------------------------------------------------------------------
@pytest.mark.given   # given code: passes once modules 02-03 work, with no work here
def test_parameter_is_a_float32_tensor_that_requires_grad():
    p = Parameter(np.arange(6, dtype=np.float64).reshape(2, 3))
    assert isinstance(p, Tensor), "Parameter must subclass Tensor so every Tensor op works on it"
    assert p.requires_grad, "a Parameter is learned, so requires_grad must be True"
    assert p.dtype == np.float32, f"Parameters are float32 by default, got {p.dtype}"
    assert Parameter([1, 2]).dtype == np.float32, "integer initial values must still give a float Parameter"
    assert Parameter(np.zeros(2), dtype=np.float64).dtype == np.float64, "an explicit dtype is kept"


# ---- discovering parameters and children -------------------------------------------------------------
def test_named_parameters_use_dotted_names_in_assignment_order():
    names = [n for n, _ in Block().named_parameters()]
    assert names == ["scale", "offset", "fc.weight", "fc.bias"], (
        f"expected a module's own parameters (in assignment order) before its children's, got {names}")
    model = Sequential(Linear(4, 3), ReLU(), Sequential(Linear(3, 2), Block()))
    names = [n for n, _ in model.named_parameters()]
    assert names == ["0.weight", "0.bias", "2.0.weight", "2.0.bias", "2.1.scale", "2.1.offset",
                     "2.1.fc.weight", "2.1.fc.bias"], f"got {names}"
    assert [p.shape for p in model.parameters()][:2] == [(3, 4), (3,)], "parameters() follows named_parameters()"


def test_shared_parameters_are_listed_once():
    a = Linear(3, 3)
    b = Linear(3, 3)
    b.weight = a.weight                      # tied weights
    model = Sequential(a, b, a)              # and a module used twice
    params = model.parameters()
    assert len(params) == 3, f"a.weight, a.bias, b.bias: each once, got {len(params)} parameters"
    assert len({id(p) for p in params}) == len(params), "parameters() must not repeat a shared Parameter"


def test_subclass_without_super_init_still_works():
    class NoInit(Module):
        def __init__(self):
            self.fc = Linear(2, 2)

        def forward(self, x):
            return self.fc(x)

    m = NoInit()
    assert m.training and len(m.parameters()) == 2
    assert m.eval() is m and not m.fc.training


def test_children_and_modules():
    inner = Sequential(Linear(2, 2))
    model = Sequential(Linear(2, 2), inner)
    assert model.children() == [model[0], inner], "children() lists direct sub-modules only"
    assert [n for n, _ in model.named_modules()] == ["", "0", "1", "1.0"], (
        "named_modules() lists the module itself first (name ''), then descendants parent-first")


def test_plain_attributes_are_not_parameters():
    class Holder(Module):
        def __init__(self):
            self.t = Tensor([1.0, 2.0], requires_grad=True)   # a Tensor, not a Parameter
            self.n = 3
            self.layers = ModuleList([Linear(2, 2), Linear(2, 1)])

    m = Holder()
    assert [n for n, _ in m.named_parameters()] == ["layers.0.weight", "layers.0.bias", "layers.1.weight",
                                                     "layers.1.bias"]
    assert len(m.layers) == 2 and isinstance(m.layers[1], Linear)


def test_train_and_eval_reach_every_descendant():
    model = Sequential(Linear(2, 2), Sequential(Dropout(0.5), Block()))
    assert all(m.training for m in model.modules()), "modules start in training mode"
    assert model.eval() is model, "eval() returns the module (for chaining)"
    assert not any(m.training for m in model.modules()), "eval() must switch off training in every descendant"
    model.train()
    assert all(m.training for m in model.modules()), "train() must switch it back on everywhere"


def test_zero_grad_clears_gradients():
    model = Sequential(Linear(2, 3), Linear(3, 1))
    for p in model.parameters():
        p.grad = Tensor(np.ones(p.shape))
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters()), "zero_grad() must set .grad = None on all parameters"


@pytest.mark.given   # given code: passes once modules 02-03 work, with no work here
def test_call_runs_forward_and_missing_forward_is_explained():
    class Doubler(Module):
        def forward(self, x):
            return x * 2

    assert_close(Doubler()(Tensor([1.0, 2.0])), [2.0, 4.0], what="module(x) must return forward(x)")
    with pytest.raises(NotImplementedError, match="forward"):
        Module()(Tensor([1.0]))


def test_to_float64_converts_parameters_and_buffers():
    b = Block().to(np.float64)
    assert all(p.dtype == np.float64 for p in b.parameters()) and b.count.dtype == np.float64
    out = b(Tensor(rand(4, 3, dtype=np.float64), dtype=np.float64))
    assert out.dtype == np.float64, "a float64 model on float64 input must stay float64"


# ---- Linear ------------------------------------------------------------------------------------------
def test_linear_shapes_and_init_follow_pytorch():
    layer = Linear(16, 4)
    assert layer.weight.shape == (4, 16), "weight is (out_features, in_features), as in PyTorch"
    assert layer.bias.shape == (4,)
    assert layer.weight.dtype == np.float32 and layer.bias.dtype == np.float32
    bound = 1 / np.sqrt(16)
    for name, p in layer.named_parameters():
        assert np.abs(p.data).max() <= bound, f"{name} must lie in [-1/sqrt(in), 1/sqrt(in)] = +-{bound}"
        assert p.data.std() > bound / 4, f"{name} looks constant: it must be drawn at random"
    assert Linear(16, 4, bias=False).bias is None
    assert len(Linear(16, 4, bias=False).parameters()) == 1


def test_linear_init_is_reproducible_with_manual_seed():
    tt.manual_seed(123)
    a = Linear(5, 3).weight.data.copy()
    tt.manual_seed(123)
    b = Linear(5, 3).weight.data
    np.testing.assert_array_equal(a, b, err_msg="init must draw from tinytorch.get_rng() so manual_seed repeats it")


@pytest.mark.parametrize("shape", [(5, 4), (2, 3, 4), (4,)])
def test_linear_matches_numpy(shape):
    layer = Linear(4, 3)
    x = rand(*shape)
    expected = x @ layer.weight.data.T + layer.bias.data
    out = layer(Tensor(x))
    assert out.shape == shape[:-1] + (3,), f"(..., in) -> (..., out): expected {shape[:-1] + (3,)}, got {out.shape}"
    assert out.dtype == np.float32
    assert_close(out, expected, atol=1e-5, what=f"Linear on input {shape} vs x @ W.T + b")


@settings(max_examples=25, deadline=None, derandomize=True, database=None, phases=NO_SHRINK)
@given(lead=st.lists(st.integers(1, 4), max_size=3), n_in=st.integers(1, 6), n_out=st.integers(1, 6),
       bias=st.booleans())
def test_linear_any_leading_dims_property(lead, n_in, n_out, bias):
    layer = Linear(n_in, n_out, bias=bias)
    x = rand(*lead, n_in)
    expected = x @ layer.weight.data.T + (layer.bias.data if bias else 0)
    out = layer(Tensor(x))
    assert out.shape == tuple(lead) + (n_out,), f"(..., {n_in}) -> (..., {n_out}), got {out.shape}"
    assert_close(out, expected, atol=1e-5, what=f"Linear({n_in}, {n_out}) on shape {tuple(lead) + (n_in,)}")


def recorded_ops(out) -> list[str]:
    """The op names recorded in the graph that produced `out` (what module 09 will differentiate)."""
    seen, stack, ops = set(), [out], []
    while stack:
        t = stack.pop()
        if id(t) in seen or t._ctx is None:
            continue
        seen.add(id(t))
        ops.append(t._ctx.op)
        stack.extend(t._ctx.parents)
    return ops


@pytest.mark.parametrize("shape", [(5, 4), (2, 3, 4)])
def test_linear_is_one_recorded_matrix_product_whatever_the_leading_dims(shape):
    """The README's contract, which module 07 (attention) counts on: one matmul per Linear, for any
    batch shape (fold the leading dims into the rows), recorded on the graph for module 09."""
    out = Linear(4, 3)(Tensor(rand(*shape), requires_grad=True))
    ops = recorded_ops(out)
    assert ops.count("matmul") == 1, f"expected exactly 1 recorded matmul for input {shape}, got {ops}"


def test_linear_without_bias_and_functional_float64():
    w, x = rand(3, 4, seed=2, dtype=np.float64), rand(2, 4, dtype=np.float64)
    out = linear(Tensor(x, dtype=np.float64), Tensor(w, dtype=np.float64))
    assert out.dtype == np.float64, "float64 in must give float64 out"
    assert_close(out, x @ w.T, atol=1e-12, what="linear without bias")


def test_linear_wrong_feature_count_names_both_shapes():
    with pytest.raises(TensorError) as err:
        Linear(4, 3)(Tensor(rand(2, 5)))
    msg = str(err.value)
    assert "(2, 5)" in msg and "(3, 4)" in msg and "5" in msg and "4" in msg, (
        f"the message must quote the input shape and the weight shape, got: {msg}")


def test_linear_rejects_integer_input():
    with pytest.raises(TensorError, match="uint8"):
        Linear(4, 2)(Tensor(np.zeros((1, 4), dtype=np.uint8)))


# ---- Sequential --------------------------------------------------------------------------------------
def test_sequential_applies_layers_in_order():
    model = Sequential(Linear(4, 5), ReLU(), Linear(5, 2))
    x = rand(3, 4)
    h = np.maximum(x @ model[0].weight.data.T + model[0].bias.data, 0)
    expected = h @ model[2].weight.data.T + model[2].bias.data
    assert_close(model(Tensor(x)), expected, atol=1e-5, what="Sequential(Linear, ReLU, Linear)")


def test_sequential_is_indexable_sized_and_iterable():
    layers = [Linear(2, 3), ReLU(), Linear(3, 1)]
    model = Sequential(*layers)
    assert len(model) == 3
    assert list(model) == layers
    assert model[0] is layers[0] and model[-1] is layers[2]
    tail = model[1:]
    assert isinstance(tail, Sequential) and list(tail) == layers[1:], "a slice must be a Sequential of those layers"
    assert Sequential(layers)[2] is layers[2], "a single list of layers is accepted too"
    with pytest.raises(IndexError, match="3 layers"):
        model[3]


def test_sequential_rejects_non_modules():
    with pytest.raises(TensorError, match="not a Module"):
        Sequential(Linear(2, 2), ReLU)       # the class, not an instance


# ---- Flatten, Dropout, Identity, activations ---------------------------------------------------------
def test_flatten():
    x = Tensor(rand(2, 3, 4, 5))
    assert Flatten()(x).shape == (2, 60), "Flatten() keeps the batch dimension"
    assert Flatten(0)(x).shape == (120,)
    assert Flatten(1, 2)(x).shape == (2, 12, 5)
    np.testing.assert_array_equal(Flatten()(x).data, x.data.reshape(2, 60), err_msg="C-order flattening")


def test_dropout_is_identity_in_eval_mode():
    layer = Dropout(0.5).eval()
    x = Tensor(rand(10, 10))
    np.testing.assert_array_equal(layer(x).data, x.data, err_msg="Dropout must do nothing in eval mode")
    np.testing.assert_array_equal(Dropout(0.0)(x).data, x.data, err_msg="p=0 keeps everything")


def test_dropout_in_training_zeroes_about_p_and_rescales_survivors():
    x = Tensor(np.ones((200, 100), dtype=np.float32))
    out = Dropout(0.3)(x).data
    dropped = (out == 0).mean()
    assert abs(dropped - 0.3) < 0.02, f"about 30% should be zeroed, got {dropped:.3f}"
    kept = out[out != 0]
    assert_close(kept, np.full(kept.shape, 1 / 0.7, dtype=np.float32), atol=1e-6,
                 what="survivors must be scaled by 1/(1-p) (inverted dropout)")
    assert out.dtype == np.float32
    assert abs(out.mean() - 1.0) < 0.03, "the expected value must be unchanged"


def test_dropout_follows_manual_seed_and_validates_p():
    x = Tensor(np.ones((4, 5), dtype=np.float32))
    tt.manual_seed(7)
    a = Dropout(0.5)(x).data
    tt.manual_seed(7)
    b = Dropout(0.5)(x).data
    np.testing.assert_array_equal(a, b, err_msg="the dropout mask must come from tinytorch.get_rng()")
    assert (Dropout(1.0)(x).data == 0).all(), "p=1 drops everything"
    with pytest.raises(TensorError, match=r"\[0, 1\]"):
        Dropout(1.5)


@pytest.mark.given   # given code: passes once modules 02-03 work, with no work here
def test_identity():
    x = Tensor([1.0, -2.0])
    assert Identity()(x) is x


@pytest.mark.given   # the activation layers are given wrappers of module 03
@pytest.mark.parametrize("layer, fn", [
    (ReLU(), F.relu), (Sigmoid(), F.sigmoid), (Tanh(), F.tanh), (GELU(), F.gelu),
    (LeakyReLU(0.2), lambda x: F.leaky_relu(x, 0.2)), (Softmax(dim=0), lambda x: F.softmax(x, axis=0)),
    (LogSoftmax(), lambda x: F.log_softmax(x, axis=-1)),
])
def test_activation_layers_wrap_the_functions(layer, fn):
    x = Tensor(rand(3, 4))
    assert_close(layer(x), fn(x), atol=0, rtol=0, what=f"{type(layer).__name__} layer vs function")


# ---- state dicts, save and load ----------------------------------------------------------------------
def make_model():
    return Sequential(Linear(4, 3), ReLU(), Block())


def test_state_dict_has_parameters_and_buffers_as_copies():
    model = make_model()
    state = model.state_dict()
    assert list(state) == ["0.weight", "0.bias", "2.scale", "2.offset", "2.count", "2.fc.weight", "2.fc.bias"], (
        f"keys: each module's parameters, then its persistent buffers, then its children; got {list(state)}")
    assert all(isinstance(v, np.ndarray) for v in state.values()), "values are NumPy arrays"
    state["0.weight"][...] = 123.0
    assert not (model[0].weight.data == 123.0).any(), "state_dict() must return copies, not the live arrays"


def test_load_state_dict_round_trip_gives_same_outputs():
    src, dst = make_model(), make_model()
    x = Tensor(rand(5, 4))
    assert not np.allclose(src(x).data, dst(x).data), "two fresh models should differ before loading"
    dst.load_state_dict(src.state_dict())
    assert_close(dst(x), src(x), atol=0, rtol=0, what="outputs after load_state_dict")
    src[0].weight.data[...] = 0.0
    assert not (dst[0].weight.data == 0).all(), "the loaded model must not share arrays with the source"


def test_load_state_dict_names_missing_and_unexpected_keys():
    model = make_model()
    state = model.state_dict()
    state["2.fc.b"] = state.pop("2.fc.bias")
    before = model[0].weight.data.copy()
    state["0.weight"] = state["0.weight"] + 1
    with pytest.raises(StateDictError) as err:
        model.load_state_dict(state)
    msg = str(err.value)
    assert "missing" in msg and "'2.fc.bias'" in msg, f"the message must name the missing key, got: {msg}"
    assert "unexpected" in msg and "'2.fc.b'" in msg, f"the message must name the unexpected key, got: {msg}"
    np.testing.assert_array_equal(model[0].weight.data, before, err_msg="a failed load must change nothing")
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert missing == ["2.fc.bias"] and unexpected == ["2.fc.b"]
    np.testing.assert_array_equal(model[0].weight.data, before + 1, err_msg="strict=False loads the matching keys")


def test_load_state_dict_names_shape_mismatch():
    model = Sequential(Linear(4, 3))
    state = model.state_dict()
    state["0.weight"] = state["0.weight"].T
    with pytest.raises(StateDictError) as err:
        model.load_state_dict(state)
    msg = str(err.value)
    assert "0.weight" in msg and "(4, 3)" in msg and "(3, 4)" in msg, f"name the key and both shapes, got: {msg}"


def test_load_state_dict_keeps_parameter_dtype_and_identity():
    model = Sequential(Linear(2, 2))
    weight = model[0].weight
    model.load_state_dict({k: v.astype(np.float64) for k, v in model.state_dict().items()})
    assert model[0].weight is weight, "loading fills the existing Parameters (optimizers hold references to them)"
    assert weight.dtype == np.float32, "loaded values take the parameter's dtype"


def test_save_and_load_npz(tmp_path):
    src = make_model()
    path = tmp_path / "model.npz"
    src.save(path)
    assert path.exists()
    with np.load(path) as archive:
        assert sorted(archive.files) == sorted(src.state_dict()), "the .npz holds one array per state-dict key"
        np.testing.assert_array_equal(archive["0.weight"], src[0].weight.data)
    dst = make_model().load(path)
    x = Tensor(rand(3, 4))
    assert_close(dst(x), src(x), atol=0, rtol=0, what="outputs after save() + load()")
    assert sorted(os.listdir(tmp_path)) == ["model.npz"], "no temporary files may be left behind"


def test_save_overwrites_atomically(tmp_path):
    path = tmp_path / "m.npz"
    a, b = Sequential(Linear(2, 2)), Sequential(Linear(2, 2))
    a.save(path)
    b.save(str(path))
    np.testing.assert_array_equal(Sequential(Linear(2, 2)).load(path)[0].weight.data, b[0].weight.data)
    assert os.listdir(tmp_path) == ["m.npz"]


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.npz"):
        make_model().load(tmp_path / "nothing.npz")
    Sequential(Linear(4, 3)).save(tmp_path / "small.npz")
    with pytest.raises(StateDictError, match="missing"):
        make_model().load(tmp_path / "small.npz")


def test_non_persistent_buffers_are_not_saved():
    class WithTable(Module):
        def __init__(self):
            self.register_buffer("table", np.arange(3.0), persistent=False)
            self.register_buffer("stats", np.zeros(2))

    m = WithTable()
    assert list(m.state_dict()) == ["stats"]
    assert [n for n, _ in m.named_buffers()] == ["table", "stats"] and m.parameters() == []
    assert not m.table.requires_grad


# ---- repr --------------------------------------------------------------------------------------------
def test_repr_is_nested_like_pytorch():
    model = Sequential(Flatten(), Linear(784, 128), ReLU(), Dropout(0.2),
                       Sequential(Linear(128, 10, bias=False), LeakyReLU(0.1)))
    expected = (
        "Sequential(\n"
        "  (0): Flatten(start_dim=1, end_dim=-1)\n"
        "  (1): Linear(in_features=784, out_features=128, bias=True)\n"
        "  (2): ReLU()\n"
        "  (3): Dropout(p=0.2)\n"
        "  (4): Sequential(\n"
        "    (0): Linear(in_features=128, out_features=10, bias=False)\n"
        "    (1): LeakyReLU(negative_slope=0.1)\n"
        "  )\n"
        ")")
    assert repr(model) == expected, f"expected:\n{expected}\ngot:\n{model!r}"
    assert repr(Block()).startswith("Block(\n  (fc): Linear(")
