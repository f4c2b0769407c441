"""Strings that match a small regular expression, numbered: what the demo writes where a group pattern has ``{group:REGEX}``.

:func:`regex_example` reads the regex with a tokenizer of its own (public :mod:`re` only): literals and
escapes, character classes, ``.``, groups (``(...)``, ``(?:...)``, ``(?P<name>...)``) with alternatives,
quantifiers (``*``, ``+``, ``?``, ``{m}``, ``{m,}``, ``{m,n}``, lazy or possessive) and anchors. Which
characters a class, an escape like ``\\d`` or ``.`` stands for is asked of :func:`re.fullmatch`, one
character of :data:`ALPHABET` at a time. Anything else (look-arounds, back references, inline flags)
gives ``None``, and the demo then writes one subject per record.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field

#: The characters examples are made of.
ALPHABET = string.digits + string.ascii_lowercase + string.ascii_uppercase + "-_"
#: Stands for an unbounded repeat (``*``, ``+``, ``{m,}``).
UNBOUNDED = 4096

_TOKENS = re.compile(r"""
    (?P<escape>\\.)
  | (?P<klass>\[\^?\]?(?:\\.|[^\]])*\])
  | (?P<open>\((?:\?:|\?P<\w+>)?)
  | (?P<unsupported>\(\?)
  | (?P<close>\))
  | (?P<bar>\|)
  | (?P<quantifier>(?:[*+?]|\{\d+(?:,\d*)?\})[?+]?)
  | (?P<anchor>[\^$])
  | (?P<any>\.)
  | (?P<literal>.)
""", re.VERBOSE | re.DOTALL)
_ANCHOR_ESCAPES = set("bBAZ")
_CLASS_ESCAPES = set("dDwWsS")
_CONTROL_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f", "v": "\v"}


class _Unsupported(Exception):
    pass


@dataclass
class _Node:
    """One item of a sequence: a single character (``chars``: what it may be) or a group (``alternatives``),
    repeated ``lo`` to ``hi`` times."""

    chars: list[str] | None = None
    alternatives: list[list[_Node]] = field(default_factory=list)
    lo: int = 1
    hi: int = 1
    repeated: bool = False

    @property
    def one_char(self) -> bool:
        return self.chars is not None


def _members(pattern: str) -> list[str]:
    return [ch for ch in ALPHABET if re.fullmatch(pattern, ch)]


def _parse(rx: str) -> list[_Node]:
    """The regex as nested sequences of :class:`_Node` (the first alternative is what examples use)."""
    stack: list[list[list[_Node]]] = [[[]]]  # per open group: its alternatives, the last one being built
    for m in _TOKENS.finditer(rx):
        kind, text = m.lastgroup, m.group()
        seq = stack[-1][-1]
        if kind == "unsupported":
            raise _Unsupported(text)
        if kind == "open":
            stack.append([[]])
        elif kind == "close":
            if len(stack) == 1:
                raise _Unsupported(")")
            seq = stack.pop()
            stack[-1][-1].append(_group(seq))
        elif kind == "bar":
            stack[-1].append([])
        elif kind == "quantifier":
            if not seq or seq[-1].repeated:
                raise _Unsupported(text)
            lazy_or_possessive = len(text) > 1 and text[-1] in "?+" and text[:-1] in ("*", "+", "?") or text[-1] in "?+" and text[0] == "{"
            seq[-1].lo, seq[-1].hi = _bounds(text[:-1] if lazy_or_possessive else text)
            seq[-1].repeated = True
        elif kind == "anchor":
            continue
        elif kind == "escape":
            letter = text[1]
            if letter in _ANCHOR_ESCAPES:
                continue
            if letter.isdigit():
                raise _Unsupported(text)  # a back reference
            seq.append(_Node(chars=_members(text) if letter in _CLASS_ESCAPES else [_CONTROL_ESCAPES.get(letter, letter)]))
        elif kind == "klass":
            seq.append(_Node(chars=_members(text)))
        elif kind == "any":
            seq.append(_Node(chars=list(ALPHABET)))
        else:
            seq.append(_Node(chars=[text]))
    if len(stack) != 1:
        raise _Unsupported("(")
    top = stack[0]
    return top[0] if len(top) == 1 else [_group(top)]


def _group(alternatives: list[list[_Node]]) -> _Node:
    """A group; alternatives that are all single characters are one character (``a|b`` is ``[ab]``)."""
    if len(alternatives) > 1 and all(len(a) == 1 and a[0].one_char and not a[0].repeated for a in alternatives):
        union = {ch for a in alternatives for ch in a[0].chars or ()}
        return _Node(chars=[ch for ch in ALPHABET if ch in union])
    return _Node(alternatives=alternatives)


def _bounds(quantifier: str) -> tuple[int, int]:
    if quantifier == "*":
        return 0, UNBOUNDED
    if quantifier == "+":
        return 1, UNBOUNDED
    if quantifier == "?":
        return 0, 1
    lo, _, hi = quantifier[1:-1].partition(",")
    if not _:
        return int(lo), int(lo)
    return int(lo), int(hi) if hi else UNBOUNDED


def _slots(seq: list[_Node]) -> list[_Node]:
    """Repeated single characters that stand for more than one character: where a number can be written."""
    out: list[_Node] = []
    for node in seq:
        if node.repeated and node.one_char and len(node.chars or ()) > 1 and node.hi >= 1:
            out.append(node)
        elif node.alternatives:
            out += _slots(node.alternatives[0])
    return out


def _encode(chars: list[str], n: int, lo: int, hi: int) -> str | None:
    """``n`` written in the characters of a slot (digits when it has all ten), at least ``lo`` long, at most ``hi``."""
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


def _emit(seq: list[_Node], n: int, target: _Node | None) -> str | None:
    out = ""
    for node in seq:
        if node is target:
            piece = _encode(node.chars or [], n, node.lo, node.hi)
        elif node.one_char:
            piece = node.chars[0] * node.lo if node.chars else None
        else:
            one = _emit(node.alternatives[0], n, target)
            piece = None if one is None else one * node.lo
        if piece is None:
            return None
        out += piece
    return out


def regex_example(rx: str, n: int, slot: str = "last") -> str | None:
    """A string matching ``rx`` that encodes ``n`` (distinct ``n`` give distinct strings) in the
    ``first`` or ``last`` repeated character class; ``None`` when the regex is beyond this small generator."""
    try:
        tree = _parse(rx)
        re.compile(rx)
    except (_Unsupported, re.error):
        return None
    slots = _slots(tree)
    target = (slots[-1] if slot == "last" else slots[0]) if slots else None
    value = _emit(tree, n, target)
    if value is None or not re.fullmatch(rx, value, re.IGNORECASE) or "/" in value:
        return None
    return value
