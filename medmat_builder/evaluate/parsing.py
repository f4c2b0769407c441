"""Deterministic extraction of an option letter from a model's free-text answer.

Accepted forms (after trimming whitespace and surrounding quotes/asterisks):

* a bare letter: ``B``; in parentheses or brackets: ``(B)``, ``[B]``; followed by ``.``, ``:`` or ``)``:
  ``B.``, ``B)``, ``B:``;
* an answer prefix: ``Answer: B``, ``The answer is (B).``, ``Correct answer: B``;
* a letter followed by its option text: ``B. Pneumonia``, ``(B) Pneumonia`` (the letter decides);
* the exact text of one option (case and surrounding whitespace/final period ignored): ``Pneumonia``.

Anything else, including a letter outside the offered options, is *unparseable*: it is scored as wrong
and counted separately. There is no random fallback and no fuzzy matching, so the same output always
gets the same score.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

LETTERS = "ABCDEFGHIJ"

_WRAP = " \t\r\n\"'`*_"
_LETTER = r"[\(\[]?([A-J])[\)\]]?"
_BARE = re.compile(rf"^{_LETTER}[\.:\)]?$")
_PREFIXED = re.compile(
    rf"^(?i:(?:the\s+)?(?:correct\s+|final\s+)?(?:answer|option|choice)(?:\s+is)?)\s*[:：\-]?\s*{_LETTER}(?:[\.:\)]|\s|$)"
)
# "B. Pneumonia", "B) Pneumonia", "(B) Pneumonia": a letter with a separator, then text
_LEADING = re.compile(r"^(?:[\(\[]([A-J])[\)\]]|([A-J])[\.:\)])\s+\S")


def _norm(text: str) -> str:
    return " ".join(text.strip().strip(_WRAP).rstrip(".").split()).casefold()


def _valid(letter: str, n_options: int | None) -> str | None:
    if n_options is None or LETTERS.index(letter) < n_options:
        return letter
    return None


def parse_letter(text: str | None, options: Sequence[str] | None = None) -> str | None:
    """The option letter a free-text answer names, or ``None`` when it is unparseable.

    ``options`` (the option texts in letter order) enables exact-option-text answers and rejects
    letters beyond the number of options. Letters must be upper case (so that the word "a" never
    counts); the answer prefix itself is matched case-insensitively.
    """
    if text is None:
        return None
    s = text.strip().strip(_WRAP)
    if not s:
        return None
    n = len(options) if options else None
    # only the first line counts for letter forms (models often explain after the answer)
    first = s.splitlines()[0].strip().strip(_WRAP)
    for pattern in (_BARE, _PREFIXED, _LEADING):
        m = pattern.match(first)
        if m:
            return _valid(next(g for g in m.groups() if g), n)
    if options:
        target = _norm(s)
        hits = [i for i, opt in enumerate(options) if _norm(opt) == target]
        if len(hits) == 1:
            return LETTERS[hits[0]]
    return None
