"""Tampering with a student repository (issue 6): what the student-side grader shows, and that the
instructor's `regrade` and roster are the authority.

Every scenario is a real git repository in a temp dir made from a real `tito release` of this
repository (module solutions 01..03 kept, so the student "did" those; 04..16 are stubs), with one kind
of tampering applied and committed. For each scenario:

- student side: `check_tamper` (the manifest comparison `tito grade` writes into progress.json and the
  integrity badge), and for most scenarios a real `tito grade` run of the student's own copy of the
  grader, restricted to two modules to stay fast (03_activations = work done, 14_benchmarking = the
  stub the student tries to get credit for);
- instructor side: the sandboxed regrade (a bare clone, the student's module sources over the
  instructor's stubbed tree, tests and probes in bubblewrap, the verdict outside it), one `Regrader` for
  every scenario as in a class regrade; whatever the student tampered with outside their module sources,
  the result is the clean repository's;
- roster: `build_roster` against tests/fake_github.py, which compares protected files with the template
  by git blob hashes and checks the root commit.

grading/instructor/SECURITY.md is the table of these scenarios; keep the two in step.
"""
from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fake_github import FakeGitHub, blob_sha  # noqa: E402
from tito_fixtures import clean_env, commit_all, git, sandbox_or_skip  # noqa: E402

from grading.instructor import classroom as C  # noqa: E402
from grading.instructor import regrade as R  # noqa: E402
from grading.course import Course, load_course  # noqa: E402
from grading.grade import check_tamper  # noqa: E402
from grading.instructor.github import GitHub  # noqa: E402
from grading.instructor.release import build_release, list_source_files  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SOLVED = 3                               # the release keeps the solutions of modules 01..03
DONE, TARGET = "03_activations", "14_benchmarking"
GRADED = (DONE, TARGET)                  # the modules the fast grading runs look at
T = "assignments/14_benchmarking/test_14_benchmarking.py"
TOKEN = "ghp_securityTESTtoken00000000000000"
ORG, PREFIX, TEMPLATE = "org", "tinytorch", "course/tinytorch"


def quiet(*_a, **_k):
    pass


# ---- what students write -------------------------------------------------------------------------------
FORCE_PASS_CONFTEST = '''\
import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    report.outcome, report.longrepr = "passed", None
'''

# Makes every test report "passed" - if it ever runs inside the test process.
PYTEST_PATCH = '''
import _pytest.reports as _reports
_make = _reports.TestReport.from_item_and_call.__func__


def _always_passed(cls, item, call):
    report = _make(cls, item, call)
    report.outcome, report.longrepr = "passed", None
    return report


_reports.TestReport.from_item_and_call = classmethod(_always_passed)
'''

# Writes a complete-looking pytest-json-report where the grader will read it, then ends the process
# with status 0 before pytest can write the real one.
FAKE_REPORT_AND_EXIT = '''

def _forge():
    import glob, json, os, sys
    target = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--json-report-file=")), None)
    if target is None:
        return
    tests = []
    for path in sorted(glob.glob("assignments/*/test_*.py")):
        for line in open(path, encoding="utf-8"):
            if line.startswith("def test_"):
                tests.append({"nodeid": path + "::" + line[4:].split("(")[0], "outcome": "passed"})
    with open(target, "w") as fh:
        json.dump({"tests": tests, "collectors": []}, fh)
    os.execv("/bin/true", ["true"])


_forge()
'''

FAKE_OUTPUT = '''

def _brag():
    import json, os
    fake = {"summary": {"passed": 10, "total": 10}, "tests": [{"nodeid": "assignments/14_benchmarking/x.py::t",
                                                             "outcome": "passed"}]}
    print(json.dumps(fake))
    print("Points 100/100")
    print("14_benchmarking  10/10 tests  4/4 pts")
    for rel in ("badges/progress.json", ".tito/modules.json"):
        try:
            os.makedirs(os.path.dirname(rel), exist_ok=True)
            with open(rel, "w") as fh:
                json.dump({"totals": {"points": 100}, "14_benchmarking": {"ok": True, "passed": 10, "total": 10}}, fh)
        except OSError:
            pass


_brag()
'''


def every_test_asserts_true(text: str, root: Path) -> str:
    names = re.findall(r"^def (test_\w+)", text, re.M)
    return "".join(f"def {name}():\n    assert True\n\n\n" for name in names)


def count_failures_as_passes(text: str, root: Path) -> str:
    old = 'PASSED_OUTCOMES = ("passed", "xfailed", "xpassed")'
    assert old in text
    return text.replace(old, 'PASSED_OUTCOMES = ("passed", "xfailed", "xpassed", "failed", "error")')


def manifest_matching_the_tree(text: str, root: Path) -> str:
    manifest = json.loads(text)
    for rel in manifest["files"]:
        if (root / rel).is_file():
            manifest["files"][rel] = hashlib.sha256((root / rel).read_bytes()).hexdigest()
    return json.dumps(manifest, indent=2, sort_keys=True) + "\n"


def generous_course(text: str, root: Path) -> str:
    old = "source: tinytorch/activations.py\n    points: 5\n"
    assert old in text and "value: 0.85" in text
    return text.replace(old, "source: tinytorch/activations.py\n    points: 50\n").replace("value: 0.85", "value: 0.0")


def pytest_k(text: str, root: Path) -> str:
    old = 'addopts = "-ra --strict-markers --import-mode=importlib"'
    assert old in text
    return text.replace(old, 'addopts = "-ra --import-mode=importlib -k format_table"')


def no_grading_step(text: str, root: Path) -> str:
    assert "run: tito grade --time-budget 3000" in text
    return text.replace("run: tito grade --time-budget 3000", "run: echo 'graded: 100/100'")


def lenient_gradcheck(text: str, root: Path) -> str:
    return text + "\n\ndef gradcheck(*args, **kwargs):  # always fine\n    return True\n"


def fake_readme(text: str, root: Path) -> str:
    start, end = "<!-- tinytorch:progress:start -->", "<!-- tinytorch:progress:end -->"
    assert start in text and end in text
    return text[:text.index(start) + len(start)] + "\nAll 16 modules passed: 100/100 points, 5/5 milestones.\n" \
        + text[text.index(end):]


def fake_progress(course: Course) -> str:
    return json.dumps({
        "schema": "tinytorch-progress", "version": 1, "course": course.name,
        "modules": {m.id: {"passed": 10, "failed": 0, "total": 10, "ok": True, "points": m.points,
                           "max_points": m.points, "reason": ""} for m in course.modules},
        "milestones": {str(ms.number): {"status": "passed", "cache_key": "0" * 64, "seconds": 1.0,
                                        "metrics": {c.metric: c.value for c in ms.victory}}
                       for ms in course.milestones},
        "totals": {"points": course.total_points, "max_points": course.total_points,
                   "modules_passed": len(course.modules), "modules": len(course.modules),
                   "milestones_passed": len(course.milestones), "milestones": len(course.milestones)},
        "tamper": {"status": "clean", "changed": [], "missing": [], "unexpected": []},
    }, indent=2) + "\n"


SHIELD = '{"schemaVersion": 1, "label": "%s", "message": "%s", "color": "brightgreen"}\n'


# ---- the scenarios -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Scenario:
    edits: dict                       # path -> new text | None (delete) | fn(old text, repo root) -> new text
    changed: tuple = ()               # what check_tamper must report
    missing: tuple = ()
    unexpected: tuple = ()
    roster: tuple = ()                # substrings of the roster's integrity column ("ok" = clean)
    student: str | None = None        # student-side `tito grade` outcome for TARGET: see STUDENT_SIDE
    source: bool = False              # touches a module source (the regrade grades a different tree)
    new_root: bool = False            # history rewritten: one new root commit holding everything
    notes: tuple = field(default=())


SCENARIOS = {
    "test-assert-true": Scenario({T: every_test_asserts_true}, changed=(T,), roster=(f"modified: {T}",),
                                 student="forged"),
    "test-deleted": Scenario({T: None}, missing=(T,), roster=(f"deleted: {T}",), student="no tests"),
    "conftest": Scenario({"conftest.py": FORCE_PASS_CONFTEST, "assignments/14_benchmarking/conftest.py":
                          FORCE_PASS_CONFTEST, "tinytorch/conftest.py": FORCE_PASS_CONFTEST},
                         unexpected=("assignments/14_benchmarking/conftest.py", "conftest.py", "tinytorch/conftest.py"),
                         roster=("added: assignments/14_benchmarking/conftest.py, conftest.py, tinytorch/conftest.py",),
                         student="unaffected"),
    "pytest-config": Scenario({"pytest.ini": "[pytest]\naddopts = -k format_table\n",
                               "tox.ini": "[pytest]\naddopts = -k format_table\n",
                               "setup.cfg": "[tool:pytest]\naddopts = -k format_table\n", "pyproject.toml": pytest_k},
                              changed=("pyproject.toml",), unexpected=("pytest.ini", "setup.cfg", "tox.ini"),
                              roster=("modified: pyproject.toml", "added: pytest.ini, setup.cfg, tox.ini"),
                              student="unaffected"),
    "grading-edited": Scenario({"grading/testrun.py": count_failures_as_passes}, changed=("grading/testrun.py",),
                               roster=("modified: grading/testrun.py",), student="forged"),
    "grading-and-manifest-edited": Scenario({"grading/testrun.py": count_failures_as_passes,
                                             "grading/manifest.json": manifest_matching_the_tree},
                                            roster=("modified: grading/testrun.py",), student="forged"),
    "workflow-edited": Scenario({".github/workflows/grade.yml": no_grading_step},
                                changed=(".github/workflows/grade.yml",),
                                roster=("modified: .github/workflows/grade.yml",)),
    "course-yaml-edited": Scenario({"assignments/course.yaml": generous_course}, changed=("assignments/course.yaml",),
                                   roster=("modified: assignments/course.yaml",), student="inflated"),
    "framework-infrastructure-edited": Scenario({"tinytorch/testing.py": lenient_gradcheck},
                                                changed=("tinytorch/testing.py",),
                                                roster=("modified: tinytorch/testing.py",)),
    "badges-by-hand": Scenario({"badges/progress.json": "FAKE_PROGRESS", "README.md": fake_readme,
                                "badges/points.json": SHIELD % ("points", "100/100"),
                                "badges/modules.json": SHIELD % ("modules", "16/16"),
                                "badges/neural-network-engineer.json": SHIELD % ("Neural Network Engineer", "passed")},
                               roster=("not by the grader",), student="overwritten"),
    "fake-output-from-student-code": Scenario({"tinytorch/benchmarking.py": lambda t, r: t + FAKE_OUTPUT},
                                              roster=("ok",), student="unaffected", source=True),
    "init-monkeypatches-pytest": Scenario({"tinytorch/__init__.py": lambda t, r: t + PYTEST_PATCH},
                                          changed=("tinytorch/__init__.py",),
                                          roster=("modified: tinytorch/__init__.py",), student="forged"),
    "sitecustomize": Scenario({"sitecustomize.py": PYTEST_PATCH, "usercustomize.py": PYTEST_PATCH,
                               "tinytorch/sitecustomize.py": PYTEST_PATCH, "zz-forge.pth": "import sitecustomize\n"},
                              unexpected=("sitecustomize.py", "tinytorch/sitecustomize.py", "usercustomize.py",
                                          "zz-forge.pth"),
                              roster=("added: sitecustomize.py, tinytorch/sitecustomize.py, usercustomize.py, "
                                      "zz-forge.pth",), student="unaffected"),
    "history-rewritten": Scenario({T: every_test_asserts_true}, changed=(T,), new_root=True,
                                  roster=("is not the template's", f"modified: {T}")),
    # Beyond the list: in-process forgery from the student's OWN module source, which the regrade
    # must run. Detected (audit flags), not prevented: see SECURITY.md.
    "module-source-patches-pytest": Scenario({"tinytorch/benchmarking.py": lambda t, r: t + PYTEST_PATCH},
                                             roster=("ok",), student="forged", source=True),
    "module-source-fakes-report-and-exits": Scenario({"tinytorch/benchmarking.py":
                                                      lambda t, r: t + FAKE_REPORT_AND_EXIT},
                                                     roster=("ok",), student="forged", source=True),
}
IN_PROCESS_FORGERY = ("module-source-patches-pytest", "module-source-fakes-report-and-exits")

# Student-side outcome for TARGET (a stub: 0 of its 9 counted tests pass; its 10th checks given code and
# counts neither way) and DONE.
STUDENT_SIDE = {
    "unaffected": dict(target_ok=False, target=(0, 9), done_points=5),
    "forged": dict(target_ok=True, done_points=5),
    "no tests": dict(target_ok=False, target=(0, 0), done_points=5),
    "inflated": dict(target_ok=False, target=(0, 9), done_points=50),
    "overwritten": dict(target_ok=False, target=(0, 9), done_points=5),
}


# ---- the world: one release, one regrader, one fake GitHub ----------------------------------------------
@dataclass
class World:
    tmp: Path
    snapshot: Path
    release: Path
    regrader: "R.Regrader"
    course: Course
    fake: FakeGitHub
    gh: GitHub
    template_files: dict
    students: dict = field(default_factory=dict)
    results: dict = field(default_factory=dict)
    baseline: dict | None = None


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    sandbox = sandbox_or_skip()
    tmp = tmp_path_factory.mktemp("security")
    snapshot = tmp / "instructor"          # a copy: other people may be editing the working tree
    for rel in list_source_files(REPO):
        dest = snapshot / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes((REPO / rel).read_bytes())
        dest.chmod((REPO / rel).stat().st_mode & 0o777)
    build_release(tmp / "release", snapshot, solutions_through=SOLVED)
    course = load_course(snapshot / "assignments" / "course.yaml")
    files = {p.relative_to(tmp / "release").as_posix(): p.read_bytes()
             for p in sorted((tmp / "release").rglob("*")) if p.is_file()}
    opts = R.Options(instructor_dir=snapshot, isolation=sandbox, test_timeout=60, timeout=600, log=quiet)
    with FakeGitHub(token=TOKEN) as fake, R.Regrader(opts) as regrader:
        fake.add_repo(*TEMPLATE.split("/"), files, is_template=True)
        gh = GitHub(TOKEN, fake.url, sleep=lambda s: None, min_write_interval=0, log=quiet)
        w = World(tmp, snapshot, tmp / "release", regrader, course, fake, gh, files)
        w.baseline = regrade(w, "clean", student_repo(w, "clean"))
        yield w


def student_repo(w: World, sid: str) -> Path:
    """The release as a student pushes it after applying scenario `sid` (cached per module)."""
    if sid in w.students:
        return w.students[sid]
    scenario = SCENARIOS.get(sid, Scenario({}))
    root = w.tmp / "students" / sid
    shutil.copytree(w.release, root)
    for rel, edit in scenario.edits.items():
        path = root / rel
        if edit is None:
            path.unlink()
            continue
        if edit == "FAKE_PROGRESS":
            edit = fake_progress(w.course)
        elif callable(edit):
            edit = edit(path.read_text(encoding="utf-8"), root)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(edit, encoding="utf-8")
    git(root, "init", "-q")
    if scenario.new_root:
        # the student first commits honestly, then rewrites history: a new root commit holding everything
        shutil.move(str(root / T), str(w.tmp / f"{sid}-held"))
        (root / T).write_bytes((w.release / T).read_bytes())
        commit_all(root, "start")
        git(root, "checkout", "-q", "--orphan", "rewritten")
        shutil.move(str(w.tmp / f"{sid}-held"), str(root / T))
        commit_all(root, "a fresh start")
        git(root, "branch", "-q", "-D", "main")
        git(root, "branch", "-q", "-m", "main")
    else:
        commit_all(root, f"my work ({sid})")
    w.students[sid] = root
    return root


def regrade(w: World, sid: str, repo: Path) -> dict:
    return w.regrader.regrade(f"{ORG}/{PREFIX}-{sid}", f"file://{repo}", w.tmp / "results", github_username=sid)


def student_side_grade(repo: Path, checkout: Path) -> tuple[subprocess.CompletedProcess, dict]:
    """The student's own copy of `tito grade`, run in a fresh checkout of their repository (as CI does)
    on GRADED only. Student code only ever runs in the grader's children: the grading process itself
    never imports tinytorch, so nothing in tinytorch/ can patch the code that computes the score."""
    subprocess.run(["git", "clone", "-q", str(repo), str(checkout)], check=True, capture_output=True)
    repo = checkout
    boot = (
        "import sys\n"
        "from pathlib import Path\n"
        "root = Path(sys.argv[1]).resolve()\n"
        "sys.path.insert(0, str(root))\n"
        "import grading.grade as g\n"
        "from grading.course import Course\n"
        "assert Path(g.__file__).resolve().is_relative_to(root), g.__file__  # the student's copy\n"
        "keep, load = set(sys.argv[2].split(',')), g.load_course\n"
        "g.load_course = lambda p: (lambda c: Course(c.name, tuple(m for m in c.modules if m.id in keep),\n"
        "                                            c.milestones, c.deadlines))(load(p))\n"
        "rc = g.grade(g.GradeOptions(skip_milestones=True, run_timeout=300), root=root)\n"
        "student_code = sorted(m for m in sys.modules if m.split('.')[0] == 'tinytorch')\n"
        "assert not student_code, f'the grader process imported student code: {student_code}'\n"
        "sys.exit(rc)\n")
    env = {k: v for k, v in clean_env(repo).items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-c", boot, str(repo), ",".join(GRADED)], cwd=repo, env=env,
                            capture_output=True, text=True, encoding="utf-8", errors="replace", timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return result, json.loads((repo / "badges" / "progress.json").read_text(encoding="utf-8"))


def committed_files(repo: Path) -> dict[str, bytes]:
    """{path: bytes} of the repository's HEAD commit (what was pushed, not the working tree)."""
    archive = subprocess.run(["git", "archive", "--format=tar", "HEAD"], cwd=repo, capture_output=True, check=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def roster_row(w: World, sid: str, repo: Path) -> dict:
    """The roster row of this student: their repository on the fake GitHub, generated from the template,
    then the student's push (or a history rewrite)."""
    name = f"{PREFIX}-{sid}"
    if w.fake.repo(ORG, name) is None:
        w.fake.add_repo(ORG, name, dict(w.template_files), author="course", message="Initial commit")
        files = committed_files(repo)
        w.fake.push(ORG, name, files, author=sid, replace=True, new_root=SCENARIOS[sid].new_root,
                    message="my work")
    rows = C.build_roster(w.gh, [C.Student(sid)], ORG, PREFIX, TEMPLATE, w.course, log=quiet)
    return rows[0]


def roster_with_regrade(w: World, sid: str, result: dict) -> dict:
    """The roster row when the instructor passes the regrade results (`roster --results`)."""
    roster_row(w, sid, student_repo(w, sid))
    return C.build_roster(w.gh, [C.Student(sid)], ORG, PREFIX, TEMPLATE, w.course,
                          {result["repository"]: result}, log=quiet)[0]


# ---- student side: the manifest check ------------------------------------------------------------------
@pytest.mark.parametrize("sid", sorted(SCENARIOS))
def test_student_side_tamper_check(world, sid):
    s = SCENARIOS[sid]
    got = check_tamper(student_repo(world, sid))
    assert [sorted(got[k]) for k in ("changed", "missing", "unexpected")] == \
        [sorted(s.changed), sorted(s.missing), sorted(s.unexpected)], got
    assert got["status"] == ("modified" if s.changed or s.missing or s.unexpected else "clean")


def test_clean_release_is_clean_everywhere(world):
    repo = student_repo(world, "clean")
    assert check_tamper(repo)["status"] == "clean"
    b = world.baseline
    assert b["status"] == "graded" and b["flags"] == [], b
    assert b["modules"][DONE]["ok"] and b["modules"][DONE]["points"] == 5
    assert (b["modules"][TARGET]["passed"], b["modules"][TARGET]["total"], b["modules"][TARGET]["ok"]) == (0, 9, False)


# ---- student side: the student's own grader ------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("sid", sorted(s for s, sc in SCENARIOS.items() if sc.student))
def test_student_side_grader(world, sid, tmp_path):
    s = SCENARIOS[sid]
    want = STUDENT_SIDE[s.student]
    checkout = tmp_path / "checkout"
    result, progress = student_side_grade(student_repo(world, sid), checkout)
    mods = progress["modules"]
    assert mods[TARGET]["ok"] is want["target_ok"], mods[TARGET]
    if "target" in want:
        assert (mods[TARGET]["passed"], mods[TARGET]["total"]) == want["target"], mods[TARGET]
    assert mods[DONE]["ok"] and mods[DONE]["points"] == want["done_points"], mods[DONE]
    # what the student-side grader can see, it writes into progress.json, the integrity badge and the log
    tamper = progress["tamper"]
    flagged = sorted(tamper["changed"] + tamper["missing"] + tamper["unexpected"])
    assert flagged == sorted(s.changed + s.missing + s.unexpected)
    integrity = json.loads((checkout / "badges" / "integrity.json").read_text())
    if flagged:
        assert tamper["status"] == "modified" and integrity["message"] == f"{len(flagged)} modified"
        assert "differ from the template" in result.stdout
    else:
        assert tamper["status"] == "clean" and integrity["message"] == "unmodified"
    if s.student == "overwritten":   # hand-written results are replaced by this run's results
        assert progress["totals"]["points"] == 5 and progress["tamper"]["status"] == "clean"  # 5 + 4 x 0/9
        assert "100/100" not in (checkout / "README.md").read_text(encoding="utf-8")
        for name in ("points", "modules", "neural-network-engineer"):
            badge = json.loads((checkout / "badges" / f"{name}.json").read_text())
            assert "100/100" not in badge["message"] and badge["message"] not in ("16/16", "passed"), badge
    if sid == "fake-output-from-student-code":
        assert "Points 100/100" not in result.stdout     # the student's output never reaches the grade


def test_hand_written_milestone_result_is_reused_student_side(world, tmp_path):
    """Known gap, shown on purpose: the student-side grader reuses a milestone result from
    badges/progress.json when its fingerprint matches, and a student can compute that fingerprint. So a
    hand-written "passed" survives `tito grade` once the milestone's modules pass. The regrade never sees the
    student's progress.json (only module sources are taken) and the roster flags badges/ not written by the bot."""
    from grading import grade as G
    from grading import state
    from grading.console import Console
    from grading.scoring import score_module
    from grading.testrun import TestResult
    repo = student_repo(world, "clean")
    ms = world.course.milestones[0]
    modules = {m.id: score_module(m, {"t": TestResult("t", "passed")}, {}) for m in world.course.modules}
    claim = {"status": "passed", "cache_key": state.milestone_fingerprint(repo, ms, course=world.course),
             "seconds": 1.0, "metrics": {c.metric: c.value for c in ms.victory},
             "verified_by": "https://example.com/fake-run"}
    out = G.grade_milestones(repo, world.course, modules, {"milestones": {str(ms.number): claim}},
                             G.GradeOptions(skip_milestones=True), tmp_path, Console(io.StringIO()), None, None)
    assert out[str(ms.number)]["status"] == "passed" and out[str(ms.number)]["_reused"]
    assert not out[str(ms.number)].get("stale")
    # a stale or made-up key is never reused as current: --skip-milestones keeps it, marked stale (a full
    # grade, which CI always runs, runs the milestone again)
    claim["cache_key"] = "0" * 64
    out = G.grade_milestones(repo, world.course, modules, {"milestones": {str(ms.number): claim}},
                             G.GradeOptions(skip_milestones=True), tmp_path, Console(io.StringIO()), None, None)
    assert out[str(ms.number)]["stale"] is True and "not re-run" in out[str(ms.number)]["reason"]


# ---- instructor side: regrade --------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("sid", sorted(SCENARIOS))
def test_regrade_gives_no_credit_for_work_not_done(world, sid):
    s = SCENARIOS[sid]
    result = regrade(world, sid, student_repo(world, sid))
    assert result["status"] == "graded", result["notes"]
    assert result["verified"] is True
    assert result["commit"] == git(student_repo(world, sid), "rev-parse", "HEAD").stdout.strip()
    assert result["modules"][DONE]["ok"] and result["modules"][DONE]["points"] == 5      # real work counts
    assert not result["modules"][TARGET]["ok"], result["modules"][TARGET]                 # forged work does not
    assert result["modules"][TARGET]["points"] == 0 and result["max_points"] == 100
    # exactly the clean repository's grade, whatever was tampered with (module sources included)
    assert result["points"] == world.baseline["points"]
    assert result["modules_passed"] == world.baseline["modules_passed"]
    if not s.source:
        # nothing the student changed outside their module sources reaches the graded tree
        assert {k: (v["passed"], v["total"], v["points"]) for k, v in result["modules"].items()} == \
            {k: (v["passed"], v["total"], v["points"]) for k, v in world.baseline["modules"].items()}
    if sid == "fake-output-from-student-code":
        assert any("badges/progress.json" in f for f in result["flags"]), result["flags"]
        assert "regrade flags: " in roster_with_regrade(world, sid, result)["integrity"]
    if sid == "init-monkeypatches-pytest":
        assert any("tinytorch/__init__.py differs" in n for n in result["notes"])
    if sid == "sitecustomize":
        assert "tinytorch/sitecustomize.py" not in result["taken"]
    if sid in IN_PROCESS_FORGERY:
        # the forgery fooled the sandboxed tests (the claim), not the probes (the verdict)
        assert result["flags"] and all(f.startswith("tinytorch/benchmarking.py:") for f in result["flags"])
        assert "regrade flags" in roster_with_regrade(world, sid, result)["integrity"]


# ---- instructor side: roster integrity -----------------------------------------------------------------
@pytest.mark.parametrize("sid", sorted(SCENARIOS))
def test_roster_integrity(world, sid):
    row = roster_row(world, sid, student_repo(world, sid))
    for needle in SCENARIOS[sid].roster:
        if needle == "ok":
            assert row["integrity"] == "ok", row
        else:
            assert needle in row["integrity"], row["integrity"]
    if SCENARIOS[sid].roster != ("ok",):
        assert row["integrity"] != "ok"


def test_roster_compares_git_blob_hashes(world):
    """The hash the roster compares is git's own blob hash of the pushed file."""
    repo = student_repo(world, "test-assert-true")
    local = git(repo, "rev-parse", f"HEAD:{T}").stdout.strip()
    assert local == blob_sha((repo / T).read_bytes()) != blob_sha((world.release / T).read_bytes())


def test_roster_shows_claimed_points_next_to_the_regrade(world):
    sid = "badges-by-hand"
    row = roster_with_regrade(world, sid, {**world.baseline, "repository": f"{ORG}/{PREFIX}-{sid}"})
    assert row["points"] == "100" and row["modules_passed"] == 16       # what the student claims
    assert float(row["regrade_points"]) == world.baseline["points"] == 15   # what the regrade found: 01-03


# ---- history: branch protection ------------------------------------------------------------------------
def test_force_push_and_new_root_are_refused_by_branch_protection(world, tmp_path):
    """`tito classroom provision` protects the default branch (no force push, no deletion); a bare
    repository with receive.denyNonFastForwards/denyDeletes behaves the same way locally."""
    bare = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    git(bare, "config", "receive.denyNonFastForwards", "true")
    git(bare, "config", "receive.denyDeletes", "true")
    work = tmp_path / "work"
    shutil.copytree(world.release, work)
    git(work, "init", "-q")
    first = commit_all(work, "start")
    git(work, "remote", "add", "origin", str(bare))
    git(work, "push", "-q", "origin", "main")
    # amend the last commit and force-push it
    (work / T).write_text("def test_ok():\n    assert True\n")
    git(work, "add", "-A")
    git(work, "commit", "-q", "--amend", "-m", "start (rewritten)")
    refused = git(work, "push", "--force", "origin", "main", check=False)
    assert refused.returncode != 0 and "non-fast-forward" in refused.stderr, refused.stderr
    # a brand-new root commit
    git(work, "checkout", "-q", "--orphan", "fresh")
    commit_all(work, "fresh start")
    refused = git(work, "push", "--force", "origin", "fresh:main", check=False)
    assert refused.returncode != 0
    refused = git(work, "push", "origin", ":main", check=False)             # deleting the branch
    assert refused.returncode != 0
    assert git(bare, "rev-parse", "main").stdout.strip() == first


# ---- everything at once, with the real grader on every module -----------------------------------------
@pytest.mark.slow
def test_full_regrade_of_a_repository_with_every_tampering(world):
    """All the tamperings at once (module sources included), graded on all 16 modules with milestones on:
    only the work really done counts."""
    sid = "everything"
    edits = {}
    for name, s in SCENARIOS.items():
        if not s.new_root and name != "module-source-fakes-report-and-exits":
            edits.update(s.edits)
    SCENARIOS[sid] = Scenario(edits)
    try:
        repo = student_repo(world, sid)
    finally:
        del SCENARIOS[sid]
    opts = R.Options(instructor_dir=world.snapshot, isolation=world.regrader.opts.isolation, milestones=True,
                     test_timeout=120, timeout=1200, log=quiet)
    result = R.regrade_repo(f"{ORG}/{PREFIX}-{sid}", f"file://{repo}", world.tmp / "results", opts)
    assert result["status"] == "graded", result["notes"]
    solved = [m.id for m in world.course.modules[:SOLVED]]
    assert result["modules_passed"] == solved, {k: (v["passed"], v["total"]) for k, v in result["modules"].items()}
    assert result["milestones_passed"] == []                  # every milestone needs module 04: locked
    assert all(v["status"] == "locked" for v in result["milestones"].values()), result["milestones"]
    assert result["points"] == sum(m.points for m in world.course.modules[:SOLVED])
