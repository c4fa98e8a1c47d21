"""`tito classroom regrade`: the trustworthy grade of a student repository.

    clone the student's repository (git, any URL: https, file://, or a local path)
      -> take ONLY their module sources (course.yaml `source` files, plus extra .py files they added
         under tinytorch/ - never __init__.py, conftest.py, sitecustomize.py or a symlink)
      -> overlay them on the instructor's own copy of everything else: tests (including hidden tests in
         assignments/*/hidden/), grader, course.yaml, pyproject.toml, milestone programs, and the
         framework's infrastructure files (built like a release, so a module the student deleted is a
         stub, never the reference solution)
      -> run the grader in a child process with time and memory limits
      -> write one JSON result per repository into the results folder, for `roster` and `merge`.

So edited tests, an edited grader or course.yaml, added conftest.py/pytest.ini files, hand-written badges
or a rewritten history change nothing here. Student code still runs inside the test process; a static
audit of the taken sources flags code that reaches for the test machinery (pytest internals, the grader,
sys.modules, atexit, os._exit, ctypes, ...), and the flags are reported with the result.

The grader is swappable (`GRADERS`): "tito" runs `python -m grading grade` of the overlaid tree when the
grader offers a machine-readable result, "pytest" runs the module tests through grading.testrun (the
grader's own limited test runner) and scores them from course.yaml. "auto" picks tito when available.
"""
from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from grading.course import REPO_ROOT, Course, load_course
from grading.state import atomic_write_json, atomic_write_text

NEVER_TAKEN = {"__init__.py", "conftest.py", "sitecustomize.py", "usercustomize.py", "setup.py"}
MAX_SOURCE_BYTES = 2 * 1024 * 1024
RESULT_SCHEMA = 1

# What a module source has no business touching: the test machinery, the grader, interpreter start-up,
# process exit, or the grader's output files. (The reference solution triggers none of these.)
SUSPICIOUS_IMPORTS = {"pytest", "_pytest", "pluggy", "grading", "pytest_jsonreport", "atexit", "ctypes", "gc",
                      "builtins", "sitecustomize", "usercustomize", "hypothesis", "subprocess", "signal"}
SUSPICIOUS_ATTRS = {("os", "_exit"), ("sys", "modules"), ("sys", "settrace"), ("sys", "setprofile"),
                    ("sys", "_getframe"), ("sys", "__stdout__"), ("sys", "meta_path"), ("sys", "path_hooks"),
                    ("os", "kill"), ("os", "fork"), ("os", "setsid"), ("os", "killpg"), ("sys", "argv"),
                    ("os", "abort"), ("os", "system"), ("os", "popen"), ("os", "posix_spawn"), ("os", "execv"),
                    ("os", "execve"), ("os", "execvp"), ("os", "execl"), ("os", "execlp")}
SUSPICIOUS_NAMES = {"__builtins__", "__import__", "exec", "eval"}
SUSPICIOUS_PATH_WORDS = ("badges", "progress", "report", "manifest", ".tito", "grading", "assignments", "conftest")


@dataclass
class Options:
    instructor_dir: Path = REPO_ROOT
    milestones: bool = False
    grader: str = "auto"              # auto | tito | pytest
    timeout: float = 1800.0           # whole grading run of one repository, seconds
    test_timeout: float = 120.0       # one test
    memory_mb: int = 4096             # address space of the grading child
    clone_timeout: float = 300.0
    keep_work: bool = False
    work_root: Path | None = None
    log: object = None

    def say(self, message: str) -> None:
        (self.log or (lambda m: print(m, file=sys.stderr, flush=True)))(message)


@dataclass
class Overlay:
    taken: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# ---- clone ----------------------------------------------------------------------------------------
def git_env(url: str, token: str | None) -> dict:
    """Environment for git: no prompts; a token (if any) as an HTTP header via GIT_CONFIG_* variables, so it
    never appears on a command line, in the clone's .git/config, or in an error message."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_CONFIG_")}
    env["GIT_TERMINAL_PROMPT"] = "0"
    env["GIT_ASKPASS"] = "true"
    if token and url.startswith("https://"):
        import base64
        from urllib.parse import urlsplit
        host = urlsplit(url).netloc
        basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
        env.update({"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": f"http.https://{host}/.extraheader",
                    "GIT_CONFIG_VALUE_0": f"AUTHORIZATION: basic {basic}"})
    return env


class CloneError(RuntimeError):
    pass


def clone(url: str, dest: Path, timeout: float = 300.0, token: str | None = None) -> str:
    """Shallow-clone `url` into `dest`; returns the HEAD commit. Raises CloneError with git's message."""
    env = git_env(url, token)
    depth = ["--depth", "1"] if "://" in url else []  # local paths ignore --depth (and warn)
    try:
        res = subprocess.run(["git", "clone", "--quiet", "--no-tags", *depth, "--", url, str(dest)],
                             capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        raise CloneError(f"git clone of {_redact(url)} took longer than {timeout:g}s") from None
    if res.returncode != 0:
        message = _redact(res.stderr.strip().splitlines()[-1] if res.stderr.strip() else f"exit {res.returncode}",
                          token)
        raise CloneError(f"git clone of {_redact(url)} failed: {message}")
    head = subprocess.run(["git", "-C", str(dest), "rev-parse", "HEAD"], capture_output=True, text=True, env=env)
    return head.stdout.strip()


def _redact(text: str, token: str | None = None) -> str:
    import re
    text = re.sub(r"(https?://)[^/@\s]+@", r"\1***@", text)
    return text.replace(token, "***") if token else text


# ---- overlay --------------------------------------------------------------------------------------
def prepare_base(instructor_dir: Path, dest: Path) -> Path:
    """The instructor's tree with every module stubbed and instructor-only files (hidden tests) kept."""
    from grading.instructor.release import build_release
    build_release(dest, instructor_dir, solutions_through=None, force=True, include_instructor_only=True)
    return dest


def overlay_student(student_dir: Path, work: Path, course: Course) -> Overlay:
    """Copy the student's module sources (and extra tinytorch/*.py they added) over the stubbed base."""
    ov = Overlay()
    sources = {m.source for m in course.modules}
    for rel in sorted(sources):
        src = student_dir / rel
        if src.is_symlink():
            ov.ignored.append(rel)
            ov.notes.append(f"{rel} is a symbolic link in the student's repository: not taken (graded as a stub)")
        elif src.is_file():
            if src.stat().st_size > MAX_SOURCE_BYTES:
                ov.ignored.append(rel)
                ov.notes.append(f"{rel} is larger than {MAX_SOURCE_BYTES // 1024} KiB: not taken")
                continue
            _copy(src, work / rel)
            ov.taken.append(rel)
        else:
            ov.missing.append(rel)
    package = student_dir / "tinytorch"
    if package.is_dir():
        for src in sorted(package.glob("*.py")):
            rel = f"tinytorch/{src.name}"
            if rel in sources:
                continue
            if (work / rel).exists() or src.name in NEVER_TAKEN or src.is_symlink():
                if (work / rel).exists():
                    try:
                        same = src.read_bytes() == (work / rel).read_bytes()
                    except OSError:
                        same = False
                    if not same:
                        ov.notes.append(f"{rel} differs from the course's copy: the course's copy is used")
                else:
                    ov.notes.append(f"{rel} is not taken (files of that name never come from students)")
                ov.ignored.append(rel)
                continue
            if src.stat().st_size <= MAX_SOURCE_BYTES:
                _copy(src, work / rel)
                ov.taken.append(rel)
                ov.notes.append(f"{rel} is a file the student added; taken")
    return ov


def _copy(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(src.read_bytes())


def audit_source(text: str, rel: str) -> list[str]:
    """Flags for code that reaches for the test machinery (for a human to look at, not a verdict)."""
    try:
        tree = ast.parse(text, filename=rel)
    except SyntaxError as exc:
        return [f"{rel}:{exc.lineno}: does not parse ({exc.msg})"]
    flags = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for name in names:
                if name.split(".")[0] in SUSPICIOUS_IMPORTS:
                    flags.add(f"{rel}:{node.lineno}: imports {name}")
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if (node.value.id, node.attr) in SUSPICIOUS_ATTRS:
                flags.add(f"{rel}:{node.lineno}: uses {node.value.id}.{node.attr}")
        elif isinstance(node, ast.Name) and node.id in SUSPICIOUS_NAMES:
            flags.add(f"{rel}:{node.lineno}: uses {node.id}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and any(word in node.value for word in SUSPICIOUS_PATH_WORDS) and "/" in node.value + "." \
                and len(node.value) < 200 and not node.value.strip().count(" ") > 3:
            flags.add(f"{rel}:{node.lineno}: names the path {node.value!r}")
    return sorted(flags, key=lambda f: (f.split(":")[0], int(f.split(":")[1]) if f.split(":")[1].isdigit() else 0))


# ---- graders --------------------------------------------------------------------------------------
def _module_scores(course: Course, tests: dict, collect_errors: dict, crashed: str = "") -> dict:
    """{module id: {passed, failed, total, points, max_points, ok}} from per-test outcomes."""
    modules = {}
    for m in course.modules:
        outcomes = [ok for nodeid, ok in tests.items() if course.module_for_path(nodeid) is m]
        errors = [path for path in collect_errors if course.module_for_path(path) is m]
        passed = sum(outcomes)
        total = len(outcomes) + len(errors)
        ok = total > 0 and passed == total
        modules[m.id] = {"passed": passed, "failed": total - passed, "total": total, "ok": ok,
                         "points": round(m.points * passed / total, 4) if total else 0.0,
                         "max_points": m.points}
        if errors:
            modules[m.id]["errors"] = [f"{p}: {collect_errors[p][:300]}" for p in errors]
        if total == 0:
            modules[m.id]["note"] = "no tests collected"
    return modules


def grade_with_pytest(work: Path, opts: Options, course: Course) -> dict:
    """Run every module's tests (hidden ones included) through grading.testrun; score by course.yaml."""
    from grading.testrun import Limits, run_pytest
    paths = [m.folder for m in course.modules if (work / m.folder).is_dir()]
    limits = Limits(test_seconds=opts.test_timeout, run_seconds=opts.timeout, memory_mb=opts.memory_mb)
    with tempfile.TemporaryDirectory(prefix="tito-regrade-run-") as tmp:
        result = run_pytest(work, paths, limits, Path(tmp))
    tests = {nodeid: t.ok for nodeid, t in result.tests.items()}
    out = {"runner": "pytest (grading.testrun)", "modules": _module_scores(course, tests, result.collect_errors),
           "milestones": {}, "seconds": round(result.seconds, 1)}
    if result.crashed:
        out["crash"] = result.crash_reason
    if opts.milestones:
        out["notes"] = ["milestones are only run by the 'tito' grader; this run graded modules only"]
    return out


def grade_with_tito(work: Path, opts: Options, course: Course) -> dict:
    """Run the instructor's grader (`python -m grading grade`) in the overlaid tree, in a limited child.

    The grader runs the tests in its own limited pytest child and writes badges/progress.json, which is
    deleted first so that only this run's result can be read back.
    """
    from grading.testrun import Limits, Watched, child_env, describe_exit, read_tail
    progress_file = work / "badges" / "progress.json"
    progress_file.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="tito-regrade-grade-") as tmp:
        tmp = Path(tmp)
        cmd = [sys.executable, "-m", "grading", "grade", "--no-readme",
               "--test-timeout", f"{opts.test_timeout:g}", "--run-timeout", f"{opts.timeout:g}",
               "--memory-mb", str(opts.memory_mb)]
        if not opts.milestones:
            cmd.append("--skip-milestones")
        env = child_env(work, {"TITO_STATE_DIR": str(tmp / "state")})
        env.pop("GITHUB_STEP_SUMMARY", None)  # a regrade is not the student's CI run
        # The grader limits its own children; this outer limit only catches a grader that hangs.
        limits = Limits(test_seconds=opts.test_timeout, run_seconds=opts.timeout * 2 + 600, memory_mb=0)
        start = time.monotonic()
        watched = Watched(cmd, work, env, limits, tmp / "output.txt", limits.run_seconds, None)
        rc = watched.run()
        seconds = time.monotonic() - start
        try:
            data = json.loads(progress_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = None
        if data is None or rc != 0:
            reason = "timed out" if watched.timed_out else describe_exit(rc)
            return {"runner": "tito grade", "modules": _module_scores(course, {}, {}), "milestones": {},
                    "crash": f"the grader {reason}: {read_tail(tmp / 'output.txt', 600)}",
                    "seconds": round(seconds, 1)}
    summary = summarize_progress(data, course)
    out = {"runner": "tito grade", "modules": summary["modules"], "milestones": summary["milestones"],
           "seconds": round(seconds, 1)}
    if data.get("test_run") not in (None, "single run"):
        out["notes"] = [f"grader test run: {data.get('test_run')}"]
    return out


GRADERS = {"pytest": grade_with_pytest, "tito": grade_with_tito}


def tito_grader_available(work: Path) -> bool:
    """The overlaid tree has the grader (`python -m grading grade`)."""
    return (work / "grading" / "grade.py").is_file() and (work / "grading" / "__main__.py").is_file()


def pick_grader(name: str, work: Path):
    if name == "auto":
        name = "tito" if tito_grader_available(work) else "pytest"
    return GRADERS[name]


# ---- progress.json (the grader's summary) -------------------------------------------------------
def _entries(value) -> dict:
    if isinstance(value, dict):
        return {str(k): v for k, v in value.items() if isinstance(v, dict)}
    if isinstance(value, list):
        return {str(v.get("id") or v.get("number")): v for v in value if isinstance(v, dict)}
    return {}


def module_ok(entry: dict) -> bool:
    if "ok" in entry:
        return entry["ok"] is True
    if entry.get("status") in ("passed", "complete", "completed"):
        return True
    try:
        return int(entry.get("total", 0)) > 0 and int(entry.get("passed", -1)) == int(entry["total"])
    except (TypeError, ValueError, KeyError):
        return False


def milestone_ok(entry: dict) -> bool:
    return entry.get("status") == "passed" or entry.get("passed") is True


def summarize_progress(data: dict, course: Course) -> dict:
    """Modules, points and milestones out of a progress.json (or `grade --json`) document."""
    data = data if isinstance(data, dict) else {}
    raw_modules = _entries(data.get("modules"))
    modules = {}
    for m in course.modules:
        e = raw_modules.get(m.id) or raw_modules.get(str(m.number)) or {}
        points = e.get("points")
        if not isinstance(points, (int, float)):
            try:
                points = m.points * int(e.get("passed", 0)) / int(e.get("total") or 0)
            except (TypeError, ValueError, ZeroDivisionError):
                points = 0.0
        modules[m.id] = {"passed": e.get("passed", 0), "total": e.get("total", 0), "ok": module_ok(e),
                         "points": float(points), "max_points": m.points}
    raw_ms = _entries(data.get("milestones"))
    milestones = {}
    for ms in course.milestones:
        e = raw_ms.get(str(ms.number)) or raw_ms.get(f"m{ms.number}") or {}
        milestones[str(ms.number)] = {"status": e.get("status", "not_run" if e else "locked"),
                                      "passed": milestone_ok(e), "metrics": e.get("metrics", {})}
    points = data.get("points", (data.get("totals") or {}).get("points"))
    if isinstance(points, dict):
        points = points.get("earned", points.get("points"))
    if not isinstance(points, (int, float)):
        points = sum(v["points"] for v in modules.values())
    return {"modules": modules, "milestones": milestones, "points": float(points),
            "max_points": course.total_points,
            "modules_passed": [k for k, v in modules.items() if v["ok"]],
            "milestones_passed": [int(k) for k, v in milestones.items() if v["passed"]]}


# ---- one repository ------------------------------------------------------------------------------
def result_path(results_dir: Path, repository: str) -> Path:
    return Path(results_dir) / (repository.replace("/", "__") + ".json")


def regrade_repo(repository: str, clone_url: str, results_dir: Path, opts: Options, *,
                 github_username: str = "", token: str | None = None, base: Path | None = None) -> dict:
    """Clone, overlay, grade one repository; writes and returns its result."""
    instructor = Path(opts.instructor_dir).resolve()
    course = load_course(instructor / "assignments" / "course.yaml")
    started = time.monotonic()
    result = {"schema": RESULT_SCHEMA, "repository": repository, "github_username": github_username,
              "commit": None, "status": "error", "points": 0.0, "max_points": course.total_points,
              "modules": {}, "modules_passed": [], "milestones": {}, "milestones_passed": [], "notes": [],
              "flags": [], "taken": [], "runner": None}
    work_root = Path(tempfile.mkdtemp(prefix="tito-regrade-", dir=opts.work_root))
    try:
        student = work_root / "student"
        try:
            result["commit"] = clone(clone_url, student, opts.clone_timeout, token)
        except CloneError as exc:
            result["status"] = "clone failed"
            result["notes"].append(str(exc))
            return _finish(result, results_dir, started)
        work = work_root / "work"
        if base is not None:
            shutil.copytree(base, work, symlinks=False)
        else:
            prepare_base(instructor, work)
        ov = overlay_student(student, work, course)
        result["taken"] = ov.taken
        result["notes"] += ov.notes + [f"{rel} is missing in the repository: graded as the stub" for rel in ov.missing]
        for rel in ov.taken:
            result["flags"] += audit_source((work / rel).read_text(encoding="utf-8", errors="replace"), rel)
        grader = pick_grader(opts.grader, work)
        graded = grader(work, opts, course)
        result["runner"] = graded.get("runner")
        result["modules"] = graded["modules"]
        result["milestones"] = graded.get("milestones", {})
        result["notes"] += graded.get("notes", [])
        result["points"] = round(sum(v["points"] for v in result["modules"].values()), 4)
        result["modules_passed"] = [k for k, v in result["modules"].items() if v["ok"]]
        result["milestones_passed"] = sorted(int(k) for k, v in result["milestones"].items() if v.get("passed"))
        if graded.get("crash"):
            result["status"] = "graded with a crash"
            result["notes"].append(graded["crash"])
        else:
            result["status"] = "graded"
        return _finish(result, results_dir, started)
    finally:
        if opts.keep_work:
            opts.say(f"  work folder kept: {work_root}")
        else:
            shutil.rmtree(work_root, ignore_errors=True)


def _finish(result: dict, results_dir: Path, started: float) -> dict:
    result["seconds"] = round(time.monotonic() - started, 1)
    atomic_write_json(result_path(results_dir, result["repository"]), result)
    return result


# ---- merge (the class workflow's last job) --------------------------------------------------------
def load_results(dirs) -> dict[str, dict]:
    """{repository: result} from result files anywhere under `dirs` (shard artifacts are sub-folders)."""
    out = {}
    for d in dirs:
        for p in sorted(Path(d).rglob("*.json")):
            try:
                data = json.loads(p.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(data, dict) and data.get("schema") == RESULT_SCHEMA and data.get("repository"):
                out[data["repository"]] = data
    return out


CSV_COLUMNS = ["github_username", "repository", "commit", "status", "modules_passed", "points", "max_points",
               "milestones_passed", "flags"]


def merge_results(dirs, out_dir: Path, course: Course | None = None) -> dict:
    """Merge shard result folders into out_dir/results/*.json + regrade.json + regrade.csv."""
    import csv
    import io
    out_dir = Path(out_dir)
    results = load_results(dirs)
    for repo, data in results.items():
        target = result_path(out_dir / "results", repo)
        if not target.exists() or target.read_text(encoding="utf-8") != json.dumps(data, indent=2, sort_keys=True) + "\n":
            atomic_write_json(target, data)
    ordered = [results[k] for k in sorted(results, key=str.lower)]
    atomic_write_json(out_dir / "regrade.json", {"schema": RESULT_SCHEMA, "results": ordered})
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in ordered:
        writer.writerow([r.get("github_username", ""), r["repository"], r.get("commit") or "", r.get("status", ""),
                         len(r.get("modules_passed", [])), f"{float(r.get('points', 0)):g}",
                         f"{float(r.get('max_points', 0)):g}", len(r.get("milestones_passed", [])),
                         len(r.get("flags", []))])
    atomic_write_text(out_dir / "regrade.csv", buf.getvalue())
    return {"count": len(ordered), "results": ordered}
