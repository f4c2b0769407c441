"""Transitional alias of medmat_builder.records: eval/, training/ and their tests still import this old path.

Delete it once they import from the new place (the old -> new module map is in docs/architecture.md).
"""

from medmat_builder.records import ANSWER_DIRECTIVE, BOX_DIRECTIVE, LETTERS

__all__ = ["ANSWER_DIRECTIVE", "BOX_DIRECTIVE", "LETTERS"]
