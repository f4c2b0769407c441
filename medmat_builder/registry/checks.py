"""The whole registry: every subset and every source, their cross-references checked, and lookups by name."""

from __future__ import annotations

from functools import cached_property

from pydantic import Field, model_validator

from medmat_builder.registry.schema import Source, Strict, Subset
from medmat_builder.scripts import UsageError, did_you_mean


class UnknownNameError(UsageError, KeyError):
    """A config or source name the registry does not have; the message names the closest valid ones.

    A :class:`KeyError` (what a lookup raises) and a :class:`~medmat_builder.scripts.UsageError`
    (the command line prints it as one line and exits with 2).
    """


class Registry(Strict):
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
            raise UnknownNameError(
                f"unknown config {name!r}: expected one of subset_01 .. subset_{len(self.subsets):02d}"
                + did_you_mean(name, self._subset_index)
            ) from None

    def source(self, key: str) -> Source:
        try:
            return self._source_index[key]
        except KeyError:
            raise UnknownNameError(
                f"unknown source {key!r}{did_you_mean(key, self._source_index)} "
                "(`medmat sources list` shows every key)"
            ) from None

    def sharing_folder(self, source: Source) -> list[Source]:
        """The other entries unpacked into the same raw folder as ``source`` (one shared download)."""
        return [s for s in self.sources if s.folder == source.folder and s.key != source.key]

    def sources_of(self, subset: str | Subset) -> list[Source]:
        sub = subset if isinstance(subset, Subset) else self.subset(subset)
        return [self.source(k) for k in sub.sources]

    @property
    def subset_names(self) -> list[str]:
        return [s.name for s in self.subsets]
