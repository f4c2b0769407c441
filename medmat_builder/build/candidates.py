"""What selection works on (a :class:`Candidate`: a usable raw record) and what it yields (:class:`Selected`)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from medmat_builder.build.rawfile import RawFile
from medmat_builder.records import Box, RawRecord
from medmat_builder.registry import Source


@dataclass
class Candidate:
    """A raw record with canonical labels, on its way to a split.

    ``split`` is the official one (``""`` until the seeded split sets it); ``key`` is what quotas
    balance (the label of a single-label record, its rarest label in a multi-label subset, ``all``
    for detection/segmentation); ``order`` is its seeded place in line; ``group`` its namespaced
    subject key (:mod:`medmat_builder.build.groups`).
    """

    record: RawRecord
    source: Source
    root: Path
    labels: tuple[str, ...]
    split: str
    id: str
    key: str = ""
    order: str = ""
    group: str = ""


@dataclass(frozen=True)
class Selected:
    """One kept record: everything the builder needs to write it. Its ``length`` image bytes are at ``offset``
    in the spool, or, with ``raw``, the whole raw file as it is (read again when the record is written,
    see :mod:`medmat_builder.build.rawfile`; ``offset`` is then -1)."""

    id: str
    source: str
    split: str
    labels: tuple[str, ...]
    offset: int
    length: int
    width: int
    height: int
    boxes: tuple[Box, ...] = ()
    #: xxh3-128 of the decoded pixels (:func:`medmat_builder.images.pixel_hash`): the ``image_hash`` column
    image_hash: str = ""
    #: the raw file that holds the image bytes as they are (None: they are in the spool)
    raw: RawFile | None = None


@dataclass
class Selection:
    """The kept records of one config per split, and each record's subject pseudonym (the ``group`` column)."""

    train: list[Selected] = field(default_factory=list)
    test: list[Selected] = field(default_factory=list)
    #: record id -> subject pseudonym (the exported ``group`` column)
    groups: dict[str, str] = field(default_factory=dict)


def seeded_key(*parts: object) -> str:
    """A hash of ``parts``: the seeded order of candidates and subjects (the same for any process count)."""
    return hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()
