"""The arguments of a training run: TRL's ``SFTConfig`` and ``ModelConfig`` plus :class:`MedmatScriptArguments`.

Parsed by ``trl.TrlParser`` as TRL's own ``trl/scripts/sft.py`` does: flags, and ``--config FILE.yaml``
whose values are defaults that flags override (shown in ``--help``, unlike TRL's own scripts).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from trl import ModelConfig, ScriptArguments, SFTConfig, TrlParser

CONFIG_HELP = ("YAML file of argument defaults, e.g. a recipe (training/recipes/tiny_cpu.yaml); "
               "flags given on the command line override it")
DESCRIPTION = ("Fine-tune a vision-language model on Med-MAT configs (--train_configs) or a planner mixture "
               "(--mixture) of an export (--dataset_name). --config FILE.yaml: " + CONFIG_HELP + ". "
               "The flags below are medmat's data arguments, then TRL's SFTConfig and ModelConfig; "
               "see docs/training.md.")


@dataclass
class MedmatScriptArguments(ScriptArguments):
    """Data and run arguments on top of TRL's ``ScriptArguments`` (``--dataset_name`` etc.)."""

    train_configs: list[str] | None = field(
        default=None,
        metadata={"help": "Configs to train on, e.g. `--train_configs subset_25 subset_26` (train split of each)."},
    )
    mixture: str | None = field(
        default=None,
        metadata={"help": "A planner mixture: a name such as `related:subset_28` or a file from `medmat plan --out`."},
    )
    samples_per_config: int | None = field(
        default=None,
        metadata={"help": "With --train_configs: at most this many records per config (seeded sample). Default: all."},
    )
    general_mcq_dataset: str | None = field(
        default=None,
        metadata={
            "help": "Optional general multiple-choice VQA dataset mixed in (the paper adds ImageWikiQA against "
            "option-count bias): a local folder, a parquet/json file or a Hub id with `image`, `question` and "
            "`answer` columns (and optionally `options`)."
        },
    )
    general_mcq_config: str | None = field(default=None, metadata={"help": "Config name of --general_mcq_dataset."})
    general_mcq_split: str = field(default="train", metadata={"help": "Split of --general_mcq_dataset."})
    general_mcq_samples: int | None = field(
        default=None, metadata={"help": "Records drawn from --general_mcq_dataset (seeded). Default: all."}
    )
    global_batch_size: int | None = field(
        default=None,
        metadata={
            "help": "Total batch per optimizer step across all processes. When set, gradient_accumulation_steps is "
            "derived as global_batch_size / (per_device_train_batch_size * world_size) (the paper: 32)."
        },
    )
    freeze_vision_tower: bool = field(
        default=False, metadata={"help": "Keep the vision encoder frozen (train projector + language model)."}
    )
    tiny_model_arch: str | None = field(
        default=None,
        metadata={
            "help": "If set (llava, idefics3, qwen2_vl) and --model_name_or_path does not exist yet, create a tiny "
            "random model of that architecture there first (no download). For demos and tests."
        },
    )
    target: str | None = field(
        default=None,
        metadata={
            "help": "The config whose test split training must never see (e.g. subset_28). Defaults to the "
            "mixture's target; set it with --train_configs to get the same guard."
        },
    )
    leakage_check: bool = field(
        default=True,
        metadata={"help": "Drop training records that share an id, an image or a subject (`group`) with a record "
                          "of the target's test split (--no_leakage_check turns it off)."},
    )


def make_parser(prog: str | None = None) -> TrlParser:
    """The ``TrlParser`` over (MedmatScriptArguments, SFTConfig, ModelConfig), ``--config`` in its help."""
    parser = TrlParser((MedmatScriptArguments, SFTConfig, ModelConfig), prog=prog, description=DESCRIPTION)
    # TrlParser reads `--config FILE` itself before argparse runs; declared here for --help only
    parser.add_argument("--config", metavar="FILE.yaml", default=argparse.SUPPRESS, help=CONFIG_HELP)
    return parser


def parse_args(
    argv: Sequence[str] | None = None, prog: str | None = None
) -> tuple[MedmatScriptArguments, SFTConfig, ModelConfig]:
    """Parse flags and ``--config FILE.yaml`` (``--config=FILE.yaml`` too) into the three argument objects."""
    args: list[str] = []
    for word in sys.argv[1:] if argv is None else argv:
        args += word.split("=", 1) if word.startswith("--config=") else [word]
    script_args, training_args, model_args = make_parser(prog).parse_args_and_config(args)
    return script_args, training_args, model_args
