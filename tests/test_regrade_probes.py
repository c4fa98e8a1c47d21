"""The regrade's module probes (grading/instructor/probes/) do what the regrade's scoring relies on.

Each tree below (the reference framework, real `tito release` outputs, a copy of the reference with one
plausible bug) runs every probe of every module in ONE subprocess whose `tinytorch` is that tree's (checked),
with a given seed; outputs are saved with np.savez and compared here with `outputs_match`, the judge's function:
- the reference reproduces itself (same seed, identical outputs) and draws fresh inputs (another seed, other
  outputs), and every probe runs quickly;
- the stubbed release matches no probe (every probe raises), so the untouched template scores 0;
- with the solutions of modules 1..K (K = 4 and 9) exactly the probes of modules <= K match the reference;
- a copy of the reference with a subtly wrong matmul, relu or division gradient mismatches exactly the
  probes that exercise them in those modules.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from grading.course import load_course
from grading.instructor.probes import mismatch, outputs_match, probe_modules
from grading.instructor.release import build_release

REPO = Path(__file__).resolve().parent.parent
PROBES_DIR = REPO / "grading" / "instructor" / "probes"
COURSE = load_course(REPO / "assignments" / "course.yaml")
SEED, OTHER_SEED = 20261205, 7

# Loads the probe package from PROBES_DIR by path (a release has no grading/instructor/), the tree's
# tinytorch first on sys.path, and runs every probe; a probe that raises is recorded, never fatal.
RUNNER = r'''
import importlib.util, json, sys, time
from pathlib import Path
tree, probes_dir, seed, out = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
sys.path.insert(0, tree)
import numpy as np
import tinytorch as tt
if not Path(tt.__file__).resolve().is_relative_to(Path(tree).resolve()):
    sys.exit(f"imported the wrong tinytorch: {tt.__file__}")
spec = importlib.util.spec_from_file_location("probes", probes_dir / "__init__.py",
                                              submodule_search_locations=[str(probes_dir)])
probes = importlib.util.module_from_spec(spec)
sys.modules["probes"] = probes
spec.loader.exec_module(probes)
arrays, status = {}, {}
for mod in probes.probe_modules():
    for probe in mod.PROBES:
        key = f"{mod.MODULE}/{probe.__name__}"
        start = time.process_time()
        try:
            result = probe(tt, probes.probe_rng(seed, mod.MODULE, probe.__name__))
        except Exception as exc:
            status[key] = {"ok": False, "error": f"{type(exc).__name__}: {str(exc)[:300]}"}
            continue
        status[key] = {"ok": True, "cpu": time.process_time() - start, "names": sorted(result)}
        for name, value in result.items():
            arrays[f"{key}/{name}"] = np.asarray(value)
np.savez(out, **arrays)
out.with_suffix(".json").write_text(json.dumps(status))
'''


def run_probes(tree: Path, seed: int, work: Path) -> dict[str, dict | None]:
    """{"02_tensor/probe_matmul": {output name: array} or None if the probe raised} for `tree`'s tinytorch."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "runner.py").write_text(RUNNER)
    out = work / f"outputs_{seed}.npz"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSTARTUP")}
    res = subprocess.run([sys.executable, str(work / "runner.py"), str(tree), str(PROBES_DIR), str(seed), str(out)],
                         cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, f"the probe runner failed on {tree}:\n{res.stdout[-2000:]}\n{res.stderr[-3000:]}"
    status = json.loads(out.with_suffix(".json").read_text())
    results: dict[str, dict | None] = {}
    with np.load(out, allow_pickle=False) as saved:
        for key, st in status.items():
            results[key] = {name: saved[f"{key}/{name}"] for name in st["names"]} if st["ok"] else None
    results["_status"] = status  # type: ignore[assignment]
    return results


def matched(got: dict, reference: dict) -> dict[str, bool]:
    """Probe key -> whether `got` ran it and matched the reference."""
    return {key: got[key] is not None and outputs_match(got[key], ref)
            for key, ref in reference.items() if key != "_status"}


def module_of(key: str) -> int:
    return int(key[:2])


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    base = tmp_path_factory.mktemp("probe_trees")
    build_release(base / "stubbed", REPO, solutions_through=None, force=True)
    for k in (4, 9):
        build_release(base / f"through{k}", REPO, solutions_through=k, force=True)
    buggy = base / "buggy"
    shutil.copytree(REPO / "tinytorch", buggy / "tinytorch", ignore=shutil.ignore_patterns("__pycache__"))
    for rel, old, new in BUGS:
        path = buggy / "tinytorch" / rel
        text = path.read_text()
        assert text.count(old) == 1, f"the planted bug no longer applies: {old!r} is not in {rel} exactly once"
        path.write_text(text.replace(old, new))
    return base


# Plausible mistakes, one line each: (file, correct line, wrong line), and the probes that must catch them.
BUGS = (
    ("tensor.py", "data = np.matmul(a, b)", "data = np.matmul(a.astype(np.float16), b.astype(np.float16))"),
    ("activations.py", "return Tensor._make(np.maximum(x.data, 0), \"relu\", (x,))",
     "return Tensor._make(np.clip(x.data, 0, 6), \"relu\", (x,))"),
    ("autograd.py", "gb = unbroadcast(-g * a.data / (b.data * b.data), b.shape)",
     "gb = unbroadcast(-g * a.data / b.data, b.shape)"),
)
CAUGHT_BY = {"02_tensor": {"probe_matmul"}, "03_activations": {"probe_relu_and_leaky_relu"},
             "09_autograd": {"probe_elementwise_rules_and_unbroadcast"}}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return run_probes(REPO, SEED, tmp_path_factory.mktemp("reference"))


def test_every_module_has_probes_of_student_code():
    mods = probe_modules()
    assert [m.MODULE for m in mods] == [m.id for m in COURSE.modules], "one probe file per course module, in order"
    for m in mods:
        assert m.PROBES, f"{m.MODULE} has no probes"
        assert all(p.__name__.startswith("probe_") for p in m.PROBES), m.__name__
        assert len({p.__name__ for p in m.PROBES}) == len(m.PROBES), f"{m.MODULE}: two probes share a name"
        assert m.__doc__ and m.__doc__.startswith(f"Probes of module {m.MODULE[:2]}"), m.__name__


def test_reference_reproduces_itself_and_draws_fresh_inputs(reference, tmp_path):
    again = run_probes(REPO, SEED, tmp_path / "again")
    other = run_probes(REPO, OTHER_SEED, tmp_path / "other")
    failed = {k: st["error"] for k, st in reference["_status"].items() if not st["ok"]}
    assert not failed, f"probes that raise on the reference: {failed}"
    for key, ref in reference.items():
        if key == "_status":
            continue
        assert set(again[key]) == set(ref)
        for name, value in ref.items():
            assert value.dtype.kind in "iuf", f"{key}/{name}: dtype {value.dtype} (numbers only)"
            assert np.array_equal(again[key][name], value, equal_nan=value.dtype.kind == "f"), (
                f"{key}/{name} differs between two runs with the same seed: the probe is not deterministic")
        assert not outputs_match(other[key], ref), f"{key} gives the same outputs for another seed: inputs not fresh"
    slow = {k: round(st["cpu"], 3) for k, st in reference["_status"].items() if st["cpu"] > 0.5}
    assert not slow, f"probes taking more than 0.5 s of CPU on the reference: {slow}"
    total = sum(st["cpu"] for st in reference["_status"].values())
    assert total < 10, f"all probes together take {total:.1f} s of CPU on the reference"


def test_the_stubbed_release_matches_no_probe(trees, reference, tmp_path):
    got = run_probes(trees / "stubbed", SEED, tmp_path)
    ran = sorted(k for k, st in got["_status"].items() if st["ok"])
    assert ran == [], f"probes that run on the untouched template (free points): {ran}"
    not_stub = {k: st["error"] for k, st in got["_status"].items() if "NotImplementedError" not in st["error"]}
    assert not not_stub, f"probes failing on the template for another reason than a stub: {not_stub}"


@pytest.mark.parametrize("through", [4, 9])
def test_solutions_through_k_match_exactly_the_modules_up_to_k(trees, reference, tmp_path, through):
    got = run_probes(trees / f"through{through}", SEED, tmp_path)
    result = matched(got, reference)
    wrong = {key: (mismatch(got[key], reference[key]) if got[key] is not None else got["_status"][key]["error"])
             for key, ok in result.items() if ok != (module_of(key) <= through)}
    assert not wrong, (f"with solutions through {through:02d}, these probes should "
                       f"{'match' if through else 'fail'} for modules <= {through:02d} and fail after: {wrong}")


def test_a_plausible_bug_is_caught_by_the_probes_that_exercise_it(trees, reference):
    got = run_probes(trees / "buggy", SEED, trees / "buggy_run")
    result = matched(got, reference)
    for module_id, expected in CAUGHT_BY.items():
        missed = {p for p in expected if result[f"{module_id}/{p}"]}
        assert not missed, f"{module_id}: the planted bug is not caught by {missed}"
    module02 = {key.split("/")[1] for key, ok in result.items() if key.startswith("02_") and not ok}
    assert module02 == CAUGHT_BY["02_tensor"], f"module 02 probes that mismatch: {module02} (only matmul is wrong)"
    module03 = {key.split("/")[1] for key, ok in result.items() if key.startswith("03_") and not ok}
    assert module03 == CAUGHT_BY["03_activations"], f"module 03 probes that mismatch: {module03} (only relu is wrong)"


def test_outputs_match_tolerances():
    rng = np.random.default_rng(0)
    ref = {"x": rng.normal(size=(4, 5)).astype(np.float32) * 100, "n": np.arange(5)}
    assert outputs_match({"x": ref["x"] * np.float32(1 + 2e-5), "n": ref["n"].copy()}, ref)
    assert outputs_match({"x": ref["x"].astype(np.float64), "n": ref["n"].astype(np.int32)}, ref)
    near_zero = ref["x"].copy()
    near_zero[0, 0] = 0.0
    assert outputs_match({"x": near_zero + np.float32(5e-4), "n": ref["n"]}, {"x": near_zero, "n": ref["n"]}), \
        "the absolute tolerance scales with the largest expected value"
    assert not outputs_match({"x": ref["x"] * np.float32(1 + 5e-4), "n": ref["n"]}, ref)
    assert "integers differ" in mismatch({"x": ref["x"], "n": ref["n"] + 1}, ref)
    assert "shape" in mismatch({"x": ref["x"].T, "n": ref["n"]}, ref)
    assert "names" in mismatch({"x": ref["x"]}, ref)
    assert "floating" in mismatch({"x": ref["x"].astype(np.int64), "n": ref["n"]}, ref)
    assert "NaN" in mismatch({"x": np.full_like(ref["x"], np.nan), "n": ref["n"]}, ref)
    assert "dtype" in mismatch({"x": ref["x"].astype(bool), "n": ref["n"]}, ref)
    assert outputs_match({"v": np.array([np.inf, np.nan, 1.0])}, {"v": np.array([np.inf, np.nan, 1.0])})
    assert not outputs_match({"v": np.array([-np.inf, 1.0])}, {"v": np.array([np.inf, 1.0])})
