"""tinytorch.datasets - download, cache and checksum of the course's data sets (given code, not an exercise).

Downloads are tested against a real HTTP server on 127.0.0.1 (http.server in a thread) serving
small fake files; the file tables (URLs, checksums) are injected through `DataSpec`/`RemoteFile`,
so nothing here touches the internet. The last tests read the real files when TINYTORCH_DATA is set.
"""
import gzip
import hashlib
import io
import os
import socket
import tarfile
import threading
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from tinytorch import datasets as ds
from tinytorch.datasets import (ChecksumError, DataSpec, DataUnavailableError, Downloader, RemoteFile,
                                load_cifar10, load_mnist, load_text)


# ---- a local file server ------------------------------------------------------------------------------
class FileServer:
    """Serves `files[path] = bytes`. `plan[path]` is a list of behaviours used one per request:
    "ok", "truncate" (send half the body with the full Content-Length, then close), "500", "404"."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.plan: dict[str, list[str]] = {}
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests.append(self.path)
                behaviour = server.plan.get(self.path, [])
                behaviour = behaviour.pop(0) if behaviour else "ok"
                body = server.files.get(self.path)
                if body is None or behaviour == "404":
                    self.send_error(404)
                    return
                if behaviour == "500":
                    self.send_error(500)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if behaviour == "truncate":
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                       daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = FileServer()
    yield s
    s.close()


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """No real TINYTORCH_DATA / cache, and no memoized data sets from other tests."""
    monkeypatch.delenv(ds.DATA_ENV, raising=False)
    monkeypatch.setenv(ds.CACHE_ENV, str(tmp_path / "cache"))
    ds.clear_memory_cache()
    yield
    ds.clear_memory_cache()


def quiet(**kw) -> Downloader:
    return Downloader(backoff=0.0, progress=False, **kw)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n" * 50).encode()


def text_spec(server, name="input.txt", digest=None, offline_sha=None) -> DataSpec:
    return DataSpec("text", "Fake text", "tinyshakespeare.txt", offline_sha or sha256(TEXT),
                    (RemoteFile("tinyshakespeare.txt", (f"{server.url}/{name}",), digest or sha256(TEXT)),))


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens: connecting fails at once, like being offline."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}"


# ---- fake MNIST and CIFAR in the official formats -----------------------------------------------------
def fake_mnist(n_train=6, n_test=4):
    rng = np.random.default_rng(0)
    return (rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8), rng.integers(0, 10, n_train).astype(np.uint8),
            rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8), rng.integers(0, 10, n_test).astype(np.uint8))


def mnist_spec_and_files(server, level=9):
    """Serve the four IDX .gz files; the spec holds the MD5 of the *decompressed* files."""
    arrays = fake_mnist()
    remotes = []
    for (name, _), array in zip(ds._MNIST_FILES, arrays):
        raw = ds._idx_bytes(array)
        server.files[f"/mnist/{name}"] = gzip.compress(raw, compresslevel=level, mtime=0)
        remotes.append(RemoteFile(name, (f"{server.url}/missing/{name}", f"{server.url}/mnist/{name}"),
                                  md5(raw), "md5", gunzip=True))
    return replace(ds.MNIST, remote=tuple(remotes)), arrays


def fake_cifar_tarball(per_batch=3):
    rng = np.random.default_rng(1)
    members, batches = {}, []
    for name in ["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin",
                 "data_batch_5.bin", "test_batch.bin"]:
        x = rng.integers(0, 256, (per_batch, 3, 32, 32), dtype=np.uint8)
        y = rng.integers(0, 10, per_batch).astype(np.uint8)
        members[name] = ds._cifar_records(x, y).tobytes()
        batches.append((x, y))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue(), tuple((n, md5(d)) for n, d in members.items()), batches


# ---- downloading --------------------------------------------------------------------------------------
def test_successful_download_is_verified_cached_and_memoized(server, tmp_path):
    server.files["/input.txt"] = TEXT
    spec = text_spec(server)
    text = load_text(spec=spec, downloader=quiet())
    assert text == TEXT.decode(), "load_text must return the downloaded text"
    cached = tmp_path / "cache" / "text" / "tinyshakespeare.txt"
    assert cached.read_bytes() == TEXT, f"the download must be kept in the cache at {cached}"
    assert not [p for p in cached.parent.iterdir() if p.name.endswith(".part")], "no temporary file may remain"
    assert load_text(spec=spec, downloader=quiet()) is text, "a second load in the same process is memoized"
    ds.clear_memory_cache()
    assert load_text(spec=spec, downloader=quiet()) == text
    assert server.requests == ["/input.txt"], f"the cached copy must be used, not downloaded again: {server.requests}"


def test_progress_is_reported_in_plain_lines_when_not_a_terminal(server):
    server.files["/input.txt"] = TEXT
    out = io.StringIO()
    load_text(spec=text_spec(server), downloader=Downloader(backoff=0.0, progress=out))
    log = out.getvalue()
    assert "tinyshakespeare.txt" in log and "MB" in log, f"progress should name the file and size: {log!r}"
    assert "\r" not in log, "a non-terminal stream gets plain lines, no carriage returns"


def test_interrupted_download_is_retried(server):
    server.files["/input.txt"] = TEXT
    server.plan["/input.txt"] = ["truncate", "500", "ok"]
    text = load_text(spec=text_spec(server), downloader=quiet())
    assert text == TEXT.decode()
    assert server.requests == ["/input.txt"] * 3, (
        f"a dropped connection and an HTTP 500 are transient and must be retried; requests: {server.requests}")


def test_interrupted_download_that_never_completes_leaves_no_file(server, tmp_path):
    server.files["/input.txt"] = TEXT
    server.plan["/input.txt"] = ["truncate"] * 3
    with pytest.raises(DataUnavailableError) as err:
        load_text(spec=text_spec(server), downloader=quiet(attempts=3))
    assert "closed after" in str(err.value) or "broke off" in str(err.value), str(err.value)
    folder = tmp_path / "cache" / "text"
    assert not folder.exists() or list(folder.iterdir()) == [], "a half download must never be left in the cache"


def test_corrupted_cache_is_detected_deleted_and_fetched_again(server, tmp_path):
    server.files["/input.txt"] = TEXT
    cached = tmp_path / "cache" / "text" / "tinyshakespeare.txt"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(TEXT[:-10] + b"corrupted!")
    out = io.StringIO()
    assert load_text(spec=text_spec(server), downloader=Downloader(backoff=0.0, progress=out)) == TEXT.decode()
    assert cached.read_bytes() == TEXT, "the corrupted cache file must be replaced by a good download"
    assert "corrupted" in out.getvalue(), "the user should be told why the file is downloaded again"


def test_checksum_mismatch_from_the_server_is_a_clear_error(server, tmp_path):
    server.files["/input.txt"] = TEXT
    wrong = "0" * 64
    with pytest.raises(ChecksumError) as err:
        load_text(spec=text_spec(server, digest=wrong), downloader=quiet())
    message = str(err.value)
    for part in (wrong, sha256(TEXT), f"{server.url}/input.txt", "tinyshakespeare.txt"):
        assert part in message, f"the error must name expected and got checksums, the URL and the file; missing {part!r} in:\n{message}"
    assert server.requests == ["/input.txt"], "a checksum mismatch is not transient: no retries of the same URL"
    assert not (tmp_path / "cache" / "text" / "tinyshakespeare.txt").exists(), "bad data must not enter the cache"


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full to simulate a full disk")
def test_a_full_disk_during_download_is_a_clear_error_and_leaves_nothing(server, tmp_path, monkeypatch):
    server.files["/input.txt"] = TEXT
    placeholder = tmp_path / "cache" / "text" / ".placeholder.part"

    def full_disk_tempfile(prefix="", suffix="", dir=None):
        placeholder.parent.mkdir(parents=True, exist_ok=True)
        placeholder.write_bytes(b"")
        return os.open("/dev/full", os.O_WRONLY), str(placeholder)  # every write fails with ENOSPC

    monkeypatch.setattr(ds.tempfile, "mkstemp", full_disk_tempfile)
    with pytest.raises(ds.DatasetError, match="cannot write tinyshakespeare.txt") as err:
        load_text(spec=text_spec(server), downloader=quiet())
    assert "TINYTORCH_CACHE" in str(err.value), "the error says how to fix it"
    assert list(placeholder.parent.iterdir()) == [], "the partial file is removed and nothing enters the cache"


def test_missing_data_offline_says_which_file_where_and_how_to_fix(tmp_path, monkeypatch):
    offline_dir = tmp_path / "shared"
    offline_dir.mkdir()
    monkeypatch.setenv(ds.DATA_ENV, str(offline_dir))
    spec = replace(ds.TINYSHAKESPEARE, remote=(replace(ds.TINYSHAKESPEARE.remote[0], urls=(closed_port_url(),)),))
    with pytest.raises(DataUnavailableError) as err:
        load_text(spec=spec, downloader=quiet())
    message = str(err.value)
    for part in ("tinyshakespeare.txt", f"TINYTORCH_DATA={offline_dir}", str(tmp_path / "cache"),
                 "no network connection", "set TINYTORCH_DATA"):
        assert part in message, f"the offline error must mention {part!r}:\n{message}"


def test_served_from_points_every_file_at_one_base_url(server):
    server.files["/tinyshakespeare.txt"] = TEXT
    spec = replace(ds.TINYSHAKESPEARE, offline_sha256=sha256(TEXT),
                   remote=(replace(ds.TINYSHAKESPEARE.remote[0], digest=sha256(TEXT)),)).served_from(server.url + "/")
    assert spec.remote[0].urls == (f"{server.url}/tinyshakespeare.txt",)
    assert load_text(spec=spec, downloader=quiet()) == TEXT.decode()


def test_download_false_never_touches_the_network(server):
    server.files["/input.txt"] = TEXT
    with pytest.raises(DataUnavailableError, match="downloading is switched off"):
        load_text(spec=text_spec(server), download=False)
    assert server.requests == []


def test_http_404_moves_on_to_the_mirror(server):
    spec, arrays = mnist_spec_and_files(server)
    s = load_mnist(spec=spec, downloader=quiet())
    assert any(r.startswith("/missing/") for r in server.requests), "the primary URL is tried first"
    assert s.x_train.shape == (6, 28, 28) and s.x_test.shape == (4, 28, 28)
    assert s.y_train.dtype == np.int64, f"labels must be int64, got {s.y_train.dtype}"
    np.testing.assert_array_equal(s.x_train, arrays[0])
    np.testing.assert_array_equal(s.y_test, arrays[3])
    assert not s.x_train.flags.writeable, "memoized arrays are read-only so nobody changes them for everyone"


def test_mnist_checksum_is_of_the_decompressed_content_so_recompressed_mirrors_pass(server):
    spec, arrays = mnist_spec_and_files(server, level=1)  # different .gz bytes, same IDX content
    s = load_mnist(spec=spec, downloader=quiet())
    np.testing.assert_array_equal(s.x_train, arrays[0])


def test_cifar_archive_members_are_checked_and_parsed(server, tmp_path):
    blob, members, batches = fake_cifar_tarball()
    server.files["/cifar.tar.gz"] = blob
    spec = replace(ds.CIFAR10, remote=(RemoteFile("cifar-10-binary.tar.gz", (f"{server.url}/cifar.tar.gz",),
                                                  members=members),))
    s = load_cifar10(spec=spec, downloader=quiet())
    assert s.x_train.shape == (15, 3, 32, 32) and s.x_test.shape == (3, 3, 32, 32)
    np.testing.assert_array_equal(s.x_train[3:6], batches[1][0])
    np.testing.assert_array_equal(s.y_test, batches[5][1])
    bad = tuple((n, "0" * 32 if n == "test_batch.bin" else h) for n, h in members)
    ds.clear_memory_cache()
    with pytest.raises(ChecksumError, match="test_batch.bin"):
        load_cifar10(spec=replace(spec, remote=(replace(spec.remote[0], members=bad),)), cache_dir=tmp_path / "other",
                     downloader=quiet())


# ---- the offline directory ----------------------------------------------------------------------------
def write_npz(path: Path, arrays, compressed=True):
    save = np.savez_compressed if compressed else np.savez
    save(path, x_train=arrays[0], y_train=arrays[1], x_test=arrays[2], y_test=arrays[3])
    return path


def test_tinytorch_data_is_read_first(server, tmp_path, monkeypatch):
    offline = tmp_path / "shared"
    offline.mkdir()
    (offline / "tinyshakespeare.txt").write_bytes(TEXT)
    monkeypatch.setenv(ds.DATA_ENV, str(offline))
    server.files["/input.txt"] = b"something else"
    assert load_text(spec=text_spec(server, digest=sha256(b"something else"))) == TEXT.decode()
    assert server.requests == [], "with the file in TINYTORCH_DATA nothing may be downloaded"

    arrays = fake_mnist()
    path = write_npz(offline / "mnist.npz", arrays)
    spec = replace(ds.MNIST, offline_sha256=sha256(path.read_bytes()), remote=())
    s = load_mnist(spec=spec)
    np.testing.assert_array_equal(s.x_train, arrays[0])
    assert s.y_train.dtype == np.int64


def test_recompressed_offline_npz_is_accepted_when_its_arrays_are_official(server, tmp_path, monkeypatch):
    """The sha256 of an .npz depends on how it was compressed; the official IDX checksums do not."""
    offline = tmp_path / "shared"
    offline.mkdir()
    monkeypatch.setenv(ds.DATA_ENV, str(offline))
    spec, arrays = mnist_spec_and_files(server)
    write_npz(offline / "mnist.npz", arrays, compressed=False)
    s = load_mnist(spec=replace(spec, offline_sha256="f" * 64))
    np.testing.assert_array_equal(s.x_test, arrays[2])
    assert server.requests == []
    tampered = list(arrays)
    tampered[0] = arrays[0].copy()
    tampered[0][0, 0, 0] ^= 1
    write_npz(offline / "mnist.npz", tampered)
    ds.clear_memory_cache()
    with pytest.raises(ChecksumError, match="expected"):
        load_mnist(spec=replace(spec, offline_sha256="f" * 64))


def test_wrong_offline_text_is_an_error_not_a_silent_download(server, tmp_path, monkeypatch):
    offline = tmp_path / "shared"
    offline.mkdir()
    (offline / "tinyshakespeare.txt").write_bytes(b"not shakespeare")
    monkeypatch.setenv(ds.DATA_ENV, str(offline))
    with pytest.raises(ChecksumError, match="sha256 expected"):
        load_text(spec=text_spec(server))


def test_unknown_corpus_lists_the_known_ones():
    with pytest.raises(ds.DatasetError, match="tinyshakespeare"):
        load_text("war_and_peace")


# ---- the real files (only where the course data is available) -----------------------------------------
REAL = os.environ.get(ds.DATA_ENV)  # read at import: the fixture above hides it from the other tests
needs_data = pytest.mark.skipif(not REAL, reason="set TINYTORCH_DATA to the course's shared data folder to "
                                                 "check the real MNIST, CIFAR-10 and Tiny Shakespeare files")


@needs_data
def test_real_mnist_and_text_have_the_documented_shapes_and_counts(monkeypatch):
    monkeypatch.setenv(ds.DATA_ENV, REAL)
    x_train, y_train, x_test, y_test = load_mnist()
    assert x_train.shape == (60000, 28, 28) and x_train.dtype == np.uint8
    assert x_test.shape == (10000, 28, 28) and y_test.dtype == np.int64
    assert np.bincount(y_train).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(y_test).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    text = load_text()
    assert len(text) == 1115394 and text.startswith("First Citizen:") and len(set(text)) == 65


@needs_data
@pytest.mark.slow
def test_real_cifar10_has_the_documented_shapes_and_counts(monkeypatch):
    monkeypatch.setenv(ds.DATA_ENV, REAL)
    x_train, y_train, x_test, y_test = load_cifar10()
    assert x_train.shape == (50000, 3, 32, 32) and x_test.shape == (10000, 3, 32, 32)
    assert np.bincount(y_train).tolist() == [5000] * 10 and np.bincount(y_test).tolist() == [1000] * 10
    assert y_train[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
    assert y_test[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]
