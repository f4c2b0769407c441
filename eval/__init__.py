"""Evaluation of vision-language models on Med-MAT configs, and compositional-generalization reports.

Modules: :mod:`eval.parsing` (answer letters), :mod:`eval.scoring` (prediction records and their
tally), :mod:`eval.items` (test items), :mod:`eval.runner` (generate / likelihood scoring, sharding),
:mod:`eval.evaluate` (CLI), :mod:`eval.experiment` (spec -> planner -> training -> evaluation),
:mod:`eval.report` (tables and plots from result files), :mod:`eval.testing` (tiny fixtures).
"""
