"""The one place that answers "what is the state of module N / milestone N for THIS code".

Every command reads it: `tito grade`, `tito module list/test/complete`, `tito milestone
status/run/check/next/start/celebrate`, and through `tito grade` the README section and the badges.

Results are keyed by the FINGERPRINT of the code they judged (sha256 over the files that decide the
result). A result whose fingerprint is not the current one is "stale": it is shown as such, never as
current. Results come from two places:
- `.tito/` at the repository root (never committed): `modules.json` ({module id: result}) and
  `milestones/m<N>.json`, written by `tito module test/complete`, `tito milestone run` and `tito grade`;
- `badges/progress.json`, which `tito grade` writes and CI commits, so results carry over between pushes.
For each module and milestone the current result is one whose fingerprint matches the code now (for a
milestone the committed one first: it says where it was verified); any other result is stale.

Rules kept here, once:
- A run that could not run (missing data, unfinished code) never replaces a judged result (passed or
  failed) for the same fingerprint.
- Which files decide a result: for module N, the tinytorch/ files of modules 1..N, the given tinytorch/
  files that belong to no module, and module N's tests; for a milestone, the same for modules up to the
  last one it requires (module N only uses modules 1..N: tests/test_stub_independence.py), plus its
  program, milestones/common.py, the shipped weights, its victory bars and the checksums of its data.

All writes are atomic (temp file + rename), so a crash never leaves a half-written file behind.
"""
from __future__ import annotations

import ast
import hashlib
import json
import math
import os
import re
import tempfile
import time
from pathlib import Path

from grading import badges as badgelib
from grading.course import Course, Milestone, Module, load_course, repo_root
from grading.scoring import error_line

FINGERPRINT_VERSION = "tito-fingerprint-v4"   # v3: only the modules a result depends on; v4: judge, schedule
STATE_DIR: Path | None = None                  # tests (and TITO_STATE_DIR) point the state elsewhere
SAMPLE_CHARS = 600                             # characters kept of a milestone's generated text
_SOURCES_ROW = re.compile(r"^\|\s*([\w.\-]+)\s*\|[^|]*\|\s*([0-9a-f]{64})\s*\|", re.M)


# ---- writing files -------------------------------------------------------------------------------

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


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


# ---- where the state lives -----------------------------------------------------------------------

def state_dir(root: Path | None = None) -> Path:
    if STATE_DIR is not None:
        return Path(STATE_DIR)
    if os.environ.get("TITO_STATE_DIR"):
        return Path(os.environ["TITO_STATE_DIR"])
    return Path(root or repo_root()) / ".tito"


def modules_file(root: Path | None = None) -> Path:
    return state_dir(root) / "modules.json"


def milestone_result_path(number: int, root: Path | None = None) -> Path:
    return state_dir(root) / "milestones" / f"m{int(number)}.json"


def progress_file(root: Path | None = None) -> Path:
    return Path(root or repo_root()) / "badges" / "progress.json"


# ---- fingerprints --------------------------------------------------------------------------------

def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def source_files(root: Path, course: Course, through: int) -> list[Path]:
    """tinytorch/ files of modules 1..`through` plus the given files that belong to no module."""
    files = []
    for path in sorted((Path(root) / "tinytorch").glob("*.py")):
        owner = course.module_for_source(f"tinytorch/{path.name}")
        if owner is None or owner.number <= through:
            files.append(path)
    return files


def _digest(root: Path, files: list[Path], *extra: str) -> str:
    h = hashlib.sha256(FINGERPRINT_VERSION.encode() + b"\0")
    for path in files:
        if path.is_file():
            h.update(path.relative_to(root).as_posix().encode() + b"\0" + file_sha256(path).encode() + b"\0")
    for text in extra:
        h.update(text.encode() + b"\0")
    return h.hexdigest()


def module_fingerprint(root: Path, course: Course, module: Module) -> str:
    """Changes exactly when a file that can change module N's test results changes."""
    root = Path(root)
    tests = sorted(p for p in (root / module.folder).rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    return _digest(root, source_files(root, course, module.number) + tests)


def known_data_checksums(root: Path) -> dict[str, str]:
    """{data file: sha256} of the course's data sets, the checksums SOURCES.md lists.

    Read from tinytorch/datasets.py (every `offline_file=..., offline_sha256=...` pair, found by parsing the
    file, never importing it), which the loader verifies every file against - so the same values apply on
    a student's laptop and in CI, whether the data came from $TINYTORCH_DATA or the download cache. Falls
    back to the SOURCES.md table in $TINYTORCH_DATA when datasets.py declares none.
    """
    found: dict[str, str] = {}
    try:
        tree = ast.parse((Path(root) / "tinytorch" / "datasets.py").read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        tree = None
    for node in ast.walk(tree) if tree is not None else ():
        if isinstance(node, ast.Call):
            kw = {k.arg: k.value.value for k in node.keywords
                  if k.arg in ("offline_file", "offline_sha256") and isinstance(k.value, ast.Constant)
                  and isinstance(k.value.value, str)}
            if len(kw) == 2 and re.fullmatch(r"[0-9a-f]{64}", kw["offline_sha256"]):
                found[kw["offline_file"]] = kw["offline_sha256"]
    if found:
        return found
    data = os.environ.get("TINYTORCH_DATA")
    if data:
        try:
            return dict(_SOURCES_ROW.findall((Path(data) / "SOURCES.md").read_text(encoding="utf-8", errors="replace")))
        except OSError:
            pass
    return {}


def data_checksums_for(program_text: str, checksums: dict[str, str]) -> dict[str, str]:
    """The data files a milestone program names (by file stem, e.g. 'mnist'); all of them if it names none."""
    text = program_text.lower()
    used = {name: sha for name, sha in checksums.items() if Path(name).stem.lower() in text}
    return used or dict(checksums)


def milestone_inputs(root: Path, course: Course, ms: Milestone) -> list[Path]:
    """Files whose content decides a milestone's result (missing ones are skipped)."""
    root = Path(root)
    last = max((course.module(r).number for r in ms.requires), default=0)
    files = source_files(root, course, last) + [root / ms.program, root / "milestones" / "common.py"]
    # the judge decides the metrics, so its code is an input too
    files += [root / "grading" / f"{name}.py" for name in ("judge", "milestone_data", "milestone_child", "channel")]
    weights = root / "milestones" / "weights"
    if weights.is_dir():
        files += sorted(p for p in weights.rglob("*") if p.is_file())
    return [p for p in files if p.is_file()]


def milestone_fingerprint(root: Path, ms: Milestone, checksums: dict[str, str] | None = None,
                          course: Course | None = None) -> str:
    """The key of a milestone result: its inputs, its victory bars and the checksums of its data."""
    root = Path(root)
    course = course or load_course(root / "assignments" / "course.yaml")
    checksums = known_data_checksums(root) if checksums is None else checksums
    try:
        program_text = (root / ms.program).read_text(encoding="utf-8", errors="replace")
    except OSError:
        program_text = ""
    return _digest(root, milestone_inputs(root, course, ms), json.dumps(ms.all_thresholds, sort_keys=True),
                   json.dumps({"data": ms.data, "evaluations": ms.evaluations, "schedule": ms.schedule},
                              sort_keys=True),
                   json.dumps(data_checksums_for(program_text, checksums), sort_keys=True))


# ---- module results ------------------------------------------------------------------------------

def load_module_results(root: Path | None = None) -> dict:
    data = read_json(modules_file(root), {})
    return data if isinstance(data, dict) else {}


def record_module_results(root: Path, course: Course, scores: dict, completed: bool = False) -> dict:
    """Record {module id: ModuleScore} with the fingerprint of the code they judged; returns the entries."""
    entries = {}
    for mid, s in scores.items():
        entry = {"passed": s.passed, "failed": s.failed, "total": s.total, "skipped": s.skipped, "ok": s.ok,
                 "points": s.points, "time": now(), "fingerprint": module_fingerprint(root, course, s.module)}
        if completed and s.ok:
            entry["completed"] = True
        entries[mid] = entry
    try:
        current = load_module_results(root)
        current.update(entries)
        atomic_write_json(modules_file(root), current)
    except OSError:
        pass  # a read-only checkout still gets its results printed
    return entries


def _progress(root: Path) -> dict:
    data = read_json(progress_file(root), {})
    return data if isinstance(data, dict) else {}


def module_states(root: Path | None = None, course: Course | None = None) -> dict[str, dict]:
    """{module id: {"status": "passed" | "failing" | "stale" | "untested", "passed", "total", "points"}}.

    The current result is the local one (.tito) or the committed one (badges/progress.json) whose
    fingerprint matches the code now; with neither, the newest result is shown as "stale".
    """
    root = Path(root or repo_root())
    course = course or load_course(root / "assignments" / "course.yaml")
    local = load_module_results(root)
    committed = _progress(root).get("modules") or {}
    out = {}
    for m in course.modules:
        candidates = [e for e in (local.get(m.id), committed.get(m.id) if isinstance(committed, dict) else None)
                      if isinstance(e, dict) and isinstance(e.get("fingerprint"), str)]
        if not candidates:
            out[m.id] = {"status": "untested"}
            continue
        current = module_fingerprint(root, course, m)
        fresh = [e for e in candidates if e.get("fingerprint") == current]
        entry = (fresh or candidates)[0]
        status = ("passed" if entry.get("ok") is True else "failing") if fresh else "stale"
        out[m.id] = {"status": status, "passed": entry.get("passed"), "total": entry.get("total"),
                     "points": entry.get("points"), "was": "passed" if entry.get("ok") is True else "failing"}
    return out


# ---- milestone results ---------------------------------------------------------------------------

def load_milestone_result(number: int, root: Path | None = None) -> dict | None:
    data = read_json(milestone_result_path(number, root))
    return data if isinstance(data, dict) else None


def finite_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def headline(ms: Milestone, metrics: dict) -> str | None:
    """'97.1% test accuracy' / '1.62 val loss': the first victory metric, as the badge shows it."""
    for cond in ms.victory:
        value = metrics.get(cond.metric)
        if finite_number(value):
            return f"{badgelib.format_metric(cond.metric, value)} {badgelib.metric_label(cond.metric)}"
    return None


def _clean_metrics(raw) -> dict:
    if not isinstance(raw, dict):
        return {}
    return {str(k): (round(float(v), 6) if finite_number(v) else None)
            for k, v in list(raw.items())[:50] if isinstance(k, str)}


def _clean_sample(text) -> str | None:
    if not isinstance(text, str) or not text.strip():
        return None
    text = "".join(ch for ch in text if ch == "\n" or (ch.isprintable() and ch != "\x7f"))
    return text[:SAMPLE_CHARS]


def _clean_corpus(value) -> str | None:
    """The corpus a result names (it picks the milestone's bar), or None; results are student-writable."""
    return value[:100] if isinstance(value, str) and value else None


def milestone_entry(ms: Milestone, data: dict) -> dict:
    """A milestone result in either shape - the JSON of `tito milestone run` ({passed, metrics, error,
    corpus, details: {sample}}) or an entry of badges/progress.json ({status, metrics, corpus, sample}) -
    normalised into a progress.json entry and judged again HERE from its metrics and course.yaml: the
    one place a stored result becomes a status. Both sources are student-writable, so every field is
    checked and a claimed "passed" counts only when the metrics meet the bar."""
    metrics = _clean_metrics(data.get("metrics"))
    error = data.get("error") if isinstance(data.get("error"), str) and data.get("error") else None
    details = data.get("details") if isinstance(data.get("details"), dict) else {}
    corpus = _clean_corpus(data.get("corpus") if isinstance(data.get("corpus"), str) else details.get("corpus"))
    claimed = data.get("passed") is True or data.get("status") == "passed"
    passed = claimed and error is None and ms.passed(metrics, corpus)
    entry = {"status": "passed" if passed else "failed", "metrics": metrics,
             "seconds": round(float(data["seconds"]), 1) if finite_number(data.get("seconds")) else None,
             "headline": headline(ms, metrics)}
    if error is not None:
        # The program could not finish (unfinished code, missing data, ...): show why, and never reuse
        # this result, since the cause may be outside the files of the fingerprint (a failed download).
        entry["reason"] = "could not run: " + error_line(error)
        entry["no_cache"] = True
    elif not passed:
        unmet = [badgelib.describe_condition(c) for c in ms.unmet(metrics, corpus)]
        entry["reason"] = ("victory condition not met: " + ", ".join(unmet)) if unmet else \
            "the milestone reported a failed check (see its output)"
    sample = _clean_sample(details.get("sample") if details else data.get("sample"))
    if sample:
        entry["sample"] = sample
    if corpus:
        entry["corpus"] = corpus
        entry["thresholds"] = ms.thresholds_for(corpus)
    return entry


def judged(result: dict | None) -> bool:
    """A result that ran to the end and was judged (passed or failed), as opposed to 'could not run'."""
    return isinstance(result, dict) and not result.get("error") and isinstance(result.get("metrics"), dict)


def record_milestone_result(number: int, result: dict, root: Path | None = None) -> bool:
    """Store a milestone result in .tito unless it could not run and a judged result for the same code
    is already there (a failed download must not erase a pass). Returns whether it was stored."""
    old = load_milestone_result(number, root)
    if not judged(result) and judged(old) and old.get("fingerprint") == result.get("fingerprint"):
        return False
    atomic_write_json(milestone_result_path(number, root), result)
    return True


def committed_result(progress: dict, ms: Milestone) -> dict | None:
    """The judged result of `ms` in a badges/progress.json (student-writable, so checked and re-judged)."""
    entry = (progress.get("milestones") or {}).get(str(ms.number)) if isinstance(progress, dict) else None
    if not isinstance(entry, dict) or entry.get("status") not in ("passed", "failed"):
        return None
    if not isinstance(entry.get("cache_key"), str) or not isinstance(entry.get("metrics"), dict):
        return None
    clean = milestone_entry(ms, entry)
    if clean.pop("no_cache", False):
        return None
    url = entry.get("verified_by")
    clean.update({"cache_key": entry["cache_key"],
                  "verified_by": url if isinstance(url, str) and url.startswith("https://") else None,
                  "commit": entry.get("commit") if isinstance(entry.get("commit"), str) else None,
                  "dirty": entry.get("dirty") is True})
    return clean


def local_result(root: Path, ms: Milestone) -> dict | None:
    """The judged result of `tito milestone run N` on this machine (.tito/), as a progress entry.
    This is how a milestone passed locally shows in the next `tito grade`."""
    data = load_milestone_result(ms.number, root)
    if not judged(data) or data.get("tiny") or not isinstance(data.get("fingerprint"), str):
        return None
    clean = milestone_entry(ms, data)
    clean.pop("no_cache", None)
    clean.update({"cache_key": data["fingerprint"], "verified_by": None, "commit": None, "dirty": None,
                  "ran": "locally with `tito milestone run`"})
    return clean


def milestone_state(root: Path, course: Course, ms: Milestone, modules: dict[str, dict] | None = None,
                    checksums: dict[str, str] | None = None) -> tuple[str, dict | None]:
    """("passed" | "failed" | "stale" | "ready" | "locked", the result it is based on or None).

    The current result is the one in badges/progress.json or the local `tito milestone run` result
    whose fingerprint matches the code now (the same choice `tito grade` makes). Without one, a
    milestone whose modules all pass is "ready", else "locked"; an old result for other code makes it
    "stale".
    """
    root = Path(root)
    modules = module_states(root, course) if modules is None else modules
    key = milestone_fingerprint(root, ms, checksums, course)
    stored = [e for e in (committed_result(_progress(root), ms), local_result(root, ms)) if e is not None]
    current = next((e for e in stored if e["cache_key"] == key), None)
    if current is not None:
        return current["status"], current
    if all(modules.get(r, {}).get("status") == "passed" for r in ms.requires):
        return ("stale" if stored else "ready"), (stored[0] if stored else None)
    return "locked", (stored[0] if stored else None)


def missing_modules(ms: Milestone, modules: dict[str, dict]) -> list[str]:
    return [r for r in ms.requires if modules.get(r, {}).get("status") != "passed"]
