"""Trusted results flowing back (issue 12, item 5): the roster's claim check and verified column, the student's
profile name as untrusted text, and the tinytorch/verified commit status, against tests/fake_github.py."""
from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fake_github import BOT, FakeGitHub, make_mini_course  # noqa: E402

from grading.course import load_course  # noqa: E402
from grading.instructor import classroom as C  # noqa: E402
from grading.instructor.github import GitHub  # noqa: E402
from grading.instructor.release import build_release  # noqa: E402

TOKEN = "ghp_verifiedTESTtoken00000000000000"


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    root = tmp_path_factory.mktemp("mini")
    course_dir = make_mini_course(root / "course")
    build_release(root / "release", course_dir)
    files = {p.relative_to(root / "release").as_posix(): p.read_bytes()
             for p in sorted((root / "release").rglob("*")) if p.is_file()}
    return course_dir, load_course(course_dir / "assignments/course.yaml"), files


@pytest.fixture
def fake(mini):
    with FakeGitHub(token=TOKEN) as server:
        server.add_repo("course", "mini", mini[2], is_template=True)
        yield server


@pytest.fixture
def gh(fake):
    return GitHub(TOKEN, fake.url, sleep=lambda s: None, min_write_interval=0, log=lambda m: None)


def progress(points: float, modules_ok: tuple, profile=None, commit="") -> bytes:
    data = {"modules": {m: {"passed": 2, "total": 2, "ok": True} for m in modules_ok},
            "totals": {"points": points}, "commit": {"sha": commit}}
    if profile is not None:
        data["profile"] = profile
    return json.dumps(data).encode()


def result(points, modules, verified=True, status="graded", commit="c" * 40, **kw) -> dict:
    return {"schema": 1, "repository": "org/mini-alice", "status": status, "points": points, "max_points": 10.0,
            "modules_passed": list(modules), "milestones_passed": [], "milestones": {}, "flags": [], "notes": [],
            "verified": verified, "commit": commit, **kw}


def roster_row(fake, gh, mini, progress_bytes, res) -> dict:
    _, course, _ = mini
    C.provision(gh, [C.Student("alice")], "course/mini", "org", "mini", log=lambda m: None)
    fake.push("org", "mini-alice", {"badges/progress.json": progress_bytes}, author=BOT)
    [row] = C.build_roster(gh, [C.Student("alice")], "org", "mini", "course/mini", course,
                           {"org/mini-alice": res} if res else None, log=lambda m: None)
    return row


# ---- the claim check ----------------------------------------------------------------------------------------
def test_claims_that_match_the_regrade(fake, gh, mini):
    row = roster_row(fake, gh, mini, progress(4, ("01_alpha",)), result(4.0, ["01_alpha"]))
    assert (row["points"], row["regrade_points"], row["regrade_verified"], row["claim_check"]) == \
        ("4", "4", "verified", "matches")


def test_inflated_badges_are_flagged_and_an_unsandboxed_regrade_is_unverified(fake, gh, mini):
    row = roster_row(fake, gh, mini, progress(10, ("01_alpha", "02_beta"), commit="d" * 40),
                     result(4.0, ["01_alpha"], verified=False))
    assert row["regrade_verified"] == "unverified"
    assert row["claim_check"] == ("badges claim 10 points, regrade gives 4; modules claimed but not passed in the "
                                  "regrade: 02_beta; (badges are for commit ddddddd, the regrade for ccccccc)")
    _, course, _ = mini
    md = C.to_markdown([row], course)
    assert "| 10/10 | 4/10 unverified | badges claim 10 points, regrade gives 4;" in md
    page = C.to_html([row], course)
    assert "<td class=warn>4/10 unverified</td>" in page and "<td class=bad>badges claim 10 points" in page
    assert list(csv.DictReader(io.StringIO(C.to_csv([row]))))[0]["regrade_verified"] == "unverified"


def test_a_result_without_the_verified_field_counts_as_unverified(fake, gh, mini):
    res = result(4.0, ["01_alpha"])
    del res["verified"]
    assert roster_row(fake, gh, mini, progress(4, ("01_alpha",)), res)["regrade_verified"] == "unverified"


# ---- the profile name: untrusted text -----------------------------------------------------------------------
HOSTILE = "=HYPERLINK(\"http://evil\",\"x\")|[click](http://evil)<img src=x onerror=alert(1)>\u202e\n# big" + "A" * 500


def test_profile_name_is_cleaned_capped_and_escaped_everywhere(fake, gh, mini):
    _, course, _ = mini
    row = roster_row(fake, gh, mini, progress(4, ("01_alpha",), profile={"name": HOSTILE}), None)
    name = row["profile_name"]
    assert len(name) == C.PROFILE_NAME_MAX and name.endswith("\u2026")
    assert "\u202e" not in name and "\n" not in name  # no bidi override, no line break
    cell = list(csv.DictReader(io.StringIO(C.to_csv([row]))))[0]["profile_name"]
    assert cell.startswith("'=")  # a spreadsheet shows text, never runs a formula
    md = C.to_markdown([row], course)
    student_row = md.splitlines()[-1]
    assert student_row.count(" | ") == md.splitlines()[-3].count(" | ")  # the pipe did not add a column
    import re
    assert not re.search(r"(?<!\\)[<>\[\]()]", student_row)  # every bracket escaped: no link, no HTML
    assert "\\[click\\]\\(http://evil\\)\\<img" in student_row
    page = C.to_html([row], course)
    assert "<img" not in page and "&lt;img src=" in page


@pytest.mark.parametrize("data, expected", [
    ({"profile": {"name": "  Ada \t Lovelace "}}, "Ada Lovelace"),
    ({"profile": {"name": 42}}, ""), ({"profile": "Ada"}, ""), ({}, ""), ([], ""),
    ({"profile": {"name": "Zoë 李"}}, "Zoë 李"),
])
def test_profile_name_shapes(data, expected):
    assert C.profile_name(data) == expected


def test_progress_that_is_not_an_object_does_not_break_the_roster(fake, gh, mini):
    row = roster_row(fake, gh, mini, b"[1, 2, 3]", result(4.0, ["01_alpha"]))
    assert row["points"] == "0" and row["claim_check"].startswith("badges claim 0 points, regrade gives 4")


# ---- the commit status --------------------------------------------------------------------------------------
@pytest.mark.parametrize("res, state, description", [
    (result(42.5, [], milestones_passed=[1, 3], max_points=100.0), "success", "verified 42.5/100, 2/5 milestones"),
    (result(42.5, [], verified=False, max_points=100.0), "failure",
     "unverified 42.5/100, 0/5 milestones: the regrade ran without a sandbox"),
    (result(3.0, [], status="graded with a crash", max_points=100.0), "error",
     "unverified: the regrade graded with a crash (3/100, 0/5 milestones before it stopped)"),
])
def test_verified_status_wording(res, state, description):
    assert C.verified_status(res, 5) == (state, description)


def test_status_is_posted_on_the_graded_commit(fake, gh, mini):
    C.provision(gh, [C.Student("alice")], "course/mini", "org", "mini", log=lambda m: None)
    graded = fake.push("org", "mini-alice", {"tinytorch/alpha.py": b"# mine\n"}, author="alice").sha
    newer = fake.push("org", "mini-alice", {"notes.txt": b"later\n"}, author="alice").sha
    posted = C.post_verified_status(gh, result(4.0, ["01_alpha"], commit=graded), 0)
    assert posted["state"] == "success" and posted["context"] == "tinytorch/verified"
    statuses = fake.repo("org", "mini-alice").statuses
    assert list(statuses) == [graded] and newer not in statuses
    assert statuses[graded][0]["description"] == "verified 4/10, 0/0 milestones"
    assert C.post_verified_status(gh, result(0.0, [], status="clone failed", commit=None), 0) is None
    # the unverified wording fits GitHub's 140 characters (the fake refuses longer ones, as GitHub does)
    long = result(4.0, [], status="graded with a crash " + "x" * 200, commit=graded)
    assert len(C.post_verified_status(gh, long, 5)["description"]) == 140


def test_regrade_post_status_through_the_command_line(fake, gh, mini, tmp_path, monkeypatch, capsys):
    """`tito classroom regrade --repo --post-status`: the status lands on the commit the regrade cloned, with
    the wording of its result (verified or not, whatever this machine's regrade could do); no token printed."""
    import os
    import subprocess
    from grading.cli import main
    course_dir, course, _ = mini
    C.provision(gh, [C.Student("alice")], "course/mini", "org", "mini", log=lambda m: None)
    work = tmp_path / "alice"
    build_release(work, course_dir, solutions_through=1)
    env = {**os.environ, "GIT_AUTHOR_NAME": "a", "GIT_AUTHOR_EMAIL": "a@e", "GIT_COMMITTER_NAME": "a",
           "GIT_COMMITTER_EMAIL": "a@e"}
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "my work"]):
        subprocess.run(["git", "-C", str(work), *args], check=True, capture_output=True, env=env)
    sha = subprocess.run(["git", "-C", str(work), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    fake.state.adopt_commit("org", "mini-alice", sha)
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    monkeypatch.setenv("GITHUB_API_URL", fake.url)
    rc = main(["classroom", "regrade", "--repo", "org/mini-alice", "--clone-url", f"file://{work}", "--post-status",
               "--results", str(tmp_path / "results"), "--instructor-dir", str(course_dir)])
    out = capsys.readouterr()
    assert rc == 0, out.out + out.err
    res = json.loads((tmp_path / "results" / "org__mini-alice.json").read_text())
    assert res["commit"] == sha and res["points"] == 4.0
    [status] = fake.repo("org", "mini-alice").statuses[sha]
    assert (status["state"], status["description"]) == C.verified_status(res, len(course.milestones))
    assert status["context"] == "tinytorch/verified" and "commit status tinytorch/verified" in out.out
    assert TOKEN not in out.out + out.err
