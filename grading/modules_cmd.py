"""`tito module list|start NN|test NN|complete NN`: the everyday loop of working on a module.

    tito module list          every module: points, your last test result, the milestone it unlocks
    tito module start 04      what module 04 asks for, which file to edit, how many stubs are left
    tito module test 04       run module 04's tests with full pytest output (tracebacks)
    tito module complete 04   grade module 04 as CI would, record it, and show what passing unlocks

Both `test` and `complete` run the tests of THIS repository against THIS repository's `tinytorch` (your
code, never a reference copy), in a child process with the grader's time and memory limits, and record
the result in .tito/modules.json, which `tito milestone status` reads.
"""
from __future__ import annotations

import re
import tempfile
import time
from pathlib import Path

from grading import badges as badgelib
from grading import state
from grading.console import Console
from grading.course import REPO_ROOT, Course, CourseError, Module, load_course
from grading.testrun import Limits

STUB_RE = r'raise NotImplementedError\(\s*f?["\']{id}:'


def _course(root: Path) -> Course:
    return load_course(root / "assignments" / "course.yaml")


def stubs_left(root: Path, module: Module) -> int:
    """How many `raise NotImplementedError("<id>: ...")` stubs of the release are still in the source."""
    try:
        text = (root / module.source).read_text(encoding="utf-8")
    except OSError:
        return 0
    return len(re.findall(STUB_RE.format(id=re.escape(module.id)), text))


def _status_text(out: Console, entry: dict | None) -> tuple[str, str]:
    if not entry or not entry.get("total"):
        return out.sym("todo"), "not tested yet"
    text = f"{entry.get('passed', 0)}/{entry.get('total', 0)} tests"
    return (out.sym("pass") if entry.get("ok") else out.sym("fail")), text


# --- list ------------------------------------------------------------------------------------------

def cmd_list(args) -> int:
    out, root = args.console, REPO_ROOT
    course = _course(root)
    results = state.load_module_results()
    out.line(out.style(f"{course.name}: {len(course.modules)} modules, {badgelib.fmt_number(course.total_points)} points",
                       "bold"))
    for m in course.modules:
        sym, status = _status_text(out, results.get(m.id))
        unlock = ""
        if m.unlocks is not None:
            ms = course.milestone(m.unlocks)
            unlock = f"  {out.sym('arrow')} milestone {ms.number}: {ms.badge}"
        out.line(f"  {sym} {m.id:<18} {m.title:<34} {badgelib.fmt_number(m.points):>3} pts  {status:<16}{unlock}".rstrip())
    out.line("")
    out.line("Start one with `tito module start NN`; check it with `tito module complete NN`.")
    return 0


# --- start -----------------------------------------------------------------------------------------

def _readme_intro(path: Path, max_lines: int = 25) -> list[str]:
    """The README up to its second '## ' heading (title, objectives), at most `max_lines` lines."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    shown, headings = [], 0
    for line in lines:
        if line.startswith("## "):
            headings += 1
            if headings == 2:
                break
        shown.append(line)
        if len(shown) >= max_lines:
            shown.append("...")
            break
    while shown and not shown[-1].strip():
        shown.pop()
    return shown


def cmd_start(args) -> int:
    out, root = args.console, REPO_ROOT
    course = _course(root)
    m = course.module(args.module)
    readme = root / m.folder / "README.md"
    out.line(out.style(f"Module {m.id}: {m.title} ({badgelib.fmt_number(m.points)} points)", "bold"))
    out.line("")
    for line in _readme_intro(readme):
        out.line("  " + line)
    out.line("")
    out.line(f"{out.sym('dot')} Read:  {readme.relative_to(root).as_posix()}")
    out.line(f"{out.sym('dot')} Edit:  {m.source}")
    left = stubs_left(root, m)
    if left:
        out.line(f"{out.sym('dot')} Still to implement: {left} place(s) marked `raise NotImplementedError(\"{m.id}: ...\")`")
    out.line(f"{out.sym('dot')} Test:  tito module test {m.id[:2]}   (full pytest output)")
    out.line(f"{out.sym('dot')} Done?  tito module complete {m.id[:2]}")
    if m.unlocks is not None:
        ms = course.milestone(m.unlocks)
        out.line(f"{out.sym('rocket')} Passing this module (with {', '.join(r for r in ms.requires if r != m.id) or 'nothing else'})"
                 f" unlocks milestone {ms.number}, {ms.name}: the {ms.badge} badge.")
    return 0


# --- test / complete -------------------------------------------------------------------------------

def _run(root: Path, course: Course, module: Module, args, echo):
    """Run one module's tests in the grader's limited child process; returns (ModuleGrade, crash reason)."""
    from grading.grade import ModuleGrade, _assign
    from grading.testrun import run_pytest  # the same limited runner as `tito grade`
    limits = Limits(test_seconds=args.test_timeout, run_seconds=args.run_timeout)
    with tempfile.TemporaryDirectory(prefix="tito-module-") as tmp:
        run = run_pytest(root, [module.folder], limits, Path(tmp), echo=echo, verbose=echo is not None)
    grade = ModuleGrade(module)
    _assign(course, run, {module.id: grade})
    return grade, (run.crash_reason if run.crashed else "")


def _record(grade, completed: bool) -> dict:
    entry = {"passed": grade.passed, "failed": grade.total - grade.passed, "total": grade.total,
             "skipped": grade.skipped, "ok": grade.ok, "points": grade.points,
             "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    if completed and grade.ok:
        entry["completed"] = True
    try:
        state.save_module_results({grade.module.id: entry})
    except OSError:
        pass
    return entry


def _module_with_tests(args):
    """(course, module) for args.module, or None after saying that its test folder is missing."""
    course = _course(REPO_ROOT)
    m = course.module(args.module)
    if not (REPO_ROOT / m.folder).is_dir():
        args.console.line(f"{args.console.sym('fail')} no tests for {m.id}: {m.folder}/ does not exist")
        return None
    return course, m


def cmd_test(args) -> int:
    out, root = args.console, REPO_ROOT
    found = _module_with_tests(args)
    if found is None:
        return 1
    course, m = found
    out.line(out.style(f"Testing {m.id} ({m.title}) with your code in {m.source}", "bold"))
    grade, crash = _run(root, course, m, args, echo=lambda line: out.line(line))
    entry = _record(grade, completed=False)
    if crash:
        out.line(f"{out.sym('warn')} {crash}")
    sym = out.sym("pass") if entry["ok"] else out.sym("fail")
    out.line(f"{sym} {m.id}: {entry['passed']}/{entry['total']} tests passed "
             f"({badgelib.fmt_number(entry['points'])}/{badgelib.fmt_number(m.points)} points)")
    return 0 if entry["ok"] else 1


def cmd_complete(args) -> int:
    from grading.grade import error_line, short_test
    out, root = args.console, REPO_ROOT
    found = _module_with_tests(args)
    if found is None:
        return 1
    course, m = found
    out.line(f"Checking {m.id} ({m.title}) as the grader does...")
    grade, crash = _run(root, course, m, args, echo=None)
    entry = _record(grade, completed=True)
    if grade.collect_errors:
        path, message = sorted(grade.collect_errors.items())[0]
        out.line(f"{out.sym('fail')} {Path(path).name} could not be imported: {error_line(message)}")
        out.line("  (a test file that cannot import gives the module 0 points; fix this first)")
    if crash:
        out.line(f"{out.sym('warn')} {crash}")
    failing = [t for t in grade.counted if not t.ok]
    for t in failing[:8]:
        out.line(f"  {out.sym('fail')} {short_test(t.nodeid)}: {t.outcome}"
                 + (f" - {error_line(t.message)}" if t.message else ""))
    if len(failing) > 8:
        out.line(f"  ... and {len(failing) - 8} more (see `tito module test {m.id[:2]}`)")
    if not entry["ok"]:
        out.line(f"{out.sym('fail')} {m.id}: {entry['passed']}/{entry['total']} tests pass "
                 f"({badgelib.fmt_number(entry['points'])}/{badgelib.fmt_number(m.points)} points). Not complete yet.")
        return 1
    out.line(out.style(f"{out.sym('pass')} {m.id} complete: all {entry['total']} tests pass "
                       f"({badgelib.fmt_number(m.points)}/{badgelib.fmt_number(m.points)} points).", "bold", "green"))
    _show_unlocks(out, course, m)
    return 0


def _show_unlocks(out: Console, course: Course, module: Module) -> None:
    results = state.load_module_results()
    ok = {mid for mid, e in results.items() if isinstance(e, dict) and e.get("ok")}
    for ms in course.milestones:
        if module.id not in ms.requires:
            continue
        missing = [r for r in ms.requires if r not in ok]
        if not missing:
            out.line(out.style(f"{out.sym('party')} Milestone {ms.number} ({ms.name}) is unlocked! "
                               f"Earn the {ms.badge} badge: tito milestone run {ms.number}", "bold"))
        elif module.unlocks == ms.number:
            out.line(f"{out.sym('lock')} Milestone {ms.number} ({ms.name}, {ms.badge}) also needs: "
                     + ", ".join(missing))
    later = [m for m in course.modules if m.number > module.number and m.id not in ok]
    if later:
        out.line(f"{out.sym('arrow')} Next: tito module start {later[0].id[:2]}  ({later[0].title})")


# --- CLI -------------------------------------------------------------------------------------------

def _guard(command):
    def run(args) -> int:
        try:
            return command(args)
        except CourseError as exc:
            args.console.line(f"error: {exc}")
            return 2
    return run


def register(subparsers) -> None:
    p = subparsers.add_parser("module", help="work on a module: list, start NN, test NN, complete NN",
                              description=__doc__.split("\n\n")[1],
                              formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="module_command", metavar="COMMAND")
    sub.required = True
    sub.add_parser("list", help="all modules with your last results").set_defaults(func=_guard(cmd_list))
    start = sub.add_parser("start", help="what a module asks for and which file to edit")
    start.add_argument("module", metavar="NN", help="module number or id, e.g. 04 or 04_layers")
    start.set_defaults(func=_guard(cmd_start))
    for name, func, help_text in (
            ("test", cmd_test, "run a module's tests with full output (exit 0 when all pass)"),
            ("complete", cmd_complete, "check a module as the grader does and show what it unlocks")):
        q = sub.add_parser(name, help=help_text)
        q.add_argument("module", metavar="NN", help="module number or id, e.g. 04 or 04_layers")
        q.add_argument("--test-timeout", type=float, default=60.0, metavar="S", help="limit per test (default 60 s)")
        q.add_argument("--run-timeout", type=float, default=600.0, metavar="S", help="limit for all (default 600 s)")
        q.set_defaults(func=_guard(func))
