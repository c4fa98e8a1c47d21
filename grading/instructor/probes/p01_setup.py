"""Probes of module 01 (setup): what each probe calls and why it cannot be passed without the work.

The module's two solutions are string functions, so the probes feed them strings drawn for this regrade:
`parse_version` gets random version strings (1-4 numbers, some with a pre-release tag or spaces) and returns
their numbers (padded with -1); `is_valid_github_handle` gets random handles of letters and digits with
hyphens (sometimes doubled or at an end) and a few forbidden characters, many of them 38-41 characters long
(the limit is 39), and returns 1/0 for each. With dozens of random cases per probe, the pattern of answers
cannot be guessed.
"""
from __future__ import annotations

import importlib

import numpy as np

MODULE = "01_setup"


def _setup(tt):
    return importlib.import_module(f"{tt.__name__}.setup_check")


def probe_parse_version(tt, rng) -> dict[str, np.ndarray]:
    setup = _setup(tt)
    rows = []
    for _ in range(int(rng.integers(10, 20))):
        numbers = [int(v) for v in rng.integers(0, 120, size=int(rng.integers(1, 5)))]
        text = ".".join(str(n) for n in numbers)
        tag = int(rng.integers(0, 4))
        if tag == 1:
            text += str(rng.choice(["rc1", "a2", "b3", ".dev0", "+local", "-beta"]))
        elif tag == 2:
            text = " " + text + "  "
        parsed = list(setup.parse_version(text))
        rows.append(parsed + [-1] * (6 - len(parsed)))
    return {"versions": np.array(rows, dtype=np.int64)}


def probe_github_handles(tt, rng) -> dict[str, np.ndarray]:
    setup = _setup(tt)
    alphabet = list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
    answers = []
    for _ in range(int(rng.integers(30, 50))):
        length = int(rng.choice([int(rng.integers(1, 12)), 38, 39, 40, 41]))   # around the 39-character limit
        chars = [str(rng.choice(alphabet)) for _ in range(length)]
        for _ in range(int(rng.choice([0, 0, 1, 2]))):   # hyphens anywhere: sometimes doubled or at an end
            chars[int(rng.integers(0, length))] = "-"
        if rng.random() < 0.15:
            chars[int(rng.integers(0, length))] = str(rng.choice(["_", " ", ".", "é"]))
        answers.append(int(setup.is_valid_github_handle("".join(chars))))
    return {"valid": np.array(answers, dtype=np.int64)}


PROBES = [probe_parse_version, probe_github_handles]
