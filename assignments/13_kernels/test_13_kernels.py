"""Module 13 - Kernels: every fast path gives the same values AND gradients as the plain version.

The plain versions are modules 06 (conv2d, max_pool2d, batch_norm2d), 03 (relu) and 05
(cross_entropy) with module 09's gradient rules; each fast op is also gradient-checked against
finite differences (float64).
"""
import numpy as np
import pytest

import tinytorch as tt
from tinytorch import kernels, spatial
from tinytorch.networks import cross_entropy
from tinytorch.tensor import Tensor, TensorError
from tinytorch.testing import assert_close, gradcheck


def rand(*shape, seed=1, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def value_and_grads(fn, *arrays):
    """fn(*tensors) and the gradients of sum(out * w) for a fixed random weighting w."""
    tensors = [Tensor(a, dtype=a.dtype, requires_grad=True) for a in arrays]
    out = fn(*tensors)
    weight = np.random.default_rng(7).standard_normal(out.shape)
    (out * Tensor(weight, dtype=out.dtype)).sum().backward()
    return out.data, [t.grad.data for t in tensors]


def assert_same(fast, plain, *arrays, atol=1e-9, what=""):
    got, got_grads = value_and_grads(fast, *arrays)
    want, want_grads = value_and_grads(plain, *arrays)
    assert_close(got, want, atol=atol, what=f"{what}: forward value, fast vs plain")
    for k, (g, w) in enumerate(zip(got_grads, want_grads)):
        assert_close(g, w, atol=atol, what=f"{what}: gradient of input {k}, fast vs plain")


# ---- conv2d ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("stride,padding", [(1, 0), (1, 1), (1, 2), (2, 1), ((1, 2), (0, 1))])
def test_fast_conv2d_equals_module06_conv2d(stride, padding):
    x, w, b = rand(2, 3, 7, 6), rand(4, 3, 3, 2, seed=2), rand(4, seed=3)
    assert_same(lambda x, w, b: kernels.conv2d(x, w, b, stride, padding),
                lambda x, w, b: spatial.conv2d(x, w, b, stride, padding), x, w, b,
                what=f"conv2d stride={stride} padding={padding}")
    gradcheck(lambda x, w, b: kernels.conv2d(x, w, b, stride, padding), x, w, b, name="fast conv2d")


def test_fast_conv2d_on_one_channel_images_without_padding():
    # (N, 1, H, W) images seen as NHWC have a size-1 channel axis whose stride NumPy leaves arbitrary: the
    # windows must step through each row by the item size, not by that stride (MNIST-shaped input).
    x, w, b = rand(2, 1, 8, 7), rand(3, 1, 2, 3, seed=2), rand(3, seed=3)
    assert_same(lambda x, w, b: kernels.conv2d(x, w, b), lambda x, w, b: spatial.conv2d(x, w, b), x, w, b,
                what="conv2d of one-channel images")
    assert_same(lambda x, w, b: kernels.conv2d_maxpool2d(x, w, b),
                lambda x, w, b: spatial.max_pool2d(spatial.conv2d(x, w, b), 2), x, w, b,
                what="conv2d + max-pool of one-channel images")


def test_fast_conv2d_input_gradient_is_a_convolution_of_the_output_gradient():
    # the rotated-kernel trick must also hold for a 1x1 kernel and a kernel as large as the input
    for k, hw in ((1, 4), (4, 4)):
        x, w = rand(2, 3, hw, hw), rand(5, 3, k, k, seed=2)
        assert_same(lambda x, w: kernels.conv2d(x, w), lambda x, w: spatial.conv2d(x, w), x, w, what=f"{k}x{k} conv")


def test_fast_conv2d_float32_close_to_float64():
    x, w = rand(4, 8, 9, 9), rand(16, 8, 3, 3, seed=2)
    got, grads32 = value_and_grads(lambda x, w: kernels.conv2d(x, w, padding=1), x.astype(np.float32), w.astype(np.float32))
    want, grads64 = value_and_grads(lambda x, w: kernels.conv2d(x, w, padding=1), x, w)
    assert got.dtype == np.float32 and grads32[0].dtype == np.float32
    assert_close(got, want, atol=1e-4, rtol=1e-4, what="float32 forward")
    for g32, g64 in zip(grads32, grads64):
        assert_close(g32, g64, atol=1e-3, rtol=1e-4, what="float32 gradients")


@pytest.mark.given   # passes with no work in this module: checks code the course gives
def test_fast_conv2d_errors_quote_shapes():
    with pytest.raises(TensorError, match=r"3 channels.*expects 1.*\(2, 3, 8, 8\).*\(4, 1, 3, 3\)"):
        kernels.conv2d(Tensor(rand(2, 3, 8, 8)), Tensor(rand(4, 1, 3, 3)))
    with pytest.raises(TensorError, match="kernel height 5 is larger"):
        kernels.conv2d(Tensor(rand(1, 1, 3, 3)), Tensor(rand(1, 1, 5, 5)))


# ---- conv + max-pool, max-pool --------------------------------------------------------------------------
@pytest.mark.parametrize("hw,padding", [(7, 1), (8, 1), (6, 0)])
def test_conv2d_maxpool2d_equals_conv_then_pool(hw, padding):
    x, w, b = rand(2, 3, hw, hw), rand(4, 3, 3, 3, seed=2), rand(4, seed=3)
    assert_same(lambda x, w, b: kernels.conv2d_maxpool2d(x, w, b, padding),
                lambda x, w, b: spatial.max_pool2d(spatial.conv2d(x, w, b, 1, padding), 2), x, w, b,
                what=f"conv+pool {hw}x{hw} padding={padding}")
    gradcheck(lambda x, w, b: kernels.conv2d_maxpool2d(x, w, b, padding), x, w, b, name="conv2d_maxpool2d")


@pytest.mark.parametrize("hw", [(6, 6), (7, 5)])
def test_fast_max_pool_equals_module06(hw):
    x = rand(2, 3, *hw)
    assert_same(lambda x: kernels.max_pool2d(x, 2), lambda x: spatial.max_pool2d(x, 2), x, what="max_pool2d 2x2")
    gradcheck(lambda x: kernels.max_pool2d(x, 2), x, name="fast max_pool2d")


def test_fast_max_pool_ties_go_to_the_first_maximum_like_module06():
    x = np.array([[[[1.0, 1.0], [1.0, 1.0]], [[0.0, 2.0], [2.0, 2.0]]]])    # (1, 2, 2, 2): ties everywhere
    assert_same(lambda x: kernels.max_pool2d(x, 2), lambda x: spatial.max_pool2d(x, 2), x, what="ties")


def test_fast_max_pool_falls_back_to_module06_for_other_shapes():
    x = rand(1, 2, 8, 8)
    assert_close(kernels.max_pool2d(Tensor(x), 2), spatial.max_pool2d(Tensor(x), 2), what="the fast 2x2 pool")
    x = rand(1, 2, 7, 7)
    assert_close(kernels.max_pool2d(Tensor(x), 3, 2, 1), spatial.max_pool2d(Tensor(x), 3, 2, 1), what="3x3/2 pool")


# ---- batch norm + ReLU ---------------------------------------------------------------------------------
@pytest.mark.given   # passes with no work in this module: the checks are module 06's given code
def test_fast_max_pool_raises_module06_errors():
    for x in (Tensor(rand(1, 2, 1, 3)), Tensor(rand(2, 3, 3)), Tensor(np.ones((1, 1, 4, 4), dtype=np.int64))):
        messages = []
        for fn in (kernels.max_pool2d, spatial.max_pool2d):
            with pytest.raises(TensorError) as err:
                fn(x, 2)
            messages.append(str(err.value))
        assert messages[0] == messages[1], f"module 13 must raise module 06's error, got {messages}"


def test_batch_norm_relu_equals_batch_norm_then_relu_in_training():
    x, w, b = rand(4, 3, 3, 2), rand(3, seed=2), rand(3, seed=3)
    assert_same(lambda x, w, b: kernels.batch_norm_relu(x, w, b, training=True),
                lambda x, w, b: tt.relu(spatial.batch_norm2d(x, w, b, None, None, training=True)), x, w, b,
                what="batch_norm_relu (training)")
    gradcheck(lambda x, w, b: kernels.batch_norm_relu(x, w, b, training=True), x, w, b, name="batch_norm_relu train")


def test_batch_norm_relu_in_eval_and_running_statistics_match_module06():
    x, w, b = rand(4, 3, 3, 2), rand(3, seed=2), rand(3, seed=3)
    rm, rv = Tensor(rand(3, seed=4)), Tensor(np.abs(rand(3, seed=5)) + 0.5)
    assert_same(lambda x, w, b: kernels.batch_norm_relu(x, w, b, rm, rv, training=False),
                lambda x, w, b: tt.relu(spatial.batch_norm2d(x, w, b, rm, rv, training=False)), x, w, b,
                what="batch_norm_relu (eval)")
    fast, plain = kernels.BatchNormReLU2d(3), spatial.BatchNorm2d(3)
    for seed in range(3):
        batch = Tensor(rand(5, 3, 4, 4, seed=seed, dtype=np.float32) * 2 + 1)
        fast(batch), plain(batch)
    assert_close(fast.running_mean, plain.running_mean, atol=1e-6, what="running_mean")
    assert_close(fast.running_var, plain.running_var, atol=1e-6, what="running_var")
    assert set(fast.state_dict()) == set(plain.state_dict()), "same state-dict keys as BatchNorm2d"


def test_batch_norm_relu_keeps_module06_contract_on_bad_input_and_tiny_batches():
    """Same errors as batch_norm2d (one value per channel has no variance: module 13 once skipped that
    check and divided by max(M - 1, 1)), and the same unbiased running variance at the smallest batch."""
    C = 2
    ok = dict(weight=Tensor(np.ones(C)), bias=Tensor(np.zeros(C)), running_mean=Tensor(np.zeros(C)),
              running_var=Tensor(np.ones(C)))
    bad_calls = {
        "one value per channel": (Tensor(rand(1, C, 1, 1)), ok, True),
        "weight of the wrong size": (Tensor(rand(2, C, 2, 2)), {**ok, "weight": Tensor(np.ones(C + 1))}, True),
        "eval without running stats": (Tensor(rand(2, C, 2, 2)), {**ok, "running_var": None}, False),
        "not an image": (Tensor(rand(2, C, 2)), ok, True),
    }
    for what, (x, params, training) in bad_calls.items():
        messages = []
        for fn, op in ((spatial.batch_norm2d, "batch_norm2d"), (kernels.batch_norm_relu, "batch_norm_relu")):
            with pytest.raises(TensorError) as err:
                fn(x, params["weight"], params["bias"], params["running_mean"], params["running_var"], training)
            messages.append(str(err.value).replace(op, "<op>"))
        assert messages[0] == messages[1], f"{what}: module 13 must raise module 06's error, got {messages}"
    x = Tensor(rand(2, C, 1, 1, seed=9))                      # M = 2 values per channel: the smallest batch
    fast, plain = kernels.BatchNormReLU2d(C), spatial.BatchNorm2d(C)
    fast(x), plain(x)
    assert_close(fast.running_var, plain.running_var, atol=1e-6, what="running_var after a 2-value batch")
    assert_close(plain.running_var.data, 0.9 + 0.1 * x.data.reshape(2, C).var(axis=0, ddof=1), atol=1e-6,
                 what="module 06's running variance is unbiased (divides by M - 1)")


# ---- softmax cross-entropy -----------------------------------------------------------------------------
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_softmax_cross_entropy_equals_module05(smoothing):
    logits, targets = rand(6, 5) * 3, np.array([0, 4, 1, 1, 3, 2])
    assert_same(lambda z: kernels.softmax_cross_entropy(z, targets, smoothing),
                lambda z: cross_entropy(z, targets, label_smoothing=smoothing), logits,
                what=f"softmax_cross_entropy smoothing={smoothing}")
    gradcheck(lambda z: kernels.softmax_cross_entropy(z, targets, smoothing), logits, name="softmax_cross_entropy")


def test_softmax_cross_entropy_is_stable_and_checks_targets():
    big = Tensor(np.array([[1e4, 0.0], [0.0, -1e4]], dtype=np.float32))
    loss = kernels.softmax_cross_entropy(big, np.array([0, 0]))
    assert np.isfinite(loss.item()) and abs(loss.item()) < 1e-6
    with pytest.raises(TensorError, match=r"targets must be in \[0, 2\)"):
        kernels.softmax_cross_entropy(big, np.array([0, 2]))
    with pytest.raises(TensorError, match="integer class indices"):
        kernels.softmax_cross_entropy(big, np.array([0.0, 1.0]))


# ---- whitening folded into the first conv ----------------------------------------------------------------
def test_whitened_conv_equals_whitening_conv_then_conv():
    whitening, x, w = rand(6, 3, 2, 2, seed=5), rand(2, 3, 8, 8), rand(4, 6, 3, 3, seed=2)
    assert_same(lambda x, w: kernels.conv2d_maxpool2d(x, kernels.whitened_conv_weight(w, whitening), None, 1),
                lambda x, w: spatial.max_pool2d(spatial.conv2d(spatial.conv2d(x, Tensor(whitening), padding=1), w), 2),
                x, w, what="whitening conv + conv folded into one conv")
    gradcheck(lambda w: kernels.conv2d(Tensor(x), kernels.whitened_conv_weight(w, whitening), None, 1, 1), w,
              name="whitened conv weight")


@pytest.mark.given   # patch_whitening is given code (the whitened network is yours)
def test_patch_whitening_makes_patches_uncorrelated_with_unit_variance():
    images = rand(64, 3, 10, 10, dtype=np.float32)
    images[:, 1] += 0.8 * images[:, 0]                          # correlate two channels
    filters = kernels.patch_whitening(images, kernel_size=2, eps=0.0)
    assert filters.shape == (12, 3, 2, 2)
    # the filters applied to every 2x2 patch, in NumPy (no convolution of yours needed)
    patches = np.lib.stride_tricks.sliding_window_view(images.astype(np.float64), (2, 2), axis=(2, 3))
    z = np.einsum("nchwij,fcij->fnhw", patches, filters.astype(np.float64))
    cov = np.cov(z.reshape(12, -1))
    assert_close(cov, np.eye(12), atol=0.05, what="covariance of whitened patches")


def test_whitened_conv_module_is_frozen_except_the_conv():
    layer = kernels.WhitenedConv2d(rand(6, 3, 2, 2, dtype=np.float32), 8, pool=True)
    assert [n for n, _ in layer.named_parameters()] == ["weight"], "the whitening filters must not be learned"
    assert "whitening_weight" in layer.state_dict()
    out = layer(Tensor(rand(2, 3, 16, 16, dtype=np.float32)))
    assert out.shape == (2, 8, 7, 7)          # 16 + 2 - 4 + 1 = 15 -> pooled to 7


# ---- layers and a whole network ----------------------------------------------------------------------------
def test_fast_network_matches_the_plain_network_values_and_gradients():
    tt.manual_seed(0)
    fast = [kernels.FastConv2d(3, 4, 3, padding=1, bias=False), kernels.BatchNormReLU2d(4),
            kernels.ConvMaxPool2d(4, 6, 3, padding=1)]
    plain = [spatial.Conv2d(3, 4, 3, padding=1, bias=False), spatial.BatchNorm2d(4), spatial.Conv2d(4, 6, 3, padding=1, bias=False)]
    for f, p in zip(fast, plain):
        p.load_state_dict(f.state_dict())
        f.to(np.float64), p.to(np.float64)
    x = rand(3, 3, 9, 9)

    def run_fast(x):
        return kernels.GlobalMaxPool2d()(fast[2](fast[1](fast[0](x))))

    def run_plain(x):
        h = tt.relu(plain[1](plain[0](x)))
        return spatial.max_pool2d(plain[2](h), 2).max(axis=(2, 3))

    got, (gx_fast,) = value_and_grads(run_fast, x)
    grads_fast = [layer.weight.grad.data for layer in fast]
    for layer in fast + plain:
        layer.zero_grad()
    want, (gx_plain,) = value_and_grads(run_plain, x)
    assert_close(got, want, atol=1e-9, what="network output")
    assert_close(gx_fast, gx_plain, atol=1e-9, what="input gradient")
    for k, (gf, layer) in enumerate(zip(grads_fast, plain)):
        assert_close(gf, layer.weight.grad.data, atol=1e-9, what=f"weight gradient of layer {k}")
