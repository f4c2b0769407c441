"""The experiment spec: backbone, data, rows (targets), arms and volume curves, read from YAML.

A spec is a YAML mapping validated by :class:`ExperimentSpec`. Three things happen between the file
and the model, in this order (:func:`load_spec`):

1. **Placeholders.** ``${NAME}`` and ``${NAME:-default}`` in any string are filled from
   ``--set NAME=VALUE``, else from the environment variable ``NAME``, else from the default; a
   placeholder with neither is an error that names it. A value that is a whole placeholder is read
   as YAML (``${EPOCHS:-5}`` gives the number 5).
2. **Field overrides.** ``--set field.sub=VALUE`` (lower-case, dotted) replaces a field after
   parsing, e.g. ``--set backbone=llava-hf/llava-1.5-7b-hf`` or ``--set eval.limit=50``.
3. **Paths.** Relative paths written in the spec file are relative to the spec file, as in most
   tools; paths given on the command line (``--set``) or through environment variables are relative
   to the working folder, as any command-line path. The path fields are listed in
   :data:`PATH_FIELDS` / :data:`MODEL_FIELDS`; after loading they are absolute. A model or dataset
   field that does not look like a path (``./x``, ``../x``, ``/x``, ``~``) and does not exist is a
   Hub id and is kept as written.

Rows and templates: a spec lists ``targets`` (one row each) or ``rows`` (``target`` plus the
``members`` of a controlled combination). In an arm, ``{target}`` and ``{members}`` (members joined
with ``+``) are filled per row, so ``mixture: "pair:{target}:{members}"`` is the Table 3 pair of
every row.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from medmat_builder.planner import RQ2_COMBINATION, PlannerError, normalize_config

PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
TEMPLATE_FIELDS = ("{target}", "{members}")

#: Fields that always hold a local path (resolved against the spec file or the working folder).
PATH_FIELDS: tuple[str, ...] = ("recipe", "accelerate_config", "eval_accelerate_config", "output_dir")
#: Fields that hold a local path *or* a Hub id.
MODEL_FIELDS: tuple[str, ...] = ("backbone", "dataset")
#: Per-arm fields: ``checkpoint`` (path or Hub id), ``mixture`` (a file when it ends in .yaml/.yml
#: or holds a '/'), and the sft argument ``general_mcq_dataset`` inside ``train_args`` (path or Hub id).
ARM_MODEL_FIELDS: tuple[str, ...] = ("checkpoint",)
TRAIN_ARG_MODEL_FIELDS: tuple[str, ...] = ("general_mcq_dataset",)


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


# --------------------------------------------------------------------------------------------------
# Placeholders, overrides, paths
# --------------------------------------------------------------------------------------------------


@dataclass
class _Filled:
    data: Any
    from_cli: set[tuple] = field(default_factory=set)  # key paths whose value came from --set / the environment


def placeholders(data: Any) -> dict[str, str | None]:
    """Every ``${NAME[:-default]}`` in a parsed spec: name -> default (None when there is none)."""
    found: dict[str, str | None] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
        elif isinstance(node, str):
            for m in PLACEHOLDER.finditer(node):
                found.setdefault(m.group(1), m.group(2))

    walk(data)
    return found


def fill_placeholders(data: Any, values: Mapping[str, str], origin: str = "spec") -> _Filled:
    """Replace placeholders in every string of ``data``; ``values`` are --set values and the environment."""
    missing: set[str] = set()
    from_cli: set[tuple] = set()

    def one(text: str, path: tuple) -> Any:
        whole = PLACEHOLDER.fullmatch(text.strip())

        def sub(m: re.Match) -> str:
            name, default = m.group(1), m.group(2)
            if name in values:
                if m.start() == 0:
                    from_cli.add(path)
                return str(values[name])
            if default is not None:
                return default
            missing.add(name)
            return m.group(0)

        out = PLACEHOLDER.sub(sub, text)
        if whole and not missing:
            parsed = _scalar(out)
            return parsed if isinstance(parsed, (int, float, bool)) or parsed is None else out
        return out

    def walk(node: Any, path: tuple) -> Any:
        if isinstance(node, dict):
            return {k: walk(v, (*path, k)) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, (*path, i)) for i, v in enumerate(node)]
        if isinstance(node, str) and "${" in node:
            return one(node, path)
        return node

    out = walk(data, ())
    if missing:
        names = sorted(missing)
        raise SpecError(
            f"{origin}: fill the placeholder(s) {', '.join('${' + n + '}' for n in names)}: "
            + " ".join(f"--set {n}=..." for n in names) + " (or set the environment variable"
            + ("s" if len(names) > 1 else "") + ")"
        )
    return _Filled(out, from_cli)


def apply_overrides(data: dict[str, Any], overrides: Mapping[str, Any], origin: str = "spec") -> set[tuple]:
    """Set dotted fields (``eval.limit``) in ``data``; returns the key paths set."""
    paths: set[tuple] = set()
    for key, value in overrides.items():
        parts = key.split(".")
        node: Any = data
        for part in parts[:-1]:
            if not isinstance(node, dict):
                raise SpecError(f"{origin}: --set {key}: {part!r} is not a mapping in the spec")
            node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise SpecError(f"{origin}: --set {key}: cannot set a field inside a non-mapping")
        node[parts[-1]] = value
        paths.add(tuple(parts))
    return paths


def looks_like_path(value: str) -> bool:
    return value.startswith(("/", "./", "../", "~")) or value in (".", "..")


def _resolve_path(value: str, base: Path) -> str:
    return str((base / Path(value).expanduser()).resolve())


def _resolve_model(value: str, base: Path) -> str:
    """A local path (made absolute) or a Hub id (kept)."""
    if looks_like_path(value) or (base / value).exists():
        return _resolve_path(value, base)
    return value


def _is_mixture_file(value: str) -> bool:
    return value.endswith((".yaml", ".yml")) or "/" in value or "\\" in value


def resolve_paths(data: dict[str, Any], spec_dir: Path, from_cli: set[tuple], cwd: Path) -> dict[str, Any]:
    """Make every path field absolute: against ``cwd`` for command-line values, else ``spec_dir``."""
    data = copy.deepcopy(data)

    def base(path: tuple) -> Path:
        return cwd if path in from_cli else spec_dir

    for key in PATH_FIELDS:
        if isinstance(data.get(key), str) and data[key]:
            data[key] = _resolve_path(data[key], base((key,)))
    for key in MODEL_FIELDS:
        if isinstance(data.get(key), str) and data[key]:
            data[key] = _resolve_model(data[key], base((key,)))

    def arm(node: Any, path: tuple) -> None:
        if not isinstance(node, dict):
            return
        for key in ARM_MODEL_FIELDS:
            if isinstance(node.get(key), str):
                node[key] = _resolve_model(node[key], base((*path, key)))
        mix = node.get("mixture")
        if isinstance(mix, str) and _is_mixture_file(mix):
            node["mixture"] = _resolve_path(mix, base((*path, "mixture")))
        _train_args(node.get("train_args"), (*path, "train_args"))

    def _train_args(node: Any, path: tuple) -> None:
        if isinstance(node, dict):
            for key in TRAIN_ARG_MODEL_FIELDS:
                if isinstance(node.get(key), str):
                    node[key] = _resolve_model(node[key], base((*path, key)))

    _train_args(data.get("train_args"), ("train_args",))
    for name, node in (data.get("arms") or {}).items():
        arm(node, ("arms", name))
    for i, vol in enumerate(data.get("volume") or []):
        if isinstance(vol, dict):
            for name, node in (vol.get("series") or {}).items():
                arm(node, ("volume", i, "series", name))
    return data


def parse_sets(items: Sequence[str]) -> tuple[dict[str, str], dict[str, Any]]:
    """``--set`` items -> (placeholder values, field overrides). Upper-case names fill placeholders;
    lower-case, possibly dotted names set fields (the value is read as YAML)."""
    values: dict[str, str] = {}
    fields: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise SpecError(f"--set {item!r}: expected NAME=VALUE (placeholder) or field.sub=VALUE (field)")
        key, value = item.split("=", 1)
        key = key.strip()
        if not key:
            raise SpecError(f"--set {item!r}: the name before '=' is empty")
        if key.isupper() and "." not in key:
            values[key] = value
        else:
            fields[key] = _scalar(value)
    return values, fields


def _scalar(text: str) -> Any:
    """A command-line value read as YAML (``5`` -> 5, ``true`` -> True, empty -> None), else the text."""
    if not text.strip():
        return None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def load_spec(
    path: str | Path,
    sets: Sequence[str] = (),
    *,
    environ: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
) -> ExperimentSpec:
    """Read, fill and validate a spec file (see the module docstring for placeholders and paths)."""
    path = Path(path)
    cwd = Path(cwd or os.getcwd()).resolve()
    spec_path = (cwd / path).resolve()
    try:
        data = yaml.safe_load(spec_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpecError(f"{path}: no such spec file (shipped specs are in eval/specs/)") from None
    except yaml.YAMLError as err:
        raise SpecError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path}: an experiment spec is a YAML mapping (dataset, targets or rows, arms)")
    values, fields = parse_sets(sets)
    declared = placeholders(data)
    unknown = sorted(set(values) - set(declared))
    if unknown:
        listed = ", ".join(sorted(declared)) or "none"
        raise SpecError(f"{path}: --set {', '.join(unknown)}: the spec has no such placeholder "
                        f"(its placeholders: {listed}); set a field with a lower-case name, e.g. --set backbone=...")
    env = dict(os.environ if environ is None else environ)
    filled = fill_placeholders(data, {**{k: env[k] for k in declared if k in env}, **values}, origin=str(path))
    data = filled.data
    from_cli = filled.from_cli | apply_overrides(data, fields, origin=str(path))
    data = resolve_paths(data, spec_path.parent, from_cli, cwd)
    try:
        spec = ExperimentSpec.model_validate(data)
    except ValueError as err:
        raise SpecError(f"{path}: not a valid experiment spec:\n{err}") from None
    spec._source = spec_path
    return spec


def dump_spec(spec: ExperimentSpec) -> str:
    """The filled, resolved spec as YAML (what a run or an export records as OUT/spec.yaml)."""
    return yaml.safe_dump(spec.model_dump(mode="json", exclude_none=True), sort_keys=False, allow_unicode=True,
                          width=110)
