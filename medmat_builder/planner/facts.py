"""The planner's vocabulary: MAT elements, task levels, pools, rules, the paper's volumes, and a subset's facts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from medmat_builder.records import TRAIN_CAP

ELEMENTS: tuple[str, ...] = ("modality", "area", "task")


TaskLevel = Literal["grouped", "fine"]


Pool = Literal["id", "classification", "all"]


TASK_LEVELS: tuple[str, ...] = ("grouped", "fine")


POOLS: tuple[str, ...] = ("id", "classification", "all")


DIRECTIONS: tuple[str, ...] = ("fixed-modality", "fixed-area", "fixed-task", "modality-area")


MIX_RULES: tuple[str, ...] = (
    "related", "unrelated", "all", "wo-modality", "wo-area", "wo-task", "baseline-plus",
)


#: Rules that need explicit member configs in a mixture name (``pair:subset_26:subset_25+subset_32``).
MEMBER_RULES: tuple[str, ...] = ("pair", "triple", "configs")


RULES: tuple[str, ...] = MIX_RULES + MEMBER_RULES


DEFAULT_BUDGET = 15_000  # Section 3.2: total training volume of every scale-up mixture


DEFAULT_CAP = TRAIN_CAP  # Section 2.1: each training set is limited to 3,000 samples




RQ1_VOLUMES: tuple[int, ...] = (0, 750, 1500, 2250, 3000)  # combination data (Figure 5)


RQ2_TARGET_VOLUMES: tuple[int, ...] = (0, 500, 1000, 1500, 2000)  # target data (Figure 6)


RQ2_COMBINATION = 3_000  # fixed combination volume for RQ2 (the paper does not state it; our choice)


#: Default pool per use (the paper's choices): Section 3.2 scale-up on ID subsets, Section 3.1 pairs
#: and Table 4 triples on all classification subsets (Table 3 trains on the OOD subsets 04 and 10).
DEFAULT_MIX_POOL: Pool = "id"


DEFAULT_COMBINATION_POOL: Pool = "classification"


_CLASSIFICATION_KINDS = ("single-label", "multi-label")


class PlannerError(ValueError):
    """A target, rule, pool or mixture name the planner cannot use; the message says what is valid."""


@dataclass(frozen=True)
class Facts:
    """The planner's own copy of a subset's triplet facts; the planner takes any object that has these
    attributes (a registry :class:`~medmat_builder.registry.Subset`, a test's stand-in)."""

    name: str
    modality: str
    area: str
    task: str
    task_group: str
    kind: str
    paper_distribution: str

    @classmethod
    def of(cls, obj: object) -> Facts:
        try:
            return cls(**{f: str(getattr(obj, f)) for f in cls.__dataclass_fields__})
        except AttributeError as exc:
            raise PlannerError(f"{obj!r} is not subset-like: {exc}") from None

    @property
    def is_classification(self) -> bool:
        return self.kind in _CLASSIFICATION_KINDS

    def label(self) -> str:
        """``X-ray / Lung / COVID``."""
        return f"{self.modality} / {self.area} / {self.task}"


@dataclass(frozen=True)
class Relation:
    """How one subset relates to the target."""

    config: str
    shared: tuple[str, ...]  # elements shared with the target, in ELEMENTS order

    @property
    def related(self) -> bool:
        return bool(self.shared)


@dataclass(frozen=True)
class Pair:
    """A Table 3-style controlled pair: ``x`` brings ``brings[0]``, ``y`` brings ``brings[1]``."""

    target: str
    direction: str
    x: str
    y: str
    brings: tuple[str, str]

    @property
    def configs(self) -> tuple[str, str]:
        return (self.x, self.y)


@dataclass(frozen=True)
class Triple:
    """A Table 4-style combination: one subset per element of the target's triplet."""

    target: str
    modality: str
    area: str
    task: str

    @property
    def configs(self) -> tuple[str, str, str]:
        return (self.modality, self.area, self.task)


def normalize_config(name: str | int) -> str:
    """``28``, ``"28"``, ``"subset_28"`` -> ``"subset_28"``."""
    text = str(name).strip()
    if text.startswith("subset_"):
        text = text[len("subset_"):]
    if not text.isdigit():
        raise PlannerError(f"{name!r} is not a config name: expected subset_NN (e.g. subset_28) or a number")
    return f"subset_{int(text):02d}"
