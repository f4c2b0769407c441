"""A training run: check the output folder, prepare the data, set up TRL's ``SFTTrainer``, train, save.

:func:`train` is what ``training/sft.py``, ``medmat train`` and ``python -m medmat_builder.train``
run (through :func:`main`); one process or many, DDP or DeepSpeed: the launcher decides.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medmat_builder.train.data import build_train_dataset
from medmat_builder.train.model import ensure_tiny_model, freeze_vision, model_init_kwargs

if TYPE_CHECKING:  # pragma: no cover
    from trl import ModelConfig, SFTConfig, SFTTrainer

    from medmat_builder.train.arguments import MedmatScriptArguments

logger = logging.getLogger("medmat.train")

#: Written into ``--output_dir``: what the run trained on (configs, counts, target, guard, world size).
DATA_MANIFEST = "medmat_training_data.json"


def apply_global_batch_size(script_args: MedmatScriptArguments, training_args: SFTConfig) -> None:
    """Derive gradient accumulation so that the global batch is ``--global_batch_size`` on any world size."""
    if not script_args.global_batch_size:
        return
    per_step = training_args.per_device_train_batch_size * training_args.world_size
    if script_args.global_batch_size % per_step:
        raise SystemExit(
            f"--global_batch_size {script_args.global_batch_size} is not a multiple of per_device_train_batch_size "
            f"({training_args.per_device_train_batch_size}) x processes ({training_args.world_size}); change one."
        )
    training_args.gradient_accumulation_steps = script_args.global_batch_size // per_step
    if getattr(training_args, "hf_deepspeed_config", None) is not None:  # --deepspeed JSON: refresh its "auto"s
        training_args.hf_deepspeed_config.trainer_config_process(training_args)


def claim_output_dir(script_args: MedmatScriptArguments, training_args: SFTConfig) -> None:
    """Refuse an ``--output_dir`` medmat may not write into (exit 2); else mark it as a training folder.

    It must be new, empty or an earlier training output (see ``medmat_builder.safe_paths``), so the
    Trainer's checkpoint rotation can only ever delete checkpoints of its own.
    """
    from medmat_builder.safe_paths import UnsafePathError, check_output_dir, claim

    keep_clear = [("the dataset", script_args.dataset_name)] if script_args.dataset_name and \
        Path(script_args.dataset_name).exists() else []
    try:  # every process checks before any writes, so all of them stop together
        check_output_dir(training_args.output_dir, "training", label="--output_dir", keep_clear=keep_clear)
    except UnsafePathError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    from accelerate import PartialState

    PartialState().wait_for_everyone()  # no process claims (writes .medmat) before every process has checked
    with training_args.main_process_first(desc="claim --output_dir", local=False):
        if training_args.process_index == 0:
            claim(training_args.output_dir, "training", label="--output_dir", keep_clear=keep_clear)


def _resume_arg(training_args: SFTConfig) -> str | bool | None:
    value = training_args.resume_from_checkpoint
    if isinstance(value, str) and value.lower() in {"true", "last", "latest"}:
        return True
    return value


def _warn_if_no_master_weights(trainer: SFTTrainer, model_args: ModelConfig, training_args: SFTConfig) -> None:
    if (model_args.dtype in ("bfloat16", "float16") and not model_args.use_peft
            and not getattr(trainer, "is_deepspeed_enabled", False)):
        logger.warning(
            "Full fine-tuning with %s weights and no DeepSpeed keeps no fp32 master copy: small updates (lr %.0e) "
            "are lost to rounding. Launch with a DeepSpeed config (training/accelerate/deepspeed_zero*.yaml), "
            "use --dtype float32, or train LoRA adapters (--use_peft).", model_args.dtype, training_args.learning_rate)


def make_trainer(
    script_args: MedmatScriptArguments, training_args: SFTConfig, model_args: ModelConfig
) -> tuple[SFTTrainer, dict[str, Any]]:
    """Everything before ``trainer.train()``: checks, data, model, ``SFTTrainer``; returns it and the manifest."""
    from trl import SFTTrainer, get_peft_config, get_quantization_config

    if not model_args.model_name_or_path:
        raise SystemExit("Pass --model_name_or_path (a Hub id or a folder), or use a recipe: --config FILE.yaml.")
    claim_output_dir(script_args, training_args)
    ensure_tiny_model(script_args, model_args, training_args)
    apply_global_batch_size(script_args, training_args)
    if training_args.completion_only_loss is None:
        training_args.completion_only_loss = True
    training_args.model_init_kwargs = model_init_kwargs(model_args, training_args)

    with training_args.main_process_first(desc="prepare Med-MAT training data"):
        train_set, manifest = build_train_dataset(script_args, training_args.data_seed or training_args.seed)
    trainer = SFTTrainer(
        model=model_args.model_name_or_path,
        args=training_args,
        train_dataset=train_set.select_columns(["image", "prompt", "completion"]),
        peft_config=get_peft_config(model_args),
        quantization_config=get_quantization_config(model_args),
    )
    _warn_if_no_master_weights(trainer, model_args, training_args)
    if script_args.freeze_vision_tower and not model_args.use_peft:
        logger.info("Froze %d vision-encoder tensors.", freeze_vision(trainer.model))
    dist_type = trainer.accelerator.distributed_type
    manifest.update(world_size=training_args.world_size,
                    gradient_accumulation_steps=training_args.gradient_accumulation_steps,
                    distributed_type=getattr(dist_type, "value", str(dist_type)))
    return trainer, manifest


def train(script_args: MedmatScriptArguments, training_args: SFTConfig, model_args: ModelConfig) -> SFTTrainer:
    """Train and save; returns the trainer (its ``state.log_history`` has the losses)."""
    level = logging.INFO if training_args.process_index == 0 else logging.WARNING
    logging.basicConfig(level=level)
    logger.setLevel(level)  # also under `medmat train`, whose logging is set up already
    trainer, manifest = make_trainer(script_args, training_args, model_args)
    if trainer.is_world_process_zero():
        out = Path(training_args.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / DATA_MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        logger.info("Training on %d records: %s", manifest["total"], manifest["records"])

    trainer.train(resume_from_checkpoint=_resume_arg(training_args))
    trainer.save_model(training_args.output_dir)
    if training_args.push_to_hub:
        trainer.push_to_hub(dataset_name=script_args.dataset_name)
    if hasattr(trainer, "end"):
        trainer.end()
    return trainer


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Parse ``argv`` (flags and ``--config FILE.yaml``), train, save; 0 on success."""
    from medmat_builder.train.arguments import parse_args

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    train(*parse_args(argv, prog))
    return 0
