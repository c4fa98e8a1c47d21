"""`tito classroom regrade` on real local git repositories made from a release of a miniature course (with
its own probes), in the bubblewrap sandbox, and the class workflow's shard and merge steps run locally (the
workflow's own scripts, read from the YAML). tests/test_regrade_sandbox.py attacks the real course."""
from __future__ import annotations

import csv
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fake_github import BOT, FakeGitHub, make_mini_course  # noqa: E402
from tito_fixtures import sandbox_or_skip  # noqa: E402

from grading.instructor import regrade as R  # noqa: E402
from grading.course import load_course  # noqa: E402
from grading.instructor.release import build_release  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
TOKEN = "ghp_workflowTESTtoken0000000000000"


def git(repo: Path, *args: str) -> str:
    res = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True,
                         env={**os.environ, "GIT_AUTHOR_NAME": "s", "GIT_AUTHOR_EMAIL": "s@e",
                              "GIT_COMMITTER_NAME": "s", "GIT_COMMITTER_EMAIL": "s@e"})
    return res.stdout.strip()


def student_repo(release: Path, dest: Path, edits: dict[str, str | None]) -> Path:
    """A git repository made from `release` with `edits` applied (None deletes), as a student would push it."""
    shutil.copytree(release, dest)
    for rel, text in edits.items():
        p = dest / rel
        if text is None:
            p.unlink()
        else:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text)
    git(dest, "init", "-q", "-b", "main")
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "-m", "my work")
    return dest


TAMPERING = {
    # edited and deleted tests, and files that change collection or outcomes
    "assignments/02_beta/test_02_beta.py": "def test_quadruple():\n    assert True\n",
    "assignments/01_alpha/test_01_alpha.py": None,
    "assignments/02_beta/conftest.py": (
        "import pytest\n\n@pytest.hookimpl(hookwrapper=True)\ndef pytest_runtest_makereport(item, call):\n"
        "    outcome = yield\n    rep = outcome.get_result()\n    rep.outcome = 'passed'\n"),
    "pytest.ini": "[pytest]\naddopts = -p no:python\n",
    "sitecustomize.py": "import builtins\nbuiltins.NotImplementedError = AssertionError\n",
    # the grader, the table and the student's own badges
    "grading/grade.py": "print('Points 10/10')\n",
    "assignments/course.yaml": "course: hacked\nmodules: []\nmilestones: []\n",
    "badges/progress.json": '{"modules": {"02_beta": {"ok": true, "points": 6}}, "totals": {"points": 10}}\n',
    "tinytorch/__init__.py": "import _pytest.reports\n_pytest.reports.TestReport.passed = property(lambda s: True)\n",
    # student code that fakes output and tries to write a fake report where the grader writes its own
    # (the course tree is read-only in the sandbox)
    "tinytorch/beta.py": (
        "import json, os\nfrom tinytorch.alpha import double\nprint('Points 10/10')\n"
        "try:\n    os.makedirs('badges', exist_ok=True)\n"
        "    open('badges/progress.json', 'w').write(json.dumps({'totals': {'points': 10}}))\n"
        "except OSError:\n    pass\n\n\n"
        "def quadruple(x):\n    raise NotImplementedError('02_beta')\n"),
}


@pytest.fixture(scope="module")
def sandbox():
    return sandbox_or_skip()


def options(course, sandbox, **kw) -> R.Options:
    return R.Options(instructor_dir=course, isolation=sandbox, log=lambda m: None, **kw)


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    root = tmp_path_factory.mktemp("mini")
    course = make_mini_course(root / "course")
    build_release(root / "release", course, solutions_through=1)   # the student solved module 01
    return root, course


def test_tampering_changes_nothing(mini, tmp_path, sandbox):
    root, course = mini
    repo = student_repo(root / "release", tmp_path / "student", TAMPERING)
    result = R.regrade_repo("org/mini-alice", f"file://{repo}", tmp_path / "results", options(course, sandbox),
                            github_username="alice")
    assert result["status"] == "graded", result["notes"]
    assert result["verified"] is True and result["sandbox"] == "bubblewrap"
    assert result["modules_passed"] == ["01_alpha"]
    assert result["modules"]["01_alpha"] == {**result["modules"]["01_alpha"], "passed": 2, "total": 2, "ok": True,
                                             "probes_matched": 2, "probes_total": 2}
    # module 02: the instructor's 2 tests, both failing; nothing the student added counts
    assert result["modules"]["02_beta"]["total"] == 2 and result["modules"]["02_beta"]["passed"] == 0
    assert result["points"] == 4.0 and result["max_points"] == 10.0
    assert result["taken"] == ["tinytorch/alpha.py", "tinytorch/beta.py"]
    assert result["commit"] == git(repo, "rev-parse", "HEAD")
    assert any("tinytorch/beta.py" in f and "badges/progress.json" in f for f in result["flags"])
    assert any("__init__.py differs" in n for n in result["notes"])
    saved = json.loads((tmp_path / "results" / "org__mini-alice.json").read_text())
    assert saved["points"] == 4.0 and saved["schema"] == R.RESULT_SCHEMA


def test_full_solution_scores_full_points(mini, tmp_path, sandbox):
    root, course = mini
    full = tmp_path / "full-release"
    build_release(full, course, solutions_through=2)
    good = student_repo(full, tmp_path / "good", {})
    r = R.regrade_repo("org/mini-bob", str(good), tmp_path / "results",   # a plain local path works too
                       options(course, sandbox))
    assert r["modules_passed"] == ["01_alpha", "02_beta"] and r["points"] == 10.0


def test_a_wrong_answer_with_forged_test_passes_gets_only_what_the_probes_verify(mini, tmp_path, sandbox):
    """Module 02's tests made to pass by a fake `quadruple` that knows the two test inputs: the probes draw
    fresh inputs, so it is not credited."""
    root, course = mini
    cheat = ("from tinytorch.alpha import double\n\n\ndef quadruple(x):\n"
             "    return {2: 8, -1: -4}.get(x, 0)\n")
    repo = student_repo(root / "release", tmp_path / "cheat", {"tinytorch/beta.py": cheat})
    r = R.regrade_repo("org/mini-dave", f"file://{repo}", tmp_path / "results", options(course, sandbox))
    beta = r["modules"]["02_beta"]
    assert (beta["passed"], beta["total"]) == (2, 2) and beta["probes_matched"] == 0 and beta["points"] == 0
    assert r["modules_passed"] == ["01_alpha"] and r["points"] == 4.0
    assert any(n.startswith("02_beta: 2/2 tests passed") for n in r["notes"]), r["notes"]


def test_missing_and_symlinked_sources_are_graded_as_stubs(mini, tmp_path, sandbox):
    root, course = mini
    full = tmp_path / "full-release"
    build_release(full, course, solutions_through=2)
    repo = student_repo(full, tmp_path / "gone", {"tinytorch/alpha.py": None})
    (repo / "tinytorch" / "beta.py").unlink()
    (repo / "tinytorch" / "beta.py").symlink_to("/etc/hostname")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "link")
    r = R.regrade_repo("org/mini-carol", f"file://{repo}", tmp_path / "results", options(course, sandbox))
    # never the reference solution: alpha is missing and beta a symlink, so both are the stubs and fail
    assert r["modules_passed"] == [] and r["taken"] == []
    assert any("tinytorch/alpha.py is missing" in n for n in r["notes"])
    assert any("tinytorch/beta.py is a symbolic link" in n for n in r["notes"])


def test_clone_failure_is_recorded(mini, tmp_path, sandbox):
    _, course = mini
    r = R.regrade_repo("org/nobody", f"file://{tmp_path}/missing.git", tmp_path / "results", options(course, sandbox))
    assert r["status"] == "clone failed" and "org/nobody" == r["repository"] and "git clone" in r["notes"][0]


def test_grader_time_limit(mini, tmp_path, sandbox):
    root, course = mini
    repo = student_repo(root / "release", tmp_path / "student",
                        {"tinytorch/beta.py": "from tinytorch.alpha import double\n\n\ndef quadruple(x):\n"
                                              "    while x < 0:\n        pass\n    return double(double(x))\n"})
    opts = options(course, sandbox, test_timeout=2, probe_timeout=2, timeout=120)
    r = R.regrade_repo("org/loop", f"file://{repo}", tmp_path / "results", opts)
    # the test of a negative input hits the per-test limit, the other passes; the probe (random signs)
    # hits the probe limit, so the module is credited nothing; module 01 keeps its points
    assert r["status"] == "graded" and r["modules_passed"] == ["01_alpha"]
    beta = r["modules"]["02_beta"]
    assert (beta["passed"], beta["total"]) == (1, 2) and beta["points"] == 0
    assert "time limit" in beta["probe_failures"][0]


def test_audit_flags_tricks_but_not_the_reference_solution():
    course = load_course(REPO / "assignments" / "course.yaml")
    for m in course.modules:
        if (REPO / m.source).exists():
            assert R.audit_source((REPO / m.source).read_text(encoding="utf-8"), m.source) == [], m.source
    tricks = ("import _pytest.reports\nimport atexit, os, sys\n"
              "def f():\n    sys.modules['grading'] = None\n    os._exit(0)\n    open('.tito/modules.json', 'w')\n")
    flags = R.audit_source(tricks, "tinytorch/tensor.py")
    assert [f.split(": ", 1)[1] for f in flags] == ["imports _pytest.reports", "imports atexit", "uses sys.modules",
                                                    "uses os._exit", "names the path '.tito/modules.json'"]


def test_git_token_travels_in_the_environment_only():
    env = R.git_env("https://github.com/org/repo.git", "sekret-token")
    assert env["GIT_CONFIG_KEY_0"] == "http.https://github.com/.extraheader"
    assert "sekret-token" not in env["GIT_CONFIG_VALUE_0"]  # base64 of x-access-token:...
    assert "GIT_CONFIG_COUNT" not in R.git_env("file:///x", "sekret-token")
    assert R._redact("fatal: https://user:pw@github.com/x", "pw") == "fatal: https://***@github.com/x"


def test_merge_results(tmp_path):
    for shard, names in (("shard-0", ["org/a", "org/c"]), ("shard-1", ["org/b"])):
        for name in names:
            p = R.result_path(tmp_path / "in" / f"regrade-{shard}", name)
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(json.dumps({"schema": R.RESULT_SCHEMA, "repository": name, "points": 1.5, "max_points": 10,
                                     "modules_passed": ["01_x"], "milestones_passed": [], "flags": [],
                                     "status": "graded", "github_username": name[4:], "commit": "c"}))
    (tmp_path / "in" / "junk.json").write_text("{not json")
    summary = R.merge_results([tmp_path / "in"], tmp_path / "out")
    assert summary["count"] == 3
    rows = list(csv.DictReader((tmp_path / "out" / "regrade.csv").open()))
    assert [r["repository"] for r in rows] == ["org/a", "org/b", "org/c"] and rows[0]["points"] == "1.5"
    assert len(json.loads((tmp_path / "out" / "regrade.json").read_text())["results"]) == 3


# ---- the class workflow, run locally ---------------------------------------------------------------
WORKFLOW = REPO / ".github" / "workflows" / "class-regrade.yml"


def step_script(job: str, name: str) -> str:
    wf = yaml.safe_load(WORKFLOW.read_text())
    for step in wf["jobs"][job]["steps"]:
        if step.get("name") == name:
            return step["run"]
    raise AssertionError(f"no step {name!r} in job {job}")


def test_workflow_shape():
    wf = yaml.safe_load(WORKFLOW.read_text())
    triggers = wf[True] if True in wf else wf["on"]   # YAML 1.1 reads `on` as True
    assert list(triggers) == ["workflow_dispatch"]
    assert wf["jobs"]["regrade"]["strategy"]["matrix"]["shard"] == "${{ fromJSON(needs.plan.outputs.shards) }}"
    assert wf["jobs"]["merge"]["needs"] == "regrade" and wf["jobs"]["merge"]["if"] == "always()"
    assert wf["permissions"] == {"contents": "read"}
    setup = step_script("regrade", "Set up the sandbox")
    assert "apt-get install" in setup and "bubblewrap" in setup and "apparmor_restrict_unprivileged_userns=0" in setup
    assert "--unsandboxed" not in WORKFLOW.read_text()
    actionlint = shutil.which("actionlint")
    if actionlint:
        res = subprocess.run([actionlint, str(WORKFLOW)], capture_output=True, text=True)
        assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.slow
def test_workflow_shard_and_merge_steps_run_locally(mini, tmp_path, sandbox):
    root, course = mini
    users = ["alice", "bob", "carol"]
    # the students' repositories, as bare repositories under a clone base (file://)
    remote = tmp_path / "remote" / "org"
    solved = {"alice": 1, "bob": 2, "carol": 0}
    for user in users:
        rel = tmp_path / f"release-{user}"
        build_release(rel, course, solutions_through=solved[user] or None)
        work = student_repo(rel, tmp_path / f"work-{user}", {"badges/progress.json": '{"totals": {"points": 10}}'})
        subprocess.run(["git", "clone", "-q", "--bare", str(work), str(remote / f"mini-{user}.git")], check=True)
    # the instructor's checkout is the course; `tito` resolves to its own grading package
    instructor = tmp_path / "instructor"
    shutil.copytree(course, instructor)
    (instructor / "classroom").mkdir()
    (instructor / "classroom" / "roster.csv").write_text(
        "identifier,github_username,github_id,name\n" + "".join(f"{u},{u},{i},{u.title()}\n" for i, u in enumerate(users)))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "tito"
    shim.write_text(f"#!/bin/sh\nexec {sys.executable} -m grading \"$@\"\n")
    shim.chmod(shim.stat().st_mode | stat.S_IEXEC)
    base_env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(instructor),
                "ROSTER": "classroom/roster.csv", "ORG": "org", "TEMPLATE": "course/mini"}
    base_env.pop("GITHUB_TOKEN", None)

    # plan
    out_file = tmp_path / "github_output"
    subprocess.run(["bash", "-c", step_script("plan", "Split the roster into shards")], cwd=instructor, check=True,
                   env={**base_env, "SHARDS": "2", "GITHUB_OUTPUT": str(out_file)})
    shards = json.loads(out_file.read_text().strip().split("=", 1)[1])
    assert shards == [0, 1]
    # one regrade job per shard (the matrix), each writing its own artifact folder
    for k in shards:
        res = subprocess.run(["bash", "-c", step_script("regrade", "Regrade this shard")], cwd=instructor,
                             env={**base_env, "SHARD": str(k), "SHARDS": "2", "MILESTONES": "false",
                                  "RESULTS": f"artifacts/regrade-shard-{k}", "CLONE_BASE": f"file://{tmp_path}/remote"},
                             capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, res.stdout + res.stderr
    assert len(list((instructor / "artifacts" / "regrade-shard-0").glob("*.json"))) == 2   # alice, carol
    assert len(list((instructor / "artifacts" / "regrade-shard-1").glob("*.json"))) == 1   # bob
    # merge: the API is a fake GitHub holding the template and the students' repositories
    with FakeGitHub(token=TOKEN) as fake:
        tmpl_files = {p.relative_to(root / "release").as_posix(): p.read_bytes()
                      for p in sorted((root / "release").rglob("*")) if p.is_file()}
        fake.add_repo("course", "mini", tmpl_files, is_template=True)
        from grading.instructor.github import GitHub
        from grading.instructor import classroom as C
        gh = GitHub(TOKEN, fake.url, sleep=lambda s: None, min_write_interval=0, log=lambda m: None)
        C.provision(gh, [C.Student(u) for u in users], "course/mini", "org", "mini", log=lambda m: None)
        fake.push("org", "mini-alice", {"badges/progress.json": b'{"totals": {"points": 10}}'}, author=BOT)
        res = subprocess.run(["bash", "-c", step_script("merge", "Merge shards and build the roster")],
                             cwd=instructor, env={**base_env, "GITHUB_TOKEN": TOKEN, "GITHUB_API_URL": fake.url,
                                                  "RESULTS": "artifacts", "OUT": "class-results"},
                             capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stdout + res.stderr
        assert TOKEN not in res.stdout + res.stderr
    out = instructor / "class-results"
    merged = json.loads((out / "regrade.json").read_text())["results"]
    points = {r["github_username"]: r["points"] for r in merged}
    assert points == {"alice": 4.0, "bob": 10.0, "carol": 0.0}   # the regrade, not the claimed 10 points
    roster = {r["github_username"]: r for r in csv.DictReader((out / "roster.csv").open())}
    assert roster["alice"]["regrade_points"] == "4" and roster["alice"]["points"] == "10"  # claimed vs verified
    assert roster["bob"]["regrade_points"] == "10"
    assert (out / "roster.html").read_text().startswith("<!DOCTYPE html>")
