"""`tito milestone ...`: run the five milestone programs and show where a student stands.

    tito milestone run N [--json PATH] [--tiny]   run milestone N, judge it, write result JSON + SVG plot
    tito milestone list                           the milestones, what unlocks them, their victory conditions
    tito milestone status [--detailed]            passed / failed / ready / locked, from the local state
    tito milestone timeline                       the module-by-module journey with the milestones on it
    tito milestone next                           what to do next
    tito milestone start [N]                      what milestone N (default: your next one) asks of you
    tito milestone check                          run every milestone that is ready and has no current result
    tito milestone celebrate N                    the unlock message and badge of a milestone you passed

The runner, not the program, decides victory: a program's `run(ctx)` returns metrics, and
`Milestone.passed` (grading/course.py) compares them with the `victory` conditions of
assignments/course.yaml. Exit codes: 0 victory, 1 ran but did not win, 2 could not run (missing data,
unfinished or crashing code). Where results are stored and whether one is current for this code (its
fingerprint) is decided in grading/state.py, which `tito grade` reads too; a run that could not run never
replaces a judged result for the same code.
"""
from __future__ import annotations

import argparse
import ast
import os
import sys
from pathlib import Path

from grading import state
from grading.console import Console
from grading.course import Course, Milestone, load_course, repo_root
from grading.judge import judge_milestone
from grading.profiling import profile_lines
from grading.plots import history_svg

EXIT_VICTORY, EXIT_NOT_WON, EXIT_COULD_NOT_RUN = 0, 1, 2


# ---- state (stored and read by grading/state.py, the one place every command asks) -----------------------
def tiny_result_path(number: int) -> Path:
    """Tiny (smoke-test) runs are kept apart so they never replace a real result."""
    return state.state_dir() / "milestones" / f"m{int(number)}.tiny.json"


def program_path(ms: Milestone) -> Path:
    return repo_root() / ms.program


def fingerprint(ms: Milestone, course: Course) -> str:
    """The fingerprint of the code a result of `ms` judges (grading.state.milestone_fingerprint)."""
    return state.milestone_fingerprint(repo_root(), ms, course=course)


def _console(args) -> Console:
    return getattr(args, "console", None) or Console()


# ---- running a program (in a child process, judged by grading/judge.py) ----------------------------------
def ensure_importable() -> None:
    """Put the repository root on sys.path, so `milestones.*` imports (tests and the weights script)."""
    root = str(repo_root())
    if root not in sys.path:
        sys.path.insert(0, root)


def run_milestone(number: int | str, *, tiny: bool = False, json_path: str | Path | None = None,
                  data_dir: str | Path | None = None, seed: int = 0, course: Course | None = None,
                  stream=None, download: bool = True, isolation=None, profile: bool | None = None) -> dict:
    """Run milestone `number` in a child process, judge it (grading/judge.py), record the result (+ SVG).
    `profile=True` also profiles one training step (grading/profiling.py; None: only when over the ceiling)."""
    course = course or load_course()
    ms = course.milestone(number)
    con = Console(stream)
    result_path = tiny_result_path(ms.number) if tiny else state.milestone_result_path(ms.number)
    con.line(con.style(f"Milestone {ms.number}: {ms.name}", "bold")
             + f"  (victory: {ms.describe(', ')}; ceiling {ms.budget_seconds:g} s)")
    if tiny:
        con.line(f"{con.sym('tiny')} tiny mode: synthetic data, checks the plumbing only")
    if data_dir is None and os.environ.get("TINYTORCH_DATA"):
        data_dir = os.environ["TINYTORCH_DATA"]
    inputs = fingerprint(ms, course)  # of the code as it was when the run started
    workdir = result_path.parent / f"m{ms.number}{'.tiny' if tiny else ''}-run"
    result = judge_milestone(ms, course, repo_root(), data_dir, workdir, isolation=isolation, seed=seed, tiny=tiny,
                             out=con.line, download=download, echo=con.line, profile=profile)
    result["fingerprint"] = inputs
    kept = record(ms, result, json_path, local=not tiny)
    if tiny:
        record(ms, result, result_path)
    elif not kept:
        con.line(f"  (this run could not run, so your earlier result for the same code in {result_path} stays)")
    if result["framework"] and result["framework"] != str(repo_root() / "tinytorch"):
        con.line(con.style(f"{con.sym('warn')} tinytorch was imported from {result['framework']}, not from this "
                           f"repository ({repo_root() / 'tinytorch'}): run `pip install -e .` here", "yellow"))
    _print_result(con, ms, result, [result_path] + ([Path(json_path)] if json_path else []))
    return result


def record(ms: Milestone, result: dict, *paths, local: bool = False, root: Path | None = None) -> bool:
    """Write the result JSON and its SVG plot to each of `paths` (None entries are skipped) and, with
    `local`, to the repository's own state (.tito/milestones), unless the run could not run and a judged
    result for the same code is already there. Returns whether the local state took it."""
    conditions = ms.conditions(result.get("corpus"))
    svg = history_svg(result["history"], title=f"Milestone {ms.number}: {ms.name}"
                      + (" (tiny run)" if result.get("tiny") else ""),
                      thresholds={c.metric: c.value for c in conditions})
    targets = [Path(p) for p in paths if p]
    kept = local and state.record_milestone_result(ms.number, result, root)   # "could not run" never erases
    if kept:
        targets.append(state.milestone_result_path(ms.number, root))
    for target in targets:
        state.atomic_write_json(target, result)
        state.atomic_write_text(target.with_suffix(".svg"), svg)
    return bool(kept)


def exit_code(result: dict) -> int:
    if result.get("passed"):
        return EXIT_VICTORY
    return EXIT_COULD_NOT_RUN if result.get("error") else EXIT_NOT_WON


def _print_result(con: Console, ms: Milestone, result: dict, paths: list[Path]) -> None:
    con.line()
    if result["error"]:
        con.line(con.style(f"{con.sym('fail')} Milestone {ms.number} could not run:", "red"))
        for line in result["error"].splitlines():
            con.line(f"  {line}")
    conditions = ms.conditions(result.get("corpus"))
    if conditions is not ms.victory:
        con.line(f"  judged by the bar for the {result['corpus']} corpus (assignments/course.yaml, victory_by_corpus)")
    for c in conditions:
        got = result["metrics"].get(c.metric)
        ok = c.holds(got)
        shown = "missing" if got is None else f"{got:.4g}" if isinstance(got, float) else str(got)
        con.line(f"  {con.sym('pass') if ok else con.sym('fail')} {c.metric} = {shown}  (needs {c.op} {c.value:g})")
    budget = "" if result["within_budget"] else con.style(f"  {con.sym('warn')} over the {ms.budget_seconds:g} s ceiling", "yellow")
    cpu = result.get("cpu_seconds")
    con.line(f"  time: {result['seconds']:.1f} s" + (f" (CPU {cpu:.1f} s)" if isinstance(cpu, (int, float)) else "")
              + budget)
    for line in profile_lines(result.get("profile")):   # over the ceiling (or --profile): where the time went
        con.line(f"  {line}")
    stopped = result.get("stopped_at")
    if isinstance(stopped, dict) and stopped.get("step") is not None:
        con.line(f"  stopped at victory (stop rule on the validation split) at step {stopped['step']}"
                  + (f" of {stopped['of_steps']}" if stopped.get("of_steps") else ""))
    if result["passed"]:
        con.line(con.style(f"{con.sym('trophy')} VICTORY: milestone {ms.number} ({ms.name}) passed"
                            + (" in tiny mode (synthetic data)" if result["tiny"] else ""), "green"))
        if not result["tiny"]:
            con.line(f"  see your badge: tito milestone celebrate {ms.number}")
    elif not result["error"]:
        missed = [f"{s['metric']} {s['needs']} (got {s['got']:.4g}, missed by {s['missed_by']:.4g})"
                  if isinstance(s.get("got"), (int, float)) else f"{s['metric']} {s['needs']} (not measured)"
                  for s in result.get("shortfalls") or []]
        con.line(con.style(f"{con.sym('fail')} not yet: {', '.join(result['failed_conditions'])} did not hold", "red"))
        for line in missed:
            con.line(f"  {line}")
    con.line(f"  result: {', '.join(str(p) for p in paths)} (+ .svg plot)")


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
                           download=not args.no_download, profile=True if args.profile else None)
    return exit_code(result)


def cmd_list(args) -> int:
    con, course = _console(args), load_course()
    con.line(con.style("The five milestones (assignments/course.yaml)", "bold"))
    for ms in course.milestones:
        con.line(f"  {ms.number}. {ms.name:<20} after module {_unlocking_module(ms, course):<15} "
                 f"badge: {ms.badge}")
        con.line(f"     victory: {ms.describe()}; budget {ms.budget_seconds:g} s on 2 cores")
    return 0


def _state_label(con: Console, st: str) -> str:
    sym = {"passed": "pass", "failed": "fail", "stale": "stale", "ready": "ready", "locked": "lock"}[st]
    colour = {"passed": "green", "failed": "red", "stale": "yellow", "ready": "cyan", "locked": "dim"}[st]
    return con.style(f"{con.sym(sym)} {st.upper():<6}", colour)


def _metric_summary(result: dict | None, ms: Milestone | None = None) -> str:
    if not result:
        return ""
    wanted = {c.metric for c in ms.conditions(result.get("corpus"))} if ms else set(result.get("thresholds") or {})
    parts = [f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
             for k, v in (result.get("metrics") or {}).items() if k in wanted]
    seconds = result.get("seconds")
    if not isinstance(seconds, (int, float)):
        return ", ".join(parts)
    return ", ".join(parts) + (f" in {seconds:.0f} s" if seconds >= 10 else f" in {seconds:.1f} s")


def _module_word(modules: dict, mid: str) -> str:
    return {"passed": "passed", "failing": "failing", "stale": "changed since tested",
            "untested": "untested"}[modules[mid]["status"]]


def _module_sym(modules: dict, mid: str) -> str:
    return {"passed": "pass", "failing": "fail", "stale": "stale", "untested": "todo"}[modules[mid]["status"]]


def _states(course: Course):
    """(root, module states, {number: (state, result)}) of the repository in the current directory."""
    root = repo_root()
    modules = state.module_states(root, course)
    checksums = state.known_data_checksums(root)
    return root, modules, {ms.number: state.milestone_state(root, course, ms, modules, checksums)
                           for ms in course.milestones}


def cmd_status(args) -> int:
    con, course = _console(args), load_course()
    root, modules, milestones = _states(course)
    passing = sum(1 for s in modules.values() if s["status"] == "passed")
    changed = sum(1 for s in modules.values() if s["status"] == "stale")
    won = 0
    con.line(con.style(f"Milestones ({passing}/{len(course.modules)} modules passing"
                       + (f"; {changed} changed since last tested: tito grade --skip-milestones" if changed else "")
                       + ")", "bold"))
    for ms in course.milestones:
        st, result = milestones[ms.number]
        won += st == "passed"
        line = f"  {ms.number}. {ms.name:<20} {_state_label(con, st)} "
        if st in ("passed", "failed"):
            line += _metric_summary(result, ms)
        elif st == "stale":
            line += f"code changed since the last run ({result.get('status')}); " \
                    f"rerun: tito milestone run {ms.number}"
        elif st == "ready":
            line += f"run: tito milestone run {ms.number}"
        else:
            line += "needs " + ", ".join(state.missing_modules(ms, modules))
        con.line(line)
        if args.detailed:
            for r in ms.requires:
                con.line(f"       {con.sym(_module_sym(modules, r))} {r} ({_module_word(modules, r)})")
            for c in ms.conditions((result or {}).get("corpus")):
                got = (result or {}).get("metrics", {}).get(c.metric)
                shown = "-" if got is None else f"{got:.4g}"
                con.line(f"       victory {c}: last {shown}")
            local = state.load_milestone_result(ms.number, root)
            if local and local.get("error"):
                con.line(f"       last local run could not run: {local['error'].splitlines()[0]}")
    con.line(f"  {won}/{len(course.milestones)} milestones passed")
    return 0


def cmd_timeline(args) -> int:
    con, course = _console(args), load_course()
    _, modules, milestones = _states(course)
    con.line(con.style("Your journey: modules and milestones", "bold"))
    for m in course.modules:
        con.line(f"  {con.sym(_module_sym(modules, m.id))} {m.id:<16} {m.title}")
        for ms in course.milestones:
            if _unlocking_module(ms, course) == m.id:
                st, _ = milestones[ms.number]
                sym = con.sym("trophy") if st == "passed" else con.sym("lock") if st == "locked" else con.sym("ready")
                con.line(con.style(f"  {'|' if not con.unicode else chr(0x2503)}", "dim"))
                con.line(f"  {sym} Milestone {ms.number}: {ms.name} - {st}"
                         + (f" ({ms.badge})" if st == "passed" else ""))
                con.line(con.style(f"  {'|' if not con.unicode else chr(0x2503)}", "dim"))
    return 0


def _next_milestone(course: Course, milestones: dict) -> Milestone | None:
    return next((ms for ms in course.milestones if milestones[ms.number][0] != "passed"), None)


def cmd_next(args) -> int:
    con, course = _console(args), load_course()
    root, modules, milestones = _states(course)
    ms = _next_milestone(course, milestones)
    if ms is None:
        con.line(f"{con.sym('trophy')} All {len(course.milestones)} milestones passed. You built a framework.")
        return 0
    st, result = milestones[ms.number]
    con.line(con.style(f"{con.sym('rocket')} Next: milestone {ms.number}, {ms.name} (badge: {ms.badge})", "bold"))
    missing = state.missing_modules(ms, modules)
    if missing:
        con.line(f"  finish these modules first: {', '.join(f'{r} ({_module_word(modules, r)})' for r in missing)}")
        con.line(f"  e.g. tito module test {missing[0]}")
    else:
        if st == "failed":
            unmet = ms.unmet(result.get("metrics") or {}, result.get("corpus"))
            con.line(f"  your last run did not win: {', '.join(str(c) for c in unmet)} did not hold")
        local = state.load_milestone_result(ms.number, root)
        if local and local.get("error"):
            con.line(f"  your last run could not run: {local['error'].splitlines()[0]}")
        con.line(f"  run: tito milestone run {ms.number}")
    con.line(f"  details: tito milestone start {ms.number}")
    return 0


def cmd_start(args) -> int:
    con, course = _console(args), load_course()
    _, modules, milestones = _states(course)
    if args.number is None:      # the journey starts (or goes on) at the next milestone not yet passed
        ms = _next_milestone(course, milestones)
        if ms is None:
            con.line(f"{con.sym('trophy')} All {len(course.milestones)} milestones passed; "
                     f"`tito milestone start N` shows any of them again.")
            return 0
    else:
        ms = course.milestone(args.number)
    doc, _ = program_description(ms)
    con.line(con.style(f"Milestone {ms.number}: {ms.name}  (badge: {ms.badge})", "bold"))
    if doc:
        con.line()
        for line in doc.strip().splitlines():
            con.line(f"  {line}")
    con.line()
    con.line("Modules it needs (their tests must pass):")
    for r in ms.requires:
        con.line(f"  {con.sym(_module_sym(modules, r))} {r:<16} {_module_word(modules, r)}")
    con.line(f"Victory: {ms.describe()} on held-out data; "
             f"budget {ms.budget_seconds:g} s on 2 cores")
    missing = state.missing_modules(ms, modules)
    if milestones[ms.number][0] == "passed":
        con.line(f"Already passed with this code: tito milestone celebrate {ms.number}")
    elif missing:
        con.line(f"Next step: make {missing[0]} pass (tito module test {missing[0]}), then tito milestone run {ms.number}")
    else:
        con.line(f"Ready: tito milestone run {ms.number}")
    return 0


def cmd_check(args) -> int:
    con, course = _console(args), load_course()
    _, modules, milestones = _states(course)
    code, ran = 0, 0
    for ms in course.milestones:
        st, _ = milestones[ms.number]
        if state.missing_modules(ms, modules):
            continue
        if st in ("passed", "failed"):
            con.line(f"  milestone {ms.number}: current result already there ({st})")
            continue
        ran += 1
        result = run_milestone(ms.number, data_dir=args.data_dir)
        code = max(code, exit_code(result))
        con.line()
    if not ran:
        con.line("Nothing to run: no milestone is ready without a current result (see tito milestone status).")
    return code


def cmd_celebrate(args) -> int:
    con, course = _console(args), load_course()
    ms = course.milestone(args.number)
    root = repo_root()
    st, result = state.milestone_state(root, course, ms)
    if st != "passed":
        local = state.load_milestone_result(ms.number, root)
        if st == "stale":
            why = "your code changed since it passed" if result.get("status") == "passed" else \
                "your code changed since the last run"
        elif result:
            unmet = ms.unmet(result.get("metrics") or {}, result.get("corpus"))
            why = f"the last run missed {', '.join(str(c) for c in unmet) or 'its victory conditions'}"
        elif local and local.get("error"):
            why = f"the last run could not finish: {local['error'].splitlines()[0]}"
        else:
            why = "it has not been run yet"
        con.line(f"Milestone {ms.number} ({ms.name}) has not passed: {why}.")
        con.line(f"No badge yet. Run: tito milestone run {ms.number}  (what it needs: tito milestone start {ms.number})")
        return EXIT_NOT_WON
    doc, caps = program_description(ms)
    party = con.sym("party")
    con.line(con.style(f"{party} MILESTONE UNLOCKED: {ms.badge} {party}", "green"))
    con.line()
    con.line(f"Milestone {ms.number}, {ms.name}, passed with your own tinytorch: {_metric_summary(result, ms)}.")
    if caps:
        con.line("What your framework can do now:")
        for cap in caps:
            con.line(f"  {con.sym('pass')} {cap}")
    later = [m for m in course.milestones if m.number > ms.number]
    if later:
        nxt = later[0]
        con.line()
        con.line(f"Next challenge: milestone {nxt.number}, {nxt.name} (badge: {nxt.badge}).")
        con.line(f"{con.sym('rocket')} Keep going: tito milestone next")
    else:
        con.line(f"{con.sym('trophy')} That was the last milestone: every badge is yours.")
    return EXIT_VICTORY


# ---- argparse wiring -----------------------------------------------------------------------------------------
def _guarded(command):
    """A course-table problem or an unknown milestone number is a one-line error, not a traceback."""
    from grading.course import CourseError

    def wrapper(args) -> int:
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
    run.add_argument("--profile", action="store_true",
                     help="after the run, profile one training step layer by layer next to the reference "
                          "(module 14's profiler; automatic when a run goes over its ceiling)")
    run.set_defaults(func=_guarded(cmd_run))

    sub.add_parser("list", help="the milestones and their victory conditions").set_defaults(func=_guarded(cmd_list))
    status = sub.add_parser("status", help="passed / failed / ready / locked")
    status.add_argument("--detailed", action="store_true", help="per-module state and last metrics")
    status.set_defaults(func=_guarded(cmd_status))
    sub.add_parser("timeline", help="your journey through modules and milestones").set_defaults(func=_guarded(cmd_timeline))
    sub.add_parser("next", help="what to do next").set_defaults(func=_guarded(cmd_next))
    start = sub.add_parser("start", help="what milestone N (default: your next one) asks you to build")
    start.add_argument("number", type=int, nargs="?", default=None)
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
