"""The process that runs module probes with one `tinytorch` (a student's in the sandbox, or the reference).

    python -I -c "<put ROOT first on sys.path>; from grading.instructor.probe_worker import main; main()" ROOT

It reads one request from stdin and answers on stdout (frames of `grading.channel`):

    request   {"seed": 1234, "probes": [["02_tensor", "probe_matmul"], ...], "probe_seconds": 20}
    answers   {"start": ["02_tensor", "probe_matmul"]}                       before each probe
              {"module": ..., "probe": ..., "error": null | "why", "seconds": 0.01} + the output arrays
              {"done": true}                                                 at the end

The probes are the instructor's files `grading/instructor/probes/p*.py` under ROOT (see
`grading/instructor/probes/__init__.py` for the contract). Each probe gets a generator seeded with the
request's seed and its own name, so the student's run and the reference's run see the same fresh inputs.
Nothing here decides anything: the judge (grading/instructor/probe_judge.py) compares the answers.
"""
from __future__ import annotations

import importlib
import importlib.util
import signal
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from grading import channel
from grading.instructor.probes import probe_rng

MAX_ERROR_CHARS = 600


class ProbeTimeLimit(BaseException):
    """A probe ran past its time limit (a BaseException, so `except Exception` in student code cannot hide it)."""


def load_probes(root: Path) -> dict[str, dict]:
    """{module id: {probe name: function}} from ROOT/grading/instructor/probes/p*.py."""
    table: dict[str, dict] = {}
    for path in sorted((root / "grading" / "instructor" / "probes").glob("p*.py")):
        spec = importlib.util.spec_from_file_location(f"_tito_probes_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        table.setdefault(module.MODULE, {}).update({fn.__name__: fn for fn in module.PROBES})
    return table


def _describe(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    student = [f for f in frames if "/tinytorch/" in f.filename.replace("\\", "/")]
    where = student[-1] if student else (frames[-1] if frames else None)
    at = f" (at {Path(where.filename).name}:{where.lineno} in {where.name})" if where else ""
    return f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS] + at


def _on_alarm(signum, frame):
    raise ProbeTimeLimit()


def main(argv: list[str] | None = None) -> int:
    inbound, out = channel.claim_stdio()
    root = Path((argv or sys.argv)[1]).resolve()
    request, _ = channel.receive(inbound, max_bytes=1 << 20)
    seed, wanted = int(request["seed"]), [tuple(p) for p in request["probes"]]
    seconds = float(request.get("probe_seconds", 20))
    table = load_probes(root)
    try:
        tt, import_error = importlib.import_module("tinytorch"), None
    except BaseException as exc:  # a student's package that does not import fails every probe, with why
        tt, import_error = None, "import tinytorch failed: " + _describe(exc)
    signal.signal(signal.SIGALRM, _on_alarm)
    for module, name in wanted:
        channel.send(out, {"start": [module, name]})
        started = time.perf_counter()
        arrays, error = {}, None
        fn = table.get(module, {}).get(name)
        try:
            if fn is None:
                raise LookupError(f"no probe {name} for module {module}")
            if tt is None:
                raise ImportError(import_error)
            signal.setitimer(signal.ITIMER_REAL, seconds)
            try:
                result = fn(tt, probe_rng(seed, module, name))
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            if not isinstance(result, dict) or not result:
                raise TypeError(f"the probe returned {type(result).__name__}, not a dict of arrays")
            arrays = {str(k): np.asarray(v) for k, v in result.items()}
            channel.encode({}, arrays)   # check that every output can cross before sending anything
        except ProbeTimeLimit:
            error, arrays = f"ran past the probe time limit of {seconds:g} s", {}
        except BaseException as exc:  # student code may raise anything, SystemExit included
            error, arrays = _describe(exc), {}
        channel.send(out, {"module": module, "probe": name, "error": error,
                           "seconds": round(time.perf_counter() - started, 4)}, arrays)
    channel.send(out, {"done": True})
    out.close()
    return 0
