"""Data, never code, across a process boundary: the one wire format between a judge and student code.

A frame is a JSON header plus named NumPy arrays:

    [8 bytes: length of the JSON header, big-endian] [header, UTF-8 JSON object]
    [8 bytes: length of the arrays]                  [arrays, an .npz archive; empty when there are none]

Arrays are read with `allow_pickle=False` and must have a numeric or boolean dtype, so nothing that crosses
can run code on the reading side. Every read is bounded (`max_bytes`); a peer that sends garbage, too
much, or closes early raises `ChannelError`, which the judge turns into a failed check, never a crash.

    send(stream, {"op": "predict", "batch": 3}, {"images": x})
    header, arrays = receive(stream)              # ({"op": ...}, {"images": ndarray})
"""
from __future__ import annotations

import io
import json
import os
import struct
import sys
from typing import BinaryIO

import numpy as np

MAX_FRAME_BYTES = 512 * 1024 * 1024
_LENGTH = struct.Struct(">Q")
_ALLOWED_KINDS = "biuf"   # bool, signed and unsigned integers, floats: no objects, strings or records


class ChannelError(RuntimeError):
    """The other side sent something that is not a well-formed frame (or closed the stream early)."""


def encode(header: dict, arrays: dict[str, np.ndarray] | None = None) -> bytes:
    """One frame as bytes (see the module docstring)."""
    head = json.dumps(header, allow_nan=False, separators=(",", ":")).encode("utf-8")
    body = b""
    if arrays:
        buffer = io.BytesIO()
        np.savez(buffer, **{name: _checked(name, np.asarray(a)) for name, a in arrays.items()})
        body = buffer.getvalue()
    return _LENGTH.pack(len(head)) + head + _LENGTH.pack(len(body)) + body


def send(stream: BinaryIO, header: dict, arrays: dict[str, np.ndarray] | None = None) -> None:
    stream.write(encode(header, arrays))
    stream.flush()


def receive(stream: BinaryIO, max_bytes: int = MAX_FRAME_BYTES) -> tuple[dict, dict[str, np.ndarray]]:
    """Read one frame; raises ChannelError on end of stream, oversize, bad JSON or a disallowed array."""
    head = _read_exactly(stream, _read_length(stream, max_bytes))
    try:
        header = json.loads(head.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ChannelError(f"the header is not JSON: {exc}") from None
    if not isinstance(header, dict):
        raise ChannelError(f"the header must be a JSON object, got {type(header).__name__}")
    body = _read_exactly(stream, _read_length(stream, max_bytes))
    return header, decode_arrays(body)


def decode_arrays(body: bytes) -> dict[str, np.ndarray]:
    """The arrays of an .npz archive, loaded without pickles and checked for plain numeric dtypes."""
    if not body:
        return {}
    try:
        with np.load(io.BytesIO(body), allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except Exception as exc:  # a malformed archive can raise almost anything from zipfile or numpy
        raise ChannelError(f"the arrays are not a readable .npz archive: {type(exc).__name__}: {exc}") from None
    for name, array in arrays.items():
        _checked(name, array)
    return arrays


def claim_stdio() -> tuple[BinaryIO, BinaryIO]:
    """This process's stdin and stdout as the channel to its parent: (inbound, outbound) binary streams on
    copies of fds 0 and 1. From now on fd 1 and `sys.stdout` write to stderr and fd 0 and `sys.stdin` read
    /dev/null, so a `print` or `input` in student code cannot touch a frame. (Code that writes to the
    channel's file descriptor on purpose only makes its own results unreadable: the judge checks every frame.)"""
    inbound = os.fdopen(os.dup(0), "rb")
    outbound = os.fdopen(os.dup(1), "wb")
    sys.stdout.flush()
    os.dup2(2, 1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    sys.stdout = sys.stderr
    sys.stdin = open(os.devnull, encoding="utf-8")
    return inbound, outbound


def _checked(name: str, array: np.ndarray) -> np.ndarray:
    if array.dtype.kind not in _ALLOWED_KINDS:
        raise ChannelError(f"array {name!r} has dtype {array.dtype}; only numbers and booleans may cross")
    return array


def _read_length(stream: BinaryIO, max_bytes: int) -> int:
    (length,) = _LENGTH.unpack(_read_exactly(stream, _LENGTH.size))
    if length > max_bytes:
        raise ChannelError(f"a frame of {length} bytes is larger than the limit of {max_bytes}")
    return length


def _read_exactly(stream: BinaryIO, n: int) -> bytes:
    chunks, left = [], n
    while left:
        chunk = stream.read(left)
        if not chunk:
            raise ChannelError(f"the stream ended {left} bytes before the end of a frame")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
