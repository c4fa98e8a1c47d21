"""Process plumbing: malloc settings that make NumPy training fast, and console-safe text.

Infrastructure: nothing here for students to write.

Why this exists: every op of this framework returns a *new* array, and a training step of a CNN makes
dozens of arrays of several megabytes each. glibc's malloc serves blocks that large with a fresh
`mmap` and gives them back to the operating system on `free` (and trims the top of its heap as soon
as 128 KiB are free there). So every step the kernel maps, zero-fills and page-faults the same
hundreds of megabytes again. Measured on the milestone-3 network (2-core Linux box, batch 128): a
step took 216 ms with the defaults and 125-155 ms with large blocks kept in the process.

`tune_allocator()` raises glibc's mmap and trim thresholds (`mallopt`) so freed blocks are reused.
`import tinytorch` calls it once. It only applies to Linux with glibc (elsewhere it does nothing and
says so in its return value) and it never fails. Set TINYTORCH_ALLOCATOR=system to leave malloc alone.
"""
from __future__ import annotations

import ctypes
import functools
import os
import platform

KEEP_BLOCKS_UP_TO = 256 * 1024 * 1024   # bytes: blocks up to this size come from (and return to) the heap
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3   # mallopt parameter numbers from glibc's <malloc.h>


def tune_allocator(limit: int = KEEP_BLOCKS_UP_TO) -> str:
    """Keep freed blocks of up to `limit` bytes for reuse; returns what was done (`tito bench` records it with the machine)."""
    if os.environ.get("TINYTORCH_ALLOCATOR", "").strip().lower() == "system":
        return "left as is (TINYTORCH_ALLOCATOR=system)"
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return f"left as is (not Linux/glibc: {platform.system()} {platform.libc_ver()[0] or ''})".rstrip()
    try:
        libc = ctypes.CDLL("libc.so.6")
        ok = libc.mallopt(_M_MMAP_THRESHOLD, int(limit)) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, int(limit)) == 1
    except (OSError, AttributeError):          # no such library or symbol: nothing to tune
        return "left as is (glibc mallopt not available)"
    return f"glibc malloc keeps freed blocks up to {limit // 2**20} MiB" if ok else "left as is (mallopt refused)"


@functools.lru_cache(maxsize=None)
def ensure_tuned() -> str:
    """tune_allocator() once per process."""
    return tune_allocator()


def console_safe(text: str, stream) -> str:
    """`text` in characters `stream` can encode: a cp1252 or ASCII console must never crash a long job."""
    encoding = getattr(stream, "encoding", None) or "ascii"
    try:
        return text.encode(encoding, errors="replace").decode(encoding)
    except LookupError:
        return text.encode("ascii", errors="replace").decode("ascii")
