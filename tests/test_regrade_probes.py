"""The regrade's module probes (grading/instructor/probes/) do what the regrade's scoring relies on.

Trees (the reference framework, real `tito release` outputs, releases with some module sources stubbed, a
copy of the reference with plausible bugs) run every probe of every module with a given seed in a subprocess
that imports each tree's own `tinytorch` in turn (checked); outputs are saved with np.savez and compared here
with `outputs_match`, the judge's function:
- the reference reproduces itself in another process (same seed, identical outputs) and draws fresh inputs
  (another seed, other outputs), and all probes together run in a few seconds;
- the stubbed release matches no probe (every probe raises NotImplementedError): the template scores 0;
- with the solutions of modules 1..K (real releases for K = 4 and 9, and every K from 0 to 16 composed
  from the stubbed and solved releases' module files) exactly the probes of modules <= K match;
- with every module solved but one, no probe of that module matches and every earlier module's does (so
  each probe needs its own module's work, and an unfinished module costs no earlier module anything);
- a copy of the reference with a plausible one-line bug in every module (a float16 matmul, a clipped relu,
  a missing bias correction, ...) fails the probes that exercise each bug;
- a copy of the reference with honest alternatives (other random draws for init, dropout, shuffling, crops,
  flips, sampling and windows; other correct formulas) matches every probe on several seeds: no false
  mismatches.
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
LAST = max(m.number for m in COURSE.modules)
SEED, OTHER_SEED = 20261205, 7
MORE_SEEDS = (1, 2, 3, 4, 5, 6)

# Loads the probe package from PROBES_DIR by path (a release has no grading/instructor/); for each tree,
# forgets any tinytorch imported before, puts the tree first on sys.path, imports its tinytorch and runs every
# probe; a probe that raises is recorded, never fatal.
RUNNER = r'''
import importlib, importlib.util, json, sys, time
from pathlib import Path
import numpy as np
probes_dir, out_dir, runs = Path(sys.argv[1]), Path(sys.argv[2]), [arg.split("@", 1) for arg in sys.argv[3:]]
spec = importlib.util.spec_from_file_location("probes", probes_dir / "__init__.py",
                                              submodule_search_locations=[str(probes_dir)])
probes = importlib.util.module_from_spec(spec)
sys.modules["probes"] = probes
spec.loader.exec_module(probes)
modules = probes.probe_modules()
for index, (seed, tree) in enumerate(runs):
    seed = int(seed)
    for name in [n for n in sys.modules if n == "tinytorch" or n.startswith("tinytorch.")]:
        del sys.modules[name]
    sys.path.insert(0, tree)
    importlib.invalidate_caches()
    tt = importlib.import_module("tinytorch")
    if not Path(tt.__file__).resolve().is_relative_to(Path(tree).resolve()):
        sys.exit(f"imported the wrong tinytorch for {tree}: {tt.__file__}")
    arrays, status = {}, {}
    for mod in modules:
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
    np.savez(out_dir / f"outputs_{index}.npz", **arrays)
    (out_dir / f"outputs_{index}.json").write_text(json.dumps(status))
    sys.path.remove(tree)
'''


def run_probes(runs: list[tuple[Path, int]], work: Path) -> list[dict]:
    """Per (tree, seed): {"02_tensor/probe_matmul": {output name: array} or None if it raised, "_status": ...}."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "runner.py").write_text(RUNNER)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSTARTUP")}
    res = subprocess.run([sys.executable, str(work / "runner.py"), str(PROBES_DIR), str(work),
                          *(f"{seed}@{tree}" for tree, seed in runs)],
                         cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, f"the probe runner failed:\n{res.stdout[-2000:]}\n{res.stderr[-3000:]}"
    results_per_run = []
    for index in range(len(runs)):
        status = json.loads((work / f"outputs_{index}.json").read_text())
        results: dict = {"_status": status}
        with np.load(work / f"outputs_{index}.npz", allow_pickle=False) as saved:
            for key, st in status.items():
                results[key] = {name: saved[f"{key}/{name}"] for name in st["names"]} if st["ok"] else None
        results_per_run.append(results)
    return results_per_run


def matched(got: dict, reference: dict) -> dict[str, bool]:
    """Probe key -> whether `got` ran it and matched the reference."""
    return {key: got[key] is not None and outputs_match(got[key], ref)
            for key, ref in reference.items() if key != "_status"}


def module_of(key: str) -> int:
    return int(key[:2])


def why(got: dict, reference: dict, key: str) -> str:
    return got["_status"][key]["error"] if got[key] is None else str(mismatch(got[key], reference[key]))


# Plausible mistakes, one line each and one or two per module: (file, correct line, wrong line), and the probes
# that must catch them. They are planted together in one copy, so a later module's probes may fail for an
# earlier module's bug; each module's listed probes must fail, and in 02 and 03 only those.
BUGS = (
    ("setup_check.py", "{0,38}", "{0,39}"),                                   # 40-character handles accepted
    ("tensor.py", 'data = numpy_call("matmul", np.matmul, a, b,',
     'data = numpy_call("matmul", lambda a, b: np.matmul(a.astype(np.float16), b.astype(np.float16)), a, b,'),
    ("activations.py", "return Tensor._make(np.maximum(x.data, 0), \"relu\", (x,))",
     "return Tensor._make(np.clip(x.data, 0, 6), \"relu\", (x,))"),
    ("layers.py", "if isinstance(value, Parameter) and id(value) not in seen:",
     "if isinstance(value, Parameter):"),                                     # tied weights listed twice
    ("networks.py", "loss = nll * (1.0 - label_smoothing) + (-logp.mean(axis=-1)) * label_smoothing",
     "loss = nll * (1.0 - label_smoothing) + (-logp.sum(axis=-1)) * label_smoothing"),
    ("spatial.py", 'var = np.einsum("ij,ij->j", xhat, xhat) / dt(M)',
     'var = np.einsum("ij,ij->j", xhat, xhat) / dt(M - 1)'),                # normalised by the unbiased variance
    ("attention.py", "scale = 1.0 / math.sqrt(q.shape[-1])", "scale = 1.0 / q.shape[-1]"),
    ("data.py", "out /= np.float32(255.0)", "out /= np.float32(256.0)"),
    ("autograd.py", "gb = unbroadcast(-g * a.data / (b.data * b.data), b.shape)",
     "gb = unbroadcast(-g * a.data / b.data, b.shape)"),
    ("optim.py", "bias2 = 1 - beta2 ** t", "bias2 = 1.0"),                    # no second-moment bias correction
    ("training.py", "total_loss += float(loss_fn(logits, targets).item()) * n",
     "total_loss += float(loss_fn(logits, targets).item())"),                 # batches not weighted by size
    ("compression.py", "max_abs / WEIGHT_QMAX", "max_abs / 128"),
    ("kernels.py", "grad -= logp.dtype.type(e / C)", "grad -= 0"),           # smoothing left out of the gradient
    ("benchmarking.py", "pos = q * (len(s) - 1)", "pos = q * (len(s) - 1) * 0.99"),
    ("deployment.py", "    if verify:\n        actual = content_hash", "    if False:\n        actual = content_hash"),
    ("tinygpt.py", "kth = np.partition(z, -top_k, axis=-1)[:, -top_k][:, None]",
     "kth = np.partition(z, -top_k, axis=-1)[:, -top_k + 1][:, None]"),     # keeps only k - 1 tokens
)
CAUGHT_BY = {"01_setup": {"probe_github_handles"}, "02_tensor": {"probe_matmul"},
             "03_activations": {"probe_relu_and_leaky_relu"}, "04_layers": {"probe_module_tree"},
             "05_networks": {"probe_cross_entropy"}, "06_spatial": {"probe_batch_norm"},
             "07_attention": {"probe_scaled_dot_product_attention"},
             "08_dataloader": {"probe_transforms"}, "09_autograd": {"probe_elementwise_rules_and_unbroadcast"},
             "10_optimizers": {"probe_adam_and_adamw"}, "11_training": {"probe_evaluate"},
             "12_compression": {"probe_quantization_primitives"}, "13_kernels": {"probe_fused_softmax_cross_entropy"},
             "14_benchmarking": {"probe_statistics"}, "15_deployment": {"probe_artifact_round_trip"},
             "16_tinygpt": {"probe_sample_next_top_k"}}

# Honest alternatives: other random draws and other (equally right) formulas, as students write them. Every
# probe must still match the reference: probes compare what any correct implementation computes.
HONEST_VARIANTS = (
    ("layers.py", "rng.uniform(-bound, bound, (self.out_features, self.in_features))",
     "((rng.random((self.out_features, self.in_features)) * 2 - 1) * bound)"),
    ("layers.py", "bound = 1.0 / math.sqrt(self.in_features)",
     "bound = 1.0 / math.sqrt(self.in_features)\n        get_rng().random(3)   # another draw first"),
    ("layers.py", "keep = get_rng().random(x.shape, dtype=np.float32) >= p",
     "keep = get_rng().random(x.shape) < 1.0 - p"),
    ("data.py", "        return rng.permutation(n)", "        return np.argsort(rng.random(n), kind=\"stable\")"),
    ("data.py", "flip = get_rng().random(len(x)) < self.p", "flip = get_rng().random(len(x)) >= 1.0 - self.p"),
    ("data.py", "top = rng.integers(0, height - h + 1, size=n)",
     "top = (height - h) - rng.integers(0, height - h + 1, size=n)"),
    ("networks.py", "var = (centred * centred).mean(axis=-1, keepdims=True)", "var = d.var(axis=-1, keepdims=True)"),
    ("networks.py", "bound = _gain(nonlinearity, a) * math.sqrt(3.0 / fan)",
     "bound = _gain(nonlinearity, a) * math.sqrt(3.0 / fan)\n        get_rng().random(7)   # another draw first"),
    ("compression.py", "k = int(amount * values.size)", "k = round(amount * values.size)"),
    ("tinygpt.py", "u = rng.random((p.shape[0], 1))", "u = 1.0 - rng.random((p.shape[0], 1))"),
    ("tinygpt.py", "starts = rng.integers(0, len(ids) - T, size=batch_size)",
     "starts = np.array([int(rng.integers(0, len(ids) - T)) for _ in range(batch_size)], dtype=np.int64)"),
)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return run_probes([(REPO, SEED)], tmp_path_factory.mktemp("reference"))[0]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """{tree name: results of SEED on it}, and {(tree, seed): results} for the honest tree and the reference
    with MORE_SEEDS, all from one subprocess."""
    base = tmp_path_factory.mktemp("probe_trees")
    build_release(base / "stubbed", REPO, solutions_through=None, force=True)
    build_release(base / "solved", REPO, solutions_through=LAST, force=True)
    trees = {"stubbed": base / "stubbed"}
    for k in (4, 9):
        build_release(base / f"release{k}", REPO, solutions_through=k, force=True)
        trees[f"release{k}"] = base / f"release{k}"

    def compose(name: str, solved_modules) -> None:
        shutil.copytree(base / "stubbed" / "tinytorch", base / name / "tinytorch")
        for m in COURSE.modules:
            if m.number in solved_modules:
                shutil.copyfile(base / "solved" / m.source, base / name / m.source)
        trees[name] = base / name

    for k in range(0, LAST + 1):
        compose(f"through{k}", range(1, k + 1))
    for m in COURSE.modules:
        compose(f"all_but{m.number}", [n.number for n in COURSE.modules if n.number != m.number])
    def edited_reference(name: str, edits) -> None:
        shutil.copytree(REPO / "tinytorch", base / name / "tinytorch", ignore=shutil.ignore_patterns("__pycache__"))
        for rel, old, new in edits:
            path = base / name / "tinytorch" / rel
            text = path.read_text()
            assert text.count(old) == 1, f"{name}: the edit no longer applies: {old!r} is not in {rel} exactly once"
            path.write_text(text.replace(old, new))
        trees[name] = base / name

    edited_reference("buggy", BUGS)
    edited_reference("honest", HONEST_VARIANTS)
    runs = [(tree, SEED) for tree in trees.values()]
    runs += [(tree, seed) for seed in MORE_SEEDS for tree in (REPO, base / "honest")]
    results = run_probes(runs, base / "runs")
    out = dict(zip(trees, results))
    out.update({(("reference" if tree == REPO else "honest"), seed): r
                for (tree, seed), r in zip(runs[len(trees):], results[len(trees):])})
    return out


def test_every_module_has_probes_of_student_code():
    mods = probe_modules()
    assert [m.MODULE for m in mods] == [m.id for m in COURSE.modules], "one probe file per course module, in order"
    for m in mods:
        assert m.PROBES, f"{m.MODULE} has no probes"
        assert all(p.__name__.startswith("probe_") for p in m.PROBES), m.__name__
        assert len({p.__name__ for p in m.PROBES}) == len(m.PROBES), f"{m.MODULE}: two probes share a name"
        assert m.__doc__ and m.__doc__.startswith(f"Probes of module {m.MODULE[:2]}"), m.__name__


def test_reference_reproduces_itself_and_draws_fresh_inputs(reference, tmp_path):
    again, other = run_probes([(REPO, SEED), (REPO, OTHER_SEED)], tmp_path)
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
    assert total < 5, f"all probes together take {total:.1f} s of CPU on the reference"


@pytest.mark.slow
def test_the_stubbed_release_matches_no_probe(sweep):
    got = sweep["stubbed"]
    ran = sorted(k for k, st in got["_status"].items() if st["ok"])
    assert ran == [], f"probes that run on the untouched template (free points): {ran}"
    not_stub = {k: st["error"] for k, st in got["_status"].items() if "NotImplementedError" not in st["error"]}
    assert not not_stub, f"probes failing on the template for another reason than a stub: {not_stub}"


@pytest.mark.slow
@pytest.mark.parametrize("tree,through", [("release4", 4), ("release9", 9)]
                         + [(f"through{k}", k) for k in range(0, LAST + 1)])
def test_solutions_through_k_match_exactly_the_modules_up_to_k(sweep, reference, tree, through):
    got = sweep[tree]
    wrong = {key: why(got, reference, key) for key, ok in matched(got, reference).items()
             if ok != (module_of(key) <= through)}
    assert not wrong, (f"{tree}: with solutions through {through:02d} the probes of modules <= {through:02d} "
                       f"should match and the others fail; these do not: {wrong}")


@pytest.mark.slow
@pytest.mark.parametrize("module", COURSE.modules, ids=lambda m: m.id)
def test_every_probe_needs_its_own_module(sweep, reference, module):
    got = sweep[f"all_but{module.number}"]
    result = matched(got, reference)
    free = sorted(key for key, ok in result.items() if ok and module_of(key) == module.number)
    assert not free, f"with only {module.id} stubbed these of its probes still match (free points): {free}"
    lost = {key: why(got, reference, key) for key, ok in result.items() if not ok and module_of(key) < module.number}
    assert not lost, f"stubbing {module.id} breaks probes of earlier modules: {lost}"


@pytest.mark.slow
def test_a_plausible_bug_is_caught_by_the_probes_that_exercise_it(sweep, reference):
    result = matched(sweep["buggy"], reference)
    for module_id, expected in CAUGHT_BY.items():
        failing = {key.split("/")[1] for key, ok in result.items() if key.startswith(module_id) and not ok}
        assert expected <= failing, f"{module_id}: the planted bug is not caught by {expected - failing}"
        if module_id in ("02_tensor", "03_activations"):   # nothing else of these modules uses the wrong line
            assert failing == expected, f"{module_id} probes that mismatch: {failing}, expected only {expected}"


@pytest.mark.slow
def test_honest_alternatives_match_every_probe(sweep, reference):
    for seed in (SEED, *MORE_SEEDS):
        got = sweep["honest"] if seed == SEED else sweep["honest", seed]
        expected = reference if seed == SEED else sweep["reference", seed]
        wrong = {key: why(got, expected, key) for key, ok in matched(got, expected).items() if not ok}
        assert not wrong, (f"seed {seed}: probes that fail an honest implementation with other random draws or "
                           f"formulas: {wrong}")


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
