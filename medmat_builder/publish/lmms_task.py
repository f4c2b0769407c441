"""Export medmat configs as lmms-eval tasks (``medmat export-task``).

For each config, ``OUT/medmat_<config>.yaml`` names the data (a local export folder or a Hub dataset
id, the config, the split), the hooks (image, prompt, target) and the metrics; the hooks file
``medmat_hooks.py`` (a copy of :mod:`medmat_builder.evaluate.lmms_hooks`) scores answers with copies
of medmat's deterministic parsers (:mod:`medmat_builder.evaluate.parsing` and
:mod:`~medmat_builder.evaluate.grounding`, read from the installed package with
``importlib.resources``, so a wheel exports as a checkout does), and the folder runs wherever
lmms-eval runs::

    medmat export-task subset_28 subset_38 --dataset ./medmat --out lmms_tasks
    python -m lmms_eval --model llava_hf --model_args pretrained=llava-hf/llava-1.5-7b-hf \\
        --include_path lmms_tasks --tasks medmat_subset_28,medmat_subset_38 --output_path runs/lmms

Multiple-choice configs report ``accuracy`` and ``unparseable``; grounding configs (detection and
segmentation subsets) ``accuracy_iou50``, ``mean_iou``, ``precision``, ``recall`` and ``unparseable``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path

from medmat_builder.registry import Registry, load_registry

#: The package whose modules are shipped beside the tasks, and the names they get there.
HOOKS_PACKAGE = "medmat_builder.evaluate"
HOOKS = {"lmms_hooks.py": "medmat_hooks.py", "parsing.py": "medmat_parsing.py", "grounding.py": "medmat_grounding.py"}
GROUNDING_KINDS = ("detection", "segmentation")
MAX_NEW_TOKENS = {"choice": 16, "grounding": 128}

_CHOICE_METRICS = """\
process_results: !function medmat_hooks.process_choice
metric_list:
  - metric: accuracy
    aggregation: mean
    higher_is_better: true
  - metric: unparseable
    aggregation: !function medmat_hooks.total
    higher_is_better: false
"""
_GROUNDING_METRICS = """\
process_results: !function medmat_hooks.process_grounding
metric_list:
  - metric: accuracy_iou50
    aggregation: mean
    higher_is_better: true
  - metric: mean_iou
    aggregation: !function medmat_hooks.ratio
    higher_is_better: true
  - metric: precision
    aggregation: !function medmat_hooks.ratio
    higher_is_better: true
  - metric: recall
    aggregation: !function medmat_hooks.ratio
    higher_is_better: true
  - metric: unparseable
    aggregation: !function medmat_hooks.total
    higher_is_better: false
"""


def task_name(config: str) -> str:
    """The lmms-eval task name of a config: ``medmat_subset_28``."""
    return f"medmat_{config}"


def task_kind(config: str, registry: Registry) -> str:
    """``choice`` for classification subsets, ``grounding`` for detection/segmentation ones."""
    subsets = {s.name: s for s in registry.subsets}
    if config not in subsets:
        registry.subset(config)  # an unknown name: UnknownNameError naming the closest configs
        raise ValueError(f"{config!r} is not a config name; give subset_NN (`medmat sources list`)")
    return "grounding" if subsets[config].kind in GROUNDING_KINDS else "choice"


def dataset_reference(dataset: str) -> str:
    """An existing local folder as an absolute path (lmms-eval may run elsewhere), else the Hub id as given."""
    path = Path(dataset).expanduser()
    return str(path.resolve()) if path.exists() else dataset


def task_yaml(config: str, kind: str, dataset: str, split: str = "test", max_new_tokens: int | None = None) -> str:
    """The text of one task YAML (lmms-eval's ``!function`` tags, so written as text)."""
    q = json.dumps
    head = (
        f"# lmms-eval task for medmat config {config} ({kind}), written by `medmat export-task`.\n"
        "# Scored by medmat's deterministic parsers (medmat_parsing.py / medmat_grounding.py beside this file).\n"
        f"task: {task_name(config)}\n"
        "tag: [medmat]\n"
        f"dataset_path: {q(dataset)}\n"
        f"dataset_name: {q(config)}\n"
        f"test_split: {q(split)}\n"
        "output_type: generate_until\n"
        "doc_to_visual: !function medmat_hooks.doc_to_visual\n"
        "doc_to_text: !function medmat_hooks.doc_to_text\n"
        "doc_to_target: !function medmat_hooks.doc_to_target\n"
        "generation_kwargs:\n"
        f"  max_new_tokens: {max_new_tokens or MAX_NEW_TOKENS[kind]}\n"
        "  temperature: 0\n"
        "  do_sample: false\n"
    )
    return head + (_GROUNDING_METRICS if kind == "grounding" else _CHOICE_METRICS) + "metadata:\n  - version: 1.0\n"


def export_tasks(
    configs: Sequence[str], dataset: str, out: str | Path, split: str = "test", max_new_tokens: int | None = None,
    registry: Registry | None = None,
) -> list[Path]:
    """Write one task YAML per config and the hooks into ``out``; return the YAML paths."""
    registry = registry or load_registry()
    kinds = {c: task_kind(c, registry) for c in configs}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    package = files(HOOKS_PACKAGE)
    for src, dst in HOOKS.items():
        (out / dst).write_bytes(package.joinpath(src).read_bytes())
    ref = dataset_reference(dataset)
    written = []
    for config, kind in kinds.items():
        path = out / f"{task_name(config)}.yaml"
        path.write_text(task_yaml(config, kind, ref, split, max_new_tokens))
        written.append(path)
    return written
