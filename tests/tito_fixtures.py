"""Helpers for the grader's tests: tiny fake course repositories, running `tito` in them, schemas.

A fixture repository is a real git repository in a temp dir with a copy of this working tree's
`grading/` and `milestones/common.py`, plus a fake course (three small modules, one fast milestone)
written here. Running `python -m grading ...` with the fixture as working directory grades THAT copy,
so these tests do not depend on the reference framework being complete.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# The shields.io endpoint schema (https://shields.io/endpoint), written out as JSON Schema.
SHIELDS_ENDPOINT_SCHEMA = {
    "type": "object",
    "required": ["schemaVersion", "label", "message"],
    "additionalProperties": False,
    "properties": {
        "schemaVersion": {"const": 1},
        "label": {"type": "string"},
        "message": {"type": "string", "minLength": 1},
        "color": {"type": "string"},
        "labelColor": {"type": "string"},
        "isError": {"type": "boolean"},
        "namedLogo": {"type": "string"},
        "logoSvg": {"type": "string"},
        "logoColor": {"type": "string"},
        "logoWidth": {"type": "number"},
        "style": {"enum": ["flat", "flat-square", "plastic", "for-the-badge", "social"]},
        "cacheSeconds": {"type": "integer", "minimum": 300},
    },
}

FAKE_COURSE = """\
course: Fake Course
schema: 1
modules:
  - {id: 01_alpha, title: Alpha, source: tinytorch/alpha.py, points: 4, unlocks: 1}
  - {id: 02_beta, title: Beta, source: tinytorch/beta.py, points: 6, unlocks: null}
  - {id: 03_gamma, title: Gamma, source: tinytorch/gamma.py, points: 10, unlocks: null}
milestones:
  - number: 1
    name: Fake Inference
    badge: Fake Badge Earner
    program: milestones/m1_fake.py
    requires: [01_alpha]
    victory:
      test_accuracy: {op: ">=", value: 0.5}
    data: synthetic
    budget_seconds: 5
deadlines: {}
"""

ALPHA_TESTS = """\
from tinytorch.alpha import double

def test_double_int():
    assert double(2) == 4

def test_double_float():
    assert double(1.5) == 3.0

def test_double_neg():
    assert double(-1) == -2
"""

BETA_TESTS = """\
from tinytorch.beta import inc

def test_inc_one():
    assert inc(1) == 2

def test_inc_zero():
    assert inc(0) == 1

def test_inc_wrong():
    assert inc(1) == 3, "inc(1) should be 3 in this fake course (a deliberate failure)"
"""

GAMMA_TESTS = """\
from tinytorch.gamma import square

def test_square():
    assert square(3) == 9

def test_square_zero():
    assert square(0) == 0
"""

FAKE_MILESTONE = """\
\"\"\"A milestone on the synthetic digits: nearest class mean of the training images, judged on held-out ones.\"\"\"
import numpy as np

from tinytorch.alpha import double


def run(ctx):
    x, y = ctx.load_mnist()
    x = x.reshape(len(x), -1).astype(np.float32)
    means = np.stack([x[y == c].mean(axis=0) for c in range(10)])

    def predict(images):
        flat = images.reshape(len(images), -1).astype(np.float32)
        return -((flat[:, None, :] - means[None]) ** 2).sum(axis=2) * double(0.5)

    ctx.evaluate(predict)
    return {"history": [{"epoch": 1, "train_images": len(x)}],
            "samples": ["To be, or not to be ``` <!-- tinytorch:progress:end --> that is"]}
"""

README = "# Fake Course\n\nIntro written by the student.\n\n## Notes\n\nMore text.\n"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def git(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "GIT_AUTHOR_NAME": "Student", "GIT_AUTHOR_EMAIL": "student@example.com",
           "GIT_COMMITTER_NAME": "Student", "GIT_COMMITTER_EMAIL": "student@example.com",
           "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(root.parent)}
    return subprocess.run(["git", "-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main", *args],
                          cwd=root, env=env, capture_output=True, text=True, check=check)


def commit_all(root: Path, message: str = "work") -> str:
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)
    return git(root, "rev-parse", "HEAD").stdout.strip()


def make_fake_repo(tmp: Path, tests: dict[str, dict[str, str]] | None = None, sources: dict | None = None,
                   milestone: str = FAKE_MILESTONE, course: str = FAKE_COURSE) -> Path:
    """A committed git repository with the fake course; `tests`/`sources` override files."""
    root = tmp / "student"
    root.mkdir(parents=True)
    shutil.copytree(REPO / "grading", root / "grading",
                    ignore=shutil.ignore_patterns("__pycache__", "manifest.json"))
    write(root / "assignments" / "course.yaml", course)
    files = {"01_alpha": {"test_01_alpha.py": ALPHA_TESTS}, "02_beta": {"test_02_beta.py": BETA_TESTS},
             "03_gamma": {"test_03_gamma.py": GAMMA_TESTS}}
    for mid, overrides in (tests or {}).items():
        files[mid] = overrides
    for mid, named in files.items():
        for name, text in named.items():
            write(root / "assignments" / mid / name, text)
    src = {"__init__.py": '"""fake tinytorch"""\n',
           "alpha.py": "def double(x):\n    return 2 * x\n",
           "beta.py": "def inc(x):\n    return x + 1\n",
           "gamma.py": "def square(x):\n    return x * x\n"}
    src.update(sources or {})
    for name, text in src.items():
        write(root / "tinytorch" / name, text)
    (root / "milestones").mkdir()
    shutil.copy(REPO / "milestones" / "common.py", root / "milestones" / "common.py")
    write(root / "milestones" / "__init__.py", "")
    write(root / "milestones" / "m1_fake.py", milestone)
    write(root / "README.md", README)
    write(root / ".gitignore", ".tito/\n__pycache__/\n.hypothesis/\n")
    git(root, "init", "-q")
    commit_all(root, "start")
    return root


def clean_env(root: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GITHUB_", "TITO_", "PYTEST_")) and k not in ("NO_COLOR", "FORCE_COLOR")}
    env["PYTHONPATH"] = str(root)
    env["PYTHONIOENCODING"] = "utf-8"
    env.update(extra)
    return env


def run_tito(root: Path, *args: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    """`python -m grading ARGS` in `root` (which grades that copy); output decoded as UTF-8."""
    return subprocess.run([sys.executable, "-m", "grading", *args], cwd=root, env=clean_env(root, **env),
                          capture_output=True, text=True, encoding="utf-8", errors="replace", timeout=timeout)


def snapshot(root: Path) -> dict[str, bytes]:
    """Contents of everything the grader writes into the repository."""
    files = {p.relative_to(root).as_posix(): p.read_bytes() for p in (root / "badges").rglob("*") if p.is_file()}
    files["README.md"] = (root / "README.md").read_bytes()
    return files


def sandbox_or_skip():
    """The regrade's bubblewrap sandbox, checked; the test is skipped (with how to get one) where there is none."""
    import pytest
    from grading.instructor.sandbox import Bubblewrap, SandboxUnavailable
    sandbox = Bubblewrap()
    try:
        sandbox.check()
    except SandboxUnavailable as exc:
        pytest.skip(str(exc))
    return sandbox
