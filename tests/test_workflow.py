"""The grading workflow: offline linters, its safety rules, and the commit-back script under concurrency."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tito_fixtures import REPO, git  # noqa: E402

from grading import readme_section  # noqa: E402
from grading.commit_back import BOT_NAME, commit_back  # noqa: E402

WORKFLOW = REPO / ".github" / "workflows" / "grade.yml"


def _tool(name: str) -> str:
    path = shutil.which(name) or (str(Path(sys.executable).parent / name)
                                  if (Path(sys.executable).parent / name).exists() else None)
    if path is None:
        pytest.skip(f"{name} is not installed (it comes with the test extras: pip install -e '.[test]')")
    return path


def test_actionlint():
    result = subprocess.run([_tool("actionlint"), str(WORKFLOW)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_github_workflow_schema():
    result = subprocess.run([_tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def workflow():
    data = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as True
    return data


def test_triggers_permissions_concurrency(workflow):
    assert set(workflow["on"]) == {"push", "workflow_dispatch"}
    assert workflow["permissions"] == {"contents": "write"}
    assert workflow["concurrency"]["cancel-in-progress"] is False
    assert "github.ref" in workflow["concurrency"]["group"]


def test_only_the_default_branch_is_graded_and_committed_back(workflow):
    grade, test = workflow["jobs"]["grade"], workflow["jobs"]["test"]
    assert "github.ref_name == github.event.repository.default_branch" in grade["if"]
    assert "github.ref_name != github.event.repository.default_branch" in test["if"]
    assert not any("commit_back" in s.get("run", "") for s in test["steps"])
    assert any("commit_back" in s.get("run", "") for s in grade["steps"])


def test_the_data_cache_is_filled_before_grading_and_the_real_data_tests_run(workflow):
    steps = workflow["jobs"]["grade"]["steps"]
    names = [s.get("name") for s in steps]
    fill = steps[names.index("Download the data sets (cache miss)")]
    save = steps[names.index("Save the data cache")]
    assert names.index("Restore the data cache") < names.index("Download the data sets (cache miss)") \
        < names.index("Save the data cache") < names.index("Grade")
    for loader in ("load_mnist()", "load_cifar10()", "load_text('tinyshakespeare')"):
        assert loader in fill["run"]
    assert "steps.fill.outcome == 'success'" in save["if"]      # a partial download is never saved
    assert any("TINYTORCH_DATA=" in s.get("run", "") for s in steps)


def test_every_job_has_a_timeout_and_skips_its_own_commits(workflow):
    for name, job in workflow["jobs"].items():
        assert isinstance(job.get("timeout-minutes"), int), name
        assert "github-actions[bot]" in job["if"] and "[skip ci]" in job["if"]


def test_caches_are_keyed_on_what_they_hold(workflow):
    steps = workflow["jobs"]["grade"]["steps"]
    setup = next(s for s in steps if s.get("uses", "").startswith("actions/setup-python"))
    assert setup["with"]["cache"] == "pip" and setup["with"]["cache-dependency-path"] == "pyproject.toml"
    cache = next(s for s in steps if s.get("uses", "").startswith("actions/cache"))
    assert cache["with"]["path"] == "~/.cache/tinytorch"
    assert "steps.data.outputs.key" in cache["with"]["key"]
    key_step = next(s for s in steps if s.get("id") == "data")
    assert "tito grade --data-key" in key_step["run"]
    assert any("TINYTORCH_CACHE" in s.get("run", "") for s in steps)


def test_untrusted_text_never_reaches_a_shell_line(workflow):
    for step in workflow["jobs"]["grade"]["steps"]:
        run = step.get("run", "")
        assert "${{" not in run, f"expression interpolated into a shell line: {run!r}"
        assert not re.search(r"--force|\bpush\b.*\s-f\b", run)
    commit = next(s for s in workflow["jobs"]["grade"]["steps"] if "commit_back" in s.get("run", ""))
    assert commit["env"]["BRANCH"] == "${{ github.ref_name }}" and '"$BRANCH"' in commit["run"]


# --- commit-back against a local bare repository ----------------------------------------------------

def _clone(origin: Path, dest: Path, ref: str = "main") -> Path:
    subprocess.run(["git", "clone", "-q", str(origin), str(dest)], check=True, capture_output=True)
    git(dest, "checkout", "-q", ref)
    return dest


def _write_results(clone: Path, graded: str, label: str) -> None:
    """What `tito grade` would write for commit `graded`."""
    badges = clone / "badges"
    badges.mkdir(exist_ok=True)
    progress = {"commit": {"sha": graded}, "totals": {"modules_passed": 1, "modules": 2, "points": 5,
                                                      "max_points": 10, "milestones_passed": 0, "milestones": 1}}
    (badges / "progress.json").write_text(json.dumps(progress))
    (badges / "points.json").write_text(json.dumps({"schemaVersion": 1, "label": "points", "message": label}))
    readme_section.update_readme(clone / "README.md", f"results for {label}\n")


@pytest.fixture
def origin(tmp_path):
    """A bare repository that refuses non-fast-forward pushes, with a student's first commit."""
    bare = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    git(bare, "config", "receive.denyNonFastForwards", "true")
    work = tmp_path / "student"
    subprocess.run(["git", "clone", "-q", str(bare), str(work)], check=True, capture_output=True)
    git(work, "checkout", "-q", "-b", "main")
    (work / "README.md").write_text("# My TinyTorch\n\nStudent intro.\n")
    (work / "code.py").write_text("v = 0\n")
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "start")
    git(work, "push", "-q", "origin", "main")
    return bare, work


def _student_push(work: Path, text: str, readme_extra: str = "") -> str:
    git(work, "pull", "-q", "--rebase", "origin", "main")
    (work / "code.py").write_text(text)
    if readme_extra:
        readme = work / "README.md"
        readme.write_text(readme.read_text() + readme_extra)
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", f"student: {text.strip()}")
    git(work, "push", "-q", "origin", "main")
    return git(work, "rev-parse", "HEAD").stdout.strip()


def _remote_file(bare: Path, path: str) -> str:
    return git(bare, "show", f"main:{path}").stdout


def _history(bare: Path) -> list[str]:
    return git(bare, "log", "--format=%H %an %s", "main").stdout.splitlines()


def test_two_close_pushes_both_commit_back_and_newest_wins(origin, tmp_path):
    bare, work = origin
    a = _student_push(work, "v = 1\n")
    run_a = _clone(bare, tmp_path / "run_a", a)              # the run for push A checks out A ...
    b = _student_push(work, "v = 2\n", readme_extra="\nA line the student added.\n")
    run_b = _clone(bare, tmp_path / "run_b", b)              # ... and push B arrives seconds later
    _write_results(run_a, a, "A")
    _write_results(run_b, b, "B")
    tips = [git(bare, "rev-parse", "main").stdout.strip()]
    assert commit_back(run_a, "main", pause=0) == "pushed"    # rebased over B (no conflict)
    tips.append(git(bare, "rev-parse", "main").stdout.strip())
    assert commit_back(run_b, "main", pause=0) == "pushed"    # conflicts with A's results: rebuilt on top
    tips.append(git(bare, "rev-parse", "main").stdout.strip())
    for old, new in zip(tips, tips[1:]):                      # every update was a fast-forward
        assert git(bare, "merge-base", "--is-ancestor", old, new, check=False).returncode == 0
    assert json.loads(_remote_file(bare, "badges/progress.json"))["commit"]["sha"] == b
    readme = _remote_file(bare, "README.md")
    assert "results for B" in readme and "results for A" not in readme
    assert "Student intro." in readme and "A line the student added." in readme
    assert _remote_file(bare, "code.py") == "v = 2\n"
    history = _history(bare)
    bot_commits = [h for h in history if BOT_NAME in h]
    assert len(bot_commits) == 2 and all("[skip ci]" in h for h in bot_commits)


def test_older_results_never_overwrite_newer_ones(origin, tmp_path):
    bare, work = origin
    a = _student_push(work, "v = 1\n")
    run_a = _clone(bare, tmp_path / "run_a", a)
    b = _student_push(work, "v = 2\n")
    run_b = _clone(bare, tmp_path / "run_b", b)
    _write_results(run_a, a, "A")
    _write_results(run_b, b, "B")
    assert commit_back(run_b, "main", pause=0) == "pushed"
    assert commit_back(run_a, "main", pause=0) == "newer results already there"
    assert json.loads(_remote_file(bare, "badges/progress.json"))["commit"]["sha"] == b
    assert "results for B" in _remote_file(bare, "README.md")


def test_unchanged_results_make_no_commit(origin, tmp_path):
    bare, work = origin
    run = _clone(bare, tmp_path / "run", "main")
    assert commit_back(run, "main", pause=0) == "nothing to commit"
    assert len(_history(bare)) == 1


def test_commit_back_only_commits_results(origin, tmp_path):
    bare, work = origin
    run = _clone(bare, tmp_path / "run", "main")
    _write_results(run, git(run, "rev-parse", "HEAD").stdout.strip(), "X")
    (run / "code.py").write_text("v = 'changed by a milestone run'\n")   # must not be committed
    (run / "stray.txt").write_text("junk")
    assert commit_back(run, "main", pause=0) == "pushed"
    assert _remote_file(bare, "code.py") == "v = 0\n"
    files = git(bare, "ls-tree", "-r", "--name-only", "main").stdout.split()
    assert "stray.txt" not in files and "badges/progress.json" in files


def test_commit_back_cli_takes_the_branch_from_the_environment(origin, tmp_path):
    bare, work = origin
    run = _clone(bare, tmp_path / "run", "main")
    _write_results(run, git(run, "rev-parse", "HEAD").stdout.strip(), "X")
    env = {**os.environ, "GITHUB_REF_NAME": "main", "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-m", "grading.commit_back", "--pause", "0"], cwd=run, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "results for X" in _remote_file(bare, "README.md")
    bad = subprocess.run([sys.executable, "-m", "grading.commit_back", "--branch", "--upload-pack=evil"], cwd=run,
                         env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0


def test_a_manual_run_on_the_results_commit_names_the_students_newest_commit(origin, tmp_path):
    """workflow_dispatch checks out the bot's results commit; the grade must be labelled with the student's
    commit whose code it is, not with the bot's."""
    from grading.grade import commit_info
    bare, work = origin
    student = _student_push(work, "v = 1\n")
    _write_results(work, student, "S")
    git(work, "add", "-A")
    git(work, "-c", f"user.name={BOT_NAME}", "commit", "-q", "-m", "results [skip ci]")
    assert git(work, "rev-parse", "HEAD").stdout.strip() != student
    info = commit_info(work)
    assert info["sha"] == student and info["dirty"] is False


def test_the_readme_tells_students_to_pull_before_pushing():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert "git pull" in text and "git config pull.rebase true" in text
