"""Classroom 50 as a front end: its roster file, its repository naming `<classroom>-<assignment>-<username>`
and the two files it adds to every student repository; roster and regrade find and accept those repositories."""
from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fake_github import BOT, FakeGitHub, make_mini_course  # noqa: E402

from grading.course import load_course  # noqa: E402
from grading.instructor import classroom as C  # noqa: E402
from grading.instructor.github import GitHub  # noqa: E402
from grading.instructor.release import FRONT_END_PATHS, build_release  # noqa: E402

TOKEN = "ghp_classroom50TESTtoken0000000000"
PREFIX = "fall26-tinytorch"          # <classroom>-<assignment>
C50_BOT = "classroom50[bot]"
C50_FILES = {".classroom50.yaml": b"classroom: fall26\nassignment: tinytorch\n",
             ".github/workflows/autograde.yaml": b"name: autograde\non: push\njobs: {}\n"}
STUDENTS_CSV = ("username,first_name,last_name,email,section,github_id\n"
                "alice,Alice,Adams,a@x.edu,A,101\nbob,Bob,,b@x.edu,B,102\n")


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    root = tmp_path_factory.mktemp("c50")
    course_dir = make_mini_course(root / "course")
    build_release(root / "release", course_dir, solutions_through=1)  # the students solved module 01
    files = {p.relative_to(root / "release").as_posix(): p.read_bytes()
             for p in sorted((root / "release").rglob("*")) if p.is_file()}
    assert not set(files) & set(FRONT_END_PATHS)
    return root, course_dir, files


@pytest.fixture
def fake(mini):
    with FakeGitHub(token=TOKEN) as server:
        server.add_repo("course", "tinytorch", mini[2], is_template=True)
        yield server


def accept_like_classroom50(fake, gh, user: str) -> str:
    """What `gh student accept` does: a private copy of the template named <classroom>-<assignment>-<user>,
    then a commit of its own metadata and autograde shim."""
    name = f"{PREFIX}-{user}"
    gh.generate_from_template("course/tinytorch", "org", name, private=True)
    fake.push("org", name, C50_FILES, author=C50_BOT, message="Add Classroom 50 files")
    fake.state.repo("org", name).collaborators.add(user)
    return name


def test_reads_classroom50_students_csv(tmp_path):
    path = tmp_path / "students.csv"
    path.write_text(STUDENTS_CSV)
    assert C.read_roster(path, log=lambda m: None) == [C.Student("alice", "", "Alice Adams", "101"),
                                                       C.Student("bob", "", "Bob", "102")]


def test_roster_finds_classroom50_repositories_and_accepts_its_files(fake, mini, tmp_path):
    _, course_dir, _ = mini
    course = load_course(course_dir / "assignments/course.yaml")
    gh = GitHub(TOKEN, fake.url, sleep=lambda s: None, min_write_interval=0, log=lambda m: None)
    for user in ("alice", "bob"):
        name = accept_like_classroom50(fake, gh, user)
        fake.push("org", name, {"badges/progress.json": json.dumps(
            {"modules": {"01_alpha": {"passed": 2, "total": 2, "ok": True}}, "totals": {"points": 4}}).encode()},
            author=BOT)
    # bob adds a workflow of his own: still flagged (only Classroom 50's own paths are expected)
    fake.push("org", f"{PREFIX}-bob", {".github/workflows/mine.yml": b"on: push\n"}, author="bob")
    (tmp_path / "students.csv").write_text(STUDENTS_CSV)
    students = C.read_roster(tmp_path / "students.csv", log=lambda m: None)
    rows = {r["github_username"]: r for r in C.build_roster(gh, students, "org", PREFIX, "course/tinytorch", course,
                                                            log=lambda m: None)}
    assert rows["alice"]["repository"] == "org/fall26-tinytorch-alice"
    assert (rows["alice"]["status"], rows["alice"]["points"], rows["alice"]["integrity"]) == ("ok", "4", "ok")
    assert rows["alice"]["name"] == "Alice Adams"
    assert rows["bob"]["integrity"] == "added: .github/workflows/mine.yml"


def test_regrade_and_roster_commands_on_classroom50_names(fake, mini, tmp_path, monkeypatch, capsys):
    """`regrade --all --prefix` clones <classroom>-<assignment>-<user>; `roster --prefix --results` joins them."""
    from grading.cli import main
    root, course_dir, _ = mini
    remote = tmp_path / "remote" / "org"
    for user in ("alice", "bob"):
        work = tmp_path / f"work-{user}"
        shutil.copytree(root / "release", work)
        for rel, data in C50_FILES.items():
            (work / rel).parent.mkdir(parents=True, exist_ok=True)
            (work / rel).write_bytes(data)
        env = {**os.environ, "GIT_AUTHOR_NAME": "s", "GIT_AUTHOR_EMAIL": "s@e", "GIT_COMMITTER_NAME": "s",
               "GIT_COMMITTER_EMAIL": "s@e"}
        for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "accept"]):
            subprocess.run(["git", "-C", str(work), *args], check=True, capture_output=True, env=env)
        subprocess.run(["git", "clone", "-q", "--bare", str(work), str(remote / f"{PREFIX}-{user}.git")], check=True)
    roster = tmp_path / "students.csv"
    roster.write_text(STUDENTS_CSV)
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    rc = main(["classroom", "regrade", "--all", "--roster", str(roster), "--org", "org", "--prefix", PREFIX,
               "--clone-base", f"file://{tmp_path}/remote", "--results", str(tmp_path / "results"),
               "--instructor-dir", str(course_dir)])
    assert rc == 0, capsys.readouterr()
    results = {json.loads(p.read_text())["repository"]: json.loads(p.read_text())
               for p in (tmp_path / "results").glob("*.json")}
    assert set(results) == {"org/fall26-tinytorch-alice", "org/fall26-tinytorch-bob"}
    assert all(r["modules_passed"] == ["01_alpha"] and r["points"] == 4.0 for r in results.values())

    gh = GitHub(TOKEN, fake.url, sleep=lambda s: None, min_write_interval=0, log=lambda m: None)
    for user in ("alice", "bob"):
        accept_like_classroom50(fake, gh, user)
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    monkeypatch.setenv("GITHUB_API_URL", fake.url)
    out = tmp_path / "roster.csv"
    rc = main(["classroom", "roster", "--roster", str(roster), "--org", "org", "--template", "course/tinytorch",
               "--prefix", PREFIX, "--results", str(tmp_path / "results"), "--out", str(out),
               "--instructor-dir", str(course_dir)])
    assert rc == 0
    table = {r["github_username"]: r for r in csv.DictReader(out.open())}
    assert table["alice"]["repository"] == "org/fall26-tinytorch-alice" and table["alice"]["regrade_points"] == "4"
    assert table["alice"]["integrity"] == "ok"
