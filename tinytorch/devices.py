"""Devices, PyTorch-shaped: TinyTorch computes with NumPy, so the one device is the CPU.

`tt.device("cpu")`, `x.device`, `x.to("cpu")` and `tt.cuda.is_available()` (False) let code written
for PyTorch run unchanged. Asking for any other device ("cuda", "mps", ...) is an error that says
so - never a silent fall-back that would make a user believe a GPU did the work.
"""
from __future__ import annotations


class DeviceError(RuntimeError):
    """A device other than the CPU was requested."""


class device:
    """A device name as in PyTorch: `device("cpu")`, `device("cuda", 0)`.

    Naming a device is allowed (PyTorch code builds `device("cuda")` before checking for one);
    putting a tensor or a model on anything but the CPU is a DeviceError (`check_device`).
    """

    __slots__ = ("type", "index")

    def __init__(self, type: "str | device" = "cpu", index: int | None = None):
        if isinstance(type, device):
            type, index = type.type, type.index if index is None else index
        if not isinstance(type, str):
            raise DeviceError(f"device: expected a name such as 'cpu', got {type!r}")
        name, _, number = type.partition(":")
        if not name.isidentifier() or (number and not number.isdigit()):
            raise DeviceError(f"device: expected a name such as 'cpu' or 'cuda:0', got {type!r}")
        self.type = name
        self.index = int(number) if number else index

    def __eq__(self, other) -> bool:
        if isinstance(other, str):
            try:
                other = device(other)
            except DeviceError:
                return False
        return isinstance(other, device) and (other.type, other.index) == (self.type, self.index)

    def __hash__(self) -> int:
        return hash((self.type, self.index))

    def __repr__(self) -> str:
        return f"device(type='{self.type}')" if self.index is None else f"device(type='{self.type}', index={self.index})"

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"


Device = device  # the class under a name that does not clash with `device=` arguments
CPU = device("cpu")


def check_device(value, op: str) -> None:
    """Accept None, 'cpu' or a cpu `device` for a `device=` argument; anything else is a DeviceError."""
    if value is None or value is CPU or value == "cpu":
        return
    try:
        kind = device(value).type
    except DeviceError as exc:
        raise DeviceError(f"{op}: {exc}") from None
    if kind != "cpu":
        raise DeviceError(f"{op}: TinyTorch runs on the CPU (NumPy) only, so device {str(value)!r} is not "
                          "available. Use 'cpu', or pick it as PyTorch code does: "
                          "`'cuda' if torch.cuda.is_available() else 'cpu'` (is_available() is False here)")


class _NoAccelerator:
    """`tt.cuda`, `tt.backends.mps`, `tt.accelerator`: present, and reporting that nothing is there."""

    def __init__(self, name: str):
        self._name = name

    def is_available(self) -> bool:
        return False

    def device_count(self) -> int:
        return 0

    def current_accelerator(self):
        return None

    def manual_seed(self, seed: int) -> None:
        """Seeding a device that does not exist has nothing to do (PyTorch ignores it too)."""

    manual_seed_all = manual_seed

    def __repr__(self) -> str:
        return f"<tinytorch.{self._name}: not available, TinyTorch runs on the CPU>"


cuda = _NoAccelerator("cuda")
accelerator = _NoAccelerator("accelerator")


class _Backends:
    mps = _NoAccelerator("backends.mps")
    cudnn = _NoAccelerator("backends.cudnn")


backends = _Backends()
