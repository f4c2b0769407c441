"""Evaluation of vision-language models on Med-MAT configs, and compositional-generalization reports.

One job per module:

- :mod:`.parsing`: the option letter of a free-text answer (imports nothing of medmat);
- :mod:`.grounding`: box answers in every box style and their IoU matching (imports nothing of medmat);
- :mod:`.stats`: intervals, reference levels, paired tests;
- :mod:`.items`: the test items of a config, circular rotations;
- :mod:`.runner`: scoring with a model (generate / likelihood), sharding over processes;
- :mod:`.scoring`: prediction records and their tally into ``results.json``;
- :mod:`.cli`: the evaluation command (``eval/evaluate.py``, ``medmat eval``, ``python -m medmat_builder.evaluate``);
- :mod:`.report` and :mod:`.plots`: tables and figures of experiment folders, from result files alone;
- :mod:`.experiments`: spec -> planner -> training -> evaluation -> table (``eval/experiment.py``);
- :mod:`.lmms_hooks`: lmms-eval task hooks (shipped by ``medmat export-task`` with the two parsers);
- :mod:`.testing`: a tiny random model and a tiny export for tests and benchmarks.

Importing this package imports no model library; :mod:`.runner` loads torch and transformers when
it scores.
"""
