"""Where a slow milestone's time went (grading/profiling.py, the `--profile` child of grading/milestone_child.py).

A run over its ceiling (or `tito milestone run N --profile`) gets a `profile`: the per-layer forward/backward
times of the program's `profile_case` measured with module 14's profiler, next to the recorded reference's
scaled to this machine, and the slowest of the student's functions. Stand-in programs (written to temp files)
run through `judge_milestone` in tiny mode, the same code path as `tito milestone run` and `tito grade`.
"""
from __future__ import annotations

import dataclasses
import os
import importlib.util
import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from grading import profiling
from grading.course import REPO_ROOT, load_course
from grading.judge import judge_milestone
from grading.milestones import ensure_importable

ensure_importable()  # `pytest` (importlib mode) does not put the repository root on sys.path
from milestones import profile_reference  # noqa: E402
from milestones.common import MilestoneContext  # noqa: E402

# A stand-in training program: Linear -> Smear -> ReLU -> Linear. With SLOW, Smear builds its factor with a
# Python loop over every element (what the ceiling is there to catch); otherwise with one vectorized fill.
PROGRAM = """
import time
import numpy as np
import tinytorch as tt

SLOW = {slow}
RUN_SECONDS = {run_seconds}


class Smear(tt.nn.Module):
    def forward(self, x):
        factor = np.empty(x.shape, dtype=np.float32)
        if SLOW:
            for i in range(factor.size):
                factor.flat[i] = 0.5
        else:
            factor.fill(0.5)
        return x * tt.Tensor(factor)


def build():
    nn = tt.nn
    return nn.Sequential(nn.Linear(64, 512), Smear(), nn.ReLU(), nn.Linear(512, 10))


def profile_case(ctx):
    {profile_body}
    tt.manual_seed(ctx.seed)
    rng = np.random.default_rng(ctx.seed)
    y = tt.Tensor(rng.integers(0, 10, 128))
    criterion = tt.nn.CrossEntropyLoss()
    return {{"layers": build(), "input": tt.Tensor(rng.standard_normal((128, 64), dtype=np.float32)),
             "loss": lambda logits: criterion(logits, y)}}


def run(ctx):
    build()
    time.sleep(RUN_SECONDS)
    return {{"history": []}}
"""


def program(path: Path, slow: bool = True, run_seconds: float = 0.0, profile_body: str = "pass") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(PROGRAM.format(slow=slow, run_seconds=run_seconds, profile_body=profile_body)),
                    encoding="utf-8")
    return path


def judge(path: Path, tmp_path: Path, root: Path = REPO_ROOT, **options) -> dict:
    """Judge `path` as milestone 3's program (tiny data) with a 0.01 s ceiling; returns the result."""
    course = load_course()
    ms = dataclasses.replace(course.milestone(3), program=str(path), budget_seconds=0.01)
    options.setdefault("timeout", 120)
    return judge_milestone(ms, course, root, None, tmp_path / "run", tiny=True, out=lambda line: None, **options)


def test_a_run_over_its_ceiling_names_the_slow_layer_and_function_against_the_reference(tmp_path):
    reference = program(tmp_path / "reference" / "program.py", slow=False)
    student = program(tmp_path / "student" / "program.py", slow=True)
    profile_reference.record(3, tiny=True, out_dir=tmp_path / "student" / "reference_profiles", program=reference)
    result = judge(student, tmp_path)
    assert result["within_budget"] is False
    profile = result["profile"]
    assert profile["error"] is None and profile["trigger"] == "over the ceiling"
    assert profile["scale"] > 0 and "scaled by this machine's speed" in profile["reference"]
    smear = next(row for row in profile["layers"] if row["kind"] == "Smear")
    assert smear["ratio"] > 5, smear          # the loop against the vectorized fill of the same layer
    assert profile["slowest_layer"]["kind"] == "Smear"
    slowest = profile["slowest_function"]
    assert "Smear.forward" in slowest["function"] and "program.py" in slowest["function"]
    assert slowest["share"] > 0.5 and slowest["ratio"] > 5
    lines = profiling.profile_lines(profile)
    assert any(line.strip().startswith("slowest:") and "Smear.forward" in line and "x the reference" in line
               for line in lines)
    assert sum("Smear" in line for line in lines) >= 2           # in the table and in the slowest line


def test_a_run_stopped_at_the_timeout_gets_the_profile_instead_of_advice(tmp_path):
    student = program(tmp_path / "student" / "program.py", slow=True, run_seconds=60)
    result = judge(student, tmp_path, timeout=3)
    assert result["error"].startswith("stopped after 3 s")
    assert "where the time went" in result["error"] and "Smear.forward" in result["error"]
    assert result["profile"]["slowest_function"]["share"] > 0.5
    assert "no recorded reference profile" in " ".join(result["profile"]["notes"])


def test_without_module_14_the_profile_says_so_and_times_what_it_can(tmp_path):
    """A student template with modules 1-13 solved and module 14 a stub (NotImplementedError)."""
    from grading.instructor.release import build_release

    root = tmp_path / "repo"
    build_release(root, REPO_ROOT, solutions_through=13)
    result = judge_milestone(load_course().milestone(3), load_course(), root, None, tmp_path / "run", tiny=True,
                             out=lambda line: None, timeout=120, profile=True)
    assert result["passed"], result["error"]
    profile = result["profile"]
    assert profile["error"] is None
    assert any("need module 14" in note for note in profile["notes"])
    assert any("the whole backward took" in note for note in profile["notes"])
    convs = [row for row in profile["layers"] if row["kind"] == "Conv2d"]
    assert len(convs) == 3 and all(row["forward_ms"] > 0 and row["backward_ms"] is None for row in convs)
    assert profile["slowest_function"]["what"].startswith("the forward of")


@pytest.mark.parametrize("profile_body, reason", [
    ("import os; os._exit(3)", "the profile process"),
    ("time.sleep(60)", "stopped after 3 s"),
    ("raise ValueError('broken on purpose')", "ValueError: broken on purpose"),
])
def test_a_crashing_or_hanging_profile_child_leaves_a_complete_result_with_the_reason(profile_body, reason,
                                                                                      tmp_path):
    student = program(tmp_path / "student" / "program.py", profile_body=profile_body)
    result = judge(student, tmp_path, profile_timeout=3)
    assert result["within_budget"] is False and result["error"] is None
    assert set(result) >= {"metrics", "failed_conditions", "shortfalls", "passed", "history", "finished_at"}
    assert reason in result["profile"]["error"]
    assert result["profile"]["layers"] == [] and result["profile"]["slowest_function"] is None
    assert any("no profile:" in line for line in profiling.profile_lines(result["profile"]))


def test_profile_on_demand_for_milestone_3_tiny(tmp_path):
    course = load_course()
    result = judge_milestone(course.milestone(3), course, REPO_ROOT, None, tmp_path / "run", tiny=True,
                             out=lambda line: None, timeout=120, profile=True)
    assert result["passed"] and result["within_budget"]
    profile = result["profile"]
    assert profile["error"] is None and profile["trigger"] == "requested"
    assert [row["kind"] for row in profile["layers"]][:4] == ["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d"]
    assert profile["layers"][-1]["name"] == "loss"
    assert all(row["forward_ms"] is not None and row["backward_ms"] is not None for row in profile["layers"])
    assert "tinytorch/" in profile["slowest_function"]["function"]
    assert profile["input_shape"] == [128, 3, 32, 32]


def test_the_cli_flag_asks_for_a_profile():
    import argparse

    from grading import milestones

    parser = argparse.ArgumentParser()
    milestones.register(parser.add_subparsers())
    assert parser.parse_args(["milestone", "run", "3", "--profile"]).profile is True
    assert parser.parse_args(["milestone", "run", "3"]).profile is False


# ---- the recorded references ---------------------------------------------------------------------------------
def _load(number: int):
    path = REPO_ROOT / load_course().milestone(number).program
    spec = importlib.util.spec_from_file_location(f"profile_test_m{number}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _case_rows(number: int, tiny: bool) -> tuple[list, list]:
    """[(name, kind)] of the program's profile_case as the profiler names them, and the input shape."""
    case = _load(number).profile_case(MilestoneContext(number, tiny=tiny, stream=sys.stderr))
    rows = [(str(i), type(layer).__name__) for i, layer in enumerate(case["layers"])]
    return rows + ([("loss", "loss")] if case["loss"] is not None else []), list(case["input"].shape)


@pytest.mark.parametrize("number", [1, 2, 3, 4, 5])
def test_the_recorded_reference_profiles_match_the_programs(number):
    path = profiling.reference_path(REPO_ROOT / load_course().milestone(number).program, number, tiny=False)
    recorded, why = profiling.load_reference(path)
    assert recorded is not None, why
    rows, shape = _case_rows(number, tiny=False)
    assert [(r["name"], r["kind"]) for r in recorded["layers"]] == rows, \
        f"{path.name} is stale: rerun `python milestones/profile_reference.py --only m{number}`"
    assert recorded["input_shape"] == shape and recorded["tiny"] is False
    assert set(recorded) == {"milestone", "machine", "recorded", "tiny", "baseline_seconds", "input_shape", "note",
                             "layers", "ops", "step"}      # numbers and names only, never code
    assert all(isinstance(v, (int, float)) and v >= 0 for r in recorded["layers"] for v in (r["forward"],
                                                                                           r["backward"] or 0))


def test_a_reference_profile_regenerates_in_tiny_form(tmp_path):
    assert profile_reference.main(["--only", "m3", "--tiny", "--out", str(tmp_path)]) == 0
    recorded = json.loads((tmp_path / "m3.tiny.json").read_text(encoding="utf-8"))
    rows, shape = _case_rows(3, tiny=True)
    assert [(r["name"], r["kind"]) for r in recorded["layers"]] == rows and recorded["input_shape"] == shape
    assert recorded["tiny"] is True and recorded["baseline_seconds"] > 0
    assert all(r["forward"] > 0 and r["backward"] > 0 for r in recorded["layers"] if r["kind"] == "Conv2d")
    assert recorded["ops"]["conv2d"] > 0 and recorded["step"] > 0


# ---- the comparison, with made-up numbers ---------------------------------------------------------------------
def test_reference_times_are_scaled_by_the_machine_baseline():
    reference = {"machine": "m", "recorded": "d", "baseline_seconds": 0.01, "step": 10.0,
                 "layers": [{"name": "0", "kind": "Conv2d", "forward": 2.0, "backward": 3.0}],
                 "ops": {"conv2d": 3.0}}
    measured = {"baseline_seconds": 0.02, "step_seconds": 0.5, "notes": [],
                "layers": [{"name": "0", "kind": "Conv2d", "output_shape": [1, 2], "forward_s": 0.08,
                            "backward_s": 0.3, "function": "`Conv2d.forward` in tinytorch/spatial.py"}],
                "ops": [{"op": "conv2d", "backward_s": 0.3, "count": 1, "rule": "`_conv2d` in tinytorch/autograd.py"}]}
    profile = profiling.compare(measured, reference, None)
    assert profile["scale"] == 2.0 and "(x2.00)" in profile["reference"]
    row = profile["layers"][0]
    assert row["reference_forward_ms"] == pytest.approx(40.0) and row["reference_backward_ms"] == pytest.approx(60.0)
    assert row["ratio"] == pytest.approx(380 / 100)
    slowest = profile["slowest_function"]
    assert slowest["what"] == "the backward rule of conv2d" and slowest["ratio"] == pytest.approx(5.0)
    assert slowest["share"] == pytest.approx(0.6)
    assert "_conv2d" in slowest["text"] and "60% of the step" in slowest["text"] and "5.0x the reference" in slowest["text"]


def test_malformed_numbers_from_the_child_are_dropped_not_trusted():
    measured = {"baseline_seconds": float("nan"), "step_seconds": -1, "notes": ["ok", 3],
                "layers": [{"name": "0", "kind": "X", "forward_s": "fast", "backward_s": None}, "junk"],
                "ops": [{"op": "x", "backward_s": float("inf")}]}
    profile = profiling.compare(measured, {"baseline_seconds": 0.01, "layers": []}, None)
    assert profile["scale"] is None and profile["step_ms"] is None and profile["notes"] == ["ok"]
    assert profile["layers"][0]["forward_ms"] is None and profile["slowest_function"] is None


def test_the_machine_baseline_is_a_short_positive_time():
    times = [profiling.machine_baseline(repeats=3) for _ in range(2)]
    assert all(0 < t < 2.0 for t in times)
    assert np.isfinite(times).all()


def test_the_profile_child_runs_in_the_regrade_sandbox(tmp_path):
    """The instructor's regrade passes a sandbox as `isolation`: the profile child runs inside it too."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from tito_fixtures import sandbox_or_skip

    sandbox = sandbox_or_skip()
    course = load_course()
    result = judge_milestone(course.milestone(3), course, REPO_ROOT, None, tmp_path / "run", tiny=True,
                             isolation=sandbox, out=lambda line: None, timeout=120, profile=True)
    assert result["passed"] and result["verified"] is True, result["error"]
    assert result["profile"]["error"] is None and result["profile"]["slowest_function"] is not None


@pytest.mark.skipif(not os.environ.get("TINYTORCH_DATA"), reason="tito grade runs milestones on real data (TINYTORCH_DATA)")
def test_tito_grade_prints_where_the_time_went(tmp_path):
    """`tito grade`'s milestone step (grading/grade.py run_milestone) on a finished course, with milestone 1's
    program replaced by the slow stand-in and a 0.01 s ceiling: the console shows the table and the line."""
    import io

    from grading.console import Console
    from grading.grade import GradeOptions, run_milestone
    from grading.instructor.release import build_release

    root = tmp_path / "repo"
    build_release(root, REPO_ROOT, solutions_through=max(m.number for m in load_course().modules))
    student = program(root / "student" / "program.py", slow=True)     # inside the repository: it is fingerprinted
    ms = dataclasses.replace(load_course().milestone(1), program=str(student), budget_seconds=0.01)
    stream = io.StringIO()
    entry = run_milestone(root, ms, tmp_path / "work", GradeOptions(), Console(stream, color=False), None, {})
    printed = stream.getvalue()
    assert "where the time went" in printed and "Smear" in printed, (entry, printed[-2000:])
    assert any(line.strip().startswith("slowest:") and "Smear.forward" in line for line in printed.splitlines())


def test_the_gpt_chain_computes_what_the_gpt_computes():
    """Milestone 5 profiles its GPT as a chain of layers (gpt_chain): the chain must be the model's forward."""
    import tinytorch as tt

    m5 = _load(5)
    tt.manual_seed(0)
    model = m5.build_gpt(m5.SHAKESPEARE_VOCABULARY, m5.TINY_MODEL)
    model.eval()
    ids = np.random.default_rng(0).integers(0, m5.SHAKESPEARE_VOCABULARY, (3, m5.TINY_MODEL["context_length"]))
    out = tt.Tensor(ids)
    with tt.no_grad():
        for layer in m5.gpt_chain(model):
            out = layer(out)
        np.testing.assert_array_equal(out.data, model(ids).data)


def test_a_step_too_slow_for_several_repeats_is_timed_once():
    """measure_case with a clock on which every reading is 10 s later: the warm-up step "takes" 10 s, more
    than SLOW_STEP_SECONDS, so one timed step is kept (and said), not the median of three."""
    from grading import milestone_child

    readings = iter(range(0, 10**6, 10))
    case = _load(3).profile_case(MilestoneContext(3, tiny=True, stream=sys.stderr))
    measured = milestone_child.measure_case(case, clock=lambda: float(next(readings)))
    assert any("one step was timed" in note for note in measured["notes"])
    assert measured["baseline_seconds"] == 10.0 and measured["layers"][0]["forward_s"] == 10.0


def test_a_slow_gradient_rule_of_a_student_is_named_against_the_shipped_reference(tmp_path):
    """A finished course whose conv2d backward rule also runs a Python loop over every element of its
    gradient: the profile of milestone 3's real-size step (judge.run_profile, scaled shipped reference) names
    that rule, its file and its forward, with a ratio to the reference."""
    from grading.instructor.release import build_release
    from grading.isolation import NoIsolation
    from grading.judge import run_profile
    from grading.testrun import Limits

    root = tmp_path / "repo"
    build_release(root, REPO_ROOT, solutions_through=max(m.number for m in load_course().modules))
    autograd = root / "tinytorch" / "autograd.py"
    rule = "    g_rows = nhwc_rows(g)                                                 # (N*Ho*Wo, C_out)\n"
    source = autograd.read_text(encoding="utf-8")
    assert source.count(rule) == 1
    autograd.write_text(source.replace(rule, rule + "    total = 0.0\n    for value in g_rows.ravel():\n"
                                       "        total += float(value)\n"), encoding="utf-8")
    work = tmp_path / "work"
    for name in ("scratch", "files", "data"):
        (work / name).mkdir(parents=True)
    profile = run_profile(load_course().milestone(3), root, work, NoIsolation(), env_scratch=work / "scratch",
                          seed=0, tiny=False, limits=Limits(memory_mb=8192, output_mb=512), timeout=90,
                          data=work / "data", files=work / "files")
    assert profile["error"] is None and profile["scale"] > 0
    slowest = profile["slowest_function"]
    assert slowest["what"] == "the backward rule of conv2d", slowest
    assert "`_conv2d` in tinytorch/autograd.py" in slowest["function"] and "tinytorch/spatial.py" in slowest["function"]
    assert slowest["ratio"] > 3 and slowest["share"] > 0.4
    first_conv = profile["layers"][0]
    assert first_conv["kind"] == "Conv2d" and first_conv["ratio"] > 3
