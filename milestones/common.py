"""What every milestone program gets from the runner: data, progress, a clock, a place for files.

A milestone program is a file `milestones/mN_<name>.py` that defines

    def run(ctx: MilestoneContext) -> dict:
        ...
        return {"metrics": {"test_accuracy": 0.97, ...},      # judged against course.yaml `victory`
                "history": [{"epoch": 1, "train_loss": ..., "test_accuracy": ...}, ...],
                "details": {"parameters": 101_770, ...}}

The program never decides whether it won: `tito milestone run N` (grading/milestones.py) compares
`metrics` with the victory conditions in assignments/course.yaml, times the run, and writes the result
JSON and an SVG plot of `history`. The program uses the student's own `tinytorch` package.

`ctx.tiny` is True when the unit tests run the program end to end: then the `load_*` methods return
small synthetic data sets made here (seeded, with a learnable class structure) and the program must
finish in seconds. The numbers of a tiny run say nothing about the student's framework beyond "the
plumbing works".
"""
from __future__ import annotations

import inspect
import os
import sys
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np


class MilestoneDataMissing(RuntimeError):
    """A data set the milestone needs is not available; the message says which file, where we looked,
    and how to fix it. The runner reports a failed (not crashed) result with this message."""


def _encodable(text: str, stream) -> bool:
    encoding = getattr(stream, "encoding", None) or "ascii"
    try:
        text.encode(encoding)
        return True
    except (UnicodeEncodeError, LookupError):
        return False


def _fmt_seconds(s: float) -> str:
    s = max(0.0, s)
    if s < 60:
        return f"{s:4.1f}s"
    m, s = divmod(int(round(s)), 60)
    return f"{m}m{s:02d}s" if m < 60 else f"{m // 60}h{m % 60:02d}m"


class MilestoneContext:
    """Everything a milestone program needs from its surroundings (see the module docstring).

    number          the milestone number (1..5)
    data_dir        directory of real data sets (TINYTORCH_DATA), or None: then tinytorch.datasets
                    falls back to its download cache
    tiny            True in unit tests: synthetic data, seconds of work
    seed            seed for every random choice (tt.manual_seed(ctx.seed), NumPy generators)
    out_dir         directory for the program's files (saved models); created on demand
    budget_seconds  wall-clock budget from course.yaml; `time_left()` counts down from the start
    download        whether a data set missing from data_dir and the cache may be downloaded
    """

    def __init__(self, number: int, data_dir: Path | str | None = None, tiny: bool = False, seed: int = 0,
                 out_dir: Path | str | None = None, budget_seconds: float = 600.0, stream=None,
                 clock: Callable[[], float] = time.perf_counter, download: bool = True):
        self.number = int(number)
        env = os.environ.get("TINYTORCH_DATA")
        self.data_dir = Path(data_dir) if data_dir else (Path(env) if env else None)
        self.tiny = bool(tiny)
        self.seed = int(seed)
        self.out_dir = Path(out_dir) if out_dir else Path.cwd() / ".tito" / "milestones" / f"m{self.number}-files"
        self.budget_seconds = float(budget_seconds)
        self.stream = stream if stream is not None else sys.stdout
        self._clock = clock
        self._start = clock()
        self.download = bool(download)   # False: never touch the network for data
        self.corpus: str | None = None   # set by load_text(); the runner copies it into the result

    # ---- time and output -------------------------------------------------------------------------
    def elapsed(self) -> float:
        return self._clock() - self._start

    def time_left(self) -> float:
        """Seconds of the budget left (negative once it is spent)."""
        return self.budget_seconds - self.elapsed()

    def log(self, msg: str) -> None:
        """Print one line; characters the console cannot show are replaced, never a crash."""
        text = str(msg)
        if not _encodable(text, self.stream):
            enc = getattr(self.stream, "encoding", None) or "ascii"
            text = text.encode(enc, errors="replace").decode(enc, errors="replace")
        print(text, file=self.stream, flush=True)

    def progress(self, iterable: Iterable, total: int | None = None, desc: str = "") -> Iterator:
        """Yield from `iterable` while showing progress with rate and ETA.

        On a terminal: one line redrawn in place (`desc [#####.....] 120/469 25.3 it/s ETA 13s`).
        Otherwise (CI logs, pipes): a plain line at each 10% mark (at most one per 5 s) and at the end,
        so logs stay short.
        """
        if total is None:
            try:
                total = len(iterable)  # type: ignore[arg-type]
            except TypeError:
                total = None
        tty = bool(getattr(self.stream, "isatty", lambda: False)())
        start = self._clock()
        last_draw = start if not tty else -1.0
        next_mark = 0.1
        count = 0

        def line(final: bool = False) -> str:
            took = self._clock() - start
            rate = count / took if took > 0 else 0.0
            head = f"{desc} " if desc else ""
            if total:
                frac = min(count / total, 1.0)
                bar = "#" * int(frac * 24) + "." * (24 - int(frac * 24))
                eta = (total - count) / rate if rate > 0 else 0.0
                tail = f"took {_fmt_seconds(took)}" if final else f"ETA {_fmt_seconds(eta)}"
                return f"{head}[{bar}] {count}/{total} {rate:6.1f} it/s {tail}"
            return f"{head}{count} it {rate:6.1f} it/s {_fmt_seconds(took)}"

        for item in iterable:
            yield item
            count += 1
            now = self._clock()
            if tty:
                if now - last_draw > 0.2 or (total and count == total):
                    self.stream.write("\r" + line() + "   ")
                    self.stream.flush()
                    last_draw = now
            elif total and count / total >= next_mark - 1e-9 and count < total:
                if now - last_draw >= 5.0:  # short loops print only their final line
                    self.log(line())
                    last_draw = now
                while next_mark <= count / total:
                    next_mark += 0.1
        if tty:
            self.stream.write("\r" + line(final=True) + "   \n")
            self.stream.flush()
        else:
            self.log(line(final=True))

    # ---- data ----------------------------------------------------------------------------------------
    def _real(self, name: str, filename: str):
        """Call tinytorch.datasets.<name>(), turning "not found" into MilestoneDataMissing."""
        try:
            from tinytorch import datasets
        except ImportError as exc:
            raise MilestoneDataMissing(f"cannot load {filename}: tinytorch.datasets is not importable ({exc})") from exc
        loader = getattr(datasets, name)
        kwargs = {}
        accepted = inspect.signature(loader).parameters
        if self.data_dir is not None and "data_dir" in accepted:
            kwargs["data_dir"] = self.data_dir
        if not self.download and "download" in accepted:
            kwargs["download"] = False
        missing_errors = (FileNotFoundError, ConnectionError, getattr(datasets, "DatasetError", FileNotFoundError))
        try:
            return loader(**kwargs)
        except missing_errors as exc:
            # tinytorch.datasets already names the file, where it looked and how to fix it
            text = str(exc)
            if "TINYTORCH_DATA" not in text:
                text = self._missing_message(filename, exc)
            raise MilestoneDataMissing(text) from exc

    def _missing_message(self, filename: str, exc: BaseException) -> str:
        where = str(self.data_dir) if self.data_dir else "TINYTORCH_DATA is not set"
        return (f"data set {filename} is missing: {exc}\n"
                f"  looked in: {where} (and the download cache)\n"
                f"  fix: put {filename} in a directory and `export TINYTORCH_DATA=/that/directory`, "
                "or allow the download once with network access")

    def load_mnist(self):
        """(x_train uint8 (N,28,28), y_train int64 (N,), x_test, y_test)."""
        if self.tiny:
            return synthetic_images(self.seed, (28, 28), n_train=512, n_test=256)
        x_train, y_train, x_test, y_test = self._real("load_mnist", "mnist.npz")
        return _as_u8(x_train), _as_i64(y_train), _as_u8(x_test), _as_i64(y_test)

    def load_cifar10(self):
        """(x_train uint8 (N,3,32,32), y_train int64 (N,), x_test, y_test)."""
        if self.tiny:
            return synthetic_images(self.seed, (3, 32, 32), n_train=256, n_test=128)
        x_train, y_train, x_test, y_test = self._real("load_cifar10", "cifar10.npz")
        return _as_u8(x_train), _as_i64(y_train), _as_u8(x_test), _as_i64(y_test)

    def load_text(self) -> tuple[str, str]:
        """(text, corpus name): Tiny Shakespeare, or CPython's documentation text when it is unavailable."""
        if self.tiny:
            text, name = synthetic_text(self.seed), "synthetic (tiny test corpus)"
        else:
            try:
                got = self._real("load_text", "tinyshakespeare.txt")
                text, name = got if isinstance(got, tuple) else (got, "tinyshakespeare")
                if not text:
                    raise MilestoneDataMissing("tinyshakespeare.txt is empty")
            except MilestoneDataMissing as exc:
                reason = str(exc).splitlines()[0].rstrip(".")
                self.log(f"Tiny Shakespeare is not available ({reason}); using the offline default corpus, "
                         "pydoc_data, which has its own bar in course.yaml")
                text, name = pydoc_corpus(), "pydoc_data"
        self.corpus = name
        return text, name


def _as_u8(x) -> np.ndarray:
    return np.asarray(x, dtype=np.uint8)


def _as_i64(y) -> np.ndarray:
    return np.asarray(y, dtype=np.int64)


def pydoc_corpus() -> str:
    """The Python documentation text that ships with CPython (`pydoc_data.topics`), as one string."""
    from pydoc_data import topics
    return "\n\n".join(topics.topics[key] for key in sorted(topics.topics))


def synthetic_images(seed: int, shape: tuple, n_train: int, n_test: int, classes: int = 10):
    """A small image classification set with real (learnable, not trivial) class structure.

    Each class has a smooth random prototype image; a sample is its class prototype, shifted by up to
    two pixels, scaled in contrast, plus noise. Returns uint8 images of `shape` and int64 labels.
    """
    rng = np.random.default_rng(10_000 + seed)
    *lead, h, w = shape
    channels = lead[0] if lead else 1
    # smooth prototypes: random coarse grids upsampled to full size
    coarse = rng.random((classes, channels, 4, 4))
    protos = coarse.repeat(h // 4 + 1, axis=2)[:, :, :h].repeat(w // 4 + 1, axis=3)[:, :, :, :w]

    def make(n):
        y = np.arange(n) % classes
        rng.shuffle(y)
        shift = rng.integers(-2, 3, size=(n, 2))
        x = protos[y]
        x = np.stack([np.roll(img, (dy, dx), axis=(1, 2)) for img, (dy, dx) in zip(x, shift)])
        x = x * rng.uniform(0.7, 1.3, size=(n, 1, 1, 1)) + rng.normal(0, 0.25, size=x.shape)
        x = np.clip(x * 255, 0, 255).astype(np.uint8)
        return (x if lead else x[:, 0]), y.astype(np.int64)

    x_train, y_train = make(n_train)
    x_test, y_test = make(n_test)
    return x_train, y_train, x_test, y_test


def synthetic_text(seed: int, chars: int = 20_000) -> str:
    """A small text with words and line structure, for tiny runs of the language milestone."""
    rng = np.random.default_rng(20_000 + seed)
    words = ("the king and queen of the realm speak to thee now my lord what say you good sir "
             "fair lady come hither I pray thou art noble").split()
    out, size = [], 0
    while size < chars:
        line = " ".join(rng.choice(words, size=int(rng.integers(4, 10)))).capitalize() + ".\n"
        out.append(line)
        size += len(line)
    return "".join(out)[:chars]


# ---- helpers milestone programs share ----------------------------------------------------------------
def predict_in_batches(model, images: np.ndarray, prepare: Callable[[np.ndarray], np.ndarray],
                       batch_size: int = 500, ctx: MilestoneContext | None = None, desc: str = "inference",
                       on_batch: Callable[[int, np.ndarray, np.ndarray], None] | None = None) -> np.ndarray:
    """Predicted class (argmax of the logits) for every image, `batch_size` images at a time.

    `prepare` turns a uint8 batch into the float32 array the model eats. Runs without recording a
    graph (tt.no_grad) and with the model in eval mode. `on_batch(i, rows, predictions)` is called
    after each batch (used for the running-accuracy history).
    """
    import tinytorch as tt

    if hasattr(model, "eval"):
        model.eval()
    starts = range(0, len(images), batch_size)
    if ctx is not None:
        starts = ctx.progress(starts, total=len(starts), desc=desc)
    out = np.empty(len(images), dtype=np.int64)
    with tt.no_grad():
        for i, start in enumerate(starts):
            rows = slice(start, start + batch_size)
            logits = model(tt.Tensor(prepare(images[rows])))
            out[rows] = np.argmax(np.asarray(logits.data), axis=1)
            if on_batch is not None:
                on_batch(i, np.arange(len(images))[rows], out[rows])
    return out


def classify_test_set(model, images: np.ndarray, labels: np.ndarray, prepare: Callable[[np.ndarray], np.ndarray],
                      batch_size: int, ctx: MilestoneContext | None = None) -> tuple[np.ndarray, float, list]:
    """Predict every test image in batches: (predicted classes, accuracy, running-accuracy history).

    The history has one entry per batch ({"epoch": 1, "batch", "images", "test_accuracy"}), the
    accuracy over the images seen so far, so an inference milestone has a curve to plot.
    """
    history, correct = [], 0

    def record(i, rows, predicted):
        nonlocal correct
        correct += int((predicted == labels[rows]).sum())
        seen = int(rows[-1]) + 1
        history.append({"epoch": 1, "batch": i + 1, "images": seen, "test_accuracy": correct / seen})

    predicted = predict_in_batches(model, images, prepare, batch_size, ctx, desc="inference", on_batch=record)
    return predicted, float((predicted == labels).mean()), history


def count_parameters(model) -> int:
    return int(sum(np.asarray(p.data).size for p in model.parameters()))


def load_weights(model, path: Path) -> None:
    """Load a shipped .npz state dict into `model` with the student's `load_state_dict`."""
    if not Path(path).exists():
        raise FileNotFoundError(f"shipped weights {path} are missing; regenerate them with "
                                "`python milestones/train_reference_weights.py`")
    with np.load(path) as archive:
        state = {key: archive[key] for key in archive.files}
    model.load_state_dict(state)
