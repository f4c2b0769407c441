"""Supervised fine-tuning of vision-language models on Med-MAT configs and mixtures, with TRL.

One script for one GPU, many GPUs, many nodes and DeepSpeed: the launcher decides, the script does not.

    # a recipe (paper settings) on the configs you name
    accelerate launch --config_file training/accelerate/multi_gpu.yaml training/sft.py \\
        --config training/recipes/llava15_7b.yaml --dataset_name ./medmat \\
        --train_configs subset_25 subset_26 --output_dir runs/llava-25-26

    # a planner mixture by name (or by the file `medmat plan --out` wrote)
    accelerate launch training/sft.py --config training/recipes/qwen2vl_7b.yaml \\
        --dataset_name ./medmat --mixture related:subset_28

    # seconds on a CPU, with a tiny model created on the fly
    python training/sft.py --config training/recipes/tiny_cpu.yaml

Arguments are TRL's (``SFTConfig``, ``ModelConfig``, ``ScriptArguments``) plus the data arguments of
:class:`MedmatScriptArguments`; ``--config FILE.yaml`` sets defaults that flags override.

Data. ``--dataset_name`` is a folder written by ``medmat build`` or a Hub dataset id; the data are
``--train_configs`` (or one ``--dataset_config``) or a ``--mixture``, which takes precedence over a
recipe's ``train_configs``. Only the ``train`` split of each named config is read. Every record
becomes TRL's vision-language prompt/completion form::

    {"image": <PIL.Image>, "prompt": [{"role": "user", "content": question}],
     "completion": [{"role": "assistant", "content": answer}]}

and the loss is computed on the completion only (the answer letter, or the box text for detection).
With ``--mixture`` (or ``--target`` beside ``--train_configs``), the records of the target's ``test``
split can never enter training:
training records with a target test record's id or decoded pixels, or that are near duplicates of
one by the builder's rule (perceptual hash close and thumbnails confirming,
:mod:`medmat_builder.duplicates`), are dropped and counted.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from trl import ModelConfig, ScriptArguments, SFTConfig, SFTTrainer, TrlParser, get_peft_config, get_quantization_config

logger = logging.getLogger("medmat.sft")
REPO_ROOT = Path(__file__).resolve().parent.parent
if importlib.util.find_spec("medmat_builder") is None:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(REPO_ROOT))

ANSWER_DIRECTIVE = "Answer with the option's letter from the given choices directly."
LETTERS = "ABCDEFGHIJ"
VISION_PARAM_MARKERS = ("vision_tower.", "vision_model.", "visual.", "vision_encoder.")
DATA_MANIFEST = "medmat_training_data.json"


# --------------------------------------------------------------------------------------------------
# Arguments
# --------------------------------------------------------------------------------------------------


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
        metadata={"help": "Drop training records equal (id, pixels) to, or near duplicates of, a record of the target's test split."},
    )


# --------------------------------------------------------------------------------------------------
# Mixtures
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MixturePlan:
    """What training needs of a planner mixture: the target and (config, samples) pairs."""

    target: str | None
    configs: list[tuple[str, int | None]]
    seed: int | None = None


def resolve_mixture(spec: str, dataset_name: str | None = None) -> MixturePlan:
    """Turn ``related:subset_28`` or a mixture file into a :class:`MixturePlan` via the planner.

    When ``dataset_name`` is a local export with a ``build_report.json``, a mixture *name* is planned
    with that build's training counts as caps (as the experiment runner does), so configs that hold
    fewer records than the default allocation do not silently shrink the mixture's volume.
    """
    from medmat_builder.planner import caps_from_build_report
    from medmat_builder.planner import resolve_mixture as plan_mixture

    options: dict[str, Any] = {}  # a mixture file ignores them: it is read as written
    ledger = Path(dataset_name) / "build_report.json" if dataset_name else None
    if ledger is not None and ledger.is_file():
        options["caps"] = caps_from_build_report(ledger)
    try:
        mix = plan_mixture(spec, **options)
    except (ValueError, OSError) as err:  # PlannerError is a ValueError; its messages say what to do
        raise SystemExit(f"--mixture {spec!r}: {err}") from err
    return MixturePlan(target=mix.target, configs=[(e.config, e.samples) for e in mix.configs], seed=mix.seed)


# --------------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------------


def to_prompt_completion(question: str, answer: str) -> dict[str, list[dict[str, str]]]:
    """One Med-MAT record as TRL's conversational prompt/completion pair (the image goes alongside)."""
    return {
        "prompt": [{"role": "user", "content": question}],
        "completion": [{"role": "assistant", "content": answer}],
    }


def _format_batch(question: list[str], answer: list[str]) -> dict[str, list]:
    pairs = [to_prompt_completion(q, a) for q, a in zip(question, answer, strict=True)]
    return {"prompt": [p["prompt"] for p in pairs], "completion": [p["completion"] for p in pairs]}


def load_split(dataset_name: str, config: str | None, split: str):
    """Load one split of one config from an export folder, a data file, or the Hub (never a stale cache)."""
    from medmat_builder.loading import load_split as _load

    try:
        return _load(dataset_name, config, split)
    except ValueError as err:
        if "BuilderConfig" in str(err) or "not found" in str(err).lower():
            raise SystemExit(
                f"Config {config!r} is not in {dataset_name}. Build it first (`medmat build {config} --out "
                f"{dataset_name}`) or check the name (subset_01 .. subset_53). Details: {err}"
            ) from err
        if str(err).startswith("cannot read"):
            raise SystemExit(str(err)) from err
        raise


def _sample(ds, n: int | None, seed: int, what: str):
    if n is None or n >= len(ds):
        if n is not None and n > len(ds):
            logger.warning("%s has %d records, fewer than the %d asked for; using all of them.", what, len(ds), n)
        return ds
    return ds.shuffle(seed=seed).select(range(n))


def _to_training_form(ds, config: str | None):
    """Keep image + prompt/completion (+ id and config for bookkeeping)."""
    from datasets import Image

    missing = {"image", "question", "answer"} - set(ds.column_names)
    if missing:
        raise SystemExit(f"Dataset for {config!r} lacks columns {sorted(missing)}; is it a Med-MAT export?")
    if "id" not in ds.column_names:
        ds = ds.add_column("id", [f"{config}-{i}" for i in range(len(ds))])
    ds = ds.select_columns(["id", "image", "question", "answer"])
    qa = ["question", "answer"]
    ds = ds.map(_format_batch, batched=True, input_columns=qa, remove_columns=qa)
    ds = ds.add_column("config", [config or "general"] * len(ds))
    return ds.cast_column("image", Image(mode="RGB"))


def _letter_question(example: dict[str, Any]) -> dict[str, str]:
    """Bring a general MCQ record to the Med-MAT question/answer form (lettered options, letter answer)."""
    question, answer = str(example["question"]), str(example["answer"]).strip()
    options = list(example.get("options") or [])
    if options and "\nA. " not in question:
        question = question + "\n" + "\n".join(f"{LETTERS[i]}. {o}" for i, o in enumerate(options))
        question += "\n" + ANSWER_DIRECTIVE
    if options and answer not in LETTERS[: len(options)] and answer in options:
        answer = LETTERS[options.index(answer)]
    return {"question": question, "answer": answer}


def load_general_mcq(args: MedmatScriptArguments, seed: int):
    """The optional general multiple-choice VQA mix-in, in training form."""
    ds = load_split(args.general_mcq_dataset, args.general_mcq_config, args.general_mcq_split)
    ds = _sample(ds, args.general_mcq_samples, seed, f"general MCQ dataset {args.general_mcq_dataset}")
    extra = [c for c in ds.column_names if c not in {"image", "question", "answer", "options", "id"}]
    ds = ds.map(_letter_question, remove_columns=extra + (["options"] if "options" in ds.column_names else []))
    return _to_training_form(ds, "general")


def _image_keys(ds) -> tuple[list[str], np.ndarray, list[bytes | None], list[int]]:
    """Decoded-pixel hash, 64-bit perceptual hash, grey thumbnail and shorter side of every image (the
    builder's dedup keys); an unreadable image has a hash of its file bytes and no thumbnail."""
    from datasets import Image

    from medmat_builder.images import ImageError, load_image_bytes

    raw = ds.cast_column("image", Image(decode=False))
    pixels: list[str] = []
    phashes = np.zeros(len(raw), dtype=np.uint64)
    thumbs: list[bytes | None] = []
    sides: list[int] = []
    for i, item in enumerate(raw["image"]):
        data = item.get("bytes")
        if data is None and item.get("path"):
            data = Path(item["path"]).read_bytes()
        try:
            img = load_image_bytes(data or b"", name=f"record {i}")
            pixels.append(img.pixel_hash)
            phashes[i] = np.uint64(img.phash)
            thumbs.append(img.thumbnail)
            sides.append(min(img.width, img.height))
        except ImageError:  # unreadable: compare by file bytes only
            pixels.append("file:" + hashlib.sha256(data or b"").hexdigest())
            thumbs.append(None)
            sides.append(0)
    return pixels, phashes, thumbs, sides


def drop_target_test_records(train, dataset_name: str, target: str):
    """Remove training records that are, or look like, a record of ``target``'s test split.

    A record is removed when it has the same id or the same decoded pixels as a test image, or is a
    near duplicate of one by the builder's rule (:class:`medmat_builder.duplicates.DuplicateIndex`:
    re-encoded or resized copies, e.g. the same image shipped by two sources of different subsets;
    another patient's look-alike scan is not one). Returns ``(train, n_dropped)``. A target without
    a test split protects nothing and drops nothing.
    """
    from medmat_builder.duplicates import DuplicateIndex

    try:
        test = load_split(dataset_name, target, "test")
    except (SystemExit, ValueError, FileNotFoundError) as err:
        logger.warning("No test split found for target %s (%s); nothing to protect.", target, err)
        return train, 0
    test_ids = set(test["id"]) if "id" in test.column_names else set()
    test_pixels, test_phashes, test_thumbs, test_sides = _image_keys(test)
    test_pixel_set = set(test_pixels)
    index = DuplicateIndex()
    for px, ph, thumb, side in zip(test_pixels, test_phashes, test_thumbs, test_sides, strict=True):
        if thumb is not None:
            index.add(px, int(ph), thumb, side)
    train_pixels, train_phashes, train_thumbs, train_sides = _image_keys(train)
    keep = []
    for i, (rid, px) in enumerate(zip(train["id"], train_pixels, strict=True)):
        if rid in test_ids or px in test_pixel_set:
            continue
        thumb = train_thumbs[i]
        if thumb is not None and index.check(px, int(train_phashes[i]), thumb, train_sides[i]) is not None:
            continue
        keep.append(i)
    dropped = len(train) - len(keep)
    if dropped:
        logger.warning("Dropped %d training records that equal records of %s's test split.", dropped, target)
        train = train.select(keep)
    return train, dropped


def build_train_dataset(args: MedmatScriptArguments, seed: int):
    """Assemble the training set named by the arguments.

    Returns ``(dataset, manifest)``: the dataset has columns ``id``, ``config``, ``image``,
    ``prompt``, ``completion``; the manifest records what was drawn from where.
    """
    from datasets import concatenate_datasets

    if not args.dataset_name:
        raise SystemExit("Pass --dataset_name: a folder from `medmat build` (e.g. ./medmat) or a Hub dataset id.")
    if not (args.mixture or args.train_configs or args.dataset_config):
        raise SystemExit("Name the training data: --train_configs subset_25 subset_26 ..., or --mixture "
                         "related:subset_28 (or a file from `medmat plan --out`).")
    if args.mixture and args.train_configs:  # e.g. a recipe's train_configs and a --mixture flag
        logger.warning("--mixture %s is used; --train_configs %s is ignored.", args.mixture, args.train_configs)

    target = args.target
    if args.mixture:
        plan = resolve_mixture(args.mixture, args.dataset_name)
        if target and plan.target and target != plan.target:
            raise SystemExit(f"--target {target} differs from the target of --mixture {args.mixture} ({plan.target}).")
        target, plan_items = plan.target or target, plan.configs
        if plan.seed is not None:
            seed = plan.seed
    else:
        configs = args.train_configs or [args.dataset_config]
        plan_items = [(c, args.samples_per_config) for c in configs]
    if not plan_items:
        raise SystemExit(f"The mixture {args.mixture!r} selects no configs; nothing to train on.")

    parts, counts = [], {}
    for config, samples in plan_items:
        ds = load_split(args.dataset_name, config, args.dataset_train_split)
        ds = _sample(ds, samples, seed, f"{config}/{args.dataset_train_split}")
        parts.append(_to_training_form(ds, config))
        counts[config] = len(ds)
    if args.general_mcq_dataset:
        general = load_general_mcq(args, seed)
        parts.append(general)
        counts["general"] = len(general)
    train = concatenate_datasets(parts).shuffle(seed=seed)

    dropped = 0
    if target and args.leakage_check:
        train, dropped = drop_target_test_records(train, args.dataset_name, target)
    manifest = {
        "dataset_name": args.dataset_name,
        "mixture": args.mixture,
        "target": target,
        "seed": seed,
        "split": args.dataset_train_split,
        "records": counts,
        "dropped_as_target_test": dropped,
        "total": len(train),
    }
    return train, manifest


# --------------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------------


def ensure_tiny_model(script_args: MedmatScriptArguments, model_args: ModelConfig, training_args: SFTConfig) -> None:
    """Create the tiny model at ``--model_name_or_path`` if asked to and it is not there (main process only)."""
    if not script_args.tiny_model_arch:
        return
    path = Path(model_args.model_name_or_path)
    with training_args.main_process_first(desc="create tiny model"):
        if not (path / "config.json").is_file():
            from medmat_builder.tiny_models import create_tiny_model

            create_tiny_model(script_args.tiny_model_arch, path, seed=0)


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
    with training_args.main_process_first(desc="claim --output_dir", local=False):
        if training_args.process_index == 0:
            claim(training_args.output_dir, "training", label="--output_dir", keep_clear=keep_clear)


def freeze_vision(model) -> int:
    """Freeze the vision encoder's parameters; returns how many tensors were frozen."""
    frozen = 0
    for name, param in model.named_parameters():
        if any(marker in name for marker in VISION_PARAM_MARKERS):
            param.requires_grad_(False)
            frozen += 1
    return frozen


def _resume_arg(training_args: SFTConfig) -> str | bool | None:
    value = training_args.resume_from_checkpoint
    if isinstance(value, str) and value.lower() in {"true", "last", "latest"}:
        return True
    return value


def main(script_args: MedmatScriptArguments, training_args: SFTConfig, model_args: ModelConfig) -> SFTTrainer:
    """Train and save; returns the trainer (its ``state.log_history`` has the losses)."""
    logging.basicConfig(level=logging.INFO if training_args.process_index == 0 else logging.WARNING)
    if not model_args.model_name_or_path:
        raise SystemExit("Pass --model_name_or_path (a Hub id or a folder), or use a recipe: --config FILE.yaml.")
    claim_output_dir(script_args, training_args)
    ensure_tiny_model(script_args, model_args, training_args)
    apply_global_batch_size(script_args, training_args)
    if training_args.completion_only_loss is None:
        training_args.completion_only_loss = True
    training_args.model_init_kwargs = {
        **dict(
            revision=model_args.model_revision,
            trust_remote_code=training_args.trust_remote_code,
            attn_implementation=model_args.attn_implementation,
            dtype=model_args.dtype,
        ),
        **(training_args.model_init_kwargs or {}),
    }

    with training_args.main_process_first(desc="prepare Med-MAT training data"):
        train, manifest = build_train_dataset(script_args, training_args.data_seed or training_args.seed)
    train = train.select_columns(["image", "prompt", "completion"])

    trainer = SFTTrainer(
        model=model_args.model_name_or_path,
        args=training_args,
        train_dataset=train,
        peft_config=get_peft_config(model_args),
        quantization_config=get_quantization_config(model_args),
    )
    if (model_args.dtype in ("bfloat16", "float16") and not model_args.use_peft
            and not getattr(trainer, "is_deepspeed_enabled", False)):
        logger.warning(
            "Full fine-tuning with %s weights and no DeepSpeed keeps no fp32 master copy: small updates (lr %.0e) "
            "are lost to rounding. Launch with a DeepSpeed config (training/accelerate/deepspeed_zero*.yaml), "
            "use --dtype float32, or train LoRA adapters (--use_peft).", model_args.dtype, training_args.learning_rate)
    if script_args.freeze_vision_tower and not model_args.use_peft:
        n = freeze_vision(trainer.model)
        logger.info("Froze %d vision-encoder tensors.", n)

    manifest["world_size"] = training_args.world_size
    manifest["gradient_accumulation_steps"] = training_args.gradient_accumulation_steps
    dist_type = trainer.accelerator.distributed_type
    manifest["distributed_type"] = getattr(dist_type, "value", str(dist_type))
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


def make_parser() -> TrlParser:
    """The ``TrlParser`` over (MedmatScriptArguments, SFTConfig, ModelConfig)."""
    return TrlParser((MedmatScriptArguments, SFTConfig, ModelConfig))


def parse_args(argv: list[str] | None = None) -> tuple[MedmatScriptArguments, SFTConfig, ModelConfig]:
    """Parse flags and ``--config FILE.yaml`` into the three argument objects."""
    script_args, training_args, model_args = make_parser().parse_args_and_config(argv)
    return script_args, training_args, model_args


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        main(*parse_args(sys.argv[1:]))
    finally:
        from medmat_builder.cli import release_arrow_threads

        release_arrow_threads()
