"""The visual build report: ``OUT/report/index.html`` and one page per config, opening offline in any browser.

:func:`write_visual_report` is what ``medmat build`` calls once the parquet files and the build report
are in place (``medmat report OUT`` calls it again). The summary page (``index.html``)
links every config with its rows, size and warnings; a config page (``subset_NN.html``) shows the
triplet, sources and licenses, per split and label the count and seeded sample thumbnails (with
their source and raw path; boxes drawn on grounding configs), per source the ledger as a chart, the
duplicates dropped beside the image they repeat, and the subjects per split; and the config's leakage
audit. Counts and samples are read from the parquet files (:mod:`~medmat_builder.publish.visual.samples`),
the ledger from the :class:`~medmat_builder.report.BuildReport`. Thumbnails are inline ``data:`` URIs,
the charts inline SVG: the pages need no other file. Same export, same bytes.
"""

from __future__ import annotations

import json
from pathlib import Path

from medmat_builder.publish.visual.rawpaths import RawPaths
from medmat_builder.publish.visual.render import INDEX, RenderedReport, render_pages
from medmat_builder.registry import Registry
from medmat_builder.report import BuildReport

#: The report's folder in an export, its summary page and the raw paths it showed (reused without ``--data-dir``).
REPORT_DIR = "report"
RAW_PATHS = "raw_paths.json"

__all__ = ["INDEX", "RAW_PATHS", "REPORT_DIR", "RenderedReport", "render_visual_report", "report_user_files",
           "write_visual_report"]


def _known_paths(folder: Path) -> dict[str, str]:
    path = folder / REPORT_DIR / RAW_PATHS
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def render_visual_report(folder: str | Path, registry: Registry, report: BuildReport,
                         raw: str | Path | None = None) -> dict[str, bytes]:
    """The report's files (relative to ``REPORT_DIR``) for the export in ``folder``.

    Raw paths come from the build that made ``report`` (:attr:`~medmat_builder.report.ConfigReport.raw_paths`),
    else from scanning ``raw`` (the raw data folder), else from the ``raw_paths.json`` of the report
    already in ``folder``.
    """
    folder = Path(folder)
    found = {rid: path for rep in report.configs.values() for rid, path in rep.raw_paths.items()}
    paths = RawPaths(registry, raw, _known_paths(folder), found)
    rendered = render_pages(folder, registry, report, paths)
    files = {name: text.encode("utf-8") for name, text in rendered.pages.items()}
    files[RAW_PATHS] = (json.dumps(paths.shown, indent=1, sort_keys=True) + "\n").encode("utf-8")
    return files


def write_visual_report(folder: str | Path, registry: Registry, report: BuildReport,
                        raw: str | Path | None = None, *, into: str | Path | None = None) -> Path:
    """Write the report of the export in ``folder`` into ``into/report/`` (default ``folder/report/``);
    return the summary page's path (see :func:`render_visual_report`)."""
    target = Path(into if into is not None else folder) / REPORT_DIR
    files = render_visual_report(folder, registry, report, raw)
    target.mkdir(parents=True, exist_ok=True)
    for name, data in sorted(files.items()):
        (target / name).write_bytes(data)
    return target / INDEX


def report_user_files(out: str | Path, owned: frozenset[str]) -> list[str]:
    """Paths under ``out/report`` that medmat did not write (a build refuses to start while there are any)."""
    base = Path(out) / REPORT_DIR
    if base.is_symlink() or (base.exists() and not base.is_dir()):
        return [f"{REPORT_DIR} (a file or link where medmat writes its report folder)"]
    if not base.is_dir():
        return []
    found = sorted(p.relative_to(out).as_posix() for p in base.rglob("*") if not p.is_dir() or p.is_symlink())
    return [rel for rel in found if rel not in owned]
