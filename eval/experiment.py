"""Run, price or export a compositional-generalization experiment from one spec.

    python eval/experiment.py eval/specs/demo_micro_cg.yaml --output_dir runs/demo-micro-cg
    python eval/experiment.py SPEC --set ... --dry_run        # what it costs; writes nothing
    python eval/experiment.py SPEC --set ... --output_dir OUT --export slurm|commands
    python eval/experiment.py OUT/spec.yaml --output_dir OUT --collect

The logic is :mod:`medmat_builder.evaluate.experiments`; ``python -m
medmat_builder.evaluate.experiments ...`` runs the same from an installed package. Flags: ``--help``
and docs/eval.md.
"""

from medmat_builder.scripts import run_script
from medmat_builder.evaluate.experiments.cli import main

if __name__ == "__main__":
    run_script(lambda: main(prog="eval/experiment.py"))
