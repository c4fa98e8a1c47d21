"""Record the reference framework's training-step profile of each milestone, for the judge's "where the time went".

    python milestones/profile_reference.py                 # all five: milestones/reference_profiles/mN.json
    python milestones/profile_reference.py --only m3 m4
    python milestones/profile_reference.py --only m3 --tiny --out /tmp/profiles   # mN.tiny.json (tests)

When a student's milestone run goes over its ceiling, the judge profiles the student's training step and
shows it next to the reference's (grading/profiling.py). The reference framework is not in a student's
repository, so its profile is recorded here, once, with this repository's tinytorch: the same
`profile_case(ctx)` of each program, measured by the same code the judge's child runs
(grading/milestone_child.measure_case), in this process with one BLAS thread (the judge's setting), in CPU
time. Every time is stored as a multiple of the fixed NumPy workload of grading/profiling.py
(`BaselineWorkload`), timed in the same process between the steps, so the judge can scale it to the
student's machine. The files hold layer names, kinds, shapes and numbers
only: no code. Rerun it when a program's model changes (tests/test_milestone_profile.py checks that the
recorded layers still match the programs).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script: make `milestones.*` and `grading.*` importable
    sys.path.insert(0, str(REPO_ROOT))

from grading.threads import program_threads  # noqa: E402 - no NumPy in it

os.environ.update(program_threads())   # before NumPy loads: the thread counts of the judge's children

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import platform  # noqa: E402
from datetime import datetime, timezone  # noqa: E402

from grading import profiling, state  # noqa: E402
from grading.course import load_course  # noqa: E402
from grading.milestone_child import profile_program  # noqa: E402
from milestones.common import MilestoneContext  # noqa: E402

OUT_DIR = REPO_ROOT / "milestones" / "reference_profiles"


def machine_name() -> str:
    """CPU model (Linux), core count and Python/NumPy versions: what the report says it was recorded on."""
    import numpy as np

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), cpu)
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, NumPy {np.__version__}"


def record(number: int, tiny: bool = False, out_dir: Path = OUT_DIR, program: Path | None = None,
           seed: int = 0) -> Path:
    """Measure milestone `number`'s profile_case (or that of `program`) and write its reference record."""
    course = load_course()
    ms = course.milestone(number)
    program = Path(program) if program else REPO_ROOT / ms.program
    spec = importlib.util.spec_from_file_location(f"milestones.{program.stem}", program)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    ctx = MilestoneContext(number, tiny=tiny, seed=seed, schedule=ms.schedule, stream=sys.stderr)
    measured = profile_program(module, ctx)
    measured["tiny"] = tiny
    recorded = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    data = profiling.to_reference(measured, number, machine_name(), recorded)
    path = Path(out_dir) / f"m{number}{'.tiny' if tiny else ''}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    state.atomic_write_json(path, data)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", default=["m1", "m2", "m3", "m4", "m5"], metavar="mN")
    parser.add_argument("--tiny", action="store_true", help="the tiny models (for tests): writes mN.tiny.json")
    parser.add_argument("--out", default=str(OUT_DIR), help=f"folder for the records (default {OUT_DIR})")
    args = parser.parse_args(argv)
    for name in args.only:
        number = int(name.lstrip("mM"))
        path = record(number, tiny=args.tiny, out_dir=Path(args.out))
        step = (state.read_json(path) or {}).get("step")
        print(f"m{number}: {path}" + (f" (step = {step:g} x the machine baseline)" if step else ""), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
