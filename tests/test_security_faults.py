"""Hostile student code, concurrent pushes and faults (issue 6) - the parts not already proven elsewhere.

Already covered, and listed in grading/instructor/SECURITY.md:
- tests/test_grade_hostile.py: infinite loops (per-test and whole-run limits), os._exit/sys.exit while a
  test file is imported, segfault via ctypes, stdout flood, recursion, a skip raised from student code;
- tests/test_grade_fixture.py: a milestone that runs past its budget is stopped;
- tests/test_workflow.py: two pushes seconds apart, commit-back rebases, newest results win, no force push;
- tests/test_datasets.py: interrupted download, corrupted cache, checksum mismatch, full disk during download.

Here: exits and a memory hog in the student's OWN module source (imported by the tests, not by a test
file), NaN everywhere (student code and milestone metrics), a truly simultaneous commit-back of two
grading runs, and a full disk (ENOSPC, and a real kernel file-size limit) while writing checkpoints,
artifacts, grader state and `tito grade`'s results: nothing half-written is ever read back.
"""
from __future__ import annotations

import errno
import io
import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tito_fixtures import git, make_fake_repo, run_tito  # noqa: E402

import tinytorch as tt  # noqa: E402
from grading import readme_section, state  # noqa: E402
from grading.commit_back import BOT_NAME, commit_back  # noqa: E402
from grading.console import Console  # noqa: E402
from grading.grade import GradeOptions, grade  # noqa: E402
from tinytorch.deployment import ArtifactError, load_artifact, read_metadata, save_artifact  # noqa: E402
from tinytorch.layers import StateDictError  # noqa: E402
from tinytorch.training import CheckpointError, load_checkpoint, save_checkpoint  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
OK_TESTS = "def test_one():\n    assert True\n\ndef test_two():\n    assert True\n"


# =====================================================================================================
# hostile code in the student's own sources
# =====================================================================================================
HOSTILE_SOURCES = {
    # module id: (its source file under tinytorch/, that file's text, its test file)
    "02_osexit": ("osexit.py", "import os\nos._exit(0)\n\ndef f():\n    return 1\n",
                  "from tinytorch.osexit import f\n\ndef test_f():\n    assert f() == 1\n"),
    "03_sysexit": ("sysexit.py", "import sys\nsys.exit(3)\n\ndef f():\n    return 1\n",
                   "from tinytorch.sysexit import f\n\ndef test_f():\n    assert f() == 1\n"),
    "04_hog": ("hog.py", "import numpy as np\n\ndef table():\n    return np.empty(8 * 1024 ** 3, dtype=np.uint8)\n",
               OK_TESTS + "\ndef test_table():\n    from tinytorch.hog import table\n    assert table().size > 0\n"),
    "05_nan": ("nan.py", "import numpy as np\n\ndef mean(x):\n    return float(np.mean(np.asarray(x) * np.nan))\n",
               OK_TESTS + "\ndef test_mean():\n    from tinytorch.nan import mean\n    assert mean([1.0, 3.0]) == 2.0\n"),
}
HOSTILE_COURSE = "course: Hostile\nmodules:\n" + "".join(
    f"  - {{id: {mid}, title: {mid[3:]}, source: tinytorch/{mid[3:]}.py, points: 10, unlocks: null}}\n"
    for mid in ["01_alpha", *HOSTILE_SOURCES, "06_omega"]) + textwrap.dedent("""\
    milestones:
      - number: 1
        name: Not a Number
        badge: Number Hunter
        program: milestones/m1_fake.py
        requires: [01_alpha]
        victory:
          test_accuracy: {op: ">=", value: 0.5}
        data: synthetic
        budget_seconds: 5
    """)
NAN_MILESTONE = """\
import numpy as np


def run(ctx):
    nan, inf = float("nan"), float("inf")
    ctx.evaluate(lambda images: np.full((len(images), 10), nan, dtype=np.float32))   # the judge refuses these
    return {"metrics": {"test_accuracy": nan, "loss": inf},
            "history": [{"epoch": 1, "test_accuracy": nan, "loss": inf}, {"epoch": 2, "test_accuracy": -inf}]}
"""


def _strict_json(text: str):
    def refuse(token):
        raise ValueError(f"{token} is not JSON")
    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    tests = {mid: {f"test_{mid}.py": test} for mid, (_, _, test) in HOSTILE_SOURCES.items()}
    tests["01_alpha"] = {"test_01_alpha.py": OK_TESTS}
    tests["06_omega"] = {"test_06_omega.py": OK_TESTS}
    sources = {name: text for name, text, _ in HOSTILE_SOURCES.values()}
    root = make_fake_repo(tmp_path_factory.mktemp("hostile"), tests=tests, sources=sources, course=HOSTILE_COURSE,
                          milestone=NAN_MILESTONE)
    result = run_tito(root, "grade", "--memory-mb", "2048", "--milestone-grace", "60", timeout=600)
    progress_text = (root / "badges" / "progress.json").read_text(encoding="utf-8")
    return {"root": root, "result": result, "text": progress_text, "progress": _strict_json(progress_text)}


def test_hostile_sources_are_graded_as_failures_and_the_others_keep_their_points(hostile):
    assert hostile["result"].returncode == 0, hostile["result"].stdout + hostile["result"].stderr
    mods = hostile["progress"]["modules"]
    for mid in ("01_alpha", "06_omega"):
        assert mods[mid]["ok"] and mods[mid]["points"] == 10, mods[mid]
    assert hostile["progress"]["test_run"] == "per-module runs after a crash"


@pytest.mark.parametrize("mid, words", [
    ("02_osexit", ("test_02_osexit.py could not be imported", "exited with status 0 before pytest finished")),
    ("03_sysexit", ("test_03_sysexit.py could not be imported",)),
])
def test_exit_while_the_student_module_is_imported(hostile, mid, words):
    entry = hostile["progress"]["modules"][mid]
    assert entry["points"] == 0 and not entry["ok"]
    for w in words:
        assert w in entry["reason"], entry["reason"]


def test_allocation_past_the_memory_limit_fails_only_that_test(hostile):
    entry = hostile["progress"]["modules"]["04_hog"]
    assert (entry["passed"], entry["total"]) == (2, 3)
    assert entry["failing"] == ["assignments/04_hog/test_04_hog.py::test_table"]
    assert "MemoryError" in entry["reason"] or "Unable to allocate" in entry["reason"], entry["reason"]


def test_nan_everywhere_is_a_plain_failure(hostile):
    entry = hostile["progress"]["modules"]["05_nan"]
    assert (entry["passed"], entry["total"]) == (2, 3) and "nan" in entry["reason"], entry
    m1 = hostile["progress"]["milestones"]["1"]
    # NaN/inf predictions and metrics: never a pass, never invalid JSON, and the badge still renders
    assert m1["status"] == "failed" and m1["metrics"] == {} and "not finite" in m1["reason"], m1
    assert "NaN" not in hostile["text"] and "Infinity" not in hostile["text"]
    badge = _strict_json((hostile["root"] / "badges" / "number-hunter.json").read_text())
    assert badge["message"].startswith("not yet"), badge


# =====================================================================================================
# two grading runs committing back at the same moment
# =====================================================================================================
def _results(clone: Path, graded: str, label: str) -> None:
    (clone / "badges").mkdir(exist_ok=True)
    (clone / "badges" / "progress.json").write_text(json.dumps({"commit": {"sha": graded}, "label": label}))
    readme_section.update_readme(clone / "README.md", f"results for {label}\n")


def _race(tmp_path: Path) -> dict:
    """Student pushes A then B; the grading runs of A and B commit back at the same instant."""
    bare = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    git(bare, "config", "receive.denyNonFastForwards", "true")       # like a protected branch
    git(bare, "config", "core.logAllRefUpdates", "always")            # keep every update of main
    work = tmp_path / "student"
    subprocess.run(["git", "clone", "-q", str(bare), str(work)], check=True, capture_output=True)
    git(work, "checkout", "-q", "-b", "main")
    (work / "README.md").write_text("# Mine\n\nStudent intro.\n")
    shas = []
    for i in range(2):
        (work / "code.py").write_text(f"v = {i}\n")
        git(work, "add", "-A")
        git(work, "commit", "-q", "-m", f"push {i}")
        git(work, "push", "-q", "origin", "main")
        shas.append(git(work, "rev-parse", "HEAD").stdout.strip())
        run = tmp_path / f"run{i}"                                     # the checkout of grading run i
        subprocess.run(["git", "clone", "-q", str(bare), str(run)], check=True, capture_output=True)
        git(run, "checkout", "-q", "-B", "main", shas[-1])
        _results(run, shas[-1], "AB"[i])
    outcomes, errors = {}, []
    barrier = threading.Barrier(2)

    def go(i):
        try:
            barrier.wait()
            outcomes[i] = commit_back(tmp_path / f"run{i}", "main", attempts=8, pause=0.05)
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    return {"bare": bare, "shas": shas, "outcomes": outcomes}


@pytest.mark.parametrize("round_", range(3))
def test_simultaneous_commit_back_keeps_the_newest_results_without_force(tmp_path, round_):
    race = _race(tmp_path)
    bare, shas, outcomes = race["bare"], race["shas"], race["outcomes"]
    assert outcomes[1] == "pushed" and outcomes[0] in ("pushed", "newer results already there"), outcomes
    final = json.loads(git(bare, "show", "main:badges/progress.json").stdout)
    assert final["commit"]["sha"] == shas[1] and final["label"] == "B", "older results overwrote newer ones"
    readme = git(bare, "show", "main:README.md").stdout
    assert "results for B" in readme and "Student intro." in readme
    assert git(bare, "merge-base", "--is-ancestor", shas[1], "main", check=False).returncode == 0
    tips = [line for line in git(bare, "log", "-g", "--format=%H", "main").stdout.splitlines()][::-1]
    for old, new in zip(tips, tips[1:]):                               # every update a fast-forward
        assert git(bare, "merge-base", "--is-ancestor", old, new, check=False).returncode == 0
    bots = [h for h in git(bare, "log", "--format=%an %s", "main").stdout.splitlines() if h.startswith(BOT_NAME)]
    assert 1 <= len(bots) <= 2 and all("[skip ci]" in h for h in bots)


# =====================================================================================================
# a full disk while writing checkpoints, artifacts, state and results
# =====================================================================================================
def _no_space(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _model(seed: int):
    tt.manual_seed(seed)
    return tt.nn.Sequential(tt.nn.Linear(4, 8), tt.nn.ReLU(), tt.nn.Linear(8, 3))


def _same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(np.array_equal(sa[k], sb[k]) for k in sa)


WRITERS = {
    # name: (write(path, version), read(path) -> what was written, error a damaged file gives)
    "checkpoint": (lambda p, v: save_checkpoint(p, _model(v), epoch=v),
                   lambda p: load_checkpoint(p, restore_rng=False)["epoch"], CheckpointError),
    "Module.save": (lambda p, v: _model(v).save(p),
                    lambda p: next(v for v in (1, 2) if _same_weights(_model(0).load(p), _model(v))), StateDictError),
    "artifact": (lambda p, v: save_artifact(_model(v), p, input_shape=(None, 4), metrics={"version": v}),
                 lambda p: _artifact_version(p), ArtifactError),
    "grader state": (lambda p, v: state.atomic_write_json(p, {"version": v}),
                     lambda p: state.read_json(p)["version"], None),
}


def _artifact_version(path):
    load_artifact(path)                       # the whole artifact loads, not just its metadata
    return read_metadata(path)["metrics"]["version"]


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_full_disk_keeps_the_previous_file_and_says_why(name, tmp_path, monkeypatch):
    write, read, _ = WRITERS[name]
    path = tmp_path / "out" / f"result-{name.replace(' ', '_').replace('.', '_')}.npz"
    path.parent.mkdir()
    write(path, 1)
    before = path.read_bytes()
    monkeypatch.setattr(os, "fsync", _no_space)           # the data is written, then the disk is full
    with pytest.raises(OSError) as info:
        write(path, 2)
    monkeypatch.undo()
    assert info.value.errno == errno.ENOSPC and "No space left on device" in str(info.value)
    assert path.read_bytes() == before and read(path) == 1      # the old file, whole
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]   # no temp file left behind


@pytest.mark.parametrize("name", [n for n, (_, _, err) in WRITERS.items() if err is not None])
def test_a_half_written_file_is_never_read_as_valid(name, tmp_path):
    """Files written elsewhere (a copy cut short, a disk error): reading them is a clear error."""
    write, read, error = WRITERS[name]
    path = tmp_path / "x.npz"
    write(path, 1)
    data = path.read_bytes()
    for cut in (0, 10, len(data) // 2, len(data) - 1):
        path.write_bytes(data[:cut])
        with pytest.raises(error) as info:
            read(path)
        assert str(path) in str(info.value) or path.name in str(info.value), str(info.value)


def test_corrupt_state_and_progress_files_are_not_trusted(tmp_path):
    for text in ("", "{", "[1, 2", "\x00\x01", "null"):
        (tmp_path / "s.json").write_text(text)
        assert state.read_json(tmp_path / "s.json", {}) in ({}, None)


def test_a_real_file_size_limit_while_checkpointing(tmp_path):
    """The kernel refuses the write (RLIMIT_FSIZE, the closest a test gets to a really full disk)."""
    code = textwrap.dedent(f"""
        import errno, resource, signal, sys
        import numpy as np
        import tinytorch as tt
        from tinytorch.training import save_checkpoint, load_checkpoint
        path = {str(tmp_path / "ckpt.npz")!r}
        save_checkpoint(path, tt.nn.Linear(2, 2), epoch=1)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)          # get EFBIG instead of being killed
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, resource.RLIM_INFINITY))
        try:
            save_checkpoint(path, tt.nn.Linear(256, 256), epoch=2)
        except OSError as exc:
            print("refused:", errno.errorcode[exc.errno], exc)
        print("epoch after:", load_checkpoint(path, restore_rng=False)["epoch"])
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "refused: EFBIG" in res.stdout and "epoch after: 1" in res.stdout, res.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.npz"]


def test_tito_grade_on_a_full_disk_exits_2_and_keeps_the_previous_results(tmp_path, monkeypatch):
    root = make_fake_repo(tmp_path)
    assert run_tito(root, "grade", "--skip-milestones").returncode == 0
    before = {p.name: p.read_bytes() for p in (root / "badges").iterdir()}
    readme = (root / "README.md").read_bytes()
    (root / "tinytorch" / "beta.py").write_text("def inc(x):\n    return x + 2\n")   # new results to write
    monkeypatch.setattr(os, "fsync", _no_space)
    out = io.StringIO()
    rc = grade(GradeOptions(skip_milestones=True), root=root, out=Console(out))
    monkeypatch.undo()
    assert rc == 2, out.getvalue()
    assert "could not write its results" in out.getvalue() and "No space left on device" in out.getvalue()
    assert {p.name: p.read_bytes() for p in (root / "badges").iterdir()} == before   # nothing half-written
    assert (root / "README.md").read_bytes() == readme
    _strict_json((root / "badges" / "progress.json").read_text())
