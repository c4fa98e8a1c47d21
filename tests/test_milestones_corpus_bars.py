"""Milestone 5's bar depends on its corpus: course.yaml's `victory_by_corpus` and everything that judges.

Tiny Shakespeare is judged by `victory` (val_loss <= 1.80); the offline default corpus (pydoc_data)
by its own calibrated bar (val_loss <= 1.32). These tests check the table's validation, the judge,
the grader's re-judging of previous results and the README text, with a stand-in program so they
take milliseconds.
"""
from __future__ import annotations

import copy

import pytest
import yaml

from grading import milestones as runner
from grading import readme_section, state
from grading.course import COURSE_FILE, CourseError, load_course, parse_course
from grading.grade import _previous_milestone
from grading.state import milestone_fingerprint

BETWEEN_THE_BARS = {"val_loss": 1.5, "readability": 0.9}   # passes on Shakespeare, not on pydoc_data


@pytest.fixture(autouse=True)
def isolated_state(tmp_path, monkeypatch):
    monkeypatch.setattr(state, "STATE_DIR", tmp_path / ".tito")


def course_data():
    return copy.deepcopy(yaml.safe_load(COURSE_FILE.read_text(encoding="utf-8")))


def test_course_yaml_gives_the_offline_corpus_its_own_bar():
    ms = load_course().milestone(5)
    assert ms.thresholds["val_loss"] == {"op": "<=", "value": 1.80}
    assert ms.thresholds_for("pydoc_data")["val_loss"] == {"op": "<=", "value": 1.32}
    assert ms.thresholds_for("tinyshakespeare") == ms.thresholds     # not listed: the default bar
    assert ms.passed(BETWEEN_THE_BARS, "tinyshakespeare") and not ms.passed(BETWEEN_THE_BARS, "pydoc_data")
    assert [str(c) for c in ms.unmet(BETWEEN_THE_BARS, "pydoc_data")] == ["val_loss <= 1.32"]
    assert "on pydoc_data: val_loss <= 1.32" in ms.describe()


@pytest.mark.parametrize("bad, message", [
    ({"pydoc_data": {"val_loss": {"op": "<=", "value": 1.3}}}, "same metrics"),
    ({"pydoc_data": {"val_loss": {"op": "<", "value": 1.3}, "readability": {"op": ">=", "value": 0.8}}},
     "victory_by_corpus.pydoc_data.val_loss"),
    (["pydoc_data"], "must map a corpus name"),
    ({"pydoc_data": {}}, "victory_by_corpus.pydoc_data must map"),
])
def test_bad_per_corpus_bars_are_named(bad, message):
    data = course_data()
    data["milestones"][4]["victory_by_corpus"] = bad
    with pytest.raises(CourseError, match=message):
        parse_course(data)


@pytest.mark.parametrize("corpus, passed, bar", [("tinyshakespeare", True, 1.80), ("pydoc_data", False, 1.32)])
def test_the_judge_applies_the_bar_of_the_corpus_it_served(corpus, passed, bar, tmp_path, capsys):
    from grading import judge

    ms = load_course().milestone(5)
    result = judge._finish({"metrics": dict(BETWEEN_THE_BARS), "corpus": corpus, "tiny": False}, ms, seconds=1.0)
    assert result["passed"] is passed and result["corpus"] == corpus
    assert result["thresholds"]["val_loss"]["value"] == bar
    assert result["failed_conditions"] == ([] if passed else ["val_loss <= 1.32"])
    if not passed:
        assert result["shortfalls"] == [{"metric": "val_loss", "needs": "<= 1.32", "got": 1.5, "missed_by": 0.18}]
    runner._print_result(runner.Console(), ms, result, [tmp_path / "m5.json"])
    out = capsys.readouterr().out
    assert ("judged by the bar for the pydoc_data corpus" in out) is (corpus == "pydoc_data")


def test_the_grader_rejudges_a_previous_result_by_its_corpus(tmp_path):
    ms = load_course().milestone(5)
    for corpus, status in (("tinyshakespeare", "passed"), ("pydoc_data", "failed")):
        prev = {"milestones": {"5": {"status": "passed", "cache_key": "k", "metrics": BETWEEN_THE_BARS,
                                     "corpus": corpus}}}
        entry = _previous_milestone(prev, ms, tmp_path)
        assert entry["status"] == status, corpus
        if corpus == "pydoc_data":
            assert entry["thresholds"]["val_loss"]["value"] == 1.32 and "val loss <= 1.32" in entry["reason"]


def test_readme_names_the_bar_a_result_was_judged_by():
    ms = load_course().milestone(5)
    assert readme_section._needs(ms, {"corpus": "pydoc_data"}).endswith("on pydoc_data")
    assert "1.32" not in readme_section._needs(ms, {"corpus": "tinyshakespeare"})


def test_changing_a_per_corpus_bar_changes_the_cache_key(tmp_path):
    data = course_data()
    key = milestone_fingerprint(tmp_path, parse_course(data).milestone(5), {}, parse_course(data))
    data["milestones"][4]["victory_by_corpus"]["pydoc_data"]["val_loss"]["value"] = 1.4
    assert milestone_fingerprint(tmp_path, parse_course(data).milestone(5), {}, parse_course(data)) != key
