"""The judge's data: what a milestone program may see (training material) and what it may not (held-out).

The judge (`tito`, grading/judge.py) loads each data set itself, BEFORE the program starts and outside
its time budget, then splits it:

    split = prepare(number, data_dir=..., tiny=False, seed=0, download=True)
    split.write_training(folder)    # train-only files: the only data the program's process gets
    split.images, split.labels      # held-out images and labels (milestones 1-4); stay in the judge
    split.heldout_text              # held-out characters (milestone 5); stay in the judge

The held-out labels and text never leave this process. Real data comes from tinytorch/datasets.py (download,
cache and checksums), loaded WITHOUT `import tinytorch`: importing the package would run every student
module in the judge. datasets.py and the one file it imports (runtime.py) are loaded as a private package.
Tiny mode makes small synthetic data sets here (seeded, learnable), for tests that run in seconds.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from grading.state import atomic_write_bytes, atomic_write_text

HELD_OUT_TEXT = 0.10                 # milestone 5: the last 10% of the corpus is the held-out text
TRAIN_FILES = {"mnist": "mnist_train.npz", "cifar10": "cifar10_train.npz", "text": "text_train.txt"}
_PRIVATE_PACKAGE = "_tito_judge_datasets"


class MilestoneDataMissing(RuntimeError):
    """A data set is not available; the message says which file, where we looked, and how to fix it."""


@dataclass
class Split:
    """One milestone's data: training material for the program, held-out material for the judge."""

    name: str                                  # "mnist" | "cifar10" | "text"
    corpus: str | None = None                  # milestone 5: "tinyshakespeare" | "pydoc_data" | "synthetic ..."
    train: dict = field(default_factory=dict)  # arrays (images) or {"text": str}
    images: np.ndarray | None = None           # held-out inputs (uint8), milestones 1-4
    labels: np.ndarray | None = None           # held-out labels (int64): never written anywhere
    heldout_text: str | None = None            # milestone 5

    def write_training(self, folder: Path) -> Path:
        """Write the train-only file into `folder` (atomically) and return its path."""
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / TRAIN_FILES[self.name]
        if self.name == "text":
            atomic_write_text(path, self.train["text"])
            atomic_write_text(folder / "corpus.txt", self.corpus or "")
        else:
            import io
            buffer = io.BytesIO()
            np.savez(buffer, **self.train)
            atomic_write_bytes(path, buffer.getvalue())
        return path


def prepare(number: int, *, data_set: str | None, data_dir: Path | str | None = None, tiny: bool = False,
            seed: int = 0, download: bool = True, root: Path | None = None, log=print) -> Split:
    """Load milestone `number`'s data set (course.yaml `data`) and split it into training and held-out parts.

    "synthetic" is always the tiny digit-shaped set (fixture courses of the tests use it).
    """
    if data_set not in ("mnist", "cifar10", "text", "synthetic"):
        raise MilestoneDataMissing(f"assignments/course.yaml gives milestone {number} no data set "
                                   f"(`data: mnist | cifar10 | text | synthetic`), got {data_set!r}")
    if data_set == "text":
        text, corpus = (synthetic_text(seed), "synthetic (tiny test corpus)") if tiny else \
            _real_text(data_dir, download, root, log)
        cut = int(len(text) * (1 - HELD_OUT_TEXT))
        return Split("text", corpus=corpus, train={"text": text[:cut]}, heldout_text=text[cut:])
    name = "mnist" if data_set == "synthetic" else data_set
    if tiny or data_set == "synthetic":
        shape, n_train, n_test = ((28, 28), 512, 256) if name == "mnist" else ((3, 32, 32), 256, 128)
        x_train, y_train, x_test, y_test = synthetic_images(seed, shape, n_train, n_test)
    else:
        x_train, y_train, x_test, y_test = _real_images(name, data_dir, download, root)
    return Split(name, train={"x_train": x_train, "y_train": y_train},
                 images=np.ascontiguousarray(x_test, dtype=np.uint8), labels=np.asarray(y_test, dtype=np.int64))


# ---- real data, through tinytorch/datasets.py without importing tinytorch --------------------------------
def datasets_module(root: Path):
    """tinytorch/datasets.py of `root`, loaded as `_tito_judge_datasets.datasets` (not as part of tinytorch)."""
    package_dir = Path(root) / "tinytorch"
    package = sys.modules.get(_PRIVATE_PACKAGE)
    if package is None or list(package.__path__) != [str(package_dir)]:
        for key in [k for k in sys.modules if k == _PRIVATE_PACKAGE or k.startswith(_PRIVATE_PACKAGE + ".")]:
            del sys.modules[key]
        spec = importlib.util.spec_from_loader(_PRIVATE_PACKAGE, loader=None, is_package=True)
        package = importlib.util.module_from_spec(spec)
        package.__path__ = [str(package_dir)]       # its submodules come from tinytorch/, its __init__ never runs
        sys.modules[_PRIVATE_PACKAGE] = package
    return importlib.import_module(f"{_PRIVATE_PACKAGE}.datasets")


def _root(root: Path | None) -> Path:
    from grading.course import REPO_ROOT
    return Path(root) if root is not None else REPO_ROOT


def _load(root: Path | None, loader_name: str, filename: str, data_dir, download: bool):
    try:
        datasets = datasets_module(_root(root))
    except Exception as exc:   # a broken datasets.py: name it, never crash the judge
        raise MilestoneDataMissing(f"cannot load {filename}: tinytorch/datasets.py does not load "
                                   f"({type(exc).__name__}: {exc})") from None
    try:
        return getattr(datasets, loader_name)(data_dir=data_dir, download=download)
    except (FileNotFoundError, ConnectionError, OSError, datasets.DatasetError) as exc:
        text = str(exc)
        if "TINYTORCH_DATA" not in text:
            where = str(data_dir) if data_dir else "TINYTORCH_DATA is not set"
            text = (f"data set {filename} is missing: {exc}\n  looked in: {where} (and the download cache)\n"
                    f"  fix: put {filename} in a directory and `export TINYTORCH_DATA=/that/directory`, "
                    "or allow the download once with network access")
        raise MilestoneDataMissing(text) from None


def _real_images(name: str, data_dir, download: bool, root: Path | None):
    filename = f"{name}.npz"
    x_train, y_train, x_test, y_test = _load(root, f"load_{name}", filename, data_dir, download)
    return (np.asarray(x_train, dtype=np.uint8), np.asarray(y_train, dtype=np.int64),
            np.asarray(x_test, dtype=np.uint8), np.asarray(y_test, dtype=np.int64))


def _real_text(data_dir, download: bool, root: Path | None, log) -> tuple[str, str]:
    """(text, corpus): Tiny Shakespeare, or CPython's documentation text when it is unavailable."""
    try:
        text = _load(root, "load_text", "tinyshakespeare.txt", data_dir, download)
        if not text:
            raise MilestoneDataMissing("tinyshakespeare.txt is empty")
        return text, "tinyshakespeare"
    except MilestoneDataMissing as exc:
        reason = str(exc).splitlines()[0].rstrip(".")
        log(f"Tiny Shakespeare is not available ({reason}); using the offline default corpus, "
            "pydoc_data, which has its own bar in course.yaml")
        return pydoc_corpus(), "pydoc_data"


def pydoc_corpus() -> str:
    """The Python documentation text that ships with CPython (`pydoc_data.topics`), as one string."""
    from pydoc_data import topics
    return "\n\n".join(topics.topics[key] for key in sorted(topics.topics))


# ---- tiny (synthetic) data ---------------------------------------------------------------------------------
def synthetic_images(seed: int, shape: tuple, n_train: int, n_test: int, classes: int = 10):
    """A small image classification set with real (learnable, not trivial) class structure.

    Each class has a smooth random prototype image; a sample is its class prototype, shifted by up to
    two pixels, scaled in contrast, plus noise. Returns uint8 images of `shape` and int64 labels.
    """
    rng = np.random.default_rng(10_000 + seed)
    *lead, h, w = shape
    channels = lead[0] if lead else 1
    # smooth prototypes: random coarse grids upsampled to full size
    coarse = rng.random((classes, channels, 4, 4))
    protos = coarse.repeat(h // 4 + 1, axis=2)[:, :, :h].repeat(w // 4 + 1, axis=3)[:, :, :, :w]

    def make(n):
        y = np.arange(n) % classes
        rng.shuffle(y)
        shift = rng.integers(-2, 3, size=(n, 2))
        x = protos[y]
        x = np.stack([np.roll(img, (dy, dx), axis=(1, 2)) for img, (dy, dx) in zip(x, shift)])
        x = x * rng.uniform(0.7, 1.3, size=(n, 1, 1, 1)) + rng.normal(0, 0.25, size=x.shape)
        x = np.clip(x * 255, 0, 255).astype(np.uint8)
        return (x if lead else x[:, 0]), y.astype(np.int64)

    x_train, y_train = make(n_train)
    x_test, y_test = make(n_test)
    return x_train, y_train, x_test, y_test


def synthetic_text(seed: int, chars: int = 20_000) -> str:
    """A small text with words and line structure, for tiny runs of the language milestone."""
    rng = np.random.default_rng(20_000 + seed)
    words = ("the king and queen of the realm speak to thee now my lord what say you good sir "
             "fair lady come hither I pray thou art noble").split()
    out, size = [], 0
    while size < chars:
        line = " ".join(rng.choice(words, size=int(rng.integers(4, 10)))).capitalize() + ".\n"
        out.append(line)
        size += len(line)
    return "".join(out)[:chars]


# ---- judging text: readability of generated samples ------------------------------------------------------
def words_of(text: str) -> list[str]:
    """Lower-case alphabetic words of `text` ("Thou art, my lord!" -> ['thou', 'art', 'my', 'lord'])."""
    import re
    return re.findall(r"[a-z]+", text.lower())


def readability(sample: str, known: set[str]) -> float:
    """Share of the words of `sample` that occur in `known` (the training text's words); 0 for no words."""
    words = words_of(sample)
    return sum(w in known for w in words) / len(words) if words else 0.0
