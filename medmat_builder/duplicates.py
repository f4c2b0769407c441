"""Transitional alias of medmat_builder.images: eval/, training/ and their tests still import this old path.

Delete it once they import from the new place (the old -> new module map is in docs/architecture.md).
"""

from medmat_builder.images import DuplicateIndex, NearDuplicateRule

__all__ = ["DuplicateIndex", "NearDuplicateRule"]
