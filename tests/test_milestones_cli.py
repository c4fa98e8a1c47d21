"""`tito milestone list|status|timeline|next|start|check|celebrate` from a prepared local state."""
from __future__ import annotations

import io

import pytest

from grading import milestones as runner
from grading import state
from grading.course import load_course

COURSE = load_course()
BADGES = ["Neural Network Engineer", "Computer Vision Architect", "ML Systems Engineer",
          "Production AI Developer", "AI Framework Creator"]


@pytest.fixture(autouse=True)
def isolated_state(tmp_path, monkeypatch):
    monkeypatch.setattr(state, "STATE_DIR", tmp_path / ".tito")
    monkeypatch.delenv("NO_COLOR", raising=False)


def pass_modules(*ids, failing=()):
    results = {m: {"passed": 5, "failed": 0, "total": 5, "ok": True, "time": 1.0} for m in ids}
    results.update({m: {"passed": 2, "failed": 3, "total": 5, "ok": False, "time": 1.0} for m in failing})
    state.save_module_results(results, merge=False)


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


def test_ascii_console_gets_no_emoji():
    stream = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    con = runner.Console(stream)
    assert not con.unicode and con.sym("pass") == "[PASS]" and not con.colour
    con.print("caf\u00e9 \u2705")  # must not raise
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
