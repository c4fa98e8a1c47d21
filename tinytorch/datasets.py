"""The course's data sets as NumPy arrays: MNIST, CIFAR-10 and Tiny Shakespeare.

Infrastructure, not an assignment: milestones 1 and 2 need the data before you reach module 08.

    from tinytorch.datasets import load_mnist, load_cifar10, load_text
    x_train, y_train, x_test, y_test = load_mnist()   # uint8 (N, 28, 28), int64 (N,)
    cifar = load_cifar10()                            # cifar.x_train: uint8 (50000, 3, 32, 32)
    text = load_text("tinyshakespeare")               # str, 1,115,394 characters

Where the data comes from, first hit wins:
1. `$TINYTORCH_DATA/<file>` - an offline directory laid out like the course's shared data folder
   (mnist.npz and cifar10.npz with keys x_train, y_train, x_test, y_test; tinyshakespeare.txt).
   Its sha256 must match SOURCES.md; an .npz that was re-compressed is still accepted when its
   arrays, written back in the official format, match the official checksums.
2. the cache directory `$TINYTORCH_CACHE` (default `~/.cache/tinytorch`), holding the files
   exactly as they were downloaded;
3. a download from the canonical URL (then mirrors) into the cache, streamed with progress,
   timeouts, and retries with back-off for transient failures.

Every file is checked before use. MNIST mirrors re-compress the .gz files, so its checksums are of
the *decompressed* IDX files; CIFAR-10 is checked member by member inside the archive. A cached
file that fails its check is deleted and downloaded again; a download that fails its check is an
error naming the file, the URL, the expected and the obtained checksum. Files are written to a
temporary name and renamed into place (`os.replace`), so a crash never leaves a half file behind.

Decoding CIFAR-10 takes a few seconds, so results are memoized in the process (the arrays are
read-only; copy them before changing them in place).
"""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .runtime import console_safe   # relative: the judge loads this file without tinytorch/__init__.py

DATA_ENV = "TINYTORCH_DATA"
CACHE_ENV = "TINYTORCH_CACHE"

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


class DatasetError(RuntimeError):
    """A data set could not be provided; the message says which file, where we looked, and what to do."""


class ChecksumError(DatasetError):
    """A file's content is not the expected one (expected vs got checksum, and where it came from)."""


class DataUnavailableError(DatasetError):
    """The data is not on this machine and could not be downloaded (e.g. no network)."""


# ---- what to fetch ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RemoteFile:
    """One file to download into the cache.

    name       file name in the cache directory
    urls       tried in order: the canonical URL first, then mirrors
    digest     expected hex checksum of the content (of the gunzipped content when `gunzip`), or None
    algorithm  hashlib name of `digest`: "md5" or "sha256"
    gunzip     the checksum is of the decompressed bytes, because mirrors re-compress
    members    for a tar archive: (basename, md5) of each member we read; each is checked
    """

    name: str
    urls: tuple[str, ...]
    digest: str | None = None
    algorithm: str = "sha256"
    gunzip: bool = False
    members: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class DataSpec:
    """Everything needed to find one data set: offline file, its sha256, and the files to download."""

    key: str               # "mnist": the cache sub-directory and the name used in messages
    title: str             # "MNIST"
    offline_file: str      # file name inside $TINYTORCH_DATA
    offline_sha256: str
    remote: tuple[RemoteFile, ...]

    def served_from(self, base_url: str) -> "DataSpec":
        """A copy that downloads every file from `<base_url>/<file name>` only (local mirrors, tests)."""
        base = base_url.rstrip("/")
        return replace(self, remote=tuple(replace(r, urls=(f"{base}/{r.name}",)) for r in self.remote))


# Official checksums, from shared/data/SOURCES.md. MNIST: MD5 of the uncompressed IDX files.
_MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",      # the mirror torchvision uses first
    "https://storage.googleapis.com/cvdf-datasets/mnist/",  # the mirror TensorFlow uses
    "http://yann.lecun.com/exdb/mnist/",                    # the original home (often refuses scripts)
)
_MNIST_FILES = (
    ("train-images-idx3-ubyte.gz", "6bbc9ace898e44ae57da46a324031adb"),
    ("train-labels-idx1-ubyte.gz", "a25bea736e30d166cdddb491f175f624"),
    ("t10k-images-idx3-ubyte.gz", "2646ac647ad5339dbf082846283269ea"),
    ("t10k-labels-idx1-ubyte.gz", "27ae3e4e09519cfbb04c329615203637"),
)

MNIST = DataSpec(
    key="mnist", title="MNIST", offline_file="mnist.npz",
    offline_sha256="06af5dfe73b70e3bc1c36439982b18a8d76803db9b544f6fdf838a37fbb01b64",
    remote=tuple(RemoteFile(name, tuple(m + name for m in _MNIST_MIRRORS), md5, "md5", gunzip=True)
                 for name, md5 in _MNIST_FILES),
)

# The archive's published MD5 is c32a1d4ab5d03f1284b67883e8d87530 (170,052,171 bytes). We check the
# six members instead: that is the content we use, and it stays valid for a re-packed mirror.
CIFAR10 = DataSpec(
    key="cifar10", title="CIFAR-10", offline_file="cifar10.npz",
    offline_sha256="b9e551bcce8bf13acc8102aa4b3ee193bdd1e05f02322048604d0889480cc95c",
    remote=(RemoteFile(
        "cifar-10-binary.tar.gz",
        ("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",),
        members=(("data_batch_1.bin", "5dd7e06a14cb22eb9f671a540d1b7c25"),
                 ("data_batch_2.bin", "5ea93a67294ea407fff1d09f752e9692"),
                 ("data_batch_3.bin", "942cd6a4bcdd0dd3c604fbe906cb4421"),
                 ("data_batch_4.bin", "ae636b3ba5c66a11e91e8cb52e771fcb"),
                 ("data_batch_5.bin", "53f37980c15c3d472c316c40844f3f0d"),
                 ("test_batch.bin", "803d5f7f4d78ea53de84dbe85f74fb6d"))),),
)

TINYSHAKESPEARE = DataSpec(
    key="text", title="Tiny Shakespeare", offline_file="tinyshakespeare.txt",
    offline_sha256="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
    remote=(RemoteFile(
        "tinyshakespeare.txt",
        ("https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",),
        "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed", "sha256"),),
)

TEXTS = {"tinyshakespeare": TINYSHAKESPEARE}


class Splits(NamedTuple):
    """Train and test arrays; unpacks as `x_train, y_train, x_test, y_test = load_mnist()`."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


# ---- locations --------------------------------------------------------------------------------------
def data_dir() -> Path | None:
    """The offline data directory from $TINYTORCH_DATA, or None when it is not set."""
    value = os.environ.get(DATA_ENV, "").strip()
    return Path(value).expanduser() if value else None


def cache_dir() -> Path:
    """Where downloads are kept: $TINYTORCH_CACHE, default ~/.cache/tinytorch."""
    value = os.environ.get(CACHE_ENV, "").strip()
    return Path(value).expanduser() if value else Path.home() / ".cache" / "tinytorch"


# ---- checking content -------------------------------------------------------------------------------
def _digest(data: bytes, algorithm: str) -> str:
    return hashlib.new(algorithm, data).hexdigest()


def read_verified(remote: RemoteFile, path: Path, source: str | None = None) -> bytes | dict[str, bytes]:
    """Read `path` and check it against `remote`; return the content we use.

    Returns the (gunzipped, if `remote.gunzip`) bytes, or for an archive with `members` a dict
    basename -> member bytes. Raises ChecksumError naming `source` (a URL or "the cache").
    """
    where = source or str(path)
    raw = Path(path).read_bytes()
    if remote.members:
        return _read_archive(remote, raw, path, where)
    content = raw
    if remote.gunzip and raw[:2] == b"\x1f\x8b":  # a server may already have decompressed it
        try:
            content = gzip.decompress(raw)
        except (OSError, EOFError, ValueError) as exc:
            raise ChecksumError(f"{remote.name} from {where} is not a valid gzip file ({exc}); "
                                f"file: {path}") from None
    if remote.digest is not None:
        got = _digest(content, remote.algorithm)
        if got != remote.digest:
            what = "decompressed content" if remote.gunzip else "content"
            raise ChecksumError(f"{remote.name} from {where}: {remote.algorithm} of the {what} is wrong; "
                                f"expected {remote.digest}, got {got} (file: {path})")
    return content


def _read_archive(remote: RemoteFile, raw: bytes, path: Path, where: str) -> dict[str, bytes]:
    """Read the wanted members of a tar archive in one streaming pass (nothing is extracted to disk)."""
    if remote.digest is not None:
        got = _digest(raw, remote.algorithm)
        if got != remote.digest:
            raise ChecksumError(f"{remote.name} from {where}: {remote.algorithm} is wrong; expected "
                                f"{remote.digest}, got {got} (file: {path})")
    wanted = dict(remote.members)
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r|*") as archive:
            for member in archive:
                base = member.name.rsplit("/", 1)[-1]
                if member.isfile() and base in wanted and base not in found:
                    found[base] = archive.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
        raise ChecksumError(f"{remote.name} from {where} is not a readable archive ({exc}); file: {path}") from None
    for base, md5 in remote.members:
        if base not in found:
            raise ChecksumError(f"{remote.name} from {where}: member {base} is missing (file: {path})")
        got = _digest(found[base], "md5")
        if got != md5:
            raise ChecksumError(f"{remote.name} from {where}: md5 of member {base} is wrong; expected {md5}, "
                                f"got {got} (file: {path})")
    return found


# ---- downloading ------------------------------------------------------------------------------------
class _TransferError(Exception):
    """One failed attempt: `transient` says whether retrying may help, `unreachable` that no byte came."""

    def __init__(self, message: str, transient: bool, unreachable: bool = False):
        super().__init__(message)
        self.transient = transient
        self.unreachable = unreachable


_RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}


class _ByteProgress:
    """Download progress: a redrawn line on a terminal, a few plain lines otherwise."""

    def __init__(self, name: str, total: int | None, stream):
        self.name, self.total, self.stream = name, total, stream
        self.start = self.last = time.perf_counter()
        self.next_mark = 0.25
        try:
            self.tty = bool(stream.isatty())
        except (AttributeError, ValueError, OSError):
            self.tty = False

    def _write(self, text: str) -> None:
        try:
            self.stream.write(console_safe(text, self.stream))
            self.stream.flush()
        except (OSError, ValueError):
            pass  # progress is a courtesy: a closed or broken stream must not stop the download

    def update(self, done: int) -> None:
        now = time.perf_counter()
        if self.tty:
            if now - self.last >= 0.1:
                self.last = now
                self._write("\r" + self._line(done, now))
        elif self.total and done / self.total >= self.next_mark and done < self.total:
            self._write(self._line(done, now) + "\n")
            self.next_mark += 0.25

    def _line(self, done: int, now: float) -> str:
        rate = done / max(now - self.start, 1e-9)
        text = f"  {self.name}: {done / 1e6:.1f}"
        if self.total:
            eta = (self.total - done) / rate if rate > 0 else float("inf")
            text += f"/{self.total / 1e6:.1f} MB ({100 * done / self.total:.0f}%), {rate / 1e6:.1f} MB/s, ETA {eta:.0f} s"
        else:
            text += f" MB, {rate / 1e6:.1f} MB/s"
        return text

    def close(self, done: int) -> None:
        seconds = time.perf_counter() - self.start
        self._write(("\r" if self.tty else "") + f"  {self.name}: {done / 1e6:.1f} MB in {seconds:.1f} s" + " " * 20 + "\n")


@dataclass
class Downloader:
    """Fetches `RemoteFile`s into a directory: streamed, checked, retried, written atomically.

    attempts   tries per URL for transient failures (dropped connection, timeout, HTTP 5xx/429)
    backoff    seconds before the 2nd try; doubles after each further failure
    timeout    (connect, read) seconds for requests
    progress   a stream for progress output (default sys.stderr), or False for silence
    session    a requests.Session to use (default: a new one per download)
    """

    attempts: int = 3
    backoff: float = 0.5
    timeout: tuple[float, float] = (10.0, 60.0)
    progress: object = None
    session: object = None

    def _stream(self):
        return sys.stderr if self.progress is None else self.progress

    def _say(self, text: str) -> None:
        if self.progress is False:
            return
        stream = self._stream()
        try:
            stream.write(console_safe(text + "\n", stream))
            stream.flush()
        except (OSError, ValueError):
            pass

    def fetch(self, remote: RemoteFile, directory: Path | str, download: bool = True) -> bytes | dict[str, bytes]:
        """The verified content of `remote`, from `directory` or (if `download`) downloaded into it."""
        directory = Path(directory)
        path = directory / remote.name
        if path.exists():
            try:
                return read_verified(remote, path, source="the cache")
            except ChecksumError as exc:
                self._say(f"tinytorch: the cached file is corrupted ({exc}); deleting it"
                          + (" and downloading again" if download else ""))
                path.unlink(missing_ok=True)
        if not download:
            raise DataUnavailableError(f"{remote.name} is not in {directory} and downloading is switched off")
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatasetError(f"cannot create the cache directory {directory} ({exc}); set {CACHE_ENV} to a "
                               "writable directory") from None
        failures: list[tuple[str, Exception]] = []
        for url in remote.urls:
            try:
                tmp = self._download(url, directory, remote.name)
            except _TransferError as exc:
                failures.append((url, exc))
                continue
            try:
                content = read_verified(remote, tmp, source=url)
                os.replace(tmp, path)  # atomic: readers see no file or the whole, checked file
            except ChecksumError as exc:
                tmp.unlink(missing_ok=True)
                failures.append((url, exc))
                continue
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            return content
        raise self._failure(remote, directory, failures)

    def _failure(self, remote: RemoteFile, directory: Path, failures: list) -> DatasetError:
        checksum = [exc for _, exc in failures if isinstance(exc, ChecksumError)]
        if checksum and len(checksum) == len(failures):
            return ChecksumError("download failed its checksum: " + "; ".join(str(e) for e in checksum)
                                 + ". The server sent different data than expected; nothing was written to "
                                 f"the cache. If this persists, set {DATA_ENV} to a folder with the course data.")
        tried = "\n".join(f"    {url}: {exc}" for url, exc in failures)
        unreachable = all(getattr(exc, "unreachable", False) for _, exc in failures)
        return DataUnavailableError(
            f"could not download {remote.name} ({'no network connection' if unreachable else 'every source failed'}):"
            f"\n{tried}")

    def _download(self, url: str, directory: Path, name: str) -> Path:
        """Stream `url` into a temporary file in `directory`; retry transient failures with back-off."""
        last: _TransferError | None = None
        for attempt in range(1, max(1, self.attempts) + 1):
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=directory)
            try:
                with os.fdopen(fd, "wb") as fh:
                    self._transfer(url, fh, name)
                    fh.flush()
                    os.fsync(fh.fileno())
                return Path(tmp)
            except _TransferError as exc:
                Path(tmp).unlink(missing_ok=True)
                last = exc
                if not exc.transient or attempt == self.attempts:
                    break
                delay = self.backoff * 2 ** (attempt - 1)
                self._say(f"tinytorch: {url}: {exc}; retrying in {delay:.1f} s (attempt {attempt + 1} of {self.attempts})")
                time.sleep(delay)
            except OSError as exc:  # writing failed (requests' own errors became _TransferError above)
                Path(tmp).unlink(missing_ok=True)
                raise DatasetError(f"cannot write {name} into {directory} ({exc}); free some disk space, or set "
                                   f"{CACHE_ENV} to another folder or {DATA_ENV} to the course data") from exc
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        assert last is not None
        raise last

    def _transfer(self, url: str, fh, name: str) -> None:
        import requests  # imported here: loading offline data must not need it

        session = self.session or requests.Session()
        try:
            self._get(session, url, fh, name)
        finally:
            if self.session is None:
                session.close()

    def _get(self, session, url: str, fh, name: str) -> None:
        import requests

        received = 0
        try:
            # identity: we want the file's own bytes, not a transfer-compressed version of them
            with session.get(url, stream=True, timeout=self.timeout,
                             headers={"Accept-Encoding": "identity", "User-Agent": "tinytorch-classroom"}) as r:
                if r.status_code >= 400:
                    raise _TransferError(f"HTTP {r.status_code} {r.reason}",
                                         transient=r.status_code in _RETRY_STATUS)
                length = r.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
                encoded = r.headers.get("Content-Encoding", "identity").lower() not in ("identity", "")
                bar = _ByteProgress(name, total, self._stream()) if self.progress is not False else None
                if bar is not None and not bar.tty:
                    bar._write(f"tinytorch: downloading {name} from {url}\n")
                for chunk in r.iter_content(chunk_size=1 << 20):
                    fh.write(chunk)
                    received += len(chunk)
                    if bar is not None:
                        bar.update(received)
                if total is not None and not encoded and received != total:
                    raise _TransferError(f"connection closed after {received} of {total} bytes",
                                         transient=True)
                if bar is not None:
                    bar.close(received)
        except _TransferError:
            raise
        except requests.exceptions.ConnectionError as exc:
            # no byte at all: the host is unreachable (offline, DNS, refused); else a dropped stream
            raise _TransferError(f"connection failed ({type(exc).__name__})", transient=True,
                                 unreachable=received == 0) from None
        except requests.exceptions.Timeout:
            raise _TransferError(f"timed out after {self.timeout} s", transient=True) from None
        except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError) as exc:
            raise _TransferError(f"the transfer broke off after {received} bytes "
                                 f"({type(exc).__name__})", transient=True) from None
        except requests.exceptions.RequestException as exc:
            raise _TransferError(f"request failed: {exc}", transient=False) from None


# ---- finding a data set -------------------------------------------------------------------------------
def _where_we_looked(spec: DataSpec, offline: Path | None, cache: Path) -> str:
    if offline is None:
        first = f"  {DATA_ENV} is not set"
    elif not offline.is_dir():
        first = f"  {DATA_ENV}={offline} (this directory does not exist)"
    else:
        first = f"  {DATA_ENV}={offline} (no {spec.offline_file} there)"
    return f"{first}\n  cache directory: {cache / spec.key} (set {CACHE_ENV} to change it)"


def _fix_hint(spec: DataSpec) -> str:
    return (f"How to fix: set {DATA_ENV} to a folder that holds {spec.offline_file} (for the course: "
            f"export {DATA_ENV}=/path/to/shared/data, layout in its SOURCES.md), or connect to the internet "
            "and run again to download it into the cache.")


def _fetch_all(spec: DataSpec, offline: Path | None, cache: Path, download: bool,
               downloader: Downloader | None) -> list:
    """The verified content of every remote file of `spec`, from the cache or downloaded."""
    downloader = downloader or Downloader()
    directory = cache / spec.key
    contents = []
    for remote in spec.remote:
        try:
            contents.append(downloader.fetch(remote, directory, download=download))
        except DataUnavailableError as exc:
            if not download:
                raise DataUnavailableError(
                    f"{spec.title}: {remote.name} is not on this machine and downloading is switched off.\n"
                    f"Looked in:\n{_where_we_looked(spec, offline, cache)}\n{_fix_hint(spec)}") from None
            raise DataUnavailableError(
                f"{spec.title}: the file {remote.name} is missing and could not be downloaded.\n"
                f"Looked in:\n{_where_we_looked(spec, offline, cache)}\nDownload: {exc}\n{_fix_hint(spec)}") from None
    return contents


def _offline_file(spec: DataSpec, offline: Path | None) -> Path | None:
    if offline is None:
        return None
    path = offline / spec.offline_file
    return path if path.is_file() else None


def _read_offline(spec: DataSpec, path: Path) -> tuple[bytes, bool]:
    """The bytes of an offline file and whether its sha256 matches the expected one."""
    raw = path.read_bytes()
    return raw, _digest(raw, "sha256") == spec.offline_sha256


_MEMO: dict = {}


def clear_memory_cache() -> None:
    """Forget the data sets memoized in this process (the next load reads the files again)."""
    _MEMO.clear()


def _memo_key(spec: DataSpec, data: Path | None, cache: Path | None) -> tuple:
    offline = Path(data).expanduser() if data is not None else data_dir()
    cache = Path(cache).expanduser() if cache is not None else cache_dir()
    return spec, offline, cache


def _read_only(*arrays: np.ndarray) -> list[np.ndarray]:
    for a in arrays:
        a.flags.writeable = False  # memoized and shared: changing them would change every later load
    return list(arrays)


# ---- MNIST ------------------------------------------------------------------------------------------
def _idx_bytes(array: np.ndarray) -> bytes:
    """An array in the IDX format of the official MNIST files: 0, 0, 0x08 (ubyte), ndim, big-endian sizes."""
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def _parse_idx(content: bytes, name: str) -> np.ndarray:
    if len(content) < 4 or content[:3] != b"\x00\x00\x08":
        raise DatasetError(f"{name} is not an IDX file of unsigned bytes (header {content[:4]!r})")
    ndim = content[3]
    shape = tuple(int(s) for s in np.frombuffer(content, dtype=">u4", count=ndim, offset=4))
    offset = 4 + 4 * ndim
    if len(content) - offset != int(np.prod(shape)):
        raise DatasetError(f"{name}: header says shape {shape}, but there are {len(content) - offset} bytes of data")
    return np.frombuffer(content, dtype=np.uint8, offset=offset).reshape(shape)


def _npz_splits(raw: bytes, path: Path, image_shape: tuple) -> Splits:
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
            missing = [k for k in Splits._fields if k not in npz.files]
            if missing:
                raise DatasetError(f"{path} lacks the arrays {missing}; it has {npz.files}. Expected the keys "
                                   "x_train, y_train, x_test, y_test (see SOURCES.md)")
            arrays = {k: npz[k] for k in Splits._fields}
    except (OSError, ValueError) as exc:
        raise ChecksumError(f"{path} is not a readable .npz file ({exc})") from None
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.dtype != np.uint8 or x.shape[1:] != image_shape or y.shape != x.shape[:1]:
            raise DatasetError(f"{path}: x_{split} should be uint8 of shape (N, {', '.join(map(str, image_shape))}) "
                               f"with y_{split} of shape (N,); got x {x.dtype} {x.shape}, y {y.dtype} {y.shape}")
    return Splits(**arrays)


def _mnist_from_npz(spec: DataSpec, path: Path) -> Splits:
    raw, sha_ok = _read_offline(spec, path)
    s = _npz_splits(raw, path, (28, 28))
    if not sha_ok:
        # Maybe re-compressed: accept it when the arrays, as official IDX files, have the official MD5s.
        for remote, array in zip(spec.remote, (s.x_train, s.y_train, s.x_test, s.y_test)):
            got = _digest(_idx_bytes(array), remote.algorithm)
            if remote.digest is not None and got != remote.digest:
                raise ChecksumError(
                    f"{path} is not the expected {spec.title} file: sha256 expected {spec.offline_sha256}, got "
                    f"{_digest(raw, 'sha256')}; and its arrays, written as {remote.name[:-3]}, have "
                    f"{remote.algorithm} {got} instead of the official {remote.digest}. Replace the file, or unset "
                    f"{DATA_ENV} ({path.parent}) to download the data.")
    return s


def load_mnist(*, data_dir: Path | str | None = None, cache_dir: Path | str | None = None, download: bool = True,
               downloader: Downloader | None = None, spec: DataSpec = MNIST) -> Splits:
    """MNIST digits: x uint8 (N, 28, 28) in 0..255, y int64 (N,) in 0..9; 60000 train, 10000 test.

    `data_dir` / `cache_dir` override $TINYTORCH_DATA / $TINYTORCH_CACHE; `download=False` never
    touches the network; `spec` replaces the file table (tests point it at a local server).
    """
    key = _memo_key(spec, data_dir, cache_dir)
    if key not in _MEMO:
        _, offline, cache = key
        path = _offline_file(spec, offline)
        if path is not None:
            s = _mnist_from_npz(spec, path)
        else:
            contents = _fetch_all(spec, offline, cache, download, downloader)
            s = Splits(*(_parse_idx(c, r.name) for c, r in zip(contents, spec.remote)))
        _MEMO[key] = Splits(*_read_only(s.x_train, s.y_train.astype(np.int64), s.x_test, s.y_test.astype(np.int64)))
    return _MEMO[key]


# ---- CIFAR-10 ---------------------------------------------------------------------------------------
_CIFAR_RECORD = 1 + 3 * 32 * 32  # one label byte, then 1024 red, 1024 green, 1024 blue pixels


def _parse_cifar_batches(batches: list[bytes], names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    for data, name in zip(batches, names):
        if len(data) % _CIFAR_RECORD:
            raise DatasetError(f"{name}: {len(data)} bytes is not a whole number of {_CIFAR_RECORD}-byte records")
    records = np.frombuffer(b"".join(batches), dtype=np.uint8).reshape(-1, _CIFAR_RECORD)
    return records[:, 1:].reshape(-1, 3, 32, 32), records[:, 0]


def _cifar_records(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Arrays back in the official binary layout: (N, 1 + 3072) records."""
    return np.concatenate([y.astype(np.uint8)[:, None], x.reshape(len(x), -1)], axis=1)


def _cifar_from_npz(spec: DataSpec, path: Path) -> Splits:
    raw, sha_ok = _read_offline(spec, path)
    s = _npz_splits(raw, path, (3, 32, 32))
    if not sha_ok:
        members = spec.remote[0].members
        train = _cifar_records(s.x_train, s.y_train)
        test = _cifar_records(s.x_test, s.y_test)
        per_batch = len(train) // max(len(members) - 1, 1)
        chunks = [train[i * per_batch:(i + 1) * per_batch] for i in range(len(members) - 1)] + [test]
        for (name, md5), chunk in zip(members, chunks):
            got = _digest(chunk.tobytes(), "md5")
            if got != md5:
                raise ChecksumError(
                    f"{path} is not the expected {spec.title} file: sha256 expected {spec.offline_sha256}, got "
                    f"{_digest(raw, 'sha256')}; and its arrays, written as {name}, have md5 {got} instead of the "
                    f"official {md5}. Replace the file, or unset {DATA_ENV} ({path.parent}) to download the data.")
    return s


def load_cifar10(*, data_dir: Path | str | None = None, cache_dir: Path | str | None = None, download: bool = True,
                 downloader: Downloader | None = None, spec: DataSpec = CIFAR10) -> Splits:
    """CIFAR-10: x uint8 (N, 3, 32, 32) channel-first, y int64 (N,) in 0..9 (see CIFAR10_CLASSES).

    50000 train and 10000 test images in the official order. Same options as `load_mnist`.
    """
    key = _memo_key(spec, data_dir, cache_dir)
    if key not in _MEMO:
        _, offline, cache = key
        path = _offline_file(spec, offline)
        if path is not None:
            s = _cifar_from_npz(spec, path)
        else:
            members = _fetch_all(spec, offline, cache, download, downloader)[0]
            names = [name for name, _ in spec.remote[0].members]
            x_train, y_train = _parse_cifar_batches([members[n] for n in names[:-1]], names[:-1])
            x_test, y_test = _parse_cifar_batches([members[names[-1]]], names[-1:])
            s = Splits(x_train, y_train, x_test, y_test)
        _MEMO[key] = Splits(*_read_only(s.x_train, s.y_train.astype(np.int64), s.x_test, s.y_test.astype(np.int64)))
    return _MEMO[key]


# ---- text -------------------------------------------------------------------------------------------
def load_text(name: str = "tinyshakespeare", *, data_dir: Path | str | None = None,
              cache_dir: Path | str | None = None, download: bool = True, downloader: Downloader | None = None,
              spec: DataSpec | None = None) -> str:
    """A text corpus as one string. Known names: see `TEXTS` ("tinyshakespeare": 1,115,394 characters)."""
    if spec is None:
        if name not in TEXTS:
            raise DatasetError(f"load_text: unknown corpus {name!r}; known corpora: {sorted(TEXTS)}")
        spec = TEXTS[name]
    key = _memo_key(spec, data_dir, cache_dir)
    if key not in _MEMO:
        _, offline, cache = key
        path = _offline_file(spec, offline)
        if path is not None:
            raw, sha_ok = _read_offline(spec, path)
            if not sha_ok:
                raise ChecksumError(f"{path} is not the expected {spec.title} file: sha256 expected "
                                    f"{spec.offline_sha256}, got {_digest(raw, 'sha256')}. Replace the file, or "
                                    f"unset {DATA_ENV} to download it.")
        else:
            raw = _fetch_all(spec, offline, cache, download, downloader)[0]
        _MEMO[key] = raw.decode("utf-8")
    return _MEMO[key]
