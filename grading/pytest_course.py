"""What a plain `pytest` shows a student: short output, modules in course order, and where to start.

Loaded by assignments/conftest.py (only for the module tests; the grader runs pytest with its own
configuration and --noconftest, so none of this changes a grade). Two things:

- Short by default when a run covers several modules (the first `pytest` of the course covers all 16,
  most of them unfinished): one line of dots per ~80 tests, no tracebacks, no warnings summary, and a
  broken test file does not stop the others from running. `pytest --full` gives pytest's usual full
  detail; so does running one module (`pytest assignments/02_tensor`), -v, an explicit --tb or -r.
- A summary at the end, one line per module in course order, scored by the grader's own rule
  (grading.scoring, so the points match `tito grade`):

      01_setup: 0/34 tests, 0/2 points - start here: tito module start 01
      02_tensor: 0/121 tests, 0/8 points
"""
from __future__ import annotations

from pathlib import Path


from grading.course import CourseError, load_course, repo_root
from grading.scoring import score_modules
from grading.testrun import TestResult


def pytest_addoption(parser):
    parser.addoption("--full", action="store_true", default=False,
                     help="TinyTorch: pytest's full output (tracebacks of every failure) even for the whole course")


def _modules_in_run(config) -> set[str] | None:
    """Module folders the run covers ({"*"} = all of assignments/), or None if it covers anything else."""
    root = repo_root(config.rootpath)
    found: set[str] = set()
    for arg in config.args:
        path = Path(arg.split("::")[0]).resolve()
        try:
            rel = path.relative_to(root).parts
        except ValueError:
            return None
        if rel[:1] != ("assignments",):
            return None
        found.add(rel[1] if len(rel) > 1 else "*")
    return found


def _wants_short(config) -> bool:
    if config.getoption("full") or config.option.verbose > 0:
        return False
    if any(a.startswith(("--tb", "-r")) for a in config.invocation_params.args):
        return False                         # the student asked for a kind of detail: give it
    modules = _modules_in_run(config)
    return modules is not None and ("*" in modules or len(modules) > 1)


def pytest_configure(config):
    config._tinytorch_short = _wants_short(config)
    if config._tinytorch_short:
        config.option.tbstyle = "no"
        config.option.reportchars = ""
        config.option.verbose = min(config.option.verbose, -1)
        config.option.disable_warnings = True
        config.option.continue_on_collection_errors = True


def pytest_collection_modifyitems(session, config, items):
    """Module tests in course order (01, 02, ...), whatever order the paths were given in."""
    items.sort(key=lambda item: item.nodeid.split("/")[1] if item.nodeid.startswith("assignments/") else "~")


def _results(stats: dict) -> tuple[dict[str, TestResult], dict[str, str]]:
    """{nodeid: TestResult} and {test file: error} from the terminal reporter's reports."""
    tests: dict[str, TestResult] = {}
    errors: dict[str, str] = {}
    for reports in stats.values():
        for rep in reports:
            nodeid = getattr(rep, "nodeid", None)
            when = getattr(rep, "when", None)
            if not nodeid or not hasattr(rep, "outcome"):
                continue
            if when in (None, "collect"):    # a collection report: a test file that did not import
                if rep.failed:
                    errors[nodeid] = rep.longreprtext
                continue
            given = "given" in rep.keywords
            if rep.skipped and isinstance(rep.longrepr, tuple):
                tests[nodeid] = TestResult(nodeid, "skipped", str(rep.longrepr[2]), str(rep.longrepr[0]), given=given)
            elif rep.failed:
                outcome = "failed" if when == "call" else "error"
                tests[nodeid] = TestResult(nodeid, outcome, rep.longreprtext[-2000:], given=given)
            elif rep.passed and when == "call" and nodeid not in tests:
                tests[nodeid] = TestResult(nodeid, "passed", given=given)
    return tests, errors


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    try:
        course = load_course(repo_root(config.rootpath) / "assignments" / "course.yaml")
    except CourseError:
        return
    if terminalreporter.stats.get("deselected"):
        return          # -k / -m / --deselect: a part of a module says nothing about its points
    tests, errors = _results(terminalreporter.stats)
    ran = {m.id for m in course.modules if any(course.module_for_path(n) is m for n in [*tests, *errors])}
    if not ran:
        return
    scores = score_modules(course, tests, errors, modules=[m for m in course.modules if m.id in ran])
    write = terminalreporter.write_line
    write("")
    write("TinyTorch modules (points as `tito grade` counts them):")
    start_shown = False
    for mid, s in scores.items():
        line = f"{mid}: {s.passed}/{s.total} tests, {s.points:g}/{s.max_points:g} points"
        if not s.ok and not start_shown:
            verb = "start here: tito module start" if s.passed == 0 else "next: tito module test"
            line += f" - {verb} {mid[:2]}"
            if s.reason:
                line += f"\n    {s.reason}"
            start_shown = True
        write(line)
    if getattr(config, "_tinytorch_short", False):
        write("Short output for the whole course; full detail: pytest --full, or one module: "
              "pytest assignments/NN_name")
