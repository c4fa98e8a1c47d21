"""Module 01 - Setup: check your machine and introduce yourself.

Welcome! Before building a deep-learning framework, make sure the ground is solid:

- your environment: the Python and NumPy versions, the BLAS library NumPy hands its matrix
  multiplications to (it decides how fast every layer you write will run), and the CPU cores;
- your profile: your name and GitHub handle, read from `tinytorch.yaml` at the root of your
  repository, so your progress page and your instructor's roster know whose work this is.

Run `python -m tinytorch.setup_check` to see the report. You implement two small functions here,
`parse_version` and `is_valid_github_handle`; the checks below use them.
"""
from __future__ import annotations

import os
import platform
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
PROFILE_FILE = "tinytorch.yaml"  # at the repository root, next to README.md
PROFILE_FIELDS = {  # field -> what to write there
    "name": "your name as your instructor knows you",
    "github": "your GitHub handle (the name in your profile URL github.com/<handle>)",
}
PROFILE_EXAMPLE = "  name: Ada Lovelace\n  github: ada-lovelace"
MIN_PYTHON = (3, 10)  # the same floors as pyproject.toml's requires-python and numpy dependency
MIN_NUMPY = (1, 24)


# ---- your first functions ------------------------------------------------------------------------
def parse_version(text: str) -> tuple[int, ...]:
    """The leading numbers of a version string, as a tuple you can compare.

    '2.4.6' -> (2, 4, 6); '1.26.0rc1' -> (1, 26, 0) (a pre-release tag ends the numbers);
    '3.11' -> (3, 11); ' 2.0 ' -> (2, 0). Tuples compare element by element, so
    parse_version('1.10') > parse_version('1.9'), which comparing the strings gets wrong.
    Raises ValueError when the text does not start with a number ('abc', '', '.1').
    """
    if not isinstance(text, str):
        raise TypeError(f"parse_version: expected a string like '2.4.6', got {type(text).__name__}")
    # BEGIN SOLUTION parse the dot-separated leading numbers into a tuple of ints
    numbers = []
    for part in text.strip().split("."):
        digits = re.match(r"\d+", part)
        if digits is None:
            break
        numbers.append(int(digits.group()))
        if digits.end() != len(part):  # '0rc1': keep the 0, the rest is a tag
            break
    if not numbers:
        raise ValueError(f"parse_version: {text!r} does not start with a version number like '2.4.6'")
    return tuple(numbers)
    # END SOLUTION


def is_valid_github_handle(handle: str) -> bool:
    """GitHub's rules for user names: 1 to 39 characters, only ASCII letters, digits and hyphens,
    no hyphen at the start or the end, and never two hyphens in a row.

    'ada-lovelace' and 'a1' are valid; '-ada', 'ada-', 'ada--l', 'ada_l', 'ada l', '' are not.
    """
    if not isinstance(handle, str):
        return False
    # BEGIN SOLUTION check the handle against GitHub's rules (a regular expression works well)
    return re.fullmatch(r"[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}", handle) is not None
    # END SOLUTION


# ---- the environment (given) ----------------------------------------------------------------------
def blas_info() -> str:
    """Best-effort name (and version) of the BLAS library NumPy uses, e.g. 'scipy-openblas 0.3.27'."""
    try:  # NumPy >= 1.25 can return its build configuration as a dict
        config = np.show_config(mode="dicts")
        blas = config.get("Build Dependencies", {}).get("blas", {})
        name, version = blas.get("name"), blas.get("version")
        if name:
            return f"{name} {version}".strip() if version and version != "unknown" else str(name)
    except Exception:  # older NumPy or an unusual build: fall back below
        pass
    for key in ("blas_opt_info", "blas_ilp64_opt_info", "openblas_info", "blas_mkl_info"):
        info = getattr(getattr(np, "__config__", None), key, None)
        if info:
            return ", ".join(info.get("libraries", [])) or key
    return "unknown"


def cpu_cores() -> int:
    """CPU cores this process may use (respects container and taskset limits where the OS says)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS and Windows have no sched_getaffinity
        return os.cpu_count() or 1


def matmul_gflops(n: int = 256, repeats: int = 5) -> float:
    """Rough float32 matrix-multiplication speed of this machine, in GFLOP/s (best of `repeats`)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    a @ b  # warm-up: the first call may load BLAS and start its threads
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / max(best, 1e-9) / 1e9


@dataclass(frozen=True)
class Environment:
    python: str
    numpy: str
    blas: str
    cores: int
    platform: str


def environment() -> Environment:
    """What this machine offers TinyTorch."""
    return Environment(python=platform.python_version(), numpy=np.__version__, blas=blas_info(),
                       cores=cpu_cores(), platform=f"{platform.system()} {platform.machine()}")


def check_environment(env: Environment | None = None) -> list[str]:
    """Problems that would stop the course from working; an empty list means all is well."""
    env = env or environment()
    problems = []
    if parse_version(env.python) < MIN_PYTHON:
        problems.append(f"Python {env.python} is too old: TinyTorch needs Python "
                        f"{'.'.join(map(str, MIN_PYTHON))} or newer")
    if parse_version(env.numpy) < MIN_NUMPY:
        problems.append(f"NumPy {env.numpy} is too old: TinyTorch needs NumPy {'.'.join(map(str, MIN_NUMPY))} "
                        "or newer (pip install -U numpy)")
    return problems


# ---- your profile (given) --------------------------------------------------------------------------
class ProfileError(ValueError):
    """tinytorch.yaml is missing or has a field that is missing or wrong; the message says which."""


@dataclass(frozen=True)
class Profile:
    name: str
    github: str


def profile_path(root: Path | str | None = None) -> Path:
    return Path(root or REPO_ROOT) / PROFILE_FILE


def load_profile(path: Path | str | None = None) -> Profile:
    """Read your name and GitHub handle from tinytorch.yaml (default: at the repository root)."""
    import yaml  # a runtime dependency; imported here so importing this module stays cheap

    path = Path(path) if path is not None else profile_path()
    example = PROFILE_EXAMPLE
    if not path.is_file():
        raise ProfileError(f"{path}: file not found. Create {PROFILE_FILE} at the root of your repository "
                           f"with two lines, like:\n{example}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ProfileError(f"{path}: not valid YAML ({exc}). It should look like:\n{example}") from None
    if not isinstance(data, dict):
        raise ProfileError(f"{path}: expected 'field: value' lines, got {type(data).__name__}. "
                           f"It should look like:\n{example}")
    values = {}
    for field, hint in PROFILE_FIELDS.items():
        value = data.get(field)
        if value is None or (isinstance(value, str) and not value.strip()):
            raise ProfileError(f"{path}: the field '{field}' is missing or empty; add a line "
                               f"'{field}: ...' with {hint}. The file should look like:\n{example}")
        if not isinstance(value, str):
            raise ProfileError(f"{path}: the field '{field}' must be text ({hint}), got {value!r}")
        values[field] = value.strip()
    handle = values["github"].lstrip("@")
    if not is_valid_github_handle(handle):
        raise ProfileError(f"{path}: the field 'github' is {values['github']!r}, which is not a valid GitHub "
                           "handle (1-39 letters, digits or single hyphens, no hyphen at either end)")
    return Profile(name=values["name"], github=handle)


# ---- the report ----------------------------------------------------------------------------------
def report(root: Path | str | None = None, measure_speed: bool = True) -> tuple[str, bool]:
    """A plain-ASCII report of the environment and profile, and whether everything is ready."""
    env = environment()
    lines = ["TinyTorch setup check", "",
             f"  Python     {env.python} ({env.platform})",
             f"  NumPy      {env.numpy}",
             f"  BLAS       {env.blas}",
             f"  CPU cores  {env.cores}"]
    if measure_speed:
        lines.append(f"  matmul     ~{matmul_gflops():.0f} GFLOP/s (float32, 256 x 256)")
    problems = check_environment(env)
    try:
        profile = load_profile(profile_path(root))
        lines += ["", f"  Hello, {profile.name} (github.com/{profile.github})!"]
    except ProfileError as exc:
        problems.append(str(exc))
    lines.append("")
    lines += [f"  [!!] {p}" for p in problems] or ["  [ok] Ready: next, module 02 (Tensor)."]
    return "\n".join(lines), not problems


def main() -> int:
    text, ok = report()
    print(text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
