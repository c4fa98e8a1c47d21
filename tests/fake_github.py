"""A local stand-in for the GitHub REST API, for the tests of `tito classroom`.

    with FakeGitHub(token="t0ken") as gh:          # serves http://127.0.0.1:<port>
        gh.add_repo("course", "template", {"README.md": b"hi"}, is_template=True)
        os.environ["GITHUB_API_URL"] = gh.url

It answers every endpoint `grading/instructor/github.py` uses, with the response shapes of GitHub's published
API description (github/rest-api-description, version 2022-11-28), trimmed to the fields that
matter. Git objects get their real git hashes (blob/tree/commit), so blob SHAs can be compared
with what `git hash-object` gives for the same bytes.

Faults are scripted with `inject(method, path_regex, status, headers=..., body=..., times=1)`:
the next `times` matching requests get that answer instead of the real one. Every request is
recorded in `requests` (method, path, query, body) for assertions; the Authorization header is
checked against the token and not recorded.

Also a miniature two-module course (`make_mini_course`) for the tests of release and regrade.

Endpoints:
  GET    /repos/{owner}/{repo}
  POST   /repos/{template_owner}/{template_repo}/generate
  GET    /repos/{owner}/{repo}/collaborators/{username}
  PUT    /repos/{owner}/{repo}/collaborators/{username}
  DELETE /repos/{owner}/{repo}/collaborators/{username}
  GET    /repos/{owner}/{repo}/invitations
  PATCH  /repos/{owner}/{repo}/invitations/{invitation_id}
  DELETE /repos/{owner}/{repo}/invitations/{invitation_id}
  GET    /repos/{owner}/{repo}/branches/{branch}/protection
  PUT    /repos/{owner}/{repo}/branches/{branch}/protection
  DELETE /repos/{owner}/{repo}/branches/{branch}/protection
  GET    /repos/{owner}/{repo}/contents/{path}?ref=
  GET    /repos/{owner}/{repo}/commits?sha=&path=&since=&until=&per_page=&page=
  GET    /repos/{owner}/{repo}/git/trees/{tree_sha}?recursive=1
  GET    /repos/{owner}/{repo}/issues/{number}
  PATCH  /repos/{owner}/{repo}/issues/{number}                  (state, state_reason)
  GET    /repos/{owner}/{repo}/issues/{number}/comments
  POST   /repos/{owner}/{repo}/issues/{number}/comments
  POST   /repos/{owner}/{repo}/statuses/{sha}
  GET    /repos/{owner}/{repo}/commits/{ref}/statuses

`generate_delay = N` makes a generated repository answer like an empty one (409 on commits, 404 on its
branch) for its next N requests, as GitHub's asynchronous `generate` does. `open_issue(...)` files an issue
and returns the `issues: opened` event payload a workflow would get in $GITHUB_EVENT_PATH.
"""
from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

DOCS = "https://docs.github.com/rest"
BOT = "github-actions[bot]"


# ---- git objects ------------------------------------------------------------------------------------
def git_hash(kind: str, data: bytes) -> str:
    return hashlib.sha1(f"{kind} {len(data)}\0".encode() + data).hexdigest()


def blob_sha(data: bytes) -> str:
    return git_hash("blob", data)


def tree_sha(files: dict[str, bytes], modes: dict[str, str] | None = None) -> str:
    """The git tree hash of a flat {path: bytes} mapping (sub-trees built from the paths)."""
    modes = modes or {}

    def build(prefix: str) -> str:
        entries = {}
        for path in files:
            if not path.startswith(prefix):
                continue
            rest = path[len(prefix):]
            name, _, sub = rest.partition("/")
            if sub:
                entries[name] = ("40000", bytes.fromhex(build(prefix + name + "/")), True)
            else:
                entries[name] = (modes.get(path, "100644"), bytes.fromhex(blob_sha(files[path])), False)
        body = b"".join(f"{mode} {name}".encode() + b"\0" + sha
                        for name, (mode, sha, is_tree) in sorted(entries.items(),
                                                                  key=lambda kv: kv[0] + ("/" if kv[1][2] else "")))
        return git_hash("tree", body)

    return build("")


def _iso(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# ---- state ---------------------------------------------------------------------------------------------
@dataclass
class Commit:
    sha: str
    tree: str
    parents: list[str]
    message: str
    date: datetime
    author: str  # login
    files: dict[str, bytes]


@dataclass
class Repo:
    id: int
    owner: str
    name: str
    private: bool = True
    is_template: bool = False
    default_branch: str = "main"
    branches: dict = field(default_factory=dict)       # name -> head commit sha
    commits: dict = field(default_factory=dict)        # sha -> Commit
    collaborators: set = field(default_factory=set)
    invitations: dict = field(default_factory=dict)    # id -> dict
    protection: dict = field(default_factory=dict)     # branch -> dict
    issues: dict = field(default_factory=dict)         # number -> dict (with "comments": [...])
    statuses: dict = field(default_factory=dict)       # commit sha -> [status dict, newest last]
    pending_files: dict | None = None                  # files `generate` has not committed yet
    pending_author: str = ""
    pending_requests: int = 0                          # ... until this many more requests have touched it

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


class State:
    def __init__(self):
        self.repos: dict[str, Repo] = {}
        self._ids = itertools.count(1000)
        self.clock = datetime(2026, 9, 1, 12, 0, tzinfo=timezone.utc)
        self.lock = threading.RLock()

    def repo(self, owner: str, name: str) -> Repo | None:
        return self.repos.get(f"{owner}/{name}".lower())

    def add_repo(self, owner: str, name: str, files: dict[str, bytes] | None = None, *, is_template=False,
                 private=True, message="Initial commit", author="instructor", date=None) -> Repo:
        with self.lock:
            repo = Repo(next(self._ids), owner, name, private=private, is_template=is_template)
            self.repos[repo.full_name.lower()] = repo
            if files is not None:
                self.push(owner, name, files, message=message, author=author, date=date, replace=True)
            return repo

    def push(self, owner: str, name: str, files: dict[str, bytes | None], *, message="update", author=None,
             date=None, replace=False, new_root=False) -> Commit:
        """Commit `files` (None deletes a path) on the default branch; replace=True sets the whole tree."""
        with self.lock:
            repo = self.repo(owner, name)
            head = repo.branches.get(repo.default_branch)
            base = {} if replace or head is None else dict(repo.commits[head].files)
            for path, data in files.items():
                if data is None:
                    base.pop(path, None)
                else:
                    base[path] = data if isinstance(data, bytes) else str(data).encode()
            self.clock += timedelta(minutes=1)
            date = date or self.clock
            tree = tree_sha(base)
            parents = [] if head is None or new_root else [head]
            who = author or owner
            raw = (f"tree {tree}\n" + "".join(f"parent {p}\n" for p in parents)
                   + f"author {who} <{who}@users.noreply.github.com> {int(date.timestamp())} +0000\n"
                   + f"committer {who} <{who}@users.noreply.github.com> {int(date.timestamp())} +0000\n\n"
                   + message + "\n").encode()
            commit = Commit(git_hash("commit", raw), tree, parents, message, date, who, base)
            repo.commits[commit.sha] = commit
            repo.branches[repo.default_branch] = commit.sha
            return commit

    def history(self, repo: Repo, ref: str | None = None) -> list[Commit]:
        """Commits reachable from `ref` (default branch), newest first."""
        start = self.resolve(repo, ref or repo.default_branch)
        if start is None:
            return []
        seen, out, stack = set(), [], [start]
        while stack:
            sha = stack.pop()
            if sha in seen:
                continue
            seen.add(sha)
            out.append(repo.commits[sha])
            stack.extend(repo.commits[sha].parents)
        return sorted(out, key=lambda c: c.date, reverse=True)

    def resolve(self, repo: Repo, ref: str) -> str | None:
        if ref in repo.branches:
            return repo.branches[ref]
        if ref in repo.commits:
            return ref
        matches = [sha for sha in repo.commits if sha.startswith(ref)] if len(ref) >= 7 else []
        return matches[0] if len(matches) == 1 else None

    def adopt_commit(self, owner: str, name: str, sha: str) -> None:
        """Know a commit made outside the fake (a local git repository pushed "for real") by its sha, as a copy
        of the head commit, so statuses can be posted on it."""
        with self.lock:
            repo = self.repo(owner, name)
            head = repo.commits[repo.branches[repo.default_branch]]
            repo.commits[sha] = Commit(sha, head.tree, [head.sha], "pushed elsewhere", head.date, head.author,
                                       dict(head.files))

    def open_issue(self, owner: str, name: str, login: str, title: str = "Join the course", body: str = "",
                   labels=("join-the-course",), user_type: str = "User") -> dict:
        """File an issue as `login`; returns the `issues: opened` event payload (GitHub's shape, trimmed)."""
        with self.lock:
            repo = self.repo(owner, name)
            number = len(repo.issues) + 1
            self.clock += timedelta(seconds=1)
            base = "https://api.github.com"
            user = {**user_json(base, login, user_type)}
            issue = {"number": number, "title": title, "body": body, "state": "open", "state_reason": None,
                     "user": user, "labels": [{"name": n} for n in labels], "created_at": _iso(self.clock),
                     "html_url": f"https://github.com/{repo.full_name}/issues/{number}", "comments": []}
            repo.issues[number] = issue
            public = {k: v for k, v in issue.items() if k != "comments"}
            return {"action": "opened", "issue": {**public, "comments": 0}, "repository": repo_json(base, repo),
                    "sender": user}

    def accept_invitation(self, owner: str, name: str, login: str) -> None:
        with self.lock:
            repo = self.repo(owner, name)
            for inv_id, inv in list(repo.invitations.items()):
                if inv["invitee"]["login"].lower() == login.lower():
                    del repo.invitations[inv_id]
                    repo.collaborators.add(login.lower())

    def expire_invitation(self, owner: str, name: str, login: str) -> None:
        with self.lock:
            for inv in self.repo(owner, name).invitations.values():
                if inv["invitee"]["login"].lower() == login.lower():
                    inv["expired"] = True


# ---- JSON shapes -------------------------------------------------------------------------------------
def user_json(base: str, login: str, kind: str = "User") -> dict:
    return {"login": login, "id": abs(hash(login)) % 10**8, "node_id": "U_" + login, "type": kind,
            "site_admin": False, "url": f"{base}/users/{login}", "html_url": f"https://github.com/{login}"}


def repo_json(base: str, repo: Repo) -> dict:
    return {"id": repo.id, "node_id": f"R_{repo.id}", "name": repo.name, "full_name": repo.full_name,
            "owner": user_json(base, repo.owner, "Organization"), "private": repo.private,
            "visibility": "private" if repo.private else "public", "is_template": repo.is_template,
            "default_branch": repo.default_branch, "fork": False,
            "html_url": f"https://github.com/{repo.full_name}", "url": f"{base}/repos/{repo.full_name}",
            "clone_url": f"https://github.com/{repo.full_name}.git",
            "permissions": {"admin": True, "maintain": True, "push": True, "triage": True, "pull": True}}


def commit_json(base: str, repo: Repo, c: Commit) -> dict:
    person = {"name": c.author, "email": f"{c.author}@users.noreply.github.com", "date": _iso(c.date)}
    api = f"{base}/repos/{repo.full_name}"
    return {"sha": c.sha, "node_id": "C_" + c.sha[:12], "url": f"{api}/commits/{c.sha}",
            "html_url": f"https://github.com/{repo.full_name}/commit/{c.sha}",
            "commit": {"author": person, "committer": dict(person), "message": c.message,
                       "tree": {"sha": c.tree, "url": f"{api}/git/trees/{c.tree}"},
                       "url": f"{api}/git/commits/{c.sha}", "comment_count": 0},
            "author": user_json(base, c.author, "Bot" if c.author.endswith("[bot]") else "User"),
            "committer": user_json(base, c.author, "Bot" if c.author.endswith("[bot]") else "User"),
            "parents": [{"sha": p, "url": f"{api}/commits/{p}"} for p in c.parents]}


def invitation_json(base: str, repo: Repo, inv_id: int, login: str, created: datetime, permissions="write") -> dict:
    return {"id": inv_id, "node_id": f"I_{inv_id}", "repository": repo_json(base, repo),
            "invitee": user_json(base, login), "inviter": user_json(base, "instructor"),
            "permissions": permissions, "created_at": _iso(created), "expired": False,
            "url": f"{base}/user/repository_invitations/{inv_id}",
            "html_url": f"https://github.com/{repo.full_name}/invitations"}


def protection_json(base: str, repo: Repo, branch: str, body: dict) -> dict:
    url = f"{base}/repos/{repo.full_name}/branches/{branch}/protection"
    out = {"url": url,
           "enforce_admins": {"url": url + "/enforce_admins", "enabled": bool(body.get("enforce_admins"))},
           "allow_force_pushes": {"enabled": bool(body.get("allow_force_pushes"))},
           "allow_deletions": {"enabled": bool(body.get("allow_deletions"))},
           "lock_branch": {"enabled": bool(body.get("lock_branch"))},
           "required_linear_history": {"enabled": bool(body.get("required_linear_history"))},
           "block_creations": {"enabled": False},
           "required_conversation_resolution": {"enabled": False},
           "allow_fork_syncing": {"enabled": False}}
    return out


# ---- the server -------------------------------------------------------------------------------------
@dataclass
class Fault:
    method: str
    path: re.Pattern
    status: int
    headers: dict
    body: object
    times: int


class FakeGitHub:
    """Start with `with FakeGitHub() as gh:` or `gh.start()` / `gh.stop()`."""

    def __init__(self, token: str = "test-token-not-secret", per_page_default: int = 30):
        self.token = token
        self.state = State()
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str, dict, object]] = []
        self.per_page_default = per_page_default
        self.rate_remaining = 5000
        self.generate_delay = 0
        self._server = None
        self._thread = None

    # convenience pass-throughs
    def add_repo(self, *a, **kw):
        return self.state.add_repo(*a, **kw)

    def push(self, *a, **kw):
        return self.state.push(*a, **kw)

    def repo(self, owner, name):
        return self.state.repo(owner, name)

    def inject(self, method: str, path_regex: str, status: int, headers: dict | None = None, body=None,
               times: int = 1) -> None:
        self.faults.append(Fault(method.upper(), re.compile(path_regex), status, dict(headers or {}),
                                 body if body is not None else {"message": "injected fault"}, times))

    def calls(self, method: str | None = None, path_regex: str | None = None) -> list:
        return [r for r in self.requests if (method is None or r[0] == method)
                and (path_regex is None or re.search(path_regex, r[1]))]

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "FakeGitHub":
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    fake: FakeGitHub
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # one small response per request: do not wait for delayed ACKs

    def log_message(self, *args):  # keep test output clean
        pass

    # every verb goes through one dispatcher
    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_PATCH(self):
        self._dispatch("PATCH")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def _send(self, status: int, body=None, headers: dict | None = None) -> None:
        fake = self.fake
        data = b"" if body is None or status == 204 else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-GitHub-Api-Version-Selected", "2022-11-28")
        hdrs = {"x-ratelimit-limit": "5000", "x-ratelimit-remaining": str(fake.rate_remaining),
                "x-ratelimit-reset": "0", "x-ratelimit-resource": "core"}
        hdrs.update(headers or {})
        for k, v in hdrs.items():
            self.send_header(k, str(v))
        self.end_headers()
        if data:
            self.wfile.write(data)

    def _error(self, status: int, message: str, errors=None, headers=None) -> None:
        body = {"message": message, "documentation_url": DOCS, "status": str(status)}
        if errors:
            body["errors"] = errors
        self._send(status, body, headers)

    def _dispatch(self, method: str) -> None:
        fake = self.fake
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            self._error(400, "Problems parsing JSON")
            return
        fake.requests.append((method, path, query, body))
        if self.headers.get("Authorization") != f"Bearer {fake.token}":
            self._error(401, "Bad credentials")
            return
        for fault in fake.faults:
            if fault.times > 0 and fault.method == method and fault.path.search(path):
                fault.times -= 1
                self._send(fault.status, fault.body, fault.headers)
                return
        fake.rate_remaining = max(0, fake.rate_remaining - 1)
        try:
            with fake.state.lock:
                self._route(method, path, query, body)
        except Exception as exc:  # noqa: BLE001 - a bug in the fake must show up as a 500, not hang
            self._error(500, f"fake server error: {type(exc).__name__}: {exc}")

    # ---- routing ----------------------------------------------------------------------------------
    def _route(self, method, path, query, body):
        base = self.fake.url
        m = re.match(r"^/repos/([^/]+)/([^/]+)(/.*)?$", path)
        if not m:
            return self._error(404, "Not Found")
        owner, name, rest = m.group(1), m.group(2), m.group(3) or ""
        repo = self.fake.state.repo(owner, name)
        if rest == "/generate" and method == "POST":
            return self._generate(repo, body or {})
        if repo is None:
            return self._error(404, "Not Found")
        if repo.pending_files is not None:  # `generate` finishes in the background
            repo.pending_requests -= 1
            if repo.pending_requests < 0:
                files, repo.pending_files = repo.pending_files, None
                self.fake.state.push(owner, name, files, message="Initial commit", author=repo.pending_author,
                                     replace=True)
        if rest == "" and method == "GET":
            return self._send(200, repo_json(base, repo))
        if (c := re.match(r"^/collaborators/([^/]+)$", rest)):
            return self._collaborator(method, repo, c.group(1), body or {})
        if rest == "/invitations" and method == "GET":
            return self._paginated(sorted(repo.invitations.values(), key=lambda i: i["id"]), query)
        if (c := re.match(r"^/invitations/(\d+)$", rest)):
            return self._invitation(method, repo, int(c.group(1)), body or {})
        if (c := re.match(r"^/branches/(.+)/protection$", rest)):
            return self._protection(method, repo, c.group(1), body)
        if (c := re.match(r"^/contents/(.*)$", rest)) and method == "GET":
            return self._contents(repo, c.group(1).strip("/"), query)
        if rest == "/commits" and method == "GET":
            return self._commits(repo, query)
        if (c := re.match(r"^/git/trees/(.+)$", rest)) and method == "GET":
            return self._tree(repo, c.group(1), query)
        if (c := re.match(r"^/issues/(\d+)(/comments)?$", rest)):
            return self._issue(method, repo, int(c.group(1)), bool(c.group(2)), body or {}, query)
        if (c := re.match(r"^/statuses/([0-9a-f]{40})$", rest)) and method == "POST":
            return self._status(repo, c.group(1), body or {})
        if (c := re.match(r"^/commits/([^/]+)/statuses$", rest)) and method == "GET":
            sha = self.fake.state.resolve(repo, c.group(1))
            return self._paginated(list(reversed(repo.statuses.get(sha, []))), query)
        return self._error(404, "Not Found")

    def _issue(self, method, repo: Repo, number: int, comments: bool, body: dict, query: dict) -> None:
        issue = repo.issues.get(number)
        if issue is None:
            return self._error(404, "Not Found")
        public = {k: v for k, v in issue.items() if k != "comments"}
        if comments and method == "GET":
            return self._paginated(issue["comments"], query)
        if comments and method == "POST":
            if not isinstance(body.get("body"), str) or not body["body"]:
                return self._error(422, "Validation Failed", [{"resource": "IssueComment", "field": "body",
                                                               "code": "missing_field"}])
            comment = {"id": next(self.fake.state._ids), "body": body["body"],
                       "user": user_json(self.fake.url, "tinytorch-bot", "Bot"),
                       "html_url": f"{issue['html_url']}#issuecomment-{len(issue['comments']) + 1}"}
            issue["comments"].append(comment)
            return self._send(201, comment)
        if method == "GET":
            return self._send(200, {**public, "comments": len(issue["comments"])})
        if method == "PATCH":
            if body.get("state") not in (None, "open", "closed") or \
                    body.get("state_reason") not in (None, "completed", "not_planned", "reopened"):
                return self._error(422, "Validation Failed")
            issue["state"] = body.get("state") or issue["state"]
            issue["state_reason"] = body.get("state_reason")
            return self._send(200, {**public, **{k: issue[k] for k in ("state", "state_reason")},
                                    "comments": len(issue["comments"])})
        return self._error(404, "Not Found")

    def _status(self, repo: Repo, sha: str, body: dict) -> None:
        if sha not in repo.commits:
            return self._error(422, f"No commit found for SHA: {sha}")
        if body.get("state") not in ("error", "failure", "pending", "success"):
            return self._error(422, "Validation Failed", [{"resource": "Status", "field": "state", "code": "invalid"}])
        if len(body.get("description") or "") > 140:
            return self._error(422, "Validation Failed", [{"resource": "Status", "field": "description",
                                                           "code": "custom", "message": "description is too long "
                                                           "(maximum is 140 characters)"}])
        status = {"id": next(self.fake.state._ids), "state": body["state"], "context": body.get("context") or "default",
                  "description": body.get("description"), "target_url": body.get("target_url"),
                  "creator": user_json(self.fake.url, "instructor")}
        repo.statuses.setdefault(sha, []).append(status)
        return self._send(201, status)

    def _paginated(self, items: list, query: dict) -> None:
        per_page = max(1, min(int(query.get("per_page", self.fake.per_page_default)), 100))
        page = max(1, int(query.get("page", 1)))
        last = max(1, -(-len(items) // per_page))
        chunk = items[(page - 1) * per_page: page * per_page]
        base_q = {k: v for k, v in query.items() if k != "page"}
        url = f"{self.fake.url}{urlsplit(self.path).path}"

        def link(p):
            return f"<{url}?{urlencode({**base_q, 'page': p})}>"

        rels = []
        if page < last:
            rels += [f'{link(page + 1)}; rel="next"', f'{link(last)}; rel="last"']
        if page > 1:
            rels += [f'{link(1)}; rel="first"', f'{link(page - 1)}; rel="prev"']
        self._send(200, chunk, {"Link": ", ".join(rels)} if rels else None)

    def _generate(self, template: Repo | None, body: dict) -> None:
        state = self.fake.state
        if template is None:
            return self._error(404, "Not Found")
        if not template.is_template:
            return self._error(422, "Repository creation failed.",
                               [{"resource": "Repository", "code": "custom", "field": "template",
                                 "message": f"{template.full_name} is not a template repository"}])
        owner, name = body.get("owner") or template.owner, body.get("name")
        if not name:
            return self._error(422, "Invalid request.\n\n\"name\" wasn't supplied.")
        if state.repo(owner, name) is not None:
            return self._error(422, "Repository creation failed.",
                               [{"resource": "Repository", "code": "custom", "field": "name",
                                 "message": "name already exists on this account"}])
        new = state.add_repo(owner, name, private=bool(body.get("private", False)))
        head = template.branches.get(template.default_branch)
        if head and self.fake.generate_delay > 0:
            new.pending_files, new.pending_requests = dict(template.commits[head].files), self.fake.generate_delay
            new.pending_author = template.owner
        elif head:
            state.push(owner, name, dict(template.commits[head].files), message="Initial commit",
                       author=template.owner, replace=True)
        self._send(201, repo_json(self.fake.url, new))

    def _collaborator(self, method, repo: Repo, login: str, body: dict) -> None:
        key = login.lower()
        if method == "GET":
            return self._send(204) if key in repo.collaborators else self._error(404, "Not Found")
        if method == "PUT":
            if key in repo.collaborators:
                return self._send(204)
            for inv in repo.invitations.values():
                if inv["invitee"]["login"].lower() == key and not inv["expired"]:
                    return self._send(201, inv)
            permission = {"pull": "read", "push": "write", "admin": "admin", "maintain": "maintain",
                          "triage": "triage"}.get(body.get("permission", "push"), "write")
            inv_id = next(self.fake.state._ids)
            self.fake.state.clock += timedelta(seconds=1)
            inv = invitation_json(self.fake.url, repo, inv_id, login, self.fake.state.clock, permission)
            repo.invitations[inv_id] = inv
            return self._send(201, inv)
        if method == "DELETE":
            repo.collaborators.discard(key)
            return self._send(204)
        return self._error(404, "Not Found")

    def _invitation(self, method, repo: Repo, inv_id: int, body: dict) -> None:
        if inv_id not in repo.invitations:
            return self._error(404, "Not Found")
        if method == "DELETE":
            del repo.invitations[inv_id]
            return self._send(204)
        if method == "PATCH":
            if body.get("permissions") not in ("read", "write", "maintain", "triage", "admin"):
                return self._error(422, "Validation Failed", [{"resource": "RepositoryInvitation",
                                                               "field": "permissions", "code": "invalid"}])
            repo.invitations[inv_id]["permissions"] = body["permissions"]
            return self._send(200, repo.invitations[inv_id])
        return self._error(404, "Not Found")

    def _protection(self, method, repo: Repo, branch: str, body) -> None:
        if branch not in repo.branches:
            return self._error(404, "Branch not found")
        if method == "GET":
            if branch not in repo.protection:
                return self._error(404, "Branch not protected")
            return self._send(200, protection_json(self.fake.url, repo, branch, repo.protection[branch]))
        if method == "PUT":
            required = ("required_status_checks", "enforce_admins", "required_pull_request_reviews", "restrictions")
            missing = [k for k in required if not isinstance(body, dict) or k not in body]
            if missing:
                return self._error(422, "Invalid request.\n\n" + ", ".join(f'"{k}" wasn\'t supplied.' for k in missing))
            repo.protection[branch] = dict(body)
            return self._send(200, protection_json(self.fake.url, repo, branch, body))
        if method == "DELETE":
            repo.protection.pop(branch, None)
            return self._send(204)
        return self._error(404, "Not Found")

    def _contents(self, repo: Repo, path: str, query: dict) -> None:
        sha = self.fake.state.resolve(repo, query.get("ref") or repo.default_branch)
        if sha is None:
            return self._error(404, f"No commit found for the ref {query.get('ref')}")
        files = repo.commits[sha].files
        api = f"{self.fake.url}/repos/{repo.full_name}"
        if path in files:
            data = files[path]
            encoded = base64.encodebytes(data).decode()  # GitHub wraps base64 at 60-76 columns
            return self._send(200, {"type": "file", "encoding": "base64", "size": len(data),
                                    "name": path.rsplit("/", 1)[-1], "path": path, "content": encoded,
                                    "sha": blob_sha(data), "url": f"{api}/contents/{path}",
                                    "git_url": f"{api}/git/blobs/{blob_sha(data)}",
                                    "html_url": f"https://github.com/{repo.full_name}/blob/{sha}/{path}",
                                    "download_url": None})
        prefix = path + "/" if path else ""
        names = sorted({p[len(prefix):].split("/")[0] for p in files if p.startswith(prefix)})
        if not names:
            return self._error(404, "Not Found")
        listing = []
        for n in names:
            full = prefix + n
            is_file = full in files
            listing.append({"type": "file" if is_file else "dir", "name": n, "path": full,
                            "sha": blob_sha(files[full]) if is_file else "0" * 40,
                            "size": len(files[full]) if is_file else 0, "url": f"{api}/contents/{full}"})
        return self._send(200, listing)

    def _commits(self, repo: Repo, query: dict) -> None:
        if not repo.commits:
            return self._error(409, "Git Repository is empty.")
        ref = query.get("sha")
        if ref and self.fake.state.resolve(repo, ref) is None:
            return self._error(404, f"No commit found for SHA: {ref}")
        history = self.fake.state.history(repo, ref)
        if query.get("path"):
            p = query["path"]

            def touches(c: Commit) -> bool:  # the file `p`, or anything under the folder `p`
                parent_files = repo.commits[c.parents[0]].files if c.parents else {}
                paths = {f for f in set(c.files) | set(parent_files) if f == p or f.startswith(p.rstrip("/") + "/")}
                return any(c.files.get(f) != parent_files.get(f) for f in paths)

            history = [c for c in history if touches(c)]
        if query.get("since"):
            history = [c for c in history if c.date >= _parse_iso(query["since"])]
        if query.get("until"):
            history = [c for c in history if c.date <= _parse_iso(query["until"])]
        return self._paginated([commit_json(self.fake.url, repo, c) for c in history], query)

    def _tree(self, repo: Repo, ref: str, query: dict) -> None:
        state = self.fake.state
        commit = None
        sha = state.resolve(repo, ref)
        if sha:
            commit = repo.commits[sha]
        else:
            commit = next((c for c in repo.commits.values() if c.tree == ref), None)
        if commit is None:
            return self._error(404, "Not Found")
        files = commit.files
        api = f"{self.fake.url}/repos/{repo.full_name}"
        entries = []
        dirs = sorted({"/".join(p.split("/")[:i]) for p in files for i in range(1, p.count("/") + 1)})
        recursive = query.get("recursive") not in (None, "", "0", "false")
        for d in dirs:
            if recursive or "/" not in d:
                sub = {p[len(d) + 1:]: v for p, v in files.items() if p.startswith(d + "/")}
                entries.append({"path": d, "mode": "040000", "type": "tree", "sha": tree_sha(sub),
                                "url": f"{api}/git/trees/{tree_sha(sub)}"})
        for p in sorted(files):
            if recursive or "/" not in p:
                entries.append({"path": p, "mode": "100644", "type": "blob", "sha": blob_sha(files[p]),
                                "size": len(files[p]), "url": f"{api}/git/blobs/{blob_sha(files[p])}"})
        entries.sort(key=lambda e: e["path"])
        self._send(200, {"sha": commit.tree, "url": f"{api}/git/trees/{commit.tree}", "tree": entries,
                         "truncated": False})


# ---- a miniature course repository (for tests of release and regrade) -------------------------------
MINI_COURSE_YAML = """\
course: Mini Course
schema: 1
modules:
  - {id: 01_alpha, title: Alpha, source: tinytorch/alpha.py, points: 4, unlocks: null}
  - {id: 02_beta, title: Beta, source: tinytorch/beta.py, points: 6, unlocks: null}
milestones: []
deadlines: {}
"""

MINI_ALPHA = '''"""Module 01: doubling."""


def double(x):
    """2 * x."""
    if x is None:
        raise ValueError("double: x is None")
    # BEGIN SOLUTION
    result = x + x  # the secret sauce of alpha
    return result
    # END SOLUTION


class Scaler:
    def __init__(self, k):
        self.k = k

    def scale(self, x):
        # BEGIN SOLUTION multiply x by the scaler's factor k
        return x * self.k
        # END SOLUTION
'''

MINI_BETA = '''"""Module 02: quadrupling, built on module 01."""
from tinytorch.alpha import double


def quadruple(x):
    # BEGIN SOLUTION
    twice_of_twice = double(double(x))
    return twice_of_twice
    # END SOLUTION
'''

MINI_TESTS = {
    "assignments/01_alpha/test_01_alpha.py": "from tinytorch.alpha import Scaler, double\n\n\n"
                                             "def test_double():\n    assert double(3) == 6\n\n\n"
                                             "def test_scaler():\n    assert Scaler(3).scale(2) == 6\n",
    "assignments/02_beta/test_02_beta.py": "from tinytorch.beta import quadruple\n\n\n"
                                           "def test_quadruple():\n    assert quadruple(2) == 8\n\n\n"
                                           "def test_quadruple_negative():\n    assert quadruple(-1) == -4\n",
}


MINI_PROBES = {
    "grading/instructor/probes/p01_alpha.py": (
        '"""Probes of the mini course\'s module 01."""\nimport numpy as np\n\nMODULE = "01_alpha"\n\n\n'
        'def probe_double(tt, rng):\n    x = rng.standard_normal(6)\n'
        '    return {"y": np.array([tt.alpha.double(float(v)) for v in x])}\n\n\n'
        'def probe_scaler(tt, rng):\n    k, x = rng.standard_normal(2)\n'
        '    return {"y": np.array([tt.alpha.Scaler(float(k)).scale(float(x))])}\n\n\n'
        'PROBES = [probe_double, probe_scaler]\n'),
    "grading/instructor/probes/p02_beta.py": (
        '"""Probes of the mini course\'s module 02."""\nimport numpy as np\n\nMODULE = "02_beta"\n\n\n'
        'def probe_quadruple(tt, rng):\n    x = rng.standard_normal(6)\n'
        '    return {"y": np.array([tt.beta.quadruple(float(v)) for v in x])}\n\n\n'
        'PROBES = [probe_quadruple]\n'),
}


def make_mini_course(root, grading_src=None, git: bool = False):
    """A two-module course at `root`: the real grading/ package (instructor folder included, with probes
    of this course), solution blocks, tests."""
    import shutil
    import subprocess
    from pathlib import Path
    root = Path(root)
    grading_src = Path(grading_src or Path(__file__).resolve().parent.parent / "grading")
    files = {
        "README.md": "# Mini course\n\nIntro.\n\n<!-- tinytorch:progress:start -->\nold progress: 10/10\n"
                     "<!-- tinytorch:progress:end -->\n\nMore text.\n",
        ".gitignore": "__pycache__/\n.tito/\n",
        "pyproject.toml": "[project]\nname = 'mini'\nversion = '0'\n",
        "assignments/course.yaml": MINI_COURSE_YAML,
        "assignments/01_alpha/README.md": "# 01 alpha\nImplement double.\n",
        "assignments/02_beta/README.md": "# 02 beta\nImplement quadruple.\n",
        "tinytorch/__init__.py": "from tinytorch import alpha, beta  # noqa: F401\n",
        "tinytorch/testing.py": "def assert_close(a, b):\n    assert abs(a - b) < 1e-6\n",
        "tinytorch/alpha.py": MINI_ALPHA,
        "tinytorch/beta.py": MINI_BETA,
        "badges/progress.json": '{"points": 10}\n',
        "badges/modules.svg": "<svg/>\n",
        "tests/test_tooling.py": "def test_tooling():\n    pass\n",
        ".github/workflows/grade.yml": "name: grade\non: push\njobs: {}\n",
        ".github/workflows/class-regrade.yml": "name: class\non: workflow_dispatch\njobs: {}\n",
        "milestones/m1_program.py": "print('milestone')\n",
        **MINI_TESTS,
    }
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
    shutil.copytree(grading_src, root / "grading", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__", "*.md", "*.json", "p[0-9][0-9]_*.py"))
    for rel, text in MINI_PROBES.items():   # the probes of this course, not the real one's
        (root / rel).write_text(text, encoding="utf-8")
    (root / "tinytorch" / "__pycache__").mkdir(exist_ok=True)
    (root / "tinytorch" / "__pycache__" / "alpha.cpython-311.pyc").write_bytes(b"junk")
    if git:
        run = lambda *a: subprocess.run(["git", "-C", str(root), *a], check=True, capture_output=True)  # noqa: E731
        run("init", "-q", "-b", "main")
        run("add", "-A")
        run("-c", "user.name=t", "-c", "user.email=t@e", "commit", "-q", "-m", "course")
    return root
