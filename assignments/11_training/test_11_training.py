"""Module 11 - Training: Trainer, evaluate, progress output, checkpoints.

Uses modules 02-10: layers and losses (04, 05), DataLoader (08), backward (09), optimizers (10).
"""
import io
import json
import os
import time

import numpy as np
import pytest

import tinytorch as tt
from tinytorch.data import DataLoader, TensorDataset
from tinytorch.optim import SGD, Adam, CosineAnnealingLR
from tinytorch.training import (CheckpointError, ProgressBar, Trainer, TrainingError, accuracy, evaluate,
                                load_checkpoint, save_checkpoint)


@pytest.fixture(autouse=True)
def _seed():
    tt.manual_seed(0)


def blobs(n=400, seed=0):
    """Two Gaussian blobs in 2-D, far apart: linearly separable, labels int64."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.standard_normal((n, 2)).astype(np.float32) + np.where(y[:, None] == 1, 2.5, -2.5).astype(np.float32)
    return x, y.astype(np.int64)


def mlp(dropout=0.0):
    layers = [tt.nn.Linear(2, 16), tt.nn.ReLU()]
    if dropout:
        layers.append(tt.nn.Dropout(dropout))
    return tt.nn.Sequential(*layers, tt.nn.Linear(16, 2))


def loaders(batch_size=32, seed=None):
    x, y = blobs()
    xv, yv = blobs(200, seed=1)
    return (DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True, seed=seed),
            DataLoader(TensorDataset(xv, yv), batch_size=100))


class NonTTY(io.StringIO):
    """Like a CI log: not a terminal."""

    def isatty(self):
        return False


class TTY(io.StringIO):
    def isatty(self):
        return True


class Cp1252(io.StringIO):
    """A Windows console that cannot print Unicode block characters."""

    encoding = "cp1252"

    def write(self, text):
        text.encode("cp1252")  # raises UnicodeEncodeError like a real cp1252 console would
        return super().write(text)

    def isatty(self):
        return True


# ---- metrics and evaluation ----------------------------------------------------------------------------
@pytest.mark.given   # passes with no work in this module: checks code the course gives
def test_accuracy_counts_argmax_hits():
    logits = tt.tensor([[2.0, 1.0], [0.0, 3.0], [5.0, -1.0], [0.1, 0.2]])
    assert accuracy(logits, np.array([0, 1, 1, 1])) == 0.75


def test_evaluate_returns_mean_loss_and_accuracy_in_eval_mode_without_a_graph():
    x, y = blobs(50)
    model = mlp(dropout=0.5)
    model.train()
    recorded = []

    def loss_fn(outputs, targets):
        recorded.append(outputs.requires_grad)
        return tt.nn.cross_entropy(outputs, targets)

    loss, acc = evaluate(model, DataLoader(TensorDataset(x, y), batch_size=16), loss_fn)
    assert model.training, "evaluate must restore the model's previous (train) mode"
    assert recorded and not any(recorded), "evaluate must run under no_grad() (no graph is recorded)"
    logits = model.eval()(tt.tensor(x))
    expected_loss = tt.nn.cross_entropy(logits, y).item()
    assert abs(loss - expected_loss) < 1e-5, (
        f"evaluate's loss must be the mean over all samples (weight batches by size), in eval mode (no dropout): "
        f"expected {expected_loss}, got {loss}")
    assert abs(acc - (logits.data.argmax(1) == y).mean()) < 1e-9


# ---- training ------------------------------------------------------------------------------------------
def test_a_tiny_model_learns_a_separable_problem_quickly():
    train, val = loaders()
    model = mlp()
    trainer = Trainer(model, Adam(model.parameters(), lr=0.02), progress=False)
    start = time.perf_counter()
    history = trainer.fit(train, epochs=4, val_loader=val)
    seconds = time.perf_counter() - start
    assert len(history) == 4 and [h["epoch"] for h in history] == [1, 2, 3, 4]
    for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "seconds"):
        assert key in history[-1], f"history entries need '{key}', got {sorted(history[-1])}"
    assert history[-1]["val_accuracy"] >= 0.97, f"separable blobs should be learned, got {history[-1]}"
    assert history[-1]["train_loss"] < history[0]["train_loss"], "the training loss must go down"
    assert seconds < 2.0, f"4 epochs of 400 2-D points took {seconds:.2f} s; expected well under 2 s"


def test_train_epoch_reports_mean_loss_and_steps_the_scheduler_per_batch():
    train, _ = loaders(batch_size=50)
    model = mlp()
    opt = SGD(model.parameters(), lr=0.1)
    sched = CosineAnnealingLR(opt, T_max=100)
    trainer = Trainer(model, opt, scheduler=sched, progress=False)
    result = trainer.train_epoch(train)
    assert set(result) == {"loss", "accuracy"} and 0 <= result["accuracy"] <= 1
    assert sched.last_epoch == len(train) == 8, f"the scheduler steps once per batch, got {sched.last_epoch} steps"


def test_gradient_clipping_is_applied_when_asked():
    train, _ = loaders()
    model = mlp()
    seen = []

    class Spy(SGD):
        def step(self):
            seen.append(np.sqrt(sum((p.grad.data.astype(np.float64) ** 2).sum() for p in model.parameters())))
            super().step()

    Trainer(model, Spy(model.parameters(), lr=0.1), max_grad_norm=0.01, progress=False).train_epoch(train)
    assert max(seen) <= 0.01 + 1e-6, f"with max_grad_norm=0.01 the gradient norm at step() must be <= 0.01, got {max(seen)}"


def test_nan_loss_is_a_training_error():
    x, y = blobs(20)
    x[3, 0] = np.nan
    model = mlp()
    with pytest.raises(TrainingError, match=r"(?i)\bnan\b"):      # the README: the message gives the loss
        Trainer(model, SGD(model.parameters(), lr=0.1), progress=False).train_epoch(
            DataLoader(TensorDataset(x, y), batch_size=20))


# ---- checkpoints ---------------------------------------------------------------------------------------
def run_training(tmp_path, epochs, resume_from=None, checkpoint=None):
    tt.manual_seed(0)
    model = mlp(dropout=0.2)  # dropout and unseeded shuffling both draw from tinytorch's generator
    opt = Adam(model.parameters(), lr=0.01)
    sched = CosineAnnealingLR(opt, T_max=60)
    train, val = loaders(batch_size=40, seed=None)
    trainer = Trainer(model, opt, scheduler=sched, progress=False)
    if resume_from is not None:
        tt.manual_seed(123)  # a different state everywhere: the checkpoint must restore it all
        for p in model.parameters():
            p.data = p.data + 1.0
    trainer.fit(train, epochs=epochs, val_loader=val, checkpoint=checkpoint or resume_from,
                resume=resume_from is not None)
    return model, opt, trainer


def test_checkpoint_resume_gives_the_same_result_as_an_uninterrupted_run(tmp_path):
    straight, _, t1 = run_training(tmp_path, epochs=4)
    path = tmp_path / "run.ckpt.npz"
    run_training(tmp_path, epochs=2, checkpoint=path)
    assert path.exists(), "fit(checkpoint=...) must save after each epoch"
    resumed, _, t2 = run_training(tmp_path, epochs=4, resume_from=path)
    for (name, a), b in zip(straight.named_parameters(), resumed.parameters()):
        np.testing.assert_array_equal(b.data, a.data, err_msg=f"parameter {name} differs after resuming")
    strip = lambda h: [{k: v for k, v in e.items() if k != "seconds"} for e in h]  # noqa: E731
    assert strip(t2.history) == strip(t1.history), "the history after resuming must equal the uninterrupted one"


def test_checkpoint_is_one_npz_without_pickle(tmp_path):
    model = mlp()
    opt = Adam(model.parameters())
    x, y = blobs(8)
    Trainer(model, opt, progress=False).train_epoch(DataLoader(TensorDataset(x, y), batch_size=8))
    path = tmp_path / "c.npz"
    save_checkpoint(path, model, opt, epoch=3, history=[{"epoch": 3}], extra={"note": "hi"})
    with np.load(path, allow_pickle=False) as npz:  # would raise if anything needed pickle
        meta = json.loads(npz["__meta__"].tobytes())
    assert meta["epoch"] == 3 and meta["extra"] == {"note": "hi"}
    fresh = mlp()
    state = load_checkpoint(path, fresh, Adam(fresh.parameters()))
    assert state["epoch"] == 3 and state["history"] == [{"epoch": 3}]
    for a, b in zip(model.parameters(), fresh.parameters()):
        np.testing.assert_array_equal(a.data, b.data)


@pytest.mark.given   # passes with no work in this module: checks code the course gives
def test_a_failed_write_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    model = mlp()
    path = tmp_path / "c.npz"
    save_checkpoint(path, model, epoch=1)
    before = path.read_bytes()

    def disk_full(fh, **arrays):
        fh.write(b"PK\x03\x04 half a zip file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", disk_full)
    with pytest.raises(OSError, match="No space"):
        save_checkpoint(path, model, epoch=2)
    monkeypatch.undo()
    assert path.read_bytes() == before, "the old checkpoint must survive a failed save (write to a temp file, then rename)"
    assert sorted(os.listdir(tmp_path)) == ["c.npz"], "the temporary file must be removed"
    assert load_checkpoint(path, mlp())["epoch"] == 1


@pytest.mark.given   # passes with no work in this module: checks code the course gives
def test_a_corrupted_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "c.npz"
    save_checkpoint(path, mlp(), epoch=1)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="not a readable"):
        load_checkpoint(path, mlp())
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.npz")


# ---- progress output -----------------------------------------------------------------------------------
@pytest.mark.given   # passes with no work in this module: checks code the course gives
def test_progress_in_a_log_file_is_plain_lines():
    out = NonTTY()
    bar = ProgressBar(100, "epoch 1/3", stream=out)
    for _ in range(100):
        bar.update(loss=0.5)
    bar.close(loss=0.25, acc=0.9)
    text = out.getvalue()
    assert "\r" not in text and "\x1b" not in text, "no carriage returns or escape codes when not on a terminal"
    lines = text.splitlines()
    assert 2 <= len(lines) <= 6, f"a few periodic lines, not one per step; got {len(lines)}:\n{text}"
    assert "epoch 1/3" in lines[-1] and "100/100" in lines[-1] and "loss 0.2500" in lines[-1] and "acc 0.9000" in lines[-1]
    assert "it/s" in lines[0] and "ETA" in lines[0], f"lines show the rate and ETA: {lines[0]!r}"


def test_trainer_progress_goes_to_its_stream():
    train, val = loaders()
    out = NonTTY()
    model = mlp()
    Trainer(model, Adam(model.parameters(), lr=0.01), stream=out).fit(train, epochs=2, val_loader=val)
    text = out.getvalue()
    assert "epoch 1/2" in text and "epoch 2/2" in text and "validation loss" in text and "\r" not in text


@pytest.mark.given   # passes with no work in this module: checks code the course gives
def test_progress_on_a_terminal_redraws_one_line():
    out = TTY()
    bar = ProgressBar(3, "train", stream=out)
    for _ in range(3):
        bar.update(loss=1.0)
    bar.close(loss=1.0)
    assert out.getvalue().startswith("\r") and out.getvalue().endswith("\n") and out.getvalue().count("\n") == 1


@pytest.mark.given   # passes with no work in this module: checks code the course gives
def test_progress_never_crashes_on_a_console_without_unicode():
    out = Cp1252()
    bar = ProgressBar(5, "\u00e9poque \u2603", stream=out)  # a snowman cp1252 cannot print
    for _ in range(5):
        bar.update(loss=0.1)
    bar.close()
    assert "#" in out.getvalue(), "fall back to ASCII bar characters"
