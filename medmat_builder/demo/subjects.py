"""Subjects of the demo's records: which synthetic records share a patient, and how each record carries it.

A source that declares a subject key (``groups``: column, side table or path patterns) gets subjects
with several images, as real archives have: within each raw label and split, the first two records
belong to one subject, the others each to their own. The key is written the way the source declares
it: into the label table's group column, into the side table, or into the path: in the source's real
naming scheme where :mod:`~medmat_builder.demo.path_hints` has one, else the demo finds file names or
folders that both the layout's image pattern and the first group pattern accept, using a value that
matches the pattern's ``{group:REGEX}`` (:func:`~medmat_builder.demo.regex_examples.regex_example`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable

from medmat_builder.demo.path_hints import name_scheme
from medmat_builder.demo.regex_examples import regex_example
from medmat_builder.layouts import PathPattern
from medmat_builder.layouts.patterns import IMAGE_EXTENSIONS
from medmat_builder.registry import Source


class Subjects:
    """Which synthetic records share a subject, and how each record carries it (see the module docstring)."""

    def __init__(self, source: Source):
        self.source = source
        groups = source.groups
        self.declared = groups.declared if groups is not None else "none"
        layout = source.layout
        # A group column that is the id column cannot give two files one subject: one subject per record.
        self.pairs = self.declared != "none" and not (
            self.declared == "column" and groups.column == getattr(layout, "id_column", None))  # type: ignore[union-attr]
        self.hints = None
        self.scheme = name_scheme(source) if self.declared == "path" else None
        if self.declared == "path" and self.scheme is None:
            self.hints, self.pairs = path_hint_maker(source)
            if self.hints is None:  # the demo cannot write this pattern's subjects: one subject per record
                self.declared = "none"
        self.seen: dict[tuple, int] = {}
        self.numbers: dict[tuple, int] = {}

    def fields(self, raw_label: str, split: str | None, used: bool, index: int) -> dict:
        if self.declared == "none":
            return {}
        slot = (raw_label, split)
        position = self.seen.get(slot, 0)
        self.seen[slot] = position + 1
        key = (raw_label, split, "pair") if self.pairs and used and position < 2 else (raw_label, split, position)
        number = self.numbers.setdefault(key, len(self.numbers) + 1)
        if self.scheme is not None:
            subject, path = self.scheme.path_for(raw_label, split, number, index)
            return {"group": subject, "path": path}
        if self.hints is not None:
            values, star, dir_star = self.hints(number, index)
            return {"group": str(number), "path_values": values, "star": star, "dir_star": dir_star}
        return {"group": f"S{number:04d}"}


_SEMANTIC = {"label", "split", "id", "class", "width", "height"}


_GROUP_RX = re.compile(r"\{group(?::([^}]*))?\}")


def _segments(pattern: str) -> list[str]:
    """Split a path pattern on the '/' that separate folders (not those inside ``{name:REGEX}``)."""
    parts, depth, cur = [], 0, ""
    for ch in pattern:
        depth += (ch == "{") - (ch == "}")
        if ch == "/" and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    return [*parts, cur]


PathHints = Callable[[int, int], tuple[tuple[tuple[str, str], ...], str | None, str | None]]


def path_hint_maker(source: Source) -> tuple[PathHints | None, bool]:
    """How the demo writes subject ``n``'s record ``index`` so that the source's first ``groups.path``
    pattern finds its subject: ``(path_values, star, dir_star)`` for :class:`FakeSample`, and whether
    subjects can hold several records.

    Tried in order, each checked on three probe records (two of one subject, one of another): the
    subject in the file name's ``*``; in a placeholder of the image pattern that the layout does not
    fill itself (a patient or volume folder); in the folders' ``*``. When the pattern's subject is the
    record's own id (one image per table row, say), subjects get one record each. ``(None, False)``
    when nothing works (a pattern beyond this small generator): the demo then writes one subject per
    record; the pattern itself is checked against real file names in tests/test_registry_evidence_*.
    """
    layout = source.layout
    images = PathPattern(layout.images)  # type: ignore[attr-defined]
    group_pattern = source.groups.path[0]  # type: ignore[union-attr]
    gpat = PathPattern(group_pattern)
    found = _GROUP_RX.search(group_pattern)
    rx = (found.group(1) if found else None) or "[^/]+"
    segments = _segments(group_pattern.replace("**/", ""))
    where = next(i for i, seg in enumerate(segments) if _GROUP_RX.search(seg))
    from_end = len(segments) - 1 - where
    segment = PathPattern(segments[where])
    label = next((raw for raw, canonical in sorted(source.labels.items()) if canonical is not None), "x")
    split = next(iter(layout.split_map), "train")
    ext = layout.fake_extension()
    free = [name for name in images.placeholders if name not in _SEMANTIC]

    def fill_segment(value: str, index: int) -> str:
        names = {n: "x" for n in segment.placeholders}
        names["group"] = value
        text = segment.fill(names, star=f"fake{index:05d}")
        root, seg_ext = os.path.splitext(text)
        return root if seg_ext.lower() in IMAGE_EXTENSIONS else text

    def predict(values: dict[str, str], star: str | None, dir_star: str | None, index: int) -> str:
        """Where the layout's writer puts record ``index`` (its defaults mirrored: free placeholders
        ``x00001``, or ``1`` for run-length tables; ids ``fake00001``, or zero-padded numbers)."""
        filled = {n: (f"{index}" if layout.kind == "rle_table" else f"x{index:05d}") for n in images.placeholders}
        zfill = getattr(layout, "id_zfill", None)
        file_id = getattr(layout, "id_template", "{id}").format(id=f"{index}".zfill(zfill) if zfill else f"fake{index:05d}")
        filled.update({"label": label, "split": split, "id": file_id, "width": "48", "height": "40"})
        filled.update(values)
        rel = images.fill(filled, star=star or f"fake{index:05d}", dir_star=dir_star or "fake")
        return rel if os.path.splitext(rel)[1].lower() in IMAGE_EXTENSIONS else rel + ext

    makers: list[PathHints] = []
    for slot in ("last", "first"):
        def value(n: int, slot: str = slot) -> str:
            return regex_example(rx, n, slot) or ""

        if from_end == 0:
            for cut in range(0, 12):
                makers.append(lambda n, i, cut=cut, value=value: ((), fill_segment(value(n)[cut:], i), None))
        for name in free:
            makers.append(lambda n, i, name=name, value=value: (((name, fill_segment(value(n), i)),), None, None))
            makers.append(lambda n, i, name=name, value=value: (((name, value(n)),), None, None))
        if from_end > 0:
            makers.append(lambda n, i, value=value: ((), None, fill_segment(value(n), i)))

    def works(make: PathHints, probes: tuple[tuple[int, int], ...]) -> bool:
        got = []
        for n, index in probes:
            values, star, dir_star = make(n, index)
            if not regex_example(rx, n) or any(not v for _, v in values) or star == "" or dir_star == "":
                return False
            path = predict(dict(values), star, dir_star, index)
            theirs, ours = images.match(path), gpat.match(path)
            if theirs is None or ours is None or not ours.get("group"):
                return False
            if "label" in theirs and theirs["label"] != label:
                return False
            got.append(ours["group"])
        return (got[0] == got[1]) == (probes[0][0] == probes[1][0]) and got[1] != got[2]

    for probes, pairs in ((((1, 1), (1, 2), (2, 3)), True), (((1, 1), (2, 2), (3, 3)), False)):
        for make in makers:
            if works(make, probes):
                return make, pairs
    return None, False
