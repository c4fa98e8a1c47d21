"""`tito grade`: test every module, run the milestones that are unlocked, write badges and the README.

    tito grade                     # modules, then milestones (reusing results whose inputs did not change)
    tito grade --skip-milestones   # modules only (cached milestone results are still shown)

Steps, top to bottom in this file:
1. Module tests. One pytest child process for all modules (fast), through `grading.testrun`, which
   applies per-test, whole-run, memory and output limits. If that process crashes, the modules whose
   tests had all finished keep their results and every other module is re-run on its own, so one hostile
   module cannot zero the others. Points come from `grading.scoring.score_modules`, the one scoring rule.
2. Milestones. A milestone whose `requires` modules all pass reuses a result for exactly this code (its
   fingerprint, `grading.state.milestone_fingerprint`), from badges/progress.json (committed by CI) or
   from a local `tito milestone run`; otherwise it runs as `python -m grading milestone run N --json
   <tmp>` with a hard time limit (budget x factor). Victory is decided here, from the metrics and
   course.yaml's thresholds (never from an exit code): `milestone_entry` is the one place a stored or
   fresh result becomes a status. Not running (--skip-milestones, no time left) never erases a result.
3. Outputs under badges/ (shields endpoint JSON + SVG per badge, progress.json with the student's
   profile and the seconds of each phase, training curves), the README progress section, a GitHub
   Actions step summary, and unlock notifications.

Exit status: 0 whenever grading ran, whatever the score; 2 when it could not run (no course table, a
README that cannot be written, ...).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import yaml

import grading
from grading import badges as badgelib
from grading import readme_section, state
from grading.console import Console, actions_command, in_github_actions
from grading.course import Course, CourseError, Milestone, Module, load_course, repo_root
from grading.scoring import ModuleScore, error_line, score_modules, short_test
from grading.state import atomic_write_text, finite_number, milestone_entry, read_json
from grading.testrun import Limits, RunResult, TestResult, run_pytest

PROGRESS_SCHEMA = "tinytorch-progress"
PROGRESS_VERSION = 1
MANIFEST = "grading/manifest.json"
MAX_FAILING_LISTED = 10
MAX_MODULE_CRASHES = 3
MAX_RESULT_BYTES = 8 * 1024 * 1024
MAX_CURVE_BYTES = 2 * 1024 * 1024


class GradeError(RuntimeError):
    """Grading itself cannot run (as opposed to the student's code failing)."""


@dataclass
class GradeOptions:
    skip_milestones: bool = False
    test_timeout: float = 60.0
    run_timeout: float = 900.0
    memory_mb: int = 4096
    milestone_memory_mb: int = 8192
    milestone_timeout_factor: float = 1.5
    milestone_grace: float = 60.0      # seconds added to budget x factor (start-up, data loading)
    time_budget: float | None = None   # seconds for the whole `tito grade`; milestones that cannot finish
                                       # within what is left wait for the next run
    write_readme: bool = True
    verbose: bool = False
    reset: bool = False


# =====================================================================================================
# 1. module tests
# =====================================================================================================

class _Echo:
    """Prints a child's output lines with a prefix, up to a cap, so a flood cannot drown the log."""

    def __init__(self, out: Console, prefix: str, max_lines: int = 400, keep=None):
        self.out, self.prefix, self.max_lines, self.count = out, prefix, max_lines, 0
        self.keep = keep  # predicate: which lines to print (None: all)

    def __call__(self, line: str) -> None:
        if self.keep is not None and not self.keep(line):
            return
        self.count += 1
        if self.count <= self.max_lines:
            self.out.line(self.prefix + line[:300])
        elif self.count == self.max_lines + 1:
            self.out.line(self.prefix + "... (further output not shown)")


def _pytest_progress_line(line: str) -> bool:
    # pytest -q prints rows of ./F/s/E characters and a percentage; anything else here is noise.
    return bool(re.search(r"\[\s*\d+%\]\s*$", line))


def run_module_tests(root: Path, course: Course, limits: Limits, workdir: Path, out: Console,
                     verbose: bool = False, modules=None, isolation=None) -> tuple[dict[str, ModuleScore], str]:
    """Run the tests of `modules` (default: all); returns ({module id: ModuleScore}, mode).

    `isolation` wraps every pytest child (grading/isolation.py): the instructor's regrade passes its
    sandbox, so the regrade runs the tests exactly as `tito grade` does, crash recovery included."""
    modules = list(modules or course.modules)
    present = [m for m in modules if (root / m.folder).is_dir()]
    if not present:
        return score_modules(course, {}, {}, modules=modules), "no tests"
    echo = _Echo(out, "  ", keep=None if verbose else _pytest_progress_line)
    run = run_pytest(root, [m.folder for m in present], limits, workdir / "all", echo=echo, verbose=verbose,
                     isolation=isolation)
    if not run.crashed:
        return score_modules(course, _with_unrun(run), run.collect_errors, modules=modules), "single run"
    out.line(f"  {out.sym('warn')} {run.crash_reason}"
             + (f" (while running {short_test(run.crash_nodeid)})" if run.crash_nodeid else ""))
    finished = _finished_modules(course, run, present)
    scores = score_modules(course, _with_unrun(run), run.collect_errors, modules=modules)
    rerun = [m for m in present if m.id not in finished]
    out.line(f"  re-running {len(rerun)} module(s) one at a time so the crash only affects its own module")
    per_module_limits = Limits(limits.test_seconds, min(limits.run_seconds, max(120.0, limits.run_seconds / 4)),
                               limits.memory_mb, limits.output_mb)
    for m in rerun:
        scores[m.id] = grade_module(root, course, m, per_module_limits, workdir / m.id, isolation=isolation)
        s = scores[m.id]
        out.line(f"  {m.id}: {s.passed}/{s.total} tests passed" + (f" - {s.reason}" if s.reason else ""))
    return scores, "per-module runs after a crash"


def _with_unrun(run: RunResult) -> dict[str, TestResult]:
    """The run's results, plus collected tests that never ran because the process stopped (they count)."""
    tests = dict(run.tests)
    for nodeid in run.collected or []:
        tests.setdefault(nodeid, TestResult(nodeid, "not run", "did not run because the test process stopped"))
    return tests


def _finished_modules(course: Course, run: RunResult, present: list[Module]) -> set[str]:
    """Modules of a crashed run whose every collected test finished before the crash."""
    if run.collected is None:
        return set()
    by_module: dict[str, list[str]] = {m.id: [] for m in present}
    for nodeid in run.collected:
        m = course.module_for_path(nodeid)
        if m is not None and m.id in by_module:
            by_module[m.id].append(nodeid)
    done = set()
    for mid, ids in by_module.items():
        if ids and all(n in run.tests and run.tests[n].outcome != "crashed" for n in ids):
            done.add(mid)
    return done


def grade_module(root: Path, course: Course, module: Module, limits: Limits, workdir: Path,
                 echo=None, verbose: bool = False, isolation=None) -> ModuleScore:
    """Run one module's tests and score them; a test that kills the process is recorded and deselected,
    up to 3 times. `tito module test/complete` call this too, so they score exactly as `tito grade`."""
    crashed: dict[str, TestResult] = {}
    collected = None
    run = None
    for attempt in range(MAX_MODULE_CRASHES + 1):
        run = run_pytest(root, [module.folder], limits, workdir / f"attempt{attempt}", deselect=list(crashed),
                         echo=echo, verbose=verbose, isolation=isolation)
        if collected is None and run.collected is not None:
            collected = run.collected
        if not run.crashed:
            break
        if run.crash_nodeid is None or attempt == MAX_MODULE_CRASHES:
            break
        crashed[run.crash_nodeid] = TestResult(run.crash_nodeid, "crashed", run.crash_reason)
    assert run is not None
    run.tests.update(crashed)
    if collected is not None:
        run.collected = collected + [n for n in run.tests if n not in collected]
    crash_reason = ""
    if run.crashed and run.collected is None:
        last = error_line(run.output_tail)
        crash_reason = f"{run.crash_reason} while importing the tests" + (f"; last output: {last}" if last else "")
    elif run.crashed:
        crash_reason = run.crash_reason
    return score_modules(course, _with_unrun(run), run.collect_errors, {module.id: crash_reason},
                         modules=[module])[module.id]


# =====================================================================================================
# 2. milestones
# =====================================================================================================

def safe_curve_svg(path: Path) -> str | None:
    """The SVG at `path` if it is a small, well-formed SVG without scripts; otherwise None."""
    try:
        if not path.is_file() or path.stat().st_size > MAX_CURVE_BYTES:
            return None
        text = path.read_text(encoding="utf-8")
        tree = ET.fromstring(text)
    except (OSError, ValueError, ET.ParseError):
        return None
    if not tree.tag.endswith("svg"):
        return None
    for el in tree.iter():
        tag = el.tag.rsplit("}", 1)[-1].lower()
        if tag in ("script", "foreignobject", "iframe", "object", "embed"):
            return None
        for attr, value in el.attrib.items():
            name = attr.rsplit("}", 1)[-1].lower()
            if name.startswith("on") or "javascript:" in str(value).lower():
                return None
            if name == "href" and not str(value).startswith("#"):
                return None
    return text


def curve_file(number: int) -> str:
    return f"badges/curve-m{number}.svg"


def run_milestone(root: Path, ms: Milestone, workdir: Path, opts: GradeOptions, out: Console,
                  run_url: str | None, commit: dict) -> dict:
    """Run one milestone through the judge (grading/judge.py); returns its progress.json entry (never raises)."""
    from grading.judge import judge_milestone
    from grading.milestones import record
    from grading.profiling import profile_lines
    workdir.mkdir(parents=True, exist_ok=True)
    json_path = workdir / f"m{ms.number}.json"
    limit = milestone_hard_limit(ms, opts)
    out.line(f"  running milestone {ms.number} ({ms.name}): ceiling {ms.budget_seconds:g} s, "
             f"stopped after {limit:g} s")
    echo = _Echo(out, f"  {out.sym('bar')} ", max_lines=200)
    try:
        data = judge_milestone(ms, None, root, os.environ.get("TINYTORCH_DATA") or None, workdir / "run",
                               limits=Limits(memory_mb=opts.milestone_memory_mb, output_mb=512), timeout=limit,
                               out=echo, echo=echo)
        data["fingerprint"] = state.milestone_fingerprint(root, ms)
        record(ms, data, json_path, local=True, root=root)   # `tito milestone status` reads the same result
        for line in profile_lines(data.get("profile")):      # a run over its ceiling: where the time went
            out.line(f"    {line}")
    except Exception as exc:  # noqa: BLE001 - a broken judge setup (disk full, ...) fails this milestone alone
        return {"status": "error", "cache_key": None, "seconds": 0.0, "verified_by": run_url,
                **_commit_label(commit), "reason": f"the milestone judge failed: {type(exc).__name__}: {exc}"}
    seconds = round(float(data.get("seconds") or 0.0), 1)
    entry = {"status": "error", "cache_key": None, "seconds": seconds, "verified_by": run_url,
             **_commit_label(commit)}
    if data.get("error") and str(data["error"]).startswith("stopped after"):
        entry["reason"] = error_line(data["error"])
        return entry
    entry.update(milestone_entry(ms, data))
    entry["seconds"] = entry["seconds"] if entry["seconds"] is not None else seconds
    curve = safe_curve_svg(json_path.with_suffix(".svg"))
    if curve is not None:
        entry["_curve_svg"] = curve  # written to badges/ by write_outputs
    return entry


def _commit_label(commit: dict) -> dict:
    """What a result says it was computed on: a commit, or uncommitted changes (then no sha: the code
    that was judged is not the commit's)."""
    if commit.get("dirty"):
        return {"commit": None, "dirty": True}
    return {"commit": commit.get("sha"), "dirty": False}


def _previous_milestone(prev: dict, ms: Milestone, root: Path) -> dict | None:
    """The result of `ms` in the previous badges/progress.json (state.committed_result), with its curve."""
    entry = state.committed_result(prev, ms)
    return _with_curve(entry, root / curve_file(ms.number))


def _with_curve(entry: dict | None, svg: Path) -> dict | None:
    """`entry`, marked as reused, with the training curve stored next to it (if it is a safe SVG)."""
    if entry is None:
        return None
    entry["_reused"] = True
    curve = safe_curve_svg(svg)
    if curve is not None:
        entry["_curve_svg"] = curve
    return entry


def milestone_hard_limit(ms: Milestone, opts: GradeOptions) -> float:
    return ms.budget_seconds * opts.milestone_timeout_factor + opts.milestone_grace


def grade_milestones(root: Path, course: Course, modules: dict[str, ModuleScore], prev: dict,
                     opts: GradeOptions, workdir: Path, out: Console, run_url: str | None,
                     commit: dict | None, deadline: float | None = None) -> dict[str, dict]:
    """{number: progress entry} for every milestone: locked, reused (a result for exactly this code,
    from badges/progress.json or from a local `tito milestone run`), or run now.

    Never downgrades by not running: with --skip-milestones (or no time left) an earlier result for
    other code is kept, marked stale, with its curve, instead of becoming "not run"."""
    results = {}
    commit = commit if isinstance(commit, dict) else {"sha": commit, "dirty": None}
    checksums = state.known_data_checksums(root)
    runner_present = (root / "grading" / "milestones.py").is_file()
    for ms in course.milestones:
        base = {"number": ms.number, "name": ms.name, "badge": ms.badge, "thresholds": ms.thresholds,
                "budget_seconds": ms.budget_seconds}
        missing = [r for r in ms.requires if not (r in modules and modules[r].ok)]
        if missing:
            results[str(ms.number)] = {**base, "status": "locked",
                                       "reason": "needs all tests passing in: " + ", ".join(missing)}
            continue
        key = state.milestone_fingerprint(root, ms, checksums, course)
        # the committed result first: it carries where it was verified (a GitHub Actions run)
        local = _with_curve(state.local_result(root, ms),
                            state.milestone_result_path(ms.number, root).with_suffix(".svg"))
        earlier = [e for e in (_previous_milestone(prev, ms, root), local) if e is not None]
        current = next((e for e in earlier if e["cache_key"] == key), None)
        if current is not None:
            where = current.pop("ran", None) or "an earlier grade"
            out.line(f"  milestone {ms.number} ({ms.name}): nothing it depends on changed; "
                     f"reusing the result ({current['status']}) of {where}")
            results[str(ms.number)] = {**base, **current}
            continue
        left = None if deadline is None else deadline - time.monotonic()
        why_not = None
        if opts.skip_milestones:
            why_not = "--skip-milestones"
        elif not runner_present:
            why_not = "the milestone runner grading/milestones.py is missing"
        elif left is not None and milestone_hard_limit(ms, opts) > left:
            why_not = (f"not enough time left in this run ({max(left, 0):.0f} s); it runs on a later push, "
                       "once other results are reused")
        if why_not is not None:
            if earlier:
                kept = earlier[0]
                kept.pop("ran", None)
                results[str(ms.number)] = {**base, **kept, "stale": True,
                                           "reason": f"your code changed since this result; not re-run ({why_not})"}
            elif runner_present or opts.skip_milestones:
                results[str(ms.number)] = {**base, "status": "not_run", "cache_key": None,
                                           "reason": f"unlocked; not run ({why_not})"}
            else:
                results[str(ms.number)] = {**base, "status": "error", "cache_key": None, "reason": why_not}
            continue
        started = time.monotonic()
        entry = run_milestone(root, ms, workdir / f"m{ms.number}", opts, out, run_url, commit)
        entry["_wall_seconds"] = round(time.monotonic() - started, 1)   # for progress["seconds"] only
        if entry["status"] in ("passed", "failed") and not entry.pop("no_cache", False):
            entry["cache_key"] = state.milestone_fingerprint(root, ms, checksums, course)
        else:
            entry["cache_key"] = None
        results[str(ms.number)] = {**base, **entry}
        status = entry["status"]
        sym = out.sym("pass") if status == "passed" else out.sym("fail")
        out.line(f"  {sym} milestone {ms.number}: {status}"
                 + (f" - {entry['headline']}" if entry.get("headline") else "")
                 + (f" ({entry['reason']})" if entry.get("reason") else ""))
    return results


# =====================================================================================================
# 3. integrity, commit, progress.json
# =====================================================================================================

SUSPICIOUS_NAMES = ("conftest.py", "pytest.ini", "tox.ini", "setup.cfg", "sitecustomize.py", "usercustomize.py")
_SKIP_DIRS = {".git", ".tito", "__pycache__", "node_modules", ".venv", "venv", "env", ".hypothesis",
              ".pytest_cache", "build", "dist", ".mypy_cache", ".ruff_cache"}


def check_tamper(repo_root: Path | str) -> dict:
    """Compare protected files with grading/manifest.json ({"files": {path: sha256}}, written by `tito release`).

    Returns {"status": "clean" | "modified" | "no_manifest", "changed": [...], "missing": [...],
    "unexpected": [...]}: files whose content differs, protected files that are gone, and files that can
    change how tests are collected or run (conftest.py, pytest.ini, sitecustomize.py, ...) that the
    template did not have. The student-side grader only reports this; the instructor's regrade decides.
    """
    root = Path(repo_root)
    manifest = read_json(root / MANIFEST)
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict):
        return {"status": "no_manifest", "changed": [], "missing": [], "unexpected": []}
    changed, missing = [], []
    for rel, want in sorted(files.items()):
        path = root / rel
        if not path.is_file():
            missing.append(rel)
            continue
        data = path.read_bytes()
        got = hashlib.sha256(data).hexdigest()
        if got != want and hashlib.sha256(data.replace(b"\r\n", b"\n")).hexdigest() != want:
            changed.append(rel)
    unexpected = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.startswith("."))
        for name in sorted(filenames):
            if name in SUSPICIOUS_NAMES or name.endswith(".pth"):
                rel = (Path(dirpath) / name).relative_to(root).as_posix()
                if rel not in files:
                    unexpected.append(rel)
    status = "modified" if changed or missing or unexpected else "clean"
    return {"status": status, "changed": changed, "missing": missing, "unexpected": unexpected}


def _git(root: Path, *args: str) -> str | None:
    try:
        proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def commit_info(root: Path) -> dict:
    """The commit whose code is graded, and whether the working tree differs from it.

    That is the newest commit that changed something besides badges/ and README.md: a manual run on
    the bot's results commit grades the student's newest code and names the student's commit."""
    head = _git(root, "rev-parse", "HEAD")
    if not head:
        return {"sha": None, "time": None, "dirty": None}
    sha = _git(root, "log", "-1", "--format=%H", "--", ".", ":(exclude)badges", ":(exclude)README.md") or head
    when = _git(root, "show", "-s", "--format=%cI", sha)
    status = _git(root, "status", "--porcelain", "--", ".", ":(exclude)badges", ":(exclude)README.md")
    return {"sha": sha, "time": when, "dirty": bool(status) if status is not None else None}


def actions_run_url() -> str | None:
    server, repo, run_id = (os.environ.get(k) for k in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID"))
    if server and repo and run_id and server.startswith("https://"):
        return f"{server}/{repo}/actions/runs/{run_id}"
    return None


PROFILE_FILE = "tinytorch.yaml"
PROFILE_KEYS = 12           # fields kept from the student's profile
PROFILE_CHARS = 120         # characters kept per field
_PROFILE_KEY = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


def read_profile(root: Path) -> dict:
    """The student's profile from tinytorch.yaml (module 01): {"name": ..., "github": ..., ...}.

    Student-writable, so it is validated and capped: at most 12 fields named like `github` or
    `student_id`, each a one-line string of at most 120 printable characters; anything else is dropped.
    Empty fields are left out. The progress page and the instructor's roster show it.
    """
    try:
        path = root / PROFILE_FILE
        if path.stat().st_size > 64 * 1024:
            return {}
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    if not isinstance(data, dict):
        return {}
    profile = {}
    for key, value in data.items():
        if len(profile) >= PROFILE_KEYS:
            break
        if not isinstance(key, str) or not _PROFILE_KEY.match(key) or isinstance(value, bool):
            continue
        if isinstance(value, (int, float)):
            value = str(value)
        if not isinstance(value, str):
            continue
        text = "".join(ch for ch in value.strip() if ch.isprintable())[:PROFILE_CHARS]
        if text:
            profile[key] = text
    return profile


def build_progress(course: Course, modules: dict[str, ModuleScore], milestones: dict[str, dict],
                   tamper: dict, commit: dict, run_url: str | None, mode: str,
                   profile: dict | None = None, seconds: dict | None = None,
                   fingerprints: dict[str, str] | None = None) -> dict:
    """badges/progress.json: the grade, as every reader (README, badges, roster, regrade) sees it."""
    mods = {}
    for m in course.modules:
        mods[m.id] = modules[m.id].as_dict()
        if fingerprints and m.id in fingerprints:
            mods[m.id]["fingerprint"] = fingerprints[m.id]
    points = round(sum(e["points"] for e in mods.values()), 2)
    progress = {
        "schema": PROGRESS_SCHEMA, "version": PROGRESS_VERSION, "course": course.name,
        "grader_version": grading.__version__,
        "commit": commit,
        "run": {"url": run_url, "github_actions": in_github_actions()},
        "profile": profile or {},
        "modules": mods,
        "totals": {"modules_passed": sum(1 for e in mods.values() if e["ok"]), "modules": len(mods),
                   "points": points, "max_points": course.total_points,
                   "milestones_passed": sum(1 for e in milestones.values() if e["status"] == "passed"),
                   "milestones": len(milestones)},
        "milestones": {k: {kk: vv for kk, vv in v.items() if not kk.startswith("_")}
                       for k, v in milestones.items()},
        "tamper": tamper,
        "test_run": mode,
    }
    if seconds is not None:
        progress["seconds"] = seconds   # per phase: {"module_tests": s, "milestones": {"1": s}, "total": s}
    return progress


def ungraded_progress(course: Course) -> dict:
    """The progress of a fresh repository: nothing graded, every milestone locked."""
    modules = score_modules(course, {}, {})
    milestones = {str(ms.number): {"number": ms.number, "name": ms.name, "badge": ms.badge,
                                   "thresholds": ms.thresholds, "budget_seconds": ms.budget_seconds,
                                   "status": "locked", "reason": "not graded yet"}
                  for ms in course.milestones}
    progress = build_progress(course, modules, milestones, {"status": "no_manifest", "changed": [],
                              "missing": [], "unexpected": []}, {"sha": None, "time": None, "dirty": None},
                              None, "not graded yet")
    for entry in progress["modules"].values():
        entry["reason"] = "not graded yet"
    progress["run"] = {"url": None, "github_actions": False}  # the same bytes wherever it is written
    return progress


# =====================================================================================================
# 4. outputs
# =====================================================================================================

def badge_files(course: Course) -> dict[str, str]:
    """badge key -> file stem under badges/ ('modules', 'points', 'integrity', and one per milestone)."""
    files = {"modules": "modules", "points": "points", "integrity": "integrity"}
    for ms in course.milestones:
        files[f"m{ms.number}"] = badgelib.slug(ms.badge)
    return files


def write_outputs(root: Path, course: Course, progress: dict, curves: dict[int, str],
                  write_readme: bool = True) -> list[str]:
    """Write badges/, progress.json, curves and the README section; returns warnings."""
    warnings = []
    out_dir = root / "badges"
    out_dir.mkdir(parents=True, exist_ok=True)
    files = badge_files(course)
    totals = progress["totals"]
    made = {
        "modules": badgelib.modules_badge(totals["modules_passed"], totals["modules"]),
        "points": badgelib.points_badge(totals["points"], totals["max_points"]),
        "integrity": badgelib.integrity_badge(progress["tamper"]),
    }
    for ms in course.milestones:
        made[f"m{ms.number}"] = badgelib.milestone_badge(progress["milestones"][str(ms.number)])
    for key, badge in made.items():
        _write_if_changed(out_dir / f"{files[key]}.json",
                          json.dumps(badge.endpoint_json(), indent=2, ensure_ascii=False) + "\n")
        _write_if_changed(out_dir / f"{files[key]}.svg", badge.svg())
    for ms in course.milestones:
        path = root / curve_file(ms.number)
        entry = progress["milestones"][str(ms.number)]
        if ms.number in curves and entry["status"] in ("passed", "failed"):
            _write_if_changed(path, curves[ms.number])
            entry["curve"] = curve_file(ms.number)
        else:
            entry["curve"] = None
            if path.exists():
                path.unlink()
    _write_if_changed(out_dir / "progress.json", json.dumps(progress, indent=2, sort_keys=True) + "\n")
    if write_readme:
        section = readme_section.render(progress, course, files)
        try:
            changed = readme_section.update_readme(root / "README.md", section)
        except readme_section.MarkerError as exc:
            warnings.append(str(exc))
        else:
            if changed is None:
                warnings.append("README.md not found; the progress section was not written")
    return warnings


def _write_if_changed(path: Path, text: str) -> None:
    try:
        if path.read_text(encoding="utf-8") == text:
            return
    except (OSError, UnicodeDecodeError):
        pass
    atomic_write_text(path, text)


def step_summary(progress: dict, course: Course, unlocked: list[dict], reused=frozenset()) -> str:
    """Markdown for $GITHUB_STEP_SUMMARY: the whole picture of this run, including failure messages."""
    t = progress["totals"]
    lines = [f"## TinyTorch grade: {badgelib.fmt_number(t['points'])}/{badgelib.fmt_number(t['max_points'])} points, "
             f"{t['modules_passed']}/{t['modules']} modules, {t['milestones_passed']}/{t['milestones']} milestones", ""]
    for entry in unlocked:
        lines.append(f"> **Milestone unlocked: {entry['badge']}** (milestone {entry['number']}, {entry['name']})"
                     + (f" - {entry['headline']}" if entry.get("headline") else ""))
        lines.append("")
    lines += ["| Module | Tests | Points | Notes |", "|---|---|---|---|"]
    for m in course.modules:
        e = progress["modules"][m.id]
        mark = "\u2705" if e["ok"] else ("\u274c" if e["total"] else "\u2796")
        note = _md_cell(e["reason"])
        lines.append(f"| {mark} {m.id} | {e['passed']}/{e['total']} | "
                     f"{badgelib.fmt_number(e['points'])}/{badgelib.fmt_number(e['max_points'])} | {note} |")
    lines += ["", "| Milestone | Badge | Status | Result | Time |", "|---|---|---|---|---|"]
    for ms in course.milestones:
        e = progress["milestones"][str(ms.number)]
        secs = f"{e['seconds']:.0f} s" if finite_number(e.get("seconds")) else ""
        result = e.get("headline") or ""
        if e.get("reason") and e["status"] != "passed":
            result = (result + " - " if result else "") + _md_cell(e["reason"])
        source = " (reused)" if str(ms.number) in reused else ""
        lines.append(f"| {ms.number} {ms.name} | {ms.badge} | {e['status']}{source} | {result} | {secs} |")
    tamper = progress["tamper"]
    if tamper["status"] == "modified":
        lines += ["", "**Grader files differ from the course template** (the instructor's regrade decides): "
                  + ", ".join(tamper["changed"] + tamper["missing"] + tamper["unexpected"])]
    return "\n".join(lines) + "\n"


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")[:300]


def newly_passed(prev: dict, progress: dict) -> list[dict]:
    before = (prev.get("milestones") or {}) if isinstance(prev, dict) else {}
    out = []
    for key, entry in progress["milestones"].items():
        old = before.get(key) if isinstance(before, dict) else None
        if entry["status"] == "passed" and not (isinstance(old, dict) and old.get("status") == "passed"):
            out.append(entry)
    return out


def announce_unlocks(out: Console, unlocked: list[dict], course: Course, progress: dict) -> None:
    for entry in unlocked:
        party = out.sym("party")
        out.line("")
        out.line(out.style(f"{party} MILESTONE UNLOCKED: {entry['badge']} {party}", "bold", "green"))
        out.line(f"Milestone {entry['number']} ({entry['name']}) passed with your own tinytorch"
                 + (f": {entry['headline']}." if entry.get("headline") else "."))
        if in_github_actions():
            out.line(actions_command("notice", f"Milestone {entry['number']} ({entry['name']}) passed"
                                     + (f": {entry['headline']}" if entry.get("headline") else ""),
                                     title=f"Milestone unlocked: {entry['badge']}"))
    if not unlocked:
        return
    # once, after every unlock of this run (several can unlock in one push)
    nxt = next((progress["milestones"][str(ms.number)] for ms in course.milestones
                if progress["milestones"][str(ms.number)]["status"] != "passed"), None)
    if nxt is not None:
        hint = "run `tito grade` to try it" if nxt["status"] == "not_run" else nxt.get("reason", "")
        out.line(f"{out.sym('arrow')} Next: milestone {nxt['number']}, {nxt['name']} ({nxt['badge']}) - {hint}")
    else:
        out.line("That was the last one: every milestone of the course is yours.")


def print_report(out: Console, progress: dict, course: Course, reused=frozenset()) -> None:
    out.line("")
    out.line(out.style("Modules", "bold"))
    for m in course.modules:
        e = progress["modules"][m.id]
        sym = out.sym("pass") if e["ok"] else (out.sym("fail") if e["total"] else out.sym("todo"))
        pts = f"{badgelib.fmt_number(e['points'])}/{badgelib.fmt_number(e['max_points'])} pts"
        line = f"  {sym} {m.id:<18} {e['passed']:>3}/{e['total']:<3} tests  {pts:>12}"
        out.line(line + (f"  {e['reason']}" if e["reason"] else ""))
    out.line(out.style("Milestones", "bold"))
    for ms in course.milestones:
        e = progress["milestones"][str(ms.number)]
        sym = {"passed": out.sym("pass"), "locked": out.sym("lock"), "not_run": out.sym("todo")}.get(
            e["status"], out.sym("fail"))
        text = f"  {sym} {ms.number} {ms.name:<20} {ms.badge:<26} {e['status']}"
        if e.get("headline"):
            text += f": {e['headline']}"
        if str(ms.number) in reused:
            text += " (reused)"
        if e.get("stale"):
            text += " (stale)"
        if e.get("reason") and (e["status"] != "passed" or e.get("stale")):
            text += f" - {e['reason']}"
        out.line(text)
    t = progress["totals"]
    out.line("")
    out.line(out.style(f"Total: {badgelib.fmt_number(t['points'])}/{badgelib.fmt_number(t['max_points'])} points, "
                       f"{t['modules_passed']}/{t['modules']} modules, "
                       f"{t['milestones_passed']}/{t['milestones']} milestones", "bold"))
    tamper = progress["tamper"]
    if tamper["status"] == "modified":
        out.line(f"{out.sym('warn')} files that the course protects differ from the template: "
                 + ", ".join(tamper["changed"] + tamper["missing"] + tamper["unexpected"]))


# =====================================================================================================
# entry point
# =====================================================================================================

def grade(opts: GradeOptions, root: Path | None = None, out: Console | None = None) -> int:
    out = out or Console()
    root = Path(root or repo_root())
    try:
        return _grade(opts, root, out)
    except (CourseError, GradeError) as exc:
        out.line(f"{out.sym('fail')} tito grade could not run: {exc}")
        return 2
    except OSError as exc:
        out.line(f"{out.sym('fail')} tito grade could not write its results: {exc}")
        return 2


def _grade(opts: GradeOptions, root: Path, out: Console) -> int:
    course = load_course(root / "assignments" / "course.yaml")
    prev = read_json(state.progress_file(root), {})
    prev = prev if isinstance(prev, dict) else {}
    if opts.reset:
        progress = ungraded_progress(course)
        write_outputs(root, course, progress, {}, opts.write_readme)
        out.line("Wrote the ungraded badges" + (" and README progress section." if opts.write_readme else "."))
        return 0
    started = time.monotonic()
    commit = commit_info(root)
    run_url = actions_run_url()
    workdir = Path(tempfile.mkdtemp(prefix="tito-grade-"))
    try:
        label = (" (uncommitted changes)" if commit["dirty"] else f" (commit {commit['sha'][:7]})") \
            if commit["sha"] else ""
        out.line(out.style(f"Grading {course.name} at {root}", "bold") + label)
        out.line(f"Module tests: {len(course.modules)} modules in one pytest process "
                 f"(limits: {opts.test_timeout:g} s per test, {opts.run_timeout:g} s in all)")
        limits = Limits(opts.test_timeout, opts.run_timeout, opts.memory_mb)
        modules, mode = run_module_tests(root, course, limits, workdir / "tests", out, opts.verbose)
        test_seconds = round(time.monotonic() - started, 1)
        out.line(f"Module tests done in {test_seconds:.1f} s.")
        recorded = state.record_module_results(root, course, modules)
        out.line("Milestones" + (" (--skip-milestones: only reusing earlier results)" if opts.skip_milestones else ""))
        deadline = started + opts.time_budget if opts.time_budget else None
        milestones = grade_milestones(root, course, modules, prev, opts, workdir / "milestones", out, run_url,
                                      commit, deadline)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    tamper = check_tamper(root)
    curves = {int(k): v.pop("_curve_svg") for k, v in milestones.items() if "_curve_svg" in v}
    reused = {k for k, v in milestones.items() if v.get("_reused")}
    seconds = {"module_tests": test_seconds,
               "milestones": {k: v["_wall_seconds"] for k, v in milestones.items() if "_wall_seconds" in v},
               "total": round(time.monotonic() - started, 1)}
    fingerprints = {mid: entry["fingerprint"] for mid, entry in recorded.items()}
    progress = build_progress(course, modules, milestones, tamper, commit, run_url, mode,
                              read_profile(root), seconds, fingerprints)
    warnings = write_outputs(root, course, progress, curves, opts.write_readme)
    print_report(out, progress, course, reused)
    unlocked = newly_passed(prev, progress)
    announce_unlocks(out, unlocked, course, progress)
    for w in warnings:
        out.line(f"{out.sym('warn')} {w}")
    summary_path = os.environ.get("GITHUB_STEP_SUMMARY")
    if in_github_actions() and summary_path:
        try:
            with open(summary_path, "a", encoding="utf-8") as fh:
                fh.write(step_summary(progress, course, unlocked, reused))
        except OSError as exc:
            out.line(f"{out.sym('warn')} could not write the step summary: {exc}")
    out.line(f"Graded in {time.monotonic() - started:.1f} s; results in badges/ and README.md.")
    return 0


# =====================================================================================================
# CLI
# =====================================================================================================

def register(subparsers) -> None:
    p = subparsers.add_parser(
        "grade", help="grade everything: module tests, milestones, badges, README progress",
        description="Run every module's tests (partial credit per test), run the milestones whose modules "
                    "pass (reusing results when nothing they depend on changed), and write badges/, "
                    "badges/progress.json and the README progress section. Exits 0 whenever grading ran.")
    p.add_argument("--skip-milestones", action="store_true",
                   help="only run module tests; milestone results are reused if still valid, never run")
    p.add_argument("--test-timeout", type=float, default=60.0, metavar="S",
                   help="time limit of one test, in seconds (default: 60)")
    p.add_argument("--run-timeout", type=float, default=900.0, metavar="S",
                   help="time limit of the whole module test run, in seconds (default: 900)")
    p.add_argument("--memory-mb", type=int, default=int(os.environ.get("TITO_MEMORY_MB", 4096)), metavar="MB",
                   help="address-space limit of the test process (default: 4096; POSIX only)")
    p.add_argument("--milestone-memory-mb", type=int, default=int(os.environ.get("TITO_MILESTONE_MEMORY_MB", 8192)),
                   metavar="MB", help="address-space limit of a milestone process (default: 8192)")
    p.add_argument("--milestone-timeout-factor", type=float, default=1.5, metavar="X",
                   help="stop a milestone after X times its budget plus the grace (default: 1.5)")
    p.add_argument("--milestone-grace", type=float, default=60.0, metavar="S",
                   help="seconds added to a milestone's time limit for start-up (default: 60)")
    p.add_argument("--time-budget", type=float, default=None, metavar="S",
                   help="seconds for the whole grade; a milestone whose time limit no longer fits waits "
                        "for the next run (CI sets this below the job's timeout)")
    p.add_argument("--no-readme", action="store_true", help="do not touch README.md")
    p.add_argument("--verbose", "-v", action="store_true", help="show all pytest output")
    p.add_argument("--reset", action="store_true",
                   help="write the ungraded state (all milestones locked) without running anything")
    p.add_argument("--data-key", action="store_true",
                   help="print a hash of the data sets' checksums (the workflow's data cache key) and exit")
    p.set_defaults(func=_cmd_grade)


def data_key(root: Path) -> str:
    """sha256 over the data sets' checksums: changes exactly when the data the course uses changes."""
    sums = state.known_data_checksums(root)
    return hashlib.sha256(json.dumps(sums, sort_keys=True).encode()).hexdigest()


def _cmd_grade(args) -> int:
    if args.data_key:
        print(data_key(repo_root()))
        return 0
    opts = GradeOptions(skip_milestones=args.skip_milestones, test_timeout=args.test_timeout,
                        run_timeout=args.run_timeout, memory_mb=args.memory_mb,
                        milestone_memory_mb=args.milestone_memory_mb,
                        milestone_timeout_factor=args.milestone_timeout_factor, time_budget=args.time_budget,
                        milestone_grace=args.milestone_grace,
                        write_readme=not args.no_readme, verbose=args.verbose, reset=args.reset)
    return grade(opts, out=getattr(args, "console", None))
