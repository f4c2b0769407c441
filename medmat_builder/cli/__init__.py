"""The ``medmat`` command line: ``sources``, ``build``, ``audit``, ``plan``, ``fetch``, ``publish``, ``tiny-model``,
``export-task``; each a thin module over the packages below it (:mod:`~medmat_builder.cli.main` wires them up)."""

from medmat_builder.cli.main import COMMANDS, main, make_parser, release_arrow_threads, run_script

__all__ = ["COMMANDS", "main", "make_parser", "release_arrow_threads", "run_script"]
