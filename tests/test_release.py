"""`tito release`: stubs, exclusions, starting state, manifest, determinism, marker errors, leaks."""
from __future__ import annotations

import ast
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fake_github import make_mini_course  # noqa: E402

from grading.instructor import solutions  # noqa: E402
from grading.instructor.release import (FRONT_END_PATHS, INSTRUCTOR_ONLY, MANIFEST, ReleaseError,  # noqa: E402
                                       build_release, check_release, find_leaks, is_protected, list_source_files)
from grading.instructor.solutions import SolutionMarkerError  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def tree_bytes(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): (p.read_bytes(), p.stat().st_mode & 0o777)
            for p in sorted(root.rglob("*")) if p.is_file() and ".git" not in p.relative_to(root).parts}


@pytest.fixture
def course(tmp_path):
    return make_mini_course(tmp_path / "course")


# ---- solution blocks --------------------------------------------------------------------------------
def test_stub_replaces_each_block_with_a_raise_at_its_indentation():
    src = "def f(x):\n    if x:\n        return 1\n    # BEGIN SOLUTION\n    y = x * 2\n    return y\n    # END SOLUTION\n"
    out = solutions.stub(src, "04_layers")
    assert out == ("def f(x):\n    if x:\n        return 1\n    raise NotImplementedError(\"04_layers: implement f, "
                   "see assignments/04_layers/README.md\")\n")


def test_hint_and_qualified_names():
    src = ("class A:\n    def m(self):\n        # BEGIN SOLUTION\n        return 1\n        # END SOLUTION\n\n"
           "    def n(self):\n        def inner():\n            # BEGIN SOLUTION compute the inner \"thing\"\n"
           "            return 2\n            # END SOLUTION\n        return inner()\n")
    blocks = solutions.find_blocks(src)
    assert [b.qualname for b in blocks] == ["A.m", "A.n.<locals>.inner"]
    assert blocks[1].hint == 'compute the inner "thing"'
    out = solutions.stub(src, "02_tensor")
    assert 'raise NotImplementedError("02_tensor: implement A.m, see assignments/02_tensor/README.md")' in out
    assert 'raise NotImplementedError("02_tensor: compute the inner \\"thing\\", see assignments/02_tensor/README.md")' in out
    ns = {}
    exec(compile(out, "x", "exec"), ns)
    with pytest.raises(NotImplementedError, match='inner "thing"'):
        ns["A"]().n()


def test_keep_solutions_drops_only_the_markers():
    src = "def f():\n    # BEGIN SOLUTION\n    return 3\n    # END SOLUTION\n"
    assert solutions.keep_solutions(src) == "def f():\n    return 3\n"


@pytest.mark.parametrize("src, message", [
    ("def f():\n    # BEGIN SOLUTION\n    return 1\n", "never closed"),
    ("def f():\n    return 1\n    # END SOLUTION\n", "without a '# BEGIN SOLUTION'"),
    ("def f():\n    # BEGIN SOLUTION\n    # BEGIN SOLUTION\n    return 1\n    # END SOLUTION\n", "cannot nest"),
    ("def f():\n    #BEGIN SOLUTION\n    return 1\n    # END SOLUTION\n", "looks like a solution marker"),
    ("# BEGIN SOLUTION\nX = 1\n# END SOLUTION\n", "outside a function body"),
    ("def f():\n    # BEGIN SOLUTION\n    return 1\n  # END SOLUTION\n", "indented"),
    ("def f():\n    x = 1\n    # BEGIN SOLUTION\n    # END SOLUTION\n    return x\n", "has no code"),
    ("def f():\n    if True:\n        # BEGIN SOLUTION\n        x = 1\n    else:\n        x = 2\n        # END SOLUTION\n"
     "    return x\n", "indented less"),
    ("def f():\n    # BEGIN SOLUTION\n    try:\n        x = 1\n    # END SOLUTION\n    except ValueError:\n        x = 2\n"
     "    return x\n", "runs past its END"),
])
def test_malformed_markers_fail_loudly(src, message):
    with pytest.raises(SolutionMarkerError, match=message):
        solutions.stub(src, "01_setup", path="tinytorch/x.py")


def test_markers_inside_strings_are_not_markers():
    src = 'def f():\n    """Example:\n    # BEGIN SOLUTION\n    """\n    return 1\n'
    assert solutions.find_blocks(src) == []
    assert solutions.marker_lines(src) == []


# ---- the release of a miniature course -----------------------------------------------------------
def test_release_stubs_excludes_resets_and_writes_manifest(course, tmp_path):
    out = tmp_path / "out"
    report = build_release(out, course)
    files = set(tree_bytes(out))
    # instructor-only files and caches are left out, the rest is there
    assert "tests/test_tooling.py" not in files
    assert ".github/workflows/class-regrade.yml" not in files
    assert not any(f.startswith("grading/instructor/") for f in files)
    assert not any("__pycache__" in f for f in files)
    assert {".github/workflows/grade.yml", "assignments/01_alpha/test_01_alpha.py", "grading/grade.py",
            "milestones/m1_program.py", MANIFEST} <= files
    # stubs
    alpha = (out / "tinytorch/alpha.py").read_text()
    assert 'raise NotImplementedError("01_alpha: implement double, see assignments/01_alpha/README.md")' in alpha
    assert ('raise NotImplementedError("01_alpha: multiply x by the scaler\'s factor k, '
            'see assignments/01_alpha/README.md")') in alpha
    assert 'raise ValueError("double: x is None")' in alpha  # validation outside the block stays
    assert "secret sauce" not in alpha and "SOLUTION" not in alpha
    assert report.stubbed == {"tinytorch/alpha.py": 2, "tinytorch/beta.py": 1}
    # starting state
    readme = (out / "README.md").read_text()
    assert "old progress" not in readme and "More text." in readme and "0/10" in readme
    assert "<!-- tinytorch:progress:start -->" in readme and "<!-- tinytorch:progress:end -->" in readme
    badges = sorted(p.name for p in (out / "badges").iterdir())
    assert "modules.svg" in badges and "progress.json" in badges
    start = json.loads((out / "badges/progress.json").read_text())
    assert start["totals"]["points"] == 0 and start["totals"]["modules_passed"] == 0
    assert start["run"] == {"url": None, "github_actions": False}
    # manifest: {"files": {path: sha256}} of exactly the protected files, matching the released bytes
    manifest = json.loads((out / MANIFEST).read_text())
    assert list(manifest) == ["files"]
    assert "assignments/01_alpha/test_01_alpha.py" in manifest["files"]
    assert "assignments/course.yaml" in manifest["files"] and "pyproject.toml" in manifest["files"]
    assert ".github/workflows/grade.yml" in manifest["files"] and "grading/course.py" in manifest["files"]
    assert "tinytorch/testing.py" in manifest["files"] and "milestones/m1_program.py" in manifest["files"]
    assert "tinytorch/alpha.py" not in manifest["files"] and "README.md" not in manifest["files"]
    assert MANIFEST not in manifest["files"]
    for rel, digest in manifest["files"].items():
        assert hashlib.sha256((out / rel).read_bytes()).hexdigest() == digest
    assert check_release(out) == []
    assert find_leaks(out, course) == []


def test_release_is_byte_identical_and_git_or_walk_gives_the_same(tmp_path):
    plain = make_mini_course(tmp_path / "plain")
    in_git = make_mini_course(tmp_path / "git", git=True)
    (in_git / "tinytorch" / "scratch.py").write_text("x = 1\n")  # untracked, not ignored: still released
    (tmp_path / "plain" / "tinytorch" / "scratch.py").write_text("x = 1\n")
    build_release(tmp_path / "a", plain)
    build_release(tmp_path / "b", plain)
    build_release(tmp_path / "c", in_git)
    a, b, c = tree_bytes(tmp_path / "a"), tree_bytes(tmp_path / "b"), tree_bytes(tmp_path / "c")
    assert a == b
    assert a == c
    assert "tinytorch/scratch.py" in a


def test_executable_bit_is_kept_and_modes_normalised(course, tmp_path):
    script = course / ".ci" / "run"
    script.parent.mkdir()
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o775)
    (course / "README.md").chmod(0o600)
    build_release(tmp_path / "out", course)
    assert (tmp_path / "out/.ci/run").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "out/README.md").stat().st_mode & 0o777 == 0o644


def test_solutions_through_keeps_earlier_modules(course, tmp_path):
    report = build_release(tmp_path / "out", course, solutions_through=1)
    alpha = (tmp_path / "out/tinytorch/alpha.py").read_text()
    beta = (tmp_path / "out/tinytorch/beta.py").read_text()
    assert "result = x + x" in alpha and "SOLUTION" not in alpha and "NotImplementedError" not in alpha
    assert "NotImplementedError" in beta and "twice_of_twice" not in beta
    assert report.kept == {"tinytorch/alpha.py": 2}
    assert find_leaks(tmp_path / "out", course, through=1) == []


def test_the_stubbed_release_imports_and_its_tests_fail_then_pass_with_solutions(course, tmp_path):
    """The miniature version of the stub-independence proof, through the `tito release` command."""
    from grading.cli import main
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "out")}

    def outcomes(release):
        res = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rA",
                              "--import-mode=importlib", "assignments"], cwd=release, env={**env, "PYTHONPATH": str(release)},
                             capture_output=True, text=True, timeout=120)
        return {line.split()[1].split("::")[0].split("/")[1]: line.split()[0]
                for line in res.stdout.splitlines() if line.startswith(("PASSED", "FAILED"))}, res

    assert main(["release", "--out", str(tmp_path / "out"), "--source", str(course)]) == 0
    got, res = outcomes(tmp_path / "out")
    assert got == {"01_alpha": "FAILED", "02_beta": "FAILED"}, res.stdout
    assert main(["release", "--out", str(tmp_path / "out"), "--source", str(course), "--solutions-through", "1",
                 "--force"]) == 0
    got, _ = outcomes(tmp_path / "out")
    assert got["01_alpha"] == "PASSED" and got["02_beta"] == "FAILED"


def test_out_folder_rules(course, tmp_path):
    out = tmp_path / "out"
    (out / ".git").mkdir(parents=True)
    (out / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (out / "stale.txt").write_text("old")
    with pytest.raises(ReleaseError, match="not empty"):
        build_release(out, course)
    build_release(out, course, force=True)
    assert not (out / "stale.txt").exists()
    assert (out / ".git" / "HEAD").read_text() == "ref: refs/heads/main\n"  # a template checkout keeps its git
    with pytest.raises(ReleaseError, match="source repository"):
        build_release(course, course, force=True)
    with pytest.raises(ReleaseError, match="source repository"):
        build_release(course.parent, course, force=True)


def test_markers_outside_module_sources_stop_the_release(course, tmp_path):
    (course / "milestones" / "m1_program.py").write_text(
        "def main():\n    # BEGIN SOLUTION\n    return 1\n    # END SOLUTION\n")
    with pytest.raises(SolutionMarkerError, match="not a module source"):
        build_release(tmp_path / "out", course)
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_leak_check_finds_solution_text_quoted_elsewhere(course, tmp_path):
    build_release(tmp_path / "out", course)
    readme = tmp_path / "out/assignments/02_beta/README.md"
    readme.write_text(readme.read_text() + "\nHint: `twice_of_twice = double(double(x))`\n")
    assert find_leaks(tmp_path / "out", course) == []  # one short line is an idiom, not a leak
    readme.write_text(readme.read_text() + "\n```python\n    twice_of_twice = double(double(x))\n"
                      "    return twice_of_twice\n```\n")
    leaks = find_leaks(tmp_path / "out", course)
    assert len(leaks) == 1 and "assignments/02_beta/README.md" in leaks[0] and "quadruple" in leaks[0]


def test_leak_check_finds_a_long_solution_line_anywhere(course, tmp_path):
    long_line = "twice_of_twice = double(double(x)) + 0 * double(x)  # sixty characters or more"
    beta = course / "tinytorch/beta.py"
    beta.write_text(beta.read_text().replace("twice_of_twice = double(double(x))", long_line))
    build_release(tmp_path / "out", course)
    assert find_leaks(tmp_path / "out", course) == []
    (tmp_path / "out/assignments/02_beta/notes.txt").write_text(f"see: {long_line}\n")
    leaks = find_leaks(tmp_path / "out", course)
    assert len(leaks) == 1 and "notes.txt" in leaks[0]


def test_protected_and_instructor_only_tables():
    assert is_protected("assignments/04_layers/test_04_layers.py")
    assert is_protected("assignments/04_layers/conftest.py") and is_protected("conftest.py")
    assert is_protected("grading/grade.py") and is_protected(".github/workflows/grade.yml")
    assert is_protected("tinytorch/testing.py") and is_protected("tinytorch/__init__.py")
    assert not is_protected("tinytorch/tensor.py")  # the student's own work
    assert not is_protected("README.md") and not is_protected("badges/progress.json")
    assert not is_protected(MANIFEST)
    assert all(reason for _, reason in INSTRUCTOR_ONLY)


# ---- the real repository --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def real_snapshot(tmp_path_factory):
    """A copy of the repository's files (others may be editing the working tree while this runs)."""
    snap = tmp_path_factory.mktemp("snapshot") / "repo"
    for rel in list_source_files(REPO):
        dest = snap / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes((REPO / rel).read_bytes())
        dest.chmod((REPO / rel).stat().st_mode & 0o777)
    return snap


@pytest.fixture(scope="module")
def real_release(tmp_path_factory, real_snapshot):
    out = tmp_path_factory.mktemp("release") / "template"
    report = build_release(out, real_snapshot)
    return out, report


def test_real_release_has_no_solution_text_and_parses(real_release, real_snapshot):
    out, report = real_release
    assert report.stubbed, "no module source with solution blocks was found"
    assert check_release(out) == []
    assert find_leaks(out, real_snapshot) == []
    for rel in report.stubbed:
        ast.parse((out / rel).read_text(encoding="utf-8"))
    assert not (out / "tests").exists()
    assert not (out / ".github/workflows/class-regrade.yml").exists()


def test_real_release_lists_no_caches_and_is_deterministic(real_release, real_snapshot, tmp_path):
    out, _ = real_release
    files = list_source_files(REPO)
    assert not any("__pycache__" in f or f.endswith(".pyc") or ".egg-info" in f for f in files)
    again = tmp_path / "again"
    build_release(again, real_snapshot)
    assert tree_bytes(out) == tree_bytes(again)


def test_real_release_is_a_classroom50_starter(real_release, real_snapshot):
    """Classroom 50 writes .classroom50.yaml and .github/workflows/autograde.yaml into each student's copy and
    re-fetches .github/ on submit: the template leaves those paths free, keeps its own grading workflow, keeps
    the badges outside .github/, and leaves out the instructor's enroll workflow and its issue form."""
    out, report = real_release
    files = set(report.files)
    assert not files & set(FRONT_END_PATHS)
    assert ".github/workflows/grade.yml" in files
    assert any(f.startswith("badges/") for f in files)
    assert not any(f.startswith(".github/") and "badge" in f.lower() for f in files)
    for rel in (".github/workflows/enroll.yml", ".github/ISSUE_TEMPLATE/join-the-course.yml"):
        assert (real_snapshot / rel).exists() and not (out / rel).exists(), rel


def test_a_file_where_classroom50_writes_is_a_release_problem(course, tmp_path):
    (course / ".classroom50.yaml").write_text("assignment: mine\n")
    (course / ".github/workflows/autograde.yaml").write_text("name: ours\non: push\njobs: {}\n")
    build_release(tmp_path / "out", course)
    problems = check_release(tmp_path / "out")
    assert len(problems) == 2 and all("Classroom 50 writes its own file here" in p for p in problems)
    assert any(p.startswith(".classroom50.yaml:") for p in problems)
