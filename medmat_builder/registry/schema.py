"""The entries of ``sources.yaml``, typed and validated: a :class:`Source` (one public dataset) and a :class:`Subset`.

Everything about a source (where it lives, how its files lie on disk, what its raw labels mean, what
ties images of one subject together, where each fact comes from) and about a subset (its MAT triplet,
labels and instructions) is data; these models only say what shape it must have. Errors name the
field so a maintainer can fix the YAML without reading code.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cached_property
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from medmat_builder.layouts import Layout, PathPattern
from medmat_builder.layouts.patterns import RelativePattern

SubsetKind = Literal["single-label", "multi-label", "detection", "segmentation"]


Access = Literal["open", "registration", "restricted"]


SUBSET_NAME = re.compile(r"^subset_\d{2}$")


SOURCE_KEY = re.compile(r"^[a-z0-9][a-z0-9_]*$")


#: A folder under the data dir: relative names of letters, digits, ``_ . -`` (no segment starts with a dot,
#: so no ``..`` and no ``.medmat``).
DATA_DIR = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(?:/[A-Za-z0-9_][A-Za-z0-9_.-]*)*$")


FILE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*$")


def label_key(raw: str) -> str:
    """How raw labels are compared: Unicode NFKC, case folded, surrounding spaces dropped.

    ``Homogeneous`` and ``homogeneous``, ``" NV "`` and ``NV``, a composed ``é`` and ``e`` + combining
    accent all give one key, so a label spelt as the real archive spells it still finds its cluster.
    """
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", raw).casefold()).strip()


class Strict(BaseModel):
    """Registry models refuse unknown fields and cannot be changed once read."""

    model_config = ConfigDict(extra="forbid", frozen=True)


#: The facts of a source entry that are checked against public evidence (see ``Source.evidence``).
FACTS: tuple[str, ...] = ("homepage", "license", "access", "layout", "labels", "split", "groups", "checksums")


Fact = Literal["homepage", "license", "access", "layout", "labels", "split", "groups", "checksums"]


class GroupTable(Strict):
    """A side table that names the subject of each image (e.g. ISIC 2018's lesion groupings CSV)."""

    path: RelativePattern = Field(description="Path pattern of the table, relative to the source folder.")
    id_column: str = Field(description="Column naming the image (matched like a table layout's id).")
    group_column: str = Field(description="Column naming the subject (patient, lesion, study ...).")
    sep: str | None = Field(default=None, description="Field separator (default from the extension).")


class Groups(Strict):
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


class Download(Strict):
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


class Source(Strict):
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


class Subset(Strict):
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
