"""The training set: Med-MAT records (and an optional general MCQ mix-in) in TRL's prompt/completion form.

Every record becomes TRL's conversational vision-language form::

    {"image": <PIL.Image>, "prompt": [{"role": "user", "content": question}],
     "completion": [{"role": "assistant", "content": answer}]}

so that TRL's collator computes the loss on the completion only (the answer letter, or the box text
for detection). The columns ``id``, ``config``, ``group`` and ``image_hash`` ride along for the
manifest and the leakage guard (:mod:`medmat_builder.train.leakage`).
"""

from __future__ import annotations

import logging
from string import ascii_uppercase as LETTERS  # option letters; exports have at most 4 (records.MAX_OPTIONS)
from typing import TYPE_CHECKING, Any

from medmat_builder.train.leakage import GROUP_COLUMN, IMAGE_HASH_COLUMN, drop_target_test_records
from medmat_builder.train.mixtures import resolve_mixture
from medmat_builder.records import ANSWER_DIRECTIVE

if TYPE_CHECKING:  # pragma: no cover
    from medmat_builder.train.arguments import MedmatScriptArguments

logger = logging.getLogger("medmat.train")

#: Columns a Med-MAT export must have to train on; the identity columns are kept when present.
REQUIRED_COLUMNS = ("image", "question", "answer")
IDENTITY_COLUMNS = (GROUP_COLUMN, IMAGE_HASH_COLUMN)


def to_prompt_completion(question: str, answer: str) -> dict[str, list[dict[str, str]]]:
    """One Med-MAT record as TRL's conversational prompt/completion pair (the image goes alongside)."""
    return {
        "prompt": [{"role": "user", "content": question}],
        "completion": [{"role": "assistant", "content": answer}],
    }


def _format_batch(question: list[str], answer: list[str]) -> dict[str, list]:
    pairs = [to_prompt_completion(q, a) for q, a in zip(question, answer, strict=True)]
    return {"prompt": [p["prompt"] for p in pairs], "completion": [p["completion"] for p in pairs]}


def load_split(dataset_name: str, config: str | None, split: str) -> Any:
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


def sample(ds: Any, n: int | None, seed: int, what: str) -> Any:
    """At most ``n`` records of ``ds`` (a seeded shuffle); all of them when ``n`` is None or larger."""
    if n is None or n >= len(ds):
        if n is not None and n > len(ds):
            logger.warning("%s has %d records, fewer than the %d asked for; using all of them.", what, len(ds), n)
        return ds
    return ds.shuffle(seed=seed).select(range(n))


def to_training_form(ds: Any, config: str | None) -> Any:
    """Keep image + prompt/completion, with ``id``, ``config`` and the identity columns for bookkeeping."""
    from datasets import Image

    missing = set(REQUIRED_COLUMNS) - set(ds.column_names)
    if missing:
        raise SystemExit(f"Dataset for {config!r} lacks columns {sorted(missing)}; is it a Med-MAT export?")
    if "id" not in ds.column_names:
        ds = ds.add_column("id", [f"{config}-{i}" for i in range(len(ds))])
    for name in IDENTITY_COLUMNS:  # "" where the source does not say (a general MCQ set, an older export)
        if name not in ds.column_names:
            ds = ds.add_column(name, [""] * len(ds))
    ds = ds.select_columns(["id", "image", "question", "answer", *IDENTITY_COLUMNS])
    qa = ["question", "answer"]
    ds = ds.map(_format_batch, batched=True, input_columns=qa, remove_columns=qa)
    ds = ds.add_column("config", [config or "general"] * len(ds))
    return ds.cast_column("image", Image(mode="RGB"))


def letter_question(example: dict[str, Any]) -> dict[str, str]:
    """Bring a general MCQ record to the Med-MAT question/answer form (lettered options, letter answer)."""
    question, answer = str(example["question"]), str(example["answer"]).strip()
    options = list(example.get("options") or [])
    if options and "\nA. " not in question:
        question = question + "\n" + "\n".join(f"{LETTERS[i]}. {o}" for i, o in enumerate(options))
        question += "\n" + ANSWER_DIRECTIVE
    if options and answer not in LETTERS[: len(options)] and answer in options:
        answer = LETTERS[options.index(answer)]
    return {"question": question, "answer": answer}


def load_general_mcq(args: MedmatScriptArguments, seed: int) -> Any:
    """The optional general multiple-choice VQA mix-in, in training form."""
    ds = load_split(args.general_mcq_dataset, args.general_mcq_config, args.general_mcq_split)
    ds = sample(ds, args.general_mcq_samples, seed, f"general MCQ dataset {args.general_mcq_dataset}")
    extra = [c for c in ds.column_names if c not in {"image", "question", "answer", "options", "id"}]
    ds = ds.map(letter_question, remove_columns=extra + (["options"] if "options" in ds.column_names else []))
    return to_training_form(ds, "general")


def training_plan(args: MedmatScriptArguments, seed: int) -> tuple[str | None, list[tuple[str, int | None]], int]:
    """``(target, [(config, samples)], seed)`` named by the arguments: a mixture, or configs by name."""
    if not args.dataset_name:
        raise SystemExit("Pass --dataset_name: a folder from `medmat build` (e.g. ./medmat) or a Hub dataset id.")
    if not (args.mixture or args.train_configs or args.dataset_config):
        raise SystemExit("Name the training data: --train_configs subset_25 subset_26 ..., or --mixture "
                         "related:subset_28 (or a file from `medmat plan --out`).")
    if args.mixture and args.train_configs:  # e.g. a recipe's train_configs and a --mixture flag
        logger.warning("--mixture %s is used; --train_configs %s is ignored.", args.mixture, args.train_configs)
    if not args.mixture:
        configs = args.train_configs or [args.dataset_config]
        return args.target, [(c, args.samples_per_config) for c in configs], seed
    plan = resolve_mixture(args.mixture, args.dataset_name)
    if args.target and plan.target and args.target != plan.target:
        raise SystemExit(f"--target {args.target} differs from the target of --mixture {args.mixture} ({plan.target}).")
    if not plan.configs:
        raise SystemExit(f"The mixture {args.mixture!r} selects no configs; nothing to train on.")
    return plan.target or args.target, plan.configs, seed if plan.seed is None else plan.seed


def target_test_split(dataset_name: str, target: str) -> Any | None:
    """The target's test split, or None (with a warning) when there is none to protect."""
    try:
        return load_split(dataset_name, target, "test")
    except (SystemExit, ValueError, FileNotFoundError) as err:
        logger.warning("No test split found for target %s (%s); nothing to protect.", target, err)
        return None


def build_train_dataset(args: MedmatScriptArguments, seed: int) -> tuple[Any, dict[str, Any]]:
    """Assemble the training set named by the arguments.

    Returns ``(dataset, manifest)``: the dataset has columns ``id``, ``config``, ``image``,
    ``prompt``, ``completion``, ``group`` and ``image_hash``; the manifest records what was drawn from
    where and what the leakage guard dropped.
    """
    from datasets import concatenate_datasets

    target, plan_items, seed = training_plan(args, seed)
    parts, counts = [], {}
    for config, samples in plan_items:
        ds = load_split(args.dataset_name, config, args.dataset_train_split)
        ds = sample(ds, samples, seed, f"{config}/{args.dataset_train_split}")
        parts.append(to_training_form(ds, config))
        counts[config] = len(ds)
    if args.general_mcq_dataset:
        general = load_general_mcq(args, seed)
        parts.append(general)
        counts["general"] = len(general)
    train = concatenate_datasets(parts).shuffle(seed=seed)

    guard = None
    if target and args.leakage_check:
        train, guard = drop_target_test_records(train, target_test_split(args.dataset_name, target), target)
    manifest = {
        "dataset_name": args.dataset_name,
        "mixture": args.mixture,
        "target": target,
        "seed": seed,
        "split": args.dataset_train_split,
        "records": counts,
        "dropped_as_target_test": guard.total if guard else 0,
        "leakage_guard": guard.to_json() if guard else None,
        "total": len(train),
    }
    return train, manifest
