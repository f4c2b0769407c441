"""Typed, validated view of ``sources.yaml``: the declarative registry of sources and subsets.

Everything about a source (where it lives, how its files lie on disk, what its raw labels mean) and
about a subset (its MAT triplet, labels and instructions) is data in ``sources.yaml``. This module
only parses and cross-checks that data; errors name the entry and the field so a maintainer can fix
the YAML without reading code.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cached_property
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from medmat_builder.layouts import Layout, PathPattern
from medmat_builder.layouts.patterns import RelativePattern

DEFAULT_REGISTRY_PATH = Path(__file__).resolve().parent.parent / "sources.yaml"

SubsetKind = Literal["single-label", "multi-label", "detection", "segmentation"]
Access = Literal["open", "registration", "restricted"]
SUBSET_NAME = re.compile(r"^subset_\d{2}$")
SOURCE_KEY = re.compile(r"^[a-z0-9][a-z0-9_]*$")
#: A folder under the data dir: relative names of letters, digits, ``_ . -`` (no segment starts with a dot,
#: so no ``..`` and no ``.medmat``).
DATA_DIR = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(?:/[A-Za-z0-9_][A-Za-z0-9_.-]*)*$")
FILE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*$")


class RegistryError(ValueError):
    """The registry file is malformed or inconsistent; the message names the entry and field."""


def label_key(raw: str) -> str:
    """How raw labels are compared: Unicode NFKC, case folded, surrounding spaces dropped.

    ``Homogeneous`` and ``homogeneous``, ``" NV "`` and ``NV``, a composed ``é`` and ``e`` + combining
    accent all give one key, so a label spelt as the real archive spells it still finds its cluster.
    """
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", raw).casefold()).strip()


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


#: The facts of a source entry that are checked against public evidence (see ``Source.evidence``).
FACTS: tuple[str, ...] = ("homepage", "license", "access", "layout", "labels", "split", "groups", "checksums")
Fact = Literal["homepage", "license", "access", "layout", "labels", "split", "groups", "checksums"]


class GroupTable(_Strict):
    """A side table that names the subject of each image (e.g. ISIC 2018's lesion groupings CSV)."""

    path: RelativePattern = Field(description="Path pattern of the table, relative to the source folder.")
    id_column: str = Field(description="Column naming the image (matched like a table layout's id).")
    group_column: str = Field(description="Column naming the subject (patient, lesion, study ...).")
    sep: str | None = Field(default=None, description="Field separator (default from the extension).")


class Groups(_Strict):
    """What ties several images of one subject together, so that a split never separates them.

    Exactly one of: ``column`` (a column of the layout's own label table, e.g. NIH's ``Patient ID``),
    ``table`` (a side table mapping image -> subject), ``path`` (path patterns capturing ``{group}``,
    tried in order, e.g. ``"{group:person\\d+}_*"``), or ``none`` (why each image is its own subject).
    """

    column: str | None = None
    table: GroupTable | None = None
    path: list[RelativePattern] = Field(default_factory=list)
    none: str | None = Field(default=None, min_length=3)

    @property
    def declared(self) -> str:
        """Which kind of key is declared: ``column``, ``table``, ``path`` or ``none``."""
        return next(n for n in ("column", "table", "path", "none") if getattr(self, n))

    def describe(self) -> str:
        """One line for the dataset card: the key, or ``none`` with the reason."""
        if self.column:
            return f"column `{self.column}` of the label table"
        if self.table:
            return f"column `{self.table.group_column}` of `{self.table.path}`"
        if self.path:
            return "path " + " or ".join(f"`{p}`" for p in self.path)
        return f"none: {self.none}"

    @model_validator(mode="after")
    def _exactly_one(self) -> "Groups":
        given = [n for n in ("column", "table", "path", "none") if getattr(self, n)]
        if len(given) != 1:
            raise ValueError(f"give exactly one of column, table, path or none (got {given or 'none of them'})")
        for pattern in self.path:
            if "group" not in PathPattern(pattern).placeholders:
                raise ValueError(f"groups path pattern {pattern!r} must capture {{group}}")
        return self


class Download(_Strict):
    """One file of a source that can be fetched without a login (used by ``medmat fetch``)."""

    url: str
    filename: str
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    md5: str | None = Field(default=None, pattern=r"^[0-9a-f]{32}$", description="As published by Zenodo, figshare, Mendeley.")
    extract: bool = True

    @field_validator("url")
    @classmethod
    def _url_is_http(cls, v: str) -> str:
        if not v.startswith(("https://", "http://")):
            raise ValueError(f"url {v!r} is not an http(s) URL")
        return v

    @field_validator("filename")
    @classmethod
    def _plain_file_name(cls, v: str) -> str:
        if not FILE_NAME.match(v):
            raise ValueError(f"filename {v!r} must be a plain file name (letters, digits, _ . + -; no '/', no '..')")
        return v


class Source(_Strict):
    """One public dataset of the paper's Tables 10-11."""

    number: int = Field(ge=1, le=200, description="The paper's No. in Tables 10-11.")
    key: str = Field(description="Short slug; the raw files live in RAW/<data_dir or key>/.")
    name: str
    homepage: str
    license: str = Field(description="SPDX id where one exists, else the exact name of the terms.")
    license_url: str | None = None
    access: Access
    redistributable: bool
    citation: str = Field(description="BibTeX entry.")
    subsets: list[str] = Field(min_length=1)
    obtain: str = Field(description="Steps to obtain the files (login, application, archive names).")
    data_dir: str | None = Field(
        default=None, description="Folder under RAW when several entries share one download."
    )
    downloads: list[Download] = Field(default_factory=list)
    layout: Layout
    labels: dict[str, str | None] = Field(
        description="Raw label -> canonical label of the subset; null drops records with that label."
    )
    unlisted_labels: Literal["error", "drop"] = Field(
        default="error",
        description="Raw labels missing from `labels`: an error listing them (default), or `drop` for a source "
        "with an open vocabulary (free-text headings), where they count as explicit drops like null; the build "
        "report counts each such label (ignored_labels).",
    )
    groups: Groups | None = Field(
        default=None, description="What ties images of one subject together (patient, lesion, volume, video)."
    )
    evidence: dict[Fact, str] = Field(
        default_factory=dict, description="Fact -> where public material confirms it (page, paper, loader)."
    )
    unverified: dict[Fact, str] = Field(
        default_factory=dict, description="Fact -> why it is not confirmed (what was searched)."
    )
    notes: str | None = None

    @model_validator(mode="after")
    def _facts_once(self) -> "Source":
        both = sorted(set(self.evidence) & set(self.unverified))
        if both:
            raise ValueError(f"facts {both} are listed both under evidence and under unverified")
        empty = sorted(k for k, v in {**self.evidence, **self.unverified}.items() if not v.strip())
        if empty:
            raise ValueError(f"facts {empty} need a non-empty statement")
        if self.groups is not None and self.groups.column is not None and self.layout.kind != "table":
            raise ValueError(
                f"groups.column reads a column of the layout's own label table, but the layout is {self.layout.kind!r}; "
                "use groups.table (a side table) or groups.path (path patterns)"
            )
        return self

    @model_validator(mode="after")
    def _labels_do_not_collide(self) -> "Source":
        by_key: dict[str, dict[str, str | None]] = {}
        for raw, canonical in self.labels.items():
            by_key.setdefault(label_key(raw), {})[raw] = canonical
        for names in by_key.values():
            if len(set(names.values())) > 1:
                listed = ", ".join(f"{raw!r} -> {canon!r}" for raw, canon in names.items())
                raise ValueError(
                    f"raw labels {listed} are the same label once case, surrounding spaces and Unicode "
                    "form are ignored, but map to different canonical labels; map them alike or drop one"
                )
        return self

    @cached_property
    def _label_index(self) -> dict[str, str | None]:
        return {label_key(raw): canonical for raw, canonical in self.labels.items()}

    def lookup_label(self, raw: str) -> tuple[bool, str | None]:
        """``(known, canonical)`` for a raw label as found on disk (see :func:`label_key`)."""
        if raw in self.labels:
            return True, self.labels[raw]
        key = label_key(raw)
        if key in self._label_index:
            return True, self._label_index[key]
        return False, None
    @field_validator("data_dir")
    @classmethod
    def _data_dir_stays_inside(cls, v: str | None) -> str | None:
        if v is not None and not DATA_DIR.match(v):
            raise ValueError(
                f"data_dir {v!r} must be a folder relative to the data dir (letters, digits, _ . -, folders "
                "separated by '/'; no leading '/', no '..', no segment starting with '.')"
            )
        return v

    @field_validator("key")
    @classmethod
    def _key_is_slug(cls, v: str) -> str:
        if not SOURCE_KEY.match(v):
            raise ValueError(f"key {v!r} must be a lowercase slug (a-z, 0-9, _)")
        return v

    @field_validator("homepage")
    @classmethod
    def _homepage_is_url(cls, v: str) -> str:
        if not v.startswith(("https://", "http://")):
            raise ValueError(f"homepage {v!r} is not an http(s) URL")
        return v

    @field_validator("citation")
    @classmethod
    def _citation_is_bibtex(cls, v: str) -> str:
        if not re.match(r"^\s*@\w+\s*\{", v):
            raise ValueError("citation must be a BibTeX entry starting with @type{key, ...}")
        return v

    @property
    def group_column(self) -> str | None:
        """The label-table column naming each image's subject (``groups: {column: ...}``), else ``None``."""
        return self.groups.column if self.groups is not None else None

    @property
    def folder(self) -> str:
        """Folder name under the raw data directory."""
        return self.data_dir or self.key

    @property
    def license_is_unknown(self) -> bool:
        return self.license.strip().lower() == "unknown"


class Subset(_Strict):
    """One of the paper's 53 subsets (Table 9), named ``subset_NN``."""

    name: str
    title: str = Field(description="The task as Table 9 words it.")
    modality: str
    area: str
    task: str = Field(description="The CG task element (Tables 3-4 wording), e.g. COVID, Level.")
    task_group: str = Field(description="Grouped task (App. B.1 folds COVID and Cancer into State).")
    kind: SubsetKind
    paper_distribution: Literal["id", "ood", "none"] = Field(
        description="In-distribution (Table 1), out-of-distribution (Table 2), or neither (det/seg)."
    )
    labels: list[str] = Field(min_length=1)
    instructions: list[str] = Field(min_length=6, max_length=6)
    sources: list[str] = Field(min_length=1)
    notes: str | None = None

    @field_validator("name")
    @classmethod
    def _name_format(cls, v: str) -> str:
        if not SUBSET_NAME.match(v):
            raise ValueError(f"subset name {v!r} must look like subset_NN")
        return v

    @field_validator("labels")
    @classmethod
    def _labels_unique(cls, v: list[str]) -> list[str]:
        dupes = sorted({x for x in v if v.count(x) > 1})
        if dupes:
            raise ValueError(f"duplicate labels {dupes}")
        return v

    @property
    def number(self) -> int:
        return int(self.name.split("_")[1])

    @property
    def triplet(self) -> tuple[str, str, str]:
        return (self.modality, self.area, self.task)

    @property
    def is_classification(self) -> bool:
        return self.kind in ("single-label", "multi-label")


class Registry(_Strict):
    """The whole registry: every subset and every source, cross-checked."""

    version: int = Field(default=1, ge=1, le=1)
    subsets: list[Subset]
    sources: list[Source]

    @model_validator(mode="after")
    def _cross_check(self) -> "Registry":
        problems: list[str] = []
        names = [s.name for s in self.subsets]
        keys = [s.key for s in self.sources]
        for dup in sorted({n for n in names if names.count(n) > 1}):
            problems.append(f"subset {dup}: defined more than once")
        for dup in sorted({k for k in keys if keys.count(k) > 1}):
            problems.append(f"source {dup}: key defined more than once")
        numbers = [s.number for s in self.sources]
        for dup in sorted({n for n in numbers if numbers.count(n) > 1}):
            problems.append(f"source number {dup}: used by more than one entry")
        subset_by_name = {s.name: s for s in self.subsets}
        source_by_key = {s.key: s for s in self.sources}
        for sub in self.subsets:
            for key in sub.sources:
                if key not in source_by_key:
                    problems.append(f"subset {sub.name}: field 'sources' names unknown source {key!r}")
                elif sub.name not in source_by_key[key].subsets:
                    problems.append(
                        f"subset {sub.name}: lists source {key!r}, whose 'subsets' does not list it"
                    )
        for src in self.sources:
            allowed: set[str] = set()
            for name in src.subsets:
                sub = subset_by_name.get(name)
                if sub is None:
                    problems.append(f"source {src.key}: field 'subsets' names unknown subset {name!r}")
                    continue
                if src.key not in sub.sources:
                    problems.append(f"source {src.key}: lists {name}, whose 'sources' does not list it")
                allowed.update(sub.labels)
            for raw, canonical in src.labels.items():
                if canonical is not None and allowed and canonical not in allowed:
                    problems.append(
                        f"source {src.key}: field 'labels' maps {raw!r} to {canonical!r}, "
                        f"which is not a label of {', '.join(src.subsets)}"
                    )
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @cached_property
    def _subset_index(self) -> dict[str, Subset]:
        return {s.name: s for s in self.subsets}

    @cached_property
    def _source_index(self) -> dict[str, Source]:
        return {s.key: s for s in self.sources}

    def subset(self, name: str) -> Subset:
        """Look up a subset by config name (``subset_28``); a bare number (``28``) works too."""
        if name.isdigit():
            name = f"subset_{int(name):02d}"
        try:
            return self._subset_index[name]
        except KeyError:
            raise KeyError(
                f"unknown config {name!r}: expected one of subset_01 .. subset_{len(self.subsets):02d}"
            ) from None

    def source(self, key: str) -> Source:
        try:
            return self._source_index[key]
        except KeyError:
            raise KeyError(f"unknown source {key!r}: run `medmat sources list` to see the keys") from None

    def sharing_folder(self, source: Source) -> list[Source]:
        """The other entries unpacked into the same raw folder as ``source`` (one shared download)."""
        return [s for s in self.sources if s.folder == source.folder and s.key != source.key]

    def sources_of(self, subset: str | Subset) -> list[Source]:
        sub = subset if isinstance(subset, Subset) else self.subset(subset)
        return [self.source(k) for k in sub.sources]

    @property
    def subset_names(self) -> list[str]:
        return [s.name for s in self.subsets]


def _format_validation_error(err: ValidationError, data: dict) -> str:
    lines = []
    for e in err.errors():
        loc = list(e["loc"])
        where = ".".join(str(p) for p in loc)
        # Name the entry by its key/name rather than its list index.
        if len(loc) >= 2 and loc[0] in ("sources", "subsets") and isinstance(loc[1], int):
            try:
                entry = data[loc[0]][loc[1]]
                label = entry.get("key") or entry.get("name") or f"#{loc[1]}"
            except (IndexError, KeyError, TypeError, AttributeError):
                label = f"#{loc[1]}"
            kind = "source" if loc[0] == "sources" else "subset"
            field = ".".join(str(p) for p in loc[2:]) or "(entry)"
            where = f"{kind} {label}: field '{field}'"
        lines.append(f"{where}: {e['msg']}")
    return "\n".join(lines)


class _UniqueKeyLoader(yaml.SafeLoader):
    """Safe YAML loader that refuses duplicate mapping keys instead of silently keeping the last."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                f"found duplicate key {key!r}",
                key_node.start_mark,
            )
        seen[key] = loader.construct_object(value_node, deep=deep)
    return seen


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def parse_registry(text: str, origin: str = "<string>") -> Registry:
    """Parse and validate registry YAML text; raise :class:`RegistryError` naming entry and field."""
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as exc:
        raise RegistryError(f"{origin}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise RegistryError(f"{origin}: expected a mapping with 'subsets' and 'sources' at the top")
    try:
        return Registry.model_validate(data)
    except ValidationError as exc:
        raise RegistryError(f"{origin}:\n{_format_validation_error(exc, data)}") from None


def load_registry(path: str | Path | None = None) -> Registry:
    """Load ``sources.yaml`` (the repository's own by default)."""
    path = Path(path) if path is not None else DEFAULT_REGISTRY_PATH
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RegistryError(f"registry file {path} not found") from None
    return parse_registry(text, origin=str(path))
