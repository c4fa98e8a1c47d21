"""Local state shared by `tito module`, `tito milestone` and `tito grade`.

The state lives in `.tito/` at the repository root (never committed):
- `.tito/modules.json`   last module test results: {module_id: {"passed", "failed", "total", "ok", "time"}}
- `.tito/milestones/m<N>.json` (+ `.svg`)   the last result of milestone N, as `tito milestone run --json` writes it

All writes are atomic (temp file + rename), so a crash never leaves a half-written file behind.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from grading.course import REPO_ROOT

STATE_DIR = Path(os.environ.get("TITO_STATE_DIR", REPO_ROOT / ".tito"))


def atomic_write_bytes(path: Path | str, data: bytes) -> None:
    """Write `data` to `path` so that readers see either the old or the new file, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def atomic_write_text(path: Path | str, text: str, encoding: str = "utf-8") -> None:
    """Write `text` atomically (see atomic_write_bytes); line endings are written as given."""
    atomic_write_bytes(path, text.encode(encoding))


def atomic_write_json(path: Path | str, data) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_json(path: Path | str, default=None):
    """Read JSON; a missing or corrupt file gives `default` (a corrupt state file is never trusted)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return default


def modules_file() -> Path:
    return STATE_DIR / "modules.json"


def load_module_results() -> dict:
    data = read_json(modules_file(), {})
    return data if isinstance(data, dict) else {}


def save_module_results(results: dict, merge: bool = True) -> None:
    """Record module results; with merge, modules not in `results` keep their previous entry."""
    current = load_module_results() if merge else {}
    current.update(results)
    atomic_write_json(modules_file(), current)


def milestone_result_path(number: int) -> Path:
    return STATE_DIR / "milestones" / f"m{int(number)}.json"


def load_milestone_result(number: int) -> dict | None:
    data = read_json(milestone_result_path(number))
    return data if isinstance(data, dict) else None
