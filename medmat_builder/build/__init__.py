"""Build the Med-MAT configs from raw sources into a Hub-layout export.

The flow, one module per step: :mod:`~medmat_builder.build.scan` (layouts -> candidates, every record
counted), :mod:`~medmat_builder.build.labels` and :mod:`~medmat_builder.build.groups` (canonical labels,
subjects), :mod:`~medmat_builder.build.splitting` (official split, else 9:1 by subject),
:mod:`~medmat_builder.build.quotas`, :mod:`~medmat_builder.build.fill` with
:mod:`~medmat_builder.build.loader` and :mod:`~medmat_builder.build.dedup` (open only the chosen images,
drop duplicates and label conflicts), :mod:`~medmat_builder.build.select` (the whole selection of a
config, with its :mod:`~medmat_builder.build.audit`), :mod:`~medmat_builder.build.vqa` and
:mod:`~medmat_builder.build.boxes` (questions and answers), :mod:`~medmat_builder.build.builder` (the
``datasets.ArrowBasedBuilder``) and :mod:`~medmat_builder.build.export` (parquet files, report, card),
committed by :mod:`~medmat_builder.build.swap`; :mod:`~medmat_builder.build.resume` (configs kept on a
rerun), :mod:`~medmat_builder.build.signals` (stopping cleanly), :mod:`~medmat_builder.build.progress` and
:mod:`~medmat_builder.build.summary` (what a build shows).
"""

from medmat_builder.build.audit import AuditError, LeakageAudit, audit_export
from medmat_builder.build.boxes import format_box_answer, normalize_boxes, resolve_boxes
from medmat_builder.build.export import (
    BuildError,
    BuildResult,
    MissingSourcesError,
    UnloadableConfigError,
    build,
    build_lock,
    check_out,
)
from medmat_builder.build.labels import UnknownLabelError
from medmat_builder.build.select import EmptySplitError
from medmat_builder.build.settings import BuildSettings
from medmat_builder.build.signals import BuildInterrupted
from medmat_builder.build.summary import config_tables

__all__ = [
    "AuditError",
    "BuildError",
    "BuildInterrupted",
    "BuildResult",
    "BuildSettings",
    "EmptySplitError",
    "LeakageAudit",
    "MissingSourcesError",
    "UnknownLabelError",
    "UnloadableConfigError",
    "audit_export",
    "build",
    "build_lock",
    "check_out",
    "config_tables",
    "format_box_answer",
    "normalize_boxes",
    "resolve_boxes",
]
