"""Probes of module 11 (training): what each probe calls and why it cannot be passed without the work.

A small MLP with weights drawn by the probe, on random data drawn by the probe:
- `evaluate`: mean loss (weighted by batch sizes, a short last batch included) and accuracy, and the model's
  mode restored afterwards;
- `Trainer.train_step`: the loss, the outputs and the parameters after a few steps of SGD with momentum,
  with and without gradient clipping;
- `Trainer.train_epoch`: the epoch's mean loss and accuracy, the parameters after it and the learning rate
  a per-batch scheduler reached.
Few steps, plain SGD: float differences between two honest implementations stay at rounding level.
"""
from __future__ import annotations

import numpy as np

MODULE = "11_training"


def _model(tt, rng, d_in, classes):
    model = tt.nn.Sequential(tt.nn.Linear(d_in, 8), tt.nn.Tanh(), tt.nn.Linear(8, classes))
    for p in model.parameters():
        p.data = rng.normal(0.0, 0.5, p.shape).astype(np.float32)
    return model


def _data(tt, rng, n, d_in, classes):
    x = rng.normal(0.0, 1.0, (n, d_in)).astype(np.float32)
    y = rng.integers(0, classes, size=n)
    return x, y


def _flat(model) -> np.ndarray:
    return np.concatenate([p.data.ravel() for p in model.parameters()])


def probe_evaluate(tt, rng) -> dict[str, np.ndarray]:
    training = __import__(f"{tt.__name__}.training", fromlist=["evaluate"])
    d_in, classes = int(rng.integers(2, 6)), int(rng.integers(2, 5))
    model = _model(tt, rng, d_in, classes)
    x, y = _data(tt, rng, int(rng.integers(10, 40)), d_in, classes)
    loader = tt.data.DataLoader(tt.data.TensorDataset(x, y), batch_size=int(rng.integers(3, 9)))
    model.train()
    loss, acc = training.evaluate(model, loader)
    custom, _ = training.evaluate(model, loader, loss_fn=lambda out, t: (out * out).mean())
    return {"loss": np.array([loss]), "accuracy": np.array([acc]), "custom_loss": np.array([custom]),
            "mode_restored": np.array([int(model.training)])}


def probe_train_step(tt, rng) -> dict[str, np.ndarray]:
    training = __import__(f"{tt.__name__}.training", fromlist=["Trainer"])
    d_in, classes = int(rng.integers(2, 6)), int(rng.integers(2, 5))
    out = {}
    for name, clip in (("plain", None), ("clipped", float(rng.uniform(0.05, 0.3)))):
        model = _model(tt, rng, d_in, classes)
        optimizer = tt.optim.SGD(model.parameters(), lr=float(rng.uniform(0.05, 0.3)), momentum=0.5)
        trainer = training.Trainer(model, optimizer, max_grad_norm=clip, progress=False)
        losses = []
        for _ in range(3):
            x, y = _data(tt, rng, int(rng.integers(4, 12)), d_in, classes)
            loss, outputs = trainer.train_step(tt.Tensor(x), tt.Tensor(y))
            losses.append(loss)
        out[f"{name}_losses"] = np.array(losses)
        out[f"{name}_last_outputs"] = outputs.data
        out[f"{name}_params"] = _flat(model)
    return out


def probe_train_epoch(tt, rng) -> dict[str, np.ndarray]:
    training = __import__(f"{tt.__name__}.training", fromlist=["Trainer"])
    d_in, classes = int(rng.integers(2, 6)), int(rng.integers(2, 5))
    model = _model(tt, rng, d_in, classes)
    x, y = _data(tt, rng, int(rng.integers(12, 30)), d_in, classes)
    loader = tt.data.DataLoader(tt.data.TensorDataset(x, y), batch_size=int(rng.integers(4, 9)))
    optimizer = tt.optim.SGD(model.parameters(), lr=float(rng.uniform(0.05, 0.3)))
    scheduler = tt.optim.StepLR(optimizer, step_size=1, gamma=float(rng.uniform(0.5, 0.9)))
    trainer = training.Trainer(model, optimizer, scheduler=scheduler, progress=False)
    result = trainer.train_epoch(loader)
    return {"loss": np.array([result["loss"]]), "accuracy": np.array([result["accuracy"]]),
            "params": _flat(model), "lr": np.array(scheduler.get_last_lr())}


PROBES = [probe_evaluate, probe_train_step, probe_train_epoch]
