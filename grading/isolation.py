"""How a child process that runs student code is isolated: the one interface, and the no-op student side.

Every place that starts student code (the module tests, the module probes, a milestone program) builds
its command as if it ran on the host, then asks an isolation object to wrap it:

    argv, env = isolation.wrap(argv, cwd=course, readable=[course, data], writable=[scratch], env=env)
    subprocess.Popen(argv, cwd=course, env=env, ...)

`readable` and `writable` are every host path the child needs; an OS sandbox shows them (read-only, and
read-write) at the same paths inside, and nothing else of the host except the Python installation, so
commands need no path mapping. On a student's machine nothing is isolated (`NoIsolation`): the student
grades their own code and the result is self-reported. The instructor's regrade uses
`grading.instructor.sandbox.Bubblewrap`, whose results are `verified`.
"""
from __future__ import annotations

from pathlib import Path


class NoIsolation:
    """Runs the command as it is: what `tito grade` does on a student's machine and in their CI."""

    name = "none"
    verified = False

    def wrap(self, argv: list[str], *, cwd: Path, readable: list[Path], writable: list[Path],
             env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
        return list(argv), dict(env)
