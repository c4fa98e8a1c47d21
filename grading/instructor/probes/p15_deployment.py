"""Probes of module 15 (deployment): what each probe calls and why it cannot be passed without the work.

In a private temporary folder (`tempfile`): a small model with weights drawn by the probe is saved with
`save_artifact` and loaded back with `load_artifact`; the probe returns the reloaded model's raw outputs and
`predict` answers (predictions, probabilities) on fresh inputs, and the metadata's parameter count; a copy
of the artifact with one weight changed must be refused. The content hash is checked by its properties, not
its digest (which depends on how an implementation feeds the bytes to sha256): which of randomly chosen
variants hash equal (a copy or another dict order must; a changed number, dtype, shape or architecture must
not). `Artifact.validate` gets valid batches (returned converted) and invalid
ones (each must raise InputError). The MicroBatcher gets concurrent requests of random sizes from threads;
each must get back exactly its own rows of the model's outputs, however the requests were grouped.
"""
from __future__ import annotations

import importlib
import os
import tempfile
import threading

import numpy as np

MODULE = "15_deployment"


def _deployment(tt):
    return importlib.import_module(f"{tt.__name__}.deployment")


def _model(tt, rng, d_in, classes):
    hidden = int(rng.integers(2, 9))
    model = tt.nn.Sequential(tt.nn.Linear(d_in, hidden), tt.nn.Tanh(), tt.nn.Linear(hidden, classes))
    for p in model.parameters():
        p.data = rng.normal(0.0, 0.7, p.shape).astype(np.float32)
    return model


def probe_artifact_round_trip(tt, rng) -> dict[str, np.ndarray]:
    dep = _deployment(tt)
    d_in, classes = int(rng.integers(2, 8)), int(rng.integers(2, 6))
    model = _model(tt, rng, d_in, classes)
    x = rng.normal(0.0, 1.0, (int(rng.integers(1, 8)), d_in)).astype(np.float32)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.npz")
        dep.save_artifact(model, path, input_shape=(d_in,), metrics={"score": float(rng.uniform())})
        artifact = dep.load_artifact(path)
        answer = artifact.predict(x.tolist())
        outputs = artifact.forward(artifact.validate(x))
        with np.load(path, allow_pickle=False) as archive:
            entries = {k: archive[k] for k in archive.files}
        weight_keys = sorted(k for k in entries if entries[k].dtype.kind == "f")
        entries[weight_keys[int(rng.integers(0, len(weight_keys)))]].flat[0] += np.float32(0.5)
        tampered = os.path.join(folder, "tampered.npz")
        np.savez(tampered, **entries)
        try:
            dep.load_artifact(tampered)
            refused = 0
        except dep.ArtifactError:
            refused = 1
    return {"outputs": outputs, "probabilities": np.array(answer["probabilities"], dtype=np.float64),
            "predictions": np.array(answer["predictions"], dtype=np.int64),
            "parameters": np.array([artifact.metadata["parameters"]]), "tampered_refused": np.array([refused]),
            "float_model": model(tt.Tensor(x)).data}


def probe_content_hash_properties(tt, rng) -> dict[str, np.ndarray]:
    """Which of 8 randomly chosen variants of one model hash equal: the same weights again (a copy, or in another
    dict order) must, a changed number, dtype, shape or architecture must not. The pattern is drawn per regrade."""
    dep = _deployment(tt)
    weights = {f"w{i}": rng.normal(size=(2, int(rng.integers(2, 5)))).astype(np.float32)
               for i in range(int(rng.integers(2, 5)))}
    arch = {"type": "Sequential", "layers": [{"type": "ReLU", "config": {}}]}
    name = sorted(weights)[int(rng.integers(0, len(weights)))]

    def variant(kind: int):
        w = {k: v.copy() for k, v in weights.items()}
        if kind == 1:
            w = dict(reversed(list(w.items())))
        elif kind == 2:
            w[name].flat[0] += np.float32(1e-3)
        elif kind == 3:
            w[name] = w[name].astype(np.float64)
        elif kind == 4:
            w[name] = w[name].reshape(-1)
        elif kind == 5:
            return {"type": "Sequential", "layers": [{"type": "Tanh", "config": {}}]}, w
        return arch, w

    kinds = rng.integers(0, 6, size=8)
    hashes = [dep.content_hash(*variant(int(k))) for k in kinds]
    equal = np.array([[int(a == b) for b in hashes] for a in hashes])
    well_formed = all(isinstance(h, str) and h.startswith("sha256:") for h in hashes)
    return {"equal": equal, "well_formed": np.array([int(well_formed)])}


def probe_validate(tt, rng) -> dict[str, np.ndarray]:
    dep = _deployment(tt)
    d_in, classes = int(rng.integers(2, 8)), int(rng.integers(2, 6))
    model = _model(tt, rng, d_in, classes)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.npz")
        dep.save_artifact(model, path, input_shape=(d_in,))
        artifact = dep.load_artifact(path)
    good = rng.normal(0.0, 1.0, (int(rng.integers(1, 5)), d_in))
    ints = rng.integers(-3, 3, size=(2, d_in))
    bad = [np.zeros((0, d_in)), good[0], np.zeros((2, d_in + 1)), np.full((1, d_in), np.nan),
           [["a"] * d_in], [[1.0] * d_in, [1.0] * (d_in + 1)]]
    raised = []
    for batch in bad:
        try:
            artifact.validate(batch)
            raised.append(0)
        except dep.InputError:
            raised.append(1)
    return {"good": artifact.validate(good), "ints": artifact.validate(ints), "bad_raised": np.array(raised),
            "good_is_float32": np.array([artifact.validate(good).dtype.itemsize])}


def probe_micro_batcher(tt, rng) -> dict[str, np.ndarray]:
    dep = _deployment(tt)
    d_in, classes = int(rng.integers(2, 8)), int(rng.integers(2, 6))
    model = _model(tt, rng, d_in, classes)
    max_batch = int(rng.integers(3, 9))
    requests = [rng.normal(0.0, 1.0, (int(rng.integers(1, max_batch + 1)), d_in)).astype(np.float32)
                for _ in range(int(rng.integers(4, 10)))]
    forward = lambda x: model(tt.Tensor(x)).data       # noqa: E731 - the model as a batch function
    batcher = dep.MicroBatcher(forward, max_batch=max_batch, max_wait_ms=5.0)
    answers: list = [None] * len(requests)

    def client(i):
        answers[i] = batcher.submit(requests[i], timeout=10.0)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(requests))]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=15.0)
    finally:
        batcher.close()
    outputs = np.concatenate([a[0] for a in answers])
    within = all(a[1]["examples"] <= max_batch for a in answers)
    return {"outputs": outputs, "batch_limit_kept": np.array([int(within)]),
            "answered": np.array([sum(a is not None for a in answers)])}


PROBES = [probe_artifact_round_trip, probe_content_hash_properties, probe_validate, probe_micro_batcher]
