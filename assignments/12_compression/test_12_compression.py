"""Module 12 - Compression: int8 quantization, pruning, and the report that measures both."""
from __future__ import annotations

import copy
import os
from pathlib import Path

import numpy as np
import pytest

import tinytorch as tt
from tinytorch.compression import (MinMaxObserver, PercentileObserver, QuantizedConv2d, QuantizedLinear,
                                   accuracy, affine_qparams, apply_masks, channel_prune, compression_report,
                                   dequantize_affine, dequantize_per_channel, format_report, magnitude_prune,
                                   quantize_affine, quantize_model, quantize_per_channel, sparsity)

REPO = Path(__file__).resolve().parents[2]


# ---- a small MNIST-like problem the tests make themselves -----------------------------------------------
def synthetic_digits(n_train=3000, n_test=2000, seed=0):
    """10 classes of 784 'pixels' in [0, 1]: noisy, contrast-scaled class prototypes that overlap
    enough that a small MLP gets about 92% right (so a quantization error would show)."""
    rng = np.random.default_rng(seed)
    protos = (rng.random((10, 784)) < 0.25).astype(np.float32)

    def make(n):
        y = rng.integers(0, 10, n)
        x = protos[y] * rng.uniform(0.3, 1.0, (n, 1)) + rng.normal(0.0, 1.5, (n, 784))
        return np.clip(x, 0.0, 1.0).astype(np.float32), y.astype(np.int64)

    return make(n_train) + make(n_test)


@pytest.fixture(scope="module")
def trained_mlp():
    x_train, y_train, x_test, y_test = synthetic_digits()
    tt.manual_seed(0)
    model = tt.nn.Sequential(tt.nn.Linear(784, 64), tt.nn.ReLU(), tt.nn.Linear(64, 10))
    opt = tt.optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    for _ in range(3):
        order = rng.permutation(len(x_train))
        for i in range(0, len(order), 100):
            rows = order[i:i + 100]
            loss = tt.nn.cross_entropy(model(tt.Tensor(x_train[rows])), y_train[rows])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model, x_train, y_train, x_test, y_test


# ---- quantization arithmetic ---------------------------------------------------------------------------
def test_12_per_channel_quantization_uses_one_scale_per_output_row():
    w = np.random.default_rng(0).normal(size=(5, 7)).astype(np.float32)
    w[2] *= 100                                    # one row of large weights must not crush the others
    q, scale = quantize_per_channel(w)
    assert q.dtype == np.int8 and q.shape == w.shape
    assert scale.dtype == np.float32 and scale.shape == (5,)
    np.testing.assert_allclose(scale, np.abs(w).max(axis=1) / 127, rtol=1e-6)
    assert (np.abs(q).max(axis=1) == 127).all()    # each row's largest weight uses the full range
    err = np.abs(dequantize_per_channel(q, scale) - w)
    assert (err <= scale[:, None] / 2 + 1e-6).all()  # rounding error at most half a step, per row


def test_12_per_channel_quantization_of_conv_filters_and_zero_rows():
    w = np.random.default_rng(1).normal(size=(4, 3, 3, 3)).astype(np.float32)
    w[1] = 0
    q, scale = quantize_per_channel(w, axis=0)
    assert scale.shape == (4,) and scale[1] == 1.0 and (q[1] == 0).all()
    np.testing.assert_allclose(dequantize_per_channel(q, scale), w, atol=float(scale.max()) / 2 + 1e-6)
    with pytest.raises(ValueError, match="floating-point"):
        quantize_per_channel(np.ones((2, 2), dtype=np.int64))


def test_12_affine_qparams_cover_the_range_and_zero_exactly():
    scale, zp = affine_qparams(0.0, 1.0)            # pixels / post-ReLU activations: all >= 0
    assert zp == -128 and scale == pytest.approx(1 / 255)
    scale, zp = affine_qparams(-1.0, 3.0)
    assert scale == pytest.approx(4 / 255) and -128 <= zp <= 127
    assert dequantize_affine(quantize_affine(np.array([0.0]), scale, zp), scale, zp)[0] == 0.0
    scale, zp = affine_qparams(2.0, 5.0)            # widened to contain 0
    assert scale == pytest.approx(5 / 255)
    with pytest.raises(ValueError, match="lo <= hi"):
        affine_qparams(1.0, -1.0)


def test_12_affine_round_trip_error_and_saturation():
    x = np.linspace(-2, 6, 1001).astype(np.float32)
    scale, zp = affine_qparams(-2.0, 6.0)
    q = quantize_affine(x, scale, zp)
    assert q.dtype == np.int8 and q.min() == -128 and q.max() == 127
    assert np.abs(dequantize_affine(q, scale, zp) - x).max() <= scale / 2 + 1e-6
    outside = quantize_affine(np.array([-100.0, 100.0]), scale, zp)
    np.testing.assert_array_equal(outside, [-128, 127])   # saturates instead of wrapping around


def test_12_observers_minmax_and_percentile():
    obs = MinMaxObserver()
    obs.observe(np.array([0.5, 2.0]))
    obs.observe(np.array([-1.0, 0.0]))
    assert obs.range() == (-1.0, 2.0)
    rng = np.random.default_rng(0)
    data = rng.normal(size=100_000).astype(np.float32)
    data[:5] = 1000.0                                       # rare outliers
    pct = PercentileObserver(99.9)
    pct.observe(data)
    lo, hi = pct.range()
    assert 2.5 < hi < 4.0 and -4.0 < lo < -2.5              # the outliers do not stretch the range
    with pytest.raises(ValueError, match="no data"):
        MinMaxObserver().range()
    scale, zp = affine_qparams(*pct.range())                # the range becomes the int8 mapping
    assert scale == pytest.approx((hi - lo) / 255) and -128 <= zp <= 127


# ---- quantized layers --------------------------------------------------------------------------------------
def test_12_quantized_linear_matches_the_float_layer():
    tt.manual_seed(0)
    layer = tt.nn.Linear(20, 6)
    x = np.random.default_rng(0).uniform(-1, 3, (8, 20)).astype(np.float32)
    q = QuantizedLinear.from_float(layer, (float(x.min()), float(x.max())))
    assert q.weight.dtype == np.int8 and q.weight.shape == (6, 20)
    got = q(tt.Tensor(x))
    assert got.shape == (8, 6) and got.dtype == np.float32
    want = layer(tt.Tensor(x)).data
    assert np.abs(got.data - want).max() < 0.02 * np.abs(want).max()
    # the accumulator is exactly the integer dot product an int8 kernel computes
    s, z = float(q.input_scale.data), int(q.input_zero_point.data)
    xq = quantize_affine(x, s, z).astype(np.int64) - z
    acc = xq @ q.weight.data.astype(np.int64).T
    expected = acc * (s * q.weight_scale.data.astype(np.float64)) + layer.bias.data
    np.testing.assert_allclose(got.data, expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="expects 20"):
        q(tt.Tensor(np.zeros((2, 5), dtype=np.float32)))


def test_12_quantized_conv2d_matches_the_float_layer():
    tt.manual_seed(1)
    conv = tt.nn.Conv2d(3, 4, 3, padding=1)
    x = np.random.default_rng(1).uniform(0, 1, (2, 3, 8, 8)).astype(np.float32)
    q = QuantizedConv2d.from_float(conv, (0.0, 1.0))
    got = q(tt.Tensor(x)).data
    want = conv(tt.Tensor(x)).data
    assert got.shape == want.shape == (2, 4, 8, 8)
    assert np.abs(got - want).max() < 0.02 * np.abs(want).max()


def test_12_quantize_model_replaces_linear_layers_and_leaves_the_original(trained_mlp):
    model, x_train, *_ = trained_mlp
    before = {k: v.copy() for k, v in model.state_dict().items()}
    qmodel = quantize_model(model, x_train[:300])
    assert isinstance(qmodel[0], QuantizedLinear) and isinstance(qmodel[2], QuantizedLinear)
    assert isinstance(qmodel[1], tt.nn.ReLU)
    assert isinstance(model[0], tt.nn.Linear)                 # the float model is untouched
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    assert set(qmodel.state_dict()) >= {"0.weight", "0.weight_scale", "0.bias", "2.weight"}
    lo = float(qmodel[2].input_scale.data) * (-128 - int(qmodel[2].input_zero_point.data))
    assert abs(lo) < 1e-6                                      # ReLU outputs >= 0: zero maps to -128
    with pytest.raises(ValueError, match="no Linear or Conv2d"):
        quantize_model(tt.nn.Sequential(tt.nn.ReLU()), x_train[:10])
    with pytest.raises(ValueError, match="empty"):
        quantize_model(model, [])


def test_12_quantized_mlp_keeps_accuracy_within_one_point_at_4x_smaller_weights(trained_mlp):
    model, x_train, _, x_test, y_test = trained_mlp
    for method in ("minmax", "percentile"):
        qmodel = quantize_model(model, [x_train[:500], x_train[500:1000]], method=method)
        report = compression_report(model, qmodel, x_test, y_test)
        assert report["accuracy_before"] > 0.85, report              # the float model learned something
        assert report["accuracy_drop_points"] <= 1.0, report
        assert 3.9 <= report["weight_compression_ratio"] <= 4.0, report
        assert report["compression_ratio"] > 3.8, report
        assert report["bytes_before"] == tt.nn.model_bytes(model)
        assert report["examples"] == len(y_test)
    text = format_report(report)
    assert "x3.9" in text and "accuracy" in text


@pytest.mark.slow
def test_12_real_mnist_mlp_from_milestone_1_quantizes_within_one_point():
    data_dir = os.environ.get("TINYTORCH_DATA")
    weights = REPO / "milestones" / "weights" / "m1_mlp.npz"
    if not data_dir:
        pytest.skip("TINYTORCH_DATA is not set: the real-MNIST check needs mnist.npz")
    if not weights.exists():
        pytest.skip(f"{weights} does not exist yet (milestones/train_reference_weights.py makes it)")
    from tinytorch.datasets import load_mnist
    x_train, _, x_test, y_test = load_mnist(data_dir=data_dir, download=False)
    with np.load(weights) as archive:
        state = {k: archive[k] for k in archive.files}
    linear_keys = sorted({int(k.split(".")[0]) for k in state if k.endswith(".weight")})
    layers = []
    for i, key in enumerate(linear_keys):
        out_f, in_f = state[f"{key}.weight"].shape
        layers.append(tt.nn.Linear(in_f, out_f))
        if i < len(linear_keys) - 1:
            layers.append(tt.nn.ReLU())
    model = tt.nn.Sequential(*layers)
    model.load_state_dict(state)
    prep = lambda images: images.reshape(len(images), -1).astype(np.float32) / 255.0  # noqa: E731
    qmodel = quantize_model(model, prep(x_train[:1000]))
    report = compression_report(model, qmodel, prep(x_test), y_test)
    assert report["accuracy_before"] > 0.95, report
    assert report["accuracy_drop_points"] <= 1.0, report
    assert report["weight_compression_ratio"] > 3.9, report


# ---- pruning -------------------------------------------------------------------------------------------------
def _two_layer(seed=0):
    tt.manual_seed(seed)
    return tt.nn.Sequential(tt.nn.Linear(30, 20), tt.nn.ReLU(), tt.nn.Linear(20, 10))


def test_12_magnitude_prune_per_layer_removes_the_smallest_weights():
    model = _two_layer()
    w0 = model[0].weight.data.copy()
    masks = magnitude_prune(model, 0.5, scope="layer")
    assert set(masks) == {"0.weight", "2.weight"}
    for name, frac in sparsity(model, by_layer=True).items():
        assert frac == pytest.approx(0.5, abs=0.01), name
    kept = np.abs(w0[masks["0.weight"]])
    removed = np.abs(w0[~masks["0.weight"]])
    assert removed.max() <= kept.min()                     # exactly the smallest magnitudes went
    assert (model[0].bias.data != 0).all()                  # biases are not pruned


def test_12_magnitude_prune_global_uses_one_threshold():
    model = _two_layer()
    model[2].weight.data *= 0.01                            # this layer's weights are all tiny
    magnitude_prune(model, 0.3, scope="global")
    by_layer = sparsity(model, by_layer=True)
    assert by_layer["2.weight"] == 1.0                      # global pruning takes the small layer first
    assert sparsity(model) == pytest.approx(0.3, abs=0.01)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        magnitude_prune(model, 1.5)
    with pytest.raises(ValueError, match="scope"):
        magnitude_prune(model, 0.1, scope="everything")


def test_12_apply_masks_keeps_pruned_weights_at_zero_while_fine_tuning():
    model = _two_layer()
    masks = magnitude_prune(model, 0.6)
    x = tt.Tensor(np.random.default_rng(0).normal(size=(16, 30)).astype(np.float32))
    y = np.random.default_rng(1).integers(0, 10, 16)
    opt = tt.optim.SGD(model.parameters(), lr=0.5)
    loss = tt.nn.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    assert sparsity(model) < 0.6                            # the optimizer revived pruned weights...
    apply_masks(model, masks)
    assert sparsity(model) == pytest.approx(0.6, abs=0.01)   # ...and the masks zero them again
    with pytest.raises(ValueError, match="no prunable weight"):
        apply_masks(model, {"nope.weight": masks["0.weight"]})


def test_12_channel_prune_zeroes_whole_rows_with_the_smallest_norms():
    model = _two_layer()
    norms = np.linalg.norm(model[0].weight.data, axis=1)
    masks = channel_prune(model, 0.25)
    assert list(masks) == ["0.weight"]                      # the output layer is left alone by default
    rows_removed = np.where(~masks["0.weight"].all(axis=1))[0]
    assert len(rows_removed) == 5
    assert set(rows_removed) == set(np.argsort(norms)[:5])
    assert (model[0].weight.data[rows_removed] == 0).all() and (model[0].bias.data[rows_removed] == 0).all()
    assert sparsity(model, by_layer=True)["2.weight"] == 0.0
    conv = tt.nn.Sequential(tt.nn.Conv2d(2, 8, 3), tt.nn.ReLU(), tt.nn.Conv2d(8, 4, 3))
    masks = channel_prune(conv, 0.5, layers=["0"])
    filters_zero = (conv[0].weight.data.reshape(8, -1) == 0).all(axis=1)
    assert filters_zero.sum() == 4 and masks["0.weight"].shape == (8, 2, 3, 3)
    with pytest.raises(ValueError, match="no Linear/Conv2d named"):
        channel_prune(conv, 0.5, layers=["7"])


def test_12_report_on_a_pruned_model(trained_mlp):
    model, _, _, x_test, y_test = trained_mlp
    pruned = copy.deepcopy(model)
    magnitude_prune(pruned, 0.5)
    report = compression_report(model, pruned, x_test, y_test)
    assert report["sparsity_after"] == pytest.approx(0.5, abs=0.01)
    assert report["bytes_after"] == report["bytes_before"]   # zeros still take 4 bytes each when stored densely
    assert report["accuracy_drop_points"] < 5.0
    assert accuracy(model, x_test, y_test) == report["accuracy_before"]
    with pytest.raises(ValueError, match="as many labels"):
        accuracy(model, x_test[:5], y_test[:4])
