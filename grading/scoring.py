"""The one rule that turns per-test outcomes into module points.

    scores = score_modules(course, run.tests, run.collect_errors)
    scores["04_layers"].points        # 6 x passed / counted tests, rounded to 0.01

`tito grade`, `tito module test/complete` and the instructor's regrade all call `score_modules`, so a
module gets the same points whoever computes them. The rule, in full:

- A test counts when it ran (passed, failed, errored, crashed, or did not run because the process died).
- A skip asked for by the module's own test file (e.g. "set TINYTORCH_DATA to check the real data") is
  neutral: it counts neither for nor against. So is a test marked `@pytest.mark.given`: it checks code
  the course gives (an error message written for you, a progress bar), which is not the student's work. A skip raised anywhere else - say `pytest.skip()` inside
  tinytorch/ - counts as a failed test, so student code cannot skip its way out of a failure.
- A test file of the module that cannot be imported gives the module 0 points: we cannot know how many
  of its tests would have passed. Since tinytorch imports each module file lazily, that happens only
  when the module's own file (or an earlier one it uses) is broken, and the reason names that file.
- A module whose test run crashed before any of its tests finished gets 0 points with the crash as reason.
- points = module points x passed / counted, rounded to 0.01; `ok` = every counted test passed.

Input is `grading.testrun`'s RunResult content (or anything with the same fields): {nodeid: TestResult}
and {test file: collection error message}.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from grading.course import Course, Module
from grading.testrun import TestResult

MAX_FAILING_LISTED = 10
# "tinytorch/activations.py:12" or 'File "/x/tinytorch/activations.py", line 12' in a traceback
_STUDENT_FILE = re.compile(r'(tinytorch/[A-Za-z_][\w]*\.py)(?::(\d+)|"?,? line (\d+))')


@dataclass
class ModuleScore:
    module: Module
    passed: int = 0
    total: int = 0                 # tests that count (neutral ones left out)
    skipped: int = 0               # neutral tests: skips the test file asked for, tests of given code
    points: float = 0.0
    ok: bool = False
    reason: str = ""               # why not full marks, in one line ("" when full marks)
    failing: list[str] = field(default_factory=list)    # node ids of counted tests that did not pass
    errors: list[str] = field(default_factory=list)     # "test file: one-line reason" per import error
    crashed: bool = False          # a test killed its pytest process, or the process died before any test ended

    @property
    def max_points(self) -> float:
        return self.module.points

    @property
    def failed(self) -> int:
        return self.total - self.passed

    def as_dict(self) -> dict:
        """The entry of badges/progress.json (and of the regrade's result) for this module."""
        return {"title": self.module.title, "passed": self.passed, "failed": self.failed, "total": self.total,
                "skipped": self.skipped, "points": self.points, "max_points": self.max_points, "ok": self.ok,
                "reason": self.reason, "failing": self.failing[:MAX_FAILING_LISTED],
                **({"errors": self.errors} if self.errors else {}), **({"crashed": True} if self.crashed else {})}


_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt|Failed|Warning)\b")


def error_line(text: str, limit: int = 240) -> str:
    """The one line that says what went wrong: the exception line of a pytest error ("E   ValueError: ..."),
    else the first line; "AssertionError:" alone (np.testing puts its reason on the next line, then
    arrays) is joined with the line after it, so array dumps never stand in for the reason."""
    lines = [ln.rstrip() for ln in str(text).splitlines() if ln.strip()]
    e_lines = [ln[1:].strip() for ln in lines if ln.startswith("E ")]
    pool = e_lines or [ln.strip() for ln in lines]
    if not pool:
        return ""
    if e_lines:
        i = max((k for k, ln in enumerate(pool) if _EXCEPTION_LINE.match(ln)), default=len(pool) - 1)
    else:
        i = 0
    line = pool[i]
    if re.fullmatch(r"[\w.]+:", line) and i + 1 < len(pool):
        line = f"{line} {pool[i + 1]}"
    return line if len(line) <= limit else line[: limit - 3] + "..."


def short_test(nodeid: str) -> str:
    """'assignments/04_layers/test_04_layers.py::test_linear' -> 'test_04_layers.py::test_linear'."""
    return nodeid.rsplit("/", 1)[-1]


def student_location(text: str) -> str:
    """The last place in the student's tinytorch/ files that a traceback names ('tinytorch/x.py:12'), or ''."""
    found = _STUDENT_FILE.findall(str(text).replace("\\", "/"))
    if not found:
        return ""
    path, line_a, line_b = found[-1]
    return f"{path}:{line_a or line_b}"


def neutral(module: Module, test: TestResult) -> bool:
    """A test that counts neither for nor against: a test of given code, or a skip that the module's
    own test file asked for (see the module docstring)."""
    if getattr(test, "given", False):
        return True
    if test.outcome != "skipped":
        return False
    where = str(test.skip_path).replace("\\", "/")
    return where.startswith(module.folder + "/") or f"/{module.folder}/" in where


def _test_reason(test: TestResult) -> str:
    text = short_test(test.nodeid)
    where = getattr(test, "where", "") or student_location(test.message)
    if where:
        text += f" (in {where})"
    message = test.message
    if test.outcome == "skipped":
        message = (f"skipped from {Path(test.skip_path).name or 'outside its test file'}, "
                   f"which counts as a failure: {message}")
    return text + (f" - {error_line(message)}" if message else "")


def import_error_reason(path: str, message: str) -> str:
    """'tinytorch/activations.py:12 is broken, so test_03_activations.py cannot run: SyntaxError: ...'."""
    where = student_location(message)
    culprit = f"{where} is broken, so " if where else ""
    return f"{culprit}{Path(path).name} could not be imported (0 points until it does): {error_line(message)}"


def score_module(module: Module, tests: dict[str, TestResult], collect_errors: dict[str, str],
                 crash_reason: str = "") -> ModuleScore:
    """Score ONE module from its own tests and import errors (callers pass only this module's)."""
    counted = [t for t in tests.values() if not neutral(module, t)]
    score = ModuleScore(module, skipped=len(tests) - len(counted), total=len(counted))
    score.passed = sum(1 for t in counted if t.ok)
    score.failing = [t.nodeid for t in counted if not t.ok]
    score.errors = [f"{Path(p).name}: {error_line(m)}" for p, m in sorted(collect_errors.items())]
    score.crashed = bool(crash_reason) or any(t.outcome == "crashed" for t in tests.values())
    if collect_errors:
        path, message = sorted(collect_errors.items())[0]
        score.reason = import_error_reason(path, message)
        return score
    if score.total == 0:
        if tests:
            score.reason = "every test was skipped or checks given code: " + \
                error_line(next(iter(tests.values())).message)
        else:
            score.reason = crash_reason or f"no tests found in {module.folder}/"
        return score
    score.points = round(module.points * score.passed / score.total, 2)
    score.ok = score.passed == score.total
    if not score.ok:
        first = next(t for t in counted if not t.ok)
        score.reason = f"{score.failed} of {score.total} tests failed; first: {_test_reason(first)}"
    return score


def score_modules(course: Course, tests: dict[str, TestResult], collect_errors: dict[str, str],
                  crashes: dict[str, str] | None = None, modules=None) -> dict[str, ModuleScore]:
    """{module id: ModuleScore} for `modules` (default: every module of the course).

    tests: {node id: TestResult-like (outcome, ok, message, skip_path)}; collect_errors: {test file:
    message}; crashes: {module id: why its run stopped before any test finished}. Each test and import
    error goes to the module whose folder holds it; anything outside every module folder is ignored.
    """
    wanted = list(modules or course.modules)
    by_module: dict[str, dict[str, TestResult]] = {m.id: {} for m in wanted}
    errors: dict[str, dict[str, str]] = {m.id: {} for m in wanted}
    for nodeid, result in tests.items():
        m = course.module_for_path(nodeid)
        if m is not None and m.id in by_module:
            by_module[m.id][nodeid] = result
    for path, message in collect_errors.items():
        m = course.module_for_path(path)
        if m is not None and m.id in errors:
            errors[m.id][path] = message
    crashes = crashes or {}
    return {m.id: score_module(m, by_module[m.id], errors[m.id], crashes.get(m.id, "")) for m in wanted}
