"""Module 11 - Training: the loop that ties model, loss, data and optimizer together.

    trainer = Trainer(model, tt.optim.Adam(model.parameters(), lr=1e-3))
    history = trainer.fit(train_loader, epochs=5, val_loader=test_loader, checkpoint="run.ckpt.npz")
    loss, accuracy = evaluate(model, test_loader)

One training step is always the same five lines - forward, loss, zero_grad, backward, step - and
one epoch is that step over every batch while keeping score. Evaluation runs the model in eval
mode (Dropout off, BatchNorm on running statistics) without recording a graph (`no_grad`), which
makes it faster and lighter.

Given to you (plumbing): the progress bar, which shows rate, ETA and loss on a terminal and falls
back to plain periodic lines when the output is a file or a CI log, and never crashes on a console
that cannot print Unicode; checkpoints, which store model, optimizer, scheduler, epoch, history and
the random generator in ONE .npz file (arrays + a JSON header, no pickle: loading a checkpoint never
runs code), written atomically so that a crash or a full disk never leaves half a checkpoint.
"""
from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from tinytorch.autograd import no_grad
from tinytorch.layers import atomic_savez
from tinytorch.optim import LRScheduler, Optimizer, clip_grad_norm_
from tinytorch.runtime import console_safe
from tinytorch.tensor import Tensor, get_rng


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. the loss became NaN); the message says where and what to try."""


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, or does not fit the model/optimizer."""


# ---- console output -----------------------------------------------------------------------------------
def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class ProgressBar:
    """Progress of a loop of `total` steps: rate, ETA and metrics such as the running loss.

    On a terminal one line is redrawn in place (at most 10 times a second). Otherwise (a file, a
    pipe, a CI log) it prints a plain line each time another 1/`lines` of the work is done, and
    one at the end - no carriage returns, no escape codes. Bar characters are Unicode blocks only
    when the stream's encoding can print them, '#' and '-' otherwise.

        bar = ProgressBar(len(loader), "epoch 1/5")
        for ...: bar.update(loss=0.31)
        bar.close(loss=0.29, acc=0.91)
    """

    def __init__(self, total: int | None, desc: str = "", stream=None, width: int = 24, lines: int = 4):
        self.total = int(total) if total else None
        self.desc = desc
        self.stream = stream if stream is not None else sys.stdout
        self.width = width
        self.tty = _isatty(self.stream)
        self.lines = max(1, int(lines))
        self.count = 0
        self.start = self._last_draw = time.perf_counter()
        self._next_line = 1
        self._last_len = 0
        self.closed = False
        self.fill, self.empty = ("\u2588", "\u2591") if self._can_print("\u2588\u2591") else ("#", "-")

    def _can_print(self, chars: str) -> bool:
        try:
            chars.encode(getattr(self.stream, "encoding", None) or "ascii")
            return True
        except (UnicodeEncodeError, LookupError):
            return False

    def _write(self, text: str) -> None:
        try:
            self.stream.write(console_safe(text, self.stream))
            self.stream.flush()
        except (OSError, ValueError):
            pass  # a closed or broken stream must not stop training

    def _format(self, metrics: dict, bar: bool) -> str:
        elapsed = time.perf_counter() - self.start
        rate = self.count / elapsed if elapsed > 0 else 0.0
        parts = [self.desc] if self.desc else []
        if self.total:
            if bar:
                done = int(self.width * min(self.count, self.total) / self.total)
                parts.append("[" + self.fill * done + self.empty * (self.width - done) + "]")
            parts.append(f"{self.count}/{self.total}" + ("" if bar else f" ({100 * self.count // self.total}%)"))
        else:
            parts.append(f"{self.count}")
        parts.append(f"{rate:.1f} it/s")
        if self.total and self.count < self.total:
            parts.append(f"ETA {_duration((self.total - self.count) / rate) if rate > 0 else '?'}")
        else:
            parts.append(_duration(elapsed))
        parts += [f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items()
                  if v is not None]
        return "  ".join(parts)

    def update(self, n: int = 1, **metrics) -> None:
        """Advance by `n` steps; `metrics` (e.g. loss=0.31) are shown next to the bar."""
        self.count += n
        if self.tty:
            now = time.perf_counter()
            if now - self._last_draw >= 0.1 or (self.total and self.count >= self.total):
                self._last_draw = now
                line = self._format(metrics, bar=True)
                self._write("\r" + line + " " * max(0, self._last_len - len(line)))
                self._last_len = len(line)
        elif self.total and self.count < self.total and self.count * self.lines >= self._next_line * self.total:
            self._write(self._format(metrics, bar=False) + "\n")
            while self._next_line * self.total <= self.count * self.lines:
                self._next_line += 1

    def close(self, **metrics) -> None:
        """The final line (with the final metrics); a terminal line is ended with a newline."""
        if self.closed:
            return
        self.closed = True
        line = self._format(metrics, bar=self.tty)
        if self.tty:
            self._write("\r" + line + " " * max(0, self._last_len - len(line)) + "\n")
        else:
            self._write(line + "\n")


# ---- metrics ------------------------------------------------------------------------------------------
def _count_correct(logits: Tensor, targets: Tensor) -> int | None:
    """Correct class predictions in a batch, or None when the output is not class scores."""
    t = targets.data if isinstance(targets, Tensor) else np.asarray(targets)
    if t.dtype.kind not in "iu" or logits.ndim != t.ndim + 1:
        return None
    return int((logits.data.argmax(axis=-1) == t).sum())


def accuracy(logits: Tensor, targets) -> float:
    """Fraction of rows whose largest score is at the target class: logits (..., C), targets (...)."""
    correct = _count_correct(logits, targets if isinstance(targets, Tensor) else Tensor(targets))
    if correct is None:
        raise ValueError(f"accuracy: expected class scores (..., C) and integer targets (...), got shapes "
                         f"{logits.shape} and {np.shape(targets)}")
    return correct / max(int(np.size(targets.data if isinstance(targets, Tensor) else targets)), 1)


def _default_loss():
    from tinytorch.networks import cross_entropy  # module 05; imported when needed
    return cross_entropy


def evaluate(model, loader, loss_fn=None) -> tuple[float, float | None]:
    """(mean loss, accuracy) of `model` over `loader`, in eval mode and without a graph.

    The loss is averaged over targets (each batch weighted by its number of targets, so a small
    last batch counts for what it is). Accuracy is None when the outputs are not class scores.
    The model's train/eval mode is restored afterwards.
    """
    loss_fn = loss_fn or _default_loss()
    was_training = getattr(model, "training", False)
    try:
        # BEGIN SOLUTION
        model.eval()
        total_loss, total_count, correct = 0.0, 0, 0
        with no_grad():
            for inputs, targets in loader:
                logits = model(inputs)
                n = int(np.size(targets.data if isinstance(targets, Tensor) else targets))
                total_loss += float(loss_fn(logits, targets).item()) * n
                total_count += n
                c = _count_correct(logits, targets)
                correct = None if c is None or correct is None else correct + c
        if total_count == 0:
            raise ValueError("evaluate: the loader produced no batches")
        return total_loss / total_count, (None if correct is None else correct / total_count)
        # END SOLUTION
    finally:
        model.train(was_training)


# ---- checkpoints --------------------------------------------------------------------------------------
_FORMAT = "tinytorch-checkpoint"
_META = "__meta__"


def _to_json(value, key: str, arrays: dict):
    """Replace every ndarray inside `value` by {"__array__": name}, storing it in `arrays`."""
    if isinstance(value, np.ndarray):
        arrays[key] = value
        return {"__array__": key}
    if isinstance(value, dict):
        return {str(k): _to_json(v, f"{key}/{k}", arrays) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_json(v, f"{key}/{i}", arrays) for i, v in enumerate(value)]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise CheckpointError(f"checkpoint: cannot store {key!r} of type {type(value).__name__} (only arrays, numbers, "
                          "strings, lists and dicts; no pickle)")


def _from_json(value, arrays):
    if isinstance(value, dict):
        if set(value) == {"__array__"}:
            return arrays[value["__array__"]]
        return {k: _from_json(v, arrays) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_json(v, arrays) for v in value]
    return value


def save_checkpoint(path, model, optimizer: Optimizer | None = None, scheduler: LRScheduler | None = None,
                    epoch: int = 0, history: list | None = None, extra: dict | None = None) -> None:
    """Write model + optimizer + scheduler state, epoch, history and tinytorch's RNG state to ONE .npz.

    Arrays are stored as .npy members; everything else goes into a JSON header (member
    "__meta__"). The write is atomic: readers see the old checkpoint or the new one, never half.
    """
    arrays: dict[str, np.ndarray] = {}
    meta = {
        "format": _FORMAT, "version": 1, "epoch": int(epoch),
        "model": _to_json({k: np.asarray(v) for k, v in model.state_dict().items()}, "model", arrays),
        "optimizer": None if optimizer is None else _to_json(optimizer.state_dict(), "optimizer", arrays),
        "scheduler": None if scheduler is None else _to_json(scheduler.state_dict(), "scheduler", arrays),
        "history": _to_json(list(history or []), "history", arrays),
        "extra": _to_json(dict(extra or {}), "extra", arrays),
        "rng": get_rng().bit_generator.state,
    }
    arrays[_META] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    atomic_savez(path, arrays)


def load_checkpoint(path, model=None, optimizer: Optimizer | None = None, scheduler: LRScheduler | None = None,
                    restore_rng: bool = True) -> dict:
    """Load a checkpoint written by `save_checkpoint` into the given objects; return its contents.

    Returns {"epoch", "history", "extra", "model", "optimizer", "scheduler"} (the states as
    dicts). With restore_rng, tinytorch's random generator continues exactly where it was saved,
    so shuffling and dropout after a resume match an uninterrupted run.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"load_checkpoint: no checkpoint at {path}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        meta = json.loads(arrays.pop(_META).tobytes().decode("utf-8"))
    except Exception as exc:  # a truncated zip, bad JSON, a missing header: all mean "not a checkpoint"
        raise CheckpointError(f"load_checkpoint: {path} is not a readable TinyTorch checkpoint "
                              f"({type(exc).__name__}: {exc})") from None
    if meta.get("format") != _FORMAT:
        raise CheckpointError(f"load_checkpoint: {path} is not a TinyTorch checkpoint (format {meta.get('format')!r})")
    state = {k: _from_json(meta.get(k), arrays) for k in ("model", "optimizer", "scheduler", "history", "extra")}
    state["epoch"] = int(meta.get("epoch", 0))
    if model is not None:
        model.load_state_dict(state["model"])
    if optimizer is not None:
        if state["optimizer"] is None:
            raise CheckpointError(f"load_checkpoint: {path} holds no optimizer state")
        optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None:
        if state["scheduler"] is None:
            raise CheckpointError(f"load_checkpoint: {path} holds no scheduler state")
        scheduler.load_state_dict(state["scheduler"])
    if restore_rng and meta.get("rng"):
        get_rng().bit_generator.state = meta["rng"]
    return state


# ---- the trainer --------------------------------------------------------------------------------------
class Trainer:
    """Train `model` with `optimizer` on batches (inputs, targets) from a DataLoader.

    loss_fn         loss(outputs, targets) -> scalar Tensor (default: cross_entropy)
    scheduler       an LRScheduler, stepped after every batch ("batch") or every epoch ("epoch")
    max_grad_norm   clip the global gradient norm to this value before each step (None: no clip)
    progress        show a progress bar on `stream` (default sys.stdout)

    `history` holds one dict per finished epoch: epoch, train_loss, train_accuracy, val_loss,
    val_accuracy (when there is validation data), lr, seconds.
    """

    def __init__(self, model, optimizer: Optimizer, loss_fn=None, scheduler: LRScheduler | None = None,
                 scheduler_interval: str = "batch", max_grad_norm: float | None = None, progress: bool = True,
                 stream=None):
        if scheduler_interval not in ("batch", "epoch"):
            raise ValueError(f"Trainer: scheduler_interval must be 'batch' or 'epoch', got {scheduler_interval!r}")
        self.model = model
        self.optimizer = optimizer
        self.loss_fn = loss_fn or _default_loss()
        self.scheduler = scheduler
        self.scheduler_interval = scheduler_interval
        self.max_grad_norm = max_grad_norm
        self.progress = progress
        self.stream = stream
        self.epoch = 0            # finished epochs
        self.history: list[dict] = []

    def _bar(self, total, desc: str):
        return ProgressBar(total, desc, stream=self.stream) if self.progress else None

    def train_step(self, inputs: Tensor, targets: Tensor) -> tuple[float, Tensor]:
        """One optimization step on one batch; returns (loss as a float, the model's outputs)."""
        # BEGIN SOLUTION
        outputs = self.model(inputs)
        loss = self.loss_fn(outputs, targets)
        self.optimizer.zero_grad()
        loss.backward()
        if self.max_grad_norm is not None:
            clip_grad_norm_([p for g in self.optimizer.param_groups for p in g["params"]], self.max_grad_norm)
        self.optimizer.step()
        return float(loss.item()), outputs
        # END SOLUTION

    def train_epoch(self, loader, desc: str = "train") -> dict:
        """One pass over `loader` in train mode: {"loss": mean loss per target, "accuracy": ... or None}.

        Steps the scheduler after each batch when scheduler_interval == "batch". Raises
        TrainingError when the loss stops being a finite number.
        """
        bar = self._bar(len(loader) if hasattr(loader, "__len__") else None, desc)
        self.model.train()
        # BEGIN SOLUTION
        total_loss, total_count, correct = 0.0, 0, 0
        for step, (inputs, targets) in enumerate(loader):
            loss, outputs = self.train_step(inputs, targets)
            if not math.isfinite(loss):
                raise TrainingError(f"{desc}: the loss became {loss} at batch {step}; lower the learning rate, "
                                    "clip gradients (max_grad_norm), or check the inputs for NaN")
            if self.scheduler is not None and self.scheduler_interval == "batch":
                self.scheduler.step()
            n = int(np.size(targets.data if isinstance(targets, Tensor) else targets))
            total_loss += loss * n
            total_count += n
            c = _count_correct(outputs, targets)
            correct = None if c is None or correct is None else correct + c
            if bar is not None:
                bar.update(loss=total_loss / total_count)
        if total_count == 0:
            raise TrainingError(f"{desc}: the loader produced no batches (empty data set, or drop_last with "
                                "fewer samples than batch_size)")
        result = {"loss": total_loss / total_count, "accuracy": None if correct is None else correct / total_count}
        # END SOLUTION
        if bar is not None:
            bar.close(loss=result["loss"], acc=result["accuracy"])
        return result

    def evaluate(self, loader) -> dict:
        loss, acc = evaluate(self.model, loader, self.loss_fn)
        return {"loss": loss, "accuracy": acc}

    def fit(self, train_loader, epochs: int, val_loader=None, checkpoint=None, resume: bool = False) -> list[dict]:
        """Train until `epochs` epochs are done; returns `history`.

        checkpoint  a path: saved (atomically) after every epoch
        resume      continue from `checkpoint` when it exists: model, optimizer, scheduler, epoch,
                    history and random state are restored, so the result equals an uninterrupted run
        Before each epoch e, a loader with `set_epoch` is told e (its shuffle order for that epoch).
        """
        if resume and checkpoint is not None and Path(checkpoint).exists():
            self.load_checkpoint(checkpoint)
            self._say(f"resumed from {checkpoint} after epoch {self.epoch}")
        for epoch in range(self.epoch, epochs):
            if hasattr(train_loader, "set_epoch"):
                train_loader.set_epoch(epoch)
            start = time.perf_counter()
            train = self.train_epoch(train_loader, desc=f"epoch {epoch + 1}/{epochs}")
            if self.scheduler is not None and self.scheduler_interval == "epoch":
                self.scheduler.step()
            record = {"epoch": epoch + 1, "train_loss": train["loss"], "train_accuracy": train["accuracy"]}
            if val_loader is not None:
                val = self.evaluate(val_loader)
                record.update(val_loss=val["loss"], val_accuracy=val["accuracy"])
            record["lr"] = self.optimizer.param_groups[0]["lr"]
            record["seconds"] = round(time.perf_counter() - start, 3)
            self.history.append(record)
            self.epoch = epoch + 1
            if val_loader is not None:
                acc = "" if record["val_accuracy"] is None else f", accuracy {record['val_accuracy']:.4f}"
                self._say(f"epoch {epoch + 1}/{epochs}: validation loss {record['val_loss']:.4f}{acc}")
            if checkpoint is not None:
                self.save_checkpoint(checkpoint)
        return self.history

    def _say(self, text: str) -> None:
        if self.progress:
            stream = self.stream if self.stream is not None else sys.stdout
            try:
                stream.write(console_safe(text + "\n", stream))
                stream.flush()
            except (OSError, ValueError):
                pass

    def save_checkpoint(self, path) -> None:
        save_checkpoint(path, self.model, self.optimizer, self.scheduler, epoch=self.epoch, history=self.history)

    def load_checkpoint(self, path) -> dict:
        state = load_checkpoint(path, self.model, self.optimizer, self.scheduler)
        self.epoch = state["epoch"]
        self.history = list(state["history"])
        return state
