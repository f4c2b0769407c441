"""Build the Med-MAT configs from raw sources into a Hub-layout export.

The flow, one module per step: :mod:`~medmat_builder.build.scan` (layouts -> candidates, every record
counted), :mod:`~medmat_builder.build.labels` and :mod:`~medmat_builder.build.groups` (canonical labels,
subjects), :mod:`~medmat_builder.build.splitting` (official split, else 9:1 by subject),
:mod:`~medmat_builder.build.quotas`, :mod:`~medmat_builder.build.fill` with
:mod:`~medmat_builder.build.loader` and :mod:`~medmat_builder.build.dedup` (open only the chosen images,
drop duplicates and label conflicts), :mod:`~medmat_builder.build.select` (the whole selection of a
config, with its :mod:`~medmat_builder.build.audit`), :mod:`~medmat_builder.build.vqa` and
:mod:`~medmat_builder.build.boxes` (questions and answers), :mod:`~medmat_builder.build.builder` (the
``datasets.ArrowBasedBuilder``) and :mod:`~medmat_builder.build.export` (parquet files, report, card).
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

__all__ = [
    "AuditError",
    "BuildError",
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
    "format_box_answer",
    "normalize_boxes",
    "resolve_boxes",
]
