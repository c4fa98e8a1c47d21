"""Read `assignments/course.yaml`, the one table of modules, points and milestones.

Everything that needs the list of modules or milestones (tests, grader, CLI, release, roster) calls
`load_course()`; nobody keeps a copy of the table. The loader validates the file and names the field
that is wrong, so a typo in the table fails loudly instead of silently dropping a module.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

# Where this copy of `tito` is installed (an editable install: the course checkout it came from).
REPO_ROOT = Path(__file__).resolve().parent.parent
COURSE_FILE = REPO_ROOT / "assignments" / "course.yaml"
COURSE_TABLE = Path("assignments") / "course.yaml"
_MODULE_ID = re.compile(r"^(\d\d)_[a-z][a-z0-9_]*$")
_OPS = {">=": lambda got, want: got >= want, "<=": lambda got, want: got <= want}


class CourseError(ValueError):
    """course.yaml is missing, unreadable, or has a field that is wrong."""


def repo_root(start: str | Path | None = None) -> Path:
    """The course repository `tito` acts on: the nearest folder at or above `start` (default: the
    current directory) that holds assignments/course.yaml, else the checkout tito is installed from.

    Why not always the install location: an instructor with the course installed who runs `tito grade`
    in a student's clone must grade that clone, not rewrite their own checkout. `TITO_REPO` overrides.
    """
    forced = os.environ.get("TITO_REPO")
    if forced:
        return Path(forced).resolve()
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / COURSE_TABLE).is_file():
            return folder
    return REPO_ROOT


def elsewhere_note(root: Path) -> str | None:
    """A one-line note when `root` is not the checkout this tito is installed from, else None."""
    if Path(root).resolve() == REPO_ROOT:
        return None
    return f"working on the repository at {root} (tito itself is installed from {REPO_ROOT})"


@dataclass(frozen=True)
class Module:
    id: str            # "04_layers"
    title: str
    source: str        # "tinytorch/layers.py", relative to the repository root
    points: float
    unlocks: int | None

    @property
    def number(self) -> int:
        return int(self.id[:2])

    @property
    def name(self) -> str:
        return self.id[3:]

    @property
    def folder(self) -> str:
        """Folder of the module's README and tests, relative to the repository root."""
        return f"assignments/{self.id}"


@dataclass(frozen=True)
class Condition:
    metric: str
    op: str
    value: float

    def holds(self, got) -> bool:
        return got is not None and _OPS[self.op](float(got), self.value)

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}"


@dataclass(frozen=True)
class Milestone:
    number: int
    name: str
    badge: str
    program: str
    requires: tuple[str, ...]
    victory: tuple[Condition, ...]
    budget_seconds: float
    # A milestone whose data may differ (milestone 5 falls back to an offline corpus) can give another,
    # calibrated bar per data set: {"pydoc_data": (Condition, ...)}. `victory` is the bar otherwise.
    victory_by_corpus: tuple[tuple[str, tuple[Condition, ...]], ...] = ()
    data: str | None = None            # the data set the judge serves: mnist | cifar10 | text | synthetic
    evaluations: int = 1               # held-out evaluations the judge accepts per run
    schedule: dict = field(default_factory=dict)   # fixed work and stop rule, passed to the program as-is

    def conditions(self, corpus: str | None = None) -> tuple[Condition, ...]:
        """The victory conditions that judge a run on `corpus` (None or unknown: the default bar)."""
        return dict(self.victory_by_corpus).get(corpus, self.victory) if corpus else self.victory

    def passed(self, metrics: dict, corpus: str | None = None) -> bool:
        return not self.unmet(metrics, corpus)

    def unmet(self, metrics: dict, corpus: str | None = None) -> list[Condition]:
        return [c for c in self.conditions(corpus) if not c.holds(metrics.get(c.metric))]

    def thresholds_for(self, corpus: str | None = None) -> dict:
        return {c.metric: {"op": c.op, "value": c.value} for c in self.conditions(corpus)}

    @property
    def thresholds(self) -> dict:
        """The default bar as {metric: {op, value}} (see thresholds_for for another corpus)."""
        return self.thresholds_for(None)

    def describe(self, joiner: str = " and ") -> str:
        """'val_loss <= 1.8 and readability >= 0.8 (on pydoc_data: val_loss <= 1.32 and ...)'."""
        text = joiner.join(str(c) for c in self.victory)
        for corpus, conditions in self.victory_by_corpus:
            text += f" (on {corpus}: {joiner.join(str(c) for c in conditions)})"
        return text

    @property
    def all_thresholds(self) -> dict:
        """Every bar, for cache keys: {"default": {...}, corpus: {...}}."""
        return {"default": self.thresholds, **{name: self.thresholds_for(name) for name, _ in self.victory_by_corpus}}


@dataclass(frozen=True)
class Course:
    name: str
    modules: tuple[Module, ...]
    milestones: tuple[Milestone, ...]
    deadlines: dict = field(default_factory=dict)

    def module(self, key: str | int) -> Module:
        """Find a module by id ("04_layers"), number (4, "4", "04") or name ("layers")."""
        text = str(key).strip()
        for m in self.modules:
            if text in (m.id, m.name) or (text.isdigit() and int(text) == m.number):
                return m
        known = ", ".join(m.id for m in self.modules)
        raise CourseError(f"no module {key!r} in course.yaml; known modules: {known}")

    def milestone(self, number: int | str) -> Milestone:
        for ms in self.milestones:
            if str(ms.number) == str(number).strip():
                return ms
        raise CourseError(f"no milestone {number!r}; milestones are 1..{len(self.milestones)}")

    def module_for_path(self, path: str) -> Module | None:
        """The module whose tests live at `path` (a test node id or file path), or None."""
        norm = path.replace("\\", "/")
        for m in self.modules:
            if norm.startswith(m.folder + "/") or f"/{m.folder}/" in norm:
                return m
        return None

    def module_for_source(self, path: str) -> Module | None:
        norm = path.replace("\\", "/")
        for m in self.modules:
            if norm == m.source or norm.endswith("/" + m.source):
                return m
        return None

    @property
    def total_points(self) -> float:
        return sum(m.points for m in self.modules)


def _need(entry: dict, key: str, where: str):
    if key not in entry:
        raise CourseError(f"{where}: missing field '{key}'")
    return entry[key]


def _conditions(rules, at: str) -> tuple[Condition, ...]:
    if not isinstance(rules, dict) or not rules:
        raise CourseError(f"{at} must map metric names to {{op, value}}, got {rules!r}")
    conditions = []
    for metric, rule in rules.items():
        if not isinstance(rule, dict) or rule.get("op") not in _OPS or not isinstance(rule.get("value"), (int, float)):
            raise CourseError(f"{at}.{metric} must be {{op: '>=' or '<=', value: number}}, got {rule!r}")
        conditions.append(Condition(str(metric), rule["op"], float(rule["value"])))
    return tuple(conditions)


DATA_SETS = ("mnist", "cifar10", "text", "synthetic")
_SCHEDULE_COUNTS = ("epochs", "steps", "min_epochs", "min_steps", "check_every", "validation")


def _schedule(raw, at: str) -> dict:
    """A milestone's fixed work: whole-number counts (epochs, steps, check_every, validation, min_*) and
    an optional `stop_bar` ({metric: {op, value}}) on the program's validation split."""
    if not isinstance(raw, dict):
        raise CourseError(f"{at} must be a mapping, got {raw!r}")
    out = {}
    for key, value in raw.items():
        if key == "stop_bar":
            out[key] = {c.metric: {"op": c.op, "value": c.value} for c in _conditions(value, f"{at}.stop_bar")}
        elif key in _SCHEDULE_COUNTS:
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise CourseError(f"{at}.{key} must be a whole number >= 0, got {value!r}")
            out[key] = value
        else:
            raise CourseError(f"{at}: unknown field {key!r} (known: {', '.join(_SCHEDULE_COUNTS)}, stop_bar)")
    return out


def parse_course(data: dict, where: str = "course.yaml") -> Course:
    if not isinstance(data, dict):
        raise CourseError(f"{where}: expected a mapping at the top level, got {type(data).__name__}")
    modules = []
    for i, entry in enumerate(_need(data, "modules", where)):
        at = f"{where}: modules[{i}]"
        mid = str(_need(entry, "id", at))
        if not _MODULE_ID.match(mid):
            raise CourseError(f"{at}: id {mid!r} is not of the form NN_name (e.g. 04_layers)")
        points = _need(entry, "points", at)
        if not isinstance(points, (int, float)) or points < 0:
            raise CourseError(f"{at} ({mid}): points must be a non-negative number, got {points!r}")
        unlocks = entry.get("unlocks")
        modules.append(Module(mid, str(_need(entry, "title", at)), str(_need(entry, "source", at)),
                              float(points), None if unlocks is None else int(unlocks)))
    ids = [m.id for m in modules]
    if len(set(ids)) != len(ids):
        raise CourseError(f"{where}: module ids repeat: {ids}")
    milestones = []
    for i, entry in enumerate(_need(data, "milestones", where)):
        at = f"{where}: milestones[{i}]"
        requires = tuple(str(r) for r in _need(entry, "requires", at))
        for r in requires:
            if r not in ids:
                raise CourseError(f"{at}: requires unknown module {r!r}")
        conditions = _conditions(_need(entry, "victory", at), f"{at}: victory")
        by_corpus = entry.get("victory_by_corpus") or {}
        if not isinstance(by_corpus, dict):
            raise CourseError(f"{at}: victory_by_corpus must map a corpus name to conditions, got {by_corpus!r}")
        alternatives = []
        for corpus, rules in by_corpus.items():
            alt = _conditions(rules, f"{at}: victory_by_corpus.{corpus}")
            if {c.metric for c in alt} != {c.metric for c in conditions}:
                raise CourseError(f"{at}: victory_by_corpus.{corpus} must judge the same metrics as victory "
                                  f"({sorted(c.metric for c in conditions)}), got {sorted(c.metric for c in alt)}")
            alternatives.append((str(corpus), alt))
        data_set = entry.get("data")
        if data_set is not None and data_set not in DATA_SETS:
            raise CourseError(f"{at}: data must be one of {', '.join(DATA_SETS)}, got {data_set!r}")
        evaluations = entry.get("evaluations", 1)
        if not isinstance(evaluations, int) or isinstance(evaluations, bool) or not 1 <= evaluations <= 20:
            raise CourseError(f"{at}: evaluations must be a whole number from 1 to 20, got {evaluations!r}")
        schedule = _schedule(entry.get("schedule") or {}, f"{at}: schedule")
        milestones.append(Milestone(int(_need(entry, "number", at)), str(_need(entry, "name", at)),
                                    str(_need(entry, "badge", at)), str(_need(entry, "program", at)),
                                    requires, conditions, float(_need(entry, "budget_seconds", at)),
                                    tuple(alternatives), data_set, evaluations, schedule))
    numbers = {ms.number for ms in milestones}
    for m in modules:
        if m.unlocks is not None and m.unlocks not in numbers:
            raise CourseError(f"{where}: module {m.id} unlocks milestone {m.unlocks}, which does not exist")
        if m.unlocks is not None:
            ms = next(x for x in milestones if x.number == m.unlocks)
            if m.id not in ms.requires:
                raise CourseError(f"{where}: module {m.id} unlocks milestone {ms.number} but is not in its requires")
    return Course(str(data.get("course", "TinyTorch")), tuple(modules), tuple(milestones),
                  dict(data.get("deadlines") or {}))


def load_course(path: str | Path | None = None) -> Course:
    """Load and validate course.yaml (default: the one of the repository `tito` works on, see repo_root)."""
    return _load(str(Path(path or repo_root() / COURSE_TABLE).resolve()))


@lru_cache(maxsize=8)
def _load(path: str) -> Course:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise CourseError(f"cannot read the course table {p}: {exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CourseError(f"{p} is not valid YAML: {exc}") from exc
    return parse_course(data, where=str(p.name))
