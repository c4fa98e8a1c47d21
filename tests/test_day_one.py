"""The day-one student on a real `tito release`: the first `pytest`, the first grade, and what a grade is made of.

Each test builds the student template from this repository (as `tito release` does), makes it a git
repository, and runs pytest and the grader in it as a student would: the release's own grading/ and
tinytorch/, with the release as the working directory. These are the promises of the README:
- the untouched template scores exactly 0 (tests of code the course gives carry no points);
- with modules 01-04 solved, modules 05-16 score exactly 0;
- a broken later file costs nothing earlier, and the message names the student's file and line;
- the first `pytest` is short, in course order, and ends with where to start.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tito_fixtures import REPO, clean_env, git, run_tito  # noqa: E402

from grading.course import load_course  # noqa: E402
from grading.instructor.release import build_release  # noqa: E402

COURSE = load_course()
pytestmark = pytest.mark.slow


def student_repo(tmp_path: Path, solutions_through: int | None = None) -> Path:
    out = tmp_path / "student"
    build_release(out, REPO, solutions_through=solutions_through)
    subprocess.run(["git", "init", "-q", "-b", "main", str(out)], check=True)
    git(out, "add", "-A")
    git(out, "-c", "user.name=Student", "-c", "user.email=s@example.com", "commit", "-q", "-m", "start")
    return out


def grade_modules(root: Path) -> dict:
    result = run_tito(root, "grade", "--skip-milestones", "--no-readme", timeout=1200, TINYTORCH_DATA="")
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads((root / "badges" / "progress.json").read_text(encoding="utf-8"))


def first_pytest(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = clean_env(root, TINYTORCH_DATA="")
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=root, env=env,
                          capture_output=True, text=True, encoding="utf-8", errors="replace", timeout=1200)


def test_the_first_day_on_the_template(tmp_path):
    root = student_repo(tmp_path)
    # what the student sees first: short, in course order, ending with where to start
    run = first_pytest(root)
    lines = run.stdout.splitlines()
    assert run.returncode == 1 and len(lines) <= 60, f"{len(lines)} lines:\n{run.stdout[-3000:]}"
    assert "Traceback" not in run.stdout and "warnings summary" not in run.stdout
    summary = [line for line in lines if re.match(r"^\d\d_\w+: \d+/\d+ tests", line)]
    assert [line.split(":")[0] for line in summary] == [m.id for m in COURSE.modules]
    assert re.match(r"^01_setup: 0/\d+ tests, 0/2 points - start here: tito module start 01$", summary[0])
    assert all(" 0/" in line.split(",")[1] for line in summary)        # no free points anywhere
    # the full detail is one flag away
    full = first_pytest(root, "--full", "assignments/01_setup")
    assert "NotImplementedError" in full.stdout and len(full.stdout.splitlines()) > len(lines)
    # a test marked `given` must pass with no work in its module (module 01 here: no work at all;
    # test_given_tests_need_no_work_in_their_module checks every other module)
    given = first_pytest(root, "-m", "given", "-q", "assignments/01_setup")
    assert given.returncode == 0 and " passed" in given.stdout, given.stdout[-2000:]
    # the grade of the untouched template is exactly 0
    progress = grade_modules(root)
    assert progress["totals"]["points"] == 0, {k: v["points"] for k, v in progress["modules"].items()}
    # what the template holds: a student README, ignores for venvs and editors, no missing test folders
    readme = (root / "README.md").read_text(encoding="utf-8")
    assert "For instructors" not in readme and "For maintainers" not in readme and "instructor-only" not in readme
    assert "git pull" in readme and "tito module start" in readme
    ignored = (root / ".gitignore").read_text(encoding="utf-8").split()
    assert {".venv/", ".tito/", ".vscode/", ".idea/"} <= set(ignored)
    testpaths = re.search(r"^testpaths = \[(.*)\]$", (root / "pyproject.toml").read_text(), re.M).group(1)
    assert all((root / p.strip().strip('"')).is_dir() for p in testpaths.split(","))


def test_modules_05_to_16_give_nothing_when_only_01_to_04_are_solved(tmp_path):
    root = student_repo(tmp_path, solutions_through=4)
    progress = grade_modules(root)
    points = {mid: e["points"] for mid, e in progress["modules"].items()}
    assert all(progress["modules"][m.id]["ok"] for m in COURSE.modules if m.number <= 4), points
    assert all(points[m.id] == 0 for m in COURSE.modules if m.number > 4), points
    later = [f"assignments/{m.id}" for m in COURSE.modules if m.number > 4]
    given = first_pytest(root, "-m", "given", "-q", *later)
    assert given.returncode == 0 and " passed" in given.stdout, given.stdout[-2000:]


def test_a_broken_later_file_costs_nothing_earlier_and_is_named(tmp_path):
    root = student_repo(tmp_path, solutions_through=2)
    path = root / "tinytorch" / "activations.py"
    lines = path.read_text(encoding="utf-8").splitlines()
    lines.append("def oops(:")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    progress = grade_modules(root)
    mods = progress["modules"]
    assert mods["01_setup"]["ok"] and mods["02_tensor"]["ok"], {k: mods[k]["reason"] for k in ("01_setup", "02_tensor")}
    assert mods["03_activations"]["points"] == 0
    assert mods["03_activations"]["reason"].startswith(f"tinytorch/activations.py:{len(lines)} is broken")


def test_a_test_file_that_does_not_import_is_named_in_the_first_pytest_summary(tmp_path):
    """pytest 9 gives collection reports a `when` of "collect": the course summary must still read them
    as import errors (it crashed with an INTERNALERROR before)."""
    root = student_repo(tmp_path, solutions_through=1)
    (root / "assignments" / "02_tensor" / "test_extra.py").write_text("import no_such_module\n", encoding="utf-8")
    run = first_pytest(root, "assignments/01_setup", "assignments/02_tensor")
    assert "INTERNALERROR" not in run.stdout + run.stderr and "Traceback" not in run.stderr, run.stderr[-2000:]
    lines = run.stdout.splitlines()
    at = next(k for k, line in enumerate(lines) if line.startswith("02_tensor:"))
    assert lines[at].endswith("next: tito module test 02") or lines[at].endswith("start here: tito module start 02")
    assert "test_extra.py could not be imported" in lines[at + 1] and "no_such_module" in lines[at + 1], lines[at:at + 2]


def test_a_broken_tensor_file_leaves_module_01_working_and_names_the_line(tmp_path):
    """`import tinytorch` loads only what is used: even a broken tensor.py (module 02) leaves module 01's
    setup_check importable, and using a tensor name raises an ImportError naming the file and line."""
    import shutil
    shutil.copytree(REPO / "tinytorch", tmp_path / "tinytorch", ignore=shutil.ignore_patterns("__pycache__"))
    path = tmp_path / "tinytorch" / "tensor.py"
    lines = path.read_text(encoding="utf-8").splitlines() + ["x = ("]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    code = ("import tinytorch as tt\nfrom tinytorch import setup_check\nprint('setup_check ok')\n"
            "for name in ('tensor', 'float32', 'relu', 'nn.Linear'):\n"
            "    try:\n        eval('tt.' + name)\n    except ImportError as exc:\n        print(name, exc)\n")
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=clean_env(tmp_path), capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0 and "setup_check ok" in run.stdout, run.stdout + run.stderr
    for name in ("tensor", "float32", "relu", "nn.Linear"):
        line = next(x for x in run.stdout.splitlines() if x.startswith(name + " "))
        assert f"tensor.py, line {len(lines)}" in line and "SyntaxError" in line, line


@pytest.mark.slow
def test_given_tests_need_no_work_in_their_module(tmp_path):
    """`@pytest.mark.given` (neutral for points) is only for tests of code the course gives: each one passes
    with the module's own work missing and every earlier module done. And no other test does: the
    module's stub passes none of its counted tests (so no free points at any stage of the course)."""
    for m in COURSE.modules[1:]:
        root = tmp_path / f"through{m.number - 1}"
        build_release(root, REPO, solutions_through=m.number - 1)
        given = first_pytest(root, "--full", "-q", "-m", "given", m.folder)
        assert given.returncode in (0, 5), f"{m.id}: a given test needs work:\n{given.stdout[-2000:]}"
        counted = first_pytest(root, "--full", "-q", "-rA", "-m", "not given", m.folder)
        free = [line for line in counted.stdout.splitlines() if line.startswith("PASSED ")]
        assert free == [], f"{m.id}: tests that pass with no work in the module: {free}"

