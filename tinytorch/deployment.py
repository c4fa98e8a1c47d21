"""Module 15 - Deployment: freeze a trained model, load it anywhere, serve predictions over HTTP.

Training code is not deployment code. A deployed model must be loadable by a process that has
never seen the script that trained it, must refuse to run if its file is damaged, and must answer
requests from strangers safely. This module has four parts:

1. ARTIFACT - one versioned `.npz` file: the weights, the architecture as JSON (a description of
   the layers, not Python code), and metadata (format version, framework version, a content hash,
   the metrics you measured, the expected input). Written atomically (temp file + rename), so a
   crash never leaves half an artifact.
2. LOADING - `load_artifact(path)` rebuilds the model from the JSON with a registry of known
   architectures (`ARCHITECTURES`), loads the weights, and checks the hash. No pickle: the file
   holds only arrays and text, so loading one cannot run code.
3. COMMAND LINE - `python -m tinytorch.deployment predict model.npz --input x.npy`.
4. HTTP SERVER - `serve(artifact, host, port)`: standard library only (ThreadingHTTPServer).
   POST /predict with {"inputs": [[...], ...]} -> {"predictions": [...], ...}; GET /health.
   Bad requests get clear 4xx errors (400 bad JSON, 404, 405, 411, 413 too large, 422 wrong shape
   or dtype naming expected vs got). A MICRO-BATCHER stacks requests that arrive within a few
   milliseconds into ONE forward pass: a (64, 784) matmul costs far less than 64 (1, 784) ones.

    python -m tinytorch.deployment info model.npz
    python -m tinytorch.deployment predict model.npz --input digits.npy
    python -m tinytorch.deployment serve model.npz --port 8000
    curl -X POST localhost:8000/predict -d '{"inputs": [[0.0, ...784 numbers...]]}'
"""
from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import math
import os
import queue
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import urlsplit

import numpy as np

from tinytorch.layers import atomic_savez

FORMAT = "tinytorch-artifact"
FORMAT_VERSION = 1                  # bump when the file layout changes; loaders refuse newer versions
META_KEY = "__artifact__.json"      # the npz entry that holds the JSON metadata (as UTF-8 bytes)
WEIGHT_PREFIX = "weights/"          # npz entries of the state dict: "weights/0.weight", ...


class ArtifactError(ValueError):
    """An artifact cannot be written or used: unknown architecture, damaged file, wrong version."""


class InputError(ValueError):
    """A prediction request is not acceptable; `status` is the HTTP status code to answer with."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.status = status


def framework_version() -> str:
    import tinytorch
    return getattr(tinytorch, "__version__", "unknown")


# ---- the architecture registry --------------------------------------------------------------------------
# type name -> (where the class lives "module:Class", describe(module) -> JSON-able constructor kwargs).
# A JSON description plus the state dict rebuilds the model: build(description) constructs fresh
# layers with the right shapes, load_state_dict fills in the numbers.
ARCHITECTURES: dict[str, tuple[str, Callable | None]] = {}


def register_architecture(name: str, where: str, describe: Callable | None = None) -> None:
    """Teach `save_artifact`/`load_artifact` a layer or model type.

    where: "package.module:ClassName" (imported when an artifact needs it, in any process).
    describe(module) -> dict of constructor keyword arguments; None means the module keeps them in
    a `config` dict attribute (as TinyGPT does) or takes none (ReLU).
    """
    if ":" not in where:
        raise ArtifactError(f"register_architecture: where must look like 'package.module:ClassName', got {where!r}")
    ARCHITECTURES[name] = (where, describe)


def _bias(m) -> bool:
    return getattr(m, "bias", None) is not None


for _name in ("ReLU", "Sigmoid", "Tanh", "GELU", "Identity"):
    register_architecture(_name, f"tinytorch.layers:{_name}")
register_architecture("Linear", "tinytorch.layers:Linear",
                      lambda m: {"in_features": m.in_features, "out_features": m.out_features, "bias": _bias(m)})
register_architecture("LeakyReLU", "tinytorch.layers:LeakyReLU", lambda m: {"negative_slope": m.negative_slope})
register_architecture("Softmax", "tinytorch.layers:Softmax", lambda m: {"dim": m.dim})
register_architecture("LogSoftmax", "tinytorch.layers:LogSoftmax", lambda m: {"dim": m.dim})
register_architecture("Flatten", "tinytorch.layers:Flatten", lambda m: {"start_dim": m.start_dim, "end_dim": m.end_dim})
register_architecture("Dropout", "tinytorch.layers:Dropout", lambda m: {"p": m.p})
register_architecture("LayerNorm", "tinytorch.networks:LayerNorm",
                      lambda m: {"dim": m.dim, "eps": m.eps, "elementwise_affine": m.weight is not None})
register_architecture("Conv2d", "tinytorch.spatial:Conv2d",
                      lambda m: {"in_channels": m.in_channels, "out_channels": m.out_channels,
                                 "kernel_size": list(m.kernel_size), "stride": list(m.stride),
                                 "padding": list(m.padding), "bias": _bias(m)})
for _name in ("MaxPool2d", "AvgPool2d"):
    register_architecture(_name, f"tinytorch.spatial:{_name}",
                          lambda m: {"kernel_size": m.kernel_size, "stride": m.stride, "padding": m.padding})
register_architecture("GlobalAvgPool2d", "tinytorch.spatial:GlobalAvgPool2d")
register_architecture("BatchNorm2d", "tinytorch.spatial:BatchNorm2d",
                      lambda m: {"num_features": m.num_features, "eps": m.eps, "momentum": m.momentum,
                                 "affine": m.weight is not None})
register_architecture("Embedding", "tinytorch.attention:Embedding",
                      lambda m: {"num_embeddings": m.num_embeddings, "embedding_dim": m.embedding_dim})
register_architecture("GPT", "tinytorch.tinygpt:GPT")          # keeps its constructor arguments in .config
del _name


def _import(where: str):
    module_name, _, attr = where.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ArtifactError(f"cannot import {where}: {exc}") from exc


def describe(model) -> dict:
    """The JSON architecture of `model`: {"type": name, "config": {...}} or, for a Sequential (and
    subclasses such as MLP), {"type": "Sequential", "layers": [...]}."""
    from tinytorch.layers import Sequential

    name = type(model).__name__
    if name in ARCHITECTURES and isinstance(model, _import(ARCHITECTURES[name][0])):
        describe_fn = ARCHITECTURES[name][1]
        if describe_fn is not None:
            config = describe_fn(model)
        else:
            config = dict(getattr(model, "config", {}) or {})
        return {"type": name, "config": config}
    if isinstance(model, Sequential):
        return {"type": "Sequential", "layers": [describe(layer) for layer in model]}
    raise ArtifactError(
        f"describe: no registered architecture for {name}; known: {sorted(ARCHITECTURES)} and Sequential. "
        f"Register it with register_architecture({name!r}, 'your_package.your_module:{name}'), giving the "
        "class a `config` dict of its constructor arguments (or a describe function)")


def build(architecture: dict):
    """Construct a fresh model (random weights) from a description made by `describe`."""
    from tinytorch.layers import Sequential

    if not isinstance(architecture, dict) or "type" not in architecture:
        raise ArtifactError(f"build: an architecture is a dict with a 'type', got {architecture!r}")
    kind = architecture["type"]
    if kind == "Sequential":
        return Sequential(*[build(layer) for layer in architecture.get("layers", [])])
    if kind not in ARCHITECTURES:
        raise ArtifactError(f"build: unknown architecture type {kind!r}; known: {sorted(ARCHITECTURES)} and "
                            "Sequential (register custom models with register_architecture)")
    cls = _import(ARCHITECTURES[kind][0])
    config = architecture.get("config", {})
    for key in ("kernel_size", "stride", "padding"):        # JSON has lists; the layers want tuples
        if isinstance(config.get(key), list):
            config = {**config, key: tuple(config[key])}
    try:
        return cls(**config)
    except TypeError as exc:
        raise ArtifactError(f"build: cannot construct {kind} from config {config}: {exc}") from exc


# ---- the artifact file -----------------------------------------------------------------------------------
def _canonical_json(value) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode("utf-8")


def content_hash(architecture: dict, weights: dict[str, np.ndarray]) -> str:
    """sha256 of what determines the model's predictions: the architecture and every weight.

    Each weight contributes its name, dtype, shape and bytes, in sorted name order, so the hash does
    not depend on dict order and two models with equal numbers get equal hashes. Returns "sha256:<hex>".
    """
    # BEGIN SOLUTION
    h = hashlib.sha256()
    h.update(_canonical_json(architecture))
    for name in sorted(weights):
        arr = np.ascontiguousarray(weights[name])
        h.update(_canonical_json([name, arr.dtype.str, list(arr.shape)]))
        h.update(arr.tobytes())
    return "sha256:" + h.hexdigest()
    # END SOLUTION


def _clean_metrics(metrics: dict | None) -> dict:
    out = {}
    for key, value in (metrics or {}).items():
        if isinstance(value, (np.generic,)):
            value = value.item()
        if not isinstance(value, (int, float, str, bool)) or (isinstance(value, float) and not math.isfinite(value)):
            raise ArtifactError(f"save_artifact: metric {key!r} must be a finite number or a string, got {value!r}")
        out[str(key)] = value
    return out


def save_artifact(model, path, *, input_shape, input_dtype: str = "float32", task: str = "classification",
                  name: str | None = None, metrics: dict | None = None, labels: list | None = None,
                  extra: dict | None = None) -> dict:
    """Freeze `model` into ONE file at `path` (.npz); returns the metadata written.

    input_shape: the shape of ONE example, without the batch axis, e.g. (784,) or (1, 28, 28); use
    None for an axis of any length (a token sequence). input_dtype: "float32" or "int64" (token ids).
    task: "classification" (outputs are class scores: answers carry argmax predictions and
    softmax probabilities) or "raw" (outputs returned as they are). metrics: numbers you measured
    (e.g. {"test_accuracy": 0.98}); labels: optional class names. The write is atomic.
    """
    if task not in ("classification", "raw"):
        raise ArtifactError(f"save_artifact: task must be 'classification' or 'raw', got {task!r}")
    if np.dtype(input_dtype).kind not in "fiu":
        raise ArtifactError(f"save_artifact: input_dtype must be a number type, got {input_dtype!r}")
    architecture = describe(model)
    weights = model.state_dict()
    meta = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "framework_version": framework_version(),
        "name": name or type(model).__name__, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "architecture": architecture,
        "input": {"shape": [None if s is None else int(s) for s in input_shape], "dtype": np.dtype(input_dtype).name},
        "task": task, "labels": list(labels) if labels is not None else None,
        "metrics": _clean_metrics(metrics), "extra": extra or {},
        "parameters": int(sum(np.asarray(p.data).size for p in model.parameters())),
        "hash": content_hash(architecture, weights),
    }
    # BEGIN SOLUTION one npz: every weight under "weights/<name>" plus the JSON metadata, written with atomic_savez
    entries = {WEIGHT_PREFIX + key: value for key, value in weights.items()}
    entries[META_KEY] = np.frombuffer(json.dumps(meta, indent=1).encode("utf-8"), dtype=np.uint8)
    atomic_savez(path, entries)     # temp file + rename: readers see the old artifact or the new, never a mix
    # END SOLUTION
    return meta


def read_metadata(path) -> dict:
    """The JSON metadata of an artifact, without building the model."""
    meta, _ = _read(path)
    return meta


def _read(path) -> tuple[dict, dict]:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ArtifactError(f"no artifact at {path!r}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            if META_KEY not in archive.files:
                raise ArtifactError(f"{path} is an .npz file but not a TinyTorch artifact (no {META_KEY} entry); "
                                    "was it written with Module.save instead of save_artifact?")
            meta = json.loads(archive[META_KEY].tobytes().decode("utf-8"))
            weights = {k[len(WEIGHT_PREFIX):]: archive[k] for k in archive.files if k.startswith(WEIGHT_PREFIX)}
    except ArtifactError:
        raise
    except Exception as exc:  # zipfile.BadZipFile, ValueError, UnicodeDecodeError, ... : a damaged file
        raise ArtifactError(f"{path} cannot be read as an artifact ({type(exc).__name__}: {exc}); the file is "
                            "damaged or not an artifact") from exc
    return meta, weights


class Artifact:
    """A loaded artifact: `model` (eval mode), `metadata` (dict), and `predict(x)`."""

    def __init__(self, model, metadata: dict, path: str | None = None):
        self.model, self.metadata, self.path = model, metadata, path
        self.input_shape = tuple(metadata["input"]["shape"])
        self.input_dtype = np.dtype(metadata["input"]["dtype"])
        self.task = metadata.get("task", "raw")

    @property
    def hash(self) -> str:
        return self.metadata["hash"]

    @property
    def name(self) -> str:
        return self.metadata.get("name", "model")

    def validate(self, x) -> np.ndarray:
        """Check a batch against the artifact's input spec; return it as an array of the input dtype.

        Raises InputError(422) naming the expected and the received shape or dtype.
        """
        try:
            arr = np.asarray(x)
        except ValueError:  # ragged nested lists
            raise InputError("inputs must be a rectangular array of numbers (every example the same shape); "
                             f"expected a batch of shape (N, {', '.join(_axis(s) for s in self.input_shape)})") from None
        expected = "(N, " + ", ".join(_axis(s) for s in self.input_shape) + ")" if self.input_shape else "(N,)"
        # BEGIN SOLUTION check emptiness, dtype kind, finiteness, rank and each axis; then convert
        if arr.size == 0:
            raise InputError(f"inputs: the batch is empty; expected shape {expected} with N >= 1")
        if arr.dtype.kind not in "fiu" or arr.dtype == object:
            raise InputError(f"inputs must be numbers ({self.input_dtype.name}), got values of type "
                             f"{'text' if arr.dtype.kind in 'US' else arr.dtype.name}")
        if self.input_dtype.kind in "iu" and arr.dtype.kind == "f":
            if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
                raise InputError(f"inputs must be whole numbers (dtype {self.input_dtype.name}, e.g. token ids), "
                                 "got fractional values")
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            raise InputError("inputs contain NaN or infinity; send finite numbers")
        if arr.ndim != len(self.input_shape) + 1:
            hint = (" (a single example? wrap it in a list: a batch of one)"
                    if arr.ndim == len(self.input_shape) else "")
            raise InputError(f"inputs: expected a batch of shape {expected}, got shape {arr.shape}{hint}")
        for axis, (want, got) in enumerate(zip(self.input_shape, arr.shape[1:]), start=1):
            if want is not None and want != got:
                raise InputError(f"inputs: expected shape {expected}, got shape {arr.shape} "
                                 f"(axis {axis} has size {got}, the model needs {want})")
        return arr.astype(self.input_dtype, copy=False)
        # END SOLUTION

    def forward(self, x: np.ndarray) -> np.ndarray:
        """The model's raw outputs for a validated batch (no graph recorded)."""
        from tinytorch.autograd import no_grad
        from tinytorch.tensor import Tensor

        with no_grad():
            out = self.model(Tensor(x))
        return np.asarray(out.data)

    def answer(self, outputs: np.ndarray) -> dict:
        """Turn raw outputs (N, ...) into the JSON answer for the client."""
        if self.task != "classification":
            return {"outputs": outputs.tolist()}
        z = outputs.astype(np.float64)
        z = np.exp(z - z.max(axis=-1, keepdims=True))
        probs = z / z.sum(axis=-1, keepdims=True)
        predictions = outputs.argmax(axis=-1)
        result = {"predictions": predictions.tolist(), "probabilities": np.round(probs, 6).tolist()}
        labels = self.metadata.get("labels")
        if labels:
            result["labels"] = [labels[i] for i in predictions.ravel().tolist()]
        return result

    def predict(self, x) -> dict:
        """validate + forward + answer, for one batch."""
        return self.answer(self.forward(self.validate(x)))

    def __repr__(self) -> str:
        return f"Artifact(name={self.name!r}, hash={self.hash[:19]}..., input={self.input_shape} {self.input_dtype})"


def _axis(size) -> str:
    return "any" if size is None else str(size)


def load_artifact(path, verify: bool = True) -> Artifact:
    """Rebuild the model of an artifact in any process; check its format and (verify=True) its hash.

    Raises ArtifactError for a missing/damaged file, a newer format version, an unknown
    architecture, or weights whose hash differs from the recorded one (a modified file).
    """
    meta, weights = _read(path)
    if meta.get("format") != FORMAT:
        raise ArtifactError(f"{path}: not a {FORMAT} file (format {meta.get('format')!r})")
    # BEGIN SOLUTION check the version, rebuild from the JSON architecture, verify the hash, load weights
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ArtifactError(f"{path}: artifact format version {version} is newer than this loader understands "
                            f"({FORMAT_VERSION}); upgrade tinytorch to load it")
    if verify:
        actual = content_hash(meta["architecture"], weights)
        if actual != meta.get("hash"):
            raise ArtifactError(f"{path}: content hash mismatch - recorded {meta.get('hash')}, computed {actual}. "
                                "The weights or architecture were changed after saving (or the file is damaged)")
    model = build(meta["architecture"])
    try:
        model.load_state_dict(weights)
    except ValueError as exc:
        raise ArtifactError(f"{path}: the weights do not fit the architecture: {exc}") from exc
    model.eval()
    # END SOLUTION
    return Artifact(model, meta, os.fspath(path))


# ---- micro-batching --------------------------------------------------------------------------------------
class _Job:
    __slots__ = ("x", "done", "result", "error", "info")

    def __init__(self, x: np.ndarray):
        self.x, self.done = x, threading.Event()
        self.result = self.error = self.info = None


class MicroBatcher:
    """Collects requests for up to `max_wait_ms` (or until `max_batch` examples) and runs them as ONE
    forward pass in a single worker thread, then hands each request its own rows of the output.

    submit(x (n, ...)) blocks until the answer is ready and returns (outputs (n, ...), info) where
    info = {"requests": requests in that forward pass, "examples": its batch size}.
    The worker is the only thread that runs the model, so the model needs no locking.
    """

    def __init__(self, forward: Callable[[np.ndarray], np.ndarray], max_batch: int = 64, max_wait_ms: float = 5.0):
        if max_batch < 1 or max_wait_ms < 0:
            raise ValueError(f"MicroBatcher: need max_batch >= 1 and max_wait_ms >= 0, got {max_batch}, {max_wait_ms}")
        self.forward, self.max_batch, self.max_wait = forward, int(max_batch), max_wait_ms / 1000.0
        self._queue: queue.Queue = queue.Queue()
        self._carry: _Job | None = None          # a job that did not fit into the previous batch
        self.stats = {"requests": 0, "batches": 0, "examples": 0, "largest_batch_requests": 0}
        self._lock = threading.Lock()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name="micro-batcher", daemon=True)
        self._thread.start()

    def submit(self, x: np.ndarray, timeout: float = 60.0):
        job = _Job(x)
        self._queue.put(job)
        deadline = time.monotonic() + timeout
        while not job.done.wait(0.05):
            if self._failure is not None:   # the worker died: say why instead of waiting forever
                raise RuntimeError(f"the micro-batcher's worker stopped: {self._failure!r}") from self._failure
            if time.monotonic() > deadline:
                raise TimeoutError(f"the model did not answer within {timeout} s")
        if job.error is not None:
            raise job.error
        return job.result, job.info

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)

    def _next_batch(self) -> tuple[list[_Job], bool]:
        """Block for the first job, then gather more until the wait or the batch size runs out.

        Returns (jobs, stop) - stop is True when close() was called.
        """
        # BEGIN SOLUTION
        first = self._carry if self._carry is not None else self._queue.get()
        self._carry = None
        if first is None:
            return [], True
        jobs, examples = [first], len(first.x)
        deadline = time.monotonic() + self.max_wait
        while examples < self.max_batch:
            remaining = deadline - time.monotonic()
            try:
                job = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:
                return jobs, True
            if examples + len(job.x) > self.max_batch or job.x.shape[1:] != first.x.shape[1:]:
                self._carry = job      # does not fit (or cannot be stacked): first in the next batch
                break
            jobs.append(job)
            examples += len(job.x)
        return jobs, False
        # END SOLUTION

    def _loop(self) -> None:
        try:
            self._serve_batches()
        except BaseException as exc:  # e.g. an unfinished _next_batch: make submit() report it
            self._failure = exc

    def _serve_batches(self) -> None:
        stop = False
        while not stop:
            jobs, stop = self._next_batch()
            if not jobs:
                continue
            sizes = [len(j.x) for j in jobs]
            info = {"requests": len(jobs), "examples": int(sum(sizes))}
            try:
                out = self.forward(np.concatenate([j.x for j in jobs]) if len(jobs) > 1 else jobs[0].x)
                parts = np.split(out, np.cumsum(sizes)[:-1])
                for job, part in zip(jobs, parts):
                    job.result, job.info = part, info
            except Exception as exc:  # answer every waiting request with the error instead of hanging
                for job in jobs:
                    job.error = exc
            with self._lock:
                self.stats["requests"] += len(jobs)
                self.stats["batches"] += 1
                self.stats["examples"] += info["examples"]
                self.stats["largest_batch_requests"] = max(self.stats["largest_batch_requests"], len(jobs))
            for job in jobs:
                job.done.set()


# ---- the HTTP server -------------------------------------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    """Routes: GET /health, POST /predict. Every answer is JSON with a Content-Length."""

    server: "PredictionServer"
    protocol_version = "HTTP/1.1"
    server_version = "TinyTorchServe/1"
    ROUTES = {"/health": "GET", "/predict": "POST", "/": "GET"}

    # -- plumbing --
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        if self.server.verbose:
            super().log_message(format, *args)

    def _send(self, status: int, payload: dict, headers: dict | None = None) -> None:
        body = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, message: str, headers: dict | None = None) -> None:
        self._send(status, {"error": {"status": status, "message": message}}, headers)

    def _route(self, method: str) -> str | None:
        """The path if `method` is allowed on it; otherwise answer 404/405 and return None."""
        path = urlsplit(self.path).path.rstrip("/") or "/"
        allowed = self.ROUTES.get(path)
        if allowed is None:
            self._discard_body()
            self._error(404, f"no such endpoint {path!r}; try GET /health or POST /predict")
            return None
        if allowed != method:
            self._discard_body()
            self._error(405, f"{method} is not allowed on {path}; use {allowed}", {"Allow": allowed})
            return None
        return path

    def _discard_body(self) -> None:
        """Read and drop a request body we will not use, so the connection stays in sync."""
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        if length > self.server.max_body_bytes * 4:
            self.close_connection = True       # too much to drain: close instead
            return
        while length > 0:
            chunk = self.rfile.read(min(length, 65536))
            if not chunk:
                break
            length -= len(chunk)

    # -- methods --
    def do_GET(self):  # noqa: N802 - http.server's naming
        path = self._route("GET")
        if path is None:
            return
        self._send(200, self.server.health())

    def do_POST(self):  # noqa: N802
        if self._route("POST") is None:
            return
        try:
            body = self._read_body()
            x = self._parse(body)
            outputs, info = self.server.batcher.submit(x)
            answer = self.server.artifact.answer(outputs)
        except InputError as exc:
            self._error(exc.status, str(exc))
            return
        except Exception as exc:  # a bug or a model failure: say so without leaking a traceback
            self._error(500, f"prediction failed: {type(exc).__name__}: {exc}")
            return
        answer["model"] = {"name": self.server.artifact.name, "hash": self.server.artifact.hash}
        answer["batch"] = info
        self._send(200, answer)

    def _other_method(self):
        self._route(self.command)      # no route takes PUT/DELETE/PATCH: answers 404 or 405

    do_PUT = do_DELETE = do_PATCH = _other_method

    # -- request parsing --
    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self.close_connection = True
            raise InputError("send the request body with a Content-Length header (chunked encoding is not "
                             "supported)", status=411)
        raw_length = self.headers.get("Content-Length")
        if raw_length is None:
            raise InputError("a POST /predict request needs a Content-Length header and a JSON body", status=411)
        try:
            length = int(raw_length)
        except ValueError:
            raise InputError(f"Content-Length must be a number, got {raw_length!r}", status=400) from None
        if length > self.server.max_body_bytes:
            self._discard_body()
            raise InputError(f"request body of {length:,} bytes is larger than the limit of "
                             f"{self.server.max_body_bytes:,} bytes; send fewer examples per request", status=413)
        return self.rfile.read(length)

    def _parse(self, body: bytes) -> np.ndarray:
        """JSON body -> validated batch array; raises InputError with the right status."""
        try:
            request = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise InputError(f"the body is not valid JSON ({exc}); send e.g. {{\"inputs\": [[...], ...]}}",
                             status=400) from None
        if not isinstance(request, dict) or ("inputs" not in request and "input" not in request):
            raise InputError("the JSON body must be an object with key \"inputs\" (a batch: a list of examples) "
                             "or \"input\" (one example)", status=400)
        x = request["inputs"] if "inputs" in request else [request["input"]]
        if not isinstance(x, list):
            raise InputError(f"\"inputs\" must be a list of examples, got {type(x).__name__}", status=422)
        if len(x) > self.server.max_batch:
            raise InputError(f"{len(x)} examples in one request; the limit is {self.server.max_batch}",
                             status=413)
        return self.server.artifact.validate(x)


class PredictionServer(ThreadingHTTPServer):
    """An HTTP server for one artifact: a thread per connection, one micro-batcher running the model.

    server = PredictionServer(artifact, "127.0.0.1", 0).start()   # port 0: the OS picks a free port
    server.url   -> "http://127.0.0.1:54321"
    server.close()
    """

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128        # the listen backlog: bursts of concurrent clients must not be refused

    def __init__(self, artifact: Artifact, host: str = "127.0.0.1", port: int = 8000, *, max_batch: int = 64,
                 max_wait_ms: float = 5.0, max_body_bytes: int = 4 * 1024 * 1024, verbose: bool = False):
        self.artifact = artifact
        self.max_batch, self.max_body_bytes, self.verbose = int(max_batch), int(max_body_bytes), verbose
        self.batcher = MicroBatcher(artifact.forward, max_batch=max_batch, max_wait_ms=max_wait_ms)
        self.started = time.time()
        self._thread: threading.Thread | None = None
        super().__init__((host, port), _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def health(self) -> dict:
        meta = self.artifact.metadata
        with self.batcher._lock:
            stats = dict(self.batcher.stats)
        return {"status": "ok", "model": self.artifact.name, "hash": self.artifact.hash,
                "format_version": meta.get("format_version"), "framework_version": meta.get("framework_version"),
                "input": meta["input"], "task": self.artifact.task, "metrics": meta.get("metrics", {}),
                "uptime_seconds": round(time.time() - self.started, 3), "stats": stats}

    def start(self) -> "PredictionServer":
        """Serve in a background thread (returns at once)."""
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="prediction-server", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread is not None:
            self.shutdown()
            self._thread.join(timeout=5)
        self.server_close()
        self.batcher.close()

    def __enter__(self) -> "PredictionServer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def serve(artifact, host: str = "127.0.0.1", port: int = 8000, *, block: bool = True, **options):
    """Serve an artifact (path or Artifact) over HTTP. block=True serves until Ctrl-C; block=False
    returns the running PredictionServer (call .close()). Options: max_batch, max_wait_ms,
    max_body_bytes, verbose."""
    if not isinstance(artifact, Artifact):
        artifact = load_artifact(artifact)
    server = PredictionServer(artifact, host, port, **options)
    if not block:
        return server.start()
    print(f"serving {artifact.name} ({artifact.hash[:19]}...) on {server.url} - POST /predict, GET /health; "
          "Ctrl-C stops", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        server.batcher.close()
    return server


# ---- command line ----------------------------------------------------------------------------------------
def _load_input(path: str) -> np.ndarray:
    if path == "-":
        data = json.load(sys.stdin)
        return np.asarray(data["inputs"] if isinstance(data, dict) else data)
    if path.endswith(".npy"):
        return np.load(path, allow_pickle=False)
    if path.endswith(".npz"):
        with np.load(path, allow_pickle=False) as archive:
            return archive[archive.files[0]]
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    return np.asarray(data["inputs"] if isinstance(data, dict) else data)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tinytorch.deployment",
                                     description="Inspect, run and serve TinyTorch model artifacts.")
    sub = parser.add_subparsers(dest="command", required=True)
    p_info = sub.add_parser("info", help="print an artifact's metadata")
    p_info.add_argument("artifact")
    p_pred = sub.add_parser("predict", help="predict a batch from a .npy/.npz/.json file ('-' = JSON on stdin)")
    p_pred.add_argument("artifact")
    p_pred.add_argument("--input", required=True)
    p_pred.add_argument("--output", help="also write the raw outputs to this .npy file")
    p_serve = sub.add_parser("serve", help="serve predictions over HTTP")
    p_serve.add_argument("artifact")
    p_serve.add_argument("--host", default="127.0.0.1")
    p_serve.add_argument("--port", type=int, default=8000)
    p_serve.add_argument("--max-batch", type=int, default=64)
    p_serve.add_argument("--max-wait-ms", type=float, default=5.0)
    p_serve.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    try:
        if args.command == "info":
            print(json.dumps(read_metadata(args.artifact), indent=2))
        elif args.command == "predict":
            artifact = load_artifact(args.artifact)
            x = artifact.validate(_load_input(args.input))
            outputs = artifact.forward(x)
            if args.output:
                np.save(args.output, outputs)
            answer = artifact.answer(outputs)
            answer["model"] = {"name": artifact.name, "hash": artifact.hash}
            print(json.dumps(answer))
        else:
            serve(args.artifact, args.host, args.port, max_batch=args.max_batch, max_wait_ms=args.max_wait_ms,
                  verbose=args.verbose)
    except (ArtifactError, InputError, OSError, KeyError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
