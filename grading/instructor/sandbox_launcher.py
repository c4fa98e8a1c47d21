"""Starts bubblewrap with a cap on the number of processes the sandbox may have (a fork bomb stops there).

    python -I sandbox_launcher.py MAX_PROCESSES bwrap ARGS...

Two mechanisms, because neither works everywhere:
- a `pids` control group holding only the sandbox (cgroup v1 `/sys/fs/cgroup/pids`, or v2 with the pids
  controller), where this user may create one: typically when the grader runs as root, for whom the kernel
  ignores RLIMIT_NPROC;
- RLIMIT_NPROC, which counts every process of this user on the machine, so it is set to the number running
  now plus MAX_PROCESSES: effective for an ordinary user such as GitHub's `runner`.
The launcher waits for bubblewrap (so that it can remove the control group afterwards) and exits with its
status; killing the launcher kills bubblewrap (`--die-with-parent`), and with it every sandboxed process.
Standard library only: it runs before anything of the course is importable.
"""
import os
import resource
import signal
import sys
import time

CGROUP_ROOTS = ("/sys/fs/cgroup/pids", "/sys/fs/cgroup/unified", "/sys/fs/cgroup")
PREFIX = "tito-sandbox-"


def processes_of_this_user() -> int:
    uid, count = str(os.getuid()), 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/status", encoding="ascii", errors="replace") as fh:
                    count += any(line.startswith("Uid:") and line.split()[1] == uid for line in fh)
            except OSError:
                pass
    return count


def make_pids_group(limit: int):
    """A new pids control group limited to `limit` processes, or None where none can be made."""
    for root in CGROUP_ROOTS:
        if not os.path.isfile(os.path.join(root, "cgroup.procs")):
            continue
        for stale in os.listdir(root):           # groups left by launchers that were killed (never a
            owner = stale[len(PREFIX):]          # running launcher's: its group may still be empty)
            if stale.startswith(PREFIX) and owner.isdigit() and not os.path.exists(f"/proc/{owner}"):
                try:
                    os.rmdir(os.path.join(root, stale))
                except OSError:
                    pass
        group = os.path.join(root, f"{PREFIX}{os.getpid()}")
        try:
            os.mkdir(group)
        except OSError:
            continue
        try:
            with open(os.path.join(group, "pids.max"), "w") as fh:
                fh.write(str(limit))
            return group
        except OSError:
            os.rmdir(group)
    return None


def main() -> int:
    limit, argv = int(sys.argv[1]), sys.argv[2:]
    group = make_pids_group(limit)
    total = processes_of_this_user() + limit
    pid = os.fork()
    if pid == 0:
        if group is not None:
            try:
                with open(os.path.join(group, "cgroup.procs"), "w") as fh:
                    fh.write(str(os.getpid()))
            except OSError as exc:   # RLIMIT_NPROC below still applies
                print(f"sandbox launcher: could not join {group}: {exc}", file=sys.stderr)
        resource.setrlimit(resource.RLIMIT_NPROC, (total, total))
        os.execvp(argv[0], argv)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda s, f: os.kill(pid, signal.SIGKILL))
    _, status = os.waitpid(pid, 0)
    for _ in range(40 if group is not None else 0):   # the sandbox's processes take a moment to go
        try:
            os.rmdir(group)
            break
        except OSError:
            time.sleep(0.05)
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


if __name__ == "__main__":
    sys.exit(main())
