"""`tito classroom enroll`: the self-service "Join the course" issue, against tests/fake_github.py."""
from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fake_github import FakeGitHub, make_mini_course  # noqa: E402

from grading.instructor import classroom as C  # noqa: E402
from grading.instructor.github import GitHub  # noqa: E402
from grading.instructor.release import build_release  # noqa: E402

TOKEN = "ghp_enrollTESTtoken0000000000000000"


@pytest.fixture(scope="module")
def course_dir(tmp_path_factory):
    return make_mini_course(tmp_path_factory.mktemp("course") / "course")


@pytest.fixture(scope="module")
def template_files(tmp_path_factory, course_dir):
    out = tmp_path_factory.mktemp("release") / "release"
    build_release(out, course_dir)
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


@pytest.fixture
def fake(template_files):
    with FakeGitHub(token=TOKEN) as server:
        server.add_repo("course", "mini", template_files, is_template=True)
        server.add_repo("course", "join", {"README.md": b"Open a Join the course issue.\n"}, private=False)
        yield server


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def gh(fake, sleeps):
    return GitHub(TOKEN, fake.url, sleep=sleeps.append, min_write_interval=0, log=lambda m: None)


def quiet(*a, **k):
    pass


def join(fake, tmp_path, login, body="", **kw) -> Path:
    """`login` opens a Join issue; the event payload file the workflow would get."""
    event = fake.state.open_issue("course", "join", login, body=body, **kw)
    path = tmp_path / f"event-{login}-{event['issue']['number']}.json"
    path.write_text(json.dumps(event))
    return path


def enroll(gh, event_path, roster=None):
    return C.enroll(gh, C.read_join_event(event_path), "course/mini", "org", "mini", roster, "Mini Course", log=quiet)


def writes(fake):
    return [r for r in fake.requests if r[0] != "GET"]


# ---- a new student, then the same student again ----------------------------------------------------------
def test_new_student_gets_a_private_protected_repository_an_invitation_and_an_answer(fake, gh, sleeps, tmp_path):
    fake.generate_delay = 3  # `generate` has not finished when we first look
    out = enroll(gh, join(fake, tmp_path, "alice"))
    assert out.error is None and out.repository == "org/mini-alice"
    assert out.steps == ["repository created", "invitation sent", "branch main protected (no force push, no deletion)",
                         "issue answered", "issue closed"]
    assert len(fake.calls("POST", r"/generate$")) == 1
    repo = fake.repo("org", "mini-alice")
    assert repo.private and repo.branches["main"]
    template = fake.repo("course", "mini")
    assert fake.state.history(repo)[0].files == fake.state.history(template)[0].files
    assert sleeps, "the new repository was not waited for"
    assert [i["invitee"]["login"] for i in repo.invitations.values()] == ["alice"]
    assert fake.calls("PUT", r"/collaborators/alice$")[0][3] == {"permission": "push"}
    assert repo.protection["main"]["allow_force_pushes"] is False and repo.protection["main"]["allow_deletions"] is False
    issue = fake.repo("course", "join").issues[1]
    assert issue["state"] == "closed" and issue["state_reason"] == "completed"
    [comment] = issue["comments"]
    body = comment["body"]
    assert "@alice" in body and "https://github.com/org/mini-alice" in body
    assert "https://github.com/org/mini-alice/invitations" in body
    assert "git clone https://github.com/org/mini-alice.git" in body
    assert 'pip install -e ".[test]"' in body and "tito module start 01" in body and "Mini Course" in body


def test_the_same_student_again_gets_the_existing_repository_and_nothing_is_created(fake, gh, tmp_path):
    enroll(gh, join(fake, tmp_path, "alice"))
    before = len(writes(fake))
    out = enroll(gh, join(fake, tmp_path, "Alice"))  # GitHub logins are case-insensitive
    assert out.steps[:3] == ["repository exists", "invitation pending", "branch main already protected"]
    assert len(fake.calls("POST", r"/generate$")) == 1
    assert len(fake.calls("PUT", r"/collaborators/")) == 1 and len(fake.repo("org", "mini-alice").invitations) == 1
    new_writes = [(m, p) for m, p, _, _ in writes(fake)[before:]]
    assert new_writes == [("POST", "/repos/course/join/issues/2/comments"), ("PATCH", "/repos/course/join/issues/2")]
    second = fake.repo("course", "join").issues[2]
    assert "already have a repository" in second["comments"][0]["body"] and second["state"] == "closed"
    # after accepting, the answer no longer asks to accept an invitation
    fake.state.accept_invitation("org", "mini-alice", "alice")
    enroll(gh, join(fake, tmp_path, "alice"))
    assert "/invitations" not in fake.repo("course", "join").issues[3]["comments"][0]["body"]


def test_a_rerun_on_the_same_issue_does_not_answer_twice(fake, gh, tmp_path):
    event = join(fake, tmp_path, "alice")
    enroll(gh, event)
    out = enroll(gh, event)
    assert "issue already answered" in out.steps
    assert len(fake.repo("course", "join").issues[1]["comments"]) == 1


# ---- who is enrolled --------------------------------------------------------------------------------------
def test_a_student_not_on_the_roster_is_refused_politely_and_nothing_is_created(fake, gh, tmp_path):
    roster = [C.Student("alice"), C.Student("bob")]
    out = enroll(gh, join(fake, tmp_path, "mallory"), roster)
    assert out.steps == ["not on the roster: refused, nothing created"]
    assert fake.repo("org", "mini-mallory") is None
    assert not fake.calls("POST", r"/generate$") and not fake.calls("PUT", r"/collaborators/")
    issue = fake.repo("course", "join").issues[1]
    assert issue["state"] == "closed" and issue["state_reason"] == "not_planned"
    body = issue["comments"][0]["body"]
    assert "@mallory" in body and "not on this course's roster" in body and "no repository was made" in body
    assert enroll(gh, join(fake, tmp_path, "BOB"), roster).steps[0] == "repository created"


def test_a_body_naming_someone_else_changes_nothing(fake, gh, tmp_path):
    roster = [C.Student("alice"), C.Student("victim")]
    event = join(fake, tmp_path, "mallory", title="Join the course as victim",
                 body="### GitHub user name\n\nvictim\n\n@victim `--org evil` $(curl evil) \"; rm -rf /")
    out = enroll(gh, event, roster)
    assert out.steps == ["not on the roster: refused, nothing created"]
    assert fake.repo("org", "mini-victim") is None and not fake.calls("PUT", r"/collaborators/")
    out = enroll(gh, event)  # without a roster: mallory gets mallory's repository, never victim's
    assert out.repository == "org/mini-mallory"
    assert fake.repo("org", "mini-victim") is None
    assert [i["invitee"]["login"] for i in fake.repo("org", "mini-mallory").invitations.values()] == ["mallory"]


@pytest.mark.parametrize("change, message", [
    (lambda e: e["sender"].update(type="Bot", login="dependabot[bot]"), "not by a GitHub user account"),
    (lambda e: e.update(action="edited"), "newly opened issues only"),
    (lambda e: e.pop("sender"), "not an `issues` event payload"),
    (lambda e: e["sender"].update(login="../../etc"), "not by a GitHub user account"),
])
def test_event_payload_checks(fake, tmp_path, change, message):
    event = json.loads(join(fake, tmp_path, "alice").read_text())
    change(event)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(event))
    with pytest.raises(C.ClassroomError, match=message.replace("[", r"\[")):
        C.read_join_event(bad)
    bad.write_text("{not json")
    with pytest.raises(C.ClassroomError, match="cannot read the event payload"):
        C.read_join_event(bad)


# ---- GitHub being GitHub ----------------------------------------------------------------------------------
def test_rate_limits_and_server_errors_on_the_way(fake, gh, sleeps, tmp_path):
    fake.inject("POST", r"^/repos/course/mini/generate$", 429, headers={"Retry-After": "5"},
                body={"message": "You have exceeded a secondary rate limit."})
    fake.inject("PUT", r"/collaborators/alice$", 403, headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": "0"},
                body={"message": "API rate limit exceeded"})
    fake.inject("POST", r"/issues/1/comments$", 502, body={"message": "Server Error"})
    out = enroll(gh, join(fake, tmp_path, "alice"))
    assert out.steps[-2:] == ["issue answered", "issue closed"]
    assert 5.0 in sleeps and 1.0 in sleeps  # Retry-After honoured; the 502 retried after a second
    assert len(fake.calls("POST", r"/generate$")) == 2 and len(fake.repo("course", "join").issues[1]["comments"]) == 1


# ---- through tito's command line: the token never shows -----------------------------------------------------
def test_cli_enroll_and_the_token_never_appears(fake, tmp_path, monkeypatch, capsys, caplog, course_dir):
    from grading.cli import main
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    monkeypatch.setenv("GITHUB_API_URL", fake.url)
    roster = tmp_path / "roster.csv"
    roster.write_text("github_username\nalice\n")
    fake.inject("GET", r"^/repos/org/mini-alice$", 429, headers={"Retry-After": "0"})
    argv = ["classroom", "enroll", "--template", "course/mini", "--org", "org", "--roster", str(roster),
            "--instructor-dir", str(course_dir)]
    assert main(argv + ["--event", str(join(fake, tmp_path, "alice"))]) == 0
    assert fake.repo("org", "mini-alice") is not None
    assert main(argv + ["--event", str(join(fake, tmp_path, "mallory"))]) == 0
    # a token without the permission to create repositories: a clean one-line error, exit 2, the issue stays
    # open with an apology
    fake.inject("POST", r"/generate$", 403, body={"message": "Resource not accessible by personal access token"})
    roster.write_text("github_username\nalice\ncarol\n")
    assert main(argv + ["--event", str(join(fake, tmp_path, "carol"))]) == 2
    captured = capsys.readouterr()
    assert "org/mini-alice" in captured.out and "mallory is not on the roster" in captured.out
    assert "403" in captured.err and "Resource not accessible" in captured.err and "Traceback" not in captured.err
    carol = fake.repo("course", "join").issues[3]
    assert carol["state"] == "open" and "did not finish" in carol["comments"][0]["body"]
    everything = captured.out + captured.err + caplog.text + json.dumps(
        [i["comments"] for i in fake.repo("course", "join").issues.values()])
    assert TOKEN not in everything and TOKEN[4:20] not in everything
    # --org defaults to the template's owner
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    fake.faults.clear()
    assert main(["classroom", "enroll", "--template", "course/mini", "--instructor-dir", str(course_dir),
                 "--event", str(join(fake, tmp_path, "dave"))]) == 0
    assert fake.repo("course", "mini-dave") is not None


# ---- the enroll workflow and the issue form ---------------------------------------------------------------
REPO = Path(__file__).resolve().parent.parent
WORKFLOW = REPO / ".github" / "workflows" / "enroll.yml"
FORM = REPO / ".github" / "ISSUE_TEMPLATE" / "join-the-course.yml"


def _tool(name: str) -> str:
    import shutil
    path = shutil.which(name) or (str(Path(sys.executable).parent / name)
                                  if (Path(sys.executable).parent / name).exists() else None)
    if path is None:
        pytest.skip(f"{name} is not installed (it comes with the test extras: pip install -e '.[dev]')")
    return path


def _yaml(path: Path) -> dict:
    import yaml
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if True in data:
        data["on"] = data.pop(True)  # YAML 1.1 reads the key `on` as True
    return data


@pytest.mark.parametrize("command", [
    lambda: [_tool("actionlint"), str(WORKFLOW)],
    lambda: [_tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)],
    lambda: [_tool("check-jsonschema"), "--builtin-schema", "vendor.github-issue-forms", str(FORM)],
], ids=["actionlint", "workflow-schema", "issue-form-schema"])
def test_workflow_and_form_lint_clean(command):
    import subprocess
    result = subprocess.run(command(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_workflow_is_safe_by_construction():
    wf, form = _yaml(WORKFLOW), _yaml(FORM)
    assert wf["on"] == {"issues": {"types": ["opened"]}}
    assert wf["permissions"] == {}  # the job uses its own token only; GITHUB_TOKEN gets nothing
    [job] = wf["jobs"].values()
    [label] = form["labels"]
    assert job["if"] == f"contains(github.event.issue.labels.*.name, '{label}')"
    assert isinstance(job["timeout-minutes"], int)
    for step in job["steps"]:
        assert "${{" not in step.get("run", ""), f"expression interpolated into a shell line: {step['run']!r}"
        for value in (step.get("env") or {}).values():
            assert "github.event" not in value  # nothing the student typed reaches the environment either
    enroll_step = next(s for s in job["steps"] if "tito classroom enroll" in s.get("run", ""))
    assert enroll_step["env"]["GITHUB_TOKEN"] == "${{ secrets.CLASSROOM_TOKEN }}"
    assert '--event "${GITHUB_EVENT_PATH}"' in enroll_step["run"]
    checkout = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/checkout"))
    assert checkout["with"]["persist-credentials"] is False


def test_workflow_step_runs_locally(fake, tmp_path, course_dir):
    """The workflow's own script, with the environment the runner gives it, against the fake GitHub."""
    import os
    import stat
    import subprocess
    script = next(s for s in next(iter(_yaml(WORKFLOW)["jobs"].values()))["steps"]
                  if "tito classroom enroll" in s.get("run", ""))["run"]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "tito"
    shim.write_text(f"#!/bin/sh\nexec {sys.executable} -m grading \"$@\"\n")
    shim.chmod(shim.stat().st_mode | stat.S_IEXEC)
    (course_dir / "roster.csv").write_text("github_username\nalice\n")
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(course_dir),
           "GITHUB_TOKEN": TOKEN, "GITHUB_API_URL": fake.url, "TEMPLATE": "course/mini", "ORG": "org",
           "PREFIX": "fall26-tinytorch", "ROSTER": "roster.csv"}
    for login, repo in (("alice", "org/fall26-tinytorch-alice"), ("mallory", None)):
        event = join(fake, tmp_path, login, body='$(touch pwned) `touch pwned` "; touch pwned')
        res = subprocess.run(["bash", "-c", script], cwd=course_dir, capture_output=True, text=True, timeout=120,
                             env={**env, "GITHUB_EVENT_PATH": str(event)})
        assert res.returncode == 0, res.stdout + res.stderr
        assert TOKEN not in res.stdout + res.stderr
    assert fake.repo("org", "fall26-tinytorch-alice") is not None and fake.repo("org", "fall26-tinytorch-mallory") is None
    assert not (course_dir / "pwned").exists() and not (tmp_path / "pwned").exists()
    env.pop("PREFIX"), env.pop("ROSTER")
    res = subprocess.run(["bash", "-c", script], cwd=course_dir, capture_output=True, text=True, timeout=120,
                         env={**env, "PREFIX": "", "ROSTER": "", "GITHUB_EVENT_PATH": str(join(fake, tmp_path, "bob"))})
    assert res.returncode == 0, res.stdout + res.stderr
    assert fake.repo("org", "mini-bob") is not None  # empty variables: the defaults
