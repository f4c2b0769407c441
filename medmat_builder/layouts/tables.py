"""Tables of the layouts: read and write CSV/TSV/whitespace/XLSX/JSON tables, find columns, compare image ids.

Column names are matched exactly, then with surrounding spaces stripped (some sources ship ``" Label"``
headers). Image ids are compared without a known image extension, with zero padding removed, slashes
unified and case ignored (:func:`id_key`), so ``img_0017.png`` in a table finds ``IMG_17.PNG`` on disk.
"""

from __future__ import annotations

import csv
import io
import os
import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from medmat_builder.layouts.patterns import IMAGE_EXTENSIONS, PathSegment, RelativePattern
from medmat_builder.safe_paths import RawTree


class LayoutError(RuntimeError):
    """A source's files do not match its declared layout; the message names file and source."""


def source_file(root: Path, rel: str, source: str) -> Path:
    """``root/rel``, to read a table or a list; refused when a link takes it outside the source folder."""
    target = RawTree(root).escape(rel)
    if target is not None:
        raise LayoutError(f"source {source}: {rel} is a link to {target}, outside the source folder; medmat does "
                          "not read it (put the file itself into the folder)")
    return root / rel


class TableFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    path: RelativePattern = Field(description="Pattern of the table file; may capture {split}.")
    split: PathSegment | None = Field(default=None, description="Raw split name for every row of this table.")
    sheet: str | None = Field(default=None, description="XLSX sheet (default: the first).")
    sep: str | None = Field(
        default=None, description="Field separator (default from extension); 'whitespace' splits on runs of blanks."
    )
    header_row: int = Field(default=0, ge=0, le=1000, description="0-based line of the header.")
    columns: list[str] | None = Field(
        default=None, description="Column names of a table without a header line (header_row is then ignored)."
    )
    pad_short_rows: bool = Field(
        default=False, description="Rows with fewer cells than columns are padded with empty cells."
    )
    encoding: str = "utf-8-sig"


def read_table(
    path: Path,
    *,
    sep: str | None = None,
    sheet: str | None = None,
    header_row: int = 0,
    columns: list[str] | None = None,
    pad_short_rows: bool = False,
    encoding: str = "utf-8-sig",
    source: str = "?",
) -> tuple[list[str], list[tuple[int, list[str] | None]]]:
    """Read a CSV/TSV/whitespace/XLSX/JSON table: (header, [(line number, cells or None if unreadable)]).

    Blank lines are skipped; a row with the wrong number of cells comes back as ``None`` so that the
    caller can count it. Any parser failure becomes a :class:`LayoutError` naming source and file.
    """
    ext = path.suffix.lower()
    try:
        if ext == ".json":
            raw = _json_rows(path.read_bytes().decode(encoding))
        elif ext in (".xlsx", ".xlsm"):
            import openpyxl

            wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
            ws = wb[sheet] if sheet else wb.worksheets[0]
            raw = [[_cell_str(c) for c in row] for row in ws.iter_rows(values_only=True)]
            wb.close()
        else:
            sep = sep or ("\t" if ext in (".tsv", ".txt") else ",")
            text = path.read_bytes().decode(encoding)
            if sep == "whitespace":
                raw = [line.split() for line in text.splitlines()]
            else:
                raw = list(csv.reader(io.StringIO(text, newline=""), delimiter=sep))
    except Exception as exc:  # noqa: BLE001 - any parser failure becomes a clear error
        raise LayoutError(f"source {source}: table {path} could not be read: {exc}") from None
    if columns is not None:
        header, first = list(columns), 0
    elif len(raw) <= header_row:
        raise LayoutError(f"source {source}: table {path} has no header at line {header_row + 1}")
    else:
        header, first = raw[header_row], header_row + 1
    rows: list[tuple[int, list[str] | None]] = []
    for i, cells in enumerate(raw[first:], start=first + 1):
        if not any(c.strip() for c in cells):
            continue  # blank line
        if pad_short_rows and len(cells) < len(header):
            cells = cells + [""] * (len(header) - len(cells))
        rows.append((i, cells if len(cells) == len(header) else None))
    return header, rows


def find_column(header: list[str], name: str, table: str, source: str, what: str = "") -> int:
    """Index of column ``name`` (exact, then with surrounding spaces stripped); else a :class:`LayoutError`
    naming the source, the table and the columns it has (``what`` says which declaration asked)."""
    if name in header:
        return header.index(name)
    stripped = [h.strip() for h in header]
    if name.strip() in stripped:
        return stripped.index(name.strip())
    asked = f" (asked for by {what})" if what else ""
    raise LayoutError(
        f"source {source}: table {table} has no column {name!r}{asked} (columns: {', '.join(map(repr, header))})"
    )


def strip_image_extension(value: str) -> str:
    """``x.png`` -> ``x``; other dotted names (``1-s2.0-x``) are kept whole."""
    root, ext = os.path.splitext(value)
    return root if ext.lower() in IMAGE_EXTENSIONS else value


def id_key(value: str) -> str:
    """How image ids are compared: slashes unified, image extension stripped, zero padding removed, lowercase."""
    return unpad(strip_image_extension(value.strip().replace("\\", "/"))).lower()


def _json_rows(text: str) -> list[list[str]]:
    """A JSON list of objects as rows; list values become '|'-joined cells (use label_separator '|')."""
    import json

    data = json.loads(text)
    if isinstance(data, dict):  # {"id": {...}, ...} or {"images": [...]}
        lists = [v for v in data.values() if isinstance(v, list)]
        data = lists[0] if len(lists) == 1 else [dict(v, _key=k) for k, v in data.items() if isinstance(v, dict)]
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise ValueError("expected a list of objects")
    header: list[str] = []
    for r in data:
        header += [k for k in r if k not in header]
    def cell(v: object) -> str:
        if isinstance(v, list):
            return "|".join(_cell_str(x) for x in v)
        return _cell_str(v)
    return [header] + [[cell(r.get(k)) for k in header] for r in data]


def _cell_str(v: object) -> str:
    if v is None:
        return ""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


_PAD = re.compile(r"(?<![0-9])0+(?=[0-9])")


def unpad(v: str) -> str:
    """Drop leading zeros of every digit run so ``img_0017`` and ``img_17`` compare equal."""
    return _PAD.sub("", v)


def write_table(path: Path, rows: list[list[str]], spec: TableFile) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    ext = path.suffix.lower()
    if ext in (".xlsx", ".xlsm"):
        import openpyxl

        wb = openpyxl.Workbook()
        ws = wb.active
        if spec.sheet:
            ws.title = spec.sheet
        for r in rows:
            ws.append(r)
        wb.save(path)
        return
    if ext == ".json":
        import json

        header, body = rows[0], rows[1:]
        objs = [{k: (v.split("|") if "|" in v else v) for k, v in zip(header, r)} for r in body]
        path.write_text(json.dumps(objs, indent=1), encoding="utf-8")
        return
    sep = spec.sep or ("\t" if ext in (".tsv", ".txt") else ",")
    if sep == "whitespace":
        def trimmed(r: list[str]) -> list[str]:  # ragged rows: trailing empty cells are left out
            while r and not r[-1]:
                r = r[:-1]
            return r

        text = "".join(" ".join(trimmed(r)) + "\n" for r in rows)
    else:
        buf = io.StringIO()
        csv.writer(buf, delimiter=sep, lineterminator="\n").writerows(rows)
        text = buf.getvalue()
    path.write_text(text, encoding="utf-8")
