"""The experiment runner's parts: one job per module.

:mod:`~eval.experiments.spec` (the YAML spec, placeholders, paths), :mod:`~eval.experiments.plan`
(spec -> distinct trainings, evaluations and table cells; pure), :mod:`~eval.experiments.jobs`
(completion markers, local execution, job scripts), :mod:`~eval.experiments.cost` (dry-run pricing
and calibration), :mod:`~eval.experiments.export` (Slurm array jobs, plain command lists),
:mod:`~eval.experiments.collect` (the report step: finished results and what is missing).
``eval/experiment.py`` is the command line over them.
"""
