"""The real file naming schemes the demo writes for sources whose subject is in the path.

A source with ``groups: {path: [...]}`` in sources.yaml finds each record's subject in its file name or
folders. Where the demo cannot derive such names from the group pattern alone (a patient id that the
layout's image pattern and the group pattern place in different ``*``, a table whose ids are file names),
``path_hints.yaml`` beside this module gives the source's real naming scheme as a small template
(:class:`NameScheme`): the demo then writes e.g. BreakHis records as
``breast/benign/SOB/adenosis/SOB_B_A_14-00001/40X/SOB_B_A-14-00001-40-001.png``, so the build finds
their subjects exactly as in the real archive. Each scheme is checked against the source's image
pattern and group pattern when it is loaded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

from medmat_builder.demo.regex_examples import regex_example
from medmat_builder.layouts import PathPattern
from medmat_builder.registry import Source

#: The data table of naming schemes (package data).
HINTS_FILE = "path_hints.yaml"
_GROUP_RX = re.compile(r"\{group(?::([^}]*))?\}")
_SPECIAL = {"path", "subject"}


class NameSchemeError(ValueError):
    """A naming scheme of ``path_hints.yaml`` that does not fit its source's patterns."""


@dataclass(frozen=True)
class NameScheme:
    """One source's naming scheme (see ``path_hints.yaml`` for the fields)."""

    key: str
    path: str
    group_pattern: str
    subject: str | None = None
    fields: dict[str, str] = field(default_factory=dict)
    labels: dict[str, dict[str, str]] = field(default_factory=dict)

    def _entry(self, raw_label: str) -> dict[str, str]:
        return {"path": self.path, "subject": self.subject or "", **self.fields, **self.labels.get(raw_label, {})}

    def subject_id(self, raw_label: str, n: int) -> str:
        """Subject ``n``'s id as the archive spells it (``n`` >= 1)."""
        template = self._entry(raw_label)["subject"]
        if template:
            return template.format(n=n)
        found = _GROUP_RX.search(self.group_pattern)
        value = regex_example((found.group(1) if found else None) or "[^/]+", n)
        if value is None:
            raise NameSchemeError(f"{HINTS_FILE}: {self.key} needs a `subject` template: the group pattern "
                                  f"{self.group_pattern!r} is beyond the demo's example generator")
        return value

    def path_for(self, raw_label: str, split: str | None, n: int, record: int) -> tuple[str, str]:
        """``(subject id, relative path)`` of record ``record`` of subject ``n``."""
        entry = self._entry(raw_label)
        subject = self.subject_id(raw_label, n)
        values: dict[str, Any] = {k: v for k, v in entry.items() if k not in _SPECIAL}
        values.update(label=raw_label, split=split or "train", subject=subject, record=record)
        try:
            return subject, entry["path"].format(**values)
        except (KeyError, IndexError, ValueError) as err:
            raise NameSchemeError(f"{HINTS_FILE}: {self.key}, label {raw_label!r}: cannot fill {entry['path']!r} "
                                  f"({err!r}); give the missing field under `fields` or `labels`") from None

    def check(self, source: Source) -> None:
        """Raise :class:`NameSchemeError` unless every label's names match the source's image pattern and
        its group patterns capture the subject (two records of one subject, one of another)."""
        images = PathPattern(source.layout.images)  # type: ignore[attr-defined]
        patterns = [PathPattern(p) for p in source.groups.path or []]  # type: ignore[union-attr]
        for raw_label in sorted(source.labels):
            seen: set[str] = set()
            for n, record in ((1, 1), (1, 2), (2, 3)):
                subject, path = self.path_for(raw_label, "train", n, record)
                theirs = images.match(path)
                if theirs is None:
                    raise NameSchemeError(f"{HINTS_FILE}: {self.key} writes {path!r}, which the layout's image "
                                          f"pattern {images.pattern!r} does not match")
                if "label" in theirs and theirs["label"].lower() != raw_label.lower():
                    raise NameSchemeError(f"{HINTS_FILE}: {self.key} writes {path!r}, which the image pattern "
                                          f"reads as label {theirs['label']!r}, not {raw_label!r}")
                found = next((m["group"] for m in map(lambda p: p.match(path), patterns) if m), None)
                if found != subject:
                    raise NameSchemeError(f"{HINTS_FILE}: {self.key} writes {path!r} for subject {subject!r}, but "
                                          f"the group patterns {source.groups.path} find {found!r}")  # type: ignore[union-attr]
                if path in seen:
                    raise NameSchemeError(f"{HINTS_FILE}: {self.key} writes {path!r} twice; use {{record}} in `path`")
                seen.add(path)


@lru_cache(maxsize=1)
def _table() -> dict[str, dict[str, Any]]:
    text = resources.files("medmat_builder.demo").joinpath(HINTS_FILE).read_text(encoding="utf-8")
    return yaml.safe_load(text) or {}


def hinted_sources() -> list[str]:
    """Keys of the sources that ``path_hints.yaml`` gives a naming scheme."""
    return sorted(_table())


def name_scheme(source: Source) -> NameScheme | None:
    """The checked naming scheme for ``source``, or ``None`` when the table has none for it (or the source
    does not declare its subjects by path)."""
    entry = _table().get(source.key)
    if entry is None or source.groups is None or not source.groups.path:
        return None
    entry = dict(entry)
    unknown = set(entry) - {"path", "subject", "fields", "labels"}
    if unknown or "path" not in entry:
        raise NameSchemeError(f"{HINTS_FILE}: {source.key} needs `path` and may have `subject`, `fields`, "
                              f"`labels` (got {sorted(entry)})")
    labels = {str(k): {str(a): str(b) for a, b in (v or {}).items()} for k, v in (entry.get("labels") or {}).items()}
    missing = set(labels) - set(source.labels)
    if missing:
        raise NameSchemeError(f"{HINTS_FILE}: {source.key} lists labels {sorted(missing)} that sources.yaml does not map")
    scheme = NameScheme(key=source.key, path=str(entry["path"]), group_pattern=source.groups.path[0],
                        subject=entry.get("subject"), labels=labels,
                        fields={str(k): str(v) for k, v in (entry.get("fields") or {}).items()})
    scheme.check(source)
    return scheme
