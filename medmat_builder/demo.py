"""Synthetic raw sources in every source's real on-disk layout, for the offline demo and the tests.

Each source gets a few small, clearly synthetic images per raw label (random blocky patterns with a
label-dependent tint and a white "SYNTH" bar, nothing medical), written by the *inverse* of its
layout kind, so the demo exercises exactly the code that reads real archives. Raw labels that the
registry drops (mapped to null) get one record each, so the build report shows them being counted
(unless another entry sharing the same download uses that label: then it gets a full set).
Sources of multi-label subsets whose layout stores label sets (one-hot columns, separated labels)
give every third record a second finding, so label sets go through the same code as on real data.

Subjects: a source that declares a subject key (``groups``: column, side table or path patterns)
gets subjects with several images, as real archives have: within each raw label and split, the
first two records belong to one subject, the others each to their own. The key is written the way
the source declares it: into the label table's group column, into the side table (written by
:func:`write_group_table`), or into the path: the demo finds file names or
folders that both the layout's image pattern and the first group pattern accept, using a value
that matches the pattern's ``{group:REGEX}`` (:func:`regex_example`).
"""

from __future__ import annotations

import os
import re
import shutil
import string
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import numpy as np

from medmat_builder import safe_paths
from medmat_builder.images import write_fake_image
from medmat_builder.images.synthetic import FAKE_EXTENSIONS, block_pixels, seeded_rng
from medmat_builder.layouts import PathPattern, TableFile
from medmat_builder.layouts.patterns import IMAGE_EXTENSIONS
from medmat_builder.layouts.tables import write_table
from medmat_builder.records import Box, FakeSample
from medmat_builder.registry import Registry, Source, load_registry

DEMO_PER_LABEL = 8
#: The smallest ``per_label`` from which every config of the shipped registry builds (and loads): six
#: records per label give each label one test record under the 9:1 split (round(0.6) = 1); five do not.
MINIMAL_PER_LABEL = 6
CLASSIFICATION_SIZE = (48, 40)
DETECTION_SIZE = (64, 64)








def encode_image(pixels: np.ndarray, ext: str) -> bytes:
    """Encode an RGB demo picture in the format of ``ext``: grey for PGM, 16-bit grey for DICOM, PNG when
    :func:`~medmat_builder.images.write_fake_image` does not write ``ext``."""
    ext = ext.lower()
    if ext in (".dcm", ".dicom"):
        return write_fake_image(pixels.mean(axis=-1).astype(np.uint16) * 4, ext)
    if ext == ".pgm":
        return write_fake_image(pixels.mean(axis=-1).astype(np.uint8), ext)
    return write_fake_image(pixels, ext if ext in FAKE_EXTENSIONS else ".png")


def fake_samples(source: Source, registry: Registry, per_label: int = DEMO_PER_LABEL, seed: int = 0) -> list[FakeSample]:
    """The synthetic records to write for one source."""
    layout = source.layout
    ext = layout.fake_extension()
    detection = not all(registry.subset(n).is_classification for n in source.subsets)
    has_train = layout.raw_split_for("train") is not None
    has_test = layout.raw_split_for("test") is not None
    samples: list[FakeSample] = []
    index = 0
    used = [raw for raw, canonical in sorted(source.labels.items()) if canonical is not None]
    multi = _writes_label_sets(source, registry) and len({source.labels[r] for r in used}) > 1
    subjects = _Subjects(source)
    # Entries sharing one download read the same files (the last one written wins): a raw label that
    # any of them uses gets a full set of records, so every entry finds its labels.
    siblings = registry.sharing_folder(source)
    for tint, (raw_label, canonical) in enumerate(sorted(source.labels.items())):
        used_here = canonical is not None or any(sib.labels.get(raw_label) is not None for sib in siblings)
        n = per_label if used_here else 1
        for j in range(n):
            index += 1
            labels: tuple[str, ...] = (raw_label,)
            if multi and canonical is not None and j % 3 == 2:  # every third record also shows another finding
                other = next(r for r in used[used.index(raw_label) + 1:] + used if source.labels[r] != canonical)
                labels = (raw_label, other)
            split = None
            if has_train and has_test:
                split = "test" if j % 4 == 3 else "train"
            elif has_train:
                split = "train"
            rng = seeded_rng(seed, source.key, raw_label, j)
            size = layout.fake_image_size() or (DETECTION_SIZE if detection else CLASSIFICATION_SIZE)
            pixels = block_pixels(rng, size, tint)
            boxes: tuple[Box, ...] = ()
            if detection:
                w, h = size
                x1, y1 = int(rng.integers(w // 16, w * 3 // 8)), int(rng.integers(h // 16, h * 3 // 8))
                x2, y2 = x1 + int(rng.integers(w // 5, w // 2)), y1 + int(rng.integers(h // 5, h // 2))
                boxes = (Box(raw_label, float(x1), float(y1), float(x2), float(y2)),)
                pixels[y1:y2, x1:x2, :] = np.clip(pixels[y1:y2, x1:x2, :].astype(int) + 60, 0, 255).astype(np.uint8)
                # No ready-made mask: each mask layout paints `boxes` in its own pixel convention.
            samples.append(
                FakeSample(index=index, labels=labels, split=split, image=encode_image(pixels, ext), ext=ext,
                           width=size[0], height=size[1], boxes=boxes,
                           **subjects.fields(raw_label, split, used_here, index))
            )
    return samples


class _Subjects:
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
        if self.declared == "path":
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
        if self.hints is not None:
            values, star, dir_star = self.hints(number, index)
            return {"group": str(number), "path_values": values, "star": star, "dir_star": dir_star}
        return {"group": f"S{number:04d}"}


# ------------------------------------------------------------------------------ path hints
_ALPHABET = string.digits + string.ascii_lowercase + string.ascii_uppercase + "-_"
_SEMANTIC = {"label", "split", "id", "class", "width", "height"}


def _class_chars(op, av) -> list[str] | None:
    """The characters of :data:`_ALPHABET` one regex node matches, or None when it is not a one-character node."""
    from re import _constants as c  # type: ignore[attr-defined]

    if op is c.LITERAL:
        return [chr(av)]
    if op is c.NOT_LITERAL:
        return [a for a in _ALPHABET if a != chr(av)]
    if op is c.ANY:
        return list(_ALPHABET)
    if op is not c.IN:
        return None
    negate = bool(av) and av[0][0] is c.NEGATE
    categories = {
        c.CATEGORY_DIGIT: str.isdigit, c.CATEGORY_NOT_DIGIT: lambda ch: not ch.isdigit(),
        c.CATEGORY_WORD: lambda ch: ch.isalnum() or ch == "_", c.CATEGORY_NOT_WORD: lambda ch: not (ch.isalnum() or ch == "_"),
        c.CATEGORY_SPACE: str.isspace, c.CATEGORY_NOT_SPACE: lambda ch: not ch.isspace(),
    }

    def member(ch: str) -> bool:
        for item_op, item_av in av:
            if item_op is c.LITERAL and ch == chr(item_av):
                return True
            if item_op is c.RANGE and item_av[0] <= ord(ch) <= item_av[1]:
                return True
            if item_op is c.CATEGORY and categories.get(item_av, lambda _: False)(ch):
                return True
        return False

    return [a for a in _ALPHABET if member(a) != negate]


def regex_example(rx: str, n: int, slot: str = "last") -> str | None:
    """A string matching ``rx`` that encodes ``n`` (distinct ``n`` give distinct strings) in the
    ``first`` or ``last`` repeated character class; None when the regex is beyond this small generator."""
    from re import _constants as c  # type: ignore[attr-defined]
    from re import _parser  # type: ignore[attr-defined]

    repeats = (c.MAX_REPEAT, c.MIN_REPEAT, getattr(c, "POSSESSIVE_REPEAT", c.MAX_REPEAT))
    try:
        tree = _parser.parse(rx)
    except re.error:
        return None
    slots: list[int] = []

    def collect(items) -> None:
        for op, av in items:
            if op in repeats:
                sub = list(av[2])
                chars = _class_chars(*sub[0]) if len(sub) == 1 else None
                if chars and len(chars) > 1 and av[1] >= 1:
                    slots.append(id(av))
                else:
                    collect(sub)
            elif op is c.SUBPATTERN:
                collect(av[3])
            elif op is c.BRANCH:
                collect(av[1][0])
            elif op is getattr(c, "ATOMIC_GROUP", None):
                collect(av)

    collect(tree)
    target = (slots[-1] if slot == "last" else slots[0]) if slots else None

    def encode(chars: list[str], lo: int, hi: int) -> str | None:
        digits = [ch for ch in chars if ch.isdigit()]
        alphabet = digits if len(digits) == 10 else [ch for ch in chars if ch.isalpha()] or chars
        base, m, out = len(alphabet), n, ""
        while True:
            out = alphabet[m % base] + out
            m //= base
            if m == 0:
                break
        out = out.rjust(max(lo, 1), alphabet[0])
        return out if len(out) <= hi else None

    def emit(items) -> str | None:
        out = ""
        for op, av in items:
            chars = _class_chars(op, av)
            if chars is not None:
                if not chars:
                    return None
                out += chars[0]
            elif op in repeats:
                lo, hi, sub = av
                if id(av) == target:
                    piece = encode(_class_chars(*list(sub)[0]) or [], lo, hi)
                else:
                    one = emit(sub)
                    piece = None if one is None else one * lo
                if piece is None:
                    return None
                out += piece
            elif op is c.SUBPATTERN:
                piece = emit(av[3])
                if piece is None:
                    return None
                out += piece
            elif op is c.BRANCH:
                piece = emit(av[1][0])
                if piece is None:
                    return None
                out += piece
            elif op is getattr(c, "ATOMIC_GROUP", None):
                piece = emit(av)
                if piece is None:
                    return None
                out += piece
            elif op is c.AT:
                continue
            else:
                return None
        return out

    value = emit(tree)
    if value is None or not re.fullmatch(rx, value, re.IGNORECASE) or "/" in value:
        return None
    return value


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


def _writes_label_sets(source: Source, registry: Registry) -> bool:
    """Does the source feed a multi-label subset through a layout that stores several labels per record?"""
    feeds_multi = any(registry.subset(n).kind == "multi-label" for n in source.subsets)
    layout = source.layout
    return feeds_multi and bool(getattr(layout, "label_columns", None) or getattr(layout, "label_separator", None))


def write_demo_sources(raw: str | Path, registry: Registry | None = None, keys: Iterable[str] | None = None,
                       per_label: int = DEMO_PER_LABEL, seed: int = 0) -> dict[str, int]:
    """Write synthetic copies of the sources (all by default) under ``raw/<folder>/``; return counts.

    ``raw`` must be a new path, an empty folder or an earlier demo folder (see
    :mod:`medmat_builder.safe_paths`); the files are written into scratch space inside it and then
    moved into place, replacing only files an earlier demo wrote.
    """
    registry = registry or load_registry()
    wanted = set(keys) if keys is not None else None
    written: dict[str, int] = {}
    owned = safe_paths.claim(raw, "demo", label="--data-dir")
    with owned.lock():
        work = owned.scratch()
        try:
            for source in sorted(registry.sources, key=lambda s: s.number):
                if wanted is not None and source.key not in wanted:
                    continue
                samples = fake_samples(source, registry, per_label, seed)
                # Sources sharing one download (data_dir) each write their own part under the shared folder.
                write_fake_source(source, work / source.folder, samples)
                written[source.key] = len(samples)
            owned.commit(work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return written


# ------------------------------------------------------------------------------ the inverse (demo)
def write_group_table(source: Source, root: Path, samples: Iterable[FakeSample], written: Mapping[int, str]) -> None:
    """Write the side table of ``groups: {table: ...}`` for synthetic samples (image stem -> ``sample.group``)."""
    spec = source.groups.table if source.groups is not None else None
    if spec is None:
        return
    rows = [[spec.id_column, spec.group_column]]
    for s in samples:
        if s.group is not None and s.index in written:
            stem = os.path.basename(written[s.index])
            rows.append([os.path.splitext(stem)[0], s.group])
    pattern = PathPattern(spec.path)
    rel = pattern.fill({n: "x" for n in pattern.placeholders}, star="groups")
    write_table(Path(root) / rel, rows, TableFile(path=spec.path, sep=spec.sep))


def write_fake_source(source: Source, root: Path, samples: list[FakeSample]) -> dict[int, str]:
    """Write ``samples`` in the source's layout under ``root`` (and its subject side table, if it declares one);
    return each sample's image path."""
    written = source.layout.write_fake(source, root, samples)
    write_group_table(source, root, samples, written)
    return written
