"""Supervised fine-tuning of vision-language models on Med-MAT configs and planner mixtures, with TRL.

One job per module:

- :mod:`.arguments`: :class:`MedmatScriptArguments` beside TRL's ``SFTConfig`` / ``ModelConfig``, parsed
  by ``trl.TrlParser`` (flags and ``--config FILE.yaml``);
- :mod:`.mixtures`: a planner mixture (name or file) as (config, samples) pairs and a target;
- :mod:`.data`: records in TRL's prompt/completion form, the general MCQ mix-in, the training set;
- :mod:`.leakage`: the guard that keeps the target's test records and subjects out of training;
- :mod:`.model`: the tiny model for demos, model loading arguments, freezing the vision encoder;
- :mod:`.trainer`: the output-folder check, the ``SFTTrainer`` set-up, :func:`train` and :func:`main`.

``training/sft.py``, ``medmat train`` and ``python -m medmat_builder.train`` all run :func:`main`.
The names below are imported on first use, so ``import medmat_builder.train.leakage`` does not
import TRL.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "MedmatScriptArguments": "arguments", "make_parser": "arguments", "parse_args": "arguments",
    "MixturePlan": "mixtures", "resolve_mixture": "mixtures",
    "build_train_dataset": "data", "load_split": "data", "to_prompt_completion": "data",
    "LeakageReport": "leakage", "drop_target_test_records": "leakage",
    "freeze_vision": "model",
    "DATA_MANIFEST": "trainer", "apply_global_batch_size": "trainer", "claim_output_dir": "trainer",
    "make_trainer": "trainer", "train": "trainer", "main": "trainer",
}
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # pragma: no cover
    from .arguments import MedmatScriptArguments, make_parser, parse_args
    from .data import build_train_dataset, load_split, to_prompt_completion
    from .leakage import LeakageReport, drop_target_test_records
    from .mixtures import MixturePlan, resolve_mixture
    from .model import freeze_vision
    from .trainer import DATA_MANIFEST, apply_global_batch_size, claim_output_dir, main, make_trainer, train


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
