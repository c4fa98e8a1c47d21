"""The `tito` CLI: --version, --help everywhere, module commands, consoles that cannot print emoji."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tito_fixtures import REPO, make_fake_repo, run_tito  # noqa: E402

import grading  # noqa: E402
from grading import cli  # noqa: E402


def tito_here(*args: str, encoding: str = "utf-8") -> subprocess.CompletedProcess:
    """`python -m grading ARGS` in this repository, with stdout in `encoding`."""
    from tito_fixtures import clean_env
    env = clean_env(REPO, PYTHONIOENCODING=encoding)
    return subprocess.run([sys.executable, "-m", "grading", *args], cwd=REPO, env=env, capture_output=True,
                          timeout=120)


def test_version():
    result = tito_here("--version")
    assert result.returncode == 0 and result.stdout.decode().strip() == f"tito {grading.__version__}"


@pytest.mark.parametrize("args", [[], ["module"], ["module", "list"], ["module", "start"], ["module", "test"],
                                  ["module", "complete"], ["grade"], ["milestone"]])
def test_help_everywhere(args, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main([*args, "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert "usage: tito" in text
    if args == ["grade"]:
        assert "--skip-milestones" in text and "--time-budget" in text
    if args == []:
        for command in ("module", "grade", "milestone", "release", "classroom", "bench"):
            assert command in text


def test_missing_command_module_gives_a_clear_message(monkeypatch, capsys):
    monkeypatch.setitem(cli.EXTERNAL, "bench", ("grading.does_not_exist", "benchmarks"))
    assert cli.main(["bench", "run"]) == 2
    assert "grading/does_not_exist.py is missing" in capsys.readouterr().out
    # the other commands still work
    assert cli.main(["module", "list"]) == 0


def test_no_command_prints_help(capsys):
    assert cli.main([]) == 0
    assert "COMMAND" in capsys.readouterr().out


@pytest.mark.parametrize("encoding", ["cp1252", "ascii"])
def test_module_list_on_a_console_without_emoji(encoding):
    result = tito_here("module", "list", encoding=encoding)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    text = result.stdout.decode(encoding)         # would raise if anything unencodable slipped through
    assert "01_setup" in text and "milestone 1: Neural Network Engineer" in text
    assert "?" not in text                        # ASCII twins, not replacement characters
    assert "->" in text


def test_module_start_shows_file_and_unlock():
    result = tito_here("module", "start", "04")
    out = result.stdout.decode()
    assert result.returncode == 0
    assert "tinytorch/layers.py" in out and "assignments/04_layers/README.md" in out
    assert "Neural Network Engineer" in out


def test_unknown_module_is_a_clear_error():
    result = tito_here("module", "start", "99")
    assert result.returncode == 2 and "no module '99'" in result.stdout.decode()


def test_module_test_and_complete_in_a_fake_repo(tmp_path):
    root = make_fake_repo(tmp_path)
    ok = run_tito(root, "module", "complete", "01", PYTHONIOENCODING="cp1252")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "01_alpha complete: all 3 tests pass" in ok.stdout
    assert "Milestone 1 (Fake Inference) is unlocked" in ok.stdout and "Fake Badge Earner" in ok.stdout
    assert "\U0001f389" not in ok.stdout and "***" in ok.stdout      # ASCII fallback on cp1252
    bad = run_tito(root, "module", "complete", "02")
    assert bad.returncode == 1
    assert "test_inc_wrong" in bad.stdout and "deliberate failure" in bad.stdout and "2/3 tests pass" in bad.stdout
    verbose = run_tito(root, "module", "test", "02")
    assert verbose.returncode == 1 and "AssertionError" in verbose.stdout   # full pytest output
    state = json.loads((root / ".tito" / "modules.json").read_text())
    assert state["01_alpha"]["ok"] is True and state["01_alpha"].get("completed") is True
    assert state["02_beta"]["ok"] is False and state["02_beta"]["passed"] == 2
    listing = run_tito(root, "module", "list", PYTHONIOENCODING="ascii")
    assert listing.returncode == 0 and "[ok] 01_alpha" in listing.stdout and "[x] 02_beta" in listing.stdout


def test_grade_on_a_cp1252_console(tmp_path):
    root = make_fake_repo(tmp_path)
    result = run_tito(root, "grade", "--milestone-grace", "30", PYTHONIOENCODING="cp1252")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "MILESTONE UNLOCKED: Fake Badge Earner" in result.stdout and "Traceback" not in result.stderr


def test_tito_works_on_the_repository_in_the_current_directory(tmp_path):
    """An instructor with the course installed runs tito in a student's clone: it must grade that clone
    (and say so), never the checkout tito was installed from."""
    from tito_fixtures import clean_env
    root = make_fake_repo(tmp_path)
    inside = root / "assignments" / "02_beta"       # anywhere below the repository root works
    env = clean_env(REPO)                            # tito imported from this checkout, not the clone
    before = (REPO / "badges" / "progress.json").read_bytes()
    result = subprocess.run([sys.executable, "-m", "grading", "grade", "--skip-milestones"], cwd=inside, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"working on the repository at {root}" in result.stdout and str(REPO) in result.stdout
    assert json.loads((root / "badges" / "progress.json").read_text())["totals"]["modules"] == 3
    assert (REPO / "badges" / "progress.json").read_bytes() == before
    listing = subprocess.run([sys.executable, "-m", "grading", "module", "list"], cwd=root, env=env,
                             capture_output=True, text=True, timeout=120)
    assert "01_alpha" in listing.stdout and "02_tensor" not in listing.stdout


def test_complete_does_not_announce_a_milestone_that_already_passed(tmp_path):
    root = make_fake_repo(tmp_path)
    assert run_tito(root, "milestone", "run", "1").returncode == 0
    again = run_tito(root, "module", "complete", "01")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "is unlocked" not in again.stdout and "Milestone 1 (Fake Inference) already passed" in again.stdout
