"""The milestone judge: runs a milestone program in a child process and scores it on held-out data it keeps.

    result = judge_milestone(ms, course, root, data_dir, workdir, isolation=NoIsolation(), seed=0, tiny=False)

`tito milestone run` and `tito grade` (and the instructor's regrade, with a sandbox as `isolation`) all call
this one function, so the student and the instructor get the same numbers from the same code path.

1. The judge loads the milestone's data set (grading/milestone_data.py) BEFORE the program starts, outside
   the time budget, and writes a TRAIN-ONLY copy into `workdir/data`. Held-out labels and text stay here.
2. The program runs in a child (grading/milestone_child.py: `python -I -B`, rlimits and a watchdog from
   grading/testrun.py, wrapped by `isolation`) that talks to the judge only in frames (grading/channel.py).
3. Held-out evaluation is driven from here: the child asks, the judge sends held-out inputs without labels,
   the child answers with predictions (class ids or scores), the judge computes the metric and keeps it.
   The child is never told a held-out score, and only `ms.evaluations` evaluations are accepted per run.
   Text (milestone 5) is streamed one character per stream per round: the judge asks for the scores of
   the next character before it sends that character, so the model cannot see what it predicts.
4. Victory: the metrics computed here against assignments/course.yaml. A child that crashes, hangs, sends
   a malformed or oversized frame, or answers nonsense gives a failed result with the reason, never a crash.
5. A run over its ceiling (or `profile=True`) gets a `profile`: one more short child, outside the ceiling,
   times the program's `profile_case` with module 14's profiler; grading/profiling.py compares it with the
   recorded reference (`run_profile`).

This module never imports `tinytorch` (that would run the student's modules in the judge).
"""
from __future__ import annotations

import math
import os
import platform
import shutil
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from grading import channel, milestone_data, profiling
from grading.course import Course, Milestone
from grading.isolation import NoIsolation
from grading.threads import program_threads
from grading.testrun import Limits, Watched, read_tail

MAX_CHILD_FRAME = 64 * 1024 * 1024   # predictions and the final result are far smaller
IMAGE_BATCH = 500                     # held-out images per frame
TEXT_STREAMS = 256                    # held-out windows scored side by side (one character each per round)
TEXT_WINDOW = 64                      # characters per window: the context resets every window
TINY_TEXT_WINDOW = 32                 # tiny runs use a model with a shorter context
LOG_PROB_FLOOR = math.log(1e-9)       # a character given probability 0 (or unknown) costs 20.7 nats, not inf
RISE_TOLERANCE = 0.005                # milestone 3: an epoch may dip this much (noise) and still "rise"
MAX_SAMPLES, MAX_SAMPLE_CHARS = 16, 2000
MAX_PROGRAM_JSON = 1024 * 1024        # the program's free-form details/history kept in the result
_ENV_PASSED = ("PATH", "LANG", "LANGUAGE", "SYSTEMROOT", "TZ", "TERM", "NO_COLOR")
_ENV_PREFIXES = ("LC_", "OPENBLAS_", "OMP_", "MKL_", "VECLIB_", "NUMEXPR_")


class JudgeError(RuntimeError):
    """The child broke the protocol (bad frame, wrong shapes, too many evaluations): the run fails."""


class ProgramError(RuntimeError):
    """The program reported that it could not run (its message is the reason)."""


@dataclass
class Evaluation:
    tag: str
    at: dict
    accuracy: float | None = None
    predictions: np.ndarray | None = None
    running: list = field(default_factory=list)     # running accuracy after each batch
    val_loss: float | None = None
    characters: int = 0


class Session:
    """The judge's side of one run: answers the child's requests, keeps the held-out scores."""

    def __init__(self, ms: Milestone, split: milestone_data.Split, inbound, outbound, log, tiny: bool = False):
        self.ms, self.split, self.log = ms, split, log
        self.window = TINY_TEXT_WINDOW if tiny else TEXT_WINDOW
        self.inbound, self.outbound = inbound, outbound
        self.evaluations: list[Evaluation] = []

    def receive(self) -> tuple[dict, dict]:
        try:
            return channel.receive(self.inbound, MAX_CHILD_FRAME)
        except channel.ChannelError as exc:
            if "ended" in str(exc):
                raise JudgeError(f"the program's process stopped talking ({exc})") from None
            raise JudgeError(f"the program's process sent a broken frame: {exc}") from None

    def send(self, header: dict, arrays: dict | None = None) -> None:
        try:
            channel.send(self.outbound, header, arrays)
        except (OSError, ValueError) as exc:
            raise JudgeError(f"the program's process stopped listening: {exc}") from None

    def refuse(self, reason: str) -> None:
        try:
            channel.send(self.outbound, {"op": "refused", "reason": reason})
        except (OSError, ValueError):
            pass
        raise JudgeError(reason)

    def serve(self) -> dict:
        """Answer requests until the child sends its result (returned) or an error (ProgramError)."""
        while True:
            header, _ = self.receive()
            op = header.get("op")
            if op == "result":
                return header
            if op == "error":
                raise ProgramError(str(header.get("message", "the program failed without a message"))[:4000])
            if op != "evaluate":
                raise JudgeError(f"the program's process sent an unexpected frame (op {str(op)[:40]!r})")
            if len(self.evaluations) >= self.ms.evaluations:
                self.refuse(f"milestone {self.ms.number} allows {self.ms.evaluations} held-out evaluation(s) per "
                            "run (course.yaml `evaluations`); the program asked for more")
            kind = header.get("kind")
            tag = str(header.get("tag", ""))[:40]
            at = {str(k)[:20]: v for k, v in (header.get("at") or {}).items()
                  if isinstance(v, (int, float)) and not isinstance(v, bool)} if isinstance(header.get("at"), dict) else {}
            if kind == "images" and self.split.images is not None:
                self.evaluations.append(self._images(tag, at))
            elif kind == "text" and self.split.heldout_text is not None:
                self.evaluations.append(self._text(tag, header.get("vocabulary")))
            else:
                self.refuse(f"milestone {self.ms.number} has no held-out {str(kind)[:20]} to evaluate on")

    def _images(self, tag: str, at: dict) -> Evaluation:
        images, labels = self.split.images, self.split.labels
        predicted = np.empty(len(images), dtype=np.int64)
        ev = Evaluation(tag, at)
        correct = 0
        for start in range(0, len(images), IMAGE_BATCH):
            rows = slice(start, start + IMAGE_BATCH)
            self.send({"op": "batch"}, {"x": images[rows]})
            header, arrays = self.receive()
            predicted[rows] = self._classes(header, arrays, len(images[rows]))
            correct += int((predicted[rows] == labels[rows]).sum())
            seen = min(start + IMAGE_BATCH, len(images))
            ev.running.append((seen, correct / seen))
        self.send({"op": "done"})
        ev.predictions, ev.accuracy = predicted, float((predicted == labels).mean())
        when = ", ".join(f"{k} {v}" for k, v in at.items())
        self.log(f"  [judge] held-out evaluation {len(self.evaluations) + 1}/{self.ms.evaluations} "
                 f"({tag}{': ' + when if when else ''}): accuracy {ev.accuracy:.4f} on {len(labels):,} images")
        return ev

    def _classes(self, header: dict, arrays: dict, n: int) -> np.ndarray:
        y = arrays.get("y")
        if header.get("op") != "predictions" or y is None:
            self.refuse("expected predictions for a batch of held-out images")
        if y.ndim == 2 and y.shape[0] == n and y.dtype.kind == "f" and y.shape[1] >= 1:
            if not np.isfinite(y).all():
                self.refuse("the predicted scores are not finite (nan or infinity)")
            return np.argmax(y, axis=1).astype(np.int64)
        if y.shape == (n,) and y.dtype.kind in "iu":
            return y.astype(np.int64)
        self.refuse(f"predictions for {n} images must be class ids (int, shape ({n},)) or scores "
                    f"(float, shape ({n}, classes)); got dtype {y.dtype} shape {y.shape}")

    def _text(self, tag: str, vocabulary) -> Evaluation:
        if (not isinstance(vocabulary, list) or not 1 <= len(vocabulary) <= 100_000
                or not all(isinstance(c, str) and len(c) == 1 for c in vocabulary)
                or len(set(vocabulary)) != len(vocabulary)):
            self.refuse("the vocabulary must be a list of distinct single characters")
        index = {c: i for i, c in enumerate(vocabulary)}
        ids = np.array([index.get(c, -1) for c in self.split.heldout_text], dtype=np.int64)
        windows = (len(ids) - 1) // self.window
        if windows < 1:
            self.refuse("the held-out text is shorter than one window")
        total, count = 0.0, 0
        vocab = len(vocabulary)
        for first in range(0, windows, TEXT_STREAMS):
            starts = np.arange(first, min(first + TEXT_STREAMS, windows)) * self.window
            for r in range(self.window):
                self.send({"op": "round", "reset": r == 0}, {"ids": np.maximum(ids[starts + r], 0)})
                header, arrays = self.receive()
                scores = arrays.get("scores")
                if header.get("op") != "scores" or scores is None or scores.shape != (len(starts), vocab) \
                        or scores.dtype.kind != "f":
                    self.refuse(f"expected scores of shape ({len(starts)}, {vocab}) for the next characters")
                total += float(self._log_probs(scores, ids[starts + r + 1]).sum())
                count += len(starts)
            self.log(f"  [judge] scored {count:,} of {windows * self.window:,} held-out characters")
        self.send({"op": "done"})
        ev = Evaluation(tag, {}, val_loss=-total / count, characters=count)
        self.log(f"  [judge] held-out loss {ev.val_loss:.4f} nats/char over {count:,} characters")
        return ev

    def _log_probs(self, scores: np.ndarray, truth: np.ndarray) -> np.ndarray:
        """log softmax(scores)[truth] per row (the judge normalizes: unnormalized scores gain nothing)."""
        z = scores.astype(np.float64)
        if np.isnan(z).any() or np.isposinf(z).any():
            self.refuse("the next-character scores are not finite (nan or +infinity)")
        z = z - z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        picked = np.where(truth >= 0, logp[np.arange(len(truth)), np.maximum(truth, 0)], LOG_PROB_FLOOR)
        return np.maximum(picked, LOG_PROB_FLOOR)


# ---- metrics, computed from what the judge holds -------------------------------------------------------------
def accuracy_rises(accuracies: list[float], tolerance: float = RISE_TOLERANCE) -> bool:
    """At least two epochs, the last better than the first, and no epoch falling by more than `tolerance`."""
    if len(accuracies) < 2 or accuracies[-1] <= accuracies[0]:
        return False
    return all(b >= a - tolerance for a, b in zip(accuracies, accuracies[1:]))


def metrics_from(evaluations: list[Evaluation], split: milestone_data.Split, samples: list[str]) -> dict:
    images = [e for e in evaluations if e.accuracy is not None]
    scored = [e for e in images if e.tag != "reloaded"]
    metrics: dict = {}
    if scored:
        metrics["test_accuracy"] = scored[-1].accuracy
        epochs = [e.accuracy for e in scored if e.tag == "epoch"]
        if epochs:
            metrics["accuracy_rises"] = 1.0 if accuracy_rises(epochs) else 0.0
    reloaded = [e for e in images if e.tag == "reloaded"]
    if reloaded and scored:
        metrics["reload_identical"] = 1.0 if np.array_equal(reloaded[-1].predictions, scored[-1].predictions) else 0.0
    text = [e for e in evaluations if e.val_loss is not None]
    if text:
        metrics["val_loss"] = text[-1].val_loss
    if split.name == "text":
        known = set(milestone_data.words_of(split.train["text"]))
        metrics["readability"] = milestone_data.readability("\n".join(samples), known)
    return metrics


def history_from(child_history: list, evaluations: list[Evaluation]) -> list:
    """The child's history (training numbers) with the judge's held-out numbers merged in."""
    history = [dict(h) for h in child_history if isinstance(h, dict)][:10_000]
    images = [e for e in evaluations if e.accuracy is not None and e.tag != "reloaded"]
    if len(images) == 1 and not images[0].at and not history:     # inference: the running accuracy
        return [{"epoch": 1, "batch": i + 1, "images": seen, "test_accuracy": acc}
                for i, (seen, acc) in enumerate(images[0].running)]
    for ev in images:
        key = next((k for k in ("epoch", "step") if k in ev.at), None)
        match = next((h for h in history if key and h.get(key) == ev.at[key]), None)
        if match is None:
            match = dict(ev.at)
            history.append(match)
        match["test_accuracy"] = ev.accuracy
    for ev in (e for e in evaluations if e.val_loss is not None):
        if history:
            history[-1]["val_loss"] = ev.val_loss
        else:
            history.append({"step": 0, "val_loss": ev.val_loss})
    return history


def shortfalls(ms: Milestone, metrics: dict, corpus: str | None) -> list[dict]:
    """Each unmet condition with what it needs, what the run got and by how much it missed."""
    out = []
    for c in ms.unmet(metrics, corpus):
        got = metrics.get(c.metric)
        by = None if got is None else round(abs(c.value - float(got)), 6)
        out.append({"metric": c.metric, "needs": f"{c.op} {c.value:g}", "got": got, "missed_by": by})
    return out


# ---- the one entry point -----------------------------------------------------------------------------------
def child_environment(scratch: Path) -> dict[str, str]:
    """A small environment: no TINYTORCH_DATA/CACHE (paths to held-out data), no PYTHON*; HOME and
    TMPDIR in the writable scratch folder; thread counts of grading/threads.py (one BLAS thread, one
    kernel thread per core)."""
    env = {k: v for k, v in os.environ.items() if k in _ENV_PASSED or k.startswith(_ENV_PREFIXES)}
    env.update({"HOME": str(scratch), "TMPDIR": str(scratch), "TEMP": str(scratch), "TMP": str(scratch),
                "PYTHONDONTWRITEBYTECODE": "1", "PYTHONIOENCODING": "utf-8",
                "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"})
    env.update(program_threads())
    return env


def child_command(root: Path, ms: Milestone, data: Path, files: Path, seed: int, tiny: bool,
                  profile: bool = False) -> list[str]:
    import json

    boot = ("import sys; sys.path.insert(0, sys.argv[1]); from grading.milestone_child import main; "
            "sys.exit(main(sys.argv[2:]))")
    argv = [sys.executable, "-I", "-B", "-X", "utf8", "-X", "faulthandler", "-c", boot, str(root),
            "--milestone", str(ms.number), "--program", str(root / ms.program), "--data", str(data),
            "--out", str(files), "--seed", str(int(seed)), "--schedule", json.dumps(ms.schedule),
            "--requires", ",".join(ms.requires)]
    return argv + (["--tiny"] if tiny else []) + (["--profile"] if profile else [])


def judge_milestone(ms: Milestone, course: Course, root: Path, data_dir: Path | str | None, workdir: Path, *,
                    isolation=None, seed: int = 0, tiny: bool = False, out=None, download: bool = True,
                    timeout: float | None = None, limits: Limits | None = None, echo=None,
                    profile: bool | None = None, profile_timeout: float = profiling.PROFILE_TIMEOUT) -> dict:
    """Run milestone `ms` of the course at `root` and judge it; returns the result dict (never raises for
    the program's sake). `out(line)` prints the judge's progress; `echo(line)` gets the program's output.
    `profile`: None profiles the training step only when the run went over its ceiling, True always, False
    never (grading/profiling.py; the result's `profile` field)."""
    root, workdir = Path(root).resolve(), Path(workdir).resolve()
    isolation = isolation if isolation is not None else NoIsolation()
    log = out or (lambda line: print(line, flush=True))
    timeout = float(timeout if timeout is not None else ms.budget_seconds * 1.5 + 60)
    limits = limits or Limits(memory_mb=8192, output_mb=512)
    result = {"milestone": ms.number, "name": ms.name, "badge": ms.badge, "passed": False, "metrics": {},
              "thresholds": ms.thresholds, "failed_conditions": [], "shortfalls": [], "seconds": 0.0,
              "cpu_seconds": None, "data_seconds": 0.0, "budget_seconds": ms.budget_seconds, "within_budget": True,
              "history": [], "details": {}, "corpus": None, "tiny": bool(tiny), "error": None,
              "stopped_at": None, "framework": None, "evaluations": [], "verified": bool(isolation.verified),
              "profile": None,
              "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                          "platform": platform.platform()}}
    started = time.monotonic()
    try:
        split = milestone_data.prepare(ms.number, data_set=ms.data, data_dir=data_dir, tiny=tiny, seed=seed,
                                       download=download, root=root, log=log)
    except milestone_data.MilestoneDataMissing as exc:
        return _finish(result, ms, error=str(exc))
    for name in ("data", "scratch", "files"):
        shutil.rmtree(workdir / name, ignore_errors=True)
        (workdir / name).mkdir(parents=True)
    data, scratch, files = workdir / "data", workdir / "scratch", workdir / "files"
    split.write_training(data)
    result["corpus"] = split.corpus
    result["data_seconds"] = round(time.monotonic() - started, 2)

    argv, env = isolation.wrap(child_command(root, ms, data, files, seed, tiny), cwd=root,
                               readable=[root, data], writable=[scratch, files], env=child_environment(scratch))
    watched = Watched(argv, root, env, limits, workdir / "program.log", timeout, echo=echo, channel=True)
    cpu_before = _children_cpu()
    start = time.monotonic()
    proc = watched.start()
    if proc is None:
        return _finish(result, ms, error="could not start the milestone process: "
                       + read_tail(workdir / "program.log", 500).strip())
    session = Session(ms, split, proc.stdout, proc.stdin, log, tiny=tiny)
    final, error = {}, None
    try:
        final = session.serve()
        try:   # the result is in: a program that keeps running (threads, children) is stopped soon
            proc.wait(timeout=10)
        except Exception:  # noqa: BLE001 - subprocess.TimeoutExpired
            watched.kill()
    except ProgramError as exc:
        error = str(exc)
    except JudgeError as exc:
        error = str(exc)
        if "stopped talking" not in error:
            watched.kill()      # it broke the protocol: whatever it does next does not count
    seconds = time.monotonic() - start
    rc = watched.finish()
    cpu_after = _children_cpu()
    result["cpu_seconds"] = None if cpu_after is None else round(cpu_after - cpu_before, 2)
    result["seconds"] = round(seconds, 3)
    if profile or (profile is None and (watched.timed_out or seconds > ms.budget_seconds)):
        log(f"  [judge] profiling one training step (module 14's profiler, at most {profile_timeout:g} s, "
            "outside the ceiling)")
        result["profile"] = run_profile(ms, root, workdir, isolation, env_scratch=scratch, seed=seed, tiny=tiny,
                                        limits=limits, timeout=profile_timeout, data=data, files=files)
        result["profile"]["trigger"] = "requested" if profile else "over the ceiling"
    if watched.timed_out:
        last = [line.strip() for line in read_tail(workdir / "program.log", 2000).splitlines() if line.strip()][-2:]
        slowest = (result["profile"] or {}).get("slowest_function")
        where = (f"where the time went (one training step, module 14's profiler): {slowest['text']}; the result's "
                 "`profile` field has every layer next to the reference's" if slowest else
                 "profile one training step with module 14's profiler (tinytorch.benchmarking.Profiler, or "
                 f"`tito milestone run {ms.number} --profile`) and look for Python loops over pixels or channels")
        error = (f"stopped after {timeout:g} s: the milestone ran far past its ceiling of {ms.budget_seconds:g} s. "
                 f"The work is fixed (course.yaml `schedule`), so a run this slow means the framework is slow: {where}"
                 + (f". Its last output: {' | '.join(last)}" if last else ""))
    elif error and "stopped talking" in error and rc not in (0, None):
        from grading.testrun import describe_exit
        tail = read_tail(workdir / "program.log", 600).strip().splitlines()
        error = f"the milestone process {describe_exit(rc)} without a result" + (f": {tail[-1]}" if tail else "")
    samples = [s[:MAX_SAMPLE_CHARS] for s in (final.get("samples") or []) if isinstance(s, str)][:MAX_SAMPLES]
    details = _capped(final.get("details") if isinstance(final.get("details"), dict) else {}, "details")
    if samples:
        details["sample"] = samples[0]
    result["details"] = details
    result["history"] = history_from(_capped(final.get("history") if isinstance(final.get("history"), list)
                                             else [], "history"), session.evaluations)
    result["stopped_at"] = final.get("stopped_at") if isinstance(final.get("stopped_at"), dict) else None
    result["framework"] = final.get("framework") if isinstance(final.get("framework"), str) else None
    result["evaluations"] = [{"tag": e.tag, **e.at, **({"test_accuracy": e.accuracy} if e.accuracy is not None
                                                      else {"val_loss": e.val_loss, "characters": e.characters})}
                             for e in session.evaluations]
    if error is None:
        result["metrics"] = metrics_from(session.evaluations, split, samples)
    return _finish(result, ms, error=error, seconds=seconds)


def run_profile(ms: Milestone, root: Path, workdir: Path, isolation, *, env_scratch: Path, seed: int, tiny: bool,
                limits: Limits, timeout: float, data: Path, files: Path) -> dict:
    """One short extra child in `--profile` mode (same isolation, environment and limits as the run, its own
    timeout): the program's training step profiled layer by layer, compared here with the recorded reference
    (grading/profiling.py). Never raises: a child that crashes, hangs or answers nonsense gives a `profile`
    with the reason in `error`."""
    argv, env = isolation.wrap(child_command(root, ms, data, files, seed, tiny, profile=True), cwd=root,
                               readable=[root, data], writable=[env_scratch, files],
                               env=child_environment(env_scratch))
    log_path = workdir / "profile.log"
    watched = Watched(argv, root, env, limits, log_path, timeout, channel=True)
    start = time.monotonic()
    proc = watched.start()
    if proc is None:
        return profiling.failed("could not start the profile process: " + read_tail(log_path, 300).strip())
    header, reason = {}, None
    try:
        header, _ = channel.receive(proc.stdout, MAX_CHILD_FRAME)
    except channel.ChannelError as exc:
        reason = f"the profile process sent no profile ({exc})"
    except OSError as exc:
        reason = f"the profile process could not be read ({exc})"
    if reason:
        watched.kill()
    else:   # the profile is in: a child that keeps running is stopped soon
        try:
            proc.wait(timeout=10)
        except Exception:  # noqa: BLE001 - subprocess.TimeoutExpired
            watched.kill()
    rc = watched.finish()
    seconds = time.monotonic() - start
    if watched.timed_out:
        reason = f"the profile process was stopped after {timeout:g} s (a step is too slow to profile in time)"
    elif reason and rc not in (0, None):
        from grading.testrun import describe_exit
        tail = read_tail(log_path, 400).strip().splitlines()
        reason = f"the profile process {describe_exit(rc)}" + (f": {tail[-1]}" if tail else "")
    elif header.get("op") == "error":
        reason = "the profile could not be taken: " + str(header.get("message", ""))[:1000]
    elif not reason and header.get("op") != "profile":
        reason = f"the profile process sent an unexpected frame (op {str(header.get('op'))[:40]!r})"
    if reason:
        return profiling.failed(reason, seconds)
    reference, note = profiling.load_reference(profiling.reference_path(root / ms.program, ms.number, tiny))
    try:
        out = profiling.compare(header, reference, note)
    except Exception as exc:  # noqa: BLE001 - malformed numbers from the child (or the recorded file)
        return profiling.failed(f"the profile could not be read ({type(exc).__name__}: {exc})", seconds)
    out["seconds"] = round(seconds, 2)
    return out


def _finish(result: dict, ms: Milestone, error: str | None = None, seconds: float = 0.0) -> dict:
    corpus = result.get("corpus")
    result["thresholds"] = ms.thresholds_for(corpus)
    result["error"] = error
    result["seconds"] = round(seconds, 3)
    result["within_budget"] = seconds <= ms.budget_seconds
    result["passed"] = error is None and ms.passed(result["metrics"], corpus)
    result["failed_conditions"] = [str(c) for c in ms.unmet(result["metrics"], corpus)]
    result["shortfalls"] = shortfalls(ms, result["metrics"], corpus)
    result["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return result


def _capped(value, what: str, limit: int = MAX_PROGRAM_JSON):
    """The program's own `details`/`history` (free-form, for people), dropped when larger than `limit`."""
    import json

    size = len(json.dumps(value))
    if size <= limit:
        return value
    return {"dropped": f"the program's {what} was {size:,} bytes of JSON (limit {limit:,})"} if isinstance(value, dict) \
        else [{"dropped": f"the program's {what} was {size:,} bytes of JSON (limit {limit:,})"}]


def _children_cpu() -> float | None:
    try:
        import resource
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime
    except (ImportError, AttributeError):   # Windows
        return None
