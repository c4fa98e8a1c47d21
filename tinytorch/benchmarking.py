"""Module 14 - Benchmarking: measure before you optimise, and measure honestly.

Two tools:

* `Profiler` - where does one training step spend its time? Per layer: forward time, backward time
  (the gradient rules of that layer's ops), FLOPs, bytes moved and output size; plus the peak memory
  of the whole step. This is what told module 13 which kernels to write.

* `Benchmark` - how fast is X, compared with Y? Timing on a shared machine is noisy, so the harness
  (1) warms up (first calls pay for page faults, caches, BLAS thread start-up), (2) repeats, (3)
  reports the median (robust to a stray slow run) and the spread (interquartile range), and (4)
  runs the cases *interleaved* - A, B, A, B, ... - so a burst of load from another process hits
  both; a ratio against a baseline measured in the same run is then meaningful even when absolute
  times are not.

Everything takes a `clock` argument (default `time.perf_counter`), so the tests can drive the logic
with a fake clock instead of real time.
"""
from __future__ import annotations

import math
import time
import tracemalloc
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from tinytorch.tensor import Tensor


# ---- statistics ----------------------------------------------------------------------------------------
def median(values: Sequence[float]) -> float:
    """The middle value (mean of the two middle values for an even count)."""
    if not values:
        raise ValueError("median of an empty list of timings; run at least one repeat")
    # BEGIN SOLUTION
    s = sorted(values)
    mid = len(s) // 2
    return float(s[mid]) if len(s) % 2 else (s[mid - 1] + s[mid]) / 2.0
    # END SOLUTION


def quantile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile (like np.quantile's default), q in [0, 1]."""
    if not values:
        raise ValueError("quantile of an empty list")
    # BEGIN SOLUTION
    s = sorted(values)
    pos = q * (len(s) - 1)
    lo = int(math.floor(pos))
    hi = min(lo + 1, len(s) - 1)
    return float(s[lo] + (s[hi] - s[lo]) * (pos - lo))
    # END SOLUTION


@dataclass
class Measurement:
    """Timings (seconds) of one case: every repeat, with median and spread."""

    name: str
    times: list[float]
    warmup: int = 0

    @property
    def median(self) -> float:
        return median(self.times)

    @property
    def spread(self) -> float:
        """Interquartile range (seconds): how much the middle half of the repeats disagree."""
        return quantile(self.times, 0.75) - quantile(self.times, 0.25)

    @property
    def best(self) -> float:
        return min(self.times)

    @property
    def relative_spread(self) -> float:
        return self.spread / self.median if self.median > 0 else 0.0

    def as_dict(self) -> dict:
        return {"name": self.name, "median_ms": self.median * 1e3, "spread_ms": self.spread * 1e3,
                "best_ms": self.best * 1e3, "repeats": len(self.times), "warmup": self.warmup}


def time_once(fn: Callable[[], object], clock: Callable[[], float] = time.perf_counter) -> float:
    """Seconds one call of fn() takes, by `clock`."""
    # BEGIN SOLUTION
    start = clock()
    fn()
    return clock() - start
    # END SOLUTION


def measure(fn: Callable[[], object], name: str = "case", repeats: int = 10, warmup: int = 2,
            clock: Callable[[], float] = time.perf_counter) -> Measurement:
    """Call fn() `warmup` times untimed, then `repeats` times timed."""
    if repeats < 1 or warmup < 0:
        raise ValueError(f"measure: need repeats >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}")
    # BEGIN SOLUTION
    for _ in range(warmup):
        fn()
    return Measurement(name, [time_once(fn, clock) for _ in range(repeats)], warmup)
    # END SOLUTION


class Benchmark:
    """Several cases timed interleaved, with ratios against a baseline case of the same run.

        bench = Benchmark(repeats=10, warmup=2)
        bench.add("numpy", lambda: a @ b)
        bench.add("tinytorch", lambda: (ta @ tb))
        results = bench.run()
        bench.ratio("tinytorch", "numpy")       # median time / baseline median time
    """

    def __init__(self, repeats: int = 10, warmup: int = 2, clock: Callable[[], float] = time.perf_counter):
        if repeats < 1 or warmup < 0:
            raise ValueError(f"Benchmark: need repeats >= 1 and warmup >= 0, got {repeats}, {warmup}")
        self.repeats, self.warmup, self.clock = repeats, warmup, clock
        self.cases: dict[str, Callable[[], object]] = {}
        self.results: dict[str, Measurement] = {}

    def add(self, name: str, fn: Callable[[], object]) -> "Benchmark":
        if name in self.cases:
            raise ValueError(f"Benchmark: a case named {name!r} already exists")
        self.cases[name] = fn
        return self

    def run(self) -> dict[str, Measurement]:
        """Warm every case up, then time round after round: each round calls every case once.

        Interleaving means a slow phase of the machine (another process, thermal throttling) lands on
        all cases alike instead of on whichever ran at that moment.
        """
        if not self.cases:
            raise ValueError("Benchmark.run: no cases; add some with bench.add(name, fn)")
        # BEGIN SOLUTION
        for _ in range(self.warmup):
            for fn in self.cases.values():
                fn()
        times: dict[str, list[float]] = {name: [] for name in self.cases}
        for _ in range(self.repeats):
            for name, fn in self.cases.items():
                times[name].append(time_once(fn, self.clock))
        self.results = {name: Measurement(name, t, self.warmup) for name, t in times.items()}
        return self.results
        # END SOLUTION

    def ratio(self, name: str, baseline: str) -> float:
        """median(name) / median(baseline): 2.0 means `name` takes twice as long."""
        if not self.results:
            raise ValueError("Benchmark.ratio: call run() first")
        for n in (name, baseline):
            if n not in self.results:
                raise KeyError(f"Benchmark.ratio: no case {n!r}; cases are {sorted(self.results)}")
        # BEGIN SOLUTION
        base = self.results[baseline].median
        return self.results[name].median / base if base > 0 else float("inf")
        # END SOLUTION

    def table(self, baseline: str | None = None) -> str:
        """A plain-text table: case, median, spread, best (ms), and the ratio against `baseline`."""
        rows = [("case", "median ms", "+-IQR ms", "best ms") + (("ratio",) if baseline else ())]
        for name, m in self.results.items():
            row = (name, f"{m.median * 1e3:.3f}", f"{m.spread * 1e3:.3f}", f"{m.best * 1e3:.3f}")
            if baseline:
                row += (f"{self.ratio(name, baseline):.2f}",)
            rows.append(row)
        return format_table(rows)


def format_table(rows: Sequence[Sequence[str]]) -> str:
    """Left-align the first column, right-align the rest; first row is the header."""
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for k, row in enumerate(rows):
        cells = [str(c).ljust(widths[i]) if i == 0 else str(c).rjust(widths[i]) for i, c in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


# ---- the profiler ----------------------------------------------------------------------------------------
@dataclass
class LayerProfile:
    """One layer of a profiled step. Times in seconds; flops and bytes of the forward pass."""

    name: str
    kind: str
    output_shape: tuple
    forward_s: float = 0.0
    backward_s: float = 0.0
    flops: int = 0
    bytes: int = 0
    ops: list = field(default_factory=list)

    @property
    def total_s(self) -> float:
        return self.forward_s + self.backward_s

    def gflops_per_s(self) -> float:
        """Forward + backward (counted as 2x forward, the usual rule for GEMM layers) rate."""
        return 3 * self.flops / self.total_s / 1e9 if self.total_s > 0 else 0.0


def _nbytes(value) -> int:
    if isinstance(value, Tensor):
        return value.data.nbytes
    if isinstance(value, np.ndarray):
        return value.nbytes
    return 0


def _graph_nodes(out: Tensor, stop: set[int]) -> list[Tensor]:
    """Tensors with a recorded op reachable from `out` without passing through ids in `stop`."""
    found, todo, seen = [], [out], set()
    while todo:
        node = todo.pop()
        if id(node) in seen or id(node) in stop or node._ctx is None:
            continue
        seen.add(id(node))
        found.append(node)
        todo.extend(node._ctx.parents)
    return found


def timed_backward(root: Tensor, clock: Callable[[], float] = time.perf_counter) -> dict[int, float]:
    """Run backward from a scalar `root` like tinytorch.autograd.backward, timing every gradient rule.

    Returns {id(tensor): seconds its op's rule took}. Leaf gradients are accumulated exactly as in
    module 09, so after this call `.grad` is what `root.backward()` would have produced.
    """
    from tinytorch.autograd import GRADIENTS, topological_order
    # BEGIN SOLUTION
    spent: dict[int, float] = {}
    grads = {id(root): np.ones_like(root.data)}
    for node in reversed(topological_order(root)):
        g = grads.pop(id(node), None)
        if g is None:
            continue
        if node._ctx is None:
            g = g.astype(node.data.dtype, copy=False)
            node.grad = Tensor(g.copy()) if node.grad is None else Tensor(node.grad.data + g)
            continue
        start = clock()
        parent_grads = GRADIENTS[node._ctx.op](node._ctx, g)
        for parent, pg in zip(node._ctx.parents, parent_grads):
            if pg is not None and parent.requires_grad:
                grads[id(parent)] = grads[id(parent)] + pg if id(parent) in grads else pg
        spent[id(node)] = clock() - start
    return spent
    # END SOLUTION


class Profiler:
    """Profile one training step of a chain of layers (a Sequential, or any list of Modules).

        prof = Profiler(model)                       # model: Sequential or [layer, layer, ...]
        report = prof.profile(x, lambda out: loss_fn(out, y))
        print(prof.table())

    Forward: each layer is called in turn and timed. Backward: `timed_backward` times every gradient
    rule, and each op is charged to the layer whose forward created it (the loss's ops to "loss").
    FLOPs come from each layer's `flops(input_shape, output_shape)` hook (module 04/05); bytes are
    what a layer must at least read and write: its input, output and parameters.
    """

    def __init__(self, layers, clock: Callable[[], float] = time.perf_counter):
        self.layers = list(layers)
        self.clock = clock
        self.report: list[LayerProfile] = []
        self.peak_bytes: int | None = None
        self.step_s = 0.0

    def profile(self, x: Tensor, loss_fn: Callable[[Tensor], Tensor] | None = None,
                memory: bool = False) -> list[LayerProfile]:
        """One forward (+ backward when `loss_fn` is given) step, timed layer by layer.

        memory=True runs the step a second time under tracemalloc and records the peak bytes the
        step allocated (NumPy reports its buffers to tracemalloc); it is a separate run because
        tracing slows Python down.
        """
        # BEGIN SOLUTION
        report: list[LayerProfile] = []
        owner: dict[int, LayerProfile] = {}
        boundary: set[int] = {id(x)}
        out = x
        step_start = self.clock()
        for i, layer in enumerate(self.layers):
            in_shape = tuple(out.shape)
            in_bytes = _nbytes(out)
            start = self.clock()
            new = layer(out)
            elapsed = self.clock() - start
            entry = LayerProfile(f"{i}", type(layer).__name__, tuple(new.shape), forward_s=elapsed)
            flops_fn = getattr(layer, "flops", None)
            entry.flops = int(flops_fn(in_shape, tuple(new.shape))) if flops_fn else 0
            params = sum(p.data.nbytes for p in layer.parameters()) if hasattr(layer, "parameters") else 0
            entry.bytes = in_bytes + _nbytes(new) + params
            for node in _graph_nodes(new, boundary):
                owner.setdefault(id(node), entry)
                entry.ops.append(node._ctx.op)
            boundary.add(id(new))
            report.append(entry)
            out = new
        if loss_fn is not None:
            start = self.clock()
            loss = loss_fn(out)
            loss_entry = LayerProfile("loss", "loss", tuple(loss.shape), forward_s=self.clock() - start)
            for node in _graph_nodes(loss, boundary):
                owner.setdefault(id(node), loss_entry)
                loss_entry.ops.append(node._ctx.op)
            report.append(loss_entry)
            for node_id, seconds in timed_backward(loss, self.clock).items():
                if node_id in owner:
                    owner[node_id].backward_s += seconds
        self.step_s = self.clock() - step_start
        self.report = report
        if memory:
            self.peak_bytes = peak_memory(lambda: self._plain_step(x, loss_fn))
        return report
        # END SOLUTION

    def _plain_step(self, x, loss_fn):
        out = x
        for layer in self.layers:
            out = layer(out)
        if loss_fn is not None:
            loss_fn(out).backward()

    def table(self) -> str:
        total = sum(e.total_s for e in self.report) or 1.0
        rows = [("layer", "kind", "output", "fwd ms", "bwd ms", "share", "MFLOP", "MB", "GFLOP/s")]
        for e in self.report:
            rows.append((e.name, e.kind, "x".join(map(str, e.output_shape)) or "scalar",
                         f"{e.forward_s * 1e3:.1f}", f"{e.backward_s * 1e3:.1f}",
                         f"{100 * e.total_s / total:.0f}%", f"{e.flops / 1e6:.0f}", f"{e.bytes / 1e6:.1f}",
                         f"{e.gflops_per_s():.1f}" if e.flops else "-"))
        text = format_table(rows) + f"\nstep: {self.step_s * 1e3:.1f} ms (layers + loss: {total * 1e3:.1f} ms)"
        if self.peak_bytes is not None:
            text += f"; peak memory allocated during the step: {self.peak_bytes / 2**20:.0f} MiB"
        return text


def peak_memory(fn: Callable[[], object]) -> int:
    """Peak bytes allocated (and traced) while fn() runs, via tracemalloc."""
    # BEGIN SOLUTION
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    try:
        fn()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        if not was_tracing:
            tracemalloc.stop()
    return max(0, peak - base)
    # END SOLUTION
