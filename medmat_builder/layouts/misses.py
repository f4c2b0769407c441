"""Near misses: which declared pattern a file that matches none comes closest to, and where it differs.

Real archives drift from the registry in small ways: a folder ``Trainning/`` where the pattern says
``{split:train|test}``, a table ``Train_labels.CSV`` where it says ``train.csv``, ``kvasir_V2`` for
``kvasir_v2``. The build report names such files with the closest pattern (:func:`closest_pattern`),
so the fix is one edit away. Similarity is :mod:`difflib`'s ratio, segment by segment from the end
of the path (patterns match the end of a path).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from medmat_builder.layouts.patterns import PathPattern

#: Below this similarity a pattern is not offered as "closest".
CLOSE_ENOUGH = 0.6
TABLE_EXTENSIONS = (".csv", ".tsv", ".xlsx", ".xls", ".xlsm", ".json")


@dataclass(frozen=True)
class NearMiss:
    pattern: str
    score: float
    hint: str

    def to_dict(self) -> dict[str, object]:
        return {"closest_pattern": self.pattern, "similarity": round(self.score, 2), "hint": self.hint}


def _segment_regex(segment: str) -> re.Pattern[str]:
    return re.compile("^" + PathPattern(segment).regex.pattern[len(r"(?:^|/)"):], re.IGNORECASE)


def _words(segment: str) -> list[str]:
    """What a pattern segment could spell: its alternatives (``{split:train|test}``), else its literal text."""
    options = [""]
    for literal, body in re.findall(r"([^{]*)(?:\{([^}]*)\})?", segment):
        alts = [""]
        if body:
            _, _, rx = body.partition(":")
            if rx and re.fullmatch(r"[\w .\-|()?:]+", rx):
                alts = [a.strip("()?:") for a in rx.split("|")]
        options = [o + literal.replace("*", "") + a for o in options for a in alts][:64]
    return [o for o in options if o] or [segment]


def _segment_score(seg: str, pattern_seg: str) -> tuple[float, str | None]:
    if _segment_regex(pattern_seg).match(seg):
        return 1.0, None
    words = _words(pattern_seg)
    best = max(words, key=lambda w: difflib.SequenceMatcher(None, seg.lower(), w.lower()).ratio())
    return difflib.SequenceMatcher(None, seg.lower(), best.lower()).ratio(), best


def near_miss(path: str, pattern: str) -> NearMiss:
    """How close ``path`` comes to ``pattern`` (1.0 = it matches), and the first segment that differs."""
    tail = pattern.rsplit("**", 1)[-1].strip("/")
    psegs = [s for s in tail.split("/") if s]
    segs = path.split("/")
    if not psegs:
        return NearMiss(pattern, 1.0, "")
    if len(segs) < len(psegs):
        segs = [""] * (len(psegs) - len(segs)) + segs
    aligned = list(zip(segs[-len(psegs):], psegs))
    scores, hint = [], ""
    for seg, pseg in aligned:
        score, best = _segment_score(seg, pseg)
        scores.append(score)
        if best is not None and not hint:
            hint = (f"{seg!r} does not match {pseg!r}" + (f" (closest: {best!r})" if best != pseg else "")
                    if seg else f"no folder where the pattern has {pseg!r}")
    return NearMiss(pattern, sum(scores) / len(scores), hint)


def closest_pattern(path: str, patterns: Iterable[str], cutoff: float = CLOSE_ENOUGH) -> NearMiss | None:
    """The pattern ``path`` comes closest to (at least ``cutoff`` similar), or ``None``."""
    misses = [near_miss(path, p) for p in dict.fromkeys(patterns)]
    if not misses:
        return None
    best = max(misses, key=lambda m: (m.score, m.pattern))
    return best if best.score >= cutoff else None


def closest_files(pattern: str, files: Sequence[str], n: int = 3, cutoff: float = CLOSE_ENOUGH) -> list[str]:
    """The files that come closest to ``pattern`` (for "no table matching ..." errors)."""
    scored = sorted(((near_miss(f, pattern).score, f) for f in files), key=lambda t: (-t[0], t[1]))
    return [f for s, f in scored[:n] if s >= cutoff]


def close_names(name: str, names: Iterable[str], n: int = 3) -> list[str]:
    """Folder names that look like ``name`` (same letters in another case first, then difflib)."""
    names = list(names)
    same = [x for x in names if x.lower() == name.lower() and x != name]
    near = difflib.get_close_matches(name.lower(), [x.lower() for x in names], n=n, cutoff=CLOSE_ENOUGH)
    by_lower = {x.lower(): x for x in names}
    return list(dict.fromkeys(same + [by_lower[x] for x in near if by_lower[x] != name]))[:n]


def missing_file_hint(patterns: Iterable[str], files: Sequence[str]) -> str:
    """``"; the closest file is 'Train_labels.CSV' ('...' does not match 'train.csv')"`` for an error
    saying that no file matches ``patterns`` (empty when nothing comes close)."""
    best: NearMiss | None = None
    best_file = ""
    for pattern in patterns:
        ext = pattern.rsplit(".", 1)[-1].lower() if "." in pattern.rsplit("/", 1)[-1] else None
        pool = [f for f in files if ext is None or f.lower().endswith("." + ext) or f.lower().endswith(TABLE_EXTENSIONS)]
        for f in pool:
            miss = near_miss(f, pattern)
            if best is None or miss.score > best.score:
                best, best_file = miss, f
    if best is None or best.score < CLOSE_ENOUGH:
        return ""
    return f"; the closest file is {best_file!r} ({best.hint})"
