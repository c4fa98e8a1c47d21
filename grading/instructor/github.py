"""A small GitHub REST client on `requests`, for `tito classroom`.

- Token from `GITHUB_TOKEN`, API base from `GITHUB_API_URL` (default https://api.github.com), as in
  GitHub Actions, so GitHub Enterprise Server or a local test server can stand in.
- The token is never printed, logged, or put into an exception or a repr: it lives only in the
  Authorization header of each request, and errors carry the method, path, repository and status.
- Pagination follows the `Link: <...>; rel="next"` header.
- Rate limits (GitHub's documented rules): a `Retry-After` header is honoured; a response with
  `x-ratelimit-remaining: 0` waits until `x-ratelimit-reset`; a secondary rate limit without either
  waits at least a minute, doubling each time; 5xx and connection errors are retried with
  exponential back-off. Requests that create content are spaced (`min_write_interval`) because
  GitHub's secondary limits punish bursts of writes. `sleep` and `clock` are injectable for tests.
"""
from __future__ import annotations

import os
import re
import sys
import time
from dataclasses import dataclass
from typing import Callable, Iterator
from urllib.parse import quote

import requests

DEFAULT_API_URL = "https://api.github.com"
API_VERSION = "2022-11-28"
_LINK = re.compile(r'<([^>]+)>\s*;\s*rel="([^"]+)"')


class GitHubError(RuntimeError):
    """A GitHub request failed; says which request, which repository and which status."""

    def __init__(self, method: str, path: str, status: int | None, message: str, repo: str | None = None,
                 errors: list | None = None):
        self.method, self.path, self.status, self.repo = method, path, status, repo
        self.api_message = message
        self.errors = errors or []
        where = f" for repository {repo}" if repo else ""
        code = f"HTTP {status}" if status is not None else "no response"
        detail = message
        extra = "; ".join(str(e.get("message") or e.get("code") or e) if isinstance(e, dict) else str(e)
                          for e in self.errors)
        if extra and extra not in detail:
            detail = f"{detail} ({extra})"
        super().__init__(f"GitHub {method} {path}{where} failed: {code}: {detail}")

    @property
    def already_exists(self) -> bool:
        text = (self.api_message + " " + " ".join(str(e) for e in self.errors)).lower()
        return self.status == 422 and "already exists" in text


class TokenMissing(RuntimeError):
    """GITHUB_TOKEN is not set."""


@dataclass
class Response:
    status: int
    data: object
    headers: dict


def repo_of(path: str) -> str | None:
    """'owner/repo' from an API path like /repos/owner/repo/..., for error messages."""
    m = re.match(r"^/repos/([^/]+)/([^/?]+)", path)
    return f"{m.group(1)}/{m.group(2)}" if m else None


class GitHub:
    """GitHub REST API client. `GitHub.from_env()` reads GITHUB_TOKEN and GITHUB_API_URL."""

    def __init__(self, token: str | None, base_url: str = DEFAULT_API_URL, *, sleep: Callable = time.sleep,
                 clock: Callable = time.time, max_retries: int = 5, max_wait: float = 3600.0,
                 min_write_interval: float = 1.0, timeout: float = 30.0, log: Callable | None = None,
                 session: requests.Session | None = None):
        self.__token = token or None  # name-mangled; never part of repr, str or messages
        self.base_url = base_url.rstrip("/")
        self.sleep, self.clock = sleep, clock
        self.max_retries, self.max_wait = max_retries, max_wait
        self.min_write_interval = min_write_interval
        self.timeout = timeout
        self.log = log or (lambda message: print(message, file=sys.stderr))
        self.session = session or requests.Session()
        self._last_write = None
        self._secondary_wait = 60.0
        self.requests_made = 0

    @classmethod
    def from_env(cls, env=None, **kwargs) -> "GitHub":
        env = os.environ if env is None else env
        token = env.get("GITHUB_TOKEN") or None
        if not token:
            raise TokenMissing("GITHUB_TOKEN is not set; create a token with the 'repo' and "
                               "'admin:org' scopes (or a fine-grained token with Administration and Contents "
                               "permissions) and export it as GITHUB_TOKEN")
        return cls(token, env.get("GITHUB_API_URL") or DEFAULT_API_URL, **kwargs)

    def __repr__(self) -> str:
        return f"GitHub(base_url={self.base_url!r}, token={'***' if self.__token else None})"

    __str__ = __repr__

    # ---- requests -------------------------------------------------------------------------------
    def _headers(self) -> dict:
        headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": API_VERSION,
                   "User-Agent": "tito-classroom"}
        if self.__token:
            headers["Authorization"] = f"Bearer {self.__token}"
        return headers

    def _url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else self.base_url + path

    def _space_writes(self, method: str) -> None:
        if method in ("POST", "PUT", "PATCH", "DELETE") and self.min_write_interval > 0:
            now = self.clock()
            if self._last_write is not None and now - self._last_write < self.min_write_interval:
                self.sleep(self.min_write_interval - (now - self._last_write))
            self._last_write = self.clock()

    def _rate_limit_wait(self, resp: requests.Response, body: dict) -> float | None:
        """Seconds to wait before retrying a rate-limited response, or None if it is not rate limited."""
        headers = resp.headers
        message = str(body.get("message", "")) if isinstance(body, dict) else ""
        if resp.status_code not in (403, 429):
            return None
        retry_after = headers.get("Retry-After")
        if retry_after is not None:
            try:
                return max(0.0, float(retry_after))
            except ValueError:
                return 60.0
        if headers.get("x-ratelimit-remaining") == "0":
            try:
                return max(0.0, float(headers.get("x-ratelimit-reset", "0")) - self.clock()) + 1.0
            except ValueError:
                return 60.0
        if "secondary rate limit" in message.lower() or "abuse" in message.lower() or resp.status_code == 429:
            wait = self._secondary_wait
            self._secondary_wait = min(self._secondary_wait * 2, 15 * 60)
            return wait
        return None

    def request(self, method: str, path: str, *, params: dict | None = None, json=None,
                ok: tuple = (200, 201, 202, 204), repo: str | None = None) -> Response:
        """One API call with retries; raises GitHubError for statuses not in `ok`."""
        method = method.upper()
        repo = repo or repo_of(path if not path.startswith("http") else re.sub(r"^https?://[^/]+", "", path))
        shown = re.sub(r"^https?://[^/]+", "", path)
        backoff = 1.0
        attempt = 0
        while True:
            attempt += 1
            self._space_writes(method)
            try:
                self.requests_made += 1
                resp = self.session.request(method, self._url(path), params=params, json=json,
                                            headers=self._headers(), timeout=self.timeout)
            except requests.RequestException as exc:
                if attempt > self.max_retries:
                    raise GitHubError(method, shown, None, f"{type(exc).__name__} talking to {self.base_url}",
                                      repo) from None
                self.log(f"  network error on {method} {shown} ({type(exc).__name__}); retrying in {backoff:g}s")
                self.sleep(backoff)
                backoff *= 2
                continue
            body = _json(resp)
            if resp.status_code in ok:
                self._after_success(resp)
                return Response(resp.status_code, body, dict(resp.headers))
            wait = self._rate_limit_wait(resp, body)
            if wait is not None and attempt <= self.max_retries:
                if wait > self.max_wait:
                    raise GitHubError(method, shown, resp.status_code,
                                      f"rate limited for {wait:.0f}s, longer than the {self.max_wait:.0f}s this "
                                      "run is allowed to wait; re-run later (the command resumes)", repo)
                self.log(f"  rate limited on {method} {shown} (HTTP {resp.status_code}); waiting {wait:.0f}s")
                self.sleep(wait)
                continue
            if resp.status_code >= 500 and attempt <= self.max_retries:
                self.log(f"  GitHub answered HTTP {resp.status_code} to {method} {shown}; retrying in {backoff:g}s")
                self.sleep(backoff)
                backoff *= 2
                continue
            message = body.get("message", resp.reason or "") if isinstance(body, dict) else (resp.reason or "")
            errors = body.get("errors") if isinstance(body, dict) else None
            raise GitHubError(method, shown, resp.status_code, str(message), repo,
                              errors if isinstance(errors, list) else None)

    def _after_success(self, resp: requests.Response) -> None:
        """Pause before the next request when the primary rate limit is used up."""
        self._secondary_wait = 60.0
        if resp.headers.get("x-ratelimit-remaining") == "0":
            try:
                wait = float(resp.headers.get("x-ratelimit-reset", "0")) - self.clock() + 1.0
            except ValueError:
                return
            if 0 < wait <= self.max_wait:
                self.log(f"  rate limit used up; waiting {wait:.0f}s for it to reset")
                self.sleep(wait)

    def get(self, path: str, **kw) -> object:
        return self.request("GET", path, **kw).data

    def paginate(self, path: str, params: dict | None = None, repo: str | None = None) -> Iterator:
        """Every item of a list endpoint, following `Link: rel="next"`."""
        params = dict(params or {})
        params.setdefault("per_page", 100)
        url, first = path, True
        while url:
            resp = self.request("GET", url, params=params if first else None, repo=repo or repo_of(path))
            first = False
            data = resp.data
            items = data if isinstance(data, list) else (data or {}).get("items", [])
            yield from items
            url = links(resp.headers.get("Link") or resp.headers.get("link") or "").get("next")

    # ---- endpoints used by tito classroom ------------------------------------------------------
    def get_repo(self, owner: str, repo: str) -> dict | None:
        """The repository, or None if it does not exist (or the token cannot see it)."""
        try:
            return self.request("GET", f"/repos/{owner}/{repo}").data
        except GitHubError as exc:
            if exc.status == 404:
                return None
            raise

    def generate_from_template(self, template: str, owner: str, name: str, private: bool = True,
                               description: str = "") -> dict:
        body = {"owner": owner, "name": name, "private": private, "include_all_branches": False,
                "description": description}
        return self.request("POST", f"/repos/{template}/generate", json=body, ok=(201,),
                            repo=f"{owner}/{name}").data

    def is_collaborator(self, owner: str, repo: str, username: str) -> bool:
        try:
            self.request("GET", f"/repos/{owner}/{repo}/collaborators/{quote(username)}", ok=(204,))
            return True
        except GitHubError as exc:
            if exc.status == 404:
                return False
            raise

    def add_collaborator(self, owner: str, repo: str, username: str, permission: str = "push") -> Response:
        """201 with an invitation when one was sent; 204 when the user already had access."""
        return self.request("PUT", f"/repos/{owner}/{repo}/collaborators/{quote(username)}",
                            json={"permission": permission}, ok=(201, 204))

    def invitations(self, owner: str, repo: str) -> list[dict]:
        return list(self.paginate(f"/repos/{owner}/{repo}/invitations"))

    def delete_invitation(self, owner: str, repo: str, invitation_id: int) -> None:
        self.request("DELETE", f"/repos/{owner}/{repo}/invitations/{int(invitation_id)}", ok=(204,))

    def update_invitation(self, owner: str, repo: str, invitation_id: int, permissions: str) -> dict:
        return self.request("PATCH", f"/repos/{owner}/{repo}/invitations/{int(invitation_id)}",
                            json={"permissions": permissions}).data

    def protect_branch(self, owner: str, repo: str, branch: str, lock: bool = False) -> dict:
        """No force pushes, no deletion; with lock=True the branch becomes read-only (deadline)."""
        body = {"required_status_checks": None, "enforce_admins": None,
                "required_pull_request_reviews": None, "restrictions": None,
                "allow_force_pushes": False, "allow_deletions": False, "lock_branch": bool(lock)}
        return self.request("PUT", f"/repos/{owner}/{repo}/branches/{quote(branch, safe='')}/protection",
                            json=body).data

    def get_protection(self, owner: str, repo: str, branch: str) -> dict | None:
        try:
            return self.request("GET", f"/repos/{owner}/{repo}/branches/{quote(branch, safe='')}/protection").data
        except GitHubError as exc:
            if exc.status == 404:
                return None
            raise

    def file_content(self, owner: str, repo: str, path: str, ref: str | None = None) -> bytes | None:
        """Bytes of a file through the contents API, or None if it does not exist."""
        import base64
        try:
            data = self.request("GET", f"/repos/{owner}/{repo}/contents/{quote(path)}",
                                params={"ref": ref} if ref else None).data
        except GitHubError as exc:
            if exc.status == 404:
                return None
            raise
        if not isinstance(data, dict) or data.get("type") != "file":
            return None
        if data.get("encoding") == "base64":
            return base64.b64decode(data.get("content") or "")
        return (data.get("content") or "").encode()

    def commits(self, owner: str, repo: str, *, sha: str | None = None, path: str | None = None,
                since: str | None = None, until: str | None = None, limit: int | None = None) -> list[dict]:
        params = {k: v for k, v in {"sha": sha, "path": path, "since": since, "until": until}.items() if v}
        if limit is not None:
            params["per_page"] = max(1, min(limit, 100))
        out = []
        for item in self.paginate(f"/repos/{owner}/{repo}/commits", params):
            out.append(item)
            if limit is not None and len(out) >= limit:
                break
        return out

    def root_commits(self, owner: str, repo: str, ref: str | None = None) -> list[dict]:
        """Commits without parents reachable from `ref`, read from the last page of the commit list."""
        params = {"per_page": 100}
        if ref:
            params["sha"] = ref
        resp = self.request("GET", f"/repos/{owner}/{repo}/commits", params=params)
        pages = links(resp.headers.get("Link") or "")
        data = resp.data
        if "last" in pages:
            data = self.request("GET", pages["last"]).data
        return [c for c in data if not c.get("parents")]

    def tree(self, owner: str, repo: str, ref: str) -> dict:
        return self.request("GET", f"/repos/{owner}/{repo}/git/trees/{quote(ref, safe='')}",
                            params={"recursive": "1"}).data

    # ---- issues (the self-service "Join the course" form) ------------------------------------------
    def issue_comments(self, owner: str, repo: str, number: int) -> list[dict]:
        return list(self.paginate(f"/repos/{owner}/{repo}/issues/{int(number)}/comments"))

    def comment_on_issue(self, owner: str, repo: str, number: int, body: str) -> dict:
        return self.request("POST", f"/repos/{owner}/{repo}/issues/{int(number)}/comments", json={"body": body},
                            ok=(201,)).data

    def close_issue(self, owner: str, repo: str, number: int, reason: str = "completed") -> dict:
        """reason: "completed" or "not_planned" (GitHub's state_reason)."""
        return self.request("PATCH", f"/repos/{owner}/{repo}/issues/{int(number)}",
                            json={"state": "closed", "state_reason": reason}).data

    # ---- commit statuses (the trusted regrade's verdict on the graded commit) ------------------------
    def create_status(self, owner: str, repo: str, sha: str, state: str, context: str, description: str,
                      target_url: str | None = None) -> dict:
        """state: error, failure, pending or success; GitHub keeps the first 140 characters of description."""
        body = {"state": state, "context": context, "description": description[:140]}
        if target_url:
            body["target_url"] = target_url
        return self.request("POST", f"/repos/{owner}/{repo}/statuses/{quote(sha, safe='')}", json=body,
                            ok=(201,)).data


def links(header: str) -> dict:
    """{'next': url, 'last': url, ...} from a Link header."""
    return {rel: url for url, rel in _LINK.findall(header or "")}


def _json(resp: requests.Response):
    if not resp.content:
        return {}
    try:
        return resp.json()
    except ValueError:
        return {"message": resp.text[:200]}
