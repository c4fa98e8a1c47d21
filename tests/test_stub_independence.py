"""Stub independence: modules are graded one by one, so module N's tests may only rely on modules <= N.

Proven on real `tito release` output, in a subprocess whose `tinytorch` is the release's (checked):
- in the full release (every solution replaced by a stub) every module's tests fail;
- with the solutions of modules 1..N put back (`--solutions-through N`), module N's own tests pass, for
  every N (only that module's tests run: fast);
- for several N, running all module tests shows exactly modules 1..N passing.

Modules whose source or tests do not exist yet are reported as skipped, never silently passed.
A release with --solutions-through N differs from the full release only in the module sources <= N
(checked below), so the runs reuse one release folder and swap module files instead of re-releasing.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from grading.course import load_course
from grading.instructor.release import build_release, list_source_files

REPO = Path(__file__).resolve().parent.parent
COURSE = load_course(REPO / "assignments" / "course.yaml")
ALL_MODULE_RUNS = (4, 9, 16)


def _has_tests(root: Path, module) -> bool:
    return any((root / module.folder).rglob("test_*.py"))


@pytest.fixture(scope="module")
def releases(tmp_path_factory):
    """(stubbed release, fully solved release, work folder, course snapshot) built from a snapshot of the repo."""
    base = tmp_path_factory.mktemp("stubs")
    snap = base / "snapshot"
    for rel in list_source_files(REPO):
        (snap / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO / rel, snap / rel)
    build_release(base / "stubbed", snap)
    build_release(base / "solved", snap, solutions_through=max(m.number for m in COURSE.modules))
    shutil.copytree(base / "stubbed", base / "work")
    return base / "stubbed", base / "solved", base / "work", snap


def configure(work: Path, stubbed: Path, solved: Path, through: int) -> None:
    """Make `work` equal to `tito release --solutions-through <through>`."""
    for m in COURSE.modules:
        src = (solved if m.number <= through else stubbed) / m.source
        if src.exists():
            shutil.copyfile(src, work / m.source)


# A pytest plugin (loaded from outside the release) that stops running a module's tests once one has
# failed: a stubbed module fails on its first test instead of spending minutes in Hypothesis shrinking
# NotImplementedError examples. A module's status only needs "all passed" or "something failed".
FAIL_FAST_PLUGIN = """
import pytest
_failed = set()

def _folder(nodeid):
    parts = nodeid.split("/")
    return "/".join(parts[:2]) if len(parts) > 2 and parts[0] == "assignments" else None

def pytest_runtest_setup(item):
    if _folder(item.nodeid) in _failed:
        pytest.skip("module already failed (stub independence run)")

def pytest_runtest_logreport(report):
    if report.failed:
        _failed.add(_folder(report.nodeid))
"""


def run_modules(work: Path, modules, tmp: Path) -> dict:
    """{module id: (status, failing test ids)} from one pytest process over the modules' folders.

    status is "passed" (every test passed or was skipped, at least one passed), "failed", or "no tests".
    """
    report = tmp / "report.json"
    report.unlink(missing_ok=True)
    (tmp / "plugin").mkdir(exist_ok=True)
    (tmp / "plugin" / "stub_fail_fast.py").write_text(FAIL_FAST_PLUGIN)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", "PYTHONSTARTUP")}
    env["PYTHONPATH"] = os.pathsep.join([str(work), str(tmp / "plugin")])  # the release's tinytorch first
    folders = [m.folder for m in modules if (work / m.folder).is_dir()]
    res = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "stub_fail_fast", "-q",
                          "--no-header", "--tb=line", "--json-report", f"--json-report-file={report}",
                          "--json-report-omit", "streams", "log", "keywords", "warnings", "traceback", *folders],
                         cwd=work, env=env, capture_output=True, text=True, timeout=1800)
    if not report.exists():
        pytest.fail(f"pytest did not produce a report (exit {res.returncode}):\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    data = json.loads(report.read_text())
    outcomes: dict[str, list] = {m.id: [] for m in modules}
    for t in data.get("tests", []):
        m = COURSE.module_for_path(t["nodeid"])
        if m is not None and m.id in outcomes:
            outcomes[m.id].append((t["outcome"], t["nodeid"]))
    for c in data.get("collectors", []):
        m = COURSE.module_for_path(c.get("nodeid", ""))
        if c.get("outcome") == "failed" and m is not None and m.id in outcomes:
            outcomes[m.id].append(("error", c["nodeid"] + " (collection error)"))
    out = {}
    for mid, got in outcomes.items():
        failing = [nodeid for outcome, nodeid in got if outcome in ("failed", "error")]
        if not got:
            out[mid] = ("no tests", [])
        elif failing or not any(outcome == "passed" for outcome, _ in got):
            out[mid] = ("failed", failing)
        else:
            out[mid] = ("passed", [])
    return out


def test_release_imports_its_own_tinytorch(releases):
    stubbed, _, _, _ = releases
    env = {**os.environ, "PYTHONPATH": str(stubbed)}
    res = subprocess.run([sys.executable, "-c", "import tinytorch, grading; print(tinytorch.__file__); "
                          "print(grading.__file__)"], cwd=stubbed, env=env, capture_output=True, text=True)
    assert res.returncode == 0, f"the stubbed release does not import:\n{res.stderr[-2000:]}"
    tinytorch_file, grading_file = res.stdout.split()
    assert Path(tinytorch_file).resolve().is_relative_to(stubbed.resolve())
    assert Path(grading_file).resolve().is_relative_to(stubbed.resolve())


def test_solutions_through_differs_only_in_module_sources(releases, tmp_path):
    stubbed, solved, _, snap = releases
    build_release(tmp_path / "r4", snap, solutions_through=4)
    differing = []
    for p in sorted((tmp_path / "r4").rglob("*")):
        if p.is_file():
            rel = p.relative_to(tmp_path / "r4").as_posix()
            if p.read_bytes() != (stubbed / rel).read_bytes():
                differing.append(rel)
    expected = sorted(m.source for m in COURSE.modules if m.number <= 4 and (snap / m.source).exists())
    assert differing == expected
    for rel in expected:
        assert (tmp_path / "r4" / rel).read_bytes() == (solved / rel).read_bytes()


def test_every_module_fails_in_the_stubbed_release(releases, tmp_path):
    stubbed, _, _, _ = releases
    got = run_modules(stubbed, COURSE.modules, tmp_path)
    passing = [mid for mid, (status, _) in got.items() if status == "passed"]
    assert passing == [], f"modules whose tests pass with every solution stubbed (they test nothing?): {passing}"
    missing = [mid for mid, (status, _) in got.items() if status == "no tests"]
    if missing:
        pytest.skip(f"every module with tests fails; no tests yet for: {', '.join(missing)}")


@pytest.fixture(scope="module")
def runs(releases, tmp_path_factory):
    """Results per configuration, computed once: `through` -> run_modules(...) of that configuration.

    For N in ALL_MODULE_RUNS the run covers every module, which also answers the per-module question
    for module N (same configuration), so module N's tests are not run a second time.
    """
    stubbed, solved, work, _ = releases
    cache: dict[int, dict] = {}

    def get(through: int) -> dict:
        if through not in cache:
            configure(work, stubbed, solved, through)
            modules = COURSE.modules if through in ALL_MODULE_RUNS else [COURSE.module(through)]
            cache[through] = run_modules(work, modules, tmp_path_factory.mktemp(f"through{through}"))
        return cache[through]

    return get


def _failing(failing: list) -> str:
    return "; ".join(failing[:5]) + (f" (+{len(failing) - 5} more)" if len(failing) > 5 else "")


@pytest.mark.slow
@pytest.mark.parametrize("module", COURSE.modules, ids=lambda m: m.id)
def test_module_passes_with_solutions_through_itself(releases, runs, module):
    _, _, _, snap = releases
    if not (snap / module.source).exists() or not _has_tests(snap, module):
        pytest.skip(f"{module.id}: {module.source} or its tests in {module.folder}/ do not exist yet")
    status, failing = runs(module.number)[module.id]
    assert status == "passed", (
        f"{module.id}'s tests fail when the modules after {module.number:02d} are stubs: {_failing(failing)}. "
        f"Either they call code of a later module (e.g. .backward() before 09), or they fail anyway; run "
        f"`tito release --out /tmp/r --solutions-through {module.number}` and `pytest {module.folder}` in /tmp/r.")


@pytest.mark.slow
@pytest.mark.parametrize("through", ALL_MODULE_RUNS)
def test_all_module_tests_pass_exactly_through_n(runs, through):
    got = runs(through)
    expected = [m.id for m in COURSE.modules if m.number <= through and got[m.id][0] != "no tests"]
    passing = [mid for mid, (status, _) in got.items() if status == "passed"]
    not_yet = [mid for mid, (status, _) in got.items() if status == "no tests"]
    wrong = {mid: _failing(got[mid][1]) for mid in expected if mid not in passing}
    assert passing == expected, (
        f"with solutions through {through:02d}: expected exactly {expected} to pass, got {passing} "
        f"(no tests yet: {not_yet}); failing: {wrong}")
