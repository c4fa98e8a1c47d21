"""The OS sandbox that the instructor's regrade runs every piece of student code in (Linux, bubblewrap).

What a sandboxed child sees and can do (each point is tested in tests/test_regrade_sandbox.py):

- its own user (uid 65534, "nobody"), PID, network, IPC, UTS and cgroup namespaces, no capabilities, no further user
  namespaces, a new terminal session; `--die-with-parent`, and because it is PID 1's child in its own PID
  namespace, every process it starts dies with it (a `setsid` daemon cannot outlive the run);
- a file system made only of: the system libraries (/usr and its /bin, /lib links), the Python
  installation, the paths the caller lists (`readable`: read-only; `writable`: read-write, each a fresh
  folder the judge made for this run), a fresh /proc for its own PID namespace, a minimal /dev and a
  private /tmp (a size-capped tmpfs). The instructor's checkout, the reference solutions, other
  students' folders, the judge's results, $HOME and the rest of /etc are not there at all;
- an environment cleared to what the caller passes (no tokens), HOME and TMPDIR in its private /tmp;
- no network (only its own loopback);
- limits: address space and file size (set by `grading.testrun.Watched` around it), the number of
  processes (a pids control group, or RLIMIT_NPROC: grading/instructor/sandbox_launcher.py), and the wall
  clock (its caller's watchdog).

Bubblewrap ships with most distributions (`apt-get install bubblewrap`). Ubuntu 24.04 (GitHub's
`ubuntu-latest`) also restricts unprivileged user namespaces through AppArmor; the class workflow lifts
that with `sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0`. `Bubblewrap.check()` says
exactly what is missing.
"""
from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

# What the sandbox mounts of the host besides the caller's paths (read-only). /etc is left out except the
# few files that the dynamic loader and Python's start-up read.
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
SYSTEM_FILES = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/localtime", "/etc/passwd", "/etc/group",
                "/etc/nsswitch.conf")
# Packages of the course that must never be importable from an installed copy inside the sandbox: a
# non-editable `pip install .` of the instructor's checkout would put the reference solutions in
# site-packages. An empty tmpfs is mounted over each.
COURSE_PACKAGES = ("tinytorch", "grading", "milestones")
TMP_BYTES = 512 * 1024 * 1024
MAX_PROCESSES = 256            # processes one sandbox may have (sandbox_launcher.py)

HOW_TO_GET_ONE = (
    "The regrade runs student code in a bubblewrap sandbox (Linux only). Install it with "
    "`sudo apt-get install bubblewrap` (Debian/Ubuntu) or `sudo dnf install bubblewrap` (Fedora). "
    "On Ubuntu 24.04, including GitHub's ubuntu-latest runners, also allow unprivileged user namespaces: "
    "`sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0`. Without a sandbox, "
    "`--unsandboxed` grades anyway and marks every result unverified.")


class SandboxUnavailable(RuntimeError):
    """No working sandbox on this machine; the message says why and how to get one."""


class Bubblewrap:
    """Wraps a command so that it runs inside a fresh bubblewrap sandbox (see the module docstring)."""

    name = "bubblewrap"
    verified = True

    def __init__(self, executable: str | None = None, tmp_bytes: int = TMP_BYTES,
                 max_processes: int = MAX_PROCESSES):
        self.executable = executable or shutil.which("bwrap") or "bwrap"
        self.tmp_bytes = int(tmp_bytes)
        self.max_processes = int(max_processes)

    # ---- is it there? -------------------------------------------------------------------------------
    def check(self) -> None:
        """Raise SandboxUnavailable (with the fix) unless a sandboxed `python -c` runs here."""
        if not sys.platform.startswith("linux"):
            raise SandboxUnavailable(f"this is {sys.platform}, not Linux. " + HOW_TO_GET_ONE)
        if shutil.which(self.executable) is None:
            raise SandboxUnavailable("bubblewrap (`bwrap`) is not installed. " + HOW_TO_GET_ONE)
        argv, env = self.wrap([sys.executable, "-I", "-c", "print('sandbox ok')"], cwd=Path("/"),
                              readable=[], writable=[], env={})
        try:
            res = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SandboxUnavailable(f"bubblewrap could not start: {exc}. " + HOW_TO_GET_ONE) from None
        if res.returncode != 0 or "sandbox ok" not in res.stdout:
            why = (res.stderr.strip().splitlines() or [f"exit status {res.returncode}"])[-1]
            raise SandboxUnavailable(f"bubblewrap is installed but cannot make a sandbox here ({why}). "
                                     + HOW_TO_GET_ONE)

    # ---- the command ---------------------------------------------------------------------------------
    def wrap(self, argv: list[str], *, cwd: Path, readable: list[Path], writable: list[Path],
             env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
        """(argv, env) that run `argv` inside a new sandbox; `env` is what the child gets, nothing more."""
        args = [self.executable,
                "--unshare-user", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
                "--unshare-cgroup-try", "--disable-userns", "--cap-drop", "ALL", "--uid", "65534", "--gid", "65534",
                "--die-with-parent", "--new-session"]
        for path in SYSTEM_DIRS:
            if os.path.islink(path):        # merged /usr: /bin -> usr/bin
                args += ["--symlink", os.readlink(path), path]
            elif os.path.isdir(path):
                args += ["--ro-bind", path, path]
        for path in SYSTEM_FILES:
            if os.path.exists(path):
                args += ["--ro-bind", path, path]
        python_dirs = _python_dirs()
        for path in python_dirs:
            args += ["--ro-bind", path, path]
        for path in _installed_course_packages(python_dirs):
            args += ["--tmpfs", path]
        args += ["--proc", "/proc", "--dev", "/dev", "--size", str(self.tmp_bytes), "--tmpfs", "/tmp"]
        for path in readable:
            real = _real_dir_or_file(path)
            args += ["--ro-bind", real, real]
        for path in writable:
            real = _real_dir_or_file(path)
            args += ["--bind", real, real]
        args += ["--chdir", _real_dir_or_file(cwd), "--clearenv"]
        inside = {"HOME": "/tmp", "TMPDIR": "/tmp", "LANG": "C.UTF-8", "PATH": "/usr/bin:/bin",
                  "PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1"}
        inside.update({k: str(v) for k, v in env.items()})
        for key, value in sorted(inside.items()):
            args += ["--setenv", key, value]
        args += ["--", *argv]
        launcher = [sys.executable, "-I", str(Path(__file__).with_name("sandbox_launcher.py")),
                    str(self.max_processes)]
        return launcher + args, {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}


def _real_dir_or_file(path) -> str:
    """The path with every symbolic link resolved: a bind mount of a link would follow it anyway, and
    the judge's own folders never contain links into other places."""
    return os.path.realpath(os.fspath(path))


def _python_dirs() -> list[str]:
    """The folders of this Python installation: the interpreter, its standard library and site-packages."""
    candidates = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.realpath(sys.executable)),
                  sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"]}
    candidates.update(site.getsitepackages() if hasattr(site, "getsitepackages") else [])
    real = sorted({os.path.realpath(p) for p in candidates if p and os.path.isdir(p)})
    # keep the outermost folders only (a bind of a parent already shows its children)
    return [p for p in real if not any(p != q and p.startswith(q.rstrip("/") + "/") for q in real)
            and not any(p.startswith(d.rstrip("/") + "/") for d in SYSTEM_DIRS if os.path.isdir(d)
                        and not os.path.islink(d))]


def _installed_course_packages(python_dirs: list[str]) -> list[str]:
    """Installed copies of the course's packages inside the Python folders (hidden by an empty tmpfs)."""
    found = []
    roots = {os.path.realpath(p) for p in (site.getsitepackages() if hasattr(site, "getsitepackages") else [])}
    roots.update(os.path.realpath(p) for p in sys.path if p and "site-packages" in p)
    for root in sorted(roots):
        for name in COURSE_PACKAGES:
            candidate = os.path.join(root, name)
            if os.path.isdir(candidate) and not os.path.islink(candidate):
                found.append(candidate)
    return found
