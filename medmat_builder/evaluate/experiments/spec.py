"""The experiment spec: backbone, data, rows (targets), arms and volume curves, as pydantic models.

A spec is a YAML mapping validated by :class:`ExperimentSpec`; :mod:`.spec_file` reads it from a file
(placeholders, ``--set`` overrides, paths).

Rows and templates: a spec lists ``targets`` (one row each) or ``rows`` (``target`` plus the
``members`` of a controlled combination). In an arm, ``{target}`` and ``{members}`` (members joined
with ``+``) are filled per row, so ``mixture: "pair:{target}:{members}"`` is the Table 3 pair of
every row.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from medmat_builder.planner import RQ2_COMBINATION, PlannerError, normalize_config

class SpecError(ValueError):
    """A spec that cannot be read, filled or validated; the message names the file and what to do."""


# --------------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------------


class ArmSpec(BaseModel):
    """How one arm gets its model: an existing checkpoint, a planner mixture, configs, or nothing (the backbone)."""

    model_config = ConfigDict(extra="forbid")

    checkpoint: str | None = Field(default=None, description="existing model; '{target}' is substituted")
    mixture: str | None = Field(
        default=None,
        description="planner rule (related), name (pair:{target}:{members}) or mixture file; see docs/planner.md")
    train_configs: list[str] | None = Field(default=None, description="configs to train on; may hold '{target}'")
    budget: int | None = Field(default=None, ge=0, description="total training samples (planner budget)")
    target_samples: int = Field(default=0, ge=0, description="target records added to the mixture (RQ2)")
    pool: Literal["id", "classification", "all"] | None = Field(
        default=None, description="planner pool for rule-based mixtures (default: the planner's per rule)")
    train_args: dict[str, Any] = Field(default_factory=dict, description="extra training/sft.py flags")
    targets: list[str] | None = Field(default=None, description="only the rows with these targets get this arm")
    shared: bool = Field(
        default=False,
        description="one model for all targets (e.g. the paper's Multi-task model): trained once without a "
                    "target, so without the per-target leakage guard, and evaluated once on every target")

    @model_validator(mode="after")
    def _check(self) -> "ArmSpec":
        given = [k for k in ("checkpoint", "mixture", "train_configs") if getattr(self, k)]
        if len(given) > 1:
            raise ValueError(f"an arm takes one of checkpoint / mixture / train_configs, got {given}")
        if self.shared:
            if self.mixture:
                raise ValueError("shared: true needs train_configs (a mixture is planned for one target)")
            text = " ".join([*(self.train_configs or []), self.checkpoint or ""])
            if "{target}" in text or "{members}" in text:
                raise ValueError("shared: true cannot use {target}/{members}: one model serves every row")
            if self.budget is not None or self.target_samples:
                raise ValueError("shared: true takes whole configs (no budget / target_samples)")
        if self.targets is not None:
            self.targets = [_config(t, "arm targets") for t in self.targets]
        return self

    @property
    def trains(self) -> bool:
        return bool(self.mixture or self.train_configs)

    def uses_members(self) -> bool:
        text = " ".join([self.mixture or "", self.checkpoint or "", *(self.train_configs or [])])
        return "{members}" in text


class VolumeSpec(BaseModel):
    """A Figure 5/6-style curve: each series trained at each size (vary=combination: the combination's
    budget, size 0 = the untrained backbone; vary=target: ``fixed`` combination samples plus ``size`` target
    samples)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    vary: Literal["combination", "target"] = "combination"
    sizes: list[int]
    fixed: int = Field(default=RQ2_COMBINATION, ge=0,
                       description="combination samples when vary=target (default: the planner's RQ2 volume)")
    series: dict[str, ArmSpec]

    @field_validator("sizes")
    @classmethod
    def _sizes(cls, v: list[int]) -> list[int]:
        if not v or any(s < 0 for s in v) or len(set(v)) != len(v):
            raise ValueError(f"sizes must be distinct numbers >= 0, got {v}")
        return v


class EvalSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["generate", "likelihood"] = "likelihood"
    batch_size: int = 8
    limit: int | None = None
    max_new_tokens: int = 16
    split: str = "test"
    circular: bool = Field(default=False, description="ask each item once per rotation of its options (evaluate.py --circular)")


class RowSpec(BaseModel):
    """One row of a table (or one curve of a figure): a target and the members its arms' templates use."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = None
    target: str
    members: list[str] = Field(default_factory=list)
    paper: str | None = Field(default=None, description="the paper's wording of the row, for the reader")

    @field_validator("target", mode="before")
    @classmethod
    def _target(cls, v: Any) -> str:
        return _config(v, "row target")

    @field_validator("members", mode="before")
    @classmethod
    def _members(cls, v: Any) -> list[str]:
        return [_config(m, "row members") for m in (v or [])]

    @property
    def members_text(self) -> str:
        return "+".join(self.members)


class ExperimentSpec(BaseModel):
    """A whole experiment; see docs/eval.md ("Experiments") and the shipped specs in eval/specs/."""

    model_config = ConfigDict(extra="forbid")

    name: str = "experiment"
    paper: str | None = Field(default=None, description="which table or figure of the paper this reproduces")
    backbone: str | None = Field(default=None, description="model to train and evaluate; default: the recipe's "
                                                             "model_name_or_path")
    tiny_model_arch: str | None = None
    dataset: str
    targets: list[str] = Field(default_factory=list)
    rows: list[RowSpec] = Field(default_factory=list)
    recipe: str | None = None
    train_args: dict[str, Any] = Field(default_factory=dict)
    accelerate_config: str | None = Field(default=None, description="training/accelerate/*.yaml for trainings")
    eval_accelerate_config: str | None = Field(default=None, description="accelerate config for evaluations")
    launcher: list[str] = Field(default_factory=list, description="explicit training launcher, e.g. [torchrun, "
                                                                  "--nproc_per_node, '8']; overrides accelerate_config")
    eval_launcher: list[str] = Field(default_factory=list, description="explicit evaluation launcher")
    seed: int = 42
    alpha: float = Field(default=0.05, gt=0, lt=1, description="significance level of the paired tests that decide success")
    eval: EvalSpec = Field(default_factory=EvalSpec)
    arms: dict[str, ArmSpec] = Field(default_factory=dict)
    volume: list[VolumeSpec] = Field(default_factory=list)
    output_dir: str | None = None

    _source: Path | None = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _target_alias(cls, data: Any) -> Any:
        if isinstance(data, dict) and "target" in data:
            data = dict(data)
            t = data.pop("target")
            data.setdefault("targets", [t] if isinstance(t, (str, int)) else list(t))
        return data

    @field_validator("targets", mode="before")
    @classmethod
    def _targets(cls, v: Any) -> list[str]:
        return [_config(t, "targets") for t in (v or [])]

    @model_validator(mode="after")
    def _check(self) -> "ExperimentSpec":
        if not self.targets and not self.rows:
            raise ValueError("give `targets: [subset_NN, ...]` or `rows: [{target: subset_NN, members: [...]}]`")
        if self.targets and self.rows:
            raise ValueError("give either `targets` or `rows`, not both")
        if not self.arms and not self.volume:
            raise ValueError("give `arms` (a table) or `volume` (curves), or both")
        if self.backbone is None and self.recipe is None:
            raise ValueError("name the model: `backbone: ...` or a `recipe` whose model_name_or_path is the backbone")
        ids = [r.id for r in self.all_rows()]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"row ids must be unique; repeated: {dupes}")
        arms = {**self.arms, **{f"{v.name}/{s}": a for v in self.volume for s, a in v.series.items()}}
        for name, arm in arms.items():
            if arm.uses_members():
                bare = [r.id for r in self.all_rows() if not r.members]
                if bare:
                    raise ValueError(f"arm {name!r} uses {{members}} but rows {bare} have no members")
        names = [v.name for v in self.volume]
        if len(set(names)) != len(names):
            raise ValueError(f"volume names must be unique, got {names}")
        return self

    def all_rows(self) -> list[RowSpec]:
        """The rows: ``rows`` as given (ids default to row01, row02, ...), or one row per target (id = target)."""
        if self.rows:
            return [r if r.id else r.model_copy(update={"id": f"row{i:02d}"}) for i, r in enumerate(self.rows, 1)]
        return [RowSpec(id=t, target=t) for t in self.targets]

    @property
    def source(self) -> Path | None:
        """The spec file this came from (None when built in code)."""
        return self._source


def _config(value: Any, what: str) -> str:
    try:
        return normalize_config(value)
    except PlannerError as err:
        raise ValueError(f"{what}: {err}") from None
