"""Commit the grader's results (badges/ and the README section) back to the branch, safely.

    python -m grading.commit_back --branch main          # what .github/workflows/grade.yml runs

Rules (the workflow relies on them, tests/test_workflow.py checks them against a local bare repository):
- commits only `badges/` and `README.md`, as github-actions[bot], with `[skip ci]` in the message so the
  push does not trigger another grading run;
- never force-pushes; on a non-fast-forward (the student pushed again, or another grading run committed
  first) it runs `git pull --rebase` and retries, a few times with a growing pause;
- if the rebase conflicts (two grading runs both rewrote badges/), it rebuilds the results commit on top of
  the remote branch: our badges/ files, and the remote README with only its progress section replaced -
  so a student's README edits are never undone;
- newest results win: if the remote already holds results for a commit that descends from the one we
  graded, our older results are dropped instead of pushed.
The branch name comes from an argument or $GITHUB_REF_NAME and is only ever passed to git as one argv
element (never through a shell).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from grading import readme_section

BOT_NAME = "github-actions[bot]"
BOT_EMAIL = "41898282+github-actions[bot]@users.noreply.github.com"
PATHS = ("badges", "README.md")


class CommitBackError(RuntimeError):
    pass


def git(repo: Path, *args: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_EDITOR": "true", **(env or {})}
    proc = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, env=full_env)
    if check and proc.returncode != 0:
        raise CommitBackError(f"git {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def _stage(repo: Path) -> None:
    """`git add -A` of badges/ and README.md (only those that exist now or are tracked)."""
    paths = [p for p in PATHS if (repo / p).exists() or git(repo, "ls-files", "--", p).stdout.strip()]
    if paths:
        git(repo, "add", "-A", "--", *paths)


def _bot(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return git(repo, "-c", f"user.name={BOT_NAME}", "-c", f"user.email={BOT_EMAIL}", *args, check=check)


def graded_commit(progress_text: str | None) -> str | None:
    try:
        data = json.loads(progress_text or "")
        sha = data["commit"]["sha"]
    except (ValueError, KeyError, TypeError):
        return None
    return sha if isinstance(sha, str) and len(sha) >= 7 else None


def _commit_message(repo: Path) -> str:
    try:
        data = json.loads((repo / "badges" / "progress.json").read_text(encoding="utf-8"))
        t = data["totals"]
        sha = (data.get("commit") or {}).get("sha") or "working tree"
        return (f"Grade {sha[:7]}: {t['modules_passed']}/{t['modules']} modules, "
                f"{t['points']:g}/{t['max_points']:g} points, {t['milestones_passed']}/{t['milestones']} "
                "milestones [skip ci]")
    except (OSError, ValueError, KeyError, TypeError):
        return "Update grading results [skip ci]"


def _remote_is_newer(repo: Path, remote: str, branch: str, ours: str | None) -> bool:
    """True when the remote's results are for a commit that descends from (is newer than) ours."""
    shown = git(repo, "show", f"{remote}/{branch}:badges/progress.json", check=False)
    theirs = graded_commit(shown.stdout if shown.returncode == 0 else None)
    if not ours or not theirs or theirs == ours:
        return False
    if git(repo, "cat-file", "-e", f"{theirs}^{{commit}}", check=False).returncode != 0:
        return False
    return git(repo, "merge-base", "--is-ancestor", ours, theirs, check=False).returncode == 0


def _snapshot(repo: Path) -> tuple[Path, str | None]:
    """Copy our badges/ and README section aside (to rebuild the commit on top of the remote)."""
    tmp = Path(tempfile.mkdtemp(prefix="tito-commit-back-"))
    if (repo / "badges").is_dir():
        shutil.copytree(repo / "badges", tmp / "badges")
    section = None
    try:
        section = readme_section.extract_section((repo / "README.md").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        pass
    return tmp, section


def _rebuild_on_remote(repo: Path, remote: str, branch: str, snapshot: Path, section: str | None,
                       message: str) -> bool:
    """Reset to the remote branch and re-create our results commit there; False if nothing to commit."""
    git(repo, "reset", "--hard", f"{remote}/{branch}")
    target = repo / "badges"
    if target.exists():
        shutil.rmtree(target)
    if (snapshot / "badges").is_dir():
        shutil.copytree(snapshot / "badges", target)
    readme = repo / "README.md"
    if section is not None and readme.is_file():
        try:
            readme_section.update_readme(readme, section)
        except readme_section.MarkerError as exc:
            print(f"commit-back: README section not updated: {exc}")
    _stage(repo)
    if git(repo, "diff", "--cached", "--quiet", check=False).returncode == 0:
        return False
    _bot(repo, "commit", "-m", message)
    return True


def commit_back(repo: Path | str, branch: str, remote: str = "origin", attempts: int = 5,
                pause: float = 2.0) -> str:
    """Commit and push the results; returns what happened ("pushed", "nothing to commit", ...)."""
    repo = Path(repo)
    if not branch or branch.startswith("-"):
        raise CommitBackError(f"invalid branch name {branch!r}")
    _stage(repo)
    if git(repo, "diff", "--cached", "--quiet", check=False).returncode == 0:
        print("commit-back: results unchanged, nothing to commit")
        return "nothing to commit"
    message = _commit_message(repo)
    _bot(repo, "commit", "-m", message)
    ours = graded_commit((repo / "badges" / "progress.json").read_text(encoding="utf-8")
                         if (repo / "badges" / "progress.json").is_file() else None)
    snapshot, section = _snapshot(repo)
    try:
        for attempt in range(1, attempts + 1):
            push = git(repo, "push", remote, f"HEAD:refs/heads/{branch}", check=False)
            if push.returncode == 0:
                print(f"commit-back: pushed results to {branch} (attempt {attempt})")
                return "pushed"
            print(f"commit-back: push rejected (attempt {attempt}/{attempts}): {push.stderr.strip()[:300]}")
            if attempt == attempts:
                break
            time.sleep(pause * attempt * (0.5 + random.random()))
            git(repo, "fetch", remote, branch)
            if _remote_is_newer(repo, remote, branch, ours):
                print("commit-back: the branch already has results for a newer commit; keeping those")
                git(repo, "reset", "--hard", f"{remote}/{branch}")
                return "newer results already there"
            pull = _bot(repo, "pull", "--rebase", "--autostash", remote, branch, check=False)
            if pull.returncode != 0:
                git(repo, "rebase", "--abort", check=False)
                if _remote_is_newer(repo, remote, branch, ours):  # the pull fetched again: newer results landed
                    print("commit-back: the branch already has results for a newer commit; keeping those")
                    git(repo, "reset", "--hard", f"{remote}/{branch}")
                    return "newer results already there"
                print("commit-back: rebase conflicted (another grading run changed badges/); "
                      "re-creating the results commit on top of the branch")
                if not _rebuild_on_remote(repo, remote, branch, snapshot, section, message):
                    print("commit-back: the branch already has these results")
                    return "nothing to commit"
        raise CommitBackError(f"could not push the results after {attempts} attempts")
    finally:
        shutil.rmtree(snapshot, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grading.commit_back", description=__doc__.split("\n\n")[0])
    parser.add_argument("--branch", default=os.environ.get("GITHUB_REF_NAME", ""),
                        help="branch to push to (default: $GITHUB_REF_NAME)")
    parser.add_argument("--remote", default="origin")
    parser.add_argument("--repo", default=".", help="repository to commit in (default: current directory)")
    parser.add_argument("--attempts", type=int, default=5)
    parser.add_argument("--pause", type=float, default=2.0, help="seconds to wait before the first retry")
    args = parser.parse_args(argv)
    try:
        commit_back(Path(args.repo), args.branch, args.remote, args.attempts, args.pause)
    except CommitBackError as exc:
        print(f"commit-back failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
