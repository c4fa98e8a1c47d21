"""Module 01 - Setup: your first functions, the environment check and your profile file."""
import sys

import numpy as np
import pytest

from tinytorch import setup_check
from tinytorch.setup_check import (PROFILE_FILE, Environment, ProfileError, check_environment, environment,
                                   is_valid_github_handle, load_profile, parse_version, report)


# ---- parse_version -----------------------------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [("2.4.6", (2, 4, 6)), ("3.11", (3, 11)), ("1.26.0rc1", (1, 26, 0)),
                                            (" 2.0 ", (2, 0)), ("10", (10,)), ("3.11.7+", (3, 11, 7)),
                                            ("2.0.0.dev0+git123", (2, 0, 0)), ("1.2b3", (1, 2))])
def test_parse_version(text, expected):
    got = parse_version(text)
    assert got == expected, f"parse_version({text!r}): expected {expected}, got {got}"
    assert all(type(n) is int for n in got), "the parts must be ints, so that they compare as numbers"


def test_parsed_versions_compare_as_numbers():
    assert parse_version("1.10") > parse_version("1.9"), "as strings '1.10' < '1.9': that is why we parse"
    assert parse_version("2.0") >= (1, 24)


@pytest.mark.parametrize("text", ["", "abc", ".1", "v", "  "])
def test_parse_version_rejects_text_without_a_number(text):
    with pytest.raises(ValueError):
        parse_version(text)


# ---- is_valid_github_handle --------------------------------------------------------------------------
@pytest.mark.parametrize("handle", ["ada", "ada-lovelace", "A1", "a", "x" * 39, "the-3rd-coder"])
def test_valid_github_handles(handle):
    assert is_valid_github_handle(handle) is True, f"{handle!r} follows GitHub's rules"


GIVEN = pytest.mark.given   # these cases pass with no work of yours: the type check is given code
@pytest.mark.parametrize("handle", ["", "-ada", "ada-", "ada--lovelace", "ada_lovelace", "ada lovelace", "x" * 40,
                                    "ada.l", "adä", pytest.param(None, marks=GIVEN), pytest.param(42, marks=GIVEN)])
def test_invalid_github_handles(handle):
    assert is_valid_github_handle(handle) is False, f"{handle!r} breaks a GitHub rule"


# ---- the environment --------------------------------------------------------------------------------
@pytest.mark.given   # passes with no work in this module: checks code the course gives
def test_environment_describes_this_machine():
    env = environment()
    assert env.python == ".".join(map(str, sys.version_info[:3]))
    assert env.numpy == np.__version__
    assert isinstance(env.blas, str) and env.blas
    assert isinstance(env.cores, int) and env.cores >= 1


def test_check_environment_accepts_this_machine_and_rejects_old_versions():
    assert check_environment() == [], "this machine runs the course, so there should be no problems"
    old = Environment(python="3.8.10", numpy="1.21.0", blas="openblas", cores=2, platform="Linux")
    problems = check_environment(old)
    assert len(problems) == 2 and "Python 3.8.10" in problems[0] and "NumPy 1.21.0" in problems[1]


# ---- the profile ------------------------------------------------------------------------------------
def test_profile_is_read_from_tinytorch_yaml(tmp_path):
    path = tmp_path / PROFILE_FILE
    path.write_text("name: Ada Lovelace\ngithub: '@ada-lovelace'\n", encoding="utf-8")
    profile = load_profile(path)
    assert (profile.name, profile.github) == ("Ada Lovelace", "ada-lovelace")
    assert PROFILE_FILE == "tinytorch.yaml"


@pytest.mark.given   # passes with no work in this module: checks code the course gives
def test_missing_profile_file_names_the_file(tmp_path):
    with pytest.raises(ProfileError, match="tinytorch.yaml: file not found"):
        load_profile(tmp_path / PROFILE_FILE)


@pytest.mark.given   # passes with no work in this module: checks code the course gives
@pytest.mark.parametrize("text, field", [("github: ada\n", "name"), ("name: Ada\n", "github"),
                                         ("name: ''\ngithub: ada\n", "name"), ("name: Ada\ngithub:\n", "github")])
def test_missing_or_empty_field_is_named(tmp_path, text, field):
    path = tmp_path / PROFILE_FILE
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ProfileError, match=rf"tinytorch.yaml: the field '{field}' is missing or empty"):
        load_profile(path)


@pytest.mark.parametrize("text, match", [pytest.param("name: [unclosed\n", "not valid YAML", marks=GIVEN),
                                         pytest.param("- a\n- b\n", "field: value", marks=GIVEN),
                                         ("name: Ada\ngithub: not a handle\n", "not a valid GitHub handle"),
                                         pytest.param("name: 42\ngithub: ada\n", "must be text", marks=GIVEN)])
def test_malformed_profile_says_what_is_wrong(tmp_path, text, match):
    path = tmp_path / PROFILE_FILE
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ProfileError, match=match):
        load_profile(path)


def test_report_is_plain_ascii_and_greets_you(tmp_path):
    (tmp_path / PROFILE_FILE).write_text("name: Ada\ngithub: ada\n", encoding="utf-8")
    text, ok = report(tmp_path, measure_speed=False)
    text.encode("ascii")  # must print on any console
    assert ok and "Hello, Ada" in text and "NumPy" in text and "BLAS" in text and "cores" in text
    text, ok = report(tmp_path / "nowhere", measure_speed=False)
    assert not ok and "tinytorch.yaml" in text


@pytest.mark.given   # passes with no work in this module: checks code the course gives
def test_matmul_speed_is_measured():
    assert setup_check.matmul_gflops(n=64, repeats=2) > 0
