"""milestones/common.py (the context every milestone program gets) and grading/milestone_data.py (the judge's
data: train-only files for the program, held-out material kept by the judge)."""
from __future__ import annotations

import io

import numpy as np
import pytest

from grading.milestones import ensure_importable

ensure_importable()
from grading import milestone_data  # noqa: E402
from grading.milestone_data import MilestoneDataMissing, pydoc_corpus  # noqa: E402
from milestones.common import MilestoneContext, stop_bar_met, validation_split  # noqa: E402


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


def fake_clock():
    t = [0.0]
    return t, (lambda: t[0])


def ticking(t, n, dt=1.0):
    for i in range(n):
        t[0] += dt
        yield i


def test_progress_in_a_log_is_a_few_plain_lines():
    t, clock = fake_clock()
    ctx = MilestoneContext(3, stream=io.StringIO(), clock=clock)
    assert list(ctx.progress(ticking(t, 100), total=100, desc="epoch 1/3")) == list(range(100))
    lines = ctx.stream.getvalue().splitlines()
    assert 2 <= len(lines) <= 11 and "\r" not in ctx.stream.getvalue()
    assert lines[-1].startswith("epoch 1/3") and "100/100" in lines[-1] and "took" in lines[-1]
    assert "it/s" in lines[0] and "ETA" in lines[0]
    lines[-1].encode("ascii")  # ASCII-safe bar


def test_short_loops_print_only_their_last_line_and_unknown_totals_work():
    t, clock = fake_clock()
    ctx = MilestoneContext(1, stream=io.StringIO(), clock=clock)
    list(ctx.progress(ticking(t, 10, dt=0.01), total=10))
    assert len(ctx.stream.getvalue().splitlines()) == 1
    list(ctx.progress(iter(range(5))))
    assert "5 it" in ctx.stream.getvalue().splitlines()[-1]


def test_progress_on_a_terminal_redraws_one_line():
    t, clock = fake_clock()
    ctx = MilestoneContext(1, stream=FakeTTY(), clock=clock)
    list(ctx.progress(ticking(t, 50), total=50, desc="test"))
    text = ctx.stream.getvalue()
    assert text.count("\r") >= 10 and text.endswith("\n") and text.count("\n") == 1


def test_log_never_crashes_on_an_ascii_console():
    stream = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    MilestoneContext(1, stream=stream).log("accuracy \u2191 to 97 %")
    stream.flush()
    assert stream.buffer.getvalue() == b"accuracy ? to 97 %\n"


def test_tiny_data_sets_have_the_real_shapes_and_dtypes_and_only_training_data_is_written(tmp_path):
    split = milestone_data.prepare(1, data_set="mnist", tiny=True, seed=3)
    assert split.images.dtype == np.uint8 and split.images.shape[1:] == (28, 28) and split.labels.dtype == np.int64
    assert set(np.unique(split.labels)) == set(range(10))
    split.write_training(tmp_path)
    ctx = MilestoneContext(1, data_dir=tmp_path, tiny=True, seed=3)
    x_train, y_train = ctx.load_mnist()
    assert x_train.dtype == np.uint8 and x_train.shape[1:] == (28, 28) and y_train.dtype == np.int64
    cifar = milestone_data.prepare(3, data_set="cifar10", tiny=True, seed=3)
    assert cifar.images.shape[1:] == (3, 32, 32) and len(cifar.labels) == len(cifar.images)
    again = milestone_data.prepare(3, data_set="cifar10", tiny=True, seed=3)
    np.testing.assert_array_equal(again.images, cifar.images)  # seeded
    text = milestone_data.prepare(5, data_set="text", tiny=True, seed=3)
    assert len(text.train["text"]) > 1000 and "synthetic" in text.corpus and text.heldout_text
    text.write_training(tmp_path)
    train_text, name = ctx.load_text()
    assert train_text == text.train["text"] and name == text.corpus == ctx.corpus
    assert text.heldout_text not in train_text


def test_missing_data_is_a_clear_error_and_text_falls_back_to_the_python_docs(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYTORCH_CACHE", str(tmp_path / "cache"))
    with pytest.raises(MilestoneDataMissing) as info:
        milestone_data.prepare(3, data_set="cifar10", data_dir=tmp_path, download=False)
    assert "cifar" in str(info.value).lower() and str(tmp_path) in str(info.value)
    said = []
    split = milestone_data.prepare(5, data_set="text", data_dir=tmp_path, download=False, log=said.append)
    assert split.corpus == "pydoc_data" and split.train["text"] + split.heldout_text == pydoc_corpus()
    assert len(split.train["text"]) > 300_000 and "offline default" in said[0]
    with pytest.raises(MilestoneDataMissing, match="training file"):
        MilestoneContext(3, data_dir=tmp_path).load_cifar10()


def test_the_judge_loads_datasets_py_without_importing_tinytorch():
    import subprocess
    import sys

    from grading.course import REPO_ROOT
    code = ("import sys; from grading import milestone_data as d; m = d.datasets_module(d._root(None)); "
            "print(callable(m.load_mnist), any(k == 'tinytorch' or k.startswith('tinytorch.') for k in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["True", "False"], out.stderr


def test_validation_split_and_stop_bar():
    x, y = np.arange(100), np.arange(100) % 10
    x_train, y_train, x_val, y_val = validation_split(x, y, 20, seed=0)
    assert len(x_val) == 20 and len(x_train) == 80 and not set(x_val) & set(x_train)
    bar = {"stop_bar": {"val_loss": {"op": "<=", "value": 1.7}, "readability": {"op": ">=", "value": 0.85}}}
    assert stop_bar_met(bar, {"val_loss": 1.6, "readability": 0.9})
    assert not stop_bar_met(bar, {"val_loss": 1.6, "readability": 0.8})
    assert not stop_bar_met(bar, {"val_loss": float("nan"), "readability": 0.9})
    assert not stop_bar_met({}, {"val_loss": 0.0})
