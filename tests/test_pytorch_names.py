"""PyTorch's names and semantics in TinyTorch (issue 15): in-place rules, and every alias gives the
same result as the original spelling.

Given code carries no points, so these tests live here and not in assignments/ (except the maths a
student writes: sin/cos in modules 02/09, RMSprop in module 10).
"""
from __future__ import annotations

import numpy as np
import pytest

import tinytorch as tt
import tinytorch.nn.functional as F
from tinytorch import nn
from tinytorch.devices import DeviceError
from tinytorch.tensor import Tensor, TensorError
from tinytorch.testing import assert_close


def arr(*shape, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def numeric_grad(f, x: np.ndarray, eps=1e-6) -> np.ndarray:
    """Central differences of the scalar f(x) (float64)."""
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + eps
        up = f(x)
        x[i] = old - eps
        down = f(x)
        x[i] = old
        g[i] = (up - down) / (2 * eps)
    return g


# ---- in-place updates ---------------------------------------------------------------------------------
def test_parameter_update_under_no_grad_changes_the_parameters_in_place():
    """The tutorial bug: `p -= lr * p.grad` in a loop over model.parameters() used to rebind p only."""
    tt.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
    x, y = Tensor(arr(16, 3)), Tensor(arr(16, 1, seed=1))
    before = [p.data.copy() for p in model.parameters()]
    arrays = [p.data for p in model.parameters()]
    loss0 = ((model(x) - y) ** 2).mean()
    loss0.backward()
    with tt.no_grad():
        for p in model.parameters():
            p -= 0.1 * p.grad
    for p, b, a in zip(model.parameters(), before, arrays):
        assert p.data is a, "in place: the parameter keeps its array"
        assert_close(p.data, b - 0.1 * p.grad.data, what="p after p -= 0.1 * p.grad")
        assert p.is_leaf and p.requires_grad
    assert ((model(x) - y) ** 2).mean().item() < loss0.item(), "a gradient step must lower the loss"


def test_scalar_leaf_update_like_the_polynomial_tutorial():
    a = tt.full((), 1.0, requires_grad=True)
    (a * 3.0).backward()
    with tt.no_grad():
        a -= 0.5 * a.grad
    assert a.item() == pytest.approx(1.0 - 1.5) and a.requires_grad and a.is_leaf
    a.grad = None
    (a * a).backward()
    assert a.grad.item() == pytest.approx(2 * a.item()), "gradients stay right after the in-place update"


@pytest.mark.parametrize("update", [lambda p: p.__isub__(1.0), lambda p: p.add_(1.0), lambda p: p.mul_(2.0),
                                    lambda p: p.zero_(), lambda p: p.fill_(3.0), lambda p: p.copy_(np.ones(3)),
                                    lambda p: p.clamp_(0, 1)], ids=["-=", "add_", "mul_", "zero_", "fill_",
                                                                    "copy_", "clamp_"])
def test_in_place_on_a_leaf_that_requires_grad_with_grad_mode_on_raises(update):
    p = Tensor(arr(3), requires_grad=True)
    before = p.data.copy()
    with pytest.raises(TensorError, match="no_grad"):
        update(p)
    np.testing.assert_array_equal(p.data, before, err_msg="a refused update must change nothing")


def test_in_place_on_a_recorded_non_leaf_is_refused_and_gradients_stay_right():
    w = Tensor(arr(3, dtype=np.float64), dtype=np.float64, requires_grad=True)
    h = w.exp()
    with pytest.raises(TensorError, match="recorded op"):
        h += 1.0
    with tt.no_grad(), pytest.raises(TensorError, match="recorded op"):
        h.mul_(2.0)  # exp's rule uses its saved output: changing it would make w.grad wrong
    h = h + 1.0      # the out-of-place spelling the message asks for
    (h * h).sum().backward()
    expected = numeric_grad(lambda v: float(((np.exp(v) + 1.0) ** 2).sum()), w.data.copy())
    assert_close(w.grad, expected, rtol=1e-6, atol=1e-8, what="gradient after the refused in-place update")


def test_in_place_with_a_value_that_requires_grad_is_refused_with_grad_mode_on():
    x = tt.zeros(3)
    w = Tensor(arr(3), requires_grad=True)
    with pytest.raises(TensorError, match="x = x \\+ y"):
        x += w
    with tt.no_grad():
        x += w   # values only: allowed
    assert_close(x, w.data)


def test_in_place_ops_match_numpy_and_share_memory_with_views():
    a = arr(2, 3)
    x = tt.from_numpy(a.copy())
    view = x.numpy()
    x.add_(1.0).sub_(np.ones((2, 3), np.float32), alpha=2).mul_(3.0).div_(2.0)
    expected = (a + 1 - 2) * 3 / 2
    assert_close(x, expected, what="add_ / sub_(alpha) / mul_ / div_")
    assert view is x.data and np.array_equal(view, x.data), ".numpy() sees the in-place change"
    x *= 2
    x /= 4
    x += Tensor(np.ones(3, np.float32))  # broadcast into self's shape
    x -= 1
    assert_close(x, expected * 2 / 4)
    assert x.zero_() is x and not x.data.any()
    assert_close(x.fill_(2.5), np.full((2, 3), 2.5))
    assert_close(Tensor(a.copy()).clamp_(-0.5, 0.5), np.clip(a, -0.5, 0.5))
    y = tt.zeros(4)
    assert_close(y.copy_(Tensor([1, 2, 3, 4])), [1, 2, 3, 4])
    assert y.dtype == np.float32, "copy_ converts to self's dtype"
    onehot = tt.zeros(5).scatter_(0, tt.tensor(3), value=1)
    assert_close(onehot, np.eye(5, dtype=np.float32)[3])


def test_grad_zero_and_optimizer_style_updates():
    w = Tensor(arr(4), requires_grad=True)
    (w * w).sum().backward()
    w.grad.zero_()
    assert not w.grad.data.any()
    (w * 3).sum().backward()
    assert_close(w.grad, np.full(4, 3.0), what="gradients accumulate onto a zeroed .grad")


def test_in_place_errors_name_dtype_and_shape_problems():
    ints = tt.tensor([1, 2, 3])
    with pytest.raises(TensorError, match="int64"):
        ints += 0.5
    ints += 2
    assert ints.tolist() == [3, 4, 5] and ints.dtype == np.int64
    x = tt.zeros(3)
    with pytest.raises(TensorError, match="shape"):
        x += tt.zeros(2, 3)
    view = Tensor(arr(3)).broadcast_to(2, 3)
    with pytest.raises(TensorError, match="read-only"):
        view.add_(1)


# ---- dim / keepdim and the other spellings -------------------------------------------------------------
@pytest.mark.parametrize("op", ["sum", "mean", "var", "std", "argmax", "argmin"])
def test_reductions_take_dim_and_keepdim(op):
    x = Tensor(arr(3, 4, 5))
    for d in (0, 1, -1):
        a = getattr(x, op)(dim=d, keepdim=True)
        b = getattr(x, op)(axis=d, keepdims=True)
        assert a.shape == b.shape and np.array_equal(a.data, b.data), f"{op}(dim={d}, keepdim=True)"
    assert np.array_equal(getattr(x, op)(1).data, getattr(x, op)(axis=1).data)
    with pytest.raises(TensorError, match="not both"):
        getattr(x, op)(dim=0, axis=0)


def test_shape_functions_take_dim():
    x = Tensor(arr(2, 1, 3))
    assert x.squeeze(dim=1).shape == x.squeeze(axis=1).shape == (2, 3)
    assert x.unsqueeze(dim=0).shape == x.unsqueeze(0).shape == (1, 2, 1, 3)
    assert [p.shape for p in x.split(1, dim=2)] == [p.shape for p in x.split(1, axis=2)]
    assert_close(x.softmax(dim=0), x.softmax(axis=0))
    assert_close(x.log_softmax(dim=-1), tt.log_softmax(x, axis=-1))
    assert_close(tt.softmax(x, dim=2), tt.softmax(x, 2))
    assert_close(tt.cat([x, x], dim=2), tt.cat([x, x], axis=2))
    assert_close(tt.stack([x, x], dim=1), tt.stack([x, x], axis=1))


def test_max_min_with_dim_return_values_and_indices():
    a = arr(3, 4)
    x = Tensor(a, requires_grad=True)
    values, indices = x.max(1)
    assert_close(values, a.max(axis=1))
    assert np.array_equal(indices.data, a.argmax(axis=1))
    assert (values.shape, indices.dtype) == ((3,), np.int64)
    named = tt.max(x, dim=0, keepdim=True)
    assert_close(named.values, a.max(axis=0, keepdims=True))
    assert np.array_equal(named.indices.data, a.argmax(axis=0)[None])
    _, predicted = tt.max(x, 1)  # the CIFAR tutorial's spelling
    assert np.array_equal(predicted.data, a.argmax(1))
    low = x.min(dim=1)
    assert_close(low.values, a.min(axis=1))
    assert np.array_equal(low.indices.data, a.argmin(1))
    assert_close(x.max(), a.max())
    assert_close(x.max(axis=1), a.max(axis=1))
    assert_close(x.max((0, 1)), a.max())  # several dims reduce to a Tensor (torch.amax)
    assert_close(tt.max(x, Tensor(np.zeros_like(a))), np.maximum(a, 0))  # max(x, y) is element-wise
    values.sum().backward()
    expected = np.zeros_like(a)
    expected[np.arange(3), a.argmax(1)] = 1
    assert_close(x.grad, expected, what="the gradient of max values goes to the winners")


def test_size_numel_dim():
    x = tt.zeros(2, 3, 4)
    assert x.size() == (2, 3, 4) == x.shape and x.size(1) == 3 and x.size(-1) == 4
    assert x.numel() == 24 == tt.numel(x) and x.dim() == 3
    with pytest.raises(TensorError, match="out of range"):
        x.size(3)


def test_dtype_names_are_numpy_dtypes():
    assert tt.float32 is np.float32 and tt.float is np.float32 and tt.float64 is np.float64
    assert tt.double is np.float64 and tt.long is np.int64 and tt.int64 is np.int64
    assert tt.int32 is np.int32 and tt.bool is np.bool_ and tt.half is np.float16
    assert tt.zeros(2, dtype=tt.long).dtype == np.int64 and tt.ones(2).dtype == tt.float32
    assert tt.tensor([1.0], dtype=tt.float64).dtype == tt.double


def test_conversions_and_type():
    x = tt.tensor([1.5, -2.0])
    assert x.float() is x and x.to(tt.float32) is x, "no change: the same tensor, as PyTorch"
    assert x.double().dtype == np.float64 and x.long().tolist() == [1, -2] and x.int().dtype == np.int32
    assert x.type() == "tinytorch.FloatTensor" and x.long().type() == "tinytorch.LongTensor"
    assert_close((x > 0).type(tt.float), [1.0, 0.0])
    assert x.to(tt.float64).dtype == np.float64 and x.to(Tensor([1], dtype=np.int64)).dtype == np.int64
    assert x.to("cpu", tt.float64).dtype == np.float64
    w = Tensor([1.0], requires_grad=True)
    with pytest.raises(TensorError, match="cut it from the graph"):
        w.to(tt.float64)
    with tt.no_grad():
        assert w.double().dtype == np.float64


def test_from_numpy_shares_memory_and_keeps_dtype():
    n = np.ones(5)
    t = tt.from_numpy(n)
    assert t.dtype == np.float64 and t.data is n
    np.add(n, 1, out=n)
    assert t.tolist() == [2.0] * 5
    t.add_(1)
    assert n.tolist() == [3.0] * 5
    with pytest.raises(TensorError, match="NumPy array"):
        tt.from_numpy([1, 2])
    assert tt.as_tensor(n).data is n


def test_grad_fn_names_the_recorded_ops():
    w = Tensor(arr(3, 2), requires_grad=True)
    x = Tensor(arr(4, 3))
    assert w.grad_fn is None and x.grad_fn is None
    z = tt.matmul(x, w)
    loss = z.relu().sum()
    assert loss.grad_fn.name() == "SumBackward" and "SumBackward" in repr(loss.grad_fn)
    (relu, _), = loss.grad_fn.next_functions
    (mm, _), = relu.next_functions
    assert (relu.name(), mm.name()) == ("ReluBackward", "MatmulBackward")
    (first, _), (second, _) = mm.next_functions
    assert first is None and second.name() == "AccumulateGrad" and second.variable is w
    with tt.no_grad():
        assert tt.matmul(x, w).grad_fn is None


def test_devices_cpu_only():
    assert tt.device("cpu") == "cpu" and tt.device("cpu") == tt.device("cpu") and str(tt.device("cpu")) == "cpu"
    assert not tt.cuda.is_available() and tt.cuda.device_count() == 0 and not tt.backends.mps.is_available()
    assert not tt.accelerator.is_available()
    x = tt.rand(2, device="cpu")
    assert x.device == tt.device("cpu") and x.to("cpu") is x and x.to(tt.device("cpu")) is x and x.cpu() is x
    assert tt.device("cuda:0").index == 0, "naming a device is allowed (PyTorch code builds one before checking)"
    for attempt in (lambda: x.to("cuda"), lambda: x.to(tt.device("cuda")), lambda: x.cuda(),
                    lambda: tt.zeros(2, device="cuda"), lambda: nn.Linear(2, 2).to("cuda"),
                    lambda: tt.randn(2, device=tt.device("mps"))):
        with pytest.raises(DeviceError, match="CPU"):
            attempt()
    model = nn.Linear(2, 2)
    assert model.to("cpu") is model and model.to(tt.device("cpu")).weight.dtype == np.float32
    assert model.to(device="cpu", dtype=tt.float64).weight.dtype == np.float64


def test_creation_functions():
    assert_close(tt.linspace(-1, 1, 5), np.linspace(-1, 1, 5))
    assert tt.linspace(0, 1, 3).dtype == np.float32 and tt.linspace(0, 1, 3, dtype=tt.float64).dtype == np.float64
    assert_close(tt.eye(3), np.eye(3))
    assert tt.eye(2, 3).shape == (2, 3)
    assert tt.empty(2, 3).shape == (2, 3) and tt.empty((4,), dtype=tt.long).dtype == np.int64
    assert tt.full((), 0.3, dtype=tt.float, requires_grad=True).requires_grad
    base = tt.tensor([[1, 2], [3, 4]])
    assert tt.ones_like(base).dtype == np.int64 and tt.zeros_like(base, dtype=tt.float).dtype == np.float32
    r = tt.rand_like(base, dtype=tt.float)
    assert r.shape == (2, 2) and r.dtype == np.float32 and ((r.data >= 0) & (r.data < 1)).all()
    assert tt.randn_like(r).shape == (2, 2) and tt.full_like(base, 7).tolist() == [[7, 7], [7, 7]]
    with pytest.raises(TensorError, match="floating-point"):
        tt.rand_like(base)
    tt.manual_seed(0)
    ints = tt.randint(10, (1000,))
    assert ints.dtype == np.int64 and ints.data.min() >= 0 and ints.data.max() <= 9 and len(np.unique(ints.data)) == 10
    assert tt.randint(3, 5, (2, 2)).data.min() >= 3 and tt.randint(7, size=(1,)).shape == (1,)
    assert tt.randn((), dtype=tt.float64).dtype == np.float64 and tt.randn(()).shape == ()
    assert tt.arange(1, 11).tolist() == list(range(1, 11))
    assert tt.tensor([1.0, 2.0]).new_ones(2, 3).shape == (2, 3)
    x = tt.tensor([1.0], dtype=tt.float64)
    assert x.new_ones((2,)).dtype == np.float64 and x.new_zeros(3, dtype=tt.long).dtype == np.int64
    assert x.new_full((2,), 5).tolist() == [5.0, 5.0] and x.new_tensor([1, 2]).dtype == np.float64


def test_top_level_math_equals_the_methods():
    a, b = arr(3, 4), arr(3, 4, seed=1)
    x, y = Tensor(a), Tensor(b)
    assert_close(tt.add(x, y, alpha=2), a + 2 * b)
    assert_close(x.add(y), a + b)
    assert_close(tt.sub(x, y), a - b)
    assert_close(tt.mul(x, y), a * b)
    assert_close(tt.div(x, y), a / b)
    assert_close(tt.matmul(x, y.T), a @ b.T)
    assert_close(x.mm(y.t()), a @ b.T)
    assert_close(tt.sin(x), np.sin(a))
    assert_close(tt.cos(x), np.cos(a))
    assert_close(tt.exp(x), np.exp(a))
    assert_close(tt.abs(x), np.abs(a))
    assert_close(tt.sum(x, 1), a.sum(1))
    assert_close(tt.mean(x), a.mean())
    assert tt.argmax(x, 1).tolist() == a.argmax(1).tolist() and tt.argmax(x).item() == a.argmax()
    assert tt.flatten(Tensor(arr(2, 3, 4)), 1).shape == (2, 12) and tt.reshape(x, (4, 3)).shape == (4, 3)
    assert_close(tt.clamp(x, min=0), np.maximum(a, 0))
    assert_close(x.clamp(max=0), np.minimum(a, 0))
    assert_close(tt.std(x), a.std(ddof=1), rtol=1e-5)  # torch.std: the sample standard deviation
    out = tt.zeros(3, 3)
    assert tt.matmul(x, y.T, out=out) is out
    assert_close(out, a @ b.T)
    assert tt.is_tensor(x) and not tt.is_tensor(a) and tt.equal(x, Tensor(a)) and tt.allclose(x, x + 1e-9)
    assert_close(x.t().t(), a)
    assert x.view_as(Tensor(arr(4, 3))).shape == (4, 3)


def test_pow_with_a_tensor_exponent_and_its_gradient():
    x = Tensor(np.linspace(-2, 2, 7).reshape(7, 1), dtype=np.float64, requires_grad=True)
    p = tt.tensor([1, 2, 3])
    xx = x.pow(p)
    assert_close(xx, x.data ** np.array([1, 2, 3]), what="x.unsqueeze(-1).pow(tensor([1, 2, 3]))")
    weights = np.array([0.5, -1.0, 2.0])
    (xx * Tensor(weights, dtype=np.float64)).sum().backward()
    assert_close(x.grad, (weights * np.array([1, 2, 3]) * x.data ** np.array([0, 1, 2])).sum(1, keepdims=True),
                 what="d/dx sum_k w_k x^k")
    assert_close(tt.pow(Tensor([2.0]), 3), [8.0])


def test_backward_gradient_keyword_and_index():
    a = Tensor([2.0, 3.0], requires_grad=True)
    b = Tensor([6.0, 4.0], requires_grad=True)
    q = 3 * a ** 3 - b ** 2
    q.backward(gradient=tt.tensor([1.0, 1.0]))
    assert_close(a.grad, 9 * a.data ** 2)
    assert_close(b.grad, -2 * b.data)
    with pytest.raises(TensorError, match="create_graph"):
        q.backward(tt.ones(2), create_graph=True)
    classes = ["a", "b", "c"]
    assert classes[tt.tensor([0.1, 0.9, 0.0]).argmax()] == "b" and classes[tt.tensor(2)] == "c"
    with pytest.raises(TensorError, match="integer"):
        classes[tt.tensor(1.0)]


# ---- module tree ------------------------------------------------------------------------------------
def test_nn_functional_is_a_module_of_the_existing_ops():
    import importlib
    assert importlib.import_module("tinytorch.nn.functional") is F is tt.nn.functional
    x = Tensor(arr(4, 5))
    assert F.relu is tt.relu and F.cross_entropy is nn.cross_entropy and F.conv2d is nn.conv2d
    assert_close(F.softmax(x, dim=1), tt.softmax(x, axis=1))
    z, y = arr(6), (arr(6, seed=1) > 0).astype(np.float32)
    expected = np.mean(np.logaddexp(0, z) - z * y)
    assert_close(F.binary_cross_entropy_with_logits(Tensor(z), Tensor(y)), expected, rtol=1e-5)
    p = 1 / (1 + np.exp(-z))
    assert_close(F.binary_cross_entropy(Tensor(p), y), -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)), rtol=1e-5)
    logp = tt.log_softmax(x, dim=1)
    t = np.array([0, 4, 2, 1])
    assert_close(F.nll_loss(logp, t), -logp.data[np.arange(4), t].mean())
    assert_close(F.nll_loss(logp, t), F.cross_entropy(x, t), rtol=1e-5)
    assert F.one_hot(tt.tensor([0, 2]), 3).tolist() == [[1, 0, 0], [0, 0, 1]]


def test_utils_data_is_module_08_under_pytorchs_path():
    from tinytorch import data
    from tinytorch.utils.data import DataLoader, Dataset, TensorDataset
    assert (DataLoader, Dataset, TensorDataset) == (data.DataLoader, data.Dataset, data.TensorDataset)
    xs, ys = arr(10, 3), np.arange(10)
    ds = TensorDataset(xs, ys)
    first = ds[2:5]
    assert np.array_equal(first[0], xs[2:5]) and np.array_equal(first[1], ys[2:5])
    assert np.array_equal(ds[::3][1], ys[::3])
    assert len(list(DataLoader(ds, batch_size=4, num_workers=2, pin_memory=True))) == 3
    with pytest.raises(ValueError, match="num_workers"):
        DataLoader(ds, num_workers=-1)


class Cube(tt.autograd.Function):
    @staticmethod
    def forward(ctx, x, scale):
        ctx.save_for_backward(x)
        ctx.scale = scale
        return scale * x ** 3

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return grad_output * ctx.scale * 3 * x ** 2, None


def test_custom_autograd_function():
    a = arr(5, dtype=np.float64)
    x = Tensor(a, dtype=np.float64, requires_grad=True)
    y = Cube.apply(x, 2.0)
    assert_close(y, 2 * a ** 3)
    assert y.grad_fn.name() == "FunctionBackward"
    (y * y).sum().backward()
    assert_close(x.grad, numeric_grad(lambda v: float(((2 * v ** 3) ** 2).sum()), a.copy()), rtol=1e-6)
    with tt.no_grad():
        assert Cube.apply(x, 1.0).grad_fn is None

    class Wrong(tt.autograd.Function):
        @staticmethod
        def forward(ctx, x, y):
            return x * y

        @staticmethod
        def backward(ctx, g):
            return g  # one gradient for two inputs

    with pytest.raises(TensorError, match="one per input"):
        Wrong.apply(x, x).sum().backward()


def test_save_and_load_round_trip_without_pickle(tmp_path):
    t = Tensor(arr(2, 3))
    tt.save(t, tmp_path / "t.pth")
    back = tt.load(tmp_path / "t.pth", weights_only=True)
    assert isinstance(back, Tensor) and back.dtype == np.float32 and np.array_equal(back.data, t.data)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    tt.save(model.state_dict(), tmp_path / "model.pth")
    other = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    other.load_state_dict(tt.load(tmp_path / "model.pth"))
    x = Tensor(arr(5, 3))
    assert_close(other(x), model(x), what="a model loaded from tt.save(state_dict) computes the same")
    blob = {"epoch": 3, "lr": 0.1, "name": "run", "tensors": [t, arr(2)], "pair": (1, None)}
    tt.save(blob, tmp_path / "ckpt.pth")
    loaded = tt.load(tmp_path / "ckpt.pth")
    assert (loaded["epoch"], loaded["lr"], loaded["name"], loaded["pair"]) == (3, 0.1, "run", (1, None))
    assert isinstance(loaded["tensors"][0], Tensor) and isinstance(loaded["tensors"][1], np.ndarray)
    with np.load(tmp_path / "ckpt.pth", allow_pickle=False) as npz:  # plain .npz, nothing pickled
        assert len(npz.files) == 3
    with pytest.raises(TensorError, match="state_dict"):
        tt.save(model, tmp_path / "whole.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a zip")
    with pytest.raises(TensorError, match="not a file written by tinytorch.save"):
        tt.load(tmp_path / "junk.pth")
    with pytest.raises(DeviceError):
        tt.load(tmp_path / "t.pth", map_location="cuda")


def test_adaptive_avg_pool2d():
    x = Tensor(arr(2, 3, 4, 6))
    assert_close(nn.AdaptiveAvgPool2d(1)(x), x.data.mean(axis=(2, 3), keepdims=True), rtol=1e-5)
    assert_close(F.adaptive_avg_pool2d(x, (2, 3)), nn.avg_pool2d(x, (2, 2)))
    with pytest.raises(TensorError, match="divide"):
        nn.AdaptiveAvgPool2d(5)(x)


A, C = arr(3, 4), arr(3, 4, seed=2)
SPELLINGS = {  # PyTorch's spelling -> the original one, on x = Tensor(A), y = Tensor(C)
    "neg": (lambda x, y: x.neg(), lambda x, y: -x),
    "square": (lambda x, y: x.square(), lambda x, y: x * x),
    "sub(alpha)": (lambda x, y: x.sub(y, alpha=3), lambda x, y: x - 3 * y),
    "mul": (lambda x, y: x.mul(y), lambda x, y: x * y),
    "div": (lambda x, y: x.div(y), lambda x, y: x / y),
    "eq": (lambda x, y: x.eq(y), lambda x, y: x == y),
    "ne": (lambda x, y: x.ne(y), lambda x, y: x != y),
    "gt": (lambda x, y: x.gt(y), lambda x, y: x > y),
    "lt": (lambda x, y: x.lt(y), lambda x, y: x < y),
    "clamp": (lambda x, y: x.clamp(min=-0.5, max=0.5), lambda x, y: x.clip(-0.5, 0.5)),
    "t": (lambda x, y: x.t(), lambda x, y: x.transpose(0, 1)),
    "reshape_as": (lambda x, y: x.reshape_as(y.T), lambda x, y: x.reshape(4, 3)),
    "expand_as": (lambda x, y: x[:1].expand_as(y), lambda x, y: x[:1].broadcast_to(3, 4)),
    "bool": (lambda x, y: x.bool(), lambda x, y: x != 0),
    "tt.log": (lambda x, y: tt.log(x.abs()), lambda x, y: x.abs().log()),
    "tt.sqrt": (lambda x, y: tt.sqrt(x.abs()), lambda x, y: x.abs().sqrt()),
    "tt.pow": (lambda x, y: tt.pow(x, 2), lambda x, y: x ** 2),
    "tt.neg": (lambda x, y: tt.neg(x), lambda x, y: -x),
    "tt.square": (lambda x, y: tt.square(x), lambda x, y: x * x),
    "tt.clip": (lambda x, y: tt.clip(x, 0, 1), lambda x, y: x.clip(0, 1)),
    "tt.maximum": (lambda x, y: tt.maximum(x, y), lambda x, y: x.maximum(y)),
    "tt.minimum": (lambda x, y: tt.minimum(x, y), lambda x, y: x.minimum(y)),
    "tt.min(dim)": (lambda x, y: tt.min(x, 1).values, lambda x, y: x.min(axis=1)),
    "tt.argmin": (lambda x, y: tt.argmin(x, dim=0), lambda x, y: x.argmin(axis=0)),
    "tt.var": (lambda x, y: tt.var(x, 1), lambda x, y: x.var(axis=1, unbiased=True)),
    "tt.squeeze": (lambda x, y: tt.squeeze(x[:1], 0), lambda x, y: x[:1].squeeze(0)),
    "tt.unsqueeze": (lambda x, y: tt.unsqueeze(x, -1), lambda x, y: x.unsqueeze(-1)),
    "tt.transpose": (lambda x, y: tt.transpose(x, 0, 1), lambda x, y: x.T),
    "tt.t": (lambda x, y: tt.t(x), lambda x, y: x.T),
    "tt.permute": (lambda x, y: tt.permute(x, (1, 0)), lambda x, y: x.permute(1, 0)),
    "tt.eq": (lambda x, y: tt.eq(x, y), lambda x, y: x == y),
    "tt.mm": (lambda x, y: tt.mm(x, y.T), lambda x, y: x @ y.T),
    "empty_like": (lambda x, y: tt.empty_like(x), lambda x, y: tt.zeros_like(x)),
    "new_empty": (lambda x, y: x.new_empty(2), lambda x, y: tt.zeros(2)),
}


@pytest.mark.parametrize("name", list(SPELLINGS))
def test_each_pytorch_spelling_equals_the_original(name):
    torch_way, original = SPELLINGS[name]
    got, want = torch_way(Tensor(A), Tensor(C)), original(Tensor(A), Tensor(C))
    assert got.dtype == want.dtype and got.shape == want.shape, name
    np.testing.assert_array_equal(got.data, want.data, err_msg=name)


def test_star_import_keeps_pythons_builtins():
    namespace: dict = {}
    exec("from tinytorch import *", namespace)
    assert "tensor" in namespace and "no_grad" in namespace and "float32" in namespace
    for builtin in ("abs", "bool", "float", "int", "max", "min", "pow", "sum"):
        assert builtin not in namespace, f"`from tinytorch import *` would shadow Python's {builtin}"
