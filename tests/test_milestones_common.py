"""milestones/common.py: the context every milestone program gets."""
from __future__ import annotations

import io

import numpy as np
import pytest

from grading.milestones import ensure_importable

ensure_importable()
from milestones.common import MilestoneContext, MilestoneDataMissing, pydoc_corpus  # noqa: E402


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


def test_time_left_counts_down_from_the_budget():
    t, clock = fake_clock()
    ctx = MilestoneContext(1, budget_seconds=20, clock=clock)
    t[0] = 5.0
    assert ctx.time_left() == pytest.approx(15.0) and ctx.elapsed() == pytest.approx(5.0)


def test_tiny_data_sets_have_the_real_shapes_and_dtypes():
    ctx = MilestoneContext(1, tiny=True, seed=3)
    x_train, y_train, x_test, y_test = ctx.load_mnist()
    assert x_train.dtype == np.uint8 and x_train.shape[1:] == (28, 28) and y_train.dtype == np.int64
    assert set(np.unique(y_test)) == set(range(10))
    x_train, y_train, x_test, y_test = ctx.load_cifar10()
    assert x_train.shape[1:] == (3, 32, 32) and x_test.dtype == np.uint8 and len(y_test) == len(x_test)
    again = MilestoneContext(1, tiny=True, seed=3).load_cifar10()
    np.testing.assert_array_equal(again[0], x_train)  # seeded
    text, name = ctx.load_text()
    assert len(text) > 1000 and "synthetic" in name and ctx.corpus == name


def test_missing_data_is_a_clear_error_and_text_falls_back_to_the_python_docs(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYTORCH_CACHE", str(tmp_path / "cache"))
    ctx = MilestoneContext(1, data_dir=tmp_path, download=False, stream=io.StringIO())
    with pytest.raises(MilestoneDataMissing) as info:
        ctx.load_cifar10()
    assert "cifar" in str(info.value).lower() and str(tmp_path) in str(info.value)
    text, name = ctx.load_text()
    assert name == "pydoc_data" and ctx.corpus == "pydoc_data" and text == pydoc_corpus()
    assert len(text) > 300_000 and "offline default" in ctx.stream.getvalue()
