"""Inline SVG bar charts (hand-made: no plotting library, the same numbers give the same bytes)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

#: Bar colours by kind of bar.
COLOURS = {"train": "#2f7ed8", "test": "#8bbc21", "dropped": "#d9534f", "excluded": "#999999", "other": "#f0ad4e"}
_ROW, _LABEL, _BAR, _PAD = 18, 190, 300, 4


@dataclass(frozen=True)
class Bar:
    label: str
    value: int
    kind: str = "other"


def bar_chart(bars: Sequence[Bar], title: str = "") -> str:
    """Horizontal bars, one per :class:`Bar`, each with its value; an empty string when there is no bar."""
    if not bars:
        return ""
    top = max(b.value for b in bars) or 1
    width, height = _LABEL + _BAR + 60, len(bars) * _ROW + _PAD
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">']
    if title:
        parts.append(f"<title>{escape(title)}</title>")
    for i, bar in enumerate(bars):
        y = i * _ROW + _PAD
        w = round(_BAR * bar.value / top) if bar.value else 0
        colour = COLOURS.get(bar.kind, COLOURS["other"])
        parts.append(f'<text x="{_LABEL - 6}" y="{y + 12}" text-anchor="end">{escape(bar.label)}</text>'
                     f'<rect x="{_LABEL}" y="{y}" width="{w}" height="{_ROW - 4}" fill="{colour}"/>'
                     f'<text x="{_LABEL + w + 4}" y="{y + 12}">{bar.value}</text>')
    parts.append("</svg>")
    return "".join(parts)
