"""Module 14 - Benchmarking: the harness and the profiler, driven by a fake clock.

No test here asserts anything about real speed (the machine may be busy); the logic - warm-up,
repeats, medians, spreads, interleaving, ratios, per-layer attribution - is checked with clocks
that advance by amounts the test decides.
"""
import numpy as np
import pytest

import tinytorch as tt
from tinytorch.benchmarking import (Benchmark, Measurement, Profiler, format_table, measure, median, peak_memory,
                                    quantile, time_once, timed_backward)
from tinytorch.layers import Linear, ReLU, Sequential
from tinytorch.networks import cross_entropy
from tinytorch.tensor import Tensor


class FakeClock:
    """A clock that only moves when told: `advance(s)`; every call returns the current time."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


def test_median_and_quantiles():
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0, 2.0, 3.0]) == 2.5, "even count: mean of the two middle values"
    values = [1.0, 2.0, 3.0, 4.0, 5.0]
    assert quantile(values, 0.25) == pytest.approx(np.quantile(values, 0.25))
    assert quantile([1.0, 10.0], 0.5) == pytest.approx(5.5), "linear interpolation between neighbours"
    with pytest.raises(ValueError):
        median([])


def test_measurement_reports_median_spread_and_best():
    m = Measurement("x", [0.010, 0.012, 0.011, 0.050, 0.013])
    assert m.median == pytest.approx(0.012), "one slow outlier (0.050) must not move the median much"
    assert m.spread == pytest.approx(0.013 - 0.011), "spread is the interquartile range"
    assert m.best == 0.010
    assert m.as_dict()["median_ms"] == pytest.approx(12.0)


def test_time_once_and_measure_use_the_clock_and_warm_up():
    clock = FakeClock()
    calls = []

    def work():
        calls.append(1)
        clock.advance(0.5 if len(calls) <= 2 else 0.1)    # the first two calls are slow (cold caches)

    assert time_once(lambda: clock.advance(0.25), clock) == 0.25
    m = measure(work, repeats=4, warmup=2, clock=clock)
    assert len(calls) == 6, "2 warm-up calls + 4 timed calls"
    assert m.times == pytest.approx([0.1] * 4), "warm-up calls must not be timed"
    with pytest.raises(ValueError):
        measure(work, repeats=0)


def test_benchmark_interleaves_cases_and_computes_ratios():
    clock = FakeClock()
    order = []
    bench = Benchmark(repeats=3, warmup=1, clock=clock)
    bench.add("fast", lambda: (order.append("fast"), clock.advance(1.0)))
    bench.add("slow", lambda: (order.append("slow"), clock.advance(3.0)))
    results = bench.run()
    assert order == ["fast", "slow"] * 4, f"cases must alternate (warm-up round, then 3 rounds), got {order}"
    assert results["fast"].median == pytest.approx(1.0) and results["slow"].median == pytest.approx(3.0)
    assert bench.ratio("slow", "fast") == pytest.approx(3.0)
    assert bench.ratio("fast", "fast") == pytest.approx(1.0)
    table = bench.table(baseline="fast")
    assert "slow" in table and "3.00" in table
    with pytest.raises(KeyError):
        bench.ratio("missing", "fast")
    with pytest.raises(ValueError):
        bench.add("fast", lambda: None)


def test_benchmark_with_real_clock_on_trivial_functions():
    bench = Benchmark(repeats=3, warmup=0)
    bench.add("noop", lambda: None).add("sum", lambda: sum(range(100)))
    results = bench.run()
    assert all(len(m.times) == 3 and m.median >= 0 for m in results.values())


@pytest.mark.given   # passes with no work in this module: checks code the course gives
def test_format_table_aligns_columns():
    text = format_table([("a", "bb"), ("ccc", "1"), ("d", "22")])
    lines = text.splitlines()
    assert lines[0].startswith("a  ") and set(lines[1]) <= {"-", " "}
    assert lines[2].endswith(" 1") and lines[3].endswith("22"), "numbers are right-aligned"


def test_timed_backward_gives_the_same_gradients_as_backward():
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((4, 3)), requires_grad=True)
    w = Tensor(rng.standard_normal((3, 2)), requires_grad=True)
    loss = tt.relu(x @ w).sum()
    spent = timed_backward(loss)
    gx, gw = x.grad.data.copy(), w.grad.data.copy()
    x.grad = w.grad = None
    loss.backward()
    np.testing.assert_allclose(gx, x.grad.data)
    np.testing.assert_allclose(gw, w.grad.data)
    assert len(spent) == 3, "one timing per recorded op (matmul, relu, sum)"


def test_profiler_charges_each_layer_its_forward_and_backward_time():
    clock = FakeClock()

    class Slow(Linear):
        """A Linear whose forward 'takes' a fixed time on the fake clock."""
        def __init__(self, n_in, n_out, cost):
            super().__init__(n_in, n_out)
            self.cost = cost

        def forward(self, x):
            clock.advance(self.cost)
            return super().forward(x)

    tt.manual_seed(0)
    model = Sequential(Slow(8, 16, 0.002), ReLU(), Slow(16, 4, 0.001))
    x = Tensor(np.random.default_rng(1).standard_normal((5, 8)))
    y = np.array([0, 1, 2, 3, 0])
    prof = Profiler(model, clock=clock)
    report = prof.profile(x, lambda out: cross_entropy(out, y))
    assert [e.kind for e in report] == ["Slow", "ReLU", "Slow", "loss"]
    assert report[0].forward_s == pytest.approx(0.002) and report[2].forward_s == pytest.approx(0.001)
    assert report[0].flops == 2 * 5 * 8 * 16, "FLOPs come from the layer's flops() hook"
    assert report[0].bytes == 5 * 8 * 4 + 5 * 16 * 4 + (8 * 16 + 16) * 4, "input + output + parameters (float32)"
    assert report[1].ops == ["relu"]
    assert "matmul" in report[0].ops and "add" in report[0].ops, "the Linear's ops are charged to it"
    assert model[0].weight.grad is not None, "profiling a step also computes the gradients"
    assert "Slow" in prof.table() and "step:" in prof.table()


def test_profiler_attributes_backward_time_per_layer():
    tt.manual_seed(0)
    model = Sequential(Linear(6, 6), ReLU(), Linear(6, 3))
    x = Tensor(np.random.default_rng(1).standard_normal((4, 6)))
    prof = Profiler(model)
    report = prof.profile(x, lambda out: out.sum(), memory=True)
    assert all(e.backward_s >= 0 for e in report)
    assert sum(e.backward_s > 0 for e in report) >= 3, "every layer with ops gets backward time"
    assert prof.peak_bytes is not None and prof.peak_bytes >= 0
    assert "peak memory" in prof.table()


def test_peak_memory_sees_numpy_allocations():
    peak = peak_memory(lambda: np.ones(2_000_000, dtype=np.float32).sum())
    assert peak >= 8_000_000 * 0.9, f"an 8 MB NumPy array should show in the peak, got {peak} bytes"
