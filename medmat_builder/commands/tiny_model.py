"""Transitional alias of medmat_builder.cli.tiny_model: eval/, training/ and their tests still import this old path.

Delete it once they import from the new place (the old -> new module map is in docs/architecture.md).
"""

from medmat_builder.cli.tiny_model import add_parser, run

__all__ = ["add_parser", "run"]
