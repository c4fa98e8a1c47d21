"""Milestones 4 and 5 end to end in tiny mode (synthetic data, seconds): result JSON, SVG, judging.

The real runs use the real data sets and take minutes (see milestones/README.md); these tests check
that the programs honour the runner's contract and that victory is decided by course.yaml.
"""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from grading import milestones as runner
from grading import state
from grading.course import load_course


@pytest.fixture(autouse=True)
def isolated_state(tmp_path, monkeypatch):
    monkeypatch.setattr(state, "STATE_DIR", tmp_path / ".tito")


def _run_tiny(number: int, tmp_path):
    out = tmp_path / f"m{number}.json"
    code = runner.main(["run", str(number), "--tiny", "--json", str(out)])
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["error"] is None, result["error"]
    assert result["milestone"] == number and result["tiny"] is True
    assert result["history"], "a training milestone records its history"
    assert ET.fromstring(out.with_suffix(".svg").read_text(encoding="utf-8")).tag.endswith("svg")
    ms = load_course().milestone(number)
    assert set(ms.thresholds) <= set(result["metrics"]), "every victory metric must be reported"
    assert result["passed"] == ms.passed(result["metrics"]), "victory comes from course.yaml, not the program"
    assert code == (0 if result["passed"] else runner.EXIT_NOT_WON)
    return result


@pytest.mark.slow
def test_milestone_4_tiny_trains_with_the_fast_kernels(tmp_path):
    result = _run_tiny(4, tmp_path)
    assert 0.0 <= result["metrics"]["test_accuracy"] <= 1.0
    assert all(h["train_loss"] > 0 for h in result["history"])


@pytest.mark.slow
def test_milestone_5_tiny_trains_a_gpt_and_samples_text(tmp_path):
    result = _run_tiny(5, tmp_path)
    metrics = result["metrics"]
    assert metrics["val_loss"] > 0 and 0.0 <= metrics["readability"] <= 1.0
    assert isinstance(result["details"].get("sample"), str) and result["details"]["sample"]
