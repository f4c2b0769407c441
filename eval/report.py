"""Tables and plots of a compositional-generalization experiment folder, from its result files alone.

    python eval/report.py runs/demo-micro-cg [--out DIR] [--alpha 0.05]

The logic is :mod:`medmat_builder.evaluate.report`; ``python -m medmat_builder.evaluate.report ...``
runs the same from an installed package. See docs/eval.md.
"""

from medmat_builder.scripts import run_script
from medmat_builder.evaluate.report import main

if __name__ == "__main__":
    run_script(lambda: main(prog="eval/report.py"))
