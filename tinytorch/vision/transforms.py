"""`tinytorch.vision.transforms`: torchvision's transform names for module 08's transforms.

`Compose`, `Normalize`, `RandomCrop`, `RandomHorizontalFlip` are module 08's classes; `ToTensor` is
its `ToFloat` (uint8 pixels -> float32 in [0, 1]; the arrays are channels-first already); `Lambda`
wraps a function applied to one sample (or label) at a time.
"""
from __future__ import annotations

from typing import Callable

from tinytorch.data import Compose, Normalize, RandomCrop, RandomHorizontalFlip, ToFloat  # noqa: F401


class ToTensor(ToFloat):
    """torchvision's ToTensor for channels-first arrays: uint8 0..255 -> float32 in [0, 1]."""


class Lambda:
    """A user function as a transform: Lambda(lambda y: ...). It has no batch form, so batches apply
    it sample by sample (module 08's apply_batch)."""

    def __init__(self, fn: Callable):
        if not callable(fn):
            raise TypeError(f"Lambda: expected a function, got {type(fn).__name__}")
        self.fn = fn

    def __call__(self, sample):
        return self.fn(sample)

    def __repr__(self) -> str:
        return f"Lambda({getattr(self.fn, '__name__', 'fn')})"
