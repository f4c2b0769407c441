"""``python -m medmat_builder.evaluate.experiments``: the same as ``eval/experiment.py`` (see :mod:`.cli`)."""

from medmat_builder.scripts import run_script
from medmat_builder.evaluate.experiments.cli import main

if __name__ == "__main__":
    run_script(lambda: main(prog="python -m medmat_builder.evaluate.experiments"))
