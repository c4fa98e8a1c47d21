"""End-to-end runs of milestones 1-3 in tiny mode through the runner and the CLI entry point.

Tiny mode feeds the programs small synthetic data sets (made by grading/milestone_data.py), so these tests
check the plumbing - result JSON, SVG plot, judging by the thresholds of course.yaml, exit codes, the
missing-data message - in seconds, without the real data.
"""
from __future__ import annotations

import copy
import json
import xml.etree.ElementTree as ET

import pytest
import yaml

from grading import milestones as runner
from grading import state
from grading.course import COURSE_FILE, REPO_ROOT, load_course, parse_course

RESULT_KEYS = {"milestone", "name", "passed", "metrics", "thresholds", "seconds", "history", "details", "corpus",
               "tiny", "error", "badge", "fingerprint", "within_budget", "budget_seconds", "failed_conditions"}


@pytest.fixture(autouse=True)
def isolated_state(tmp_path, monkeypatch):
    """Every test gets its own .tito/ so it never sees (or writes) the developer's real state."""
    monkeypatch.setattr(state, "STATE_DIR", tmp_path / ".tito")
    return tmp_path / ".tito"


def course_with_thresholds(**values):
    """course.yaml with some victory thresholds changed (to exercise the passing path on tiny data)."""
    data = yaml.safe_load(COURSE_FILE.read_text(encoding="utf-8"))
    data = copy.deepcopy(data)
    for entry in data["milestones"]:
        for metric, value in values.get(f"m{entry['number']}", {}).items():
            entry["victory"][metric]["value"] = value
    return parse_course(data)


def check_result_files(result: dict, json_path):
    on_disk = json.loads(json_path.read_text(encoding="utf-8"))
    assert on_disk == result
    assert RESULT_KEYS <= set(on_disk)
    svg = json_path.with_suffix(".svg")
    root = ET.fromstring(svg.read_text(encoding="utf-8"))
    assert root.tag.endswith("svg")
    return on_disk


@pytest.mark.parametrize("number", [1, 2])
def test_inference_milestone_tiny_run_is_judged_failed_and_exits_nonzero(number, tmp_path, capsys):
    out = tmp_path / f"m{number}.json"
    code = runner.main(["run", str(number), "--tiny", "--json", str(out)])
    result = check_result_files(json.loads(out.read_text()), out)
    ms = load_course().milestone(number)
    assert result["milestone"] == number and result["name"] == ms.name and result["tiny"] is True
    assert result["error"] is None, result["error"]
    assert result["thresholds"] == ms.thresholds
    # shipped MNIST weights on synthetic images: about chance, far below the threshold
    assert 0.0 <= result["metrics"]["test_accuracy"] < 0.85
    assert result["passed"] is False and code == runner.EXIT_NOT_WON
    assert result["failed_conditions"] == ["test_accuracy >= 0.85" if number == 1 else "test_accuracy >= 0.95"]
    assert result["history"] and all("test_accuracy" in h for h in result["history"])
    assert result["details"]["parameters"] > 0
    # tiny results never replace a real result
    assert runner.tiny_result_path(number).exists() and not state.milestone_result_path(number).exists()
    assert "not yet" in capsys.readouterr().out


def test_milestone_2_states_its_parameter_count_against_milestone_1(tmp_path):
    result = runner.run_milestone(2, tiny=True)
    d = result["details"]
    assert d["mlp_parameters"] > d["parameters"] > 0
    assert f"{d['parameters']:,}" in d["parameter_comparison"] and f"{d['mlp_parameters']:,}" in d["parameter_comparison"]


def test_pass_is_decided_by_course_thresholds_not_by_the_program(tmp_path):
    lenient = course_with_thresholds(m1={"test_accuracy": 0.0})
    result = runner.run_milestone(1, tiny=True, course=lenient, json_path=tmp_path / "r.json")
    assert result["passed"] is True and runner.exit_code(result) == runner.EXIT_VICTORY
    assert result["thresholds"] == {"test_accuracy": {"op": ">=", "value": 0.0}}
    strict = course_with_thresholds(m1={"test_accuracy": 1.01})
    result = runner.run_milestone(1, tiny=True, course=strict)
    assert result["passed"] is False and runner.exit_code(result) == runner.EXIT_NOT_WON


@pytest.mark.slow  # about 5 s alone on 2 cores (real training steps, tiny data)
def test_milestone_3_tiny_trains_saves_and_reloads(tmp_path):
    out = tmp_path / "m3.json"
    code = runner.main(["run", "3", "--tiny", "--json", str(out)])
    result = check_result_files(json.loads(out.read_text()), out)
    assert result["error"] is None, result["error"]
    metrics = result["metrics"]
    assert set(metrics) >= {"test_accuracy", "accuracy_rises", "reload_identical"}
    assert metrics["reload_identical"] == 1.0
    epochs = [h["epoch"] for h in result["history"]]
    stopped = result["stopped_at"]
    assert epochs == ([1, 2, 3] if stopped is None else list(range(1, stopped["epoch"] + 1)))
    assert all(h["train_loss"] > 0 and "test_accuracy" in h for h in result["history"])
    assert [e["tag"] for e in result["evaluations"]] == ["epoch"] * len(epochs) + ["reloaded"]
    # the synthetic task is learnable: training must beat chance (10 classes)
    assert metrics["test_accuracy"] > 0.3
    ms = load_course().milestone(3)
    assert {"test_accuracy", "accuracy_rises", "reload_identical"} <= set(ms.thresholds)
    assert result["passed"] == ms.passed(metrics)
    assert code == (0 if result["passed"] else runner.EXIT_NOT_WON)
    svg = out.with_suffix(".svg").read_text()
    assert "train_loss" in svg and "test_accuracy" in svg and "polyline" in svg


def test_missing_data_gives_a_clear_failed_result(tmp_path, monkeypatch, capsys):
    empty = tmp_path / "no-data"
    empty.mkdir()
    monkeypatch.setenv("TINYTORCH_CACHE", str(tmp_path / "no-cache"))
    result = runner.run_milestone(1, data_dir=empty, download=False, json_path=tmp_path / "m1.json")
    assert result["passed"] is False and runner.exit_code(result) == runner.EXIT_COULD_NOT_RUN
    message = result["error"]
    assert "mnist" in message.lower() and str(empty) in message and "TINYTORCH_DATA" in message
    printed = capsys.readouterr().out
    assert "could not run" in printed and "TINYTORCH_DATA" in printed
    # a failed run still writes its result and plot
    assert state.milestone_result_path(1).exists() and (tmp_path / "m1.svg").exists()


def test_unfinished_student_code_is_a_failed_result_not_a_crash(tmp_path):
    import dataclasses

    from grading.judge import judge_milestone
    program = tmp_path / "m1_unfinished.py"
    program.write_text("def run(ctx):\n    raise NotImplementedError('04_layers: implement Linear.forward, see "
                       "assignments/04_layers/README.md')\n", encoding="utf-8")
    course = load_course()
    ms = dataclasses.replace(course.milestone(1), program=str(program))
    result = judge_milestone(ms, course, REPO_ROOT, None, tmp_path / "run", tiny=True, out=lambda line: None)
    assert result["passed"] is False and "not finished" in result["error"] and "04_layers" in result["error"]
    assert runner.exit_code(result) == runner.EXIT_COULD_NOT_RUN


def test_results_record_the_framework_used_is_this_repository():
    result = runner.run_milestone(1, tiny=True)
    assert result["framework"] == str(REPO_ROOT / "tinytorch")
