"""Unit tests of what `tito grade` writes: badges, the README section, tamper check, cache keys."""
from __future__ import annotations

import hashlib
import io
import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tito_fixtures import FAKE_COURSE, SHIELDS_ENDPOINT_SCHEMA  # noqa: E402

from grading import badges, readme_section  # noqa: E402
from grading.course import Condition, parse_course  # noqa: E402
from grading.grade import (_previous_milestone, badge_files, build_progress, check_tamper,  # noqa: E402
                           data_key, read_profile, safe_curve_svg, ungraded_progress,
                           write_outputs)
from grading.scoring import score_module  # noqa: E402
from grading.state import data_checksums_for, known_data_checksums, milestone_fingerprint  # noqa: E402
from grading.testrun import TestResult  # noqa: E402

import yaml  # noqa: E402


@pytest.fixture
def course():
    return parse_course(yaml.safe_load(FAKE_COURSE))


# --- badges ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("badge", [
    badges.modules_badge(7, 16), badges.points_badge(57.25, 100), badges.points_badge(0, 0),
    badges.integrity_badge({"status": "modified", "changed": ["a"], "missing": [], "unexpected": []}),
    badges.milestone_badge({"badge": "Neural Network Engineer", "status": "passed", "headline": "97.1% test accuracy"}),
    badges.milestone_badge({"badge": "AI Framework Creator", "status": "failed", "headline": "2.10 val loss"}),
    badges.milestone_badge({"badge": "ML Systems Engineer", "status": "locked"}),
    badges.milestone_badge({"badge": "X", "status": "error"}),
    badges.Badge("", "", "red"),
])
def test_badge_json_follows_the_shields_endpoint_schema_and_svg_is_xml(badge):
    data = badge.endpoint_json()
    jsonschema.validate(data, SHIELDS_ENDPOINT_SCHEMA)
    root = ET.fromstring(badge.svg())
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert int(root.get("height")) == 20 and int(root.get("width")) > 0
    title = root.find("{http://www.w3.org/2000/svg}title").text
    assert data["message"] in title


def test_badge_width_grows_with_text_and_escapes_markup():
    short = ET.fromstring(badges.render_svg("a", "b", "green"))
    long = ET.fromstring(badges.render_svg("a much longer label", "<b>&'\"", "green"))
    assert int(long.get("width")) > int(short.get("width")) + 50
    assert "<b>&'\"" in "".join(long.itertext())


def test_badge_messages():
    assert badges.modules_badge(7, 16).message == "7/16"
    assert badges.points_badge(57.5, 100).message == "57.5/100"
    assert badges.milestone_badge({"badge": "B", "status": "locked"}).message == "locked"
    passed = badges.milestone_badge({"badge": "B", "status": "passed", "headline": "97.1% test accuracy"})
    assert passed.color == "brightgreen" and "97.1%" in passed.message
    assert badges.slug("Neural Network Engineer") == "neural-network-engineer"


def test_conditions_read_naturally():
    assert badges.describe_condition(Condition("test_accuracy", ">=", 0.85)) == "test accuracy >= 85.0%"
    assert badges.describe_condition(Condition("val_loss", "<=", 1.8)) == "val loss <= 1.80"
    assert badges.describe_condition(Condition("accuracy_rises", ">=", 1)) == "accuracy rises"


# --- README section --------------------------------------------------------------------------------

def test_section_is_inserted_once_below_the_title_and_only_it_changes(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# Title\n\nStudent text.\n\n## More\n", encoding="utf-8")
    assert readme_section.update_readme(readme, "first\n") is True
    text = readme.read_text(encoding="utf-8")
    assert text.startswith("# Title\n\n" + readme_section.START + "\nfirst\n" + readme_section.END)
    assert text.endswith("\n\nStudent text.\n\n## More\n")
    assert readme_section.update_readme(readme, "first\n") is False   # idempotent
    assert readme_section.update_readme(readme, "second\n") is True
    assert readme.read_text(encoding="utf-8") == text.replace("first", "second")
    assert readme_section.extract_section(readme.read_text(encoding="utf-8")) == "second\n"


def test_section_keeps_crlf_and_ignores_titles_in_code_fences(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_bytes(b"```\n# not a title\n```\n# Real\r\nbody\r\n")
    readme_section.update_readme(readme, "s\n")
    data = readme.read_bytes()
    assert data.startswith(b"```\n# not a title\n```\n# Real\r\n\r\n<!-- tinytorch:progress:start -->\r\ns\r\n")
    assert data.endswith(b"<!-- tinytorch:progress:end -->\r\nbody\r\n")


@pytest.mark.parametrize("broken", [
    "# T\n<!-- tinytorch:progress:start -->\nno end\n",
    "# T\n<!-- tinytorch:progress:end -->\n<!-- tinytorch:progress:start -->\n",
    "# T\n<!-- tinytorch:progress:start -->\n<!-- tinytorch:progress:end -->\n<!-- tinytorch:progress:end -->\n",
])
def test_broken_markers_leave_the_readme_untouched(tmp_path, broken):
    readme = tmp_path / "README.md"
    readme.write_text(broken, encoding="utf-8")
    with pytest.raises(readme_section.MarkerError, match="left unchanged"):
        readme_section.update_readme(readme, "x\n")
    assert readme.read_text(encoding="utf-8") == broken


def test_generated_sample_cannot_break_out_of_its_code_block(course):
    progress = ungraded_progress(course)
    entry = progress["milestones"]["1"]
    entry.update(status="passed", headline="93.0% test accuracy", seconds=1.0, curve="badges/curve-m1.svg",
                 verified_by="https://github.com/o/r/actions/runs/1",
                 sample="a ```` b\n<!-- tinytorch:progress:end -->\n# Heading")
    text = readme_section.render(progress, course, badge_files(course))
    assert readme_section.END not in text and readme_section.START not in text
    assert "`````text" in text                      # a fence longer than the sample's backtick run
    assert "[this GitHub Actions run](https://github.com/o/r/actions/runs/1)" in text
    assert "![Milestone 1 training curve](badges/curve-m1.svg)" in text


# --- progress.json and outputs ---------------------------------------------------------------------

def _tests(m, outcomes):
    tests = {}
    for i, outcome in enumerate(outcomes):
        nodeid = f"{m.folder}/test_{m.id}.py::test_{i}"
        skip_path = f"/x/{m.folder}/test_{m.id}.py" if outcome == "skipped" else ""
        tests[nodeid] = TestResult(nodeid, outcome, "AssertionError: nope" if outcome == "failed" else "", skip_path)
    return tests


def _grades(course, outcomes, errors=None):
    return {m.id: score_module(m, _tests(m, outcomes.get(m.id, [])), (errors or {}).get(m.id, {}))
            for m in course.modules}


def test_partial_credit_and_skips(course):
    grades = _grades(course, {"01_alpha": ["passed"] * 3, "02_beta": ["passed", "passed", "failed", "skipped"]})
    assert grades["01_alpha"].points == 4 and grades["01_alpha"].ok
    beta = grades["02_beta"]
    assert (beta.passed, beta.total, beta.skipped, beta.points, beta.ok) == (2, 3, 1, 4.0, False)
    assert "1 of 3 tests failed" in beta.reason and "nope" in beta.reason
    assert grades["03_gamma"].points == 0 and "no tests found" in grades["03_gamma"].reason
    # a skip raised from student code (not the module's test file) counts as a failure
    alpha = course.module("01_alpha")
    cheat = score_module(alpha, {"a::t": TestResult("assignments/01_alpha/t.py::t", "skipped", "Skipped",
                                                     "/r/tinytorch/alpha.py")}, {})
    assert cheat.total == 1 and cheat.passed == 0 and "counts as a failure" in cheat.reason
    # a test file that cannot be imported zeroes its module, and the reason names the student's file and line
    broken = score_module(alpha, _tests(alpha, ["passed"] * 3), {
        "assignments/01_alpha/test_b.py": 'tinytorch/alpha.py:3: in <module>\nE   ImportError: cannot import name \'x\''})
    assert broken.points == 0 and not broken.ok and "ImportError: cannot import name 'x'" in broken.reason
    assert broken.reason.startswith("tinytorch/alpha.py:3 is broken")


def test_a_crash_is_a_field_not_a_word_in_the_reason(course):
    """The regrade flags crashed runs by `crashed` (a reason text may say "crash" for other causes)."""
    alpha = course.module("01_alpha")
    killed = TestResult("assignments/01_alpha/test_a.py::t", "crashed", "the test process was killed (SIGKILL)")
    assert score_module(alpha, {killed.nodeid: killed}, {}).crashed
    assert score_module(alpha, {}, {}, crash_reason="the test process died while importing the tests").crashed
    says_crash = TestResult("assignments/01_alpha/test_a.py::t", "failed", "AssertionError: expected no crash")
    plain = score_module(alpha, {says_crash.nodeid: says_crash}, {})
    assert "crash" in plain.reason and not plain.crashed and "crashed" not in plain.as_dict()


def test_a_failure_names_the_students_line_not_the_test_file(course):
    alpha = course.module("01_alpha")
    failed = TestResult("assignments/01_alpha/test_a.py::t", "failed", "ValueError: bad", where="tinytorch/alpha.py:7")
    score = score_module(alpha, {failed.nodeid: failed}, {})
    assert "test_a.py::t (in tinytorch/alpha.py:7) - ValueError: bad" in score.reason


def test_the_profile_is_validated_and_capped(tmp_path):
    (tmp_path / "tinytorch.yaml").write_text(
        "name: Ada Lovelace\ngithub: ada\nstudent_id: 12345\nBad Key: x\nnested: {a: 1}\nlong: " + "y" * 500
        + "\nempty: ''\nlink: \"[x](javascript:alert(1))\\a\"\n", encoding="utf-8")
    profile = read_profile(tmp_path)
    assert profile["name"] == "Ada Lovelace" and profile["github"] == "ada" and profile["student_id"] == "12345"
    assert "Bad Key" not in profile and "nested" not in profile and "empty" not in profile
    assert len(profile["long"]) == 120 and "\u0007" not in profile["link"]
    progress = {"modules": {}, "totals": {"modules_passed": 0, "modules": 0, "points": 0, "max_points": 0},
                "milestones": {}, "profile": profile, "commit": {}}
    course = parse_course(yaml.safe_load(FAKE_COURSE))
    progress["modules"] = {m.id: {"ok": False, "total": 0, "passed": 0, "points": 0, "max_points": m.points}
                           for m in course.modules}
    progress["milestones"] = {"1": {"status": "locked"}}
    text = readme_section.render(progress, course, badge_files(course))
    assert "Student: Ada Lovelace (@ada)" in text
    (tmp_path / "tinytorch.yaml").write_text("name: '[x](http://evil) <b>'\ngithub: ada\n", encoding="utf-8")
    progress["profile"] = read_profile(tmp_path)
    text = readme_section.render(progress, course, badge_files(course))
    assert "Student: x(http://evil) b (@ada)" in text          # no link, no HTML from the profile
    (tmp_path / "tinytorch.yaml").write_text("- not a mapping\n", encoding="utf-8")
    assert read_profile(tmp_path) == {}
    assert read_profile(tmp_path / "missing") == {}


def test_write_outputs_makes_valid_badges_and_progress(tmp_path, course):
    (tmp_path / "README.md").write_text("# Repo\n", encoding="utf-8")
    grades = _grades(course, {"01_alpha": ["passed"] * 3, "02_beta": ["passed", "failed"]})
    milestones = {"1": {"number": 1, "name": "Fake Inference", "badge": "Fake Badge Earner", "status": "passed",
                        "metrics": {"test_accuracy": 0.93}, "headline": "93.0% test accuracy", "seconds": 1.0,
                        "cache_key": "k", "source": "this run", "verified_by": None, "commit": "a" * 40,
                        "thresholds": {}, "budget_seconds": 5.0}}
    tamper = {"status": "clean", "changed": [], "missing": [], "unexpected": []}
    commit = {"sha": "a" * 40, "time": "2026-01-01T00:00:00+00:00", "dirty": False}
    progress = build_progress(course, grades, milestones, tamper, commit, None, "single run")
    curve = '<svg xmlns="http://www.w3.org/2000/svg"><path d="M0 0L1 1"/></svg>'
    assert write_outputs(tmp_path, course, progress, {1: curve}) == []
    names = sorted(p.name for p in (tmp_path / "badges").iterdir())
    assert names == sorted(["curve-m1.svg", "fake-badge-earner.json", "fake-badge-earner.svg", "integrity.json",
                            "integrity.svg", "modules.json", "modules.svg", "points.json", "points.svg",
                            "progress.json"])
    for p in (tmp_path / "badges").glob("*.json"):
        if p.name != "progress.json":
            jsonschema.validate(json.loads(p.read_text(encoding="utf-8")), SHIELDS_ENDPOINT_SCHEMA)
    data = json.loads((tmp_path / "badges" / "progress.json").read_text(encoding="utf-8"))
    assert data["schema"] == "tinytorch-progress" and data["version"] == 1
    assert data["totals"]["points"] == 7.0 and data["totals"]["modules_passed"] == 1
    assert data["milestones"]["1"]["curve"] == "badges/curve-m1.svg"
    assert json.loads((tmp_path / "badges" / "fake-badge-earner.json").read_text())["message"].startswith("passed")
    # a milestone that is locked again loses its curve
    progress["milestones"]["1"].update(status="locked")
    write_outputs(tmp_path, course, progress, {})
    assert not (tmp_path / "badges" / "curve-m1.svg").exists()


def test_unsafe_curves_are_refused(tmp_path):
    good = tmp_path / "good.svg"
    good.write_text('<svg xmlns="http://www.w3.org/2000/svg"><a href="#x"/></svg>')
    assert safe_curve_svg(good) is not None
    for bad_text in ('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
                     '<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>', "not xml", "<html/>"):
        bad = tmp_path / "bad.svg"
        bad.write_text(bad_text)
        assert safe_curve_svg(bad) is None


def test_hand_written_previous_results_are_cleaned(tmp_path, course):
    ms = course.milestone(1)
    prev = {"milestones": {"1": {"status": "passed", "cache_key": "k", "metrics": {"test_accuracy": 0.1},
                                 "verified_by": "javascript:alert(1)", "sample": 42}}}
    entry = _previous_milestone(prev, ms, tmp_path)
    assert entry["status"] == "failed"          # the metric does not meet the threshold, whatever it says
    assert entry["verified_by"] is None and "sample" not in entry
    assert _previous_milestone({"milestones": {"1": "junk"}}, ms, tmp_path) is None
    assert _previous_milestone([], ms, tmp_path) is None


# --- tamper check ----------------------------------------------------------------------------------

def test_check_tamper(tmp_path):
    (tmp_path / "grading").mkdir()
    (tmp_path / "assignments" / "01_a").mkdir(parents=True)
    test_file = tmp_path / "assignments" / "01_a" / "test_a.py"
    test_file.write_text("def test(): assert 1\n")
    assert check_tamper(tmp_path)["status"] == "no_manifest"
    sha = hashlib.sha256(test_file.read_bytes()).hexdigest()
    manifest = {"files": {"assignments/01_a/test_a.py": sha, "grading/grade.py": "0" * 64}}
    (tmp_path / "grading" / "manifest.json").write_text(json.dumps(manifest))
    (tmp_path / "grading" / "grade.py").write_text("x")
    result = check_tamper(tmp_path)
    assert result == {"status": "modified", "changed": ["grading/grade.py"], "missing": [], "unexpected": []}
    test_file.write_text("def test(): assert True\n")
    (tmp_path / "grading" / "grade.py").unlink()
    (tmp_path / "assignments" / "conftest.py").write_text("")
    (tmp_path / "sitecustomize.py").write_text("")
    result = check_tamper(tmp_path)
    assert result["changed"] == ["assignments/01_a/test_a.py"] and result["missing"] == ["grading/grade.py"]
    assert result["unexpected"] == ["sitecustomize.py", "assignments/conftest.py"]
    # CRLF checkouts (Windows) are not tampering
    test_file.write_bytes(b"def test(): assert 1\r\n")
    assert "assignments/01_a/test_a.py" not in check_tamper(tmp_path)["changed"]


# --- milestone cache key ---------------------------------------------------------------------------

def test_fingerprint_covers_sources_program_thresholds_and_data(tmp_path, course):
    for rel, text in {"tinytorch/alpha.py": "a", "tinytorch/beta.py": "b", "milestones/m1_fake.py": "mnist",
                      "milestones/common.py": "c", "assignments/01_alpha/test.py": "t"}.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    ms = course.milestone(1)
    data = {"mnist.npz": "1" * 64, "cifar10.npz": "2" * 64}
    key = milestone_fingerprint(tmp_path, ms, data, course)
    assert key == milestone_fingerprint(tmp_path, ms, dict(data), course)
    # unrelated: a test file, a later module's file, and a data set the program does not name
    (tmp_path / "assignments" / "01_alpha" / "test.py").write_text("changed")
    (tmp_path / "tinytorch" / "beta.py").write_text("b2")
    assert milestone_fingerprint(tmp_path, ms, {**data, "cifar10.npz": "3" * 64}, course) == key
    changed = []
    (tmp_path / "tinytorch" / "alpha.py").write_text("a2")
    changed.append(milestone_fingerprint(tmp_path, ms, data, course))
    (tmp_path / "milestones" / "common.py").write_text("c2")
    changed.append(milestone_fingerprint(tmp_path, ms, data, course))
    (tmp_path / "milestones" / "m1_fake.py").write_text("mnist 2")
    changed.append(milestone_fingerprint(tmp_path, ms, data, course))
    changed.append(milestone_fingerprint(tmp_path, ms, {**data, "mnist.npz": "4" * 64}, course))
    harder = parse_course(yaml.safe_load(FAKE_COURSE.replace("value: 0.5", "value: 0.6"))).milestone(1)
    changed.append(milestone_fingerprint(tmp_path, harder, {**data, "mnist.npz": "4" * 64}, course))
    assert len({key, *changed}) == 6


def test_data_checksums_come_from_datasets_py_without_importing_it(tmp_path):
    (tmp_path / "tinytorch").mkdir()
    (tmp_path / "tinytorch" / "datasets.py").write_text(
        "raise SystemExit('never imported')\n"
        "A = Spec(key='a', offline_file='a.npz', offline_sha256='" + "a" * 64 + "')\n"
        "B = Spec(offline_file='b.txt', offline_sha256='" + "b" * 64 + "', remote=())\n")
    assert known_data_checksums(tmp_path) == {"a.npz": "a" * 64, "b.txt": "b" * 64}
    key = data_key(tmp_path)
    path = tmp_path / "tinytorch" / "datasets.py"
    path.write_text("# a comment changes nothing\n" + path.read_text())
    assert data_key(tmp_path) == key
    path.write_text(path.read_text().replace("b" * 64, "c" * 64))
    assert data_key(tmp_path) != key


def test_data_checksums_for_picks_the_data_sets_a_program_names():
    sums = {"mnist.npz": "a", "cifar10.npz": "b", "tinyshakespeare.txt": "c"}
    assert data_checksums_for("load_mnist()", sums) == {"mnist.npz": "a"}
    assert data_checksums_for("ctx.load_text('tinyshakespeare')", sums) == {"tinyshakespeare.txt": "c"}
    assert data_checksums_for("nothing named", sums) == sums


# --- console ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("encoding", ["cp1252", "ascii", "latin-1"])
def test_console_falls_back_to_ascii(encoding):
    from grading.console import Console
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding=encoding)
    out = Console(stream)
    assert not out.unicode and not out.color
    out.line(f"{out.sym('pass')} done {out.sym('party')} \U0001f525 caf\u00e9 \u2192")
    stream.flush()
    text = raw.getvalue().decode(encoding)
    assert text.startswith("[ok] done ***")


def test_console_unicode_and_colour_rules(monkeypatch):
    from grading.console import Console, actions_command

    class Tty(io.StringIO):
        encoding = "utf-8"

        def isatty(self):
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.delenv("TERM", raising=False)
    assert Console(Tty()).color and Console(Tty()).unicode
    monkeypatch.setenv("NO_COLOR", "1")
    assert not Console(Tty()).color
    assert Console(Tty()).style("x", "red") == "x"
    assert actions_command("notice", "a\nb%", title="t: x, y") == "::notice title=t%3A x%2C y::a%0Ab%25"


# --- unlock announcements --------------------------------------------------------------------------

@pytest.mark.parametrize("still_open, closing", [(False, "That was the last one"), (True, "Next: milestone 5")])
def test_several_unlocks_in_one_run_end_with_one_closing_line(monkeypatch, still_open, closing):
    import io
    from grading.console import Console
    from grading.course import load_course
    from grading.grade import announce_unlocks
    course = load_course()      # the real five milestones
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    progress = {"milestones": {str(ms.number): {"number": ms.number, "name": ms.name, "badge": ms.badge,
                                                "status": "passed", "headline": "ok"}
                               for ms in course.milestones}}
    if still_open:
        progress["milestones"]["5"].update(status="not_run")
    unlocked = [progress["milestones"][k] for k in ("1", "2", "3")]
    stream = io.StringIO()
    announce_unlocks(Console(stream, color=False, unicode=False), unlocked, course, progress)
    text = stream.getvalue()
    assert text.count("MILESTONE UNLOCKED") == 3
    assert text.count(closing) == 1 and closing in text.rstrip().splitlines()[-1]


def test_a_pytest_json_report_scores_like_tito_grade(course):
    """The instructor's sandboxed regrade reads a pytest-json-report; the same rule scores it."""
    from grading.scoring import score_modules
    from grading.testrun import results_from_report
    report = {"tests": [
        {"nodeid": "assignments/01_alpha/test_a.py::given_one", "outcome": "passed", "keywords": ["given_one", "given"]},
        {"nodeid": "assignments/01_alpha/test_a.py::mine", "outcome": "failed",
         "call": {"outcome": "failed", "crash": {"message": "AssertionError: nope"},
                  "traceback": [{"path": "assignments/01_alpha/test_a.py", "lineno": 9},
                                {"path": "/r/tinytorch/alpha.py", "lineno": 3}]}},
        {"nodeid": "assignments/02_beta/test_b.py::ok", "outcome": "passed"}],
        "collectors": [{"nodeid": "assignments/03_gamma/test_c.py", "outcome": "failed",
                        "longrepr": 'E     File "/r/tinytorch/gamma.py", line 7\nE   SyntaxError: invalid syntax'}]}
    run = results_from_report(report)
    scores = score_modules(course, run.tests, run.collect_errors)
    alpha = scores["01_alpha"]
    assert (alpha.passed, alpha.total, alpha.skipped, alpha.points) == (0, 1, 1, 0)
    assert "mine (in tinytorch/alpha.py:3) - AssertionError: nope" in alpha.reason
    assert scores["02_beta"].points == 6 and scores["02_beta"].ok
    assert scores["03_gamma"].points == 0 and scores["03_gamma"].reason.startswith("tinytorch/gamma.py:7 is broken")
