"""Describe and ship an export: the dataset card, ``licenses.csv``, Croissant metadata, the license-gated
Hub upload, and lmms-eval task files."""

from typing import TYPE_CHECKING

from medmat_builder.lazy import lazy_exports

if TYPE_CHECKING:
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

#: Where each name lives: imported on first use, so that importing one module of the package (the
#: command line reading its options) does not import them all.
_EXPORTS = {
    "render_card": "medmat_builder.publish.card",
    "render_readme": "medmat_builder.publish.card",
    "Publication": "medmat_builder.publish.card_body",
    "croissant_metadata": "medmat_builder.publish.croissant",
    "validate_croissant": "medmat_builder.publish.croissant",
    "RESTRICTED_MODES": "medmat_builder.publish.hub",
    "LeakError": "medmat_builder.publish.hub",
    "PlannedFile": "medmat_builder.publish.hub",
    "PublishError": "medmat_builder.publish.hub",
    "PublishPlan": "medmat_builder.publish.hub",
    "audit_payload": "medmat_builder.publish.hub",
    "plan_publish": "medmat_builder.publish.hub",
    "publish": "medmat_builder.publish.hub",
    "save_payload": "medmat_builder.publish.hub",
    "license_table": "medmat_builder.publish.licenses",
    "license_terms": "medmat_builder.publish.licenses",
    "export_tasks": "medmat_builder.publish.lmms_task",
    "task_name": "medmat_builder.publish.lmms_task",
    "METADATA_FILES": "medmat_builder.publish.metadata",
    "write_export_metadata": "medmat_builder.publish.metadata",
}

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


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
