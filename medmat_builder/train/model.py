"""The model side of a run: the tiny model for demos, how the model is loaded, freezing the vision encoder."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from trl import ModelConfig, SFTConfig

    from medmat_builder.train.arguments import MedmatScriptArguments

#: Name parts of the vision encoder's parameters in the supported architectures.
VISION_PARAM_MARKERS = ("vision_tower.", "vision_model.", "visual.", "vision_encoder.")


def ensure_tiny_model(script_args: MedmatScriptArguments, model_args: ModelConfig, training_args: SFTConfig) -> None:
    """Create the tiny model at ``--model_name_or_path`` if asked to and it is not there (main process only)."""
    if not script_args.tiny_model_arch:
        return
    path = Path(model_args.model_name_or_path)
    with training_args.main_process_first(desc="create tiny model"):
        if not (path / "config.json").is_file():
            from medmat_builder.tiny_models import create_tiny_model

            create_tiny_model(script_args.tiny_model_arch, path, seed=0)


def model_init_kwargs(model_args: ModelConfig, training_args: SFTConfig) -> dict[str, Any]:
    """What ``SFTTrainer`` passes to ``from_pretrained``: the model arguments, then ``--model_init_kwargs``."""
    return {
        "revision": model_args.model_revision,
        "trust_remote_code": training_args.trust_remote_code,
        "attn_implementation": model_args.attn_implementation,
        "dtype": model_args.dtype,
        **(training_args.model_init_kwargs or {}),
    }


def freeze_vision(model: Any) -> int:
    """Freeze the vision encoder's parameters; returns how many tensors were frozen."""
    frozen = 0
    for name, param in model.named_parameters():
        if any(marker in name for marker in VISION_PARAM_MARKERS):
            param.requires_grad_(False)
            frozen += 1
    return frozen
