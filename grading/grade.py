"""`tito grade`: test every module, run the milestones that are unlocked, write badges and the README.

    tito grade                     # modules, then milestones (reusing results whose inputs did not change)
    tito grade --skip-milestones   # modules only (cached milestone results are still shown)

Steps:
1. Module tests. One pytest child process for all modules (fast), through `grading.testrun`, which
   applies per-test, whole-run, memory and output limits. If that process crashes, the modules whose
   tests had all finished keep their results and every other module is re-run on its own, so one hostile
   module cannot zero the others. Points = module points x passed / total tests (partial credit); a test
   file that cannot even be imported gives its module 0 points.
2. Milestones. Each milestone whose `requires` modules all pass runs as `python -m grading milestone run N
   --json <tmp>` with a hard time limit (budget x factor). Victory is decided here, from the metrics and
   course.yaml's thresholds (never from an exit code). A result is reused when its cache key matches: sha256
   over every tinytorch/*.py file (all of them: simpler and safer than tracing imports), the milestone
   program, milestones/common.py, any shipped weights under milestones/weights/, the victory thresholds,
   and the sha256 of the data files the program names (the SOURCES.md checksums, as declared in
   tinytorch/datasets.py). Keys live in badges/progress.json, which CI commits, so results carry over
   between pushes.
3. Outputs under badges/ (shields endpoint JSON + SVG per badge, progress.json, training curves), the README
   progress section, a GitHub Actions step summary, and unlock notifications.

Exit status: 0 whenever grading ran, whatever the score; 2 when it could not run (no course table, a
README that cannot be written, ...).
"""
from __future__ import annotations

import ast
import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import grading
from grading import badges as badgelib
from grading import readme_section
from grading.console import Console, actions_command, in_github_actions
from grading.course import REPO_ROOT, Course, CourseError, Milestone, Module, load_course
from grading.state import atomic_write_text, read_json
from grading.testrun import (Limits, RunResult, TestResult, Watched, child_env, describe_exit, python_in, read_tail,
                             run_pytest)

PROGRESS_SCHEMA = "tinytorch-progress"
PROGRESS_VERSION = 1
CACHE_KEY_VERSION = "tito-milestone-cache-v3"   # v2: per-corpus bars in the key; v3: judge files, schedule
MANIFEST = "grading/manifest.json"
MAX_FAILING_LISTED = 10
MAX_MODULE_CRASHES = 3
MAX_RESULT_BYTES = 8 * 1024 * 1024
MAX_CURVE_BYTES = 2 * 1024 * 1024
SAMPLE_CHARS = 600


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

@dataclass
class ModuleGrade:
    module: Module
    tests: dict[str, TestResult] = field(default_factory=dict)
    collect_errors: dict[str, str] = field(default_factory=dict)
    crash_reason: str = ""

    def neutral_skip(self, t: TestResult) -> bool:
        """A skip that the module's own test file asked for (e.g. 'set TINYTORCH_DATA to check the real
        data'): it counts neither for nor against. A skip raised from anywhere else - say, pytest.skip()
        inside tinytorch/ - is not neutral and counts as a failed test."""
        if t.outcome != "skipped":
            return False
        where = t.skip_path.replace("\\", "/")
        folder = self.module.folder
        return where.startswith(folder + "/") or f"/{folder}/" in where

    @property
    def counted(self) -> list[TestResult]:
        return [t for t in self.tests.values() if not self.neutral_skip(t)]

    @property
    def skipped(self) -> int:
        return len(self.tests) - len(self.counted)

    @property
    def total(self) -> int:
        return len(self.counted)

    @property
    def passed(self) -> int:
        return sum(1 for t in self.counted if t.ok)

    @property
    def points(self) -> float:
        if self.collect_errors or self.total == 0:
            return 0.0
        return round(self.module.points * self.passed / self.total, 2)

    @property
    def ok(self) -> bool:
        return self.total > 0 and self.passed == self.total and not self.collect_errors

    @property
    def reason(self) -> str:
        """Why the module did not get full marks, in one line (empty when it did)."""
        if self.collect_errors:
            path, message = next(iter(sorted(self.collect_errors.items())))
            return (f"{Path(path).name} could not be imported, so this module gets 0 points: "
                    f"{error_line(message)}")
        if self.total == 0:
            if self.tests:
                return "every test was skipped: " + error_line(next(iter(self.tests.values())).message)
            return self.crash_reason or f"no tests found in {self.module.folder}/"
        if self.ok:
            return ""
        first = next(t for t in self.counted if not t.ok)
        text = f"{self.total - self.passed} of {self.total} tests failed; first: {short_test(first.nodeid)}"
        message = first.message
        if first.outcome == "skipped":
            message = f"skipped from {Path(first.skip_path).name or 'outside its test file'}, " \
                      f"which counts as a failure: {message}"
        if message:
            text += f" - {error_line(message)}"
        return text

    @property
    def failing(self) -> list[str]:
        return [t.nodeid for t in self.counted if not t.ok]


def error_line(text: str, limit: int = 240) -> str:
    """The most useful single line of a pytest error: the last `E   ...` line, else the first line."""
    lines = [ln.rstrip() for ln in str(text).splitlines() if ln.strip()]
    e_lines = [ln[1:].strip() for ln in lines if ln.startswith("E ")]
    line = e_lines[-1] if e_lines else (lines[0].strip() if lines else "")
    return line if len(line) <= limit else line[: limit - 3] + "..."


def short_test(nodeid: str) -> str:
    """'assignments/04_layers/test_04_layers.py::test_linear' -> 'test_04_layers.py::test_linear'."""
    return nodeid.rsplit("/", 1)[-1]


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
                 verbose: bool = False, modules=None) -> tuple[dict[str, ModuleGrade], str]:
    """Run the tests of `modules` (default: all); returns ({module id: ModuleGrade}, mode)."""
    modules = list(modules or course.modules)
    present = [m for m in modules if (root / m.folder).is_dir()]
    grades = {m.id: ModuleGrade(m) for m in modules}
    if not present:
        return grades, "no tests"
    echo = _Echo(out, "  ", keep=None if verbose else _pytest_progress_line)
    run = run_pytest(root, [m.folder for m in present], limits, workdir / "all", echo=echo, verbose=verbose)
    if not run.crashed:
        _assign(course, run, grades)
        return grades, "single run"
    out.line(f"  {out.sym('warn')} {run.crash_reason}"
             + (f" (while running {short_test(run.crash_nodeid)})" if run.crash_nodeid else ""))
    finished = _finished_modules(course, run, present)
    if finished:
        _assign(course, run, grades, only=finished)
    rerun = [m for m in present if m.id not in finished]
    out.line(f"  re-running {len(rerun)} module(s) one at a time so the crash only affects its own module")
    per_module_limits = Limits(limits.test_seconds, min(limits.run_seconds, max(120.0, limits.run_seconds / 4)),
                               limits.memory_mb, limits.output_mb)
    for m in rerun:
        grades[m.id] = _test_one_module(root, course, m, per_module_limits, workdir / m.id)
        g = grades[m.id]
        out.line(f"  {m.id}: {g.passed}/{g.total} tests passed" + (f" - {g.reason}" if g.reason else ""))
    return grades, "per-module runs after a crash"


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


def _assign(course: Course, run: RunResult, grades: dict[str, ModuleGrade], only=None) -> None:
    for nodeid in (run.collected or []):
        if nodeid not in run.tests:
            run.tests[nodeid] = TestResult(nodeid, "not run", "did not run because the test process stopped")
    for nodeid, result in run.tests.items():
        m = course.module_for_path(nodeid)
        if m is not None and m.id in grades and (only is None or m.id in only):
            grades[m.id].tests[nodeid] = result
    for path, message in run.collect_errors.items():
        m = course.module_for_path(path)
        if m is not None and m.id in grades and (only is None or m.id in only):
            grades[m.id].collect_errors[path] = message


def _test_one_module(root: Path, course: Course, module: Module, limits: Limits, workdir: Path) -> ModuleGrade:
    """Run one module's tests; a test that kills the process is recorded and deselected, up to 3 times."""
    grade = ModuleGrade(module)
    crashed: dict[str, TestResult] = {}
    collected = None
    run = None
    for attempt in range(MAX_MODULE_CRASHES + 1):
        run = run_pytest(root, [module.folder], limits, workdir / f"attempt{attempt}", deselect=list(crashed))
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
    if run.crashed and run.collected is None:
        last = error_line(run.output_tail)
        grade.crash_reason = f"{run.crash_reason} while importing the tests" + (f"; last output: {last}" if last else "")
    elif run.crashed:
        grade.crash_reason = run.crash_reason
    _assign(course, run, {module.id: grade})
    return grade


# =====================================================================================================
# 2. milestones
# =====================================================================================================

_SOURCES_ROW = re.compile(r"^\|\s*([\w.\-]+)\s*\|[^|]*\|\s*([0-9a-f]{64})\s*\|", re.M)


def known_data_checksums(root: Path) -> dict[str, str]:
    """{data file: sha256} of the course's data sets, the checksums SOURCES.md lists.

    Read from tinytorch/datasets.py (every `offline_file=..., offline_sha256=...` pair, found by parsing the
    file, never importing it), which the loader verifies every file against - so the same values apply on
    a student's laptop and in CI, whether the data came from $TINYTORCH_DATA or the download cache. Falls
    back to the SOURCES.md table in $TINYTORCH_DATA when datasets.py declares none.
    """
    found: dict[str, str] = {}
    try:
        tree = ast.parse((root / "tinytorch" / "datasets.py").read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        tree = None
    for node in ast.walk(tree) if tree is not None else ():
        if isinstance(node, ast.Call):
            kw = {k.arg: k.value.value for k in node.keywords
                  if k.arg in ("offline_file", "offline_sha256") and isinstance(k.value, ast.Constant)
                  and isinstance(k.value.value, str)}
            if len(kw) == 2 and re.fullmatch(r"[0-9a-f]{64}", kw["offline_sha256"]):
                found[kw["offline_file"]] = kw["offline_sha256"]
    if found:
        return found
    data = os.environ.get("TINYTORCH_DATA")
    if data:
        try:
            return dict(_SOURCES_ROW.findall((Path(data) / "SOURCES.md").read_text(encoding="utf-8", errors="replace")))
        except OSError:
            pass
    return {}


def data_checksums_for(program_text: str, checksums: dict[str, str]) -> dict[str, str]:
    """The data files a milestone program names (by file stem, e.g. 'mnist'); all of them if it names none."""
    text = program_text.lower()
    used = {name: sha for name, sha in checksums.items() if Path(name).stem.lower() in text}
    return used or dict(checksums)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def milestone_inputs(root: Path, ms: Milestone) -> list[Path]:
    """Files whose content decides a milestone's result (sorted; missing ones are skipped)."""
    files = sorted((root / "tinytorch").glob("*.py"))
    files += [root / ms.program, root / "milestones" / "common.py"]
    files += [root / "grading" / f"{name}.py" for name in ("judge", "milestone_data", "milestone_child", "channel")]
    weights = root / "milestones" / "weights"
    if weights.is_dir():
        files += sorted(p for p in weights.rglob("*") if p.is_file())
    return [p for p in files if p.is_file()]


def milestone_cache_key(root: Path, ms: Milestone, checksums: dict[str, str] | None = None) -> str:
    checksums = known_data_checksums(root) if checksums is None else checksums
    h = hashlib.sha256()
    h.update(CACHE_KEY_VERSION.encode() + b"\0")
    for path in milestone_inputs(root, ms):
        h.update(path.relative_to(root).as_posix().encode() + b"\0")
        h.update(file_sha256(path).encode() + b"\0")
    h.update(json.dumps(ms.all_thresholds, sort_keys=True).encode() + b"\0")
    h.update(json.dumps({"data": ms.data, "evaluations": ms.evaluations, "schedule": ms.schedule},
                        sort_keys=True).encode() + b"\0")
    try:
        program_text = (root / ms.program).read_text(encoding="utf-8", errors="replace")
    except OSError:
        program_text = ""
    h.update(json.dumps(data_checksums_for(program_text, checksums), sort_keys=True).encode())
    return h.hexdigest()


def _finite_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def headline(ms: Milestone, metrics: dict) -> str | None:
    """'97.1% test accuracy' / '1.62 val loss': the first victory metric, as the badge shows it."""
    for cond in ms.victory:
        value = metrics.get(cond.metric)
        if _finite_number(value):
            return f"{badgelib.format_metric(cond.metric, value)} {badgelib.metric_label(cond.metric)}"
    return None


def _clean_metrics(raw) -> dict:
    if not isinstance(raw, dict):
        return {}
    return {str(k): (round(float(v), 6) if _finite_number(v) else None)
            for k, v in list(raw.items())[:50] if isinstance(k, str)}


def _clean_sample(text) -> str | None:
    if not isinstance(text, str) or not text.strip():
        return None
    text = "".join(ch for ch in text if ch == "\n" or (ch.isprintable() and ch != "\x7f"))
    return text[:SAMPLE_CHARS]


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
                  run_url: str | None, commit: str | None) -> dict:
    """Run one milestone through the judge (grading/judge.py); returns its progress.json entry (never raises)."""
    from grading.judge import judge_milestone
    from grading.milestones import record

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
        record(ms, data, json_path)
        if Path(root).resolve() == REPO_ROOT:   # `tito milestone status` shows it too
            from grading import milestones as runner, state
            data["fingerprint"] = runner.fingerprint(ms, load_course())
            record(ms, data, state.milestone_result_path(ms.number))
    except Exception as exc:  # noqa: BLE001 - a broken judge setup (disk full, ...) fails this milestone alone
        return {"status": "error", "cache_key": None, "seconds": 0.0, "verified_by": run_url, "commit": commit,
                "reason": f"the milestone judge failed: {type(exc).__name__}: {exc}"}
    seconds = round(float(data.get("seconds") or 0.0), 1)
    entry = {"status": "error", "cache_key": None, "seconds": seconds,
             "verified_by": run_url, "commit": commit}
    if data.get("error") and str(data["error"]).startswith("stopped after"):
        entry["reason"] = error_line(data["error"])
        return entry
    metrics = _clean_metrics(data.get("metrics"))
    error = data.get("error") if isinstance(data.get("error"), str) and data.get("error") else None
    details = data.get("details") if isinstance(data.get("details"), dict) else {}
    corpus = _clean_corpus(data.get("corpus") if isinstance(data.get("corpus"), str) else details.get("corpus"))
    passed = data.get("passed") is True and error is None and ms.passed(metrics, corpus)
    entry.update({
        "status": "passed" if passed else "failed",
        "metrics": metrics,
        "seconds": seconds,
        "headline": headline(ms, metrics),
    })
    if error is not None:
        # The program could not finish (unfinished code, missing data, ...): show why, and never reuse
        # this result, since the cause may be outside the files of the cache key (a failed download).
        entry["reason"] = "could not run: " + error_line(error)
        entry["no_cache"] = True
    elif not passed:
        unmet = [badgelib.describe_condition(c) for c in ms.unmet(metrics, corpus)]
        entry["reason"] = ("victory condition not met: " + ", ".join(unmet)) if unmet else \
            "the milestone reported a failed check (see its output)"
    sample = _clean_sample(details.get("sample"))
    if sample:
        entry["sample"] = sample
    if corpus:
        entry["corpus"] = corpus
        entry["thresholds"] = ms.thresholds_for(corpus)
    curve = safe_curve_svg(json_path.with_suffix(".svg"))
    if curve is not None:
        entry["_curve_svg"] = curve  # written to badges/ by write_outputs
    return entry


def _clean_corpus(value) -> str | None:
    """The corpus a result names (it picks the milestone's bar), or None; results are student-writable."""
    return value[:100] if isinstance(value, str) and value else None


def _previous_milestone(prev: dict, ms: Milestone, root: Path) -> dict | None:
    """A previous result of `ms` from badges/progress.json, if it is well formed (it is student-writable)."""
    entry = (prev.get("milestones") or {}).get(str(ms.number)) if isinstance(prev, dict) else None
    if not isinstance(entry, dict) or entry.get("status") not in ("passed", "failed"):
        return None
    if not isinstance(entry.get("cache_key"), str) or not isinstance(entry.get("metrics"), dict):
        return None
    metrics = _clean_metrics(entry["metrics"])
    corpus = _clean_corpus(entry.get("corpus"))
    passed = entry["status"] == "passed" and ms.passed(metrics, corpus)
    url = entry.get("verified_by")
    clean = {
        "status": "passed" if passed else "failed", "cache_key": entry["cache_key"], "metrics": metrics,
        "seconds": entry["seconds"] if _finite_number(entry.get("seconds")) else None,
        "headline": headline(ms, metrics), "_reused": True,
        "verified_by": url if isinstance(url, str) and url.startswith("https://") else None,
        "commit": entry.get("commit") if isinstance(entry.get("commit"), str) else None,
    }
    if not passed:
        unmet = [badgelib.describe_condition(c) for c in ms.unmet(metrics, corpus)]
        clean["reason"] = "victory condition not met: " + ", ".join(unmet) if unmet else \
            "the milestone reported a failed check"
    if _clean_sample(entry.get("sample")):
        clean["sample"] = _clean_sample(entry.get("sample"))
    if corpus:
        clean["corpus"] = corpus
        clean["thresholds"] = ms.thresholds_for(corpus)
    curve = safe_curve_svg(root / curve_file(ms.number))
    if curve is not None:
        clean["_curve_svg"] = curve
    return clean


def milestone_hard_limit(ms: Milestone, opts: GradeOptions) -> float:
    return ms.budget_seconds * opts.milestone_timeout_factor + opts.milestone_grace


def grade_milestones(root: Path, course: Course, modules: dict[str, ModuleGrade], prev: dict,
                     opts: GradeOptions, workdir: Path, out: Console, run_url: str | None,
                     commit: str | None, deadline: float | None = None) -> dict[str, dict]:
    results = {}
    checksums = known_data_checksums(root)
    runner_present = (root / "grading" / "milestones.py").is_file()
    for ms in course.milestones:
        base = {"number": ms.number, "name": ms.name, "badge": ms.badge, "thresholds": ms.thresholds,
                "budget_seconds": ms.budget_seconds}
        missing = [r for r in ms.requires if not (r in modules and modules[r].ok)]
        if missing:
            results[str(ms.number)] = {**base, "status": "locked",
                                       "reason": "needs all tests passing in: " + ", ".join(missing)}
            continue
        key = milestone_cache_key(root, ms, checksums)
        previous = _previous_milestone(prev, ms, root)
        if previous is not None and previous["cache_key"] == key:
            out.line(f"  milestone {ms.number} ({ms.name}): nothing it depends on changed; "
                     f"reusing the result ({previous['status']})")
            results[str(ms.number)] = {**base, **previous}
            continue
        if opts.skip_milestones:
            results[str(ms.number)] = {**base, "status": "not_run", "cache_key": None,
                                       "reason": "unlocked; not run (--skip-milestones)"}
            continue
        if not runner_present:
            results[str(ms.number)] = {**base, "status": "error", "cache_key": None,
                                       "reason": "the milestone runner grading/milestones.py is missing"}
            continue
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and milestone_hard_limit(ms, opts) > left:
            results[str(ms.number)] = {**base, "status": "not_run", "cache_key": None,
                                       "reason": f"not enough time left in this run ({max(left, 0):.0f} s); "
                                                 "it runs on a later push, once other results are reused"}
            continue
        entry = run_milestone(root, ms, workdir / f"m{ms.number}", opts, out, run_url, commit)
        if entry["status"] in ("passed", "failed") and not entry.pop("no_cache", False):
            entry["cache_key"] = milestone_cache_key(root, ms, checksums)
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
    sha = _git(root, "rev-parse", "HEAD")
    if not sha:
        return {"sha": None, "time": None, "dirty": None}
    when = _git(root, "show", "-s", "--format=%cI", "HEAD")
    status = _git(root, "status", "--porcelain", "--", ".", ":(exclude)badges", ":(exclude)README.md")
    return {"sha": sha, "time": when, "dirty": bool(status) if status is not None else None}


def actions_run_url() -> str | None:
    server, repo, run_id = (os.environ.get(k) for k in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID"))
    if server and repo and run_id and server.startswith("https://"):
        return f"{server}/{repo}/actions/runs/{run_id}"
    return None


def build_progress(course: Course, modules: dict[str, ModuleGrade], milestones: dict[str, dict],
                   tamper: dict, commit: dict, run_url: str | None, mode: str) -> dict:
    mods = {}
    for m in course.modules:
        g = modules[m.id]
        mods[m.id] = {"title": m.title, "passed": g.passed, "failed": g.total - g.passed, "total": g.total,
                      "skipped": g.skipped,
                      "points": g.points, "max_points": m.points, "ok": g.ok, "reason": g.reason,
                      "failing": g.failing[:MAX_FAILING_LISTED]}
    points = round(sum(e["points"] for e in mods.values()), 2)
    return {
        "schema": PROGRESS_SCHEMA, "version": PROGRESS_VERSION, "course": course.name,
        "grader_version": grading.__version__,
        "commit": commit,
        "run": {"url": run_url, "github_actions": in_github_actions()},
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


def ungraded_progress(course: Course) -> dict:
    """The progress of a fresh repository: nothing graded, every milestone locked."""
    modules = {m.id: ModuleGrade(m) for m in course.modules}
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
        secs = f"{e['seconds']:.0f} s" if _finite_number(e.get("seconds")) else ""
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
        if e.get("reason") and e["status"] != "passed":
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
    root = Path(root or REPO_ROOT)
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
    progress_path = root / "badges" / "progress.json"
    prev = read_json(progress_path, {})
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
        out.line(out.style(f"Grading {course.name} at {root}", "bold")
                 + (f" (commit {commit['sha'][:7]})" if commit["sha"] else ""))
        out.line(f"Module tests: {len(course.modules)} modules in one pytest process "
                 f"(limits: {opts.test_timeout:g} s per test, {opts.run_timeout:g} s in all)")
        limits = Limits(opts.test_timeout, opts.run_timeout, opts.memory_mb)
        modules, mode = run_module_tests(root, course, limits, workdir / "tests", out, opts.verbose)
        out.line(f"Module tests done in {time.monotonic() - started:.1f} s.")
        _record_module_state(modules)
        out.line("Milestones" + (" (--skip-milestones: only reusing earlier results)" if opts.skip_milestones else ""))
        deadline = started + opts.time_budget if opts.time_budget else None
        milestones = grade_milestones(root, course, modules, prev, opts, workdir / "milestones", out, run_url,
                                      commit["sha"], deadline)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    tamper = check_tamper(root)
    curves = {int(k): v.pop("_curve_svg") for k, v in milestones.items() if "_curve_svg" in v}
    reused = {k for k, v in milestones.items() if v.get("_reused")}
    progress = build_progress(course, modules, milestones, tamper, commit, run_url, mode)
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


def _record_module_state(modules: dict[str, ModuleGrade]) -> None:
    try:
        from grading import state
        now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        state.save_module_results({mid: {"passed": g.passed, "failed": g.total - g.passed, "total": g.total,
                                         "ok": g.ok, "points": g.points, "time": now}
                                   for mid, g in modules.items()})
    except OSError:
        pass


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
    sums = known_data_checksums(root)
    return hashlib.sha256(json.dumps(sums, sort_keys=True).encode()).hexdigest()


def _cmd_grade(args) -> int:
    if args.data_key:
        print(data_key(REPO_ROOT))
        return 0
    opts = GradeOptions(skip_milestones=args.skip_milestones, test_timeout=args.test_timeout,
                        run_timeout=args.run_timeout, memory_mb=args.memory_mb,
                        milestone_memory_mb=args.milestone_memory_mb,
                        milestone_timeout_factor=args.milestone_timeout_factor, time_budget=args.time_budget,
                        milestone_grace=args.milestone_grace,
                        write_readme=not args.no_readme, verbose=args.verbose, reset=args.reset)
    return grade(opts, out=getattr(args, "console", None))
