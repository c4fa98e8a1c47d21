"""pytest plugin that the grader loads into the test process: per-test time limits and a progress log.

The grader runs the student's tests in a child process (`python -m pytest -p grading.pytest_limits ...`)
and configures this plugin through environment variables:

TITO_TEST_TIMEOUT   seconds one test (setup + call + teardown) or the import of one test file may take
TITO_PROGRESS_FILE  a file (owned by the grader) to which one JSON line per event is appended:
                    {"event": "collected", "nodeids": [...]}, {"event": "collect_error", "nodeid", "message"},
                    {"event": "collecting"/"collect_done", "nodeid"} around the import of each test file,
                    {"event": "start", "nodeid"}, {"event": "report", "nodeid", "when", "outcome", "message"}
TITO_FAULT_FILE     where a hard time-out or a fatal signal writes the Python traceback

Why a progress log when pytest-json-report exists: the JSON report is written at the end of the session,
so a test process that dies (os._exit, segfault, the watchdog's kill) leaves none. The log says which
tests had finished and which one was running, so the grader can give partial credit and name the culprit.

Two time limits per test:
- soft: SIGALRM raises `TestTimeLimit` inside the test (POSIX), so the test fails with a clear message and
  the session goes on. It re-fires every second in case the student's code swallows it.
- hard: `faulthandler.dump_traceback_later(..., exit=True)` ends the process when the soft limit could not
  interrupt the code (a long NumPy call, a C loop, a caught-and-ignored exception). The grader sees the
  crash and the progress log names the test.
"""
from __future__ import annotations

import faulthandler
import json
import os
import signal

import pytest

HARD_GRACE_SECONDS = float(os.environ.get("TITO_HARD_GRACE", "10"))
MESSAGE_LIMIT = 2000


class TestTimeLimit(BaseException):
    """Raised in a test that runs past the per-test time limit.

    A BaseException (like KeyboardInterrupt) so that `except Exception:` in student code does not
    swallow it; pytest still reports it as the test's failure.
    """

    __test__ = False  # not a test class, even though its name starts with "Test"


def _limit() -> float:
    try:
        return max(0.0, float(os.environ.get("TITO_TEST_TIMEOUT", "0") or 0))
    except ValueError:
        return 0.0


_progress_file = None
_fault_file = None


def _log(event: dict) -> None:
    if _progress_file is None:
        return
    try:
        _progress_file.write(json.dumps(event) + "\n")
        _progress_file.flush()
    except (OSError, ValueError, TypeError):
        pass


def _short(text: str) -> str:
    text = str(text)
    return text if len(text) <= MESSAGE_LIMIT else text[:MESSAGE_LIMIT] + " ... (truncated)"


# --- timers ----------------------------------------------------------------------------------------

def _on_alarm(signum, frame):
    raise TestTimeLimit(f"took longer than the per-test time limit of {_limit():g} s "
                        "(an infinite loop, or a Python loop over elements that should be vectorized?)")


def _arm(seconds: float) -> None:
    if seconds <= 0:
        return
    if hasattr(signal, "setitimer"):
        signal.signal(signal.SIGALRM, _on_alarm)
        signal.setitimer(signal.ITIMER_REAL, seconds, 1.0)
    faulthandler.dump_traceback_later(seconds + HARD_GRACE_SECONDS, exit=True,
                                      file=_fault_file or 2)


def _disarm() -> None:
    if hasattr(signal, "setitimer"):
        signal.setitimer(signal.ITIMER_REAL, 0)
    faulthandler.cancel_dump_traceback_later()


# --- hooks -----------------------------------------------------------------------------------------

def pytest_configure(config):
    global _progress_file, _fault_file
    path = os.environ.get("TITO_PROGRESS_FILE")
    if path and _progress_file is None:
        _progress_file = open(path, "a", encoding="utf-8")
    fault = os.environ.get("TITO_FAULT_FILE")
    if fault and _fault_file is None:
        _fault_file = open(fault, "w", encoding="utf-8")
        faulthandler.enable(file=_fault_file)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    # Importing a test file imports the student's code: limit that too (an infinite loop at import).
    timed = isinstance(collector, pytest.Module)
    if timed:
        _log({"event": "collecting", "nodeid": collector.nodeid})
        _arm(_limit())
    try:
        outcome = yield
    finally:
        if timed:
            _disarm()
    report = outcome.get_result()  # re-raises what pytest did not handle (e.g. SystemExit at import)
    if report.failed:
        _log({"event": "collect_error", "nodeid": report.nodeid, "message": _short(report.longreprtext)})
    if timed:
        _log({"event": "collect_done", "nodeid": collector.nodeid})


def pytest_collection_finish(session):
    _log({"event": "collected", "nodeids": [item.nodeid for item in session.items]})


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    _arm(_limit())
    try:
        yield
    finally:
        _disarm()


def pytest_runtest_logstart(nodeid, location):
    _log({"event": "start", "nodeid": nodeid})


def _student_where(longrepr) -> str:
    """'tinytorch/layers.py:88': the deepest traceback line in the student's files, or ''.

    A failure message should point at the student's code, not at the assert in the test file.
    """
    entries = getattr(getattr(longrepr, "reprtraceback", None), "reprentries", None) or []
    where = ""
    for entry in entries:
        loc = getattr(entry, "reprfileloc", None)
        path = str(getattr(loc, "path", "")).replace("\\", "/")
        if "tinytorch/" in path:
            where = f"tinytorch/{path.rsplit('tinytorch/', 1)[1]}:{loc.lineno}"
    return where


def pytest_runtest_logreport(report):
    message, skip_path, where = "", "", ""
    if report.failed:
        crash = getattr(report.longrepr, "reprcrash", None)
        message = crash.message if crash is not None else report.longreprtext
        where = _student_where(report.longrepr)
    elif report.skipped and isinstance(report.longrepr, tuple) and len(report.longrepr) == 3:
        skip_path, message = str(report.longrepr[0]), str(report.longrepr[2])
    _log({"event": "report", "nodeid": report.nodeid, "when": report.when, "outcome": report.outcome,
          "message": _short(message), "skip_path": skip_path, "where": where,
          "given": "given" in report.keywords})
