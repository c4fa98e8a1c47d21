"""The trusted side of the regrade: runs the module probes on both sides and compares what came back.

    verdicts = judge_probes(course, student_root, reference_root, isolation, seed)
    verdicts["02_tensor"].fraction        # share of module 02's probes whose outputs matched the reference

This process never imports `tinytorch`: the student's package runs in a probe worker inside the sandbox,
the reference in a second worker (grading/instructor/probe_worker.py), and only arrays cross back, as
`grading.channel` frames. A probe matches when it ran without error on the student's side and every output
array agrees with the reference's (`grading.instructor.probes.outputs_match`). A worker that crashes,
hangs, floods or sends garbage fails the probe it was running; the others are run again in a new worker.
(The instructor's probe files are imported only by the workers: they run course code.)
"""
from __future__ import annotations

import queue
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from grading import channel
from grading.course import Course
from grading.testrun import Limits, limits_preexec, python_in

MAX_ANSWER_BYTES = 64 * 1024 * 1024
MAX_RESTARTS = 8


@dataclass
class ProbeAnswer:
    arrays: dict = field(default_factory=dict)
    error: str | None = None


@dataclass
class ProbeVerdict:
    """How one module's probes went: `matched` of `total`, and why the others did not match."""
    matched: int = 0
    total: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def fraction(self) -> float:
        return self.matched / self.total if self.total else 0.0


def probe_names(reference_root: Path) -> dict[str, list[str]]:
    """{module id: [probe names]} of the instructor's probes (read in a child: the probe files import numpy
    only, but loading them here would still execute course code in the judge)."""
    code = ("from grading.instructor.probe_worker import load_probes; import json; from pathlib import Path; "
            "print(json.dumps({m: sorted(p) for m, p in load_probes(Path(sys.argv[1])).items()}))")
    res = subprocess.run(python_in(reference_root, code), capture_output=True, text=True, timeout=120,
                         cwd=reference_root)
    if res.returncode != 0:
        raise RuntimeError(f"the instructor's probes could not be loaded: {res.stderr.strip()[-800:]}")
    import json
    return json.loads(res.stdout)


def run_worker(root: Path, isolation, seed: int, probes: list[tuple[str, str]], limits: Limits,
               scratch: Path, probe_seconds: float = 30.0) -> dict[tuple[str, str], ProbeAnswer]:
    """Run `probes` with the `tinytorch` under `root`; every probe gets an answer, even if the worker dies."""
    answers: dict[tuple[str, str], ProbeAnswer] = {}
    left = list(probes)
    for _ in range(MAX_RESTARTS + 1):
        if not left:
            break
        got, running = _one_worker(root, isolation, seed, left, limits, scratch, probe_seconds)
        answers.update(got)
        if running is not None:
            answers[running] = ProbeAnswer(error="the probe worker died, hung or sent garbage while running it")
        left = [p for p in left if p not in answers]
    for p in left:
        answers[p] = ProbeAnswer(error="not run: the probe worker kept dying")
    return answers


def _one_worker(root, isolation, seed, probes, limits, scratch, probe_seconds):
    scratch.mkdir(parents=True, exist_ok=True)
    argv = python_in(root, "from grading.instructor.probe_worker import main; sys.exit(main())")
    env = {"PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    argv, env = isolation.wrap(argv, cwd=root, readable=[root], writable=[scratch], env=env)
    log = open(scratch / "worker.log", "ab")
    try:
        proc = subprocess.Popen(argv, cwd=root, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=log, preexec_fn=limits_preexec(limits))
    except OSError as exc:
        log.close()
        return {p: ProbeAnswer(error=f"could not start the probe worker: {exc}") for p in probes}, None
    frames: queue.Queue = queue.Queue()

    def read():
        try:
            while True:
                frames.put(channel.receive(proc.stdout, max_bytes=MAX_ANSWER_BYTES))
        except (channel.ChannelError, OSError, ValueError) as exc:
            frames.put(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    answers, running = {}, None
    try:
        channel.send(proc.stdin, {"seed": seed, "probes": [list(p) for p in probes], "probe_seconds": probe_seconds})
        proc.stdin.close()
        deadline = time.monotonic() + probe_seconds * 2 + 60   # the start-up, then each probe restarts it
        while True:
            try:
                item = frames.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break                                   # hung: the probe that was running fails
            if isinstance(item, Exception):
                break                                   # died, or sent garbage
            header, arrays = item
            if header.get("done") is True:
                running = None
                break
            if isinstance(header.get("start"), list):
                running = tuple(str(x) for x in header["start"])
                deadline = time.monotonic() + probe_seconds + 15
                continue
            key = (str(header.get("module")), str(header.get("probe")))
            if key not in probes or key != running:
                break                                   # an answer nobody asked for: stop trusting the stream
            error = header.get("error")
            answers[key] = ProbeAnswer(arrays=arrays if not error else {},
                                       error=str(error)[:800] if error else None)
            running = None
    except (OSError, ValueError):
        pass
    finally:
        try:   # a worker that said "done" exits by itself (and its launcher removes its control group)
            proc.wait(timeout=10 if running is None and answers else 0.01)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    return answers, running


def compare(course: Course, names: dict[str, list[str]], student: dict, reference: dict) -> dict[str, ProbeVerdict]:
    """{module id: ProbeVerdict} from the answers of the two workers."""
    from grading.instructor.probes import mismatch
    verdicts = {}
    for m in course.modules:
        verdict = ProbeVerdict(total=len(names.get(m.id, [])))
        for name in names.get(m.id, []):
            mine, ref = student.get((m.id, name)), reference.get((m.id, name))
            if ref is None or ref.error:
                verdict.failures.append(f"{name}: the reference failed this probe ({ref.error if ref else 'no answer'})"
                                        " - a broken probe, tell the course maintainers")
            elif mine is None or mine.error:
                verdict.failures.append(f"{name}: {mine.error if mine else 'no answer'}")
            elif (why := mismatch(mine.arrays, ref.arrays)) is None:
                verdict.matched += 1
            else:
                verdict.failures.append(f"{name}: {why}")
        verdicts[m.id] = verdict
    return verdicts
