"""`tito`: the command-line tool of TinyTorch Classroom.

    tito module list|start NN|test NN|complete NN     work on a module
    tito milestone ...                                 run and track the five milestones
    tito grade [--skip-milestones]                     what CI runs on every push
    tito release / classroom / bench                   instructor and benchmarking tools

Commands provided by other files (milestone, release, classroom, bench) are imported only when used,
so a missing or broken one gives a clear message instead of breaking every other command.
"""
from __future__ import annotations

import argparse
import importlib
import sys

import grading
from grading.console import Console
from grading.course import elsewhere_note, repo_root

# command -> (module that provides `register(subparsers)`, one-line help)
EXTERNAL = {
    "milestone": ("grading.milestones", "run and track the five milestones (tito milestone --help)"),
    "release": ("grading.instructor.release", "instructors: generate the student template repository"),
    "classroom": ("grading.instructor.classroom", "instructors: roster and regrade of student repositories"),
    "bench": ("grading.bench", "benchmarks of the framework's kernels"),
}
OWN = {
    "module": ("grading.modules_cmd", "work on a module: list, start NN, test NN, complete NN"),
    "grade": ("grading.grade", "grade everything: module tests, milestones, badges, README progress"),
}


# commands that act on the repository in the current directory (grading.course.repo_root)
WORKS_ON_THE_REPOSITORY = ("module", "milestone", "grade")


class _MissingCommand:
    """Stands in for a command whose module could not be imported."""

    def __init__(self, name: str, module: str, error: BaseException):
        self.name, self.module, self.error = name, module, error

    def __call__(self, args) -> int:
        out = getattr(args, "console", None) or Console(sys.stderr)
        path = self.module.replace(".", "/") + ".py"
        if isinstance(self.error, ModuleNotFoundError) and self.error.name == self.module:
            out.line(f"tito {self.name} is not available: {path} is missing from this repository.")
        else:
            out.line(f"tito {self.name} is not available: importing {path} failed with "
                     f"{type(self.error).__name__}: {self.error}")
        return 2


def _first_command(argv: list[str]) -> str | None:
    for token in argv:
        if not token.startswith("-"):
            return token
    return None


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    """The parser; only the command named in `argv` has its module imported."""
    parser = argparse.ArgumentParser(
        prog="tito", description="tito, the command-line tool of TinyTorch Classroom: build the framework "
                                 "module by module, run the milestones, and see your grade.",
        epilog="Run `tito COMMAND --help` for the options of a command.")
    parser.add_argument("--version", action="version", version=f"tito {grading.__version__}")
    parser.add_argument("--no-color", action="store_true", help="never colour the output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    wanted = _first_command(argv)
    for name, (module, help_text) in {**OWN, **EXTERNAL}.items():
        if name != wanted:
            sub.add_parser(name, help=help_text, add_help=False)
            continue
        try:
            importlib.import_module(module).register(sub)
        except Exception as exc:  # a missing or broken command must not break the others
            p = sub.add_parser(name, help=help_text, add_help=False)
            p.add_argument("rest", nargs=argparse.REMAINDER)
            p.set_defaults(func=_MissingCommand(name, module, exc))
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    args.console = Console(color=False if args.no_color else None)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 0 if args.command is None else 2
    if args.command in WORKS_ON_THE_REPOSITORY:
        note = elsewhere_note(repo_root())
        if note:
            args.console.line(f"{args.console.sym('warn')} {note}")
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        args.console.line("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
