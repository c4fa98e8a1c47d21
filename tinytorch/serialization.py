"""`tt.save(obj, path)` / `tt.load(path)`: PyTorch's save and load, in an .npz file, never a pickle.

What can be saved: a Tensor, a NumPy array, a number, a string, None, and dicts / lists / tuples of
those - so state dicts (`model.state_dict()`, `optimizer.state_dict()`) and checkpoints built from
them. Arrays become .npy members of the archive; the structure is a JSON header (member
"__tinytorch_save__"). Loading never runs code from the file (np.load with allow_pickle=False),
so a file from someone else cannot execute anything. Saving a whole model object (PyTorch's
`torch.save(model)`) is refused: save `model.state_dict()` and rebuild the model in code.
The write is atomic (a crash leaves the old file), as Module.save's.
"""
from __future__ import annotations

import json
import os

import numpy as np

from tinytorch.layers import atomic_savez, read_npz
from tinytorch.tensor import Tensor, TensorError

_HEADER = "__tinytorch_save__"
_FORMAT = "tinytorch-save"


def _encode(value, key: str, arrays: dict):
    """JSON for `value`, with every tensor/array stored in `arrays` under a fresh member name."""
    if isinstance(value, (Tensor, np.ndarray)):
        name = f"a{len(arrays)}"
        arrays[name] = np.asarray(value.data if isinstance(value, Tensor) else value)
        return {"__tensor__" if isinstance(value, Tensor) else "__array__": name}
    if isinstance(value, dict):
        if not all(isinstance(k, (str, int)) for k in value):
            raise TensorError(f"save: dict keys must be strings or ints, got {sorted(map(repr, value))[:3]} at {key!r}")
        return {"__dict__": [[k, _encode(v, f"{key}.{k}", arrays)] for k, v in value.items()]}
    if isinstance(value, (list, tuple)):
        kind = "__list__" if isinstance(value, list) else "__tuple__"
        return {kind: [_encode(v, f"{key}[{i}]", arrays) for i, v in enumerate(value)]}
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    hint = (" - save model.state_dict() and rebuild the model in code (TinyTorch never pickles objects)"
            if hasattr(value, "state_dict") else "")
    raise TensorError(f"save: cannot store {key} of type {type(value).__name__}; only tensors, arrays, numbers, "
                      f"strings and dicts/lists of them{hint}")


def _decode(value, arrays: dict):
    if isinstance(value, dict):
        (kind, body), = value.items()
        if kind == "__tensor__":
            return Tensor._wrap(arrays[body])
        if kind == "__array__":
            return arrays[body]
        if kind == "__dict__":
            return {k: _decode(v, arrays) for k, v in body}
        if kind == "__list__":
            return [_decode(v, arrays) for v in body]
        if kind == "__tuple__":
            return tuple(_decode(v, arrays) for v in body)
        raise TensorError(f"load: unknown entry {kind!r} in the file")
    return value


def save(obj, f) -> None:
    """Write `obj` (a tensor, or a dict such as model.state_dict()) to the file `f` (any name, e.g. model.pth)."""
    arrays: dict[str, np.ndarray] = {}
    header = {"format": _FORMAT, "version": 1, "object": _encode(obj, "the object", arrays)}
    arrays[_HEADER] = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
    atomic_savez(f, arrays)


def load(f, map_location=None, weights_only: bool = True):
    """Read what `save` wrote. `map_location` may only name the CPU; `weights_only` is always true here
    (nothing but tensors, numbers and containers can come out of the file)."""
    from tinytorch.devices import check_device
    check_device(map_location if not callable(map_location) else None, "load")
    path = os.fspath(f)
    try:
        arrays = read_npz(path, "load", "tinytorch.save")
        header = json.loads(arrays.pop(_HEADER).tobytes().decode("utf-8"))
    except (TensorError, KeyError, ValueError) as exc:  # not a zip, truncated, no header: not written by tt.save
        raise TensorError(f"load: {path} is not a file written by tinytorch.save ({type(exc).__name__}: {exc})") from None
    if header.get("format") != _FORMAT:
        raise TensorError(f"load: {path} is not a file written by tinytorch.save (format {header.get('format')!r})")
    return _decode(header["object"], arrays)
