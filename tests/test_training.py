"""Training (issue 4): :mod:`medmat_builder.train` (behind training/sft.py) on tiny models of real
architectures, on CPU, offline.

The multi-process tests (DDP with gloo, DeepSpeed ZeRO-3) are marked ``multiprocess``; deselect them
with ``-m "not multiprocess"`` for a quicker run.
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("trl")

from medmat_builder import train as sft  # noqa: E402
from medmat_builder.train.leakage import stored_image_hashes  # noqa: E402
from medmat_builder.records import ANSWER_DIRECTIVE as DIRECTIVE  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SFT = REPO / "training" / "sft.py"
TINY_RECIPE = REPO / "training" / "recipes" / "tiny_cpu.yaml"

CONFIGS = {  # config -> (labels, n_train, n_test); subset_28 is the mixture target of the tests
    "subset_25": (["normal", "pneumonia", "covid"], 24, 6),
    "subset_26": (["benign", "malignant"], 24, 6),
    "subset_28": (["glaucoma", "cataract", "normal", "myopia"], 12, 8),
}


def _png(rng: np.random.Generator, gray: bool) -> bytes:
    from PIL import Image

    shape = (20, 24) if gray else (20, 24, 3)
    img = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _records(config: str, split: str, labels: list[str], n: int, rng: np.random.Generator) -> dict[str, list]:
    letters = "ABCD"
    cols: dict[str, list] = {k: [] for k in ("id", "image", "question", "options", "answer", "answer_label", "labels",
                                             "modality", "area", "task", "subset", "source", "license", "group")}
    for i in range(n):
        options = [labels[(i + k) % len(labels)] for k in range(len(labels))]
        rng.shuffle(options)
        label = labels[i % len(labels)]
        question = ("Which finding does this image show?\n"
                    + "\n".join(f"{letters[k]}. {o}" for k, o in enumerate(options)) + "\n" + DIRECTIVE)
        cols["id"].append(f"{config}-{split}-{i:04d}")
        cols["image"].append({"bytes": _png(rng, gray=i % 3 == 0), "path": None})
        cols["question"].append(question)
        cols["options"].append(options)
        cols["answer"].append(letters[options.index(label)])
        cols["answer_label"].append(label)
        cols["labels"].append([label])
        cols["modality"].append("X-ray")
        cols["area"].append("Lung")
        cols["task"].append("Disease")
        cols["subset"].append(config)
        cols["source"].append("synthetic")
        cols["license"].append("CC-BY-4.0")
        cols["group"].append(f"{config[-2:]}{split[:2]}{i:012d}")  # 16 characters, as the build's pseudonyms
    return cols


def write_tiny_export(out: str | Path, leak_target_test: bool = False) -> Path:
    """A Med-MAT-shaped export (README configs + parquet per split) with a few dozen random records.

    With ``leak_target_test``, three records tied to subset_28's test split are planted in other
    configs' train splits, one per reason the leakage guard knows: test record 0 with its id unchanged;
    test record 1 under a new id with the same image bytes; and a new image under a new id whose
    subject (``group``) is test record 2's: another scan of the same patient.
    """
    from datasets import Dataset, Image

    out = Path(out)
    rng = np.random.default_rng(0)
    yaml_configs = []
    tables: dict[tuple[str, str], dict[str, list]] = {}
    for config, (labels, n_train, n_test) in CONFIGS.items():
        for split, n in (("train", n_train), ("test", n_test)):
            tables[config, split] = _records(config, split, labels, n, rng)
        yaml_configs.append(
            f"- config_name: {config}\n  data_files:\n"
            f"  - split: train\n    path: {config}/train-*.parquet\n"
            f"  - split: test\n    path: {config}/test-*.parquet\n"
        )
    if leak_target_test:
        test = tables["subset_28", "test"]
        plants = (("subset_25", 0, {}), ("subset_26", 1, {"id": "subset_26-train-leaked", "group": "another-subject1"}),
                  ("subset_25", 2, {"id": "subset_25-train-same-patient",
                                    "image": {"bytes": _png(rng, gray=False), "path": None}}))
        for dest, row, changes in plants:
            for key, values in tables[dest, "train"].items():
                values.append(changes.get(key, test[key][row]))
    for (config, split), cols in tables.items():
        ds = Dataset.from_dict(cols).cast_column("image", Image())
        (out / config).mkdir(parents=True, exist_ok=True)
        ds.to_parquet(str(out / config / f"{split}-00000-of-00001.parquet"))
    (out / "README.md").write_text("---\nconfigs:\n" + "".join(yaml_configs) + "---\n# tiny test export\n")
    return out


# --------------------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> Path:
    return write_tiny_export(tmp_path_factory.mktemp("export"))


@pytest.fixture(scope="module")
def leaky_export(tmp_path_factory) -> Path:
    return write_tiny_export(tmp_path_factory.mktemp("leaky_export"), leak_target_test=True)


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    from medmat_builder.tiny_models import create_tiny_model

    root = tmp_path_factory.mktemp("tiny_models")
    return {arch: create_tiny_model(arch, root / arch) for arch in ("llava", "idefics3")}


def _args(export: Path, model: Path, out: Path, *extra: str):
    return sft.parse_args([
        "--config", str(TINY_RECIPE),
        "--dataset_name", str(export),
        "--model_name_or_path", str(model),
        "--output_dir", str(out),
        "--max_steps", "3",
        "--per_device_train_batch_size", "2",
        *extra,
    ])


def _state_dict(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


def _lm_head(state: dict):
    (key,) = [k for k in state if k.endswith("lm_head.weight")]
    return state[key].float().numpy()


def _changed(before: dict, after: dict) -> list[str]:
    assert before.keys() == after.keys()
    return [k for k in before if not np.array_equal(before[k].float().numpy(), after[k].float().numpy())]


def _losses(trainer) -> list[float]:
    return [log["loss"] for log in trainer.state.log_history if "loss" in log]


def _batch_loss(model, trainer, rows: list[dict]) -> float:
    """The model's loss on one collated batch of training rows (the completion tokens only)."""
    import torch

    batch = trainer.data_collator([dict(r) for r in rows])
    model.eval()
    with torch.no_grad():
        return float(model(**{k: v for k, v in batch.items() if torch.is_tensor(v)}).loss)


def _test_records(export: Path) -> tuple[set[str], set[str], set[str]]:
    test = sft.load_split(str(export), "subset_28", "test")
    return set(test["id"]), set(stored_image_hashes(test)), set(test["group"])


# --------------------------------------------------------------------------------------------------
# arguments, tiny models
# --------------------------------------------------------------------------------------------------


def test_config_flag_is_in_help_and_both_spellings_work(tmp_path):
    from medmat_builder.cli import main as medmat

    assert "--config FILE.yaml" in sft.make_parser().format_help()
    for spelling in (["--config", str(TINY_RECIPE)], [f"--config={TINY_RECIPE}"]):
        script_args, training_args, model_args = sft.parse_args([*spelling, "--output_dir", str(tmp_path)])
        assert script_args.train_configs == ["subset_25", "subset_26"] and training_args.max_steps == 10
        assert model_args.model_name_or_path == "outputs/tiny-llava"
    with pytest.raises(SystemExit) as info:  # `medmat train` passes every flag through, --help included
        medmat(["train", "--help"])
    assert info.value.code == 0


def test_tiny_model_is_reproducible_and_loads(tmp_path):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from medmat_builder.tiny_models import create_tiny_model, is_tiny_model

    a = create_tiny_model("llava", tmp_path / "a", seed=3)
    b = create_tiny_model("llava", tmp_path / "b", seed=3)
    c = create_tiny_model("llava", tmp_path / "c", seed=4)
    for name in ("model.safetensors", "tokenizer.json", "chat_template.jinja"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert (a / "model.safetensors").read_bytes() != (c / "model.safetensors").read_bytes()
    assert is_tiny_model(a)
    model = AutoModelForImageTextToText.from_pretrained(a)
    processor = AutoProcessor.from_pretrained(a)
    assert type(model).__name__ == "LlavaForConditionalGeneration"
    assert sum(p.numel() for p in model.parameters()) < 1_000_000
    text = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What?"}]}],
        add_generation_prompt=True,
    )
    assert text == "USER: <image>\nWhat? ASSISTANT:"


def test_tiny_model_command_refuses_foreign_folder(tmp_path, capsys):
    import argparse

    from medmat_builder.cli import tiny_model

    parser = argparse.ArgumentParser()
    tiny_model.add_parser(parser.add_subparsers())
    (tmp_path / "precious.txt").write_text("keep me")
    args = parser.parse_args(["tiny-model", "--arch", "idefics3", "--out", str(tmp_path)])
    assert args.func(args) == 1
    assert "not a tiny model" in capsys.readouterr().err
    args = parser.parse_args(["tiny-model", "--arch", "idefics3", "--out", str(tmp_path / "m")])
    assert args.func(args) == 0
    assert (tmp_path / "m" / "config.json").is_file()


# --------------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------------


def test_records_become_prompt_completion_pairs(export, tiny_models, tmp_path):
    script_args, _, _ = _args(export, tiny_models["llava"], tmp_path, "--samples_per_config", "5")
    train, manifest = sft.build_train_dataset(script_args, seed=42)
    assert manifest["records"] == {"subset_25": 5, "subset_26": 5}
    assert len(train) == 10 and set(train["config"]) == {"subset_25", "subset_26"}
    source = sft.load_split(str(export), "subset_25", "train")
    by_id = {r["id"]: r for r in source.select_columns(["id", "question", "answer", "group"])}
    row = next(r for r in train if r["config"] == "subset_25")
    assert row["prompt"] == [{"role": "user", "content": by_id[row["id"]]["question"]}]
    assert row["completion"] == [{"role": "assistant", "content": by_id[row["id"]]["answer"]}]
    assert row["group"] == by_id[row["id"]]["group"] and row["image_hash"] == ""  # identity columns ride along
    assert row["image"].mode == "RGB"  # grayscale sources are converted for the processor
    again, _ = sft.build_train_dataset(script_args, seed=42)
    assert again["id"] == train["id"]  # seeded


def test_general_mcq_mix_in(export, tiny_models, tmp_path):
    from datasets import Dataset, Image

    rng = np.random.default_rng(1)
    general = Dataset.from_dict({
        "image": [{"bytes": _png(rng, gray=False), "path": None} for _ in range(6)],
        "question": ["Which animal is shown?"] * 6,
        "options": [["cat", "dog", "owl", "fox"]] * 6,
        "answer": ["owl"] * 3 + ["B"] * 3,  # option text or letter
        "source_page": ["wiki"] * 6,
    }).cast_column("image", Image())
    general.to_parquet(str(tmp_path / "general.parquet"))
    script_args, _, _ = _args(export, tiny_models["llava"], tmp_path, "--samples_per_config", "2",
                              "--general_mcq_dataset", str(tmp_path / "general.parquet"),
                              "--general_mcq_samples", "4")
    train, manifest = sft.build_train_dataset(script_args, seed=0)
    assert manifest["records"] == {"subset_25": 2, "subset_26": 2, "general": 4}
    rows = [r for r in train if r["config"] == "general"]
    assert len(rows) == 4
    for row in rows:
        assert row["prompt"][0]["content"] == ("Which animal is shown?\nA. cat\nB. dog\nC. owl\nD. fox\n" + DIRECTIVE)
        assert row["completion"][0]["content"] in {"B", "C"}
        assert row["group"] == ""  # no subject: never matched by the guard


def test_real_planner_mixture_by_name_and_file(tmp_path):
    from medmat_builder import planner

    plan = sft.resolve_mixture("related:subset_28")
    names = [c for c, _ in plan.configs]
    assert plan.target == "subset_28" and names and "subset_28" not in names
    assert all(isinstance(n, int) and n >= 0 for _, n in plan.configs) and plan.seed == 42
    path = planner.resolve_mixture("related:subset_28").save(tmp_path / "mix.yaml")
    assert sft.resolve_mixture(str(path)) == plan
    with pytest.raises(SystemExit, match="no-such-rule"):
        sft.resolve_mixture("no-such-rule:subset_28")


def _rq2_mixture(path: Path) -> Path:
    """A planner mixture file for subset_28 that includes its own train data (RQ2) and both other configs."""
    from medmat_builder.planner import Mixture

    mix = Mixture(name="configs:subset_28:subset_25+subset_26", target="subset_28", rule="configs",
                  rule_text="hand-picked", budget=100, cap=100, pool="all", tasks="grouped", target_samples=12,
                  configs=[{"config": "subset_25", "samples": 100}, {"config": "subset_26", "samples": 100},
                           {"config": "subset_28", "samples": 12}])
    return mix.save(path)


@pytest.mark.parametrize("how", ["mixture", "target"])
def test_target_test_split_never_enters_training(how, leaky_export, tiny_models, tmp_path, monkeypatch):
    """Training for subset_28 that includes subset_28's own train data (as in RQ2), on an export where
    three records tied to subset_28's test split were planted in other configs' train splits (same id /
    same image bytes / same subject); by a mixture file, or by --train_configs with --target."""
    test_ids, test_images, test_groups = _test_records(leaky_export)
    script_args, _, _ = _args(leaky_export, tiny_models["llava"], tmp_path)
    if how == "mixture":
        script_args.train_configs = None
        script_args.mixture = str(_rq2_mixture(tmp_path / "rq2.yaml"))
    else:
        script_args.train_configs = ["subset_25", "subset_26", "subset_28"]
        script_args.samples_per_config = None
        script_args.target = "subset_28"

    script_args.leakage_check = False  # without the guard the planted records get in: the test can see leaks
    unguarded, manifest = sft.build_train_dataset(script_args, seed=0)
    assert test_ids & set(unguarded["id"]) and test_images & set(stored_image_hashes(unguarded))
    assert test_groups & set(unguarded["group"]) and manifest["leakage_guard"] is None

    import PIL.Image

    def no_decoding(*args, **kwargs):
        raise AssertionError("the leakage guard decoded an image")

    script_args.leakage_check = True
    with monkeypatch.context() as m:  # identity comes from the rows: the guard opens no image
        m.setattr(PIL.Image, "open", no_decoding)
        guarded, manifest = sft.build_train_dataset(script_args, seed=0)
    assert manifest["target"] == "subset_28"
    assert not test_ids & set(guarded["id"])
    assert not test_images & set(stored_image_hashes(guarded))
    assert not test_groups & set(guarded["group"])
    assert "subset_25-train-same-patient" not in set(guarded["id"])  # another image of a test subject
    guard = manifest["leakage_guard"]
    assert guard["dropped"] == {"id": 1, "image": 1, "subject": 1} and guard["test_records"] == 8
    assert guard["identity"] == "stored bytes (xxh3-128)"
    assert manifest["dropped_as_target_test"] == 3 and len(unguarded) - len(guarded) == 3
    # the target's own train records stay (RQ2 trains on them); only its test split is protected
    assert set(guarded["config"]) == {"subset_25", "subset_26", "subset_28"}


def test_guard_reads_the_image_hash_column_when_both_sides_have_it(leaky_export):
    """With the build's per-row ``image_hash`` the guard compares that column, not the bytes."""
    from medmat_builder.train.data import to_training_form
    from medmat_builder.train.leakage import drop_target_test_records

    train = to_training_form(sft.load_split(str(leaky_export), "subset_26", "train"), "subset_26")
    test = sft.load_split(str(leaky_export), "subset_28", "test")
    test = test.add_column("image_hash", [f"px{i}" for i in range(len(test))])
    hashes = [f"train{i}" for i in range(len(train))]
    hashes[3] = "px5"  # other bytes, but the build says: the same pixels as test record 5
    kept, report = drop_target_test_records(train.remove_columns("image_hash").add_column("image_hash", hashes),
                                            test, "subset_28")
    assert report.identity == "image_hash column" and report.dropped == {"id": 0, "image": 1, "subject": 0}
    assert train["id"][3] not in set(kept["id"]) and len(kept) == len(train) - 1
    # a side without the column: both sides fall back to the stored bytes (the planted copy of test record 1)
    _, report = drop_target_test_records(train, test, "subset_28")
    assert report.identity == "stored bytes (xxh3-128)" and report.dropped == {"id": 0, "image": 1, "subject": 0}


def test_target_must_agree_with_the_mixture(export, tiny_models, tmp_path):
    script_args, _, _ = _args(export, tiny_models["llava"], tmp_path, "--mixture", str(_rq2_mixture(tmp_path / "m.yaml")),
                              "--target", "subset_25")
    with pytest.raises(SystemExit, match="differs from the target"):
        sft.build_train_dataset(script_args, seed=0)


# --------------------------------------------------------------------------------------------------
# training in process: each run must have learned something
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ["llava", "idefics3"])
def test_tiny_model_learns_a_fixed_batch(arch, export, tiny_models, tmp_path):
    """One record of each of two configs, batch 2: every step sees the same batch, so the loss on it
    must fall; the saved weights differ from the initial ones and reload equal to the trained model."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    out = tmp_path / "run"
    trainer = sft.train(*_args(export, tiny_models[arch], out, "--train_configs", "subset_25", "subset_26",
                               "--samples_per_config", "1", "--max_steps", "6", "--learning_rate", "1e-2"))
    manifest = json.loads((out / sft.DATA_MANIFEST).read_text())
    assert manifest["records"] == {"subset_25": 1, "subset_26": 1} and manifest["world_size"] == 1
    losses = _losses(trainer)
    assert len(losses) == 6 and all(math.isfinite(x) for x in losses) and trainer.state.global_step == 6
    assert all(b < a for a, b in zip(losses, losses[1:])) and losses[-1] < 0.75 * losses[0], losses

    before, after = _state_dict(tiny_models[arch]), _state_dict(out)
    changed = _changed(before, after)
    assert any("lm_head" in k for k in changed)
    assert any("vision" in k for k in changed)  # the vision tower is trained unless frozen
    assert len(changed) > len(before) // 2
    reloaded = AutoModelForImageTextToText.from_pretrained(out)
    AutoProcessor.from_pretrained(out)
    assert type(reloaded).__name__ == type(trainer.model).__name__
    trained = {k: v.detach() for k, v in trainer.model.state_dict().items()}
    assert all(np.array_equal(v.numpy(), trained[k].numpy()) for k, v in reloaded.state_dict().items())
    rows = [trainer.train_dataset[i] for i in range(2)]
    initial = AutoModelForImageTextToText.from_pretrained(tiny_models[arch])
    assert _batch_loss(reloaded, trainer, rows) < 0.75 * _batch_loss(initial, trainer, rows)

    # loss on the completion only: the supervised tokens are exactly the answer turn
    batch = trainer.data_collator([dict(r) for r in rows])
    tokenizer = trainer.processing_class.tokenizer
    for labels, example in zip(batch["labels"], rows, strict=True):
        supervised = tokenizer.decode(labels[labels != -100])
        answer = example["completion"][0]["content"]
        assert supervised.strip().startswith(answer)
        assert example["prompt"][0]["content"][-20:] not in supervised
        assert len(supervised.strip()) <= len(answer) + len("<end_of_utterance>\n")


def test_freeze_vision_tower_keeps_encoder(export, tiny_models, tmp_path):
    out = tmp_path / "frozen"
    sft.train(*_args(export, tiny_models["llava"], out, "--train_configs", "subset_26", "--freeze_vision_tower", "true",
                     "--max_steps", "2"))
    before, after = _state_dict(tiny_models["llava"]), _state_dict(out)
    vision = [k for k in before if "vision_tower" in k]
    assert vision and all(np.array_equal(before[k].numpy(), after[k].numpy()) for k in vision)
    assert not np.array_equal(_lm_head(before), _lm_head(after))


def test_mixture_by_name_trains_on_a_demo_build(demo_export, tiny_models, tmp_path):
    """`--mixture related:subset_28` through the real planner, on configs built by `medmat build --demo`;
    the volumes are planned within what the build holds (its build_report.json)."""
    from medmat_builder.planner import caps_from_build_report, resolve_mixture

    export = demo_export / "medmat"
    out = tmp_path / "mix"
    trainer = sft.train(*_args(export, tiny_models["idefics3"], out, "--mixture", "related:subset_28",
                               "--max_steps", "2"))
    manifest = json.loads((out / sft.DATA_MANIFEST).read_text())
    expected = resolve_mixture("related:subset_28", caps=caps_from_build_report(export / "build_report.json"))
    assert manifest["target"] == "subset_28" and manifest["seed"] == 42
    assert manifest["records"] == expected.sample_counts and "subset_28" not in manifest["records"]
    assert len(manifest["records"]) == 12  # the Related in-distribution subsets of subset_28
    assert manifest["total"] == expected.total - manifest["dropped_as_target_test"]
    assert manifest["leakage_guard"]["test_records"] == len(sft.load_split(str(export), "subset_28", "test"))
    assert trainer.state.global_step == 2
    assert any("lm_head" in k for k in _changed(_state_dict(tiny_models["idefics3"]), _state_dict(out)))


def test_resume_from_last_checkpoint(export, tiny_models, tmp_path):
    """Two steps, stop, resume to three: the log and the weights go on from checkpoint-2.

    (Not bit-equal to three steps in one go: on resume the Trainer draws the epoch's order again.)"""
    common = ("--train_configs", "subset_26", "--save_strategy", "steps", "--save_steps", "2")
    out = tmp_path / "resume"
    first = sft.train(*_args(export, tiny_models["llava"], out, *common, "--max_steps", "2"))
    two_steps = _state_dict(out)
    assert not _changed(two_steps, _state_dict(out / "checkpoint-2"))
    assert _changed(_state_dict(tiny_models["llava"]), two_steps)
    trainer = sft.train(*_args(export, tiny_models["llava"], out, *common, "--max_steps", "3",
                               "--resume_from_checkpoint", "true"))
    assert trainer.state.global_step == 3
    assert _losses(trainer)[:2] == _losses(first) and len(_losses(trainer)) == 3  # 2 restored + 1 new
    assert _changed(two_steps, _state_dict(out))  # the third step trained on from checkpoint-2


def test_lora_adapter_trains(export, tiny_models, tmp_path):
    pytest.importorskip("peft")
    from safetensors.torch import load_file

    out = tmp_path / "lora"
    sft.train(*_args(export, tiny_models["llava"], out, "--train_configs", "subset_26", "--max_steps", "2",
                     "--use_peft", "--lora_r", "4", "--lora_alpha", "8", "--lora_target_modules", "q_proj", "v_proj"))
    assert (out / "adapter_config.json").is_file()
    adapter = load_file(str(out / "adapter_model.safetensors"))
    lora_b = [v for k, v in adapter.items() if "lora_B" in k]
    assert lora_b and any(v.abs().sum() > 0 for v in lora_b)  # PEFT starts B at zero: non-zero B was learned
    assert not (out / "model.safetensors").exists()  # only the adapter is saved, the backbone is untouched


def test_global_batch_size_sets_accumulation(export, tiny_models, tmp_path):
    script_args, training_args, _ = _args(export, tiny_models["llava"], tmp_path, "--global_batch_size", "8")
    sft.apply_global_batch_size(script_args, training_args)
    assert training_args.gradient_accumulation_steps == 4  # 8 / (2 per device x 1 process)
    script_args.global_batch_size = 7
    with pytest.raises(SystemExit, match="not a multiple"):
        sft.apply_global_batch_size(script_args, training_args)


@pytest.mark.parametrize("recipe", ["llava15_7b", "qwen2vl_7b", "llama32_11b_vision"])
def test_paper_recipes(recipe, tmp_path):
    import yaml

    path = REPO / "training" / "recipes" / f"{recipe}.yaml"
    raw = yaml.safe_load(path.read_text())
    assert raw["num_train_epochs"] == 5 and raw["global_batch_size"] == 32
    assert raw["learning_rate"] == 5e-6 and raw["bf16"] is True
    # every key is a real argument (bf16 is switched off only because this machine has no GPU)
    script_args, training_args, model_args = sft.parse_args(
        ["--config", str(path), "--output_dir", str(tmp_path), "--bf16", "false"])
    assert training_args.completion_only_loss is True and model_args.model_name_or_path == raw["model_name_or_path"]


def test_tiny_recipe_creates_its_model_and_trains_it(export, tmp_path):
    from medmat_builder.tiny_models import is_tiny_model

    model_dir = tmp_path / "created-tiny"
    assert sft.main(["--config", str(TINY_RECIPE), "--dataset_name", str(export), "--model_name_or_path",
                     str(model_dir), "--output_dir", str(tmp_path / "run"), "--max_steps", "1",
                     "--per_device_train_batch_size", "2"]) == 0
    assert is_tiny_model(model_dir)
    assert _changed(_state_dict(model_dir), _state_dict(tmp_path / "run"))


# --------------------------------------------------------------------------------------------------
# multi-process runs on CPU (gloo): slower, marked
# --------------------------------------------------------------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _launch(accelerate_config: str, entry: list[str], export: Path, model: Path, out: Path, tmp_path: Path) -> dict:
    """``accelerate launch`` of ``entry`` (the script, or ``-m medmat_builder.train``) on 2 CPU processes."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_CACHE": str(tmp_path / "hf_cache"),
           "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent)) or "accelerate"
    cmd = [accelerate, "launch", "--config_file", str(REPO / "training" / "accelerate" / accelerate_config),
           "--num_processes", "2", "--mixed_precision", "no", "--main_process_port", str(_free_port()),
           *entry, "--config", str(TINY_RECIPE), "--dataset_name", str(export),
           "--model_name_or_path", str(model), "--output_dir", str(out), "--use_cpu", "true", "--bf16", "false",
           "--max_steps", "2", "--per_device_train_batch_size", "2"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return json.loads((out / sft.DATA_MANIFEST).read_text())


@pytest.mark.multiprocess
@pytest.mark.xdist_group("multiprocess")
def test_two_process_ddp_on_cpu(export, tiny_models, tmp_path):
    from transformers import AutoModelForImageTextToText

    out = tmp_path / "ddp"
    manifest = _launch("multi_gpu.yaml", [str(SFT)], export, tiny_models["llava"], out, tmp_path)
    assert manifest["world_size"] == 2 and manifest["distributed_type"] == "MULTI_CPU"
    model = AutoModelForImageTextToText.from_pretrained(out)
    assert not np.array_equal(_lm_head(_state_dict(tiny_models["llava"])), _lm_head(dict(model.state_dict())))


@pytest.mark.multiprocess
@pytest.mark.xdist_group("multiprocess")
def test_two_process_deepspeed_zero3_on_cpu(export, tiny_models, tmp_path):
    pytest.importorskip("deepspeed", reason="DS_BUILD_OPS=0 pip install deepspeed")
    from transformers import AutoModelForImageTextToText

    out = tmp_path / "zero3"
    manifest = _launch("deepspeed_zero3.yaml", ["-m", "medmat_builder.train"], export, tiny_models["llava"], out,
                       tmp_path)
    assert manifest["world_size"] == 2 and manifest["distributed_type"] == "DEEPSPEED"
    model = AutoModelForImageTextToText.from_pretrained(out)  # ZeRO-3 shards were gathered into one checkpoint
    before = _state_dict(tiny_models["llava"])
    after = dict(model.state_dict())
    assert _lm_head(after).shape == _lm_head(before).shape
    assert not np.array_equal(_lm_head(before), _lm_head(after))
