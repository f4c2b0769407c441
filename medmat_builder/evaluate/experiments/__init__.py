"""The experiment runner's parts: one job per module.

:mod:`.spec` (the spec's pydantic models), :mod:`.spec_file` (reading a spec file: placeholders,
``--set`` overrides, paths), :mod:`.plan` (spec -> distinct trainings, evaluations and table cells;
pure), :mod:`.jobs` (completion markers, launchers, local execution, job scripts), :mod:`.cost`
(dry-run pricing and calibration), :mod:`.export` (Slurm array jobs, plain command lists),
:mod:`.collect` (the report step: finished results and what is missing), :mod:`.cli` (the command
line of ``eval/experiment.py`` and ``python -m medmat_builder.evaluate.experiments``).
"""
