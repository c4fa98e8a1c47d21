"""The milestone judge (grading/judge.py): held-out data stays in the judge, metrics are the judge's own, and a
child that misbehaves on the channel gives a failed result with a reason, never a crash.

Each test runs a small stand-in program (written to a temp file) through `judge_milestone` in tiny mode, the
same code path as `tito milestone run` and `tito grade`, in a real child process.
"""
from __future__ import annotations

import dataclasses
import os
import textwrap
from pathlib import Path

import numpy as np
import pytest

from grading import milestone_data
from grading.course import REPO_ROOT, load_course
from grading.judge import judge_milestone
from grading.threads import BLAS_THREADS


def judge(program_text: str, tmp_path, number: int = 1, course=None, **changes) -> dict:
    """Run `program_text` as milestone `number`'s program (tiny data) and return the judge's result."""
    course = course or load_course()
    program = tmp_path / "program.py"
    program.write_text(textwrap.dedent(program_text), encoding="utf-8")
    ms = dataclasses.replace(course.milestone(number), program=str(program), **changes)
    said: list[str] = []
    result = judge_milestone(ms, course, REPO_ROOT, None, tmp_path / "run", tiny=True, timeout=120,
                             out=said.append, echo=said.append)
    result["_said"] = said
    return result


SEARCHER = """
import os
from pathlib import Path
import numpy as np

# The labels to look for, stored shifted by 100 so that this program's own copy never matches the search.
HELD_OUT = np.array({held_out}, dtype=np.int64) + 100     # the judge's held-out labels (given to this test)
TRAIN = np.array({train}, dtype=np.int64) + 100           # the training labels: the search must find these

def contains(buffer, shifted, dtype):
    # whether `buffer` holds the labels (shifted - 100) as consecutive values of `dtype`, at any byte offset
    size = np.dtype(dtype).itemsize
    return any(aligned_contains(buffer[offset:], shifted, dtype) for offset in range(size))

def aligned_contains(buffer, shifted, dtype):
    values = np.frombuffer(buffer[:len(buffer) - len(buffer) % np.dtype(dtype).itemsize], dtype=dtype)
    n = len(values) - len(shifted)
    if n <= 0:
        return False
    mask = values[:n] == shifted[0] - 100
    for k in range(1, 24):
        mask &= values[k:n + k] == shifted[k] - 100
    for start in np.flatnonzero(mask):
        if all(values[start + k] == shifted[k] - 100 for k in range(len(shifted))):
            return True
    return False

def memory():
    # every private writable mapping of this process (heap, anonymous memory), read from /proc/self/mem
    chunks = []
    with open("/proc/self/maps") as maps, open("/proc/self/mem", "rb", 0) as mem:
        for line in maps:
            fields = line.split()
            if fields[1].startswith("rw") and (len(fields) < 6 or fields[5] in ("[heap]",) or fields[5].startswith("[anon")):
                start, end = (int(v, 16) for v in fields[0].split("-"))
                if end - start < 512 * 2**20:
                    try:
                        mem.seek(start)
                        chunks.append(mem.read(end - start))
                    except OSError:
                        pass
    return chunks

def places(shifted):
    found = []
    for path in Path(os.environ["HOME"]).parent.rglob("*"):      # the data, scratch and files folders
        if path.is_file() and path.suffix != ".log":
            data = path.read_bytes()
            if contains(data, shifted, np.int64) or contains(data, shifted, np.uint8):
                found.append("file " + path.name)
    digits = "".join(str(int(v) - 100) for v in shifted[:64])
    if any(digits in v for v in os.environ.values()):
        found.append("environment")
    if any(contains(c, shifted, np.int64) or contains(c, shifted, np.uint8) for c in memory()):
        found.append("memory")
    return sorted(set(found))

def run(ctx):
    x, y = ctx.load_mnist()
    ctx.evaluate(lambda images: np.zeros(len(images), dtype=np.int64))
    train_labels = y.copy()      # kept alive for the memory search
    return {{"details": {{"held_out_found": places(HELD_OUT), "train_found": places(TRAIN),
                          "env_keys": sorted(os.environ)}}}}
"""


@pytest.mark.skipif(not Path("/proc/self/mem").exists(), reason="searches the process memory through /proc (Linux)")
def test_the_program_never_receives_the_held_out_labels(tmp_path):
    split = milestone_data.prepare(1, data_set="mnist", tiny=True, seed=0)
    program = SEARCHER.format(held_out=split.labels.tolist(), train=split.train["y_train"].tolist())
    result = judge(program, tmp_path)
    assert result["error"] is None, result["error"]
    details = result["details"]
    # the search works: it finds the training labels in the data folder and in memory ...
    assert any(p.startswith("file") for p in details["train_found"]) and "memory" in details["train_found"]
    # ... and finds the held-out labels nowhere: not in its files, environment or memory
    assert details["held_out_found"] == []
    assert not {"TINYTORCH_DATA", "TINYTORCH_CACHE"} & set(details["env_keys"])
    # only training files were written for the child
    assert sorted(p.name for p in (tmp_path / "run" / "data").iterdir()) == ["mnist_train.npz"]


def test_the_judge_computes_the_accuracy_a_program_claiming_perfect_metrics_gets_none(tmp_path):
    liar = """
    import numpy as np

    def run(ctx):
        ctx.evaluate(lambda images: np.zeros(len(images), dtype=np.int64))   # always class 0
        return {"metrics": {"test_accuracy": 1.0}, "history": [{"epoch": 1, "test_accuracy": 1.0}]}
    """
    result = judge(liar, tmp_path)
    split = milestone_data.prepare(1, data_set="mnist", tiny=True, seed=0)
    assert result["error"] is None and result["passed"] is False
    assert result["metrics"] == {"test_accuracy": pytest.approx(float((split.labels == 0).mean()))}
    assert result["shortfalls"][0]["metric"] == "test_accuracy" and result["shortfalls"][0]["missed_by"] > 0.7

    silent = "def run(ctx):\n    return {'metrics': {'test_accuracy': 1.0}}\n"     # never asks to be evaluated
    result = judge(silent, tmp_path)
    assert result["passed"] is False and result["metrics"] == {} and result["failed_conditions"] == ["test_accuracy >= 0.85"]


def test_scores_are_argmaxed_and_a_perfect_predictor_passes(tmp_path):
    """Positive control: a program whose predictions are right (a nearest-class-mean on the training split)."""
    good = """
    import numpy as np

    def run(ctx):
        x, y = ctx.load_mnist()
        x = x.reshape(len(x), -1).astype(np.float32)
        means = np.stack([x[y == c].mean(axis=0) for c in range(10)])
        print("prints go to stderr, not into the channel")
        import os; os.write(1, b"even raw writes to fd 1 do not reach the judge\\n")
        ctx.evaluate(lambda im: -((im.reshape(len(im), -1)[:, None, :].astype(np.float32) - means) ** 2).sum(2))
        return {"history": []}
    """
    result = judge(good, tmp_path)
    assert result["error"] is None and result["passed"] is True and result["metrics"]["test_accuracy"] > 0.9


def test_more_evaluations_than_course_yaml_allows_are_refused(tmp_path):
    greedy = """
    import numpy as np

    def run(ctx):
        for k in range(5):      # trying predictions until one scores well would hill-climb the test labels
            ctx.evaluate(lambda images: np.full(len(images), k, dtype=np.int64))
        return {}
    """
    result = judge(greedy, tmp_path)
    assert result["passed"] is False and "allows 1 held-out evaluation" in result["error"]


@pytest.mark.parametrize("attack, reason", [
    ("out.write(b'this is not a frame at all, just text'); out.flush()", "larger than the limit"),
    ("out.write(struct.pack('>Q', 10**12)); out.flush()", "larger than the limit"),
    ("out.write(struct.pack('>Q', 5) + b'[1,2]' + struct.pack('>Q', 0)); out.flush()", "must be a JSON object"),
    ("out.write(struct.pack('>Q', 4) + b'{no:' + struct.pack('>Q', 0)); out.flush()", "not JSON"),
    ("out.write(struct.pack('>Q', 2) + b'{}' + struct.pack('>Q', 7) + b'garbage'); out.flush()", "not a readable .npz"),
    ("out.write(struct.pack('>Q', 100) + b'{'); out.flush(); os._exit(0)", "ended"),
    ("channel.send(out, {'op': 'evaluate', 'kind': 'text', 'vocabulary': ['a']})", "no held-out text"),
    ("channel.send(out, {'op': 'hello'})", "unexpected frame"),
    ("os._exit(3)", "exited with status 3"),
])
def test_a_broken_channel_is_a_failed_result_with_a_reason(attack, reason, tmp_path):
    program = f"""
    import os, struct
    from grading import channel

    def run(ctx):
        out = ctx.judge.outbound      # the frame stream itself, reached from student code
        {attack}
        import time; time.sleep(30)   # the judge must not wait for this
        return {{}}
    """
    result = judge(program, tmp_path)
    assert result["passed"] is False and result["error"] and reason in result["error"], result["error"]
    assert result["seconds"] < 30


def test_bad_predictions_are_refused(tmp_path):
    wrong_shape = """
    import numpy as np

    def run(ctx):
        ctx.evaluate(lambda images: np.zeros((len(images), 3, 3), dtype=np.int64))
        return {}
    """
    result = judge(wrong_shape, tmp_path)
    assert result["passed"] is False and "class ids" in result["error"]
    nan_scores = """
    import numpy as np

    def run(ctx):
        ctx.evaluate(lambda images: np.full((len(images), 10), np.nan, dtype=np.float32))
        return {}
    """
    result = judge(nan_scores, tmp_path)
    assert result["passed"] is False and "not finite" in result["error"]


def test_held_out_text_is_streamed_and_scored_by_the_judge(tmp_path):
    """A bigram model scored by the judge: the loss is the judge's log-softmax of the scores, and a program
    that returns unnormalized 'all certain' scores gains nothing."""
    bigram = """
    import numpy as np

    def run(ctx):
        text, corpus = ctx.load_text()
        chars = sorted(set(text))
        ids = np.array([chars.index(c) for c in text])
        counts = np.ones((len(chars), len(chars)))
        np.add.at(counts, (ids[:-1], ids[1:]), 1)
        logp = np.log(counts / counts.sum(1, keepdims=True))
        ctx.evaluate_text(lambda last, reset: logp[last] + {shift}, chars)
        return {{"samples": ["the king and the queen"]}}
    """
    honest = judge(bigram.format(shift=0.0), tmp_path, number=5)
    shifted = judge(bigram.format(shift=50.0), tmp_path, number=5)   # the same distribution, unnormalized
    assert honest["error"] is None, honest["error"]
    split = milestone_data.prepare(5, data_set="text", tiny=True, seed=0)
    # the judge's number, recomputed here from the same counts: mean -log p(next | current) over the windows
    chars = sorted(set(split.train["text"]))
    ids = np.array([chars.index(c) for c in split.train["text"]])
    counts = np.ones((len(chars), len(chars)))
    np.add.at(counts, (ids[:-1], ids[1:]), 1)
    logp = np.log(counts / counts.sum(1, keepdims=True))
    held = np.array([chars.index(c) for c in split.heldout_text])
    windows = (len(held) - 1) // 32
    pairs = [(held[w * 32 + r], held[w * 32 + r + 1]) for w in range(windows) for r in range(32)]
    expected = -np.mean([logp[a, b] for a, b in pairs])
    assert honest["metrics"]["val_loss"] == pytest.approx(expected, rel=1e-5)
    assert shifted["metrics"]["val_loss"] == pytest.approx(honest["metrics"]["val_loss"], rel=1e-5)
    assert honest["metrics"]["readability"] == 1.0 and honest["details"]["sample"] == "the king and the queen"


def test_a_run_stopped_at_victory_reports_its_step(tmp_path):
    """Milestone 3 (tiny) with a stop bar every run meets: it stops after `min_epochs` and says so."""
    course = load_course()
    ms = course.milestone(3)
    lenient = {**ms.schedule, "min_epochs": 2, "validation": 64,
               "stop_bar": {"val_accuracy": {"op": ">=", "value": 0.0}}}
    result = judge((REPO_ROOT / ms.program).read_text(encoding="utf-8"), tmp_path, number=3, schedule=lenient)
    assert result["error"] is None, result["error"]
    assert result["stopped_at"] == {"epoch": 2, "step": 4, "of_steps": 6}
    assert [h["epoch"] for h in result["history"]] == [1, 2]
    assert [e["tag"] for e in result["evaluations"]] == ["epoch", "epoch", "reloaded"]
    assert any("stopped at victory" in line or "stop rule met" in line for line in result["_said"])


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs 2 cores and CPU affinity (Linux)")
@pytest.mark.parametrize("number", [3, 4, 5])
def test_the_same_code_gives_the_same_metrics_on_one_and_on_two_cores(number, tmp_path):
    """Fixed work: no decision depends on the clock, and the judge fixes the BLAS thread count, so the number
    of cores (machine speed) changes no bit. The child inherits the CPU affinity set here (like `taskset`)."""
    course = load_course()
    ms = course.milestone(number)
    cores = sorted(os.sched_getaffinity(0))
    runs = []
    try:
        for allowed in ({cores[0]}, set(cores[:2])):
            os.sched_setaffinity(0, allowed)
            result = judge_milestone(ms, course, REPO_ROOT, None, tmp_path / str(len(allowed)), tiny=True,
                                     timeout=300, out=lambda line: None)
            assert result["error"] is None, result["error"]
            runs.append(result)
    finally:
        os.sched_setaffinity(0, set(cores))
    one, two = runs
    assert one["metrics"] == two["metrics"]                      # bit for bit: exact float equality
    assert one["evaluations"] == two["evaluations"]
    losses = [[h.get("train_loss") for h in r["history"]] for r in runs]
    assert losses[0] == losses[1] and any(v is not None for v in losses[0])
    assert one["stopped_at"] == two["stopped_at"]


def test_the_child_gets_a_fixed_blas_thread_count(tmp_path, monkeypatch):
    """Without it, 1 and 2 BLAS threads give different last bits (OpenBLAS splits tall matrix-vector sums).
    Module 13's kernel threads (which change no bit) get one per core."""
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "7")
    monkeypatch.setenv("TINYTORCH_NUM_THREADS", "7")
    program = """
    import os

    def run(ctx):
        return {"details": {"threads": [os.environ.get(k) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")],
                            "kernel_threads": os.environ.get("TINYTORCH_NUM_THREADS")}}
    """
    result = judge(program, tmp_path)
    assert result["details"]["threads"] == [str(BLAS_THREADS)] * 2
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert result["details"]["kernel_threads"] == str(cores)


@pytest.mark.parametrize("field, value, message", [
    ("data", "imagenet", "data must be one of"),
    ("evaluations", 0, "evaluations must be a whole number"),
    ("evaluations", 1.5, "evaluations must be a whole number"),
    ("schedule", {"epochs": 3, "minutes": 2}, "unknown field 'minutes'"),
    ("schedule", {"epochs": -1}, "schedule.epochs must be a whole number"),
    ("schedule", {"stop_bar": {"val_accuracy": {"op": ">", "value": 0.7}}}, "stop_bar.val_accuracy"),
    ("schedule", [3], "schedule must be a mapping"),
])
def test_course_yaml_schedule_fields_are_validated(field, value, message):
    import copy

    import yaml

    from grading.course import COURSE_FILE, CourseError, parse_course
    data = copy.deepcopy(yaml.safe_load(COURSE_FILE.read_text(encoding="utf-8")))
    data["milestones"][2][field] = value
    with pytest.raises(CourseError, match=message):
        parse_course(data)


def test_course_yaml_stop_bars_are_stricter_than_the_victory_bars():
    """The stop rule must never let a program stop before it would win: each stop bar is stricter."""
    for ms in load_course().milestones:
        bar = ms.schedule.get("stop_bar", {})
        victory = {c.metric: c for c in ms.victory}
        for metric, rule in bar.items():
            held_out = victory.get(metric.replace("val_accuracy", "test_accuracy"))
            assert held_out is not None and held_out.op == rule["op"], (ms.number, metric)
            assert (rule["value"] > held_out.value) if rule["op"] == ">=" else (rule["value"] < held_out.value)
        assert ms.data in ("mnist", "cifar10", "text") and ms.evaluations >= 1


def test_huge_program_details_are_dropped_not_stored(tmp_path):
    program = """
    import numpy as np

    def run(ctx):
        ctx.evaluate(lambda images: np.zeros(len(images), dtype=np.int64))
        return {"details": {"blob": "x" * 5_000_000}, "history": [{"epoch": 1, "note": "y" * 3_000_000}]}
    """
    result = judge(program, tmp_path)
    assert result["error"] is None and "test_accuracy" in result["metrics"]
    assert "dropped" in result["details"] and "blob" not in result["details"]
    assert "dropped" in result["history"][0]
