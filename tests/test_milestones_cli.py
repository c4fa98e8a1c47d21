"""`tito milestone list|status|timeline|next|start|check|celebrate` from a prepared local state."""
from __future__ import annotations

import io

import pytest

from grading import milestones as runner
from grading import state
from grading.console import Console
from grading.course import REPO_ROOT, load_course

COURSE = load_course()
BADGES = ["Neural Network Engineer", "Computer Vision Architect", "ML Systems Engineer",
          "Production AI Developer", "AI Framework Creator"]


@pytest.fixture(autouse=True)
def isolated_state(tmp_path, monkeypatch):
    monkeypatch.setattr(state, "STATE_DIR", tmp_path / ".tito")
    monkeypatch.delenv("NO_COLOR", raising=False)


def pass_modules(*ids, failing=()):
    """Module results as `tito module complete` records them: for this code (its fingerprint)."""
    def entry(mid, ok):
        return {"passed": 5 if ok else 2, "failed": 0 if ok else 3, "total": 5, "ok": ok, "time": "t",
                "fingerprint": state.module_fingerprint(REPO_ROOT, COURSE, COURSE.module(mid))}
    results = {m: entry(m, True) for m in ids}
    results.update({m: entry(m, False) for m in failing})
    state.atomic_write_json(state.modules_file(), results)


def write_result(number, passed, **metrics):
    ms = COURSE.milestone(number)
    metrics = metrics or {"test_accuracy": 0.97 if passed else 0.42}
    state.atomic_write_json(state.milestone_result_path(number), {
        "milestone": number, "name": ms.name, "passed": passed, "metrics": metrics, "thresholds": ms.thresholds,
        "failed_conditions": [] if passed else [str(c) for c in ms.victory], "seconds": 3.5, "history": [],
        "details": {}, "error": None, "tiny": False, "fingerprint": runner.fingerprint(ms, COURSE),
        "finished_at": "2025-01-01T00:00:00+00:00"})


def run(capsys, *argv):
    code = runner.main(list(argv))
    return code, capsys.readouterr().out


def test_list_shows_every_milestone_with_its_badge_and_conditions(capsys):
    code, out = run(capsys, "list")
    assert code == 0
    for ms, badge in zip(COURSE.milestones, BADGES):
        assert ms.name in out and badge in out
        for c in ms.victory:
            assert str(c) in out


def test_status_reflects_modules_and_results(capsys):
    pass_modules("02_tensor", "03_activations", "04_layers", failing=["06_spatial"])
    write_result(1, True)
    code, out = run(capsys, "status")
    assert code == 0
    lines = {ms.number: next(line for line in out.splitlines() if f"{ms.number}. {ms.name}" in line)
             for ms in COURSE.milestones}
    assert "PASSED" in lines[1] and "0.97" in lines[1]
    assert "LOCKED" in lines[2] and "06_spatial" in lines[2]
    assert "LOCKED" in lines[5]
    assert "1/5 milestones passed" in out
    code, out = run(capsys, "status", "--detailed")
    assert "06_spatial (failing)" in out and "04_layers (passed)" in out and "victory test_accuracy >= 0.95" in out


def test_status_marks_a_result_stale_when_the_code_changed(capsys):
    pass_modules("02_tensor", "03_activations", "04_layers")
    write_result(1, True)
    path = state.milestone_result_path(1)
    data = state.read_json(path)
    data["fingerprint"] = "something-else"
    state.atomic_write_json(path, data)
    _, out = run(capsys, "status")
    assert "STALE" in out and "tito milestone run 1" in out


def test_next_points_at_missing_modules_then_at_the_run(capsys):
    code, out = run(capsys, "next")
    assert code == 0 and "milestone 1" in out and "04_layers" in out
    pass_modules("02_tensor", "03_activations", "04_layers")
    _, out = run(capsys, "next")
    assert "tito milestone run 1" in out
    write_result(1, True)
    _, out = run(capsys, "next")
    assert "milestone 2" in out and "06_spatial" in out


def test_timeline_places_milestones_after_their_modules(capsys):
    pass_modules("02_tensor", "03_activations", "04_layers")
    write_result(1, True)
    code, out = run(capsys, "timeline")
    assert code == 0
    pos = {key: out.index(key) for key in ("04_layers", "Milestone 1", "05_networks", "06_spatial", "Milestone 2")}
    assert pos["04_layers"] < pos["Milestone 1"] < pos["05_networks"] < pos["06_spatial"] < pos["Milestone 2"]
    assert "Neural Network Engineer" in out


def test_start_explains_the_milestone_and_module_states(capsys):
    pass_modules("02_tensor", "03_activations", failing=["04_layers"])
    code, out = run(capsys, "start", "1")
    assert code == 0
    assert "Basic Inference" in out and "Neural Network Engineer" in out
    assert "Linear" in out  # from the program's docstring: what to build
    assert "04_layers" in out and "failing" in out and "test_accuracy >= 0.85" in out


def test_celebrate_only_a_passed_milestone(capsys):
    code, out = run(capsys, "celebrate", "1")
    assert code != 0 and "has not passed" in out and "not been run" in out
    write_result(1, False)
    code, out = run(capsys, "celebrate", "1")
    assert code != 0 and "has not passed" in out and "test_accuracy >= 0.85" in out
    write_result(1, True)
    code, out = run(capsys, "celebrate", "1")
    assert code == 0 and "MILESTONE UNLOCKED" in out and "Neural Network Engineer" in out
    assert "Computer Vision" in out  # the next challenge


@pytest.mark.parametrize("number,badge", list(enumerate(BADGES, start=1)))
def test_every_badge_is_named_in_its_unlock_message(number, badge, capsys):
    ms = COURSE.milestone(number)
    write_result(number, True, **{c.metric: c.value for c in ms.victory})
    code, out = run(capsys, "celebrate", str(number))
    assert code == 0 and badge in out


def test_check_runs_only_ready_milestones_without_a_current_result(capsys, monkeypatch):
    ran = []

    def fake_run(number, **kwargs):
        ran.append(number)
        return {"passed": True, "error": None}
    monkeypatch.setattr(runner, "run_milestone", fake_run)
    code, out = run(capsys, "check")
    assert code == 0 and ran == [] and "Nothing to run" in out
    pass_modules("02_tensor", "03_activations", "04_layers", "06_spatial")
    write_result(1, True)
    code, out = run(capsys, "check")
    assert ran == [2] and code == 0


def test_status_counts_modules_changed_since_they_were_tested(capsys, tmp_path, monkeypatch):
    """A module result recorded for other code is not counted as passing (the issue: 3/16 shown for 6)."""
    pass_modules("02_tensor", "03_activations", "04_layers")
    data = state.read_json(state.modules_file())
    data["04_layers"]["fingerprint"] = "older-code"
    state.atomic_write_json(state.modules_file(), data)
    _, out = run(capsys, "status")
    assert "2/16 modules passing; 1 changed since last tested" in out
    line = next(x for x in out.splitlines() if "1. Basic Inference" in x)
    assert "LOCKED" in line and "04_layers" in line


def test_a_run_that_could_not_run_keeps_the_judged_result_for_the_same_code():
    pass_modules("02_tensor", "03_activations", "04_layers")
    write_result(1, True)
    ms = COURSE.milestone(1)
    failed_download = {"milestone": 1, "passed": False, "metrics": {}, "error": "MNIST is not available offline",
                       "fingerprint": runner.fingerprint(ms, COURSE)}
    assert state.record_milestone_result(1, failed_download) is False
    assert state.load_milestone_result(1)["passed"] is True
    assert state.milestone_state(REPO_ROOT, COURSE, ms)[0] == "passed"
    # for other code the new attempt is recorded (the old pass was for code that no longer exists)
    assert state.record_milestone_result(1, {**failed_download, "fingerprint": "other"}) is True


def test_start_without_a_number_starts_at_the_next_milestone(capsys):
    code, out = run(capsys, "start")
    assert code == 0 and out.startswith("Milestone 1: Basic Inference")
    pass_modules("02_tensor", "03_activations", "04_layers")
    write_result(1, True)
    code, out = run(capsys, "start")
    assert code == 0 and out.startswith("Milestone 2: Computer Vision")


def test_ascii_console_gets_no_emoji():
    """The milestone commands print through the one console of grading/console.py."""
    assert runner.Console is Console
    stream = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    con = runner.Console(stream)
    assert not con.unicode and con.sym("pass") == "[ok]" and not con.color
    con.line("caf\u00e9 \u2705")  # must not raise
    stream.flush()
    assert stream.buffer.getvalue().decode("ascii") == "caf? ?\n"


def test_unknown_milestone_is_a_clear_error(capsys):
    code = runner.main(["start", "9"])
    assert code != 0
    assert "no milestone" in capsys.readouterr().err


def test_milestones_readme_agrees_with_course_yaml():
    """milestones/README.md repeats the victory conditions and budgets for readers; they must match."""
    import re

    from grading.course import REPO_ROOT
    text = (REPO_ROOT / "milestones" / "README.md").read_text(encoding="utf-8")
    for ms in COURSE.milestones:
        row = next(line for line in text.splitlines() if line.startswith(f"| {ms.number} | {ms.name} |"))
        for c in ms.victory:
            found = re.findall(rf"`{c.metric} {re.escape(c.op)} ([0-9.]+)`", row)
            assert found and float(found[0]) == c.value, (ms.number, str(c), row)
        assert f"| {ms.budget_seconds:g} s |" in row and ms.badge in row
