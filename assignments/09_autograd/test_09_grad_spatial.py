"""Module 09 - gradient rules of module 06's ops: conv2d, max_pool2d, avg_pool2d, batch_norm2d.

Each rule is checked against central finite differences in float64 at every input element
(`tinytorch.testing.gradcheck`), for several strides, paddings and kernel shapes.
"""
import numpy as np
import pytest

import tinytorch as tt
from tinytorch.spatial import (BatchNorm2d, Conv2d, GlobalAvgPool2d, MaxPool2d, avg_pool2d, batch_norm2d,
                               conv2d, max_pool2d)
from tinytorch.tensor import Tensor
from tinytorch.testing import assert_close, gradcheck


def rand(*shape, seed=1):
    return np.random.default_rng(seed).standard_normal(shape)


@pytest.mark.parametrize("stride,padding", [(1, 0), (1, 1), (2, 1), ((2, 1), (0, 2))])
def test_conv2d_gradients(stride, padding):
    x, w, b = rand(2, 3, 6, 5), rand(4, 3, 3, 2, seed=2), rand(4, seed=3)
    gradcheck(lambda x, w, b: conv2d(x, w, b, stride, padding), x, w, b, name=f"conv2d s={stride} p={padding}")


def test_conv2d_gradients_without_bias_and_kernel_equal_to_input():
    gradcheck(lambda x, w: conv2d(x, w), rand(2, 2, 3, 3), rand(3, 2, 3, 3, seed=2), name="conv2d 3x3 on 3x3")


def test_conv2d_only_computes_the_gradients_that_are_needed():
    x = Tensor(rand(2, 3, 5, 5), requires_grad=False)
    w = Tensor(rand(4, 3, 3, 3, seed=2), requires_grad=True)
    conv2d(x, w, padding=1).sum().backward()
    assert w.grad is not None and x.grad is None
    assert w.grad.shape == w.shape


@pytest.mark.parametrize("k,s,p", [(2, None, 0), (3, 2, 1), (3, 1, 1), ((2, 3), (1, 2), 0)])
def test_pool_gradients(k, s, p):
    x = rand(2, 3, 7, 6)
    gradcheck(lambda x: max_pool2d(x, k, s, p), x, name=f"max_pool2d k={k} s={s} p={p}")
    gradcheck(lambda x: avg_pool2d(x, k, s, p), x, name=f"avg_pool2d k={k} s={s} p={p}")


def test_max_pool_sends_the_gradient_to_the_first_maximum_of_a_tie():
    x = Tensor(np.array([[[[1.0, 1.0], [1.0, 0.0]]]]), requires_grad=True)
    max_pool2d(x, 2).sum().backward()
    assert_close(x.grad, [[[[1.0, 0.0], [0.0, 0.0]]]],
                 what="ties: the whole gradient goes to the first maximum in reading order (like PyTorch)")


def test_batch_norm_gradients_in_training_and_eval():
    x, w, b = rand(4, 3, 3, 2), rand(3, seed=2), rand(3, seed=3)
    gradcheck(lambda x, w, b: batch_norm2d(x, w, b, None, None, training=True), x, w, b, name="batch_norm2d train")
    rm, rv = Tensor(rand(3, seed=4)), Tensor(np.abs(rand(3, seed=5)) + 0.5)
    gradcheck(lambda x, w, b: batch_norm2d(x, w, b, rm, rv, training=False), x, w, b, name="batch_norm2d eval")


def test_a_small_cnn_end_to_end_float32_matches_float64():
    tt.manual_seed(0)
    model = [Conv2d(2, 4, 3, padding=1), BatchNorm2d(4), MaxPool2d(2), Conv2d(4, 3, 3, stride=2, padding=1)]
    x = rand(3, 2, 8, 8)

    def run(dtype):
        for layer in model:
            layer.to(dtype)
            layer.zero_grad()
        h = Tensor(x, dtype=dtype, requires_grad=True)
        out = h
        for layer in model:
            out = layer(out)
        out = tt.relu(out)
        GlobalAvgPool2d()(out).sum().backward()
        return h.grad.data, model[0].weight.grad.data

    gx64, gw64 = run(np.float64)
    gx32, gw32 = run(np.float32)
    assert gx32.dtype == np.float32
    assert_close(gx32, gx64, atol=1e-4, rtol=1e-3, what="input gradient, float32 vs float64")
    assert_close(gw32, gw64, atol=1e-4, rtol=1e-3, what="first conv weight gradient, float32 vs float64")
