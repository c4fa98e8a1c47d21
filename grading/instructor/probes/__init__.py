"""Module probes for the trusted regrade: fresh inputs in, the framework's outputs out, compared outside.

A probe is a small deterministic function of one module:

    def probe_matmul(tt, rng) -> dict[str, np.ndarray]

`tt` is an imported `tinytorch` package (the student's in the sandbox, the reference in the judge's own
process) and `rng` a `np.random.Generator` seeded by the judge (`probe_rng`). The probe draws ALL its inputs
from `rng` (sizes too), calls the framework and returns NumPy arrays computed by it. The judge runs every probe
twice with the same seed, once per framework, and compares the two dicts with `outputs_match`. The seed changes
every regrade, so matching the reference means computing what the module computes: a forged test report can
raise a module's fraction of passed tests, never its fraction of matched probes.

One file per module (`p02_tensor.py`, ...): `MODULE` (the course.yaml id) and `PROBES` (the probe functions,
grouped roughly like the module's tests, so an honest, partly finished module matches about the same fraction
of probes as it passes tests). A probe of module N calls only code of modules <= N and at least one solution
of module N, so with the solutions of modules 1..K in place exactly the probes of modules <= K match. A probe
that raises (a stub's NotImplementedError, anything) is simply not matched; probes never catch broadly.

Running them (what the judge does on each side, and tests/test_regrade_probes.py too):

    for mod in probe_modules():
        for probe in mod.PROBES:
            outputs = probe(tt, probe_rng(seed, mod.MODULE, probe.__name__))

This folder imports only NumPy and the standard library, so it can be copied into a sandbox as it is. Probes
write files only in a `tempfile` folder (module 15) and start threads only inside one probe (module 15's
micro-batcher, joined before it returns).

Where two honest implementations may legitimately draw different random numbers (weight init, dropout masks,
shuffling, crops, sampling), a probe returns what does not depend on the draws: weights are loaded from
arrays the probe draws itself, a dropout output is returned rescaled back where it was kept, a shuffled epoch
is returned sorted, an initialiser's scale is returned as a rounded ratio to the formula's. Those rounded
statistics are computed over thousands of draws, so a rounding boundary is at least 5 standard errors away
(a false mismatch well under 1e-5 per probe and regrade); quantized int8 values (module 12) are compared
exactly, and two honest formulas round differently only for an input within ~1e-5 of a half step.
tests/test_regrade_probes.py checks on several seeds that an implementation with other random draws and
equivalent formulas (HONEST_VARIANTS there) matches every probe.

Tolerances (`outputs_match`): integer outputs must be equal; floating outputs must satisfy
    |got - expected| <= ATOL * max(1, max|expected|) + RTOL * |expected|      element-wise,
RTOL = 1e-4 and ATOL = 1e-5, with NaN matching NaN and infinities matching in sign and position. float32
has a 6e-8 relative step; honest implementations differ by summation order (BLAS blocking, pairwise sums,
a different but equivalent formula), a few hundred ulps at most for the probes' sizes, so 1e-4 leaves a wide
margin while a wrong formula (a missing term, a wrong axis, a transposed weight) is off by far more. Scaling
the absolute part by the largest expected magnitude keeps near-zero entries of a large-valued output (a
gradient whose terms cancel) from failing on rounding alone. Dtype: only the kind must agree (floating
point or integer): a float64 result where float32 is expected is a module-02 dtype-rule matter, probed there
explicitly by item sizes.
"""
from __future__ import annotations

import importlib
import zlib
from pathlib import Path
from types import ModuleType

import numpy as np

RTOL = 1e-4
ATOL = 1e-5


def probe_modules() -> list[ModuleType]:
    """The probe files `pNN_<name>.py` of this folder, in course order (each has MODULE and PROBES)."""
    names = sorted(p.stem for p in Path(__file__).parent.glob("p[0-9][0-9]_*.py"))
    return [importlib.import_module(f"{__name__}.{name}") for name in names]


def probe_rng(seed: int, module_id: str, probe_name: str) -> np.random.Generator:
    """The generator a probe gets: one stream per (regrade seed, module, probe), so probes are independent
    of each other and of the order they run in."""
    key = zlib.crc32(f"{module_id}/{probe_name}".encode("utf-8"))
    return np.random.default_rng([int(seed) & 0xFFFFFFFFFFFFFFFF, key])


def mismatch(got: dict, expected: dict) -> str | None:
    """Why `got` (the student's probe outputs) does not match `expected` (the reference's), or None if it does.

    The message names the output and says expected vs got (shape, dtype kind or the largest difference),
    so it can be shown to the instructor as is.
    """
    if not isinstance(got, dict):
        return f"the probe returned {type(got).__name__}, not a dict of arrays"
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    if missing or extra:
        return f"outputs differ in names: missing {missing}, unexpected {extra}"
    for name in sorted(expected):
        reason = _array_mismatch(np.asarray(got[name]), np.asarray(expected[name]))
        if reason is not None:
            return f"output {name!r}: {reason}"
    return None


def outputs_match(got: dict, expected: dict) -> bool:
    """True when every output of `got` matches `expected` within the tolerances in the module docstring."""
    return mismatch(got, expected) is None


def _array_mismatch(got: np.ndarray, expected: np.ndarray) -> str | None:
    if expected.dtype.kind not in "iuf":
        return f"the reference output has dtype {expected.dtype}; probes return numbers only"
    if got.dtype.kind not in "iuf":
        return f"expected numbers ({expected.dtype}), got dtype {got.dtype}"
    if got.shape != expected.shape:
        return f"expected shape {expected.shape}, got {got.shape}"
    if (got.dtype.kind == "f") != (expected.dtype.kind == "f"):
        return f"expected a {'floating' if expected.dtype.kind == 'f' else 'integer'} array, got dtype {got.dtype}"
    if expected.dtype.kind != "f":
        if np.array_equal(got, expected):
            return None
        bad = int(np.sum(got != expected))
        return f"{bad} of {expected.size} integers differ"
    g, e = got.astype(np.float64), expected.astype(np.float64)
    if not np.array_equal(np.isnan(g), np.isnan(e)):
        return "NaN in different places"
    infinite = np.isinf(e) | np.isinf(g)
    if not np.array_equal(g[infinite], e[infinite]):
        return "infinities in different places"
    finite = ~(np.isnan(e) | infinite)
    if not finite.any():
        return None
    scale = max(1.0, float(np.abs(e[finite]).max()))
    excess = np.abs(g[finite] - e[finite]) - (ATOL * scale + RTOL * np.abs(e[finite]))
    if (excess <= 0).all():
        return None
    worst = int(np.argmax(excess))
    return (f"{int((excess > 0).sum())} of {int(finite.sum())} values differ beyond the tolerance; e.g. "
            f"expected {e[finite][worst]:.7g}, got {g[finite][worst]:.7g}")
