"""What every milestone program gets from the judge: training data, held-out evaluation, progress, files.

A milestone program is a file `milestones/mN_<name>.py` that defines

    def run(ctx: MilestoneContext) -> dict:
        x_train, y_train = ctx.load_cifar10()           # training material only
        ...train...
        ctx.evaluate(predict, tag="epoch", epoch=1)     # the judge scores `predict` on held-out images
        return {"history": [{"epoch": 1, "train_loss": ...}], "details": {"parameters": 101_770},
                "stopped_at": {"epoch": 2, "step": 780}}

The program runs in its own process (grading/milestone_child.py) and never sees held-out labels or text:
`ctx.evaluate(predict)` receives held-out images from the judge (`tito`, grading/judge.py) in batches,
WITHOUT labels, and sends back `predict(images)`; the judge computes the accuracy and keeps it. The program
is never told the held-out score (it could otherwise tune itself to the test set). The judge accepts only
the number of evaluations that course.yaml allows. The program's own numbers (training loss, accuracy on a
validation split it carves from the training data) are reported in `history`/`details` for the plot.

`ctx.schedule` is the milestone's `schedule` from assignments/course.yaml (epochs or steps, the stop rule):
the work is fixed by step counts, never by the clock, so the same code gives the same numbers anywhere.

`ctx.tiny` is True when the unit tests run the program end to end: the judge then serves small synthetic
data sets (seeded, learnable) and the program must finish in seconds.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from grading.milestone_data import TRAIN_FILES, MilestoneDataMissing   # the judge's file names (one home)


class JudgeRefused(RuntimeError):
    """The judge did not accept a request (too many held-out evaluations, malformed predictions)."""


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

    number     the milestone number (1..5)
    data_dir   the folder of TRAINING files the judge wrote for this run (no held-out data in it)
    tiny       True in unit tests: synthetic data, seconds of work
    seed       seed for every random choice (tt.manual_seed(ctx.seed), NumPy generators)
    out_dir    directory for the program's files (saved models); created on demand
    schedule   the milestone's schedule from course.yaml (dict), e.g. {"epochs": 3, "stop_bar": {...}}
    judge      the link to the judge (grading/milestone_child.JudgeLink); None: no held-out evaluation
    """

    def __init__(self, number: int, data_dir: Path | str | None = None, tiny: bool = False, seed: int = 0,
                 out_dir: Path | str | None = None, schedule: dict | None = None, stream=None, judge=None,
                 clock: Callable[[], float] = time.perf_counter):
        self.number = int(number)
        self.data_dir = Path(data_dir) if data_dir else None
        self.tiny = bool(tiny)
        self.seed = int(seed)
        self.out_dir = Path(out_dir) if out_dir else Path.cwd() / ".tito" / "milestones" / f"m{self.number}-files"
        self.schedule = dict(schedule or {})
        self.stream = stream if stream is not None else sys.stdout
        self.judge = judge
        self._clock = clock
        self.corpus: str | None = None   # set by load_text()

    # ---- output ------------------------------------------------------------------------------------------
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

    # ---- training data (written by the judge; held-out data never comes here) ----------------------------
    def _train_file(self, name: str) -> Path:
        path = (self.data_dir or Path(".")) / TRAIN_FILES[name]
        if not path.is_file():
            raise MilestoneDataMissing(f"the training file {TRAIN_FILES[name]} is not in {self.data_dir}; "
                                       "the judge writes it before the program starts (run the milestone with "
                                       "`tito milestone run N`)")
        return path

    def _train_images(self, name: str):
        with np.load(self._train_file(name), allow_pickle=False) as archive:
            return _as_u8(archive["x_train"]), _as_i64(archive["y_train"])

    def load_mnist(self):
        """MNIST training split: (x_train uint8 (N, 28, 28), y_train int64 (N,))."""
        return self._train_images("mnist")

    def load_cifar10(self):
        """CIFAR-10 training split: (x_train uint8 (N, 3, 32, 32), y_train int64 (N,))."""
        return self._train_images("cifar10")

    def load_text(self) -> tuple[str, str]:
        """(training text, corpus name): the first 90% of Tiny Shakespeare (or of the offline corpus)."""
        path = self._train_file("text")
        with open(path, encoding="utf-8", newline="") as fh:
            text = fh.read()
        corpus_file = path.parent / "corpus.txt"
        self.corpus = corpus_file.read_text(encoding="utf-8").strip() if corpus_file.is_file() else "unknown"
        return text, self.corpus

    # ---- held-out evaluation, driven by the judge ----------------------------------------------------------
    def evaluate(self, predict: Callable[[np.ndarray], np.ndarray], tag: str = "final", **at) -> None:
        """Let the judge score `predict` on the held-out images.

        predict(images uint8 (B, ...)) -> class ids int (B,) or scores float (B, classes) (argmax is taken).
        `tag` names the evaluation ("epoch", "final", "reloaded"); `at` says when (epoch=2, step=780).
        The score stays with the judge: nothing comes back but "done".
        """
        if self.judge is None:
            raise JudgeRefused("no judge is attached: held-out evaluation runs only under `tito milestone run`")
        self.judge.evaluate_images(predict, tag, at)

    def evaluate_text(self, predictor, vocabulary: list[str], tag: str = "final") -> None:
        """Let the judge score next-character predictions on the held-out text, one character at a time.

        predictor(ids int64 (S,), reset bool) -> scores float (S, V): append `ids` to each of the S streams
        (after forgetting them when `reset`) and return the scores of the NEXT character of each stream.
        The judge sends a character only after it has the prediction for it.
        """
        if self.judge is None:
            raise JudgeRefused("no judge is attached: held-out evaluation runs only under `tito milestone run`")
        self.judge.evaluate_text(predictor, list(vocabulary), tag)


def _as_u8(x) -> np.ndarray:
    return np.asarray(x, dtype=np.uint8)


def _as_i64(y) -> np.ndarray:
    return np.asarray(y, dtype=np.int64)


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


def inference_profile_case(ctx: MilestoneContext, build_model: Callable[[], object],
                           prepare: Callable[[np.ndarray], np.ndarray], batch: int, image_shape: tuple) -> dict:
    """`profile_case` of an inference milestone (1, 2): what the judge profiles when a run is too slow
    (grading/profiling.py). The network `build_model()` builds (random weights: the values do not change the
    time), in eval mode, one synthetic uint8 batch of `batch` images of `image_shape` put through `prepare`
    as run() does; forward only (loss None), as the milestone runs it."""
    import tinytorch as tt

    tt.manual_seed(ctx.seed)
    model = build_model()
    model.eval()
    images = np.random.default_rng(ctx.seed).integers(0, 256, (batch, *image_shape), dtype=np.uint8)
    return {"layers": model, "input": tt.Tensor(prepare(images)), "loss": None}


def validation_split(x: np.ndarray, y: np.ndarray, size: int, seed: int):
    """(x_train, y_train, x_val, y_val): `size` random TRAINING examples set aside to decide when to stop.

    The held-out test set stays with the judge; this split only lets the program notice that it has
    already won (the stop rule of course.yaml) and stop early, by step count, never by the clock.
    """
    order = np.random.default_rng(1_000 + seed).permutation(len(x))
    val, train = order[:size], np.sort(order[size:])
    return x[train], y[train], x[val], y[val]


def stop_bar_met(schedule: dict, values: dict) -> bool:
    """Whether every condition of the schedule's `stop_bar` ({metric: {op, value}}) holds for `values`."""
    bar = schedule.get("stop_bar") or {}
    if not bar:
        return False
    for metric, rule in bar.items():
        got = values.get(metric)
        if got is None or not np.isfinite(got):
            return False
        if rule["op"] == ">=" and not got >= rule["value"]:
            return False
        if rule["op"] == "<=" and not got <= rule["value"]:
            return False
    return True


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
