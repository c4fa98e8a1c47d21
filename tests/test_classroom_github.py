"""The GitHub REST client against tests/fake_github.py: pagination, rate limits, retries, errors, secrecy."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fake_github import FakeGitHub, blob_sha, tree_sha  # noqa: E402

from grading.instructor.github import GitHub, GitHubError, TokenMissing, links  # noqa: E402

TOKEN = "ghp_SECRETSECRETSECRET0123456789"


@pytest.fixture
def fake():
    with FakeGitHub(token=TOKEN) as server:
        server.add_repo("org", "repo", {"a.txt": b"a"})
        yield server


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def gh(fake, sleeps):
    return GitHub(TOKEN, fake.url, sleep=sleeps.append, min_write_interval=0, log=lambda m: None)


def test_env_configuration_and_secrecy(fake, monkeypatch, capsys):
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    monkeypatch.setenv("GITHUB_API_URL", fake.url + "/")
    gh = GitHub.from_env(log=print)
    assert gh.base_url == fake.url
    assert TOKEN not in repr(gh) and TOKEN not in str(gh) and "***" in repr(gh)
    assert gh.get_repo("org", "repo")["full_name"] == "org/repo"
    with pytest.raises(GitHubError) as err:
        gh.request("GET", "/repos/org/missing/collaborators/x", ok=(204,))
    assert TOKEN not in str(err.value) and TOKEN not in repr(err.value)
    assert TOKEN not in capsys.readouterr().out
    monkeypatch.delenv("GITHUB_TOKEN")
    with pytest.raises(TokenMissing, match="GITHUB_TOKEN is not set"):
        GitHub.from_env()


def test_default_api_url(monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", "x")
    monkeypatch.delenv("GITHUB_API_URL", raising=False)
    assert GitHub.from_env().base_url == "https://api.github.com"


def test_bad_token_is_a_401_naming_the_repository(fake):
    gh = GitHub("wrong", fake.url, sleep=lambda s: None, log=lambda m: None)
    with pytest.raises(GitHubError) as err:
        gh.get_repo("org", "repo")
    assert err.value.status == 401
    assert "org/repo" in str(err.value) and "401" in str(err.value) and "Bad credentials" in str(err.value)


def test_pagination_follows_link_headers(fake, gh):
    for i in range(7):
        fake.push("org", "repo", {f"f{i}.txt": b"x"}, message=f"commit {i}")
    items = list(gh.paginate("/repos/org/repo/commits", {"per_page": 3}))
    assert [c["commit"]["message"] for c in items] == [f"commit {i}" for i in range(6, -1, -1)] + ["Initial commit"]
    pages = fake.calls("GET", r"/commits$")
    assert [q.get("page", "1") for _, _, q, _ in pages] == ["1", "2", "3"]
    # the oldest commit through the last page
    roots = gh.root_commits("org", "repo")
    assert [c["commit"]["message"] for c in roots] == ["Initial commit"]


def test_links_parser():
    header = '<https://x/a?page=2>; rel="next", <https://x/a?page=9>; rel="last"'
    assert links(header) == {"next": "https://x/a?page=2", "last": "https://x/a?page=9"}
    assert links("") == {}


@pytest.mark.parametrize("status", [403, 429])
def test_retry_after_is_honoured(fake, gh, sleeps, status):
    fake.inject("GET", r"^/repos/org/repo$", status, headers={"Retry-After": "7"},
                body={"message": "You have exceeded a secondary rate limit."})
    assert gh.get_repo("org", "repo")["name"] == "repo"
    assert sleeps == [7.0]


def test_primary_rate_limit_waits_until_reset(fake, sleeps):
    now = 1_000_000.0
    gh = GitHub(TOKEN, fake.url, sleep=sleeps.append, clock=lambda: now, min_write_interval=0, log=lambda m: None)
    fake.inject("GET", r"^/repos/org/repo$", 403, headers={"x-ratelimit-remaining": "0",
                                                           "x-ratelimit-reset": str(int(now + 30))},
                body={"message": "API rate limit exceeded for user ID 1."})
    assert gh.get_repo("org", "repo")
    assert sleeps == [31.0]


def test_secondary_limit_without_headers_backs_off_exponentially(fake, gh, sleeps):
    fake.inject("GET", r"^/repos/org/repo$", 403, body={"message": "You have exceeded a secondary rate limit"},
                headers={"x-ratelimit-remaining": "4000"}, times=2)
    assert gh.get_repo("org", "repo")
    assert sleeps == [60.0, 120.0]


def test_too_long_a_wait_is_an_error_not_a_hang(fake, sleeps):
    gh = GitHub(TOKEN, fake.url, sleep=sleeps.append, max_wait=10, log=lambda m: None)
    fake.inject("GET", r"^/repos/org/repo$", 429, headers={"Retry-After": "3600"})
    with pytest.raises(GitHubError, match="rate limited for 3600s") as err:
        gh.get_repo("org", "repo")
    assert err.value.repo == "org/repo" and sleeps == []


def test_server_error_once_then_success(fake, gh, sleeps):
    fake.inject("GET", r"^/repos/org/repo$", 502, body={"message": "Server Error"})
    assert gh.get_repo("org", "repo")["name"] == "repo"
    assert sleeps == [1.0]
    assert len(fake.calls("GET", r"^/repos/org/repo$")) == 2


def test_persistent_server_error_names_repository_and_status(fake, sleeps):
    gh = GitHub(TOKEN, fake.url, sleep=sleeps.append, max_retries=2, log=lambda m: None)
    fake.inject("GET", r"^/repos/org/repo$", 503, body={"message": "Service Unavailable"}, times=10)
    with pytest.raises(GitHubError) as err:
        gh.get_repo("org", "repo")
    assert err.value.status == 503 and "org/repo" in str(err.value) and "503" in str(err.value)
    assert sleeps == [1.0, 2.0]


def test_404_and_422(fake, gh):
    assert gh.get_repo("org", "nope") is None
    with pytest.raises(GitHubError) as err:
        gh.request("PUT", "/repos/org/nope/branches/main/protection", json={})
    assert err.value.status == 404 and "org/nope" in str(err.value) and "404" in str(err.value)
    fake.add_repo("org", "tmpl", {"x": b"1"}, is_template=True)
    gh.generate_from_template("org/tmpl", "org", "copy")
    with pytest.raises(GitHubError) as err:
        gh.generate_from_template("org/tmpl", "org", "copy")
    assert err.value.already_exists and err.value.status == 422
    assert "org/copy" in str(err.value) and "name already exists on this account" in str(err.value)


def test_writes_are_spaced(fake, sleeps):
    t = [0.0]
    gh = GitHub(TOKEN, fake.url, sleep=lambda s: (sleeps.append(s), t.__setitem__(0, t[0] + s)),
                clock=lambda: t[0], min_write_interval=1.0, log=lambda m: None)
    gh.add_collaborator("org", "repo", "alice")
    gh.add_collaborator("org", "repo", "bob")
    assert sleeps == [1.0]


def test_network_error_is_retried_then_reported(sleeps):
    gh = GitHub(TOKEN, "http://127.0.0.1:9", sleep=sleeps.append, max_retries=1, timeout=2, log=lambda m: None)
    with pytest.raises(GitHubError, match="no response") as err:
        gh.get_repo("org", "repo")
    assert "org/repo" in str(err.value) and TOKEN not in str(err.value)


def test_contents_trees_and_real_git_hashes(fake, gh, tmp_path):
    import subprocess
    fake.push("org", "repo", {"dir/b.py": b"print('b')\n"})
    assert gh.file_content("org", "repo", "dir/b.py") == b"print('b')\n"
    assert gh.file_content("org", "repo", "missing") is None
    tree = gh.tree("org", "repo", "main")
    blobs = {e["path"]: e["sha"] for e in tree["tree"] if e["type"] == "blob"}
    assert blobs == {"a.txt": blob_sha(b"a"), "dir/b.py": blob_sha(b"print('b')\n")}
    # the fake's hashes are git's: compare with a real repository holding the same files
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "a.txt").write_bytes(b"a")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir/b.py").write_bytes(b"print('b')\n")
    subprocess.run(["git", "-C", str(tmp_path), "add", "-A"], check=True)
    real_tree = subprocess.run(["git", "-C", str(tmp_path), "write-tree"], capture_output=True, text=True).stdout.strip()
    assert tree["sha"] == real_tree == tree_sha({"a.txt": b"a", "dir/b.py": b"print('b')\n"})
