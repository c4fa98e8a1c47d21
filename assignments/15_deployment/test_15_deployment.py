"""Module 15 - Deployment: versioned artifacts, loading without training code, CLI, HTTP server."""
from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import requests

import tinytorch as tt
from tinytorch import deployment
from tinytorch.deployment import (FORMAT_VERSION, ArtifactError, MicroBatcher, build, content_hash, describe,
                                  load_artifact, read_metadata, register_architecture, save_artifact, serve)

REPO = Path(__file__).resolve().parents[2]


def mlp(seed=0):
    tt.manual_seed(seed)
    return tt.nn.Sequential(tt.nn.Linear(6, 16), tt.nn.ReLU(), tt.nn.Dropout(0.1), tt.nn.Linear(16, 3))


def predict_local(model, x):
    model.eval()
    with tt.no_grad():
        return model(tt.Tensor(x)).data


@pytest.fixture()
def artifact_path(tmp_path):
    path = tmp_path / "model.npz"
    save_artifact(mlp(), path, input_shape=(6,), name="iris-ish", metrics={"test_accuracy": 0.93},
                  labels=["a", "b", "c"])
    return path


@pytest.fixture()
def inputs():
    return np.random.default_rng(0).normal(size=(10, 6)).astype(np.float32)


# ---- artifacts ---------------------------------------------------------------------------------------------
def test_15_artifact_round_trip_gives_identical_predictions(artifact_path, inputs):
    art = load_artifact(artifact_path)
    np.testing.assert_array_equal(art.forward(inputs), predict_local(mlp(), inputs))
    assert not art.model.training                           # loaded models are in eval mode
    answer = art.predict(inputs)
    assert answer["predictions"] == predict_local(mlp(), inputs).argmax(axis=1).tolist()
    np.testing.assert_allclose(np.sum(answer["probabilities"], axis=1), 1.0, atol=1e-5)
    assert answer["labels"] == [["a", "b", "c"][i] for i in answer["predictions"]]


def test_15_artifact_is_one_npz_without_pickles_and_with_metadata(artifact_path):
    assert [p.name for p in artifact_path.parent.iterdir()] == ["model.npz"]   # no temp files left behind
    with np.load(artifact_path, allow_pickle=False) as archive:                # loads without pickle
        names = set(archive.files)
    assert deployment.META_KEY in names and "weights/0.weight" in names and "weights/3.bias" in names
    meta = read_metadata(artifact_path)
    assert meta["format"] == "tinytorch-artifact" and meta["format_version"] == FORMAT_VERSION
    assert meta["framework_version"] == tt.__version__
    assert meta["hash"].startswith("sha256:") and len(meta["hash"]) == 7 + 64
    assert meta["metrics"] == {"test_accuracy": 0.93}
    assert meta["input"] == {"shape": [6], "dtype": "float32"}
    assert meta["parameters"] == tt.nn.count_parameters(mlp())
    assert meta["architecture"]["type"] == "Sequential"
    assert [layer["type"] for layer in meta["architecture"]["layers"]] == ["Linear", "ReLU", "Dropout", "Linear"]


def test_15_content_hash_is_deterministic_and_detects_changes():
    model = mlp()
    arch, weights = describe(model), model.state_dict()
    h = content_hash(arch, weights)
    assert h == content_hash(arch, dict(reversed(list(weights.items()))))   # order does not matter
    assert h == content_hash(describe(mlp()), mlp().state_dict())          # same numbers, same hash
    changed = {k: v.copy() for k, v in weights.items()}
    changed["0.bias"][0] += 1e-3
    assert content_hash(arch, changed) != h
    as64 = {k: v.astype(np.float64) for k, v in weights.items()}
    assert content_hash(arch, as64) != h                                    # dtype is part of the content
    assert content_hash({**arch, "layers": arch["layers"][:2]}, weights) != h


def test_15_tampered_artifact_is_refused(artifact_path, tmp_path):
    with np.load(artifact_path) as archive:
        entries = {k: archive[k].copy() for k in archive.files}
    entries["weights/0.weight"][0, 0] += 0.5
    bad = tmp_path / "tampered.npz"
    np.savez(bad, **entries)
    with pytest.raises(ArtifactError, match="hash mismatch"):
        load_artifact(bad)
    load_artifact(bad, verify=False)                       # an explicit opt-out still loads it
    broken = tmp_path / "broken.npz"
    broken.write_bytes(artifact_path.read_bytes()[:200])
    with pytest.raises(ArtifactError, match="damaged"):
        load_artifact(broken)
    with pytest.raises(ArtifactError, match="no artifact"):
        load_artifact(tmp_path / "missing.npz")
    plain = tmp_path / "plain.npz"
    mlp().save(plain)
    with pytest.raises(ArtifactError, match="not a TinyTorch artifact"):
        load_artifact(plain)


def test_15_newer_format_version_is_refused(artifact_path, tmp_path):
    with np.load(artifact_path) as archive:
        entries = {k: archive[k] for k in archive.files}
    meta = json.loads(entries[deployment.META_KEY].tobytes())
    meta["format_version"] = FORMAT_VERSION + 1
    entries[deployment.META_KEY] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    future = tmp_path / "future.npz"
    np.savez(future, **entries)
    with pytest.raises(ArtifactError, match="newer"):
        load_artifact(future)


def test_15_save_is_atomic_a_failed_write_keeps_the_old_file(artifact_path, monkeypatch):
    before = artifact_path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(deployment.np, "savez", crash)
    with pytest.raises(OSError, match="disk full"):
        save_artifact(mlp(seed=5), artifact_path, input_shape=(6,))
    monkeypatch.undo()
    assert artifact_path.read_bytes() == before
    assert [p.name for p in artifact_path.parent.iterdir()] == ["model.npz"]
    with pytest.raises(ArtifactError, match="finite number"):
        save_artifact(mlp(), artifact_path, input_shape=(6,), metrics={"loss": float("nan")})


def test_15_conv_net_with_buffers_round_trips(tmp_path):
    tt.manual_seed(0)
    nn = tt.nn
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(4 * 4 * 4, 5))
    x = np.random.default_rng(0).normal(size=(3, 1, 8, 8)).astype(np.float32)
    model.train()
    model(tt.Tensor(x))                                    # update BatchNorm's running statistics
    save_artifact(model, tmp_path / "cnn.npz", input_shape=(1, 8, 8))
    art = load_artifact(tmp_path / "cnn.npz")
    np.testing.assert_allclose(art.forward(x), predict_local(model, x), rtol=1e-6, atol=1e-6)


class Scaled(tt.nn.Module):
    """A custom model: keeps its constructor arguments in `config`, as the registry expects."""

    def __init__(self, width=3, scale=2.0):
        self.config = {"width": width, "scale": scale}
        self.fc = tt.nn.Linear(2, width)

    def forward(self, x):
        return self.fc(x) * self.config["scale"]


def test_15_unknown_architectures_explain_how_to_register(tmp_path):
    with pytest.raises(ArtifactError, match="register_architecture"):
        save_artifact(Scaled(), tmp_path / "c.npz", input_shape=(2,))
    with pytest.raises(ArtifactError, match="unknown architecture type 'Nope'"):
        build({"type": "Nope", "config": {}})
    register_architecture("Scaled", f"{__name__}:Scaled")
    try:
        model = Scaled(width=4, scale=3.0)
        assert describe(model) == {"type": "Scaled", "config": {"width": 4, "scale": 3.0}}
        save_artifact(model, tmp_path / "c.npz", input_shape=(2,), task="raw")
        art = load_artifact(tmp_path / "c.npz")
        x = np.ones((1, 2), dtype=np.float32)
        np.testing.assert_allclose(art.forward(x), predict_local(model, x), rtol=1e-6)
    finally:
        deployment.ARCHITECTURES.pop("Scaled", None)
    with pytest.raises(ArtifactError, match="where must look like"):
        register_architecture("X", "no_colon_here")


# ---- a fresh process and the command line ------------------------------------------------------------------
def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["OPENBLAS_NUM_THREADS"] = "1"
    return env


def test_15_fresh_process_loads_without_the_training_code(artifact_path, inputs, tmp_path):
    np.save(tmp_path / "x.npy", inputs)
    script = (
        "import sys, numpy as np\n"
        "from tinytorch.deployment import load_artifact\n"
        f"art = load_artifact({str(artifact_path)!r})\n"
        f"np.save({str(tmp_path / 'y.npy')!r}, art.forward(np.load({str(tmp_path / 'x.npy')!r})))\n"
        "print('training' in sys.modules or 'tinytorch.training' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=_env(), timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"                  # no training loop was needed to predict
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), predict_local(mlp(), inputs))


def test_15_command_line_predict_and_info(artifact_path, inputs, tmp_path):
    np.save(tmp_path / "x.npy", inputs)
    cmd = [sys.executable, "-m", "tinytorch.deployment"]
    done = subprocess.run(cmd + ["predict", str(artifact_path), "--input", str(tmp_path / "x.npy"),
                                 "--output", str(tmp_path / "out.npy")],
                          capture_output=True, text=True, env=_env(), timeout=120)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["predictions"] == predict_local(mlp(), inputs).argmax(axis=1).tolist()
    assert answer["model"]["hash"] == read_metadata(artifact_path)["hash"]
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), predict_local(mlp(), inputs))
    info = subprocess.run(cmd + ["info", str(artifact_path)], capture_output=True, text=True, env=_env(), timeout=120)
    assert info.returncode == 0 and json.loads(info.stdout)["name"] == "iris-ish"
    np.save(tmp_path / "bad.npy", inputs[:, :4])
    bad = subprocess.run(cmd + ["predict", str(artifact_path), "--input", str(tmp_path / "bad.npy")],
                         capture_output=True, text=True, env=_env(), timeout=120)
    assert bad.returncode == 2 and "expected shape (N, 6)" in bad.stderr


# ---- input validation -------------------------------------------------------------------------------------
def test_15_validation_names_expected_and_received(artifact_path):
    art = load_artifact(artifact_path)
    cases = [([[1, 2, 3]], r"expected shape \(N, 6\), got shape \(1, 3\)"),
             ([1, 2, 3, 4, 5, 6], "a single example"),
             ([["a"] * 6], "must be numbers"),
             ([[1, 2], [1, 2, 3]], "rectangular"),
             ([[float("nan")] * 6], "NaN"),
             ([], "empty")]
    for value, message in cases:
        with pytest.raises(deployment.InputError, match=message) as info:
            art.validate(value)
        assert info.value.status == 422
    assert art.validate([[1, 2, 3, 4, 5, 6]]).dtype == np.float32


def test_15_integer_inputs_for_token_models(tmp_path):
    tt.manual_seed(0)
    model = tt.nn.Sequential(tt.nn.Embedding(10, 4), tt.nn.Linear(4, 10))
    save_artifact(model, tmp_path / "tok.npz", input_shape=(None,), input_dtype="int64", task="raw")
    art = load_artifact(tmp_path / "tok.npz")
    assert art.validate([[1, 2, 3]]).dtype == np.int64        # any length: shape (None,)
    assert np.array(art.predict([[1, 2, 3, 4]])["outputs"]).shape == (1, 4, 10)
    with pytest.raises(deployment.InputError, match="whole numbers"):
        art.validate([[1.5, 2]])


# ---- micro-batching ------------------------------------------------------------------------------------------
def test_15_micro_batcher_stacks_concurrent_requests_and_splits_answers():
    seen = []

    def forward(x):
        seen.append(len(x))
        return x * 2

    batcher = MicroBatcher(forward, max_batch=8, max_wait_ms=300)
    results = [None] * 6
    barrier = threading.Barrier(6)

    def client(i):
        barrier.wait()
        results[i] = batcher.submit(np.full((1, 3), float(i)))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    batcher.close()
    for i, (out, info) in enumerate(results):
        np.testing.assert_array_equal(out, np.full((1, 3), 2.0 * i))   # each client gets ITS rows
    assert sum(seen) == 6 and max(seen) > 1 and len(seen) < 6
    assert batcher.stats["requests"] == 6 and batcher.stats["batches"] == len(seen)


def test_15_micro_batcher_respects_max_batch_and_reports_errors():
    seen = []
    batcher = MicroBatcher(lambda x: (seen.append(len(x)), x)[1], max_batch=4, max_wait_ms=200)
    threads = [threading.Thread(target=batcher.submit, args=(np.zeros((3, 2)),)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    batcher.close()
    assert seen == [3, 3, 3]                                # 3 + 3 > 4: never stacked beyond max_batch

    def boom(x):
        raise RuntimeError("model exploded")

    failing = MicroBatcher(boom, max_batch=4, max_wait_ms=1)
    with pytest.raises(RuntimeError, match="exploded"):
        failing.submit(np.zeros((1, 2)))
    failing.close()


# ---- the HTTP server -------------------------------------------------------------------------------------------
@pytest.fixture()
def server(artifact_path):
    srv = serve(artifact_path, "127.0.0.1", 0, block=False, max_batch=32, max_wait_ms=100,
                max_body_bytes=20_000)
    yield srv
    srv.close()


def test_15_server_health_and_predict(server, inputs):
    health = requests.get(server.url + "/health", timeout=10)
    assert health.status_code == 200
    body = health.json()
    assert body["status"] == "ok" and body["model"] == "iris-ish" and body["input"]["shape"] == [6]
    assert body["hash"] == server.artifact.hash and body["metrics"] == {"test_accuracy": 0.93}
    r = requests.post(server.url + "/predict", json={"inputs": inputs[:3].tolist()}, timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/json"
    answer = r.json()
    assert answer["predictions"] == predict_local(mlp(), inputs[:3]).argmax(axis=1).tolist()
    assert answer["model"]["hash"] == server.artifact.hash and answer["batch"]["examples"] >= 3
    single = requests.post(server.url + "/predict", json={"input": inputs[0].tolist()}, timeout=10).json()
    assert single["predictions"] == answer["predictions"][:1]


def test_15_server_errors_are_clear_4xx(server):
    url = server.url
    cases = [
        (requests.post(url + "/predict", data=b"{not json", timeout=10), 400, "not valid JSON"),
        (requests.post(url + "/predict", json={"x": [1]}, timeout=10), 400, "\"inputs\""),
        (requests.post(url + "/predict", json={"inputs": [[1, 2]]}, timeout=10), 422,
         "expected shape (N, 6), got shape (1, 2)"),
        (requests.post(url + "/predict", json={"inputs": [["a"] * 6]}, timeout=10), 422, "numbers"),
        (requests.post(url + "/predict", json={"inputs": "hello"}, timeout=10), 422, "list of examples"),
        (requests.post(url + "/predict", json={"inputs": [[0.5] * 6] * 600}, timeout=10), 413, "limit"),
        (requests.post(url + "/predict", json={"inputs": [[0.5] * 6] * 33}, timeout=10), 413, "limit is 32"),
        (requests.get(url + "/nowhere", timeout=10), 404, "no such endpoint"),
        (requests.get(url + "/predict", timeout=10), 405, "use POST"),
        (requests.post(url + "/health", json={}, timeout=10), 405, "use GET"),
        (requests.delete(url + "/predict", timeout=10), 405, "use POST"),
    ]
    for response, status, message in cases:
        assert response.status_code == status, (status, response.text)
        error = response.json()["error"]
        assert error["status"] == status and message in error["message"], (status, error)
    assert requests.get(url + "/predict", timeout=10).headers["Allow"] == "POST"
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
    conn.putrequest("POST", "/predict")
    conn.endheaders()                                        # no Content-Length, no body
    response = conn.getresponse()
    assert response.status == 411 and "Content-Length" in json.loads(response.read())["error"]["message"]
    conn.close()
    assert requests.get(url + "/health", timeout=10).status_code == 200   # still serving after all that


def test_15_server_batches_concurrent_requests_with_correct_answers(server):
    xs = np.random.default_rng(3).normal(size=(12, 6)).astype(np.float32)
    expected = predict_local(mlp(), xs).argmax(axis=1).tolist()
    answers = [None] * 12
    barrier = threading.Barrier(12)

    def client(i):
        barrier.wait()
        answers[i] = requests.post(server.url + "/predict", json={"inputs": xs[i:i + 1].tolist()}, timeout=30).json()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert [a["predictions"][0] for a in answers] == expected        # everyone got their own answer
    assert max(a["batch"]["requests"] for a in answers) > 1          # and some rode in a shared forward pass
    stats = requests.get(server.url + "/health", timeout=10).json()["stats"]
    assert stats["requests"] == 12 and stats["batches"] < 12 and stats["examples"] == 12
