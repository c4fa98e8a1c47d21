"""Probes of module 14 (benchmarking): what each probe calls and why it cannot be passed without the work.

Never real timings. The timing code runs against a fake clock: every call of a timed function advances a
fake time by the next of a list of random durations, and the clock reads that time, so what `time_once`,
`measure` and `Benchmark.run` report (and the ratios) follows from the durations and the documented call
order (warm-up first, cases interleaved round by round) however often an implementation reads the clock.
Also: median and quantile of random lists; the gradients `timed_backward` leaves on a random expression;
`Profiler.profile` of a random model: per-layer kinds, output shapes, FLOPs and bytes, and the gradients it
leaves (not the recorded op names: how many ops a layer records is an earlier module's implementation
detail); `peak_memory` of an allocation of a random size, in 64 KiB units.
"""
from __future__ import annotations

import importlib

import numpy as np

MODULE = "14_benchmarking"


def _bench(tt):
    return importlib.import_module(f"{tt.__name__}.benchmarking")


class _FakeTime:
    """A clock that only moves when a timed function runs: by the next of `durations`."""

    def __init__(self, durations):
        self.durations = list(durations)
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def work(self) -> None:
        self.now += self.durations.pop(0)


def probe_statistics(tt, rng) -> dict[str, np.ndarray]:
    b = _bench(tt)
    odd = rng.uniform(0, 10, 2 * int(rng.integers(1, 10)) + 1).tolist()
    even = rng.uniform(0, 10, 2 * int(rng.integers(1, 10))).tolist()
    qs = rng.uniform(0, 1, 5).tolist()
    return {"median": np.array([b.median(odd), b.median(even)]),
            "quantiles": np.array([b.quantile(even, q) for q in qs] + [b.quantile(odd, 0.0), b.quantile(odd, 1.0)])}


def probe_timing_with_a_fake_clock(tt, rng) -> dict[str, np.ndarray]:
    b = _bench(tt)
    fake = _FakeTime(rng.uniform(0.001, 0.01, 200))
    once = b.time_once(fake.work, clock=fake.clock)
    repeats, warmup = int(rng.integers(2, 7)), int(rng.integers(0, 3))
    m = b.measure(fake.work, "case", repeats=repeats, warmup=warmup, clock=fake.clock)
    bench = b.Benchmark(repeats=int(rng.integers(2, 6)), warmup=int(rng.integers(0, 3)), clock=fake.clock)
    names = [f"case{i}" for i in range(int(rng.integers(2, 4)))]
    for name in names:
        bench.add(name, fake.work)
    results = bench.run()
    return {"once": np.array([once]), "measure": np.array(m.times), "measure_stats": np.array([m.median, m.spread]),
            "benchmark": np.array([results[n].times for n in names]),
            "ratios": np.array([bench.ratio(n, names[0]) for n in names])}


def probe_timed_backward(tt, rng) -> dict[str, np.ndarray]:
    b = _bench(tt)
    shape = (int(rng.integers(1, 5)), int(rng.integers(1, 5)))
    x = tt.Tensor(rng.normal(size=shape).astype(np.float32), requires_grad=True)
    w = tt.Tensor(rng.normal(size=(shape[1], 3)).astype(np.float32), requires_grad=True)
    y = (tt.tanh(x @ w) * x.sum(axis=1, keepdims=True) + x.mean()).sum()
    fake = _FakeTime([0.0] * 10)
    spent = b.timed_backward(y, clock=fake.clock)
    return {"grad_x": x.grad.data, "grad_w": w.grad.data, "returned_a_dict": np.array([int(isinstance(spent, dict))])}


def _text(names) -> np.ndarray:
    return np.frombuffer("|".join(names).encode("utf-8"), dtype=np.uint8).astype(np.int64)


def probe_profiler(tt, rng) -> dict[str, np.ndarray]:
    b = _bench(tt)
    d_in, hidden, classes = (int(v) for v in rng.integers(2, 9, 3))
    model = tt.nn.Sequential(tt.nn.Linear(d_in, hidden), tt.nn.ReLU(), tt.nn.Linear(hidden, classes))
    for p in model.parameters():
        p.data = rng.normal(0.0, 0.5, p.shape).astype(np.float32)
    n = int(rng.integers(1, 9))
    x = tt.Tensor(rng.normal(size=(n, d_in)).astype(np.float32))
    y = rng.integers(0, classes, size=n)
    report = b.Profiler(model).profile(x, lambda out: tt.nn.cross_entropy(out, y))
    return {"kinds": _text(e.kind for e in report), "names": _text(e.name for e in report),
            "shapes": np.array([s for e in report for s in e.output_shape + (-1,)]),
            "flops": np.array([e.flops for e in report]), "bytes": np.array([e.bytes for e in report]),
            "grads": np.concatenate([p.grad.data.ravel() for p in model.parameters()])}


def probe_peak_memory(tt, rng) -> dict[str, np.ndarray]:
    b = _bench(tt)
    units = int(rng.integers(8, 40))
    count = (units * 65536 + 8192) // 8           # float64 elements: the array is units * 64 KiB + 8 KiB
    peak = b.peak_memory(lambda: np.ones(count).sum())
    return {"peak_64k_units": np.array([peak // 65536])}


PROBES = [probe_statistics, probe_timing_with_a_fake_clock, probe_timed_backward, probe_profiler, probe_peak_memory]
