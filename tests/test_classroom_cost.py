"""`tito classroom cost` (grading/instructor/replay.py): a small replay on a real release.

The replay is run once (module 01, two pushes, no milestones, the install step given instead of measured)
and kept, so the tests below can check it against the git history it made: pushes in course order, each
push's seconds equal to what that run's badges/progress.json says, billing rounded up per push, totals that
add up, and a first push that really has only part of the module.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tito_fixtures import REPO, clean_env  # noqa: E402

from grading.course import load_course  # noqa: E402
from grading.instructor.solutions import transform  # noqa: E402
from grading.instructor.replay import (CostError, CostOptions, UNMEASURED, billed_minutes,  # noqa: E402
                                       blocks_for_push, push_plan, replay, report_again, workflow_commands)

COURSE = load_course()
JOB_SETUP = 55.0        # large enough that every push crosses a minute boundary: per-push rounding shows


@pytest.fixture(scope="module")
def replayed(tmp_path_factory):
    work = tmp_path_factory.mktemp("cost") / "work"
    assumed = {u.name: 0.0 for u in UNMEASURED}
    assumed["job-setup"] = JOB_SETUP
    opts = CostOptions(pushes_per_module=2, through=1, skip_milestones=True, students=7, install_seconds=1.5,
                       assumed=assumed, keep_work=str(work))
    lines: list[str] = []
    report = replay(opts, REPO, out=lines.append)
    return report, work, lines


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout


def test_pushes_are_replayed_in_course_order_with_results_commits_between(replayed):
    report, work, lines = replayed
    assert [(p["module"], p["k"], p["of"]) for p in report["pushes"]] == [("01_setup", 1, 2), ("01_setup", 2, 2)]
    subjects = _git(work / "origin.git", "log", "--reverse", "--format=%s", "main").splitlines()
    assert subjects[0] == "Start from the template"
    assert subjects[1].startswith("01_setup: 1/2 solution blocks (push 1/2)")
    assert subjects[2].startswith("Grade ") and "[skip ci]" in subjects[2]      # the workflow's results commit
    assert subjects[3].startswith("01_setup: 2/2 solution blocks (push 2/2)")
    assert subjects[4].startswith("Grade ") and len(subjects) == 5
    # progress lines while it runs: one per push before grading, one after
    assert sum("grading ..." in line for line in lines) == 2
    assert sum("billed" in line for line in lines) == 2


def test_each_push_takes_its_seconds_from_that_runs_progress_json(replayed):
    report, work, _ = replayed
    results = _git(work / "origin.git", "log", "--reverse", "--format=%H", "--grep", "^Grade ", "main").split()
    assert len(results) == 2
    for push, sha in zip(report["pushes"], results):
        progress = json.loads(_git(work / "origin.git", "show", f"{sha}:badges/progress.json"))
        assert push["tests_seconds"] == progress["seconds"]["module_tests"]
        assert push["grade_seconds"] == progress["seconds"]["total"]
        assert push["milestones"] == {}                   # --skip-milestones: none ran
        assert push["module_passed"] == progress["modules"]["01_setup"]["passed"]


def test_the_first_push_fills_only_part_of_the_module(replayed):
    report, work, _ = replayed
    first, second = report["pushes"]
    assert (first["blocks_filled"], first["blocks"]) == (1, 2) and second["blocks_filled"] == 2
    assert 0 < first["module_passed"] < first["module_total"]      # its tests partly pass
    assert second["module_passed"] == second["module_total"]
    source = COURSE.module("01_setup").source
    sha = _git(work / "origin.git", "log", "--reverse", "--format=%H", "main").split()[1]
    pushed = _git(work / "origin.git", "show", f"{sha}:{source}")
    assert pushed.count("raise NotImplementedError(\"01_setup") == 1
    assert "# BEGIN SOLUTION" not in pushed


def test_billing_rounds_up_each_push_and_the_totals_add_up(replayed):
    report, _, _ = replayed
    t = report["totals"]
    for p in report["pushes"]:
        assert p["overhead"]["job-setup (assumed)"] == JOB_SETUP
        assert p["overhead"]["install (measured once)"] == 1.5
        assert p["overhead_seconds"] == pytest.approx(sum(p["overhead"].values()), abs=0.051)
        assert p["job_seconds"] == pytest.approx(p["grade_seconds"] + p["overhead_seconds"], abs=0.051)
        assert p["job_seconds"] > 60 and p["billed_minutes"] == math.ceil(p["job_seconds"] / 60)
    assert t["billed_minutes_per_student"] == sum(p["billed_minutes"] for p in report["pushes"])
    # rounding the whole course once would bill less: GitHub rounds every job
    assert t["billed_minutes_per_student"] > math.ceil(t["job_seconds"] / 60)
    assert t["job_seconds"] == pytest.approx(sum(p["job_seconds"] for p in report["pushes"]), abs=0.11)
    assert t["module_tests_seconds"] == pytest.approx(sum(p["tests_seconds"] for p in report["pushes"]), abs=0.11)
    assert t["billed_minutes_class"] == 7 * t["billed_minutes_per_student"]
    assert t["share_of_team_minutes"] == pytest.approx(t["billed_minutes_class"] / 3000, abs=0.001)
    # what was assumed is named in the report, with its source
    assert set(report["assumptions"]) == {u.name for u in UNMEASURED}
    assert all(a["source"] and a["option"].startswith("--") for a in report["assumptions"].values())


def test_a_saved_replay_is_reported_again_with_other_assumptions(replayed, tmp_path):
    report, _, _ = replayed
    saved = json.loads(json.dumps(report))            # what --json writes
    again = report_again(saved, CostOptions(students=100, install_seconds=0.0), {"job-setup": 0.0})
    for old, new in zip(report["pushes"], again["pushes"]):
        assert new["grade_seconds"] == old["grade_seconds"]             # the measured grader time is kept
        assert new["job_seconds"] == pytest.approx(old["job_seconds"] - JOB_SETUP - 1.5, abs=0.051)
        assert new["billed_minutes"] == 1                                # now under a minute each
    assert again["totals"]["billed_minutes_class"] == 100 * again["totals"]["billed_minutes_per_student"] == 200
    assert again["assumptions"]["job-setup"]["seconds"] == 0.0
    path = tmp_path / "not-a-report.json"
    path.write_text("{}", encoding="utf-8")
    run = subprocess.run([sys.executable, "-m", "grading", "classroom", "cost", "--from-json", str(path)],
                         cwd=REPO, env=clean_env(REPO), capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "--from-json: not a report" in run.stderr, run.stderr


def test_billed_minutes_and_the_push_plan():
    assert [billed_minutes(s) for s in (0.5, 59.9, 60.0, 60.1, 121)] == [1, 1, 1, 2, 3]
    assert [blocks_for_push(24, k, 2) for k in (1, 2)] == [12, 24]
    assert [blocks_for_push(2, k, 3) for k in (1, 2, 3)] == [1, 1, 2]     # never all before the last push
    assert blocks_for_push(1, 1, 2) == 0                                   # a one-block module: done on push 2
    plan = push_plan(COURSE, REPO, 2, None)
    assert [p.module for p in plan[::2]] == [m.id for m in COURSE.modules]
    assert [p.index for p in plan] == list(range(1, 2 * len(COURSE.modules) + 1))


def test_transform_keeps_exactly_the_chosen_blocks():
    src = ("def f():\n    # BEGIN SOLUTION\n    return 1\n    # END SOLUTION\n\n"
           "def g():\n    # BEGIN SOLUTION\n    return 2\n    # END SOLUTION\n")
    out = transform(src, "01_setup", keep={1})
    assert "return 1" not in out and "return 2" in out and out.count("raise NotImplementedError") == 1
    assert transform(src, "01_setup", keep=set()) == transform(src, "01_setup", keep=False)
    assert transform(src, "01_setup", keep={0, 1}) == transform(src, "01_setup", keep=True)


def test_the_grader_command_comes_from_the_workflow():
    commands = workflow_commands(REPO)
    workflow = (REPO / ".github" / "workflows" / "grade.yml").read_text(encoding="utf-8")
    assert "tito " + " ".join(commands.grade) in workflow
    assert commands.commit_back[0] == "grading.commit_back" and "main" in commands.commit_back


@pytest.mark.parametrize("args, message", [
    (["--pushes-per-module", "0"], "--pushes-per-module must be 1 or more (got 0)"),
    (["--through", "99"], "--through 99: no such module"),
    (["--students", "0"], "--students must be 1 or more"),
    (["--checkout-seconds", "-3"], "--checkout-seconds must be a number of seconds >= 0"),
])
def test_a_bad_option_is_a_clear_error(tmp_path, args, message):
    run = subprocess.run([sys.executable, "-m", "grading", "classroom", "cost", "--skip-milestones", *args],
                         cwd=REPO, env=clean_env(REPO), capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and message in run.stderr, run.stderr
    assert "Traceback" not in run.stderr


def test_milestones_without_data_are_a_clear_error(monkeypatch):
    monkeypatch.delenv("TINYTORCH_DATA", raising=False)
    with pytest.raises(CostError, match="the milestones need the data sets"):
        replay(CostOptions(through=1, data_dir=None), REPO, out=lambda line: None)
