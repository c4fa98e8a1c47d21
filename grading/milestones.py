"""`tito milestone ...`: run the five milestone programs and show where a student stands.

    tito milestone run N [--json PATH] [--tiny]   run milestone N, judge it, write result JSON + SVG plot
    tito milestone list                           the milestones, what unlocks them, their victory conditions
    tito milestone status [--detailed]            passed / failed / ready / locked, from the local state
    tito milestone timeline                       the module-by-module journey with the milestones on it
    tito milestone next                           what to do next
    tito milestone start N                        what milestone N asks you to build, and what is missing
    tito milestone check                          run every milestone that is ready and has no current result
    tito milestone celebrate N                    the unlock message and badge of a milestone you passed

The runner, not the program, decides victory: a program's `run(ctx)` returns metrics, and
`Milestone.passed` (grading/course.py) compares them with the `victory` conditions of
assignments/course.yaml. Exit codes: 0 victory, 1 ran but did not win, 2 could not run (missing data,
unfinished or crashing code). A result is "current" when the files it depends on (the required
modules' sources, the program, milestones/common.py) have not changed since it was produced.
"""
from __future__ import annotations

import argparse
import ast
import hashlib
import os
import sys
from pathlib import Path

from grading import state
from grading.course import REPO_ROOT, Course, Milestone, load_course
from grading.judge import judge_milestone
from grading.plots import history_svg

EXIT_VICTORY, EXIT_NOT_WON, EXIT_COULD_NOT_RUN = 0, 1, 2


# ---- console: emoji with ASCII fallback, colour only on terminals ----------------------------------------
class Console:
    SYMBOLS = {
        "pass": ("\u2705", "[PASS]"), "fail": ("\u274c", "[FAIL]"), "lock": ("\U0001f512", "[LOCKED]"),
        "ready": ("\u25b6\ufe0f", "[READY]"), "stale": ("\U0001f504", "[RERUN]"), "trophy": ("\U0001f3c6", "[*]"),
        "party": ("\U0001f389", "***"), "todo": ("\u2b1c", "[ ]"), "rocket": ("\U0001f680", ">>"),
        "warn": ("\u26a0\ufe0f", "[!]"), "tiny": ("\U0001f9ea", "[tiny]"),
    }
    never_colour = False  # set by `tito --no-color`
    COLOURS = {"green": "32", "red": "31", "yellow": "33", "cyan": "36", "bold": "1", "dim": "2"}

    def __init__(self, stream=None):
        self.stream = stream if stream is not None else sys.stdout
        encoding = getattr(self.stream, "encoding", None) or "ascii"
        try:
            "".join(e for e, _ in self.SYMBOLS.values()).encode(encoding)
            self.unicode = True
        except (UnicodeEncodeError, LookupError):
            self.unicode = False
        self.colour = (bool(getattr(self.stream, "isatty", lambda: False)()) and "NO_COLOR" not in os.environ
                       and not Console.never_colour)

    def sym(self, name: str) -> str:
        emoji, ascii_ = self.SYMBOLS[name]
        return emoji if self.unicode else ascii_

    def paint(self, text: str, colour: str) -> str:
        return f"\033[{self.COLOURS[colour]}m{text}\033[0m" if self.colour else text

    def print(self, text: str = "") -> None:
        encoding = getattr(self.stream, "encoding", None) or "ascii"
        try:
            text.encode(encoding)
        except (UnicodeEncodeError, LookupError):
            text = text.encode(encoding, errors="replace").decode(encoding, errors="replace")
        print(text, file=self.stream, flush=True)


# ---- state ----------------------------------------------------------------------------------------------
def tiny_result_path(number: int) -> Path:
    """Tiny (smoke-test) runs are kept apart so they never replace a real result."""
    return state.STATE_DIR / "milestones" / f"m{int(number)}.tiny.json"


def program_path(ms: Milestone) -> Path:
    return REPO_ROOT / ms.program


def fingerprint(ms: Milestone, course: Course) -> str:
    """Hash of every file the milestone's result depends on; a changed file makes the result stale."""
    files = [course.module(m).source for m in ms.requires] + [ms.program, "milestones/common.py"]
    digest = hashlib.sha256()
    for rel in files:
        digest.update(rel.encode())
        try:
            digest.update(hashlib.sha256((REPO_ROOT / rel).read_bytes()).digest())
        except OSError:
            digest.update(b"<missing>")
    return digest.hexdigest()[:16]


def module_states(course: Course) -> dict[str, str]:
    """module id -> "passed" | "failing" | "untested", from .tito/modules.json."""
    results = state.load_module_results()
    out = {}
    for m in course.modules:
        entry = results.get(m.id)
        if not isinstance(entry, dict):
            out[m.id] = "untested"
        else:
            out[m.id] = "passed" if entry.get("ok") is True else "failing"
    return out


def milestone_state(ms: Milestone, course: Course, modules: dict[str, str]) -> tuple[str, dict | None]:
    """("passed" | "failed" | "stale" | "ready" | "locked", last real result or None)."""
    result = state.load_milestone_result(ms.number)
    ready = all(modules.get(r) == "passed" for r in ms.requires)
    if result is not None:
        if result.get("fingerprint") != fingerprint(ms, course):
            return "stale", result
        return ("passed" if result.get("passed") else "failed"), result
    return ("ready" if ready else "locked"), None


def _missing_modules(ms: Milestone, modules: dict[str, str]) -> list[str]:
    return [r for r in ms.requires if modules.get(r) != "passed"]


# ---- running a program (in a child process, judged by grading/judge.py) ----------------------------------
def ensure_importable() -> None:
    """Put the repository root on sys.path, so `milestones.*` imports (tests and the weights script)."""
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))


def run_milestone(number: int | str, *, tiny: bool = False, json_path: str | Path | None = None,
                  data_dir: str | Path | None = None, seed: int = 0, course: Course | None = None,
                  stream=None, download: bool = True, isolation=None) -> dict:
    """Run milestone `number` in a child process, judge it (grading/judge.py), record the result (+ SVG)."""
    course = course or load_course()
    ms = course.milestone(number)
    con = Console(stream)
    result_path = tiny_result_path(ms.number) if tiny else state.milestone_result_path(ms.number)
    con.print(con.paint(f"Milestone {ms.number}: {ms.name}", "bold")
              + f"  (victory: {ms.describe(', ')}; ceiling {ms.budget_seconds:g} s)")
    if tiny:
        con.print(f"{con.sym('tiny')} tiny mode: synthetic data, checks the plumbing only")
    if data_dir is None and os.environ.get("TINYTORCH_DATA"):
        data_dir = os.environ["TINYTORCH_DATA"]
    inputs = fingerprint(ms, course)  # of the code as it was when the run started
    workdir = result_path.parent / f"m{ms.number}{'.tiny' if tiny else ''}-run"
    result = judge_milestone(ms, course, REPO_ROOT, data_dir, workdir, isolation=isolation, seed=seed, tiny=tiny,
                             out=con.print, download=download, echo=con.print)
    result["fingerprint"] = inputs
    record(ms, result, result_path, json_path)
    if result["framework"] and result["framework"] != str(REPO_ROOT / "tinytorch"):
        con.print(con.paint(f"{con.sym('warn')} tinytorch was imported from {result['framework']}, not from this "
                            f"repository ({REPO_ROOT / 'tinytorch'}): run `pip install -e .` here", "yellow"))
    _print_result(con, ms, result, [result_path] + ([Path(json_path)] if json_path else []))
    return result


def record(ms: Milestone, result: dict, *paths) -> None:
    """Write the result JSON and its SVG plot to each of `paths` (None entries are skipped)."""
    conditions = ms.conditions(result.get("corpus"))
    svg = history_svg(result["history"], title=f"Milestone {ms.number}: {ms.name}"
                      + (" (tiny run)" if result.get("tiny") else ""),
                      thresholds={c.metric: c.value for c in conditions})
    for target in (Path(p) for p in paths if p):
        state.atomic_write_json(target, result)
        state.atomic_write_text(target.with_suffix(".svg"), svg)


def exit_code(result: dict) -> int:
    if result.get("passed"):
        return EXIT_VICTORY
    return EXIT_COULD_NOT_RUN if result.get("error") else EXIT_NOT_WON


def _print_result(con: Console, ms: Milestone, result: dict, paths: list[Path]) -> None:
    con.print()
    if result["error"]:
        con.print(con.paint(f"{con.sym('fail')} Milestone {ms.number} could not run:", "red"))
        for line in result["error"].splitlines():
            con.print(f"  {line}")
    conditions = ms.conditions(result.get("corpus"))
    if conditions is not ms.victory:
        con.print(f"  judged by the bar for the {result['corpus']} corpus (assignments/course.yaml, victory_by_corpus)")
    for c in conditions:
        got = result["metrics"].get(c.metric)
        ok = c.holds(got)
        shown = "missing" if got is None else f"{got:.4g}" if isinstance(got, float) else str(got)
        con.print(f"  {con.sym('pass') if ok else con.sym('fail')} {c.metric} = {shown}  (needs {c.op} {c.value:g})")
    budget = "" if result["within_budget"] else con.paint(f"  {con.sym('warn')} over the {ms.budget_seconds:g} s ceiling", "yellow")
    cpu = result.get("cpu_seconds")
    con.print(f"  time: {result['seconds']:.1f} s" + (f" (CPU {cpu:.1f} s)" if isinstance(cpu, (int, float)) else "")
              + budget)
    stopped = result.get("stopped_at")
    if isinstance(stopped, dict) and stopped.get("step") is not None:
        con.print(f"  stopped at victory (stop rule on the validation split) at step {stopped['step']}"
                  + (f" of {stopped['of_steps']}" if stopped.get("of_steps") else ""))
    if result["passed"]:
        con.print(con.paint(f"{con.sym('trophy')} VICTORY: milestone {ms.number} ({ms.name}) passed"
                            + (" in tiny mode (synthetic data)" if result["tiny"] else ""), "green"))
        if not result["tiny"]:
            con.print(f"  see your badge: tito milestone celebrate {ms.number}")
    elif not result["error"]:
        missed = [f"{s['metric']} {s['needs']} (got {s['got']:.4g}, missed by {s['missed_by']:.4g})"
                  if isinstance(s.get("got"), (int, float)) else f"{s['metric']} {s['needs']} (not measured)"
                  for s in result.get("shortfalls") or []]
        con.print(con.paint(f"{con.sym('fail')} not yet: {', '.join(result['failed_conditions'])} did not hold", "red"))
        for line in missed:
            con.print(f"  {line}")
    con.print(f"  result: {', '.join(str(p) for p in paths)} (+ .svg plot)")


# ---- reading the programs' own descriptions (no import: student code may not import yet) --------------------
def program_description(ms: Milestone) -> tuple[str, list[str]]:
    """(docstring of the milestone program, its CAPABILITIES list if it defines one)."""
    try:
        tree = ast.parse(program_path(ms).read_text(encoding="utf-8"))
    except (OSError, SyntaxError):
        return "", []
    doc = ast.get_docstring(tree) or ""
    caps: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "CAPABILITIES" for t in node.targets):
            try:
                caps = [str(c) for c in ast.literal_eval(node.value)]
            except ValueError:
                pass
    return doc, caps


def _unlocking_module(ms: Milestone, course: Course) -> str:
    for m in course.modules:
        if m.unlocks == ms.number:
            return m.id
    return ms.requires[-1]


# ---- commands -----------------------------------------------------------------------------------------------
def cmd_run(args) -> int:
    result = run_milestone(args.number, tiny=args.tiny, json_path=args.json, data_dir=args.data_dir, seed=args.seed,
                           download=not args.no_download)
    return exit_code(result)


def cmd_list(args) -> int:
    con, course = Console(), load_course()
    con.print(con.paint("The five milestones (assignments/course.yaml)", "bold"))
    for ms in course.milestones:
        con.print(f"  {ms.number}. {ms.name:<20} after module {_unlocking_module(ms, course):<15} "
                  f"badge: {ms.badge}")
        con.print(f"     victory: {ms.describe()}; budget {ms.budget_seconds:g} s on 2 cores")
    return 0


def _state_label(con: Console, st: str) -> str:
    sym = {"passed": "pass", "failed": "fail", "stale": "stale", "ready": "ready", "locked": "lock"}[st]
    colour = {"passed": "green", "failed": "red", "stale": "yellow", "ready": "cyan", "locked": "dim"}[st]
    return con.paint(f"{con.sym(sym)} {st.upper():<6}", colour)


def _metric_summary(result: dict | None) -> str:
    if not result:
        return ""
    parts = [f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
             for k, v in result.get("metrics", {}).items() if k in result.get("thresholds", {})]
    seconds = result.get("seconds")
    if not isinstance(seconds, (int, float)):
        return ", ".join(parts)
    return ", ".join(parts) + (f" in {seconds:.0f} s" if seconds >= 10 else f" in {seconds:.1f} s")


def cmd_status(args) -> int:
    con, course = Console(), load_course()
    modules = module_states(course)
    passing = sum(1 for s in modules.values() if s == "passed")
    won = 0
    con.print(con.paint(f"Milestones ({passing}/{len(course.modules)} modules passing)", "bold"))
    for ms in course.milestones:
        st, result = milestone_state(ms, course, modules)
        won += st == "passed"
        line = f"  {ms.number}. {ms.name:<20} {_state_label(con, st)} "
        if st in ("passed", "failed"):
            line += _metric_summary(result)
        elif st == "stale":
            line += f"code changed since the last run ({'passed' if result.get('passed') else 'failed'}); " \
                    f"rerun: tito milestone run {ms.number}"
        elif st == "ready":
            line += f"run: tito milestone run {ms.number}"
        else:
            line += "needs " + ", ".join(_missing_modules(ms, modules))
        con.print(line)
        if args.detailed:
            for r in ms.requires:
                mark = {"passed": "pass", "failing": "fail", "untested": "todo"}[modules[r]]
                con.print(f"       {con.sym(mark)} {r} ({modules[r]})")
            for c in ms.conditions((result or {}).get("corpus")):
                got = (result or {}).get("metrics", {}).get(c.metric)
                shown = "-" if got is None else f"{got:.4g}"
                con.print(f"       victory {c}: last {shown}")
            if result:
                con.print(f"       last run {result.get('finished_at', '?')}, {result.get('seconds', 0):.1f} s "
                          f"(budget {ms.budget_seconds:g} s)" + (f"; error: {result['error'].splitlines()[0]}"
                                                                 if result.get("error") else ""))
    con.print(f"  {won}/{len(course.milestones)} milestones passed")
    return 0


def cmd_timeline(args) -> int:
    con, course = Console(), load_course()
    modules = module_states(course)
    con.print(con.paint("Your journey: modules and milestones", "bold"))
    for m in course.modules:
        mark = {"passed": "pass", "failing": "fail", "untested": "todo"}[modules[m.id]]
        con.print(f"  {con.sym(mark)} {m.id:<16} {m.title}")
        for ms in course.milestones:
            if _unlocking_module(ms, course) == m.id:
                st, result = milestone_state(ms, course, modules)
                sym = con.sym("trophy") if st == "passed" else con.sym("lock") if st == "locked" else con.sym("ready")
                con.print(con.paint(f"  {'|' if not con.unicode else chr(0x2503)}", "dim"))
                con.print(f"  {sym} Milestone {ms.number}: {ms.name} - {st}"
                          + (f" ({ms.badge})" if st == "passed" else ""))
                con.print(con.paint(f"  {'|' if not con.unicode else chr(0x2503)}", "dim"))
    return 0


def _next_milestone(course: Course, modules: dict) -> tuple[Milestone | None, str, dict | None]:
    for ms in course.milestones:
        st, result = milestone_state(ms, course, modules)
        if st != "passed":
            return ms, st, result
    return None, "passed", None


def cmd_next(args) -> int:
    con, course = Console(), load_course()
    modules = module_states(course)
    ms, st, result = _next_milestone(course, modules)
    if ms is None:
        con.print(f"{con.sym('trophy')} All {len(course.milestones)} milestones passed. You built a framework.")
        return 0
    con.print(con.paint(f"{con.sym('rocket')} Next: milestone {ms.number}, {ms.name} (badge: {ms.badge})", "bold"))
    missing = _missing_modules(ms, modules)
    if missing:
        con.print(f"  finish these modules first: {', '.join(f'{r} ({modules[r]})' for r in missing)}")
        con.print(f"  e.g. tito module test {missing[0]}")
    else:
        if st == "failed":
            con.print(f"  your last run did not win: {', '.join(result.get('failed_conditions') or [])}"
                      + (f" ({result['error'].splitlines()[0]})" if result.get("error") else ""))
        con.print(f"  run: tito milestone run {ms.number}")
    con.print(f"  details: tito milestone start {ms.number}")
    return 0


def cmd_start(args) -> int:
    con, course = Console(), load_course()
    ms = course.milestone(args.number)
    modules = module_states(course)
    doc, _ = program_description(ms)
    con.print(con.paint(f"Milestone {ms.number}: {ms.name}  (badge: {ms.badge})", "bold"))
    if doc:
        con.print()
        for line in doc.strip().splitlines():
            con.print(f"  {line}")
    con.print()
    con.print("Modules it needs (their tests must pass):")
    for r in ms.requires:
        mark = {"passed": "pass", "failing": "fail", "untested": "todo"}[modules[r]]
        con.print(f"  {con.sym(mark)} {r:<16} {modules[r]}")
    con.print(f"Victory: {ms.describe()} on held-out data; "
              f"budget {ms.budget_seconds:g} s on 2 cores")
    missing = _missing_modules(ms, modules)
    if missing:
        con.print(f"Next step: make {missing[0]} pass (tito module test {missing[0]}), then tito milestone run {ms.number}")
    else:
        con.print(f"Ready: tito milestone run {ms.number}")
    return 0


def cmd_check(args) -> int:
    con, course = Console(), load_course()
    modules = module_states(course)
    code, ran = 0, 0
    for ms in course.milestones:
        st, _ = milestone_state(ms, course, modules)
        if _missing_modules(ms, modules):
            continue
        if st in ("passed", "failed"):
            con.print(f"  milestone {ms.number}: current result already there ({st})")
            continue
        ran += 1
        result = run_milestone(ms.number, data_dir=args.data_dir)
        code = max(code, exit_code(result))
        con.print()
    if not ran:
        con.print("Nothing to run: no milestone is ready without a current result (see tito milestone status).")
    return code


def cmd_celebrate(args) -> int:
    con, course = Console(), load_course()
    ms = course.milestone(args.number)
    result = state.load_milestone_result(ms.number)
    if not result or not result.get("passed"):
        if not result:
            why = "it has not been run yet"
        elif result.get("error"):
            why = f"the last run could not finish: {result['error'].splitlines()[0]}"
        else:
            why = f"the last run missed {', '.join(result.get('failed_conditions') or ['its victory conditions'])}"
        con.print(f"Milestone {ms.number} ({ms.name}) has not passed: {why}.")
        con.print(f"No badge yet. Run: tito milestone run {ms.number}  (what it needs: tito milestone start {ms.number})")
        return EXIT_NOT_WON
    doc, caps = program_description(ms)
    party = con.sym("party")
    con.print(con.paint(f"{party} MILESTONE UNLOCKED: {ms.badge} {party}", "green"))
    con.print()
    con.print(f"Milestone {ms.number}, {ms.name}, passed with your own tinytorch: {_metric_summary(result)}.")
    if caps:
        con.print("What your framework can do now:")
        for cap in caps:
            con.print(f"  {con.sym('pass')} {cap}")
    later = [m for m in course.milestones if m.number > ms.number]
    if later:
        nxt = later[0]
        con.print()
        con.print(f"Next challenge: milestone {nxt.number}, {nxt.name} (badge: {nxt.badge}).")
        con.print(f"{con.sym('rocket')} Keep going: tito milestone next")
    else:
        con.print(f"{con.sym('trophy')} That was the last milestone: every badge is yours.")
    return EXIT_VICTORY


# ---- argparse wiring -----------------------------------------------------------------------------------------
def _guarded(command):
    """A course-table problem or an unknown milestone number is a one-line error, not a traceback."""
    from grading.course import CourseError

    def wrapper(args) -> int:
        if getattr(args, "no_color", False):
            Console.never_colour = True
        try:
            return int(command(args) or 0)
        except CourseError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_COULD_NOT_RUN
    wrapper.__name__ = wrapper.__qualname__ = command.__name__
    wrapper.__doc__ = command.__doc__
    return wrapper


def register(subparsers) -> argparse.ArgumentParser:
    """Add the `milestone` command (with its subcommands) to the tito CLI's subparsers."""
    p = subparsers.add_parser("milestone", help="run milestones and see your progress",
                              description=__doc__.split("\n\n")[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="milestone_command", metavar="COMMAND")
    sub.required = True

    run = sub.add_parser("run", help="run milestone N and judge it")
    run.add_argument("number", type=int)
    run.add_argument("--json", metavar="PATH", help="also write the result JSON (and its .svg plot) here")
    run.add_argument("--tiny", action="store_true", help="synthetic tiny data: checks the plumbing in seconds")
    run.add_argument("--data-dir", default=None, help="directory of data sets (default: $TINYTORCH_DATA, then the cache)")
    run.add_argument("--no-download", action="store_true", help="never download data; fail if it is not here")
    run.add_argument("--seed", type=int, default=0)
    run.set_defaults(func=_guarded(cmd_run))

    sub.add_parser("list", help="the milestones and their victory conditions").set_defaults(func=_guarded(cmd_list))
    status = sub.add_parser("status", help="passed / failed / ready / locked")
    status.add_argument("--detailed", action="store_true", help="per-module state and last metrics")
    status.set_defaults(func=_guarded(cmd_status))
    sub.add_parser("timeline", help="your journey through modules and milestones").set_defaults(func=_guarded(cmd_timeline))
    sub.add_parser("next", help="what to do next").set_defaults(func=_guarded(cmd_next))
    start = sub.add_parser("start", help="what milestone N asks you to build")
    start.add_argument("number", type=int)
    start.set_defaults(func=_guarded(cmd_start))
    check = sub.add_parser("check", help="run every ready milestone without a current result")
    check.add_argument("--data-dir", default=None)
    check.set_defaults(func=_guarded(cmd_check))
    celebrate = sub.add_parser("celebrate", help="the unlock message of a milestone you passed")
    celebrate.add_argument("number", type=int)
    celebrate.set_defaults(func=_guarded(cmd_celebrate))
    return p


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (`python -m grading.milestones run 1`); tito calls the same commands."""
    parser = argparse.ArgumentParser(prog="tito")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["milestone", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
