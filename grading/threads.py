"""The thread counts a milestone program runs with: the judge's children and the reference-profile script.

BLAS splits some reductions (e.g. a tall matrix-vector product, module 06's column_sums) across its threads,
so the thread count changes the last bits of a sum, and OpenBLAS caps its threads at the cores it sees. One
BLAS thread gives the same bits on any number of cores. The copies around the GEMMs still use every core:
module 13's kernels run them in Python threads over pieces that do not depend on the thread count
(tinytorch/kernels.py, `_parallel`), so they change no bit (milestone-4 step, 2 cores, idle: 425 ms with
one thread for everything, 365 ms with kernel threads on both cores, 317 ms with 2 BLAS threads too).

No NumPy here: BLAS reads these variables when NumPy is first imported, so a script sets them before that.
"""
from __future__ import annotations

import os

BLAS_THREADS = 1
BLAS_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
                  "NUMEXPR_NUM_THREADS")


def cpu_cores() -> int:
    """CPU cores this process may use (respects container and taskset limits where the OS says)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS and Windows have no sched_getaffinity
        return os.cpu_count() or 1


def program_threads() -> dict[str, str]:
    """Environment variables for a milestone program: one BLAS thread, one module-13 kernel thread per core."""
    return {**{name: str(BLAS_THREADS) for name in BLAS_VARIABLES}, "TINYTORCH_NUM_THREADS": str(cpu_cores())}
