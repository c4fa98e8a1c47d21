"""`tito classroom`: run the course on plain GitHub (one private repository per student).

    tito classroom provision --roster roster.csv --template ORG/tinytorch-template --org ORG
    tito classroom enroll    --event "$GITHUB_EVENT_PATH" --template ORG/tinytorch-template [--roster roster.csv]
    tito classroom invites   --roster roster.csv --template ORG/tinytorch-template --org ORG [--resend]
    tito classroom roster    --roster roster.csv --template ORG/tinytorch-template --org ORG --format html --out roster.html
    tito classroom regrade   --all --roster roster.csv --template ORG/tinytorch-template --org ORG --results results/
    tito classroom regrade   --repo ORG/tinytorch-template-alice [--post-status]
    tito classroom merge     results/ --out class-results/           (the class workflow's last step)
    tito classroom lock      --roster roster.csv --template ORG/tinytorch-template --org ORG --at 2026-12-18T23:59:00+01:00
    tito classroom cost      [--pushes-per-module 2] [--students 30] [--json cost.json]   (Actions minutes: replay.py)

Student repositories are named `<prefix>-<github_username>`; the prefix defaults to the template
repository's name (GitHub Classroom's naming), so every command finds them from the same roster.
The roster is GitHub Classroom's export (identifier, github_username, github_id, name), Classroom 50's
students.csv (username, first_name, last_name, ...), any CSV with a `github_username` (or `username`,
`login`, `github`) column, or one user name per line.

Classroom 50 names the repositories it makes `<classroom>-<assignment>-<username>`: give
`--prefix <classroom>-<assignment>` and every command finds them.

Talks to GitHub through grading/instructor/github.py: token from GITHUB_TOKEN (never printed), API base from
GITHUB_API_URL. Commands run one repository at a time (GitHub asks integrators to serialise writes),
skip what already exists, and can be re-run after an interruption.
"""
from __future__ import annotations

import argparse
import csv
import html
import io
import json
import os
import re
import sys
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path

from grading.course import REPO_ROOT, Course, load_course
from grading.instructor.github import GitHub, GitHubError, TokenMissing
from grading.state import atomic_write_text
from grading.instructor.replay import add_arguments as add_cost_arguments
from grading.instructor.replay import cmd_cost

_USERNAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}$")
_USERNAME_COLUMNS = ("github_username", "github username", "username", "login", "github", "github_login",
                     "handle", "github handle")


class ClassroomError(RuntimeError):
    pass


# ---- roster ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Student:
    github_username: str
    identifier: str = ""
    name: str = ""
    github_id: str = ""


def read_roster(path: str | Path, log=None) -> list[Student]:
    """Students of a roster CSV, in file order, without duplicates or rows lacking a GitHub user name."""
    log = log or (lambda m: print(m, file=sys.stderr))
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ClassroomError(f"cannot read the roster {path}: {exc}") from None
    rows = [r for r in csv.reader(io.StringIO(text)) if r and not r[0].lstrip().startswith("#")]
    if not rows:
        raise ClassroomError(f"the roster {path} is empty")
    header = [c.strip().lower() for c in rows[0]]
    col = next((header.index(c) for c in _USERNAME_COLUMNS if c in header), None)
    if col is None:
        if len(rows[0]) == 1 and _USERNAME.match(rows[0][0].strip()):
            header, col = None, 0  # a plain list of user names
        else:
            raise ClassroomError(f"the roster {path} has no github_username column (found: {', '.join(rows[0])}); "
                                 "use GitHub Classroom's export or a CSV with a github_username column")
    body = rows[1:] if header else rows

    def cell(row, name):
        if header and name in header and header.index(name) < len(row):
            return row[header.index(name)].strip()
        return ""

    students, seen = [], set()
    for number, row in enumerate(body, 2 if header else 1):
        user = row[col].strip().lstrip("@") if col < len(row) else ""
        if not user:
            ident = cell(row, "identifier") or cell(row, "name") or f"line {number}"
            log(f"  roster: {ident} has no GitHub user name yet (skipped)")
            continue
        if not _USERNAME.match(user):
            log(f"  roster line {number}: {user!r} is not a valid GitHub user name (skipped)")
            continue
        if user.lower() in seen:
            log(f"  roster line {number}: {user} appears twice (second entry skipped)")
            continue
        seen.add(user.lower())
        name = cell(row, "name") or " ".join(filter(None, (cell(row, "first_name"), cell(row, "last_name"))))
        students.append(Student(user, cell(row, "identifier"), name, cell(row, "github_id")))
    return students


def repo_name(prefix: str, username: str) -> str:
    return f"{prefix}-{username}"


def split_repo(full: str, what: str = "repository") -> tuple[str, str]:
    parts = full.strip().strip("/").split("/")
    if len(parts) != 2 or not all(parts):
        raise ClassroomError(f"{what} must be written OWNER/REPO, got {full!r}")
    return parts[0], parts[1]


def shard(items: list, spec: str | None) -> list:
    """Items of shard K of N ("K/N", K = 0..N-1): every N-th item starting at K."""
    if not spec:
        return items
    m = re.match(r"^\s*(\d+)\s*/\s*(\d+)\s*$", spec)
    if not m or int(m.group(2)) < 1 or int(m.group(1)) >= int(m.group(2)):
        raise ClassroomError(f"--shard must be K/N with 0 <= K < N, got {spec!r}")
    k, n = int(m.group(1)), int(m.group(2))
    return items[k::n]


# ---- provision ------------------------------------------------------------------------------------
@dataclass
class Outcome:
    student: str
    repository: str
    steps: list = field(default_factory=list)
    error: str | None = None


def _wait_for_branch(gh: GitHub, org: str, name: str, attempts: int = 8) -> str:
    """Default branch of a just-generated repository, once its first commit exists (generation is async)."""
    delay = 1.0
    for attempt in range(attempts):
        repo = gh.get_repo(org, name)
        if repo:
            try:
                gh.request("GET", f"/repos/{org}/{name}/commits", params={"per_page": 1})
                return repo.get("default_branch") or "main"
            except GitHubError as exc:
                if exc.status not in (404, 409):
                    raise
        gh.sleep(delay)
        delay = min(delay * 2, 30)
    raise GitHubError("GET", f"/repos/{org}/{name}/commits", 409, "the new repository still has no commits "
                      "after waiting; re-run provision to finish it", f"{org}/{name}")


def ensure_invited(gh: GitHub, org: str, name: str, user: str, resend_expired: bool = True) -> str:
    """Make `user` a collaborator with push rights (one invitation; an expired one is re-sent)."""
    if gh.is_collaborator(org, name, user):
        return "already a collaborator"
    for inv in gh.invitations(org, name):
        if (inv.get("invitee") or {}).get("login", "").lower() == user.lower():
            if not inv.get("expired"):
                return "invitation pending"
            if not resend_expired:
                return "invitation expired"
            gh.delete_invitation(org, name, inv["id"])
            gh.add_collaborator(org, name, user, "push")
            return "expired invitation re-sent"
    resp = gh.add_collaborator(org, name, user, "push")
    return "invitation sent" if resp.status == 201 else "added as collaborator"


def ensure_protected(gh: GitHub, org: str, name: str, branch: str) -> str:
    current = gh.get_protection(org, name, branch)
    if current and not (current.get("allow_force_pushes") or {}).get("enabled") \
            and not (current.get("allow_deletions") or {}).get("enabled"):
        return f"branch {branch} already protected"
    gh.protect_branch(org, name, branch)
    return f"branch {branch} protected (no force push, no deletion)"


def check_template(gh: GitHub, template: str) -> None:
    """Stop early, with a clear message, when the token is refused or cannot see the template."""
    t_owner, t_name = split_repo(template, "--template")
    try:
        found = gh.get_repo(t_owner, t_name)
    except GitHubError as exc:
        if exc.status == 401:
            raise ClassroomError("GitHub rejected the token (HTTP 401); check GITHUB_TOKEN") from None
        raise
    if found is None:
        raise ClassroomError(f"template repository {template} not found (or the token cannot see it)")


def ensure_student_repository(gh: GitHub, template: str, org: str, name: str, user: str) -> list[str]:
    """The one recipe for a student's repository (provision and enroll): private copy of the template,
    `user` invited with push rights, default branch protected. Idempotent; returns what it did."""
    steps = []
    if gh.get_repo(org, name) is None:
        try:
            gh.generate_from_template(template, org, name, private=True, description=f"TinyTorch work of {user}")
            steps.append("repository created")
        except GitHubError as exc:
            if not exc.already_exists:
                raise
            steps.append("repository exists")  # made between our check and our create (a second run)
    else:
        steps.append("repository exists")
    branch = _wait_for_branch(gh, org, name)
    steps.append(ensure_invited(gh, org, name, user))
    steps.append(ensure_protected(gh, org, name, branch))
    return steps


def provision(gh: GitHub, students: list[Student], template: str, org: str, prefix: str, log=print) -> list[Outcome]:
    """Create, invite and protect one repository per student; idempotent and resumable."""
    check_template(gh, template)
    outcomes = []
    for i, s in enumerate(students, 1):
        name = repo_name(prefix, s.github_username)
        out = Outcome(s.github_username, f"{org}/{name}")
        try:
            out.steps += ensure_student_repository(gh, template, org, name, s.github_username)
        except GitHubError as exc:
            out.error = str(exc)
            if exc.status == 401:
                outcomes.append(out)
                log(f"[{i}/{len(students)}] {out.repository}: {exc}")
                raise ClassroomError("GitHub rejected the token (HTTP 401); check GITHUB_TOKEN") from None
        outcomes.append(out)
        log(f"[{i}/{len(students)}] {out.repository}: " + (f"FAILED: {out.error}" if out.error else ", ".join(out.steps)))
    return outcomes


# ---- enroll (the self-service "Join the course" issue form) -------------------------------------------
ENROLL_MARKER = "<!-- tinytorch:enroll -->"  # marks our answer on an issue, so a re-run does not answer twice


@dataclass(frozen=True)
class JoinRequest:
    """Who asked to join, as GitHub authenticated them, and the issue to answer."""
    login: str
    issue_repository: str  # OWNER/REPO holding the issue form
    issue_number: int


def read_join_event(path: str | Path) -> JoinRequest:
    """The `issues: opened` event payload of a workflow run ($GITHUB_EVENT_PATH).

    The student is the event's `sender.login` (the account GitHub authenticated); the issue's title and
    body are never read, so a form that names someone else changes nothing.
    """
    try:
        event = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ClassroomError(f"cannot read the event payload {path}: {exc}") from None
    if not isinstance(event, dict) or not isinstance(event.get("issue"), dict) \
            or not isinstance(event.get("sender"), dict) or not isinstance(event.get("repository"), dict):
        raise ClassroomError(f"{path} is not an `issues` event payload (expected issue, sender and repository)")
    if event.get("action") != "opened":
        raise ClassroomError(f"{path}: the event's action is {event.get('action')!r}; enroll answers "
                             "newly opened issues only (the workflow runs on `issues: opened`)")
    sender = event["sender"]
    login = str(sender.get("login") or "")
    if sender.get("type") not in (None, "User") or not _USERNAME.match(login):
        raise ClassroomError(f"the issue was opened by {login!r} ({sender.get('type')}), not by a GitHub user "
                             "account: nothing to enroll")
    number = event["issue"].get("number")
    full = str(event["repository"].get("full_name") or "")
    if not isinstance(number, int) or full.count("/") != 1:
        raise ClassroomError(f"{path}: the event has no issue number or repository full_name")
    return JoinRequest(login, full, number)


def _welcome(login: str, repo: dict, created: bool, invited: bool, course_name: str) -> str:
    url = repo.get("html_url") or ""
    name = repo.get("name") or url.rsplit("/", 1)[-1]
    lines = [ENROLL_MARKER, f"Welcome to {course_name}, @{login}!", ""]
    lines.append(f"Your private repository is ready: {url}" if created else
                 f"You already have a repository: {url} (no new one was made).")
    lines += ["", "Next steps:", ""]
    step = 1
    if invited:
        lines.append(f"{step}. Accept the invitation: {url}/invitations (it is also in your e-mail).")
        step += 1
    lines += [f"{step}. Clone it and install the course tools:", "", "   ```bash", f"   git clone {url}.git",
              f"   cd {name}", '   pip install -e ".[test]"', "   tito module start 01", "   ```", "",
              f"{step + 1}. Push your work: every push is graded and the results appear in your README.", "",
              "This issue is now closed. If something is wrong with your repository, reply here: the course "
              "staff will see it."]
    return "\n".join(lines) + "\n"


def _refusal(login: str) -> str:
    return (f"{ENROLL_MARKER}\nHello @{login}, thank you for your interest in the course!\n\n"
            f"The GitHub account `{login}` is not on this course's roster, so no repository was made. If you are "
            "taking the course, ask the course staff to add your GitHub user name to the roster (or tell them "
            "which account you registered with), then open a new \"Join the course\" issue.\n")


def _already_answered(gh: GitHub, owner: str, repo: str, number: int) -> bool:
    return any(ENROLL_MARKER in (c.get("body") or "") for c in gh.issue_comments(owner, repo, number))


def enroll(gh: GitHub, request: JoinRequest, template: str, org: str, prefix: str,
           roster: list[Student] | None = None, course_name: str = "the course", log=print) -> Outcome:
    """Answer one "Join the course" issue: repository, invitation, protection, a comment, the issue closed.

    Idempotent: a second issue (or a re-run) from the same student answers with the existing repository
    and creates nothing. With a roster, authors not on it get a polite refusal and nothing is created.
    """
    login = request.login
    i_owner, i_repo = split_repo(request.issue_repository, "the issue's repository")
    number = request.issue_number
    name = repo_name(prefix, login)
    out = Outcome(login, f"{org}/{name}")
    if roster is not None and login.lower() not in {s.github_username.lower() for s in roster}:
        if not _already_answered(gh, i_owner, i_repo, number):
            gh.comment_on_issue(i_owner, i_repo, number, _refusal(login))
        gh.close_issue(i_owner, i_repo, number, "not_planned")
        out.steps.append("not on the roster: refused, nothing created")
        log(f"{out.repository}: {login} is not on the roster; refused (issue #{number} closed)")
        return out
    check_template(gh, template)
    out.steps += ensure_student_repository(gh, template, org, name, login)
    repo = gh.get_repo(org, name) or {"html_url": f"https://github.com/{org}/{name}", "name": name}
    created = out.steps[0] == "repository created"
    invited = out.steps[1] != "already a collaborator"
    if _already_answered(gh, i_owner, i_repo, number):
        out.steps.append("issue already answered")
    else:
        gh.comment_on_issue(i_owner, i_repo, number, _welcome(login, repo, created, invited, course_name))
        out.steps.append("issue answered")
    gh.close_issue(i_owner, i_repo, number, "completed")
    out.steps.append("issue closed")
    log(f"{out.repository}: " + ", ".join(out.steps))
    return out


# ---- invites -------------------------------------------------------------------------------------
def invite_status(gh: GitHub, students: list[Student], org: str, prefix: str, resend: bool = False,
                  log=print) -> list[dict]:
    rows = []
    for s in students:
        name = repo_name(prefix, s.github_username)
        row = {"github_username": s.github_username, "repository": f"{org}/{name}", "status": "", "action": ""}
        try:
            if gh.get_repo(org, name) is None:
                row["status"] = "no repository (run provision)"
            elif gh.is_collaborator(org, name, s.github_username):
                row["status"] = "accepted"
            else:
                inv = next((i for i in gh.invitations(org, name)
                            if (i.get("invitee") or {}).get("login", "").lower() == s.github_username.lower()), None)
                if inv is None:
                    row["status"] = "not invited"
                else:
                    row["status"] = "expired" if inv.get("expired") else "pending"
                    row["invited_at"] = inv.get("created_at", "")
                if resend and row["status"] in ("expired", "not invited"):
                    row["action"] = ensure_invited(gh, org, name, s.github_username)
        except GitHubError as exc:
            row["status"] = f"error: {exc}"
        rows.append(row)
    return rows


# ---- roster --------------------------------------------------------------------------------------
def parse_deadline(value) -> datetime:
    """An ISO 8601 date/time (YAML may already have parsed it); naive times are taken as UTC."""
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, date):
        dt = datetime(value.year, value.month, value.day, 23, 59, 59)
    else:
        text = str(value).strip()
        if re.match(r"^\d{4}-\d\d-\d\d$", text):
            text += "T23:59:59"
        try:
            dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ClassroomError(f"deadline {value!r} is not an ISO 8601 date or date-time "
                                 "(e.g. 2026-12-18T23:59:00+01:00)") from None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def deadline_table(course: Course) -> dict[str, datetime]:
    """{item: deadline} for every module id and milestone ("milestone N") that has one.

    course.yaml `deadlines` keys: a module (id, number or name), a milestone ("milestone 3", "m3"),
    or "final"/"default" for every item without its own deadline.
    """
    raw = course.deadlines or {}
    table, default = {}, None
    for key, value in raw.items():
        k = str(key).strip().lower()
        when = parse_deadline(value)
        if k in ("final", "default", "all", "course"):
            default = when
            continue
        m = re.match(r"^(?:milestone[ _-]?|m)(\d+)$", k)
        if m:
            table[f"milestone {int(m.group(1))}"] = when
            continue
        table[course.module(k).id] = when
    if default is not None:
        for mod in course.modules:
            table.setdefault(mod.id, default)
        for ms in course.milestones:
            table.setdefault(f"milestone {ms.number}", default)
    return table


def _passed_items(summary: dict) -> set[str]:
    return set(summary["modules_passed"]) | {f"milestone {n}" for n in summary["milestones_passed"]}


def _is_bot(commit: dict) -> bool:
    login = ((commit.get("author") or {}).get("login") or "")
    name = ((commit.get("commit") or {}).get("author") or {}).get("name", "")
    return login.endswith("[bot]") or name.endswith("[bot]")


class TemplateInfo:
    """What every student repository is compared with: the template's trees (cached once per run)."""

    def __init__(self, gh: GitHub, template: str, course: Course):
        from grading.instructor.release import is_protected
        self.gh, self.template, self.course = gh, template, course
        owner, name = split_repo(template, "--template")
        commits = list(gh.paginate(f"/repos/{owner}/{name}/commits"))
        if not commits:
            raise ClassroomError(f"the template {template} has no commits")
        self.tree_shas = {c["commit"]["tree"]["sha"] for c in commits}
        self._trees: dict[str, dict] = {}
        self.is_protected = lambda path: is_protected(path, course)

    def protected_blobs(self, owner: str, repo: str, ref: str) -> dict[str, str]:
        key = f"{owner}/{repo}@{ref}"
        if key not in self._trees:
            tree = self.gh.tree(owner, repo, ref)
            self._trees[key] = {e["path"]: e["sha"] for e in tree.get("tree", []) if e.get("type") == "blob"}
        return self._trees[key]


def integrity(gh: GitHub, tmpl: TemplateInfo, org: str, name: str, head_sha: str) -> list[str]:
    """Problems with a student repository's protected files and history ([] = clean)."""
    from grading.instructor.release import FRONT_END_PATHS, suspicious_addition
    problems = []
    roots = gh.root_commits(org, name)
    if len(roots) != 1:
        problems.append(f"history has {len(roots)} root commits (rewritten or merged foreign history)")
    root = roots[0] if roots else None
    if root and root["commit"]["tree"]["sha"] not in tmpl.tree_shas:
        problems.append(f"root commit {root['sha'][:7]} is not the template's (history rewritten?)")
    head = tmpl.protected_blobs(org, name, head_sha)
    if root is not None and root["commit"]["tree"]["sha"] in tmpl.tree_shas:
        reference = tmpl.protected_blobs(org, name, root["sha"])  # the snapshot the repository was made from
    else:
        t_owner, t_name = split_repo(tmpl.template)
        reference = tmpl.protected_blobs(t_owner, t_name, _default_ref(gh, t_owner, t_name))
    changed = sorted(p for p, s in reference.items() if tmpl.is_protected(p) and p in head and head[p] != s)
    missing = sorted(p for p in reference if tmpl.is_protected(p) and p not in head)
    added = sorted(p for p in head if p not in reference and p not in FRONT_END_PATHS
                   and (tmpl.is_protected(p) or suspicious_addition(p)))
    for label, paths in (("modified", changed), ("deleted", missing), ("added", added)):
        if paths:
            shown = ", ".join(paths[:5]) + (f" (+{len(paths) - 5} more)" if len(paths) > 5 else "")
            problems.append(f"{label}: {shown}")
    return problems


def hand_written_badges(gh: GitHub, org: str, name: str) -> list[str]:
    """badges/ is written by the grader's commit-back (github-actions[bot]) only; anything else is suspect.

    A heuristic: commit authors can be forged; `regrade` is the authority.
    """
    last = gh.commits(org, name, path="badges", limit=1)
    if last and last[0].get("parents") and not _is_bot(last[0]):
        who = (last[0].get("author") or {}).get("login") or last[0]["commit"]["author"].get("name", "?")
        return [f"badges/ last changed by {who} in {last[0]['sha'][:7]}, not by the grader"]
    return []


def _default_ref(gh: GitHub, owner: str, name: str) -> str:
    repo = gh.get_repo(owner, name) or {}
    return repo.get("default_branch") or "main"


def progress_at(gh: GitHub, org: str, name: str, when: datetime, course: Course, cache: dict) -> set[str]:
    """Items passed according to badges/progress.json as of the last commit before `when`."""
    from grading.instructor.regrade import summarize_progress
    if when in cache:
        return cache[when]
    commits = gh.commits(org, name, path="badges/progress.json", until=_iso(when), limit=1)
    items = set()
    if commits:
        raw = gh.file_content(org, name, "badges/progress.json", ref=commits[0]["sha"])
        try:
            items = _passed_items(summarize_progress(json.loads(raw or b"{}"), course))
        except ValueError:
            items = set()
    cache[when] = items
    return items


def _iso(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


ROSTER_COLUMNS = ["github_username", "identifier", "name", "profile_name", "repository", "modules_passed", "points",
                  "max_points", "milestones_passed", "last_push", "late", "integrity", "regrade_points",
                  "regrade_verified", "regrade_commit", "claim_check", "status"]
PROFILE_NAME_MAX = 60  # characters of the student's self-chosen display name shown in the roster


def profile_name(progress: dict) -> str:
    """The display name the student put in progress.json (`profile.name`): untrusted text, so only printable
    characters (no control or bidirectional-override characters), whitespace collapsed, at most
    PROFILE_NAME_MAX characters. Each output format escapes it again for its own syntax."""
    import unicodedata
    profile = progress.get("profile") if isinstance(progress, dict) else None
    name = profile.get("name") if isinstance(profile, dict) else None
    if not isinstance(name, str):
        return ""
    name = "".join(ch if not unicodedata.category(ch).startswith(("C", "Z")) else " " for ch in name[:1000])
    name = " ".join(name.split())
    return name if len(name) <= PROFILE_NAME_MAX else name[:PROFILE_NAME_MAX - 1] + "\u2026"


def claim_check(summary: dict, claimed_commit: str, result: dict) -> str:
    """What the student's badges claim that the instructor's regrade did not find ("" when they agree)."""
    differences = []
    claimed, regraded = float(summary["points"]), float(result.get("points") or 0)
    if abs(claimed - regraded) > 0.01:
        differences.append(f"badges claim {claimed:g} points, regrade gives {regraded:g}")
    extra = sorted(set(summary["modules_passed"]) - set(result.get("modules_passed") or []))
    if extra:
        differences.append("modules claimed but not passed in the regrade: " + ", ".join(extra))
    if result.get("milestones"):  # the regrade ran the milestones
        extra_ms = sorted(set(summary["milestones_passed"]) - set(result.get("milestones_passed") or []))
        if extra_ms:
            differences.append("milestones claimed but not passed in the regrade: " + ", ".join(map(str, extra_ms)))
    regraded_commit = str(result.get("commit") or "")
    if differences and claimed_commit and regraded_commit and not regraded_commit.startswith(claimed_commit[:12]) \
            and not claimed_commit.startswith(regraded_commit[:12]):
        differences.append(f"(badges are for commit {claimed_commit[:7]}, the regrade for {regraded_commit[:7]})")
    return "; ".join(differences)


def build_roster(gh: GitHub, students: list[Student], org: str, prefix: str, template: str, course: Course,
                 results: dict | None = None, log=None) -> list[dict]:
    """One row per student (see ROSTER_COLUMNS); errors of one repository are put in its row."""
    from grading.instructor.regrade import summarize_progress
    log = log or (lambda m: print(m, file=sys.stderr))
    tmpl = TemplateInfo(gh, template, course)
    deadlines = deadline_table(course)
    rows = []
    for i, s in enumerate(students, 1):
        name = repo_name(prefix, s.github_username)
        row = {c: "" for c in ROSTER_COLUMNS}
        row.update(github_username=s.github_username, identifier=s.identifier, name=s.name,
                   repository=f"{org}/{name}", max_points=f"{course.total_points:g}", modules_passed=0,
                   points="0", milestones_passed="")
        summary, claimed_commit = None, ""
        try:
            repo = gh.get_repo(org, name)
            if repo is None:
                row["status"] = "no repository"
                rows.append(row)
                continue
            raw = gh.file_content(org, name, "badges/progress.json")
            progress = json.loads(raw) if raw else {}
            progress = progress if isinstance(progress, dict) else {}  # student-writable: any JSON at all
            summary = summarize_progress(progress, course)
            row["profile_name"] = profile_name(progress)
            commit = progress.get("commit")
            claimed_commit = str(commit.get("sha") or "") if isinstance(commit, dict) else ""
            row["modules_passed"] = len(summary["modules_passed"])
            row["points"] = f"{summary['points']:g}"
            row["milestones_passed"] = " ".join(str(n) for n in summary["milestones_passed"])
            recent = gh.commits(org, name, limit=30)
            head_sha = recent[0]["sha"] if recent else None
            student_commits = [c for c in recent if not _is_bot(c)]
            if student_commits:
                row["last_push"] = student_commits[0]["commit"]["committer"]["date"]
            if deadlines and raw:
                now_items = _passed_items(summary)
                cache: dict = {}
                late = [item for item, when in sorted(deadlines.items())
                        if item in now_items and item not in progress_at(gh, org, name, when, course, cache)]
                row["late"] = " ".join(late)
            problems = integrity(gh, tmpl, org, name, head_sha) if head_sha else ["empty repository"]
            problems += hand_written_badges(gh, org, name)
            row["integrity"] = "ok" if not problems else "; ".join(problems)
            graded = any(int(v.get("total") or 0) > 0 for v in summary["modules"].values())
            row["status"] = "ok" if graded else "not graded yet"
        except (GitHubError, ValueError) as exc:
            row["status"] = f"error: {exc}"
        r = (results or {}).get(f"{org}/{name}")
        if r:
            row["regrade_points"] = f"{float(r.get('points', 0)):g}"
            row["regrade_verified"] = "verified" if r.get("verified") is True else "unverified"
            row["regrade_commit"] = (r.get("commit") or "")[:12]
            if summary is not None:
                row["claim_check"] = claim_check(summary, claimed_commit, r) or "matches"
            if r.get("flags"):
                row["integrity"] = (row["integrity"] + "; " if row["integrity"] not in ("", "ok") else "") + \
                    f"regrade flags: {len(r['flags'])}"
        rows.append(row)
        log(f"  [{i}/{len(students)}] {org}/{name}: {row['status']}")
    return rows


# ---- output formats --------------------------------------------------------------------------------
# Rows hold text a student controls (profile name, file paths of their repository): every format escapes
# it for its own syntax - CSV against spreadsheet formulas, Markdown against links/HTML, HTML by entities.
def _csv_cell(value):
    """A gradebook opens the CSV in a spreadsheet: a cell starting with =, +, -, @ would be a formula."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def to_csv(rows: list[dict], columns=ROSTER_COLUMNS) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: _csv_cell(v) for k, v in r.items()})
    return buf.getvalue()


_MD_COLUMNS = [("github_username", "Student"), ("profile_name", "Name"), ("modules_passed", "Modules"),
               ("points", "Points (badges)"), ("regrade_points", "Regrade"), ("claim_check", "Badges vs regrade"),
               ("milestones_passed", "Milestones"), ("last_push", "Last push"), ("late", "Late"),
               ("integrity", "Integrity"), ("status", "Status")]
_OPTIONAL_COLUMNS = ("profile_name", "regrade_points", "claim_check")  # shown when some row has them
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+!|~&])")


def _columns(rows: list[dict]) -> list[tuple[str, str]]:
    return [(k, t) for k, t in _MD_COLUMNS if k not in _OPTIONAL_COLUMNS or any(r.get(k) for r in rows)]


def _display(row: dict, key: str, course: Course) -> str:
    v = row.get(key, "")
    if key == "modules_passed":
        return f"{v}/{len(course.modules)}"
    if key == "points":
        return f"{v}/{row.get('max_points', '')}"
    if key == "regrade_points" and v != "":
        return f"{v}/{row.get('max_points', '')} {row.get('regrade_verified') or 'unverified'}"
    return str(v)


def to_markdown(rows: list[dict], course: Course) -> str:
    cols = _columns(rows)

    def cell(v: str) -> str:
        return _MD_SPECIAL.sub(r"\\\1", " ".join(v.split()))

    lines = [f"# {course.name}: class roster", "", f"{len(rows)} students, {len(course.modules)} modules, "
             f"{course.total_points:g} points.", "",
             "| " + " | ".join(t for _, t in cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(cell(_display(r, k, course)) for k, _ in cols) + " |")
    return "\n".join(lines) + "\n"


def to_html(rows: list[dict], course: Course) -> str:
    """One self-contained page: inline CSS, no scripts, fonts or images from elsewhere."""
    cols = _columns(rows)
    e = html.escape
    head = "".join(f"<th>{e(t)}</th>" for _, t in cols)
    body = []
    for r in rows:
        cells = []
        for k, _ in cols:
            v, cls = _display(r, k, course), ""
            if k == "integrity":
                cls = " class=ok" if v == "ok" else (" class=bad" if v else "")
            elif k == "claim_check" and v:
                cls = " class=ok" if v == "matches" else " class=bad"
            elif k == "regrade_points" and v.endswith("unverified"):
                cls = " class=warn"
            elif k == "late" and v:
                cls = " class=warn"
            cells.append(f"<td{cls}>{e(v)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(course.name)}: class roster</title>
<style>
body {{ font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ border-bottom: 1px solid #ddd; padding: .35em .6em; text-align: left; vertical-align: top; }}
th {{ background: #f4f4f4; position: sticky; top: 0; }}
tr:nth-child(even) td {{ background: #fafafa; }}
td.ok {{ color: #1a7f37; }} td.bad {{ color: #cf222e; font-weight: 600; }} td.warn {{ color: #9a6700; }}
</style></head>
<body>
<h1>{e(course.name)}: class roster</h1>
<p>{len(rows)} students &middot; {len(course.modules)} modules &middot; {course.total_points:g} points</p>
<table>
<thead><tr>{head}</tr></thead>
<tbody>
{chr(10).join(body)}
</tbody>
</table>
</body></html>
"""


# ---- the regrade's verdict on the graded commit ----------------------------------------------------------
VERIFIED_CONTEXT = "tinytorch/verified"


def verified_status(result: dict, milestones_total: int) -> tuple[str, str]:
    """(state, description) of the commit status for a regrade result (the result file's fields).

    success only for a finished regrade that ran in an OS sandbox (`verified`); an unsandboxed one is a
    failure marked unverified; a regrade that crashed or could not clone is an error.
    """
    points = f"{float(result.get('points') or 0):g}/{float(result.get('max_points') or 0):g}"
    milestones = f"{len(result.get('milestones_passed') or [])}/{milestones_total} milestones"
    status = str(result.get("status") or "failed")
    if status == "graded" and result.get("verified") is True:
        return "success", f"verified {points}, {milestones}"
    if status == "graded":
        return "failure", f"unverified {points}, {milestones}: the regrade ran without a sandbox"
    return "error", f"unverified: the regrade {status} ({points}, {milestones} before it stopped)"[:140]


def post_verified_status(gh: GitHub, result: dict, milestones_total: int, target_url: str | None = None) -> dict | None:
    """Post the regrade's verdict as a commit status (context tinytorch/verified) on the commit it graded.
    Returns the status, or None when the result names no commit (the clone failed)."""
    commit = str(result.get("commit") or "")
    if not re.fullmatch(r"[0-9a-f]{40}", commit):
        return None
    owner, name = split_repo(str(result.get("repository") or ""), "the result's repository")
    state, description = verified_status(result, milestones_total)
    return gh.create_status(owner, name, commit, state, VERIFIED_CONTEXT, description, target_url)


# ---- lock ------------------------------------------------------------------------------------------
def lock_repos(gh: GitHub, students: list[Student], org: str, prefix: str, unlock: bool = False, log=print) -> list[Outcome]:
    outcomes = []
    for s in students:
        name = repo_name(prefix, s.github_username)
        out = Outcome(s.github_username, f"{org}/{name}")
        try:
            repo = gh.get_repo(org, name)
            if repo is None:
                out.error = "no repository"
            else:
                branch = repo.get("default_branch") or "main"
                gh.protect_branch(org, name, branch, lock=not unlock)
                out.steps.append(f"branch {branch} {'unlocked' if unlock else 'locked (read-only)'}")
        except GitHubError as exc:
            out.error = str(exc)
        outcomes.append(out)
        log(f"  {out.repository}: " + (f"FAILED: {out.error}" if out.error else ", ".join(out.steps)))
    return outcomes


# ---- command line ----------------------------------------------------------------------------------
def _client(args) -> GitHub:
    gh = GitHub.from_env()
    if getattr(args, "max_wait", None) is not None:
        gh.max_wait = args.max_wait
    return gh


def _prefix(args) -> str:
    if getattr(args, "prefix", None):
        return args.prefix
    if getattr(args, "template", None):
        return split_repo(args.template, "--template")[1]
    raise ClassroomError("give --template OWNER/REPO (its name is the repository prefix) or --prefix")


def _write_out(text: str, out: str | None) -> None:
    if out:
        atomic_write_text(out, text)
        print(f"written to {out}", file=sys.stderr)
    else:
        sys.stdout.write(text)


def cmd_provision(args) -> int:
    students = read_roster(args.roster)
    outcomes = provision(_client(args), students, args.template, args.org, _prefix(args))
    failed = [o for o in outcomes if o.error]
    print(f"{len(outcomes) - len(failed)}/{len(outcomes)} repositories ready"
          + (f"; {len(failed)} failed (re-run to resume)" if failed else "."))
    return 1 if failed else 0


def cmd_enroll(args) -> int:
    request = read_join_event(args.event)
    args.org = args.org or split_repo(args.template, "--template")[0]
    roster = read_roster(args.roster) if args.roster else None
    try:
        course_name = load_course(Path(args.instructor_dir) / "assignments" / "course.yaml").name
    except Exception:  # noqa: BLE001 - the welcome message can do without the course's name
        course_name = "the course"
    gh = _client(args)
    try:
        enroll(gh, request, args.template, args.org, _prefix(args), roster, course_name)
    except GitHubError as exc:
        # Leave the issue open for the staff (the run is marked failed; re-running it resumes) and tell
        # the student nothing is expected of them. The message names the status, never the token.
        owner, repo = split_repo(request.issue_repository)
        try:
            gh.comment_on_issue(owner, repo, request.issue_number,
                                f"Sorry @{request.login}, setting up your repository did not finish (GitHub "
                                f"answered {exc.status or 'nothing'}). This issue stays open so the course staff "
                                "see it and re-run the setup; you do not need to do anything.\n")
        except GitHubError:
            pass
        raise
    return 0


def cmd_invites(args) -> int:
    rows = invite_status(_client(args), read_roster(args.roster), args.org, _prefix(args), resend=args.resend)
    pending = [r for r in rows if r["status"] != "accepted"]
    for r in rows:
        if r["status"] != "accepted" or args.all:
            extra = f" ({r['action']})" if r.get("action") else ""
            print(f"{r['github_username']:<24} {r['repository']:<50} {r['status']}{extra}")
    print(f"{len(rows) - len(pending)}/{len(rows)} students have accepted their invitation.")
    return 0


def cmd_roster(args) -> int:
    from grading.instructor.regrade import load_results
    course = load_course(Path(args.instructor_dir) / "assignments" / "course.yaml")
    results = load_results([args.results]) if args.results else None
    rows = build_roster(_client(args), read_roster(args.roster), args.org, _prefix(args), args.template, course,
                        results)
    fmt = args.format or (Path(args.out).suffix.lstrip(".") if args.out else "md")
    text = {"csv": lambda: to_csv(rows), "html": lambda: to_html(rows, course),
            "md": lambda: to_markdown(rows, course)}.get(fmt)
    if text is None:
        raise ClassroomError(f"--format must be md, csv or html, got {fmt!r}")
    _write_out(text(), args.out)
    return 0


def make_isolation(unsandboxed: bool):
    """The sandbox the regrade runs student code in; without one, refuse unless --unsandboxed."""
    from grading.instructor.sandbox import Bubblewrap, SandboxUnavailable
    from grading.isolation import NoIsolation
    if unsandboxed:
        print("WARNING: --unsandboxed: student code runs with your permissions; every result is marked "
              "unverified.", file=sys.stderr)
        return NoIsolation()
    sandbox = Bubblewrap()
    try:
        sandbox.check()
    except SandboxUnavailable as exc:
        raise ClassroomError(str(exc)) from None
    return sandbox


def cmd_regrade(args) -> int:
    from grading.instructor.regrade import Options, Regrader
    opts = Options(instructor_dir=Path(args.instructor_dir), milestones=args.milestones,
                   isolation=make_isolation(args.unsandboxed), seed=args.seed,
                   timeout=args.timeout, memory_mb=args.memory_mb, keep_work=args.keep_work)
    token = os.environ.get("GITHUB_TOKEN") or None
    server = (args.clone_base or os.environ.get("GITHUB_SERVER_URL") or "https://github.com").rstrip("/")
    targets = []  # (repository, clone url, username)
    if args.repo:
        owner, name = split_repo(args.repo, "--repo")
        targets.append((f"{owner}/{name}", args.clone_url or f"{server}/{owner}/{name}.git", ""))
    else:
        if not (args.roster and args.org):
            raise ClassroomError("regrade --all needs --roster, --org and --template (or --prefix)")
        prefix = _prefix(args)
        for s in shard(read_roster(args.roster), args.shard):
            name = repo_name(prefix, s.github_username)
            targets.append((f"{args.org}/{name}", f"{server}/{args.org}/{name}.git", s.github_username))
    results_dir = Path(args.results)
    results_dir.mkdir(parents=True, exist_ok=True)
    status_client = GitHub.from_env() if args.post_status else None  # no token: stop before grading anyone
    milestones_total = len(load_course(Path(args.instructor_dir) / "assignments" / "course.yaml").milestones)
    failures = 0
    print(f"regrading {len(targets)} repositories in {'a ' + opts.isolation.name + ' sandbox' if opts.isolation.verified else 'NO sandbox (unverified)'}; "
          f"probe seed {opts.seed}", flush=True)
    with Regrader(opts) as regrader:
        for i, (repository, url, user) in enumerate(targets, 1):
            t0 = time.monotonic()
            r = regrader.regrade(repository, url, results_dir, github_username=user, token=token)
            failures += r["status"] not in ("graded",)
            print(f"[{i}/{len(targets)}] {repository}: {r['status']}, {len(r['modules_passed'])} modules passed, "
                  f"{r['points']:g}/{r['max_points']:g} points" + ("" if r["verified"] else " (UNVERIFIED)")
                  + (f", {len(r['flags'])} flags" if r["flags"] else "") + f" ({time.monotonic() - t0:.0f}s)",
                  flush=True)
            if status_client is not None:
                posted = post_verified_status(status_client, r, milestones_total)
                print(f"  commit status {VERIFIED_CONTEXT}: " +
                      (f"{posted['state']}, {posted['description']}" if posted else "not posted (no graded commit)"),
                      flush=True)
    print(f"results in {results_dir}")
    return 1 if failures and args.strict else 0


def cmd_merge(args) -> int:
    from grading.instructor.regrade import merge_results
    summary = merge_results(args.dirs, Path(args.out))
    print(f"merged {summary['count']} results into {args.out} (regrade.json, regrade.csv, results/)")
    return 0


def _sleep_until(when: datetime, log=print) -> None:
    while True:
        left = (when - datetime.now(timezone.utc)).total_seconds()
        if left <= 0:
            return
        log(f"  waiting for the deadline {when.isoformat()} ({left / 3600:.1f} h left)")
        time.sleep(min(left, 3600))


def cmd_lock(args) -> int:
    when = parse_deadline(args.at) if args.at else datetime.now(timezone.utc)
    if when > datetime.now(timezone.utc):
        if not args.wait:
            print(f"The deadline {when.isoformat()} is in the future. Run this command at the deadline (e.g. from a "
                  "scheduled workflow), or pass --wait to keep this process running until then.")
            return 2
        _sleep_until(when)
    outcomes = lock_repos(_client(args), read_roster(args.roster), args.org, _prefix(args), unlock=args.unlock)
    failed = [o for o in outcomes if o.error]
    print(f"{len(outcomes) - len(failed)}/{len(outcomes)} repositories {'unlocked' if args.unlock else 'locked'}.")
    return 1 if failed else 0


def _common(p, roster=True, template_required=False):
    if roster:
        p.add_argument("--roster", required=True, help="roster CSV (GitHub Classroom export or github_username column)")
    p.add_argument("--org", required=True, help="organization (or user) that owns the student repositories")
    p.add_argument("--template", required=template_required, metavar="OWNER/REPO",
                   help="the template repository; its name is the default repository prefix")
    p.add_argument("--prefix", help="student repositories are PREFIX-<github_username> (default: template name)")
    p.add_argument("--max-wait", type=float, default=None, help="longest rate-limit wait in seconds (default 3600)")


def register(subparsers) -> argparse.ArgumentParser:
    """Add `classroom` and its sub-commands to tito."""
    p = subparsers.add_parser("classroom", help="provision student repositories, roster, regrade (instructors)",
                              description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="classroom_command", required=True, metavar="COMMAND")

    q = sub.add_parser("provision", help="one private repository per student, invited and protected")
    _common(q, template_required=True)
    q.set_defaults(func=_safe(cmd_provision))

    q = sub.add_parser("enroll", help="answer a 'Join the course' issue: the author's repository, invited "
                                      "and protected (the enroll workflow runs this)")
    q.add_argument("--event", required=True, metavar="PATH", help="the issues event payload ($GITHUB_EVENT_PATH)")
    q.add_argument("--roster", help="only students on this roster CSV get a repository (others get a polite no)")
    q.add_argument("--org", help="organization that owns the student repositories (default: the template's owner)")
    q.add_argument("--template", required=True, metavar="OWNER/REPO",
                   help="the template repository; its name is the default repository prefix")
    q.add_argument("--prefix", help="student repositories are PREFIX-<github_username> (default: template name)")
    q.add_argument("--max-wait", type=float, default=None, help="longest rate-limit wait in seconds (default 3600)")
    q.add_argument("--instructor-dir", default=str(REPO_ROOT), help=argparse.SUPPRESS)
    q.set_defaults(func=_safe(cmd_enroll))

    q = sub.add_parser("invites", help="who has not accepted the invitation yet; --resend re-sends expired ones")
    _common(q)
    q.add_argument("--resend", action="store_true", help="re-send expired invitations (and send missing ones)")
    q.add_argument("--all", action="store_true", help="also list students who accepted")
    q.set_defaults(func=_safe(cmd_invites))

    q = sub.add_parser("roster", help="the class table: modules, points, milestones, last push, late, integrity")
    _common(q, template_required=True)
    q.add_argument("--format", choices=("md", "csv", "html"), help="default: from --out's suffix, else md")
    q.add_argument("--out", help="file to write (default: standard output)")
    q.add_argument("--results", help="folder of regrade results (adds the regrade columns)")
    q.add_argument("--instructor-dir", default=str(REPO_ROOT), help=argparse.SUPPRESS)
    q.set_defaults(func=_safe(cmd_roster))

    q = sub.add_parser("regrade", help="grade student code with the instructor's tests and grader")
    which = q.add_mutually_exclusive_group(required=True)
    which.add_argument("--repo", metavar="OWNER/REPO", help="one repository")
    which.add_argument("--all", action="store_true", help="every repository of the roster")
    q.add_argument("--roster")
    q.add_argument("--org")
    q.add_argument("--template", metavar="OWNER/REPO")
    q.add_argument("--prefix")
    q.add_argument("--shard", metavar="K/N", help="only every N-th student starting at K (class workflow)")
    q.add_argument("--results", default="regrade-results", help="folder for the JSON results (default regrade-results)")
    q.add_argument("--clone-base", help="clone from BASE/OWNER/REPO.git (default $GITHUB_SERVER_URL or https://github.com;"
                                        " file:// or a local folder works too)")
    q.add_argument("--clone-url", help="with --repo: clone exactly this URL or path")
    q.add_argument("--milestones", action="store_true", help="also run the milestones (slow)")
    q.add_argument("--unsandboxed", action="store_true",
                   help="grade without the bubblewrap sandbox (macOS, no bwrap): results are marked unverified")
    q.add_argument("--seed", type=int, default=None, help="seed of the probes' inputs (default: a fresh one; "
                                                          "give a result's `seed` to reproduce it)")
    q.add_argument("--timeout", type=float, default=1800.0, help="time limit per repository in seconds")
    q.add_argument("--memory-mb", type=int, default=4096, help="memory limit of the grading process")
    q.add_argument("--keep-work", action="store_true", help="keep each repository's work folder (debugging)")
    q.add_argument("--strict", action="store_true", help="exit 1 if any repository could not be graded cleanly")
    q.add_argument("--post-status", action="store_true",
                   help=f"post the result as a commit status ({VERIFIED_CONTEXT}) on the graded commit "
                        "(token: Commit statuses read+write)")
    q.add_argument("--instructor-dir", default=str(REPO_ROOT), help=argparse.SUPPRESS)
    q.set_defaults(func=_safe(cmd_regrade))

    q = sub.add_parser("merge", help="merge regrade result folders (shards) into one")
    q.add_argument("dirs", nargs="+", help="result folders (searched recursively)")
    q.add_argument("--out", required=True)
    q.set_defaults(func=_safe(cmd_merge))

    q = sub.add_parser("cost", help="replay one student's course as pushes and report the Actions minutes",
                       description="Replay one student's course as a history of pushes on a real student release, "
                                   "graded as .github/workflows/grade.yml grades them, and report the GitHub "
                                   "Actions minutes of one student and of a class (grading/instructor/replay.py).")
    add_cost_arguments(q)
    q.set_defaults(func=cmd_cost)

    q = sub.add_parser("lock", help="make every student's default branch read-only at the deadline")
    _common(q)
    q.add_argument("--at", help="deadline, ISO 8601 (default: now)")
    q.add_argument("--wait", action="store_true", help="sleep until --at, then lock")
    q.add_argument("--unlock", action="store_true", help="undo a lock")
    q.set_defaults(func=_safe(cmd_lock))

    return p


def _safe(command):
    """A sub-command that reports ClassroomError/GitHubError as one clean line (exit 2), never a traceback."""
    def run(args) -> int:
        try:
            return command(args)
        except (ClassroomError, GitHubError, TokenMissing) as exc:
            print(f"tito classroom: {exc}", file=sys.stderr)
            return 2
    run.__name__ = command.__name__
    run.__doc__ = command.__doc__
    return run


def run(args) -> int:
    return args.func(args)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="tito")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
