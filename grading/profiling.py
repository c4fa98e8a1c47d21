"""Where a slow milestone's time went: the student's training step, layer by layer, next to the reference's.

When a milestone run goes over its ceiling (or `tito milestone run N --profile` asks), the judge starts one
short extra child (grading/milestone_child.py, `--profile`): it builds the program's `profile_case(ctx)` - the
model's layers as a chain, one synthetic batch of the training shape and the loss - and times a few steps
with module 14's profiler (tinytorch.benchmarking.Profiler, `timed_backward`). This module is the judge's
side (it never imports tinytorch): the machine-speed baseline, the recorded reference profiles, the
comparison that goes into the result's `profile` field, and the lines the console prints.

Reference times cannot be measured on the student's machine (the reference framework is not in the
student's repository), so `milestones/profile_reference.py` records them once, each stored as a multiple of
`machine_baseline()` measured in the same process; at report time the child measures the same baseline and
the judge scales the reference's numbers by it.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

PROFILE_TIMEOUT = 90.0        # seconds for the whole profile child (start-up, build, warm-up, timed steps)
MAX_ROWS = 200                # layers / ops kept from the child's answer
TOP_LAYERS = 5                # rows the console shows


# ---- the machine-speed baseline (pure NumPy: the judge, the child and the recording script run the same) ---
class BaselineWorkload:
    """A fixed NumPy workload (~0.04 s a round here; run it with 1 BLAS thread): the machine's speed.

    A float32 GEMM (what convolutions and linear layers spend their time in) plus memory-bound passes over
    16 MB arrays (what element-wise ops, pooling and batch norm spend it in). The profile runs one round
    before each timed step, interleaved (module 14's Benchmark does the same), so a burst of load from
    another process slows the baseline and the steps alike, and the ratio stays meaningful.
    """

    def __init__(self, clock=time.perf_counter):
        rng = np.random.default_rng(0)
        self.a = rng.standard_normal((512, 512), dtype=np.float32)
        self.b = rng.standard_normal((512, 512), dtype=np.float32)
        self.big = rng.standard_normal(4 * 2**20, dtype=np.float32)
        self.out = np.empty_like(self.big)
        self.clock = clock
        self.times: list[float] = []
        self._work()                       # warm-up: page faults, BLAS start-up

    def _work(self) -> float:
        for _ in range(6):
            c = self.a @ self.b
        for _ in range(3):
            np.multiply(self.big, 1.0001, out=self.out)
            np.add(self.out, self.big, out=self.out)
            np.maximum(self.out, 0.0, out=self.out)
        return float(c[0, 0]) + float(self.out.sum())

    def round(self) -> float:
        """Time one round (kept in `times`)."""
        start = self.clock()
        self._work()
        self.times.append(self.clock() - start)
        return self.times[-1]

    @property
    def seconds(self) -> float:
        """Median seconds of the rounds timed so far."""
        return float(np.median(self.times))


def machine_baseline(repeats: int = 5, clock=time.perf_counter) -> float:
    """Median seconds of `repeats` rounds of the BaselineWorkload (after its warm-up round)."""
    workload = BaselineWorkload(clock)
    for _ in range(repeats):
        workload.round()
    return workload.seconds


# ---- the recorded reference --------------------------------------------------------------------------------
def reference_path(program: Path, number: int, tiny: bool) -> Path:
    """milestones/reference_profiles/mN.json next to the program (mN.tiny.json for tiny runs)."""
    return Path(program).parent / "reference_profiles" / f"m{number}{'.tiny' if tiny else ''}.json"


def to_reference(measured: dict, number: int, machine: str, recorded: str) -> dict:
    """A child's measurement (seconds) as a reference record (multiples of its own machine baseline)."""
    base = float(measured["baseline_seconds"])

    def units(seconds):
        return None if seconds is None else float(f"{seconds / base:.4g}")

    return {"milestone": number, "machine": machine, "recorded": recorded, "tiny": bool(measured.get("tiny")),
            "baseline_seconds": float(f"{base:.4g}"), "input_shape": measured.get("input_shape"),
            "note": "times are multiples of baseline_seconds (grading/profiling.py machine_baseline)",
            "layers": [{"name": r["name"], "kind": r["kind"], "output_shape": r["output_shape"],
                        "forward": units(r["forward_s"]), "backward": units(r.get("backward_s"))}
                       for r in measured["layers"]],
            "ops": {o["op"]: units(o["backward_s"]) for o in measured.get("ops", [])},
            "step": units(measured.get("step_seconds"))}


def load_reference(path: Path) -> tuple[dict | None, str | None]:
    """(reference record, None) or (None, why there is none)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, f"no recorded reference profile ({path.name}): only this machine's times are shown"
    except (OSError, ValueError) as exc:
        return None, f"the recorded reference profile {path.name} could not be read ({exc})"
    if not isinstance(data, dict) or not isinstance(data.get("layers"), list) or \
            not _positive(data.get("baseline_seconds")):
        return None, f"the recorded reference profile {path.name} is malformed"
    return data, None


# ---- the comparison (the result's `profile` field) -----------------------------------------------------------
def _positive(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def _seconds(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value) and value >= 0 else None


def _text(value, limit: int = 200) -> str:
    return str(value)[:limit]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1e3, 3)


def _ratio(student: float | None, reference: float | None) -> float | None:
    return round(student / reference, 2) if student is not None and reference else None


def compare(measured: dict, reference: dict | None, reference_note: str | None) -> dict:
    """The result's `profile` field from the child's measurement (seconds, untrusted: checked here) and the
    recorded reference (multiples of its baseline), scaled by this machine's baseline."""
    base = measured.get("baseline_seconds")
    notes = [_text(n, 400) for n in (measured.get("notes") or []) if isinstance(n, str)][:10]
    shape = measured.get("input_shape")
    shape = [int(n) for n in shape[:8] if isinstance(n, int)] if isinstance(shape, list) else None
    profile = {"error": None, "notes": notes, "input_shape": shape,
               "baseline_seconds": round(base, 4) if _positive(base) else None, "scale": None, "reference": None,
               "step_ms": _ms(_seconds(measured.get("step_seconds"))), "reference_step_ms": None,
               "layers": [], "slowest_function": None, "slowest_layer": None}
    scale = None
    if reference is not None and _positive(base):
        scale = float(base)
        profile["scale"] = round(base / reference["baseline_seconds"], 2)
        profile["reference"] = (f"recorded on {_text(reference.get('machine', 'an unnamed machine'))} "
                                f"({_text(reference.get('recorded', '?'), 40)}), scaled by this machine's speed on "
                                f"a fixed NumPy workload (x{profile['scale']:.2f})")
        step = _seconds(reference.get("step"))
        profile["reference_step_ms"] = _ms(step * scale) if step is not None else None
    elif reference_note:
        notes.append(reference_note)
    ref_layers = {(r.get("name"), r.get("kind")): r for r in (reference or {}).get("layers", []) if isinstance(r, dict)}
    mismatched = []
    for row in (measured.get("layers") or [])[:MAX_ROWS]:
        if not isinstance(row, dict):
            continue
        name, kind = _text(row.get("name"), 60), _text(row.get("kind"), 60)
        fwd, bwd = _seconds(row.get("forward_s")), _seconds(row.get("backward_s"))
        entry = {"name": name, "kind": kind, "function": _text(row.get("function") or "", 200) or None,
                 "output_shape": [int(s) for s in row.get("output_shape") or [] if isinstance(s, int)][:8],
                 "forward_ms": _ms(fwd), "backward_ms": _ms(bwd), "reference_forward_ms": None,
                 "reference_backward_ms": None, "ratio": None}
        ref = ref_layers.get((name, kind))
        if scale is not None and ref is None:
            mismatched.append(f"{name} ({kind})")
        if scale is not None and ref is not None:
            rf, rb = _seconds(ref.get("forward")), _seconds(ref.get("backward"))
            entry["reference_forward_ms"] = _ms(rf * scale) if rf is not None else None
            entry["reference_backward_ms"] = _ms(rb * scale) if rb is not None else None
            both = bwd is not None and rb is not None
            entry["ratio"] = _ratio(fwd + (bwd if both else 0.0) if fwd is not None else None,
                                    (rf + (rb if both else 0.0)) * scale if rf is not None else None)
        profile["layers"].append(entry)
    if mismatched:
        notes.append("these layers are not in the recorded reference (the program's model changed?): "
                     + ", ".join(mismatched[:8]))
    profile["slowest_layer"] = _slowest_layer(profile["layers"], _seconds(measured.get("step_seconds")))
    profile["slowest_function"] = _slowest_function(measured, reference, scale)
    return profile


def _slowest_layer(layers: list[dict], step: float | None) -> dict | None:
    timed = [(r["forward_ms"] or 0.0) + (r["backward_ms"] or 0.0) for r in layers]
    if not layers or not any(timed):
        return None
    i = int(np.argmax(timed))
    total = step * 1e3 if step else sum(timed)
    return {"name": layers[i]["name"], "kind": layers[i]["kind"], "ms": round(timed[i], 3),
            "share": round(timed[i] / total, 3) if total else None, "ratio": layers[i]["ratio"]}


def _slowest_function(measured: dict, reference: dict | None, scale: float | None) -> dict | None:
    """The one function of the student's that took the most time in a step: a backward rule (per op, from
    `timed_backward`) or a layer's forward (per layer kind, from the profiler), with its share of the step
    and its ratio to the reference's same function."""
    step = _seconds(measured.get("step_seconds"))
    candidates = []   # (seconds, reference seconds or None, description)
    ref_ops = (reference or {}).get("ops") or {}
    for op in (measured.get("ops") or [])[:MAX_ROWS]:
        seconds = _seconds(op.get("backward_s")) if isinstance(op, dict) else None
        if seconds is None:
            continue
        name = _text(op.get("op"), 60)
        ref = _seconds(ref_ops.get(name)) if scale is not None else None
        forward = f", the gradient of {_text(op['forward'])}" if op.get("forward") else ""
        candidates.append((seconds, ref * scale if ref is not None else None, {
            "what": f"the backward rule of {name}", "function": _text(op.get("rule") or "?") + forward,
            "detail": f"{int(op.get('count') or 0)} node(s) per step"}))
    by_kind: dict[str, list] = {}
    ref_by_kind: dict[str, float] = {}
    for row in (measured.get("layers") or [])[:MAX_ROWS]:
        if isinstance(row, dict) and _seconds(row.get("forward_s")) is not None and row.get("name") != "loss":
            by_kind.setdefault(_text(row.get("kind"), 60), []).append(row)
    for row in (reference or {}).get("layers", []):
        if isinstance(row, dict) and _seconds(row.get("forward")) is not None:
            ref_by_kind[str(row.get("kind"))] = ref_by_kind.get(str(row.get("kind")), 0.0) + row["forward"]
    for kind, rows in by_kind.items():
        seconds = sum(_seconds(r["forward_s"]) for r in rows)
        ref = ref_by_kind.get(kind) if scale is not None else None
        calls = rows[0].get("op_forwards") if isinstance(rows[0].get("op_forwards"), dict) else {}
        calls = [_text(where) for op, where in list(calls.items())[:3] if "tensor.py" not in str(where)] or \
            [_text(where) for where in list(calls.values())[:2]]
        candidates.append((seconds, ref * scale if ref is not None else None, {
            "what": f"the forward of the {kind} layer{'s' if len(rows) > 1 else ''}",
            "function": _text(rows[0].get("function") or f"{kind}.forward")
            + (f", which calls {' and '.join(calls)}" if calls else ""),
            "detail": f"{len(rows)} layer(s)"}))
    if not candidates:
        return None
    seconds, ref, info = max(candidates, key=lambda c: c[0])
    total = step or sum(c[0] for c in candidates)
    info.update({"ms": _ms(seconds), "share": round(seconds / total, 3) if total else None,
                 "reference_ms": _ms(ref), "ratio": _ratio(seconds, ref)})
    share = f"{info['share']:.0%} of the step" if info["share"] is not None else f"{info['ms']:.1f} ms"
    versus = f", {info['ratio']:.1f}x the reference" if info["ratio"] is not None else ""
    info["text"] = f"{info['what']} ({info['function']}) took {share} ({info['ms']:.1f} ms){versus}"
    return info


def failed(reason: str, seconds: float | None = None) -> dict:
    """The `profile` field when there is no profile: the reason, and nothing made up."""
    return {"error": _text(reason, 1000), "notes": [], "layers": [], "slowest_function": None,
            "slowest_layer": None, "seconds": None if seconds is None else round(seconds, 2)}


# ---- the console -------------------------------------------------------------------------------------------
def profile_lines(profile: dict | None, top: int = TOP_LAYERS) -> list[str]:
    """A short table (the `top` layers by time, student vs reference) and the slowest-function line."""
    if not isinstance(profile, dict):
        return []
    lines = [f"where the time went (one training step, module 14's profiler; the profile took "
             f"{profile.get('seconds') or 0:.0f} s, outside the ceiling):"]
    if profile.get("error"):
        return lines + [f"  no profile: {profile['error']}"]
    rows = sorted(profile.get("layers") or [], key=lambda r: -((r["forward_ms"] or 0) + (r["backward_ms"] or 0)))

    def ms(value):
        return "-" if value is None else f"{value:.1f}"

    table = [("layer", "kind", "fwd ms", "bwd ms", "ref fwd", "ref bwd", "x ref")]
    for r in rows[:top]:
        table.append((r["name"], r["kind"], ms(r["forward_ms"]), ms(r["backward_ms"]), ms(r["reference_forward_ms"]),
                      ms(r["reference_backward_ms"]), "-" if r["ratio"] is None else f"{r['ratio']:.1f}"))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        lines.append("  " + "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
    step = profile.get("step_ms")
    if step is not None:
        ref = profile.get("reference_step_ms")
        lines.append(f"  step: {step:.1f} ms" + (f" (reference {ref:.1f} ms)" if ref else ""))
    if profile.get("slowest_function"):
        lines.append(f"  slowest: {profile['slowest_function']['text']}")
    if profile.get("reference"):
        lines.append(f"  reference: {profile['reference']}")
    lines += [f"  note: {n}" for n in profile.get("notes") or []]
    return lines
