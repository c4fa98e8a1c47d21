"""`tito classroom regrade`: the grade of a student repository that the instructor can defend.

    clone the student's repository without checking it out (a bare clone: no file of theirs, and no
    symbolic link, ever lands on this machine's file system as they wrote it)
      -> read ONLY their module sources (course.yaml `source` files, and extra tinytorch/*.py they added)
         from the commit's objects: regular files only, size-capped; a symbolic link (a file or the whole
         tinytorch/ folder) is never followed, the module is graded as its stub
      -> lay them over a fresh copy of the instructor's tree built like a release (every module a stub,
         no reference solution anywhere in it, no tooling tests)
      -> in an OS sandbox (grading/instructor/sandbox.py), run the module tests: their report is the
         student's CLAIM, produced next to student code, so it can only lower a grade
      -> in a second sandbox, run the module probes with fresh inputs drawn from this regrade's seed; the
         reference runs the same probes in its own process; the judge (this process, which never imports
         tinytorch) compares the outputs (grading/instructor/probe_judge.py)
      -> a module's points = its points x min(share of its tests that passed, share of its probes that
         matched the reference); it is passed when both are complete
      -> milestones (with --milestones) run in the sandbox through the milestone judge: the sandbox gets
         training data and unlabelled held-out inputs; the metrics are computed out here
      -> one JSON result per repository, written by this process only.

Every student gets new sandboxes, a new copy of the tree and new output folders; the base is read-only
inside every sandbox. `grading/instructor/SECURITY.md` is the threat model and its tests.
"""
from __future__ import annotations

import ast
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from grading.course import REPO_ROOT, Course, load_course
from grading.isolation import NoIsolation
from grading.state import atomic_write_json, atomic_write_text

NEVER_TAKEN = {"__init__.py", "conftest.py", "sitecustomize.py", "usercustomize.py", "setup.py"}
MAX_SOURCE_BYTES = 2 * 1024 * 1024
RESULT_SCHEMA = 1
REGULAR_FILE_MODES = ("100644", "100755")

# What a module source has no business touching: the test machinery, the grader, interpreter start-up,
# process exit, or the grader's output files. Inside the sandbox none of it can change a grade; the flags
# are kept because they tell the instructor someone tried. (The reference solution triggers none.)
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
    isolation: object = None          # a sandbox (grading/instructor/sandbox.py Bubblewrap) or NoIsolation
    seed: int | None = None           # probe inputs; None: a fresh random seed per regrade
    data_dir: Path | None = None      # the data sets for --milestones (default: $TINYTORCH_DATA, else the cache)
    timeout: float = 1800.0           # the module tests of one repository, seconds
    test_timeout: float = 120.0       # one test
    probe_timeout: float = 30.0       # one probe
    memory_mb: int = 4096             # address space of each sandboxed process
    jobs: int = os.cpu_count() or 1   # module test runs at once (each in its own sandbox)
    clone_timeout: float = 300.0
    keep_work: bool = False
    work_root: Path | None = None
    log: object = None

    def __post_init__(self):
        if self.isolation is None:
            self.isolation = NoIsolation()
        if self.seed is None:
            self.seed = secrets.randbits(62)
        if self.data_dir is None and os.environ.get("TINYTORCH_DATA"):
            self.data_dir = Path(os.environ["TINYTORCH_DATA"])

    def say(self, message: str) -> None:
        (self.log or (lambda m: print(m, file=sys.stderr, flush=True)))(message)


# ---- clone ----------------------------------------------------------------------------------------
def git_env(url: str, token: str | None) -> dict:
    """Environment for git: no prompts; a token (if any) as an HTTP header via GIT_CONFIG_* variables, so it
    never appears on a command line, in the clone's config, or in an error message."""
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
    """Bare-clone `url` into `dest` (no working tree); returns the HEAD commit. Raises CloneError."""
    env = git_env(url, token)
    depth = ["--depth", "1"] if "://" in url else []  # local paths ignore --depth (and warn)
    try:
        res = subprocess.run(["git", "clone", "--quiet", "--bare", "--no-tags", *depth, "--", url, str(dest)],
                             capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        raise CloneError(f"git clone of {_redact(url)} took longer than {timeout:g}s") from None
    if res.returncode != 0:
        message = _redact(res.stderr.strip().splitlines()[-1] if res.stderr.strip() else f"exit {res.returncode}",
                          token)
        raise CloneError(f"git clone of {_redact(url)} failed: {message}")
    head = subprocess.run(["git", "--git-dir", str(dest), "rev-parse", "HEAD"], capture_output=True, text=True,
                          env=env)
    if head.returncode != 0:
        raise CloneError(f"{_redact(url)} has no commits")
    return head.stdout.strip()


def _redact(text: str, token: str | None = None) -> str:
    import re
    text = re.sub(r"(https?://)[^/@\s]+@", r"\1***@", text)
    return text.replace(token, "***") if token else text


# ---- the student's files, from the commit ------------------------------------------------------------
@dataclass
class TreeEntry:
    mode: str
    sha: str
    size: int


def read_tree(git_dir: Path, commit: str) -> dict[str, TreeEntry]:
    """{path: TreeEntry} of every blob and link in `commit` (`git ls-tree -r`), read from the objects."""
    res = subprocess.run(["git", "--git-dir", str(git_dir), "ls-tree", "-r", "-z", "--long", commit],
                         capture_output=True, timeout=120)
    entries = {}
    for record in res.stdout.split(b"\0"):
        if not record:
            continue
        meta, _, path = record.partition(b"\t")
        parts = meta.decode("ascii", errors="replace").split()
        if len(parts) != 4:
            continue
        mode, _kind, sha, size = parts
        entries[path.decode("utf-8", errors="replace")] = TreeEntry(mode, sha, int(size) if size.isdigit() else -1)
    return entries


def read_blob(git_dir: Path, sha: str) -> bytes:
    return subprocess.run(["git", "--git-dir", str(git_dir), "cat-file", "blob", sha], capture_output=True,
                          timeout=120, check=True).stdout


@dataclass
class Overlay:
    taken: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def overlay_student(git_dir: Path, commit: str, work: Path, course: Course) -> Overlay:
    """Write the student's module sources (and extra tinytorch/*.py they added) over the stubbed tree."""
    ov = Overlay()
    tree = read_tree(git_dir, commit)
    sources = {m.source for m in course.modules}
    linked_folders = sorted({p for p, e in tree.items() if e.mode == "120000"
                             and any(s.startswith(p + "/") for s in sources)})
    for folder in linked_folders:
        ov.notes.append(f"{folder}/ is a symbolic link in the student's repository: nothing under it is taken")
    extra = sorted(p for p in tree if p.startswith("tinytorch/") and p.count("/") == 1 and p.endswith(".py")
                   and p not in sources)
    for rel in sorted(sources) + extra:
        entry = tree.get(rel)
        name = rel.rsplit("/", 1)[-1]
        if entry is None:
            if rel in sources:
                ov.missing.append(rel)
            continue
        if entry.mode not in REGULAR_FILE_MODES:
            ov.ignored.append(rel)
            kind = "a symbolic link" if entry.mode == "120000" else f"not a regular file (mode {entry.mode})"
            ov.notes.append(f"{rel} is {kind} in the student's repository: not taken (graded as the stub)")
            continue
        if rel not in sources and (name in NEVER_TAKEN or (work / rel).exists()):
            ov.ignored.append(rel)
            ours = work / rel
            if not (ours.is_file() and entry.size == ours.stat().st_size
                    and read_blob(git_dir, entry.sha) == ours.read_bytes()):
                ov.notes.append(f"{rel} differs from the course's copy: the course's copy is used")
            continue
        if entry.size > MAX_SOURCE_BYTES:
            ov.ignored.append(rel)
            ov.notes.append(f"{rel} is larger than {MAX_SOURCE_BYTES // 1024} KiB: not taken")
            continue
        target = work / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(read_blob(git_dir, entry.sha))
        ov.taken.append(rel)
        if rel not in sources:
            ov.notes.append(f"{rel} is a file the student added; taken")
    return ov


def audit_source(text: str, rel: str) -> list[str]:
    """Flags for code that reaches for the test machinery (for a human to look at, never a verdict)."""
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


# ---- the base: the instructor's tree with no solution in it ------------------------------------------
def prepare_base(instructor_dir: Path, dest: Path) -> Path:
    """The instructor's tree built like a release (every module stubbed), with the instructor folder (the
    probes and their worker) and without the tooling tests: what the sandbox is allowed to see."""
    from grading.instructor.release import build_release
    build_release(dest, instructor_dir, solutions_through=None, force=True, include_instructor_only=True)
    shutil.rmtree(dest / "tests", ignore_errors=True)
    return dest


# ---- grading one tree ----------------------------------------------------------------------------
def run_module_tests(work: Path, course: Course, opts: Options, scratch: Path) -> tuple[dict, bool]:
    """The module tests in the sandbox, each module in its own pytest process, run and scored exactly as
    `tito module test` runs and scores one module (grading/grade.py `grade_module`, grading/scoring.py):
    the student's CLAIM. One process per module means code in a later module's file never runs where an
    earlier module's tests are judged (`import tinytorch` loads a module file only when it is used), so
    a student who forges the report from module 05's file cannot spoil the claim of modules 01-04.
    Returns ({module id: ModuleScore}, whether any run crashed)."""
    from grading.grade import grade_module
    from grading.scoring import score_modules
    from grading.testrun import Limits
    limits = Limits(test_seconds=opts.test_timeout, run_seconds=opts.timeout, memory_mb=opts.memory_mb)
    scores = score_modules(course, {}, {})
    present = [m for m in course.modules if (work / m.folder).is_dir()]
    with ThreadPoolExecutor(max_workers=max(1, opts.jobs)) as pool:   # one sandbox per module, `jobs` at once
        graded = pool.map(lambda m: grade_module(work, course, m, limits, scratch / m.id, isolation=opts.isolation),
                          present)
        scores.update({m.id: score for m, score in zip(present, graded)})
    return scores, any(scores[m.id].crashed for m in present)


def run_probes(root: Path, names: dict[str, list[str]], opts: Options, scratch: Path) -> dict:
    """The answers of every probe in `names` with the `tinytorch` under `root` (a student's tree in the
    sandbox, or the instructor's reference), for this regrade's seed."""
    from grading.instructor.probe_judge import run_worker
    from grading.testrun import Limits
    wanted = [(m, p) for m in sorted(names) for p in names[m]]
    limits = Limits(memory_mb=opts.memory_mb, run_seconds=opts.timeout)
    return run_worker(root, opts.isolation, opts.seed, wanted, limits, scratch, opts.probe_timeout)


def reference_answers(opts: Options, scratch: Path) -> tuple[dict, dict]:
    """(probe names by module, the reference's answers) for this regrade's seed; computed once per class."""
    from grading.instructor.probe_judge import probe_names
    instructor = Path(opts.instructor_dir).resolve()
    names = probe_names(instructor)
    return names, run_probes(instructor, names, opts, scratch)


def grade_tree(work: Path, course: Course, opts: Options, scratch: Path, reference: tuple[dict, dict]) -> dict:
    """Tests (claimed) and probes (verified) of one overlaid tree -> per-module scores, never raising."""
    from grading.instructor.probe_judge import compare
    started = time.monotonic()
    claimed, crashed = run_module_tests(work, course, opts, scratch / "tests")
    tests_seconds = time.monotonic() - started
    names, ref_answers = reference
    student_answers = run_probes(work, names, opts, scratch / "probes")
    verdicts = compare(course, names, student_answers, ref_answers)
    modules, notes = {}, []
    for m in course.modules:
        tests, probes = claimed[m.id], verdicts[m.id]
        test_share = tests.points / m.points if m.points else 0.0
        share = min(test_share, probes.fraction) if probes.total else 0.0
        entry = {**tests.as_dict(), "points": round(m.points * share, 4),
                 "ok": bool(tests.ok and probes.total and probes.matched == probes.total),
                 "probes_matched": probes.matched, "probes_total": probes.total}
        if not probes.total:
            entry["note"] = "the course has no probes for this module, so its tests cannot be verified: 0 points"
        if probes.failures:
            entry["probe_failures"] = probes.failures[:20]
        if test_share > probes.fraction:
            notes.append(f"{m.id}: {tests.passed}/{tests.total} tests passed in the sandbox but only "
                         f"{probes.matched}/{probes.total} probes matched the reference; credited "
                         f"{share:.0%} of {m.points:g} points")
        modules[m.id] = entry
    out = {"modules": modules, "notes": notes, "tests_seconds": round(tests_seconds, 1)}
    if crashed:
        out["crash"] = "a sandboxed test run crashed: " + "; ".join(
            f"{k}: {v['reason']}" for k, v in modules.items() if v.get("crashed"))[:600]
    return out


# ---- progress.json (what the student's repository claims) ---------------------------------------------
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
    """Modules, points and milestones out of a (student-written, so untrusted) progress.json document."""
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


class Regrader:
    """Regrades repositories one after another; the stubbed base and the reference's probe answers are
    made once and shared read-only (nothing a student's sandbox does can change them)."""

    def __init__(self, opts: Options):
        self.opts = opts
        self.instructor = Path(opts.instructor_dir).resolve()
        self.course = load_course(self.instructor / "assignments" / "course.yaml")
        self.root = Path(tempfile.mkdtemp(prefix="tito-regrade-", dir=opts.work_root))
        self.base = prepare_base(self.instructor, self.root / "base")
        self.reference = reference_answers(opts, self.root / "reference")
        self.count = 0

    def close(self) -> None:
        if self.opts.keep_work:
            self.opts.say(f"  work folder kept: {self.root}")
        else:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def regrade(self, repository: str, clone_url: str, results_dir: Path, *, github_username: str = "",
                token: str | None = None) -> dict:
        """Clone, overlay, grade one repository in fresh sandboxes; writes and returns its result."""
        opts, course = self.opts, self.course
        self.count += 1
        started = time.monotonic()
        result = {"schema": RESULT_SCHEMA, "repository": repository, "github_username": github_username,
                  "commit": None, "status": "error", "points": 0.0, "max_points": course.total_points,
                  "modules": {}, "modules_passed": [], "milestones": {}, "milestones_passed": [], "notes": [],
                  "flags": [], "taken": [], "verified": bool(opts.isolation.verified),
                  "sandbox": opts.isolation.name, "seed": opts.seed}
        if not opts.isolation.verified:
            result["notes"].append("UNVERIFIED: graded without an OS sandbox (--unsandboxed); student code ran "
                                   "with the grader's permissions and could have changed this result")
        work_root = self.root / f"student-{self.count}"
        work_root.mkdir()
        try:
            git_dir = work_root / "student.git"
            try:
                result["commit"] = clone(clone_url, git_dir, opts.clone_timeout, token)
            except CloneError as exc:
                result["status"] = "clone failed"
                result["notes"].append(str(exc))
                return _finish(result, results_dir, started)
            work = work_root / "course"
            shutil.copytree(self.base, work, symlinks=True)
            ov = overlay_student(git_dir, result["commit"], work, course)
            shutil.rmtree(git_dir, ignore_errors=True)   # nothing of the clone stays beside the sandbox
            result["taken"] = ov.taken
            result["notes"] += ov.notes + [f"{rel} is missing in the repository: graded as the stub"
                                           for rel in ov.missing]
            for rel in ov.taken:
                result["flags"] += audit_source((work / rel).read_text(encoding="utf-8", errors="replace"), rel)
            graded = grade_tree(work, course, opts, work_root / "scratch", self.reference)
            result["modules"] = graded["modules"]
            result["notes"] += graded["notes"]
            result["modules_passed"] = [k for k, v in result["modules"].items() if v["ok"]]
            if opts.milestones:
                result["milestones"] = grade_milestones(work, course, opts, result["modules_passed"],
                                                        work_root / "milestones")
                result["milestones_passed"] = sorted(int(k) for k, v in result["milestones"].items()
                                                     if v.get("status") == "passed")
            result["points"] = round(sum(v["points"] for v in result["modules"].values()), 4)
            result["seconds_tests"] = graded["tests_seconds"]
            if graded.get("crash"):
                result["status"] = "graded with a crash"
                result["notes"].append(graded["crash"])
            else:
                result["status"] = "graded"
            return _finish(result, results_dir, started)
        finally:
            if not opts.keep_work:
                shutil.rmtree(work_root, ignore_errors=True)


def grade_milestones(work: Path, course: Course, opts: Options, modules_passed: list[str], scratch: Path) -> dict:
    """The milestones whose modules passed in this regrade, each program in the sandbox and judged outside
    it by the same judge as `tito milestone run` (grading/judge.py): the sandbox gets training data and
    held-out inputs without labels; the metrics are computed here. Same schedule and seed as the
    student's own run, so an honest student's numbers are reproduced."""
    from grading.judge import judge_milestone
    from grading.state import milestone_entry
    results = {}
    for ms in course.milestones:
        missing = [r for r in ms.requires if r not in modules_passed]
        if missing:
            results[str(ms.number)] = {"status": "locked", "reason": "needs all tests passing in: " + ", ".join(missing)}
            continue
        opts.say(f"  milestone {ms.number} ({ms.name}) in the sandbox")
        data = judge_milestone(ms, course, work, opts.data_dir, scratch / f"m{ms.number}", isolation=opts.isolation,
                               out=lambda line: None, echo=lambda line: None)
        if data.get("error") and str(data["error"]).startswith("stopped after"):
            entry = {"status": "error", "reason": data["error"][:600]}
        else:
            entry = milestone_entry(ms, data)
            entry.pop("no_cache", None)
        entry.update(seconds=data.get("seconds"), verified=bool(data.get("verified")))
        if isinstance(data.get("stopped_at"), dict):
            entry["stopped_at"] = data["stopped_at"]
        results[str(ms.number)] = entry
    return results


def regrade_repo(repository: str, clone_url: str, results_dir: Path, opts: Options, *,
                 github_username: str = "", token: str | None = None) -> dict:
    """One repository (a Regrader for a single student)."""
    with Regrader(opts) as regrader:
        return regrader.regrade(repository, clone_url, results_dir, github_username=github_username, token=token)


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


CSV_COLUMNS = ["github_username", "repository", "commit", "status", "verified", "modules_passed", "points",
               "max_points", "milestones_passed", "flags"]


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
                         "yes" if r.get("verified") else "no",
                         len(r.get("modules_passed", [])), f"{float(r.get('points', 0)):g}",
                         f"{float(r.get('max_points', 0)):g}", len(r.get("milestones_passed", [])),
                         len(r.get("flags", []))])
    atomic_write_text(out_dir / "regrade.csv", buf.getvalue())
    return {"count": len(ordered), "results": ordered}
