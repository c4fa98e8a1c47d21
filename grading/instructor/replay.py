"""`tito classroom cost`: what one student's whole course costs in GitHub Actions minutes, measured by
replaying the course as a history of pushes.

    tito classroom cost                                   # the whole course, 2 pushes per module (slow)
    tito classroom cost --through 04 --skip-milestones    # a quick look
    tito classroom cost --students 100 --json cost.json

How a course is replayed (the README's instructor section says the same):
1. The student template is built from this repository with `tito release` (build_release) in a temporary
   folder and made a git repository; a bare repository stands in for GitHub and a second clone of it for
   the runner.
2. Modules in course.yaml order; each module is pushed P times (--pushes-per-module, default 2). Push k of P
   fills the first floor(B*k/P) of the module's B solution blocks (in file order) with the reference code,
   the rest stay stubs - at least one and not all of them before the last push, when the module has
   two or more - through the release's own solution-block code (solutions.transform). So with P=2 the
   first push has about half of the module, the second the whole module.
3. Each push is graded the way .github/workflows/grade.yml grades it: the runner's clone is reset to the
   pushed commit and cleaned of everything git does not track (a fresh checkout: no .tito/, no caches), the
   workflow's own `tito grade ...` command (read from grade.yml) runs with the workflow's environment, then
   its `python -m grading.commit_back` commits the results to the bare repository, and the student pulls
   before the next push. What carries over between runs is what the workflow carries over: the committed
   badges/ and README (the results commit) and the data sets (TINYTORCH_DATA, the workflow's data cache).
4. The grader's own seconds come from each run's badges/progress.json (`seconds`). Around it, per push:
   measured here - `pip install -e ".[test]"` into a fresh venv with a warm pip cache (once, applied to every
   push: setup-python's `cache: pip`), the data-key step, the grader process's start-up and output writing,
   and the results commit; NOT measurable here - starting the job's VM, checkout, setup-python, restoring
   the data cache, and on the first push the cache miss (download and save) - each an option with a stated
   default (UNMEASURED below). GitHub bills each job rounded up to a whole minute ("About billing for
   GitHub Actions"), so every push is rounded up on its own.

Timing on a machine that other jobs share is inflated; the report gives the grader's CPU seconds too.
"""
from __future__ import annotations

import argparse
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from grading.course import REPO_ROOT, Course, Module, load_course
from grading.instructor.release import build_release
from grading.instructor.solutions import find_blocks, transform
from grading.state import atomic_write_json, read_json

try:
    import resource              # child CPU time; POSIX only (on Windows the report leaves CPU out)
except ImportError:
    resource = None

WORKFLOW = ".github/workflows/grade.yml"
BRANCH = "main"
TEAM_MINUTES = 3000          # included minutes per month of a GitHub Team organisation (private repositories)
BILLING_SOURCE = ("GitHub Docs, 'About billing for GitHub Actions': each job's minutes are rounded up to the "
                  "nearest whole minute; a Team plan includes 3,000 minutes/month; public repositories are free")


class CostError(RuntimeError):
    """The replay cannot run (bad option, no workflow, a git step failed); the message says what to fix."""


# ---- what cannot be measured on this machine: one named option each, with its default and why ------------
@dataclass(frozen=True)
class Unmeasured:
    name: str          # option --<name>-seconds
    seconds: float     # default
    pushes: str        # which pushes it applies to: "every", "first" or "later" (all but the first)
    source: str        # where the default comes from


UNMEASURED: tuple[Unmeasured, ...] = (
    Unmeasured("job-setup", 5.0, "every",
               "assumed: 'Set up job' + 'Complete job' of an ubuntu-latest job; read yours on a run page"),
    Unmeasured("checkout", 2.0, "every",
               "assumed: actions/checkout of a small repository with fetch-depth 0; read yours on a run page"),
    Unmeasured("setup-python", 5.0, "every",
               "assumed: actions/setup-python (Python 3.11 from the runner's tool cache) restoring the pip cache"),
    Unmeasured("cache-restore", 5.0, "later",
               "assumed: actions/cache restoring the ~175 MB data cache (a hit on every push after the first)"),
    Unmeasured("cache-miss", 60.0, "first",
               "assumed: the first push's cache miss - downloading MNIST, CIFAR-10 and Tiny Shakespeare, saving "
               "the cache"),
)


# ---- the workflow's own commands --------------------------------------------------------------------------
@dataclass
class WorkflowCommands:
    grade: list[str]           # argv after `tito`, e.g. ["grade", "--time-budget", "3000"]
    commit_back: list[str]     # argv after `python -m`, e.g. ["grading.commit_back", "--branch", "main"]
    env: dict[str, str]        # the job's env


def workflow_commands(root: Path, branch: str = BRANCH) -> WorkflowCommands:
    """The grade job's `tito grade` and commit-back commands and env, read from grade.yml (one home)."""
    path = root / WORKFLOW
    try:
        job = yaml.safe_load(path.read_text(encoding="utf-8"))["jobs"]["grade"]
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        raise CostError(f"{WORKFLOW}: cannot read the grade job ({exc})") from None
    grade = commit_back = None
    for step in job.get("steps") or []:
        run = step.get("run") if isinstance(step, dict) else None
        if not isinstance(run, str):
            continue
        argv = shlex.split(run.replace('"$BRANCH"', branch).replace("$BRANCH", branch))
        if argv[:2] == ["tito", "grade"] and "--data-key" not in argv:
            grade = argv[1:]
        elif argv[:3] == ["python", "-m", "grading.commit_back"]:
            commit_back = argv[2:]
    if grade is None or commit_back is None:
        raise CostError(f"{WORKFLOW}: the grade job has no `tito grade` step or no `python -m grading.commit_back` "
                        "step; the replay runs exactly those")
    env = {str(k): str(v) for k, v in (job.get("env") or {}).items()}
    return WorkflowCommands(grade, commit_back, env)


# ---- the push history -------------------------------------------------------------------------------------
@dataclass
class Push:
    index: int                 # 1-based, over the whole replay
    module: str
    k: int                     # push k of `of` for this module
    of: int
    blocks_filled: int
    blocks: int


def blocks_for_push(blocks: int, k: int, pushes: int) -> int:
    """How many of a module's `blocks` solution blocks push k of `pushes` has filled in (see the docstring)."""
    if k >= pushes:
        return blocks
    n = blocks * k // pushes
    return max(1, min(blocks - 1, n)) if blocks >= 2 else n


def push_plan(course: Course, source: Path, pushes_per_module: int, through: int | None) -> list[Push]:
    plan = []
    for m in course.modules:
        if through is not None and m.number > through:
            break
        blocks = len(find_blocks((source / m.source).read_text(encoding="utf-8"), m.source))
        for k in range(1, pushes_per_module + 1):
            plan.append(Push(len(plan) + 1, m.id, k, pushes_per_module,
                             blocks_for_push(blocks, k, pushes_per_module), blocks))
    return plan


def module_source_for(source: Path, module: Module, filled: int) -> str:
    """The module's file with its first `filled` solution blocks done and the others stubbed."""
    text = (source / module.source).read_text(encoding="utf-8")
    return transform(text, module.id, keep=set(range(filled)), path=module.source)


# ---- running things ---------------------------------------------------------------------------------------
def _git(repo: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-c", "user.name=Student", "-c", "user.email=student@example.com", *args],
                          cwd=repo, capture_output=True, text=True)
    if proc.returncode != 0:
        raise CostError(f"git {' '.join(args)} in {repo} failed: {proc.stderr.strip()}")
    return proc.stdout


@dataclass
class Timed:
    wall: float
    cpu: float | None          # user + sys of the child processes (None where unknown: Windows)
    returncode: int
    output: str


def _timed(argv: list[str], cwd: Path, env: dict, log: Path | None = None, echo=None) -> Timed:
    """Run argv; wall and child CPU seconds; output to `log` (and lines to `echo`)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN) if resource else None
    start = time.monotonic()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            encoding="utf-8", errors="replace")
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if echo is not None:
            echo(line.rstrip("\n"))
    proc.wait()
    wall = time.monotonic() - start
    cpu = None
    if resource is not None:
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = round((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 1)
    output = "".join(lines)
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(output, encoding="utf-8")
    return Timed(round(wall, 1), cpu, proc.returncode, output)


def measure_install(tree: Path, work: Path, out=print) -> float:
    """Seconds of `pip install -e ".[test]"` into a fresh venv with a warm pip cache (the workflow's install
    step after setup-python restored its pip cache). Installed twice; the first warms the cache."""
    seconds = 0.0
    for attempt in ("warming the pip cache", "measured"):
        venv = work / f"venv-{attempt.split()[0]}"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
        python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
        copy = work / f"install-{attempt.split()[0]}"
        shutil.copytree(tree, copy, ignore=shutil.ignore_patterns(".git"))
        out(f"  pip install -e \".[test]\" into a fresh venv ({attempt}) ...")
        run = _timed([str(python), "-m", "pip", "install", "-q", "-e", ".[test]"], copy, env)
        if run.returncode != 0:
            raise CostError(f"pip install -e \".[test]\" failed in a fresh venv:\n{run.output[-2000:]}")
        seconds = run.wall
        shutil.rmtree(copy, ignore_errors=True)
        shutil.rmtree(venv, ignore_errors=True)
    return seconds


def _grader_echo(out, verbose: bool):
    """Prints the grader's lines: all of them with --verbose, else only the milestones starting and ending."""
    def echo(line: str) -> None:
        if verbose or "running milestone" in line or re.search(r" milestone \d+: (passed|failed|error)", line):
            out("    " + line.strip())
    return echo


# ---- one push's figures -----------------------------------------------------------------------------------
@dataclass
class PushCost:
    index: int
    module: str
    k: int
    of: int
    blocks_filled: int
    blocks: int
    tests_seconds: float                          # progress.json seconds.module_tests
    milestones: dict[str, float]                  # milestones run in this push: {number: seconds}
    grade_seconds: float                          # progress.json seconds.total
    grade_cpu_seconds: float | None               # CPU of the grader process and its children (None: unknown)
    module_passed: int                            # the pushed module's tests after this push
    module_total: int
    points: float
    overhead: dict[str, float] = field(default_factory=dict)   # {what: seconds}, measured and assumed
    billed_minutes: int = 0

    @property
    def overhead_seconds(self) -> float:
        return round(sum(self.overhead.values()), 1)

    @property
    def job_seconds(self) -> float:
        return round(self.grade_seconds + self.overhead_seconds, 1)


def billed_minutes(job_seconds: float) -> int:
    """GitHub bills a job's time rounded up to a whole minute (and at least one)."""
    return max(1, math.ceil(job_seconds / 60.0 - 1e-9))


def read_seconds(progress_path: Path) -> dict:
    """The `seconds` record of one grading run ({"module_tests", "milestones": {n: s}, "total"})."""
    progress = read_json(progress_path, {})
    seconds = progress.get("seconds") if isinstance(progress, dict) else None
    if not isinstance(seconds, dict) or not isinstance(seconds.get("total"), (int, float)):
        raise CostError(f"{progress_path}: the grader wrote no `seconds` record; it did not grade (see its log)")
    return {"progress": progress, "seconds": seconds}


# ---- the replay -------------------------------------------------------------------------------------------
@dataclass
class CostOptions:
    pushes_per_module: int = 2
    through: int | None = None
    skip_milestones: bool = False
    students: int = 30
    data_dir: str | None = None
    install_seconds: float | None = None          # None: measure it
    assumed: dict[str, float] = field(default_factory=lambda: {u.name: u.seconds for u in UNMEASURED})
    keep_work: str | None = None
    verbose: bool = False


def replay(opts: CostOptions, source: Path = REPO_ROOT, out=print) -> dict:
    """Replay one student's course (see the module docstring); returns the report as a dict."""
    source = Path(source).resolve()
    course = load_course(source / "assignments" / "course.yaml")
    if opts.pushes_per_module < 1:
        raise CostError(f"--pushes-per-module must be 1 or more (got {opts.pushes_per_module})")
    numbers = [m.number for m in course.modules]
    if opts.through is not None and opts.through not in numbers:
        raise CostError(f"--through {opts.through}: no such module; course.yaml has modules "
                        f"{numbers[0]:02d}..{numbers[-1]:02d}")
    if opts.students < 1:
        raise CostError(f"--students must be 1 or more (got {opts.students})")
    for name, value in opts.assumed.items():
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise CostError(f"--{name}-seconds must be a number of seconds >= 0 (got {value})")
    data_dir = opts.data_dir or os.environ.get("TINYTORCH_DATA") or None
    if not opts.skip_milestones and not (data_dir and Path(data_dir).is_dir()):
        raise CostError("the milestones need the data sets: pass --data-dir DIR or set TINYTORCH_DATA to the folder "
                        "holding mnist.npz, cifar10.npz and tinyshakespeare.txt (or use --skip-milestones)")
    commands = workflow_commands(source)
    plan = push_plan(course, source, opts.pushes_per_module, opts.through)
    by_id = {m.id: m for m in course.modules}

    work = Path(opts.keep_work).resolve() if opts.keep_work else Path(tempfile.mkdtemp(prefix="tito-cost-"))
    if opts.keep_work and work.exists() and any(work.iterdir()):
        raise CostError(f"--keep-work {work} is not empty; give a new folder")
    work.mkdir(parents=True, exist_ok=True)
    try:
        student, origin, runner = work / "student", work / "origin.git", work / "runner"
        out(f"Building the student template in {student} ...")
        build_release(student, source)
        _git(work, "init", "-q", "-b", BRANCH, str(student))
        _git(student, "add", "-A")
        _git(student, "commit", "-q", "-m", "Start from the template")
        _git(work, "init", "-q", "--bare", "-b", BRANCH, str(origin))
        _git(student, "remote", "add", "origin", str(origin))
        _git(student, "push", "-q", "-u", "origin", BRANCH)
        _git(work, "clone", "-q", str(origin), str(runner))

        if opts.install_seconds is None:
            install = measure_install(student, work, out)
            install_note = "measured: pip install -e \".[test]\" into a fresh venv, warm pip cache"
        else:
            install = float(opts.install_seconds)
            install_note = "given with --install-seconds (not measured)"
        out(f"  install step: {install:.1f} s ({install_note})")

        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("GITHUB_", "TITO_", "PYTEST_", "PYTHON")) and k not in ("NO_COLOR", "FORCE_COLOR")}
        env.update(commands.env)
        env.update({"PYTHONPATH": str(runner), "PYTHONIOENCODING": "utf-8",
                    # the workflow points both at the restored data cache; here the data is read from
                    # data_dir and anything the run would download goes to a fresh folder
                    "TINYTORCH_DATA": data_dir or "", "TINYTORCH_CACHE": str(work / "cache")})
        grade_argv = [sys.executable, "-m", "grading", *commands.grade]
        if opts.skip_milestones:
            grade_argv.append("--skip-milestones")
        out(f"Replaying {len(plan)} pushes ({opts.pushes_per_module} per module, modules "
            f"{plan[0].module}..{plan[-1].module}); each graded with: tito {' '.join(grade_argv[3:])}")
        costs = []
        started = time.monotonic()
        for push in plan:
            module = by_id[push.module]
            # the student: pull the previous results commit, write the module, commit, push
            _git(student, "pull", "-q", "--rebase", "origin", BRANCH)
            (student / module.source).write_text(module_source_for(source, module, push.blocks_filled),
                                                 encoding="utf-8")
            _git(student, "add", "-A")
            _git(student, "commit", "-q", "--allow-empty", "-m",
                 f"{push.module}: {push.blocks_filled}/{push.blocks} solution blocks (push {push.k}/{push.of})")
            _git(student, "push", "-q", "origin", BRANCH)
            # the runner: a fresh checkout of the pushed commit (nothing untracked survives)
            _git(runner, "fetch", "-q", "origin")
            _git(runner, "reset", "-q", "--hard", f"origin/{BRANCH}")
            _git(runner, "clean", "-q", "-xdff")
            out(f"[{push.index}/{len(plan)}] {push.module} push {push.k}/{push.of} "
                f"({push.blocks_filled}/{push.blocks} blocks): grading ... "
                f"({time.monotonic() - started:.0f} s so far)")
            logs = work / "logs"
            echo = _grader_echo(out, opts.verbose)
            key = _timed([sys.executable, "-m", "grading", "grade", "--data-key"], runner, env)
            graded = _timed(grade_argv, runner, env, logs / f"push{push.index:02d}-grade.log", echo)
            if graded.returncode != 0:
                raise CostError(f"push {push.index}: the grader exited {graded.returncode}:\n{graded.output[-2000:]}")
            record = read_seconds(runner / "badges" / "progress.json")
            committed = _timed([sys.executable, "-m", *commands.commit_back], runner, env,
                               logs / f"push{push.index:02d}-commit.log")
            if committed.returncode != 0:
                raise CostError(f"push {push.index}: the results commit failed:\n{committed.output[-2000:]}")
            seconds, progress = record["seconds"], record["progress"]
            entry = progress["modules"][push.module]
            overhead = {"install (measured once)": round(install, 1),
                        "data key step (measured)": key.wall,
                        "grader start-up and outputs (measured)": round(max(0.0, graded.wall - seconds["total"]), 1),
                        "results commit (measured)": committed.wall}
            for u in UNMEASURED:
                if u.pushes == "every" or (u.pushes == "first") == (push.index == 1):
                    overhead[f"{u.name} (assumed)"] = float(opts.assumed[u.name])
            cost = PushCost(push.index, push.module, push.k, push.of, push.blocks_filled, push.blocks,
                            float(seconds.get("module_tests") or 0.0),
                            {str(k): float(v) for k, v in (seconds.get("milestones") or {}).items()},
                            float(seconds["total"]), graded.cpu, int(entry["passed"]), int(entry["total"]),
                            float(progress["totals"]["points"]), overhead)
            cost.billed_minutes = billed_minutes(cost.job_seconds)
            costs.append(cost)
            ran = ", ".join(f"m{k} {v:.0f} s" for k, v in cost.milestones.items()) or "none"
            out(f"    tests {cost.tests_seconds:.1f} s, milestones run: {ran}, grade {cost.grade_seconds:.1f} s "
                f"(CPU {_seconds(cost.grade_cpu_seconds)}), overhead {cost.overhead_seconds:.1f} s -> "
                f"billed {cost.billed_minutes} min; {push.module} {cost.module_passed}/{cost.module_total} tests, "
                f"{cost.points:g} points")
        return build_report(opts, costs, install_note, len(plan))
    finally:
        if not opts.keep_work:
            shutil.rmtree(work, ignore_errors=True)


def report_again(saved, opts: CostOptions, given: dict[str, float]) -> dict:
    """The report of a saved replay (its --json) for opts.students, with the assumed step seconds in `given`
    and opts.install_seconds (when set) replacing the ones it used; the grader's measured seconds are kept."""
    try:
        pushes = [dict(p) for p in saved["pushes"]]
        old = saved["options"]
        fields = set(PushCost.__dataclass_fields__)
        costs = [PushCost(**{k: v for k, v in p.items() if k in fields}) for p in pushes]
    except (KeyError, TypeError) as exc:
        raise CostError(f"--from-json: not a report written by `tito classroom cost --json` ({exc})") from None
    if opts.students < 1:
        raise CostError(f"--students must be 1 or more (got {opts.students})")
    install_note = saved.get("install", "")
    assumed = {name: a["seconds"] for name, a in (saved.get("assumptions") or {}).items()}
    for name, value in given.items():
        if not (math.isfinite(value) and value >= 0):
            raise CostError(f"--{name}-seconds must be a number of seconds >= 0 (got {value})")
        assumed[name] = value
    for cost in costs:
        for name, value in given.items():
            if f"{name} (assumed)" in cost.overhead:
                cost.overhead[f"{name} (assumed)"] = float(value)
        if opts.install_seconds is not None:
            cost.overhead = {k: v for k, v in cost.overhead.items() if not k.startswith("install")}
            cost.overhead["install (given)"] = float(opts.install_seconds)
        cost.billed_minutes = billed_minutes(cost.job_seconds)
    if opts.install_seconds is not None:
        install_note = "given with --install-seconds (not measured)"
    again = CostOptions(pushes_per_module=old["pushes_per_module"], through=old["through"],
                        skip_milestones=old["skip_milestones"], students=opts.students,
                        assumed={**{u.name: u.seconds for u in UNMEASURED}, **assumed})
    report = build_report(again, costs, install_note, len(costs))
    report["machine"] = saved.get("machine", report["machine"])     # where the seconds were measured
    return report


def build_report(opts: CostOptions, costs: list[PushCost], install_note: str, pushes: int) -> dict:
    per_student = sum(c.billed_minutes for c in costs)
    milestone_totals: dict[str, float] = {}
    for c in costs:
        for k, v in c.milestones.items():
            milestone_totals[k] = round(milestone_totals.get(k, 0.0) + v, 1)
    class_minutes = per_student * opts.students
    return {
        "pushes": [{**asdict(c), "overhead_seconds": c.overhead_seconds, "job_seconds": c.job_seconds}
                   for c in costs],
        "totals": {
            "pushes": pushes,
            "module_tests_seconds": round(sum(c.tests_seconds for c in costs), 1),
            "milestone_seconds": milestone_totals,
            "grade_seconds": round(sum(c.grade_seconds for c in costs), 1),
            "grade_cpu_seconds": (None if any(c.grade_cpu_seconds is None for c in costs)
                                  else round(sum(c.grade_cpu_seconds for c in costs), 1)),
            "overhead_seconds": round(sum(c.overhead_seconds for c in costs), 1),
            "job_seconds": round(sum(c.job_seconds for c in costs), 1),
            "billed_minutes_per_student": per_student,
            "students": opts.students,
            "billed_minutes_class": class_minutes,
            "team_included_minutes": TEAM_MINUTES,
            "share_of_team_minutes": round(class_minutes / TEAM_MINUTES, 3),
        },
        "assumptions": {u.name: {"seconds": float(opts.assumed[u.name]), "pushes": u.pushes,
                                 "option": f"--{u.name}-seconds", "source": u.source} for u in UNMEASURED},
        "install": install_note,
        "billing": BILLING_SOURCE,
        "options": {"pushes_per_module": opts.pushes_per_module, "through": opts.through,
                    "skip_milestones": opts.skip_milestones},
        "machine": {"cpus": os.cpu_count(), "platform": sys.platform, "python": sys.version.split()[0],
                    "date": time.strftime("%Y-%m-%d")},
    }


def _seconds(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.0f} s"


def format_report(report: dict) -> str:
    rows = ["| # | module | push | tests s | milestones run (s) | grade s | overhead s | billed min |",
            "|---|---|---|---|---|---|---|---|"]
    for p in report["pushes"]:
        ms = ", ".join(f"m{k} {v:.0f}" for k, v in p["milestones"].items()) or "-"
        rows.append(f"| {p['index']} | {p['module']} | {p['k']}/{p['of']} | {p['tests_seconds']:.1f} | {ms} | "
                    f"{p['grade_seconds']:.1f} | {p['overhead_seconds']:.1f} | {p['billed_minutes']} |")
    t = report["totals"]
    ms_total = ", ".join(f"m{k} {v:.0f} s" for k, v in t["milestone_seconds"].items()) or "none run"
    lines = rows + [
        "",
        f"Per phase, all {t['pushes']} pushes: module tests {t['module_tests_seconds']:.0f} s; milestones {ms_total}; "
        f"grader in all {t['grade_seconds']:.0f} s (CPU {_seconds(t['grade_cpu_seconds'])}); runner overhead "
        f"{t['overhead_seconds']:.0f} s.",
        f"One student, whole course: {t['billed_minutes_per_student']} billed minutes ({t['job_seconds'] / 60:.1f} "
        f"minutes of job time; rounding each of the {t['pushes']} pushes up to a whole minute adds "
        f"{t['billed_minutes_per_student'] - t['job_seconds'] / 60:.1f}).",
        f"A class of {t['students']}, whole course: {t['billed_minutes_class']} minutes = "
        f"{100 * t['share_of_team_minutes']:.0f}% of ONE month's {t['team_included_minutes']:,} included minutes of a "
        "GitHub Team organisation (private repositories; public repositories are free).",
        f"Billing: {report['billing']}.",
        f"Install step: {report['install']}.",
        "Not measurable here (options, defaults and sources):",
    ]
    which = {"every": "every push", "first": "first push only", "later": "every push but the first"}
    for a in report["assumptions"].values():
        lines.append(f"  {a['option']} {a['seconds']:g} ({which[a['pushes']]}) - {a['source']}")
    m = report["machine"]
    lines.append(f"Measured on {m['cpus']} CPUs ({m['platform']}, Python {m['python']}), {m['date']}; wall times on a "
                 "shared machine are inflated by its other jobs.")
    return "\n".join(lines)


# ---- command line -----------------------------------------------------------------------------------------
def add_arguments(q: argparse.ArgumentParser) -> None:
    q.add_argument("--pushes-per-module", type=int, default=2, metavar="P",
                   help="pushes per module: push k fills k/P of its solution blocks (default 2)")
    q.add_argument("--through", type=int, metavar="NN", help="replay modules 01..NN only (default: all)")
    q.add_argument("--skip-milestones", action="store_true", help="grade with --skip-milestones (fast)")
    q.add_argument("--tiny", action="store_true",
                   help="a quick look: --through 04 --pushes-per-module 1 (tito grade has no tiny milestones; "
                        "milestone 1 still runs on the real data unless --skip-milestones)")
    q.add_argument("--students", type=int, default=30, metavar="N", help="class size for the total (default 30)")
    q.add_argument("--data-dir", help="folder of the data sets (default: $TINYTORCH_DATA)")
    q.add_argument("--install-seconds", type=float, metavar="S",
                   help="use S for the install step instead of measuring it (pip install into a fresh venv)")
    for u in UNMEASURED:
        q.add_argument(f"--{u.name}-seconds", type=float, default=None, metavar="S",
                       dest=f"assumed_{u.name.replace('-', '_')}",
                       help=f"{u.source} (default {u.seconds:g})")
    q.add_argument("--json", metavar="PATH", help="also write the report as JSON")
    q.add_argument("--from-json", metavar="PATH",
                   help="do not replay: report again from a replay's --json, with this --students and any "
                        "--install-seconds / --<step>-seconds given here replacing the figures it used")
    q.add_argument("--keep-work", metavar="DIR", help="replay in DIR (a new folder) and keep it: logs, repositories")
    q.add_argument("--verbose", "-v", action="store_true", help="show the grader's output")


def cmd_cost(args) -> int:
    pushes, through = args.pushes_per_module, args.through
    if args.tiny:
        through = 4 if through is None else through
        pushes = 1
    given = {u.name: getattr(args, f"assumed_{u.name.replace('-', '_')}") for u in UNMEASURED}
    given = {name: value for name, value in given.items() if value is not None}
    opts = CostOptions(pushes_per_module=pushes, through=through, skip_milestones=args.skip_milestones,
                       students=args.students, data_dir=args.data_dir, install_seconds=args.install_seconds,
                       assumed={**{u.name: u.seconds for u in UNMEASURED}, **given},
                       keep_work=args.keep_work, verbose=args.verbose)
    try:
        if args.from_json:
            report = report_again(read_json(args.from_json), opts, given)
        else:
            report = replay(opts, out=lambda line: print(line, flush=True))
    except CostError as exc:
        print(f"tito classroom cost: {exc}", file=sys.stderr)
        return 2
    print()
    print(format_report(report))
    if args.json:
        atomic_write_json(args.json, report)
        print(f"JSON report written to {args.json}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grading.instructor.replay", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return cmd_cost(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
