"""Transitional alias of medmat_builder.build.boxes and medmat_builder.records: eval/, training/ and their tests still import this old path.

Delete it once they import from the new place (the old -> new module map is in docs/architecture.md).
"""

from medmat_builder.build.boxes import format_box_answer, normalize_boxes, resolve_boxes
from medmat_builder.records import NO_BOX_ANSWER, SCALE

__all__ = ["NO_BOX_ANSWER", "SCALE", "format_box_answer", "normalize_boxes", "resolve_boxes"]
