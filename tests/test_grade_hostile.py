"""Hostile or broken student code: graded as a failure with a clear message, never a grader crash.

One "zoo" course holds a module per hostile behaviour, between two well-behaved modules that must keep
their full points (one hostile module never zeroes the others); `tito grade` must exit 0 and say, per
module, what went wrong. A second, smaller case checks a crash in the middle of the single test run.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tito_fixtures import make_fake_repo, run_tito  # noqa: E402

OK_TESTS = "def test_one():\n    assert True\n\ndef test_two():\n    assert True\n"

HOSTILE = {
    # module id: (what its test file does after two passing tests, at import or in a third test)
    "02_osexit": "import os\nos._exit(3)\n",
    "03_sysexit": "import sys\nsys.exit(0)\n",
    "04_loop": "\ndef test_loop():\n    while True:\n        pass\n",
    "05_stubborn": ("\ndef test_stubborn():\n    import time\n    while True:\n        try:\n"
                    "            time.sleep(0.05)\n        except BaseException:\n            pass\n"),
    "06_segv": "\ndef test_segv():\n    import ctypes\n    ctypes.string_at(0)\n",
    "08_misc": """
def test_huge_allocation():
    import numpy as np
    np.ones(10**12)

def test_flood_stdout():
    import sys
    for _ in range(2000):
        sys.stdout.write("x" * 10000 + "\\n")

def test_recursion():
    def f(n):
        return f(n + 1)
    f(0)

def test_nan():
    import math
    assert not math.isnan(float("nan")), "NaN everywhere"

def test_student_skips():
    from tinytorch.misc import skip_me
    skip_me()
""",
}

ZOO_COURSE = "course: Zoo\nmodules:\n" + "".join(
    f"  - {{id: {mid}, title: {mid[3:]}, source: tinytorch/{mid[3:]}.py, points: 10, unlocks: null}}\n"
    for mid in ["01_alpha", *HOSTILE, "09_omega"]) + "milestones: []\n"


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    tests = {mid: {f"test_{mid}.py": OK_TESTS + body} for mid, body in HOSTILE.items()}
    tests["01_alpha"] = {"test_01_alpha.py": OK_TESTS}
    tests["09_omega"] = {"test_09_omega.py": OK_TESTS}
    sources = {"misc.py": "def skip_me():\n    import pytest\n    pytest.skip('nothing to see')\n"}
    root = make_fake_repo(tmp_path_factory.mktemp("zoo"), tests=tests, sources=sources, course=ZOO_COURSE)
    result = run_tito(root, "grade", "--skip-milestones", "--test-timeout", "1", "--run-timeout", "60",
                      "--memory-mb", "2048", timeout=400, TITO_HARD_GRACE="1")
    progress = json.loads((root / "badges" / "progress.json").read_text(encoding="utf-8"))
    return {"result": result, "modules": progress["modules"], "progress": progress}


def test_grading_completes_and_good_modules_keep_their_points(zoo):
    assert zoo["result"].returncode == 0, zoo["result"].stdout + zoo["result"].stderr
    for mid in ("01_alpha", "09_omega"):
        assert zoo["modules"][mid]["ok"] and zoo["modules"][mid]["points"] == 10
    assert zoo["progress"]["test_run"] == "per-module runs after a crash"


@pytest.mark.parametrize("mid, reason", [
    ("02_osexit", "exited with status 3 before pytest finished"),
    ("03_sysexit", ""),
])
def test_exit_at_import_zeroes_only_that_module(zoo, mid, reason):
    entry = zoo["modules"][mid]
    assert entry["points"] == 0 and not entry["ok"]
    assert f"test_{mid}.py could not be imported" in entry["reason"] and reason in entry["reason"]


@pytest.mark.parametrize("mid, culprit, reason", [
    ("04_loop", "test_loop", "per-test time limit of 1 s"),
    ("05_stubborn", "test_stubborn", "could not be interrupted"),
    ("06_segv", "test_segv", "segmentation fault"),
])
def test_a_test_that_hangs_or_crashes_fails_alone(zoo, mid, culprit, reason):
    entry = zoo["modules"][mid]
    assert (entry["passed"], entry["total"], entry["points"]) == (2, 3, pytest.approx(6.67))
    assert entry["failing"] == [f"assignments/{mid}/test_{mid}.py::{culprit}"]
    assert reason in entry["reason"] and culprit in entry["reason"]


def test_memory_flood_recursion_nan_and_skip_from_student_code(zoo):
    entry = zoo["modules"]["08_misc"]
    assert (entry["passed"], entry["total"]) == (3, 7)      # the two OK tests + the flood
    failing = {f.rsplit("::", 1)[-1] for f in entry["failing"]}
    assert failing == {"test_huge_allocation", "test_recursion", "test_nan", "test_student_skips"}


@pytest.mark.slow
def test_whole_run_time_limit(tmp_path):
    sleeper = "\ndef test_sleep():\n    import time\n    time.sleep(120)\n"
    root = make_fake_repo(tmp_path, tests={"02_beta": {"test_02_beta.py": OK_TESTS + sleeper}})
    result = run_tito(root, "grade", "--skip-milestones", "--run-timeout", "4")
    assert result.returncode == 0
    mods = json.loads((root / "badges" / "progress.json").read_text())["modules"]
    assert mods["01_alpha"]["points"] == 4 and mods["03_gamma"]["points"] == 10
    assert (mods["02_beta"]["passed"], mods["02_beta"]["total"]) == (2, 3)
    assert "longer than its limit of 4 s" in mods["02_beta"]["reason"]


def test_crash_in_the_middle_of_the_single_run(tmp_path):
    segv = "\ndef test_segv():\n    import ctypes\n    ctypes.string_at(0)\n"
    root = make_fake_repo(tmp_path, tests={"02_beta": {"test_02_beta.py": OK_TESTS + segv}})
    result = run_tito(root, "grade", "--skip-milestones")
    assert result.returncode == 0
    assert "re-running 2 module(s)" in result.stdout      # 01 had finished before the crash: kept
    mods = json.loads((root / "badges" / "progress.json").read_text())["modules"]
    assert mods["01_alpha"]["points"] == 4 and mods["03_gamma"]["points"] == 10
    assert (mods["02_beta"]["passed"], mods["02_beta"]["total"]) == (2, 3)
    assert "segmentation fault" in mods["02_beta"]["reason"]
