"""Module 06 - Spatial: Conv2d, MaxPool2d, AvgPool2d, BatchNorm2d, GlobalAvgPool2d (forward only).

Every expected value comes from a slow, obviously-correct reference written with Python loops right
here in the test (fine for a 5x5 image; your version must be vectorised). No .backward() here:
the gradients of these ops are module 09's (assignments/09_autograd/test_09_grad_spatial.py).
"""
import numpy as np
import pytest

import tinytorch as tt
from tinytorch.layers import Sequential
from tinytorch.spatial import (AvgPool2d, BatchNorm2d, Conv2d, GlobalAvgPool2d, MaxPool2d, avg_pool2d,
                               batch_norm2d, conv2d, max_pool2d)
from tinytorch.tensor import Tensor, TensorError
from tinytorch.testing import assert_close


@pytest.fixture(autouse=True)
def _seed():
    tt.manual_seed(0)


def rand(*shape, seed=1, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# ---- slow references (loops are fine in a test) -----------------------------------------------------
def pad(x, p, value=0.0):
    return np.pad(x, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])), constant_values=value)


def conv_reference(x, w, b, stride, padding):
    xp = pad(x.astype(np.float64), padding)
    N, C, H, W = xp.shape
    F, _, kh, kw = w.shape
    Ho, Wo = (H - kh) // stride[0] + 1, (W - kw) // stride[1] + 1
    out = np.zeros((N, F, Ho, Wo))
    for n in range(N):
        for f in range(F):
            for i in range(Ho):
                for j in range(Wo):
                    patch = xp[n, :, i * stride[0]:i * stride[0] + kh, j * stride[1]:j * stride[1] + kw]
                    out[n, f, i, j] = (patch * w[f]).sum() + (b[f] if b is not None else 0.0)
    return out


def pool_reference(x, k, s, p, reduce, pad_value):
    xp = pad(x.astype(np.float64), p, pad_value)
    N, C, H, W = xp.shape
    Ho, Wo = (H - k[0]) // s[0] + 1, (W - k[1]) // s[1] + 1
    out = np.zeros((N, C, Ho, Wo))
    for i in range(Ho):
        for j in range(Wo):
            out[:, :, i, j] = reduce(xp[:, :, i * s[0]:i * s[0] + k[0], j * s[1]:j * s[1] + k[1]], axis=(2, 3))
    return out


# ---- conv2d ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("stride,padding", [((1, 1), (0, 0)), ((1, 1), (1, 1)), ((2, 2), (1, 1)), ((1, 2), (2, 0))])
def test_conv2d_matches_the_loop_definition(stride, padding):
    x, w, b = rand(2, 3, 7, 6), rand(4, 3, 3, 2, seed=2), rand(4, seed=3)
    got = conv2d(Tensor(x), Tensor(w), Tensor(b), stride=stride, padding=padding)
    expected = conv_reference(x, w, b, stride, padding)
    assert got.shape == expected.shape, f"output shape: expected {expected.shape}, got {got.shape}"
    assert_close(got, expected, atol=1e-4, what=f"conv2d(stride={stride}, padding={padding})")


def test_conv2d_without_bias_and_with_a_1x1_kernel():
    x, w = rand(2, 5, 4, 4), rand(3, 5, 1, 1, seed=2)
    assert_close(conv2d(Tensor(x), Tensor(w)), conv_reference(x, w, None, (1, 1), (0, 0)), atol=1e-4,
                 what="a 1x1 convolution is a per-pixel Linear over channels")


def test_conv2d_keeps_float64_for_gradient_checks_and_float32_by_default():
    x, w = rand(1, 2, 5, 5, dtype=np.float64), rand(3, 2, 3, 3, seed=2, dtype=np.float64)
    out = conv2d(Tensor(x, dtype=np.float64), Tensor(w, dtype=np.float64), padding=1)
    assert out.dtype == np.float64, f"float64 inputs must give a float64 output, got {out.dtype}"
    assert_close(out, conv_reference(x, w, None, (1, 1), (1, 1)), atol=1e-10, what="float64 conv2d")
    assert conv2d(Tensor(x), Tensor(w)).dtype == np.float32


@pytest.mark.given   # passes with no work in this module: checks code the course gives
def test_conv2d_errors_quote_the_shapes():
    x = Tensor(rand(8, 3, 32, 32))
    with pytest.raises(TensorError, match=r"3 channels.*expects 1.*\(8, 3, 32, 32\).*\(16, 1, 3, 3\)"):
        conv2d(x, Tensor(rand(16, 1, 3, 3)))
    with pytest.raises(TensorError, match=r"4-D.*\(3, 32, 32\).*unsqueeze"):
        conv2d(Tensor(rand(3, 32, 32)), Tensor(rand(16, 3, 3, 3)))
    with pytest.raises(TensorError, match=r"kernel height 5 is larger than the padded input height 2"):
        conv2d(Tensor(rand(1, 1, 2, 8)), Tensor(rand(1, 1, 5, 5)))
    with pytest.raises(TensorError, match="floating-point"):
        conv2d(Tensor(np.zeros((1, 1, 4, 4), dtype=np.uint8)), Tensor(rand(1, 1, 3, 3)))
    with pytest.raises(TensorError, match="stride"):
        conv2d(x, Tensor(rand(4, 3, 3, 3)), stride=0)


def test_conv2d_layer_has_pytorch_shapes_init_and_flops():
    layer = Conv2d(3, 16, 3, padding=1)
    assert layer.weight.shape == (16, 3, 3, 3) and layer.bias.shape == (16,)
    bound = 1 / np.sqrt(3 * 9)
    assert np.abs(layer.weight.data).max() <= bound, "init: weights uniform in +-1/sqrt(C_in*kH*kW) (PyTorch)"
    assert layer.weight.data.std() > bound / 3, "init: the weights must not all be (close to) zero"
    assert [n for n, _ in layer.named_parameters()] == ["weight", "bias"]
    out = layer(Tensor(rand(2, 3, 8, 8)))
    assert out.shape == (2, 16, 8, 8)
    assert layer.flops((2, 3, 8, 8), (2, 16, 8, 8)) == 2 * 2 * 16 * 8 * 8 * 3 * 3 * 3
    assert Conv2d(3, 4, 3, bias=False).bias is None
    assert "kernel_size=(3, 3)" in repr(layer)


def python_lines_in_spatial(fn) -> int:
    """How many lines of tinytorch/spatial.py Python executes while `fn()` runs (not a timing)."""
    import sys
    count = 0

    def trace(frame, event, arg):
        nonlocal count
        if not frame.f_code.co_filename.replace("\\", "/").endswith("tinytorch/spatial.py"):
            return None                      # other files: no line events (their calls still reach us)
        if event == "line":
            count += 1
        return trace
    previous = sys.gettrace()
    sys.settrace(trace)
    try:
        fn()
    finally:
        sys.settrace(previous)
    return count


@pytest.mark.parametrize("op", ["conv2d", "max_pool2d", "avg_pool2d"])
def test_the_python_work_does_not_grow_with_the_batch_or_the_image(op):
    """Vectorised means: the Python lines run are the same for 1 small image and for 8 large ones;
    loops over output positions or images would run 64 to 128 times more. (Loops over the kh x kw
    kernel offsets are fine: their count does not depend on the image.)"""
    w = Tensor(rand(4, 3, 3, 3))
    calls = {"conv2d": lambda x: conv2d(x, w, stride=1, padding=1), "max_pool2d": lambda x: max_pool2d(x, 2, 2),
             "avg_pool2d": lambda x: avg_pool2d(x, 2, 2)}[op]
    small = python_lines_in_spatial(lambda: calls(Tensor(rand(1, 3, 4, 4))))
    large = python_lines_in_spatial(lambda: calls(Tensor(rand(8, 3, 32, 32))))
    assert large <= small + 5, (f"{op}: Python ran {small} lines of spatial.py for one 4x4 image but {large} for "
                                "eight 32x32 images: a loop over output positions or images (use one matrix "
                                "product over all windows instead)")


def test_conv2d_on_a_batch_matches_the_definition_image_by_image():
    x = Tensor(rand(4, 8, 12, 12))
    layer = Conv2d(8, 16, 3, padding=1)
    out = layer(x)
    assert out.shape == (4, 16, 12, 12)
    ref = conv_reference(x.data, layer.weight.data, layer.bias.data, (1, 1), (1, 1))
    assert_close(out.data, ref, atol=1e-4, what="a batch of 4 images")


def saved_value(out, name, position):
    """The value `out`'s op saved as `name` (named fields) or at `position` (the README's tuple order)."""
    saved = out._ctx.saved
    return getattr(saved, name) if hasattr(saved, name) else saved[position]


@pytest.mark.parametrize("op", ["conv2d", "max_pool2d", "avg_pool2d"])
def test_saved_kernel_stride_and_padding_are_pairs_of_ints(op):
    """The README's contract with module 09: whatever form the arguments took (an int or a pair),
    the op saves (height, width) pairs of ints, which module 09's gradient rules unpack."""
    x = Tensor(rand(1, 3, 7, 7), requires_grad=True)
    if op == "conv2d":
        out = conv2d(x, Tensor(rand(2, 3, 3, 3), requires_grad=True), stride=2, padding=1)
        expected = {"stride": (0, (2, 2)), "padding": (1, (1, 1))}
    else:
        out = (max_pool2d if op == "max_pool2d" else avg_pool2d)(x, 3, 2, 1)
        expected = {"kernel": (0, (3, 3)), "stride": (1, (2, 2)), "padding": (2, (1, 1))}
    assert out._ctx is not None and out._ctx.op == op, f"{op} must record op {op!r} on the graph"
    for name, (position, pair) in expected.items():
        got = saved_value(out, name, position)
        assert isinstance(got, tuple) and got == pair and all(type(v) is int for v in got), \
            f"{op} must save {name} as the pair {pair} of ints (module 09 unpacks it), got {got!r}"


# ---- pooling -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("k,s,p", [((2, 2), (2, 2), (0, 0)), ((3, 3), (2, 2), (1, 1)), ((3, 3), (1, 1), (1, 1)),
                                   ((2, 3), (1, 2), (0, 0))])
def test_pooling_matches_the_loop_definition(k, s, p):
    x = rand(2, 3, 7, 6)
    assert_close(max_pool2d(Tensor(x), k, s, p), pool_reference(x, k, s, p, np.max, -np.inf), what="max_pool2d")
    assert_close(avg_pool2d(Tensor(x), k, s, p), pool_reference(x, k, s, p, np.mean, 0.0), atol=1e-6,
                 what="avg_pool2d (zero padding counts in the mean, as PyTorch's count_include_pad=True)")


def test_pool_stride_defaults_to_kernel_size_and_odd_sizes_round_down():
    x = Tensor(rand(1, 2, 31, 31))
    out = MaxPool2d(2)(x)
    assert out.shape == (1, 2, 15, 15), f"31x31 pooled by 2 is 15x15 (floor), got {out.shape}"
    assert_close(out, pool_reference(x.data, (2, 2), (2, 2), (0, 0), np.max, 0), what="MaxPool2d(2)")
    assert AvgPool2d(2)(x).shape == (1, 2, 15, 15)


@pytest.mark.given   # passes with no work in this module: checks code the course gives
def test_pool_errors():
    with pytest.raises(TensorError, match="4-D"):
        max_pool2d(Tensor(rand(2, 4, 4)), 2)
    with pytest.raises(TensorError, match="kernel height 3 is larger"):
        max_pool2d(Tensor(rand(1, 1, 2, 2)), 3)
    with pytest.raises(TensorError, match="padding"):
        avg_pool2d(Tensor(rand(1, 1, 8, 8)), 2, padding=2)


def test_global_avg_pool():
    x = rand(3, 5, 4, 6)
    got = GlobalAvgPool2d()(Tensor(x))
    assert got.shape == (3, 5)
    assert_close(got, x.mean(axis=(2, 3)), atol=1e-6, what="GlobalAvgPool2d")


# ---- batch norm --------------------------------------------------------------------------------------
def test_batch_norm_training_normalises_each_channel_and_updates_running_stats():
    x = rand(8, 3, 5, 5) * 3 + 2
    bn = BatchNorm2d(3, momentum=0.1)
    bn.weight.data[:] = [1.0, 2.0, 0.5]
    bn.bias.data[:] = [0.0, 1.0, -1.0]
    out = bn(Tensor(x)).data
    mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
    xhat = (x - mean[None, :, None, None]) / np.sqrt(var[None, :, None, None] + 1e-5)
    expected = xhat * bn.weight.data[None, :, None, None] + bn.bias.data[None, :, None, None]
    assert_close(out, expected, atol=1e-4, what="BatchNorm2d training output")
    n = 8 * 5 * 5
    assert_close(bn.running_mean, 0.1 * mean, atol=1e-5, what="running_mean = 0.9*0 + 0.1*batch mean")
    assert_close(bn.running_var, 0.9 + 0.1 * var * n / (n - 1), atol=1e-5,
                 what="running_var = 0.9*1 + 0.1*unbiased batch variance (PyTorch's convention)")


def test_batch_norm_eval_uses_running_stats_and_leaves_them_alone():
    bn = BatchNorm2d(2)
    bn.running_mean.data[:] = [1.0, -1.0]
    bn.running_var.data[:] = [4.0, 0.25]
    bn.eval()
    x = rand(4, 2, 3, 3)
    out = bn(Tensor(x)).data
    expected = (x - np.array([1.0, -1.0])[None, :, None, None]) / np.sqrt(np.array([4.0, 0.25]) + 1e-5)[None, :, None, None]
    assert_close(out, expected, atol=1e-5, what="BatchNorm2d in eval mode")
    assert_close(bn.running_mean, [1.0, -1.0], what="eval mode must not update running_mean")
    assert {n for n, _ in bn.named_buffers()} == {"running_mean", "running_var"}
    assert set(bn.state_dict()) == {"weight", "bias", "running_mean", "running_var"}


def test_batch_norm_functional_and_errors():
    x = Tensor(rand(4, 3, 2, 2))
    out = batch_norm2d(x, None, None, None, None, training=True)
    assert_close(out.data.mean(axis=(0, 2, 3)), np.zeros(3), atol=1e-5, what="per-channel mean after normalising")
    with pytest.raises(TensorError, match=r"has shape \(4,\) but the input has 3 channels"):
        BatchNorm2d(4)(x)
    with pytest.raises(TensorError, match="more than one value per channel"):
        BatchNorm2d(3)(Tensor(rand(1, 3, 1, 1)))


# ---- a small CNN --------------------------------------------------------------------------------------
def test_a_small_cnn_runs_forward_and_switches_modes():
    from tinytorch.layers import Flatten, Linear, ReLU
    model = Sequential(Conv2d(1, 4, 3, padding=1), BatchNorm2d(4), ReLU(), MaxPool2d(2),
                       Conv2d(4, 8, 3), ReLU(), GlobalAvgPool2d(), Flatten(), Linear(8, 10))
    x = Tensor(rand(5, 1, 12, 12))
    assert model(x).shape == (5, 10)
    model.eval()
    assert not model[1].training
    before = model[1].running_mean.data.copy()
    model(x)
    assert_close(model[1].running_mean, before, what="eval() must freeze the running statistics")
