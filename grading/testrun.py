"""Run student tests in a child process that cannot take the grader down with it.

    result = run_pytest(root, ["assignments/04_layers"], Limits(), workdir)
    result.tests["assignments/04_layers/test_04_layers.py::test_linear_shape"].outcome   # "passed"

The child is `python -m pytest` with:
- pytest-json-report writing into `workdir` (a temporary directory the grader owns, never a path
  from the student's repository), plus the progress log of `grading.pytest_limits`;
- a pytest configuration written by the grader (`-c`), so pytest settings in the student's
  pyproject.toml/pytest.ini/setup.cfg do not change collection; `--noconftest`, no plugin autoloading
  and no PYTEST_ADDOPTS;
- limits: per-test time (pytest_limits), whole-run time (a watchdog kills the process group), address
  space and file size (setrlimit in the child on POSIX);
- its output in a file under `workdir`, so a test that floods stdout fills a capped file, not memory.

Whatever the child does, `run_pytest` returns a `RunResult`; a child that crashed is described by
`crashed`/`crash_reason`/`crash_nodeid`, with the results of every test that finished before it.
"""
from __future__ import annotations

import ast
import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

PASSED_OUTCOMES = ("passed", "xfailed", "xpassed")
MAX_REPORT_BYTES = 64 * 1024 * 1024


@dataclass
class Limits:
    test_seconds: float = 60.0      # one test, or the import of one test file
    run_seconds: float = 900.0      # the whole pytest process
    memory_mb: int = 4096           # address space of the child (POSIX)
    output_mb: int = 512            # largest file the child may write (POSIX); also caps its log


@dataclass
class TestResult:
    nodeid: str
    outcome: str        # passed / failed / skipped / error / xfailed / xpassed / crashed / not run
    message: str = ""
    skip_path: str = ""  # for skips: the file that called pytest.skip (a test file, or student code?)
    where: str = ""      # for failures: deepest line of the student's tinytorch/ files in the traceback
    given: bool = False  # marked @pytest.mark.given: checks code the course gives, carries no points

    __test__ = False     # not a test class for pytest, despite its name

    @property
    def ok(self) -> bool:
        return self.outcome in PASSED_OUTCOMES


@dataclass
class RunResult:
    tests: dict[str, TestResult] = field(default_factory=dict)
    collect_errors: dict[str, str] = field(default_factory=dict)   # test file -> message
    collected: list[str] | None = None
    crashed: bool = False
    crash_reason: str = ""
    crash_nodeid: str | None = None     # test that was running when the process died
    crash_collecting: str | None = None  # test file being imported when the process died
    returncode: int | None = None
    seconds: float = 0.0
    output_tail: str = ""


_SIGNALS = {
    "SIGSEGV": "a segmentation fault (crash in native code, e.g. via ctypes)",
    "SIGABRT": "an abort (a fatal error in native code)",
    "SIGBUS": "a bus error (crash in native code)",
    "SIGFPE": "a floating-point exception in native code",
    "SIGILL": "an illegal instruction in native code",
    "SIGKILL": "being killed (time or memory limit)",
    "SIGXFSZ": "writing more output than allowed (flooding stdout or a file?)",
    "SIGXCPU": "using more CPU time than allowed",
}


def describe_exit(returncode: int | None) -> str:
    if returncode is None:
        return "did not finish"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"died of {_SIGNALS.get(name, name)}"
    return f"exited with status {returncode}"


def limits_preexec(limits: Limits):
    """Limits applied in the child between fork and exec (POSIX only)."""
    def apply():
        import resource
        os.setsid()  # own process group: the watchdog kills everything the tests started
        for which, value in ((resource.RLIMIT_AS, limits.memory_mb * 1024 * 1024),
                             (resource.RLIMIT_FSIZE, limits.output_mb * 1024 * 1024)):
            if value > 0:
                try:
                    soft, hard = resource.getrlimit(which)
                    if hard != resource.RLIM_INFINITY:
                        value = min(value, hard)
                    resource.setrlimit(which, (value, hard))
                except (ValueError, OSError):
                    pass
        try:  # no core dumps of crashed student code
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        except (ValueError, OSError):
            pass
        try:  # Linux: the child is killed when the grader dies (Ctrl-C, kill), instead of training on alone
            import ctypes
            ctypes.CDLL(None).prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    return apply


def child_env(root: Path, extra: dict | None = None) -> dict:
    """Environment of a child that runs student code: no pytest options or plugins injected from outside."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "TITO_STATE_DIR") and not k.startswith("COV_CORE")}
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    env.update(extra or {})
    return env


def python_in(root: Path, code: str, *args: str) -> list[str]:
    """A command running `code` with `root` first on sys.path, in isolated mode.

    `-I` ignores PYTHON* variables, the user site and the current directory, so a `sitecustomize.py` or
    `usercustomize.py` in the student's repository is never imported at start-up; `root` is put on
    sys.path only afterwards, for `import tinytorch` and `import grading`. `-X utf8` makes the child's
    output UTF-8 whatever the locale, which is how the grader decodes it. `-B` writes no __pycache__: a
    cached .pyc is validated by mtime and size only, so a source edited within the same second to the
    same size would be graded as its old version (and the tree may be read-only in a sandbox).
    """
    boot = f"import sys; sys.path.insert(0, sys.argv[1]); {code}"
    return [sys.executable, "-I", "-B", "-X", "utf8", "-X", "faulthandler", "-c", boot, str(root), *args]


class Watched:
    """A child process whose output goes to a file, with a wall-clock limit on the whole process group.

    `echo` (optional) gets each line of output as it is produced, for live progress; the grader caps
    how much it prints. With `channel=True` the child's stdin and stdout are pipes for frames
    (grading/channel.py) and only its stderr goes to the log: `start()` returns the process, the
    caller talks to it, then `finish()` waits for it. The watchdog kills the process group when the
    time is up, which also ends any read the caller is blocked in.
    """

    def __init__(self, cmd: list[str], cwd: Path, env: dict, limits: Limits, log_path: Path,
                 timeout: float, echo=None, channel: bool = False):
        self.cmd, self.cwd, self.env, self.limits = cmd, cwd, env, limits
        self.log_path, self.timeout, self.echo = log_path, timeout, echo
        self.channel = channel
        self.timed_out = False
        self.proc = None
        self._log = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def run(self) -> int | None:
        if self.start() is None:
            return None
        return self.finish()

    def start(self):
        """Start the child (None if it could not start; the reason is in the log)."""
        kwargs = {}
        if os.name == "posix":
            kwargs["preexec_fn"] = limits_preexec(self.limits)
        else:
            kwargs["creationflags"] = getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)
        self._log = open(self.log_path, "wb")
        pipes = dict(stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log) if self.channel else \
            dict(stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT)
        try:
            self.proc = subprocess.Popen(self.cmd, cwd=self.cwd, env=self.env, **pipes, **kwargs)
        except OSError as exc:
            self._log.write(f"could not start {self.cmd[0]}: {exc}\n".encode())
            self._log.close()
            return None
        self._threads.append(threading.Thread(target=self._watchdog, daemon=True))
        if self.echo is not None:
            self._threads.append(threading.Thread(target=self._tail, args=(self._stop,), daemon=True))
        for thread in self._threads:
            thread.start()
        return self.proc

    def finish(self) -> int | None:
        """Wait for the child (the watchdog still applies), kill what it left running, return its status."""
        proc = self.proc
        if self.channel:
            for stream in (proc.stdin, proc.stdout):
                try:
                    stream.close()
                except OSError:
                    pass
        rc = proc.wait()
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        if os.name == "posix":
            self._kill_group(proc.pid)  # whatever the child left running
        self._log.close()
        return rc

    def kill(self) -> None:
        """Stop the child (and its process group) now."""
        if self.proc is not None:
            self._kill(self.proc)

    def _watchdog(self) -> None:
        try:
            self.proc.wait(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self.timed_out = True
            self._kill(self.proc)

    @staticmethod
    def _kill_group(pid: int) -> None:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError, OSError):
            pass

    def _kill(self, proc) -> None:
        if os.name == "posix":
            self._kill_group(proc.pid)
        else:
            proc.kill()

    def _tail(self, stop: threading.Event) -> None:
        """Follow the log file and hand complete lines to `echo` until the process ends."""
        pos, pending = 0, b""
        while True:
            finished = stop.is_set()
            try:
                with open(self.log_path, "rb") as fh:
                    fh.seek(pos)
                    chunk = fh.read(1 << 20)
                    pos += len(chunk)
            except OSError:
                chunk = b""
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for raw in lines:
                self.echo(raw.decode("utf-8", errors="replace").rstrip("\r"))
            if finished and not chunk:
                if pending:
                    self.echo(pending.decode("utf-8", errors="replace"))
                return
            if not chunk:
                stop.wait(0.2)


def read_tail(path: Path, max_bytes: int = 4000) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            return fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


PYTEST_INI = """\
# Written by the TinyTorch grader: the student's own pytest settings do not apply to grading.
[pytest]
addopts = --import-mode=importlib
markers =
    slow: end-to-end tests that take more than a few seconds
    given: checks code the course gives you (not your work); runs, but carries no points
"""


def pytest_command(workdir: Path, root: Path, paths: list[str], deselect=(), verbose: bool = False) -> list[str]:
    ini = workdir / "pytest.ini"
    ini.write_text(PYTEST_INI, encoding="utf-8")
    cmd = python_in(root, "import pytest; sys.exit(int(pytest.main(sys.argv[2:])))",
                    "-c", str(ini), "--rootdir", str(root),
                    "-p", "no:cacheprovider", "-p", "pytest_jsonreport", "-p", "grading.pytest_limits",
                    "--noconftest", "--continue-on-collection-errors",
                    "--json-report", f"--json-report-file={workdir / 'report.json'}", "--json-report-verbosity=-1",
                    "--json-report-omit", "streams", "log", "traceback", "warnings",
                    "--no-header")
    cmd += ["-rfE", "--tb=short"] if verbose else ["-rN", "--tb=no", "-q"]
    if importlib.util.find_spec("_hypothesis_pytestplugin") is not None:
        cmd += ["-p", "_hypothesis_pytestplugin"]
    for nodeid in deselect:
        cmd += ["--deselect", nodeid]
    return cmd + ["--", *paths]


def run_pytest(root: Path, paths: list[str], limits: Limits, workdir: Path, deselect=(),
               echo=None, verbose: bool = False, isolation=None) -> RunResult:
    """Run pytest on `paths` (relative to `root`) in a limited child; never raises for the child's sake.

    `isolation` (grading/isolation.py) wraps the child: the instructor's regrade passes its sandbox, which
    shows the child `root` read-only and `workdir` (the report, logs, pytest.ini) read-write."""
    workdir.mkdir(parents=True, exist_ok=True)
    for name in ("report.json", "progress.jsonl", "fault.txt", "output.txt"):
        try:
            (workdir / name).unlink()
        except FileNotFoundError:
            pass
    ours = {
        "TITO_TEST_TIMEOUT": f"{limits.test_seconds:g}",
        "TITO_PROGRESS_FILE": str(workdir / "progress.jsonl"),
        "TITO_FAULT_FILE": str(workdir / "fault.txt"),
    }
    cmd = pytest_command(workdir, root, paths, deselect, verbose)
    if isolation is None:
        env = child_env(root, ours)
    else:  # a sandbox gets our variables only: nothing of the grader's environment (tokens) goes in
        ours.update(PYTEST_DISABLE_PLUGIN_AUTOLOAD="1", HYPOTHESIS_STORAGE_DIRECTORY=str(workdir / "hypothesis"))
        cmd, env = isolation.wrap(cmd, cwd=root, readable=[root], writable=[workdir], env=ours)
    start = time.monotonic()
    watched = Watched(cmd, root, env, limits, workdir / "output.txt", limits.run_seconds, echo)
    rc = watched.run()
    result = RunResult(returncode=rc, seconds=time.monotonic() - start,
                       output_tail=read_tail(workdir / "output.txt"))
    progress = _read_progress(workdir / "progress.jsonl", result)
    report = _read_report(workdir / "report.json")
    # pytest exit codes: 0 all passed, 1 some failed, 5 nothing collected; 2 (interrupted),
    # 3 (internal error) and 4 (usage error) mean the session did not finish normally.
    finished = rc in (0, 1, 5) and report is not None and not watched.timed_out
    if finished:
        _apply_report(report, result)
        return result
    result.crashed = True
    result.crash_nodeid = progress.get("running")
    if watched.timed_out:
        result.crash_reason = (f"the test run took longer than its limit of {limits.run_seconds:g} s "
                               "and was stopped")
    elif rc is not None and rc > 0 and report is None and _fault_says_timeout(workdir / "fault.txt"):
        result.crash_reason = (f"a test ran past the per-test limit of {limits.test_seconds:g} s and "
                               "could not be interrupted, so the test process was stopped")
    elif rc is not None and rc >= 0 and report is None:
        result.crash_reason = (f"the test process {describe_exit(rc)} before pytest finished "
                               "(sys.exit or os._exit in the code under test?)")
    elif rc in (2, 3, 4):
        result.crash_reason = f"pytest could not complete the session (exit status {rc})"
    else:
        result.crash_reason = f"the test process {describe_exit(rc)}"
    if result.crash_nodeid and result.crash_nodeid not in result.tests:
        result.tests[result.crash_nodeid] = TestResult(result.crash_nodeid, "crashed", result.crash_reason)
    if result.crash_nodeid is None and progress.get("collecting"):
        # the process died importing a test file: that file counts as one that cannot be imported
        result.crash_collecting = progress["collecting"]
        result.collect_errors.setdefault(result.crash_collecting, result.crash_reason)
    return result


def _fault_says_timeout(path: Path) -> bool:
    text = read_tail(path, 20000)
    return "Timeout" in text or "timeout" in text


def _read_progress(path: Path, result: RunResult) -> dict:
    """Fill `result` from the plugin's progress log; return {"running": test, "collecting": file}."""
    running = collecting = None
    phases: dict[str, dict] = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            lines = fh.readlines()
    except OSError:
        return {"running": None, "collecting": None}
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if not isinstance(event, dict):
            continue
        kind = event.get("event")
        nodeid = str(event.get("nodeid", ""))
        if kind == "collected" and isinstance(event.get("nodeids"), list):
            result.collected = [str(n) for n in event["nodeids"]]
        elif kind == "collect_error":
            result.collect_errors[nodeid] = str(event.get("message", ""))
        elif kind == "collecting":
            collecting = nodeid
        elif kind == "collect_done" and collecting == nodeid:
            collecting = None
        elif kind == "start":
            running = nodeid
        elif kind == "report":
            phases.setdefault(nodeid, {})[str(event.get("when"))] = (str(event.get("outcome")),
                                                                    str(event.get("message", "")),
                                                                    str(event.get("skip_path", "")),
                                                                    str(event.get("where", ""))[:200],
                                                                    event.get("given") is True)
            if event.get("when") == "teardown":
                result.tests[nodeid] = _combine(nodeid, phases[nodeid])
                if running == nodeid:
                    running = None
    return {"running": running, "collecting": collecting}


def _combine(nodeid: str, phases: dict) -> TestResult:
    setup = phases.get("setup", ("passed", "", "", "", False))
    call = phases.get("call")
    teardown = phases.get("teardown", ("passed", "", "", "", False))
    given = any(phase[4] for phase in phases.values())
    if setup[0] == "failed":
        return TestResult(nodeid, "error", setup[1], where=setup[3], given=given)
    if setup[0] == "skipped":
        return TestResult(nodeid, "skipped", setup[1], setup[2], given=given)
    if call is not None and call[0] != "passed":
        return TestResult(nodeid, call[0], call[1], call[2] if call[0] == "skipped" else "", call[3], given)
    if teardown[0] == "failed":
        return TestResult(nodeid, "error", teardown[1], where=teardown[3], given=given)
    return TestResult(nodeid, "passed", given=given)


def _read_report(path: Path):
    try:
        if path.stat().st_size > MAX_REPORT_BYTES:
            return None
        data = json.loads(path.read_text(encoding="utf-8", errors="replace"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("tests", []), list) else None


def _stage_where(stage) -> str:
    """'tinytorch/x.py:12': the deepest traceback entry of a report stage in the student's files, or ''."""
    where = ""
    for entry in stage.get("traceback") or [] if isinstance(stage, dict) else []:
        path = str(entry.get("path", "")).replace("\\", "/") if isinstance(entry, dict) else ""
        if "tinytorch/" in path:
            where = f"tinytorch/{path.rsplit('tinytorch/', 1)[1]}:{entry.get('lineno')}"[:200]
    return where


def _stage_message(stage) -> tuple[str, str]:
    """(message, skip path) of a failed or skipped stage of a pytest-json-report test entry."""
    if not isinstance(stage, dict):
        return "", ""
    crash = stage.get("crash")
    if isinstance(crash, dict) and crash.get("message"):
        return str(crash["message"]), ""
    longrepr = stage.get("longrepr")
    if isinstance(longrepr, str):
        if stage.get("outcome") == "skipped":
            # skips look like "('/abs/path/test_x.py', 12, 'Skipped: reason')"
            try:
                path, _line, reason = ast.literal_eval(longrepr)
                return str(reason), str(path)
            except (ValueError, SyntaxError, TypeError):
                return longrepr, ""
        return longrepr, ""
    return "", ""


def results_from_report(report: dict) -> RunResult:
    """A RunResult from a complete pytest-json-report (e.g. one written in the instructor's sandbox),
    ready for grading.scoring.score_modules(course, result.tests, result.collect_errors)."""
    result = RunResult()
    _apply_report(report, result)
    return result


def _apply_report(report: dict, result: RunResult) -> None:
    """Take test outcomes and collection errors from a complete pytest-json-report file (the progress
    log, read before, may know where in the student's code a test failed: kept when the report does not)."""
    logged = result.tests
    tests = {}
    for entry in report.get("tests", []):
        if not isinstance(entry, dict) or not isinstance(entry.get("nodeid"), str):
            continue
        outcome = str(entry.get("outcome", "failed"))
        message, skip_path, where = "", "", ""
        for stage in ("setup", "call", "teardown"):
            st = entry.get(stage)
            if isinstance(st, dict) and st.get("outcome") not in (None, "passed"):
                message, skip_path = _stage_message(st)
                where = _stage_where(st)
                break
        before = logged.get(entry["nodeid"])
        keywords = entry.get("keywords") if isinstance(entry.get("keywords"), list) else []
        tests[entry["nodeid"]] = TestResult(entry["nodeid"], outcome, message, skip_path,
                                            where or (before.where if before else ""),
                                            "given" in keywords or bool(before and before.given))
    result.tests = tests
    errors = {}
    for collector in report.get("collectors", []) or []:
        if isinstance(collector, dict) and collector.get("outcome") == "failed":
            errors[str(collector.get("nodeid", ""))] = str(collector.get("longrepr", ""))
    result.collect_errors = errors or result.collect_errors
    result.collected = list(tests) if result.collected is None else result.collected
