"""The process that runs a milestone program (student code), talking to the judge only through frames.

    python -I -B -c "...main(...)" ROOT --milestone 3 --program milestones/m3_full_training.py \
        --data DIR --out DIR --seed 0 [--tiny] [--schedule JSON] [--profile]

The judge (grading/judge.py) starts this process with a data folder that holds training material only.
Its stdin and stdout carry frames (grading/channel.py: JSON header + npz, no pickles); everything the
program prints goes to stderr, because file descriptor 1 is pointed at stderr before the program is
imported (the frames use a private copy of the original stdout), so a stray print cannot corrupt the
channel. The last frame is {"op": "result", ...} or {"op": "error", "message": ...}.

With `--profile` it runs no training: it builds the program's `profile_case(ctx)` (the model's layers as a
chain, one synthetic batch, the loss; no data needed) and sends one {"op": "profile", ...} frame with the
per-layer and per-gradient-rule times of a few steps measured with module 14's profiler (`measure_case`;
grading/profiling.py compares them with the recorded reference).

Nothing here decides a grade: the judge computes every metric from the predictions it receives.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import traceback
from pathlib import Path

import numpy as np

from grading import channel

MAX_JUDGE_FRAME = 256 * 1024 * 1024     # held-out batches from the judge are far smaller


class JudgeLink:
    """The child's end of the channel: the requests `MilestoneContext.evaluate*` make."""

    def __init__(self, inbound, outbound):
        self.inbound, self.outbound = inbound, outbound

    def send(self, header: dict, arrays: dict | None = None) -> None:
        channel.send(self.outbound, header, arrays)

    def receive(self) -> tuple[dict, dict]:
        return channel.receive(self.inbound, MAX_JUDGE_FRAME)

    def _refused(self, header: dict):
        from milestones.common import JudgeRefused
        return JudgeRefused(str(header.get("reason", "the judge refused the request")))

    def evaluate_images(self, predict, tag: str, at: dict) -> None:
        self.send({"op": "evaluate", "kind": "images", "tag": str(tag), "at": _plain(at)})
        while True:
            header, arrays = self.receive()
            if header.get("op") == "batch":
                predicted = np.asarray(predict(arrays["x"]))
                if predicted.dtype.kind == "f":
                    predicted = predicted.astype(np.float32)
                self.send({"op": "predictions"}, {"y": predicted})
            elif header.get("op") == "done":
                return
            else:
                raise self._refused(header)

    def evaluate_text(self, predictor, vocabulary: list[str], tag: str) -> None:
        self.send({"op": "evaluate", "kind": "text", "tag": str(tag), "vocabulary": vocabulary})
        while True:
            header, arrays = self.receive()
            if header.get("op") == "round":
                scores = np.asarray(predictor(arrays["ids"].astype(np.int64), bool(header.get("reset"))),
                                    dtype=np.float32)
                self.send({"op": "scores"}, {"scores": scores})
            elif header.get("op") == "done":
                return
            else:
                raise self._refused(header)


def _plain(value):
    """JSON-safe copy of a program's history/details (numpy scalars -> numbers, non-finite -> None)."""
    import math

    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return _plain(value.tolist())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (bool, int, str)) or value is None:
        return value
    if hasattr(value, "__float__"):
        return _plain(float(value))
    return str(value)


def explain_error(exc: BaseException, number: int, requires: list[str]) -> str:
    """A message that teaches: missing data, unfinished modules, or where the program failed."""
    from milestones.common import JudgeRefused, MilestoneDataMissing

    if isinstance(exc, (MilestoneDataMissing, JudgeRefused)):
        return str(exc)
    if isinstance(exc, NotImplementedError):
        return (f"your tinytorch is not finished yet: {exc}\n"
                f"  milestone {number} needs the modules {', '.join(requires)}; "
                f"`tito milestone start {number}` shows which ones still fail")
    if isinstance(exc, channel.ChannelError):
        return f"the connection to the judge broke: {exc}"
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" (at {Path(tb[-1].filename).name}:{tb[-1].lineno} in {tb[-1].name})" if tb else ""
    return f"{type(exc).__name__}: {exc}{where}"


def _framework_in_use() -> str:
    try:
        import tinytorch
        return str(Path(tinytorch.__file__).resolve().parent)
    except Exception as exc:  # an unfinished student file may fail to import
        return f"<tinytorch does not import: {exc}>"


def _load_program(path: Path):
    if not path.exists():
        raise FileNotFoundError(f"milestone program {path} does not exist")
    spec = importlib.util.spec_from_file_location(f"milestones.{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not callable(getattr(module, "run", None)):
        raise AttributeError(f"{path.name} does not define run(ctx)")
    return module


# ---- the profile of one training step (`--profile`; the judge asks when a run went over its ceiling) ---------
PROFILE_REPEATS = 3          # timed steps per measurement (the median is kept), after one warm-up step
SLOW_STEP_SECONDS = 8.0      # a warm-up step slower than this: one timed step only (the child has ~90 s)


def measure_case(case: dict, repeats: int = PROFILE_REPEATS, clock=None) -> dict:
    """Time a program's `profile_case`: {"layers": chain of modules, "input": Tensor, "loss": fn(out) or None}.

    Per layer (module 14's Profiler, median of `repeats` steps after a warm-up step): forward and backward
    seconds; per gradient rule (`timed_backward`'s per-node seconds, summed by op name): backward seconds,
    with the function the student wrote for the rule and for the op's forward. Without module 14 (it raises
    NotImplementedError) each layer call and the whole backward are timed by hand, with a note saying so.
    Returns plain data (seconds of CPU time on Linux/macOS, of wall time on Windows) plus this machine's
    `baseline_seconds` (grading/profiling.py), timed with the same clock.
    """
    import time

    from grading.profiling import BaselineWorkload

    # CPU time of this process (one BLAS thread: the same as the wall time of an idle machine), so the load of
    # other processes does not count; Windows updates it only every 15.6 ms, too coarse for a layer: wall time
    clock = clock or (time.process_time if os.name == "posix" else time.perf_counter)
    layers, x, loss_fn = list(case["layers"]), case["input"], case.get("loss")
    params = [p for layer in layers if hasattr(layer, "parameters") for p in layer.parameters()]
    baseline = BaselineWorkload(clock)

    def clear():   # after each step: drop the gradients, then one baseline round (interleaved with the steps)
        for p in params:
            p.grad = None
        baseline.round()

    notes = []
    baseline.round()
    start = clock()
    _plain_step(layers, x, loss_fn)        # warm-up (and proof that the step runs at all)
    warm_up = clock() - start
    clear()
    if warm_up > SLOW_STEP_SECONDS:
        repeats = 1
        notes.append(f"one step took {warm_up:.0f} s, so one step was timed (not the median of several)")
    try:
        rows, step = _profiled_layers(layers, x, loss_fn, repeats, clear, clock)
    except NotImplementedError as exc:
        notes.append(f"per-layer backward times need module 14's Profiler (tinytorch/benchmarking.py), which "
                     f"raised NotImplementedError: {_first_line(exc)}; "
                     "shown: each layer's forward call timed by hand, and the whole backward as one number")
        rows, step, backward = _hand_timed_layers(layers, x, loss_fn, repeats, clear, clock)
        if backward is not None:
            notes.append(f"the whole backward took {backward * 1e3:.1f} ms")
    ops = []
    if loss_fn is not None:
        try:
            ops = _op_times(layers, x, loss_fn, repeats, clear, clock)
        except NotImplementedError as exc:
            notes.append(f"the time per gradient rule needs module 14's timed_backward ({_first_line(exc)})")
    functions = {type(layer).__name__: _where(type(layer).forward) for layer in layers}
    forwards = _op_forwards()
    for row in rows:
        row["function"] = functions.get(row["kind"])
        row["op_forwards"] = {op: forwards[op] for op in row.get("ops", []) if op in forwards}
    return {"baseline_seconds": baseline.seconds, "input_shape": [int(s) for s in x.shape], "layers": rows, "ops": ops,
            "step_seconds": step, "notes": notes, "backward": loss_fn is not None}


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


def _plain_step(layers, x, loss_fn):
    out = x
    for layer in layers:
        out = layer(out)
    if loss_fn is not None:
        loss_fn(out).backward()


def _profiled_layers(layers, x, loss_fn, repeats, clear, clock):
    from tinytorch.benchmarking import Profiler

    runs, steps = [], []
    for _ in range(repeats):
        profiler = Profiler(layers, clock=clock)
        runs.append(profiler.profile(x, loss_fn))
        steps.append(profiler.step_s)
        clear()
    rows = []
    for i, entry in enumerate(runs[0]):
        rows.append({"name": entry.name, "kind": entry.kind, "output_shape": [int(s) for s in entry.output_shape],
                     "forward_s": float(np.median([run[i].forward_s for run in runs])),
                     "backward_s": float(np.median([run[i].backward_s for run in runs])) if loss_fn else None,
                     "ops": sorted(set(entry.ops))[:12]})
    return rows, float(np.median(steps))


def _hand_timed_layers(layers, x, loss_fn, repeats, clear, clock):
    forward, backward = [], []
    for _ in range(repeats):
        out, times = x, []
        for layer in layers:
            start = clock()
            out = layer(out)
            times.append(clock() - start)
        if loss_fn is not None:
            start = clock()
            loss = loss_fn(out)
            times.append(clock() - start)
            start = clock()
            loss.backward()
            backward.append(clock() - start)
        clear()
        forward.append(times)
    out, shapes = x, []
    for layer in layers:     # output shapes, outside the timing
        out = layer(out)
        shapes.append([int(s) for s in out.shape])
    names = [(str(i), type(layer).__name__) for i, layer in enumerate(layers)] + ([("loss", "loss")] if loss_fn else [])
    shapes += [[]] if loss_fn else []
    medians = np.median(np.array(forward), axis=0)
    rows = [{"name": n, "kind": k, "output_shape": s, "forward_s": float(t), "backward_s": None}
            for (n, k), s, t in zip(names, shapes, medians)]
    whole = float(np.median(backward)) if backward else None
    return rows, float(medians.sum()) + (whole or 0.0), whole


def _op_times(layers, x, loss_fn, repeats, clear, clock) -> list[dict]:
    """Backward seconds per op name (median over `repeats` steps), with the student's rule and forward."""
    from tinytorch.autograd import GRADIENTS, topological_order
    from tinytorch.benchmarking import timed_backward

    runs, counts = [], {}
    for _ in range(repeats):
        out = x
        for layer in layers:
            out = layer(out)
        loss = loss_fn(out)
        op_of = {id(node): node._ctx.op for node in topological_order(loss) if node._ctx is not None}
        spent = timed_backward(loss, clock)
        clear()
        totals, counts = {}, {}
        for node_id, seconds in spent.items():
            op = op_of.get(node_id)
            if op is not None:
                totals[op] = totals.get(op, 0.0) + seconds
                counts[op] = counts.get(op, 0) + 1
        runs.append(totals)
    forwards = _op_forwards()
    rows = [{"op": op, "backward_s": float(np.median([run.get(op, 0.0) for run in runs])), "count": counts[op],
             "rule": _where(GRADIENTS[op]) if op in GRADIENTS else None, "forward": forwards.get(op)}
            for op in counts]
    return sorted(rows, key=lambda r: -r["backward_s"])


def _package_root() -> Path:
    import tinytorch
    return Path(tinytorch.__file__).resolve().parent


def _where(function) -> str:
    """"`conv2d` in tinytorch/spatial.py": the function and its file, relative to the repository."""
    import inspect

    name = getattr(function, "__qualname__", None) or getattr(function, "__name__", "?")
    try:
        path = Path(inspect.getsourcefile(function)).resolve()
    except (TypeError, OSError):
        return f"`{name}`"
    try:
        shown = path.relative_to(_package_root().parent).as_posix()
    except ValueError:
        shown = path.name
    return f"`{name}` in {shown}"


def _op_forwards() -> dict[str, str]:
    """{op name: "`function` in tinytorch/file.py"}: the function whose `Tensor._make(..., "op", ...)` records
    the op, read from the package's source (the op's name is a literal there; ops named by a variable, like
    the arithmetic of Tensor._binary, are not listed)."""
    import ast

    package = _package_root()
    homes: dict[str, str] = {}

    def visit(node, prefix: str, shown: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.", shown)
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for call in ast.walk(child):
                    func = getattr(call, "func", None)
                    if isinstance(call, ast.Call) and getattr(func, "attr", getattr(func, "id", None)) == "_make" \
                            and len(call.args) >= 2 and isinstance(call.args[1], ast.Constant) \
                            and isinstance(call.args[1].value, str):
                        homes.setdefault(call.args[1].value, f"`{prefix}{child.name}` in {shown}")
    for path in sorted(package.rglob("*.py")):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
            continue
        visit(tree, "", path.relative_to(package.parent).as_posix())
    return homes


def profile_program(module, ctx) -> dict:
    """The program's `profile_case(ctx)`, measured (see measure_case)."""
    case_of = getattr(module, "profile_case", None)
    if not callable(case_of):
        raise AttributeError(f"{Path(module.__file__).name} defines no profile_case(ctx), so the judge cannot "
                             "profile its training step")
    case = case_of(ctx)
    if not isinstance(case, dict) or "layers" not in case or "input" not in case:
        raise TypeError("profile_case(ctx) must return {'layers': [...], 'input': Tensor, 'loss': fn or None}")
    if case.get("loss") is None:        # an inference milestone: forward only, without a graph, as it runs
        from tinytorch.autograd import no_grad
        with no_grad():
            return measure_case(case)
    return measure_case(case)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="milestone_child")
    parser.add_argument("--milestone", type=int, required=True)
    parser.add_argument("--program", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--schedule", default="{}")
    parser.add_argument("--requires", default="")
    parser.add_argument("--profile", action="store_true", help="profile the program's training step; no training")
    args = parser.parse_args(argv)
    inbound, outbound = channel.claim_stdio()
    link = JudgeLink(inbound, outbound)
    root = Path(sys.path[0])
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    try:
        from milestones.common import MilestoneContext

        ctx = MilestoneContext(args.milestone, data_dir=args.data, tiny=args.tiny, seed=args.seed,
                               out_dir=args.out, schedule=json.loads(args.schedule), stream=sys.stderr,
                               judge=link)
        if args.profile:
            measured = profile_program(_load_program(Path(args.program)), ctx)
            link.send({"op": "profile", **_plain(measured), "tiny": args.tiny, "framework": _framework_in_use()})
            return 0
        output = _load_program(Path(args.program)).run(ctx) or {}
        if not isinstance(output, dict):
            raise TypeError(f"run(ctx) must return a dict with 'history' and 'details', got {type(output).__name__}")
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - the judge gets a reason, whatever went wrong
        link.send({"op": "error", "message": explain_error(exc, args.milestone, args.requires.split(",")),
                   "framework": _framework_in_use()})
        return 0
    link.send({"op": "result", "history": _plain(output.get("history") or []),
               "details": _plain(output.get("details") or {}), "samples": _plain(output.get("samples") or []),
               "stopped_at": _plain(output.get("stopped_at")), "corpus": ctx.corpus,
               "framework": _framework_in_use()})
    return 0
