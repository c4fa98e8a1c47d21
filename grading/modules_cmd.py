"""`tito module list|start NN|test NN|complete NN`: the everyday loop of working on a module.

    tito module list          every module: points, your last test result, the milestone it unlocks
    tito module start 04      what module 04 asks for, which file to edit, how many stubs are left
    tito module test 04       run module 04's tests with full pytest output (tracebacks)
    tito module complete 04   grade module 04 as CI would, record it, and show what passing unlocks

Both `test` and `complete` run the tests of THIS repository (the one in the current directory) against
its `tinytorch` (your code, never a reference copy), in a child process with the grader's time and
memory limits, score them with the grader's one rule (`grading.scoring`), and record the result with the
fingerprint of the code it judged (`grading.state`), which every other command reads.
"""
from __future__ import annotations

import re
import tempfile
from pathlib import Path

from grading import badges as badgelib
from grading import state
from grading.console import Console
from grading.course import Course, CourseError, Module, load_course, repo_root
from grading.grade import grade_module
from grading.scoring import short_test
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


def _status_text(out: Console, entry: dict) -> tuple[str, str]:
    """(symbol, text) for a module's state from grading.state.module_states."""
    if entry["status"] == "untested" or not entry.get("total"):
        return out.sym("todo"), "not tested yet"
    text = f"{entry.get('passed', 0)}/{entry.get('total', 0)} tests"
    if entry["status"] == "stale":
        return out.sym("todo"), text + " (code changed since; re-test)"
    return (out.sym("pass") if entry["status"] == "passed" else out.sym("fail")), text


# --- list ------------------------------------------------------------------------------------------

def cmd_list(args) -> int:
    out = args.console
    root = repo_root()
    course = _course(root)
    results = state.module_states(root, course)
    out.line(out.style(f"{course.name}: {len(course.modules)} modules, {badgelib.fmt_number(course.total_points)} points",
                       "bold"))
    for m in course.modules:
        sym, status = _status_text(out, results[m.id])
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
    out = args.console
    root = repo_root()
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
    """Run and score one module's tests exactly as `tito grade` does, and record the result."""
    limits = Limits(test_seconds=args.test_timeout, run_seconds=args.run_timeout)
    with tempfile.TemporaryDirectory(prefix="tito-module-") as tmp:
        score = grade_module(root, course, module, limits, Path(tmp), echo=echo, verbose=echo is not None)
    state.record_module_results(root, course, {module.id: score}, completed=echo is None)
    return score


def _module_with_tests(args):
    """(root, course, module) for args.module, or None after saying that its test folder is missing."""
    root = repo_root()
    course = _course(root)
    m = course.module(args.module)
    if not (root / m.folder).is_dir():
        args.console.line(f"{args.console.sym('fail')} no tests for {m.id}: {m.folder}/ does not exist")
        return None
    return root, course, m


def cmd_test(args) -> int:
    out = args.console
    found = _module_with_tests(args)
    if found is None:
        return 1
    root, course, m = found
    out.line(out.style(f"Testing {m.id} ({m.title}) with your code in {m.source}", "bold"))
    score = _run(root, course, m, args, echo=lambda line: out.line(line))
    if score.reason and not score.ok:
        out.line(f"{out.sym('warn')} {score.reason}")
    sym = out.sym("pass") if score.ok else out.sym("fail")
    out.line(f"{sym} {m.id}: {score.passed}/{score.total} tests passed "
             f"({badgelib.fmt_number(score.points)}/{badgelib.fmt_number(m.points)} points)")
    return 0 if score.ok else 1


def cmd_complete(args) -> int:
    out = args.console
    found = _module_with_tests(args)
    if found is None:
        return 1
    root, course, m = found
    out.line(f"Checking {m.id} ({m.title}) as the grader does...")
    score = _run(root, course, m, args, echo=None)
    if score.errors or (score.total == 0 and score.reason):
        out.line(f"{out.sym('fail')} {score.reason}")
    failing = score.failing
    for nodeid in failing[:8]:
        out.line(f"  {out.sym('fail')} {short_test(nodeid)}")
    if len(failing) > 8:
        out.line(f"  ... and {len(failing) - 8} more (see `tito module test {m.id[:2]}`)")
    if failing:
        out.line(f"  first failure: {score.reason}")
    if not score.ok:
        out.line(f"{out.sym('fail')} {m.id}: {score.passed}/{score.total} tests pass "
                 f"({badgelib.fmt_number(score.points)}/{badgelib.fmt_number(m.points)} points). Not complete yet.")
        return 1
    out.line(out.style(f"{out.sym('pass')} {m.id} complete: all {score.total} tests pass "
                       f"({badgelib.fmt_number(m.points)}/{badgelib.fmt_number(m.points)} points).", "bold", "green"))
    _show_unlocks(out, root, course, m)
    return 0


def _show_unlocks(out: Console, root: Path, course: Course, module: Module) -> None:
    """What passing `module` means for the milestones that need it (read from grading.state)."""
    modules = state.module_states(root, course)
    for ms in course.milestones:
        if module.id not in ms.requires:
            continue
        status, _ = state.milestone_state(root, course, ms, modules)
        missing = state.missing_modules(ms, modules)
        if status == "passed":
            out.line(f"{out.sym('pass')} Milestone {ms.number} ({ms.name}) already passed with this code: "
                     f"the {ms.badge} badge is yours (tito milestone celebrate {ms.number}).")
        elif not missing:
            again = " again: your code changed since its last run" if status == "stale" else ""
            out.line(out.style(f"{out.sym('party')} Milestone {ms.number} ({ms.name}) is unlocked! "
                               f"Earn the {ms.badge} badge{again}: tito milestone run {ms.number}", "bold"))
        elif module.unlocks == ms.number:
            out.line(f"{out.sym('lock')} Milestone {ms.number} ({ms.name}, {ms.badge}) also needs: "
                     + ", ".join(missing))
    later = [m for m in course.modules if m.number > module.number and modules[m.id]["status"] != "passed"]
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
