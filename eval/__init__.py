"""Evaluation of vision-language models on Med-MAT configs, and compositional-generalization reports.

Modules: :mod:`eval.parsing` (answer letters), :mod:`eval.grounding` (box answers and IoU matching),
:mod:`eval.stats` (intervals, reference levels, paired tests), :mod:`eval.scoring` (prediction
records and their tally), :mod:`eval.items` (test items, circular rotations), :mod:`eval.runner`
(generate / likelihood scoring, sharding), :mod:`eval.evaluate` (CLI), :mod:`eval.experiment`
(spec -> planner -> training -> evaluation), :mod:`eval.report` (tables from result files),
:mod:`eval.plots` (figures), :mod:`eval.lmms_hooks` (lmms-eval task hooks, see ``medmat export-task``),
:mod:`eval.testing` (tiny fixtures).
"""
