"""The process that runs a milestone program (student code), talking to the judge only through frames.

    python -I -B -c "...main(...)" ROOT --milestone 3 --program milestones/m3_full_training.py \
        --data DIR --out DIR --seed 0 [--tiny] [--schedule JSON]

The judge (grading/judge.py) starts this process with a data folder that holds training material only.
Its stdin and stdout carry frames (grading/channel.py: JSON header + npz, no pickles); everything the
program prints goes to stderr, because file descriptor 1 is pointed at stderr before the program is
imported (the frames use a private copy of the original stdout), so a stray print cannot corrupt the
channel. The last frame is {"op": "result", ...} or {"op": "error", "message": ...}.

Nothing here decides a grade: the judge computes every metric from the predictions it receives.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import traceback
from pathlib import Path

import numpy as np

from grading import channel

MAX_JUDGE_FRAME = 256 * 1024 * 1024     # held-out batches from the judge are far smaller


class JudgeLink:
    """The child's end of the channel: the requests `MilestoneContext.evaluate*` make."""

    def __init__(self, inbound, outbound):
        self.inbound, self.outbound = inbound, outbound

    def send(self, header: dict, arrays: dict | None = None) -> None:
        channel.send(self.outbound, header, arrays)

    def receive(self) -> tuple[dict, dict]:
        return channel.receive(self.inbound, MAX_JUDGE_FRAME)

    def _refused(self, header: dict):
        from milestones.common import JudgeRefused
        return JudgeRefused(str(header.get("reason", "the judge refused the request")))

    def evaluate_images(self, predict, tag: str, at: dict) -> None:
        self.send({"op": "evaluate", "kind": "images", "tag": str(tag), "at": _plain(at)})
        while True:
            header, arrays = self.receive()
            if header.get("op") == "batch":
                predicted = np.asarray(predict(arrays["x"]))
                if predicted.dtype.kind == "f":
                    predicted = predicted.astype(np.float32)
                self.send({"op": "predictions"}, {"y": predicted})
            elif header.get("op") == "done":
                return
            else:
                raise self._refused(header)

    def evaluate_text(self, predictor, vocabulary: list[str], tag: str) -> None:
        self.send({"op": "evaluate", "kind": "text", "tag": str(tag), "vocabulary": vocabulary})
        while True:
            header, arrays = self.receive()
            if header.get("op") == "round":
                scores = np.asarray(predictor(arrays["ids"].astype(np.int64), bool(header.get("reset"))),
                                    dtype=np.float32)
                self.send({"op": "scores"}, {"scores": scores})
            elif header.get("op") == "done":
                return
            else:
                raise self._refused(header)


def _plain(value):
    """JSON-safe copy of a program's history/details (numpy scalars -> numbers, non-finite -> None)."""
    import math

    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return _plain(value.tolist())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (bool, int, str)) or value is None:
        return value
    if hasattr(value, "__float__"):
        return _plain(float(value))
    return str(value)


def explain_error(exc: BaseException, number: int, requires: list[str]) -> str:
    """A message that teaches: missing data, unfinished modules, or where the program failed."""
    from milestones.common import JudgeRefused, MilestoneDataMissing

    if isinstance(exc, (MilestoneDataMissing, JudgeRefused)):
        return str(exc)
    if isinstance(exc, NotImplementedError):
        return (f"your tinytorch is not finished yet: {exc}\n"
                f"  milestone {number} needs the modules {', '.join(requires)}; "
                f"`tito milestone start {number}` shows which ones still fail")
    if isinstance(exc, channel.ChannelError):
        return f"the connection to the judge broke: {exc}"
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" (at {Path(tb[-1].filename).name}:{tb[-1].lineno} in {tb[-1].name})" if tb else ""
    return f"{type(exc).__name__}: {exc}{where}"


def _framework_in_use() -> str:
    try:
        import tinytorch
        return str(Path(tinytorch.__file__).resolve().parent)
    except Exception as exc:  # an unfinished student file may fail to import
        return f"<tinytorch does not import: {exc}>"


def _load_program(path: Path):
    if not path.exists():
        raise FileNotFoundError(f"milestone program {path} does not exist")
    spec = importlib.util.spec_from_file_location(f"milestones.{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not callable(getattr(module, "run", None)):
        raise AttributeError(f"{path.name} does not define run(ctx)")
    return module


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="milestone_child")
    parser.add_argument("--milestone", type=int, required=True)
    parser.add_argument("--program", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--schedule", default="{}")
    parser.add_argument("--requires", default="")
    args = parser.parse_args(argv)
    inbound, outbound = channel.claim_stdio()
    link = JudgeLink(inbound, outbound)
    root = Path(sys.path[0])
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    try:
        from milestones.common import MilestoneContext

        ctx = MilestoneContext(args.milestone, data_dir=args.data, tiny=args.tiny, seed=args.seed,
                               out_dir=args.out, schedule=json.loads(args.schedule), stream=sys.stderr,
                               judge=link)
        output = _load_program(Path(args.program)).run(ctx) or {}
        if not isinstance(output, dict):
            raise TypeError(f"run(ctx) must return a dict with 'history' and 'details', got {type(output).__name__}")
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - the judge gets a reason, whatever went wrong
        link.send({"op": "error", "message": explain_error(exc, args.milestone, args.requires.split(",")),
                   "framework": _framework_in_use()})
        return 0
    link.send({"op": "result", "history": _plain(output.get("history") or []),
               "details": _plain(output.get("details") or {}), "samples": _plain(output.get("samples") or []),
               "stopped_at": _plain(output.get("stopped_at")), "corpus": ctx.corpus,
               "framework": _framework_in_use()})
    return 0
