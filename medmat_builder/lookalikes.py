"""Transitional alias of medmat_builder.images.lookalikes: eval/, training/ and their tests still import this old path.

Delete it once they import from the new place (the old -> new module map is in docs/architecture.md).
"""

from medmat_builder.images.lookalikes import lookalike_copy, lookalike_pixels, lookalike_scan

__all__ = ["lookalike_copy", "lookalike_pixels", "lookalike_scan"]
