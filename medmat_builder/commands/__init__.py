"""Subcommands of the ``medmat`` CLI; each module exposes ``add_parser(subparsers)`` and ``run(args)``."""
