"""The end of a build with worker processes: the visual report is written in an idle decoding worker
while the main process writes the card and waits for the Croissant metadata (:func:`start_visual_report`)."""

from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path

from medmat_builder.build.loader import idle_pool
from medmat_builder.publish.visual import write_visual_report
from medmat_builder.registry import Registry
from medmat_builder.report import BuildReport


def start_visual_report(staging: Path, registry: Registry, report: BuildReport, raw: Path) -> Future:
    """Start writing the visual report of the export staged in ``staging``
    (:func:`~medmat_builder.publish.visual.write_visual_report`) in an idle decoding worker, or here and now
    when the build started none; return its future (its errors are raised by ``result()``).

    The worker reads only the staged parquet files and ``report`` (sent to it with the raw paths the build
    noted), so the pages are the same bytes wherever they are made."""
    pool = idle_pool()
    if pool is not None:
        return pool.submit(write_visual_report, staging, registry, report, raw=raw)
    done: Future = Future()
    done.set_result(write_visual_report(staging, registry, report, raw=raw))
    return done
