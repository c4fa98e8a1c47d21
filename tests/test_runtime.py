"""tinytorch/runtime.py: the malloc setting `import tinytorch` makes, and its opt-out."""
from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from tinytorch import runtime


def test_opt_out_leaves_malloc_alone(monkeypatch):
    monkeypatch.setenv("TINYTORCH_ALLOCATOR", "system")
    assert runtime.tune_allocator() == "left as is (TINYTORCH_ALLOCATOR=system)"


def test_other_platforms_are_left_alone(monkeypatch):
    monkeypatch.delenv("TINYTORCH_ALLOCATOR", raising=False)
    monkeypatch.setattr(runtime.platform, "system", lambda: "Darwin")
    assert runtime.tune_allocator().startswith("left as is (not Linux/glibc")


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_import_tinytorch_tunes_glibc_once_in_a_fresh_process():
    code = "import tinytorch, tinytorch.runtime as r; print(r.ensure_tuned())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "glibc malloc keeps freed blocks up to 256 MiB"
