"""Describe and ship an export: the dataset card, ``licenses.csv``, Croissant metadata, the license-gated
Hub upload, and lmms-eval task files."""

from medmat_builder.publish.card import render_card, render_readme
from medmat_builder.publish.card_body import Publication
from medmat_builder.publish.croissant import croissant_metadata, validate_croissant
from medmat_builder.publish.hub import (
    RESTRICTED_MODES,
    LeakError,
    PlannedFile,
    PublishError,
    PublishPlan,
    audit_payload,
    plan_publish,
    publish,
    save_payload,
)
from medmat_builder.publish.licenses import license_table, license_terms
from medmat_builder.publish.lmms_task import export_tasks, task_name
from medmat_builder.publish.metadata import METADATA_FILES, write_export_metadata

__all__ = [
    "METADATA_FILES",
    "RESTRICTED_MODES",
    "LeakError",
    "PlannedFile",
    "PublishError",
    "PublishPlan",
    "Publication",
    "audit_payload",
    "croissant_metadata",
    "export_tasks",
    "license_table",
    "license_terms",
    "plan_publish",
    "publish",
    "render_card",
    "render_readme",
    "save_payload",
    "task_name",
    "validate_croissant",
    "write_export_metadata",
]
