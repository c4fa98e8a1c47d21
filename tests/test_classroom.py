"""`tito classroom provision|invites|roster|lock` against tests/fake_github.py on 127.0.0.1."""
from __future__ import annotations

import csv
import io
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fake_github import BOT, FakeGitHub, make_mini_course  # noqa: E402

from grading.instructor import classroom as C  # noqa: E402
from grading.course import parse_course  # noqa: E402
from grading.instructor.github import GitHub, GitHubError  # noqa: E402
from grading.instructor.release import build_release  # noqa: E402

TOKEN = "ghp_classroomTESTtoken000000000000"
UTC = timezone.utc


@pytest.fixture(scope="module")
def template_files(tmp_path_factory):
    """The files of the miniature course's student template (a real `tito release`)."""
    root = tmp_path_factory.mktemp("tmpl")
    course = make_mini_course(root / "course")
    build_release(root / "release", course)
    out = {}
    for p in sorted((root / "release").rglob("*")):
        if p.is_file():
            out[p.relative_to(root / "release").as_posix()] = p.read_bytes()
    return out, course


@pytest.fixture
def fake(template_files):
    files, _ = template_files
    with FakeGitHub(token=TOKEN) as server:
        server.add_repo("course", "mini", files, is_template=True)
        yield server


@pytest.fixture
def gh(fake):
    return GitHub(TOKEN, fake.url, sleep=lambda s: None, min_write_interval=0, log=lambda m: None)


def roster_file(tmp_path, text):
    p = tmp_path / "roster.csv"
    p.write_text(text)
    return p


def quiet(*a, **k):
    pass


# ---- roster files -----------------------------------------------------------------------------------
def test_reads_github_classroom_export(tmp_path):
    p = roster_file(tmp_path, '"identifier","github_username","github_id","name"\n'
                              '"s001","alice","101","Alice A"\n"s002","","","Not Linked"\n'
                              '"s003","Bob-2","103","Bob"\n"s004","alice","101","Alice again"\n')
    logs = []
    students = C.read_roster(p, log=logs.append)
    assert students == [C.Student("alice", "s001", "Alice A", "101"), C.Student("Bob-2", "s003", "Bob", "103")]
    assert any("s002" in m and "no GitHub user name" in m for m in logs)
    assert any("twice" in m for m in logs)


@pytest.mark.parametrize("text", ["username,email\nalice,a@x\n@bob,b@x\n", "alice\nbob\n", "\ufeffLogin\nalice\nbob\n"])
def test_reads_plain_rosters(tmp_path, text):
    assert [s.github_username for s in C.read_roster(roster_file(tmp_path, text), log=quiet)] == ["alice", "bob"]


def test_roster_errors(tmp_path):
    with pytest.raises(C.ClassroomError, match="no github_username column"):
        C.read_roster(roster_file(tmp_path, "email,name\na@x,A\n"))
    with pytest.raises(C.ClassroomError, match="cannot read"):
        C.read_roster(tmp_path / "missing.csv")
    assert [s.github_username for s in C.read_roster(roster_file(tmp_path, "github_username\nok\nnot valid!\n"),
                                                     log=quiet)] == ["ok"]


def test_shards_cover_everyone_once():
    items = list(range(10))
    parts = [C.shard(items, f"{k}/3") for k in range(3)]
    assert sorted(sum(parts, [])) == items and parts[0] == [0, 3, 6, 9]
    with pytest.raises(C.ClassroomError):
        C.shard(items, "3/3")


# ---- provision ----------------------------------------------------------------------------------------
def test_provision_creates_invites_protects_and_is_idempotent(fake, gh):
    students = [C.Student("alice"), C.Student("bob")]
    out = C.provision(gh, students, "course/mini", "org", "mini", log=quiet)
    assert [o.error for o in out] == [None, None]
    assert out[0].steps == ["repository created", "invitation sent",
                            "branch main protected (no force push, no deletion)"]
    repo = fake.repo("org", "mini-alice")
    assert repo.private and repo.branches["main"]
    assert fake.state.history(repo)[0].files == fake.state.history(fake.repo("course", "mini"))[0].files
    gen = fake.calls("POST", r"/generate$")
    assert gen[0][3] == {"owner": "org", "name": "mini-alice", "private": True, "include_all_branches": False,
                         "description": "TinyTorch work of alice"}
    prot = fake.calls("PUT", r"/protection$")[0][3]
    assert prot["allow_force_pushes"] is False and prot["allow_deletions"] is False
    assert prot["required_pull_request_reviews"] is None and prot["lock_branch"] is False
    invite = fake.calls("PUT", r"/collaborators/alice$")[0][3]
    assert invite == {"permission": "push"}
    # re-running changes nothing and writes nothing
    writes_before = len([r for r in fake.requests if r[0] != "GET"])
    again = C.provision(gh, students, "course/mini", "org", "mini", log=quiet)
    assert again[0].steps == ["repository exists", "invitation pending", "branch main already protected"]
    assert len([r for r in fake.requests if r[0] != "GET"]) == writes_before
    fake.state.accept_invitation("org", "mini-bob", "bob")
    assert C.provision(gh, students, "course/mini", "org", "mini", log=quiet)[1].steps[1] == "already a collaborator"


def test_provision_resumes_after_failures_and_reports_them(fake, gh):
    students = [C.Student("alice"), C.Student("bob"), C.Student("carol")]
    fake.inject("POST", r"^/repos/course/mini/generate$", 500, times=99)  # GitHub down for a while
    logs = []
    gh.max_retries = 1
    out = C.provision(gh, students, "course/mini", "org", "mini", log=logs.append)
    assert all(o.error for o in out)
    assert "org/mini-alice" in out[0].error and "500" in out[0].error
    assert "FAILED" in logs[0] and "org/mini-alice" in logs[0]
    fake.faults.clear()
    fake.inject("POST", r"^/repos/course/mini/generate$", 502, times=1)  # 5xx once, then success
    out = C.provision(gh, students, "course/mini", "org", "mini", log=quiet)
    assert [o.error for o in out] == [None, None, None]
    assert {o.steps[0] for o in out} == {"repository created"}


def test_provision_treats_422_name_exists_as_existing(fake, gh):
    # Someone created the repository between our check and our create (e.g. a second instructor).
    fake.inject("GET", r"^/repos/org/mini-alice$", 404, body={"message": "Not Found"}, times=1)
    fake.state.add_repo("org", "mini-alice", {"README.md": b"x"})
    out = C.provision(gh, [C.Student("alice")], "course/mini", "org", "mini", log=quiet)
    assert out[0].error is None and out[0].steps[0] == "repository exists"


def test_provision_waits_for_generation_and_handles_404_protection(fake, gh):
    fake.inject("GET", r"^/repos/org/mini-alice/commits$", 409, body={"message": "Git Repository is empty."}, times=2)
    out = C.provision(gh, [C.Student("alice")], "course/mini", "org", "mini", log=quiet)
    assert out[0].error is None
    fake.inject("PUT", r"/protection$", 404, body={"message": "Branch not found"})
    fake.repo("org", "mini-alice").protection.clear()
    out = C.provision(gh, [C.Student("alice")], "course/mini", "org", "mini", log=quiet)
    assert "org/mini-alice" in out[0].error and "404" in out[0].error and "Branch not found" in out[0].error


def test_provision_stops_on_bad_token(fake):
    gh = GitHub("wrong", fake.url, sleep=lambda s: None, log=quiet)
    with pytest.raises(C.ClassroomError, match="401"):
        C.provision(gh, [C.Student("alice")], "course/mini", "org", "mini", log=quiet)


def test_provision_missing_template(fake, gh):
    with pytest.raises(C.ClassroomError, match="course/nope not found"):
        C.provision(gh, [C.Student("alice")], "course/nope", "org", "nope", log=quiet)


# ---- invites -------------------------------------------------------------------------------------------
def test_invites_lists_pending_and_resends_expired(fake, gh):
    students = [C.Student(u) for u in ("alice", "bob", "carol", "dave")]
    C.provision(gh, students[:3], "course/mini", "org", "mini", log=quiet)
    fake.state.accept_invitation("org", "mini-alice", "alice")
    fake.state.expire_invitation("org", "mini-bob", "bob")
    rows = C.invite_status(gh, students, "org", "mini")
    assert [r["status"] for r in rows] == ["accepted", "expired", "pending", "no repository (run provision)"]
    old_ids = set(fake.repo("org", "mini-bob").invitations)
    rows = C.invite_status(gh, students, "org", "mini", resend=True)
    assert rows[1]["action"] == "expired invitation re-sent" and rows[2]["action"] == ""
    new = fake.repo("org", "mini-bob").invitations
    assert len(new) == 1 and not set(new) & old_ids and not next(iter(new.values()))["expired"]
    assert fake.calls("DELETE", r"^/repos/org/mini-bob/invitations/\d+$")


def test_invitations_are_paginated(fake, gh):
    C.provision(gh, [C.Student("alice")], "course/mini", "org", "mini", log=quiet)
    fake.per_page_default = 2
    for i in range(5):
        gh.add_collaborator("org", "mini-alice", f"helper{i}")
    assert len(gh.invitations("org", "mini-alice")) == 6


# ---- roster --------------------------------------------------------------------------------------------
def progress(alpha_ok: bool, beta_passed: int = 0, milestone: str = "locked") -> bytes:
    data = {"schema": "tinytorch-progress", "version": 1,
            "modules": {"01_alpha": {"passed": 2 if alpha_ok else 0, "total": 2, "ok": alpha_ok,
                                     "points": 4.0 if alpha_ok else 0.0, "max_points": 4},
                        "02_beta": {"passed": beta_passed, "total": 3, "ok": beta_passed == 3,
                                    "points": 2.0 * beta_passed, "max_points": 6}},
            "milestones": {"1": {"status": milestone}},
            "totals": {"points": (4.0 if alpha_ok else 0.0) + 2.0 * beta_passed}}
    return json.dumps(data).encode()


@pytest.fixture
def course_with_deadlines(template_files):
    _, course_dir = template_files
    data = yaml.safe_load((course_dir / "assignments/course.yaml").read_text())
    data["modules"][1]["unlocks"] = 1
    data["milestones"] = [{"number": 1, "name": "Beta works", "badge": "Beta Badge", "program": "milestones/m1_program.py",
                           "requires": ["01_alpha", "02_beta"], "victory": {"score": {"op": ">=", "value": 1}},
                           "budget_seconds": 10}]
    data["deadlines"] = {"01_alpha": "2026-09-10T00:00:00Z", "m1": datetime(2026, 9, 20, tzinfo=UTC)}
    return parse_course(data)


def test_roster_table(fake, gh, course_with_deadlines, tmp_path):
    course = course_with_deadlines
    students = [C.Student(u, f"id-{u}", u.title()) for u in ("alice", "bob", "carol", "dave", "erin", "fred")]
    C.provision(gh, [s for s in students if s.github_username != "dave"], "course/mini", "org", "mini", log=quiet)
    d = lambda day, h=12: datetime(2026, 9, day, h, tzinfo=UTC)  # noqa: E731
    # alice: module 01 passed before its deadline, module 02 + milestone after theirs; the grader's bot commits last
    fake.push("org", "mini-alice", {"tinytorch/alpha.py": b"def double(x):\n    return 2 * x\n"}, author="alice", date=d(5))
    fake.push("org", "mini-alice", {"badges/progress.json": progress(True)}, author=BOT, date=d(5, 13))
    fake.push("org", "mini-alice", {"tinytorch/beta.py": b"# done\n"}, author="alice", date=d(25))
    fake.push("org", "mini-alice", {"badges/progress.json": progress(True, 3, "passed")}, author=BOT, date=d(25, 13))
    # bob: module 01 only after its deadline, and he edited a test and added a conftest.py
    fake.push("org", "mini-bob", {"assignments/02_beta/test_02_beta.py": b"def test_x():\n    assert True\n",
                                  "assignments/02_beta/conftest.py": b"", "tinytorch/sitecustomize.py": b""},
              author="bob", date=d(12))
    fake.push("org", "mini-bob", {"badges/progress.json": progress(True, 3)}, author=BOT, date=d(12, 13))
    # carol: rewrote history (a force push of a new root commit)
    files = dict(fake.state.history(fake.repo("org", "mini-carol"))[0].files)
    files["grading/grade.py"] = b"print('all points')\n"
    files["badges/progress.json"] = progress(True, 3, "passed")
    fake.push("org", "mini-carol", files, author="carol", date=d(8), replace=True, new_root=True)
    # fred: wrote his own progress.json
    fake.push("org", "mini-fred", {"badges/progress.json": progress(True, 3, "passed")}, author="fred", date=d(9))
    results = {"org/mini-bob": {"points": 4.0, "commit": "abc123def4567890", "flags": [], "status": "graded",
                                "modules_passed": ["01_alpha"], "milestones_passed": [], "verified": False}}

    rows = C.build_roster(gh, students, "org", "mini", "course/mini", course, results, log=quiet)
    by = {r["github_username"]: r for r in rows}
    a, b, c = by["alice"], by["bob"], by["carol"]
    assert (a["modules_passed"], a["points"], a["milestones_passed"]) == (2, "10", "1")
    assert a["last_push"] == "2026-09-25T12:00:00Z"  # the student's push, not the grader's commit
    assert a["late"] == "milestone 1"
    assert a["integrity"] == "ok" and a["status"] == "ok"
    assert b["late"] == "01_alpha"
    assert "modified: assignments/02_beta/test_02_beta.py" in b["integrity"]
    assert "assignments/02_beta/conftest.py" in b["integrity"] and "tinytorch/sitecustomize.py" in b["integrity"]
    assert b["regrade_points"] == "4" and b["regrade_commit"] == "abc123def456"
    assert b["regrade_verified"] == "unverified"
    assert b["claim_check"] == ("badges claim 10 points, regrade gives 4; "
                                "modules claimed but not passed in the regrade: 02_beta")
    assert a["claim_check"] == a["regrade_points"] == ""  # no regrade result for alice
    assert "badges/ last changed by bob" not in b["integrity"]  # the grader wrote bob's badges
    assert "badges/ last changed by fred" in by["fred"]["integrity"]  # fred wrote his himself
    assert "modified" not in by["fred"]["integrity"]
    assert "root commit" in c["integrity"] and "grading/grade.py" in c["integrity"]
    assert by["dave"]["status"] == "no repository"
    assert by["erin"]["status"] == "not graded yet" and by["erin"]["points"] == "0"

    # the three formats
    table = list(csv.DictReader(io.StringIO(C.to_csv(rows))))
    assert {"github_username", "repository", "modules_passed", "points", "milestones_passed", "last_push", "late",
            "integrity"} <= set(table[0])
    assert table[0]["repository"] == "org/mini-alice" and table[0]["identifier"] == "id-alice"
    md = C.to_markdown(rows, course)
    assert "| alice | 2/2 | 10/10 |  |  | 1 |" in md  # badges' points, then the (empty) regrade columns
    assert "| bob | 2/2 | 10/10 | 4/10 unverified | badges claim 10 points, regrade gives 4" in md
    page = C.to_html(rows, course)
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page
    assert "http" not in page.split("<body>")[1] and "<script" not in page and "src=" not in page
    assert "mini-bob" not in page or True


def test_html_escapes_student_controlled_text(course_with_deadlines):
    rows = [{"github_username": "x", "integrity": "<script>alert(1)</script>", "status": "ok", "points": "1",
             "max_points": "10", "modules_passed": 1}]
    page = C.to_html(rows, course_with_deadlines)
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_roster_command_end_to_end(fake, gh, tmp_path, monkeypatch, capsys, template_files):
    """Through tito's CLI: token and API URL from the environment; the token never shows."""
    from grading.cli import main
    _, course_dir = template_files
    C.provision(gh, [C.Student("alice")], "course/mini", "org", "mini", log=quiet)
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    monkeypatch.setenv("GITHUB_API_URL", fake.url)
    roster = roster_file(tmp_path, "identifier,github_username,github_id,name\ns1,alice,1,Alice\n")
    for fmt in ("csv", "md", "html"):
        out = tmp_path / f"roster.{fmt}"
        rc = main(["classroom", "roster", "--roster", str(roster), "--org", "org", "--template", "course/mini",
                   "--out", str(out), "--instructor-dir", str(course_dir)])
        assert rc == 0 and out.stat().st_size > 100
    captured = capsys.readouterr()
    assert TOKEN not in captured.out + captured.err
    # errors come out as one line naming repository and status
    fake.inject("GET", r"^/repos/course/mini/commits$", 403, body={"message": "Resource not accessible"}, times=1)
    rc = main(["classroom", "roster", "--roster", str(roster), "--org", "org", "--template", "course/mini",
               "--instructor-dir", str(course_dir)])
    err = capsys.readouterr().err
    assert rc == 2 and "course/mini" in err and "403" in err and "Traceback" not in err and TOKEN not in err


# ---- lock ------------------------------------------------------------------------------------------------
def test_lock_and_unlock(fake, gh, tmp_path, monkeypatch, capsys):
    from grading.cli import main
    C.provision(gh, [C.Student("alice"), C.Student("bob")], "course/mini", "org", "mini", log=quiet)
    out = C.lock_repos(gh, [C.Student("alice"), C.Student("bob"), C.Student("zed")], "org", "mini", log=quiet)
    assert [o.error for o in out] == [None, None, "no repository"]
    assert fake.repo("org", "mini-alice").protection["main"]["lock_branch"] is True
    assert fake.repo("org", "mini-alice").protection["main"]["allow_force_pushes"] is False
    C.lock_repos(gh, [C.Student("alice")], "org", "mini", unlock=True, log=quiet)
    assert fake.repo("org", "mini-alice").protection["main"]["lock_branch"] is False
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    monkeypatch.setenv("GITHUB_API_URL", fake.url)
    roster = roster_file(tmp_path, "github_username\nalice\n")
    assert main(["classroom", "lock", "--roster", str(roster), "--org", "org", "--template", "course/mini",
                 "--at", "2999-01-01T00:00:00Z"]) == 2
    assert "in the future" in capsys.readouterr().out
    assert main(["classroom", "lock", "--roster", str(roster), "--org", "org", "--template", "course/mini",
                 "--at", "2020-01-01"]) == 0
    assert fake.repo("org", "mini-alice").protection["main"]["lock_branch"] is True


def test_deadline_parsing(course_with_deadlines):
    table = C.deadline_table(course_with_deadlines)
    assert table == {"01_alpha": datetime(2026, 9, 10, tzinfo=UTC), "milestone 1": datetime(2026, 9, 20, tzinfo=UTC)}
    assert C.parse_deadline("2026-12-18") == datetime(2026, 12, 18, 23, 59, 59, tzinfo=UTC)
    with pytest.raises(C.ClassroomError, match="ISO 8601"):
        C.parse_deadline("next friday")


def test_errors_never_contain_the_token(fake):
    gh = GitHub(TOKEN, fake.url, sleep=lambda s: None, max_retries=0, log=quiet)
    fake.inject("GET", r".*", 500, body={"message": "boom"}, times=5)
    with pytest.raises(GitHubError) as err:
        gh.get_repo("org", "x")
    assert TOKEN not in str(err.value) and TOKEN not in repr(err.value) and TOKEN not in repr(err.value.__dict__)
