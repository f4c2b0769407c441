"""Training (issue 4): training/sft.py on tiny models of real architectures, on CPU, offline.

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

REPO = Path(__file__).resolve().parent.parent
SFT = REPO / "training" / "sft.py"
TINY_RECIPE = REPO / "training" / "recipes" / "tiny_cpu.yaml"


def _load_sft():
    """training/sft.py is a script, not a package module: load it under a unique name."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("medmat_training_sft", SFT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses need their module registered
    spec.loader.exec_module(module)
    return module


sft = _load_sft()

DIRECTIVE = "Answer with the option's letter from the given choices directly."
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
                                             "modality", "area", "task", "subset", "source", "license")}
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
    return cols


def write_tiny_export(out: str | Path, leak_target_test: bool = False) -> Path:
    """A Med-MAT-shaped export (README configs + parquet per split) with a few dozen random records.

    With ``leak_target_test``, three records of subset_28's test split are planted in other configs'
    train splits: one with its id unchanged, one with a new id but the same image bytes, and one with
    a new id and the image resized to twice its size (a near duplicate). That last test record is a
    look-alike fundus photograph (``medmat_builder.lookalikes``), not random pixels: near duplicates
    are confirmed by the edges of a 32x32 thumbnail, which a picture of pure noise does not keep
    through a resize.
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
        from medmat_builder.lookalikes import lookalike_scan

        test = tables["subset_28", "test"]
        test["image"][2] = {"bytes": lookalike_scan("fundus", 2, small=True).data, "path": None}
        for dest, row, new_id in (("subset_25", 0, None), ("subset_26", 1, "subset_26-train-leaked")):
            for key, values in tables[dest, "train"].items():
                value = test[key][row]
                if key == "id" and new_id:
                    value = new_id
                values.append(value)
        from PIL import Image as PILImage

        near = PILImage.open(io.BytesIO(test["image"][2]["bytes"]))
        near = near.resize((near.width * 2, near.height * 2), PILImage.Resampling.NEAREST)
        buf = io.BytesIO()
        near.save(buf, format="PNG")
        for key, values in tables["subset_25", "train"].items():
            value = test[key][2]
            if key == "id":
                value = "subset_25-train-resized-copy"
            elif key == "image":
                value = {"bytes": buf.getvalue(), "path": None}
            values.append(value)
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


def _test_records(export: Path) -> tuple[set[str], set[str]]:
    test = sft.load_split(str(export), "subset_28", "test")
    return set(test["id"]), set(sft._image_keys(test)[0])


# --------------------------------------------------------------------------------------------------
# tiny models
# --------------------------------------------------------------------------------------------------


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

    from medmat_builder.commands import tiny_model

    parser = argparse.ArgumentParser()
    tiny_model.add_parser(parser.add_subparsers())
    (tmp_path / "precious.txt").write_text("keep me")
    args = parser.parse_args(["tiny-model", "--arch", "idefics3", "--out", str(tmp_path)])
    assert args.func(args) == 1
    assert "not a tiny model" in capsys.readouterr().out
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
    by_id = {r["id"]: r for r in source.select_columns(["id", "question", "answer"])}
    row = next(r for r in train if r["config"] == "subset_25")
    assert row["prompt"] == [{"role": "user", "content": by_id[row["id"]]["question"]}]
    assert row["completion"] == [{"role": "assistant", "content": by_id[row["id"]]["answer"]}]
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
def test_target_test_split_never_enters_training(how, leaky_export, tiny_models, tmp_path):
    """Training for subset_28 that includes subset_28's own train data (as in RQ2), on an export where
    three of subset_28's test records were planted in other configs' train splits (same id / same image /
    resized copy); by a mixture file, or by --train_configs with --target."""
    test_ids, test_prints = _test_records(leaky_export)
    script_args, _, _ = _args(leaky_export, tiny_models["llava"], tmp_path)
    if how == "mixture":
        script_args.train_configs = None
        script_args.mixture = str(_rq2_mixture(tmp_path / "rq2.yaml"))
    else:
        script_args.train_configs = ["subset_25", "subset_26", "subset_28"]
        script_args.samples_per_config = None
        script_args.target = "subset_28"

    script_args.leakage_check = False  # without the guard the planted records get in: the test can see leaks
    unguarded, _ = sft.build_train_dataset(script_args, seed=0)
    assert test_ids & set(unguarded["id"]) and test_prints & set(sft._image_keys(unguarded)[0])

    script_args.leakage_check = True
    guarded, manifest = sft.build_train_dataset(script_args, seed=0)
    assert manifest["target"] == "subset_28"
    assert not test_ids & set(guarded["id"])
    assert not test_prints & set(sft._image_keys(guarded)[0])
    assert "subset_25-train-resized-copy" not in set(guarded["id"])  # the near duplicate
    assert manifest["dropped_as_target_test"] == 3 and len(unguarded) - len(guarded) == 3
    # the target's own train records stay (RQ2 trains on them); only its test split is protected
    assert set(guarded["config"]) == {"subset_25", "subset_26", "subset_28"}


def test_target_must_agree_with_the_mixture(export, tiny_models, tmp_path):
    script_args, _, _ = _args(export, tiny_models["llava"], tmp_path, "--mixture", str(_rq2_mixture(tmp_path / "m.yaml")),
                              "--target", "subset_25")
    with pytest.raises(SystemExit, match="differs from the target"):
        sft.build_train_dataset(script_args, seed=0)


# --------------------------------------------------------------------------------------------------
# training in process
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ["llava", "idefics3"])
def test_tiny_model_trains_on_configs_by_name(arch, export, tiny_models, tmp_path):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    out = tmp_path / "run"
    trainer = sft.main(*_args(export, tiny_models[arch], out, "--train_configs", "subset_25", "subset_26"))

    losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
    assert len(losses) == 3 and all(math.isfinite(x) for x in losses)
    assert trainer.state.global_step == 3

    before, after = _state_dict(tiny_models[arch]), _state_dict(out)
    assert before.keys() == after.keys()
    changed = [k for k in before if not np.array_equal(before[k].numpy(), after[k].numpy())]
    assert any("lm_head" in k for k in changed)
    assert any("vision" in k for k in changed)  # the vision tower is trained unless frozen
    assert len(changed) > len(before) // 2

    model = AutoModelForImageTextToText.from_pretrained(out)
    AutoProcessor.from_pretrained(out)
    assert type(model).__name__ == type(trainer.model).__name__
    manifest = json.loads((out / sft.DATA_MANIFEST).read_text())
    assert manifest["records"] == {"subset_25": 24, "subset_26": 24} and manifest["world_size"] == 1

    # loss on the completion only: the supervised tokens are exactly the answer turn
    batch = trainer.data_collator([dict(trainer.train_dataset[i]) for i in range(2)])
    tokenizer = trainer.processing_class.tokenizer
    for labels, example in zip(batch["labels"], (trainer.train_dataset[i] for i in range(2)), strict=True):
        supervised = tokenizer.decode(labels[labels != -100])
        answer = example["completion"][0]["content"]
        assert supervised.strip().startswith(answer)
        assert example["prompt"][0]["content"][-20:] not in supervised
        assert len(supervised.strip()) <= len(answer) + len("<end_of_utterance>\n")


def test_freeze_vision_tower_keeps_encoder(export, tiny_models, tmp_path):
    out = tmp_path / "frozen"
    sft.main(*_args(export, tiny_models["llava"], out, "--train_configs", "subset_26", "--freeze_vision_tower", "true",
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
    trainer = sft.main(*_args(export, tiny_models["idefics3"], out, "--mixture", "related:subset_28",
                              "--max_steps", "2"))
    manifest = json.loads((out / sft.DATA_MANIFEST).read_text())
    expected = resolve_mixture("related:subset_28", caps=caps_from_build_report(export / "build_report.json"))
    assert manifest["target"] == "subset_28" and manifest["seed"] == 42
    assert manifest["records"] == expected.sample_counts and "subset_28" not in manifest["records"]
    assert len(manifest["records"]) == 12  # the Related in-distribution subsets of subset_28
    assert manifest["total"] == expected.total - manifest["dropped_as_target_test"]
    assert trainer.state.global_step == 2
    losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
    assert losses and all(math.isfinite(x) for x in losses)


def test_resume_from_last_checkpoint(export, tiny_models, tmp_path):
    out = tmp_path / "resume"
    common = ("--train_configs", "subset_26", "--save_strategy", "steps", "--save_steps", "2")
    sft.main(*_args(export, tiny_models["llava"], out, *common, "--max_steps", "2"))
    assert (out / "checkpoint-2").is_dir()
    trainer = sft.main(*_args(export, tiny_models["llava"], out, *common, "--max_steps", "3",
                              "--resume_from_checkpoint", "true"))
    assert trainer.state.global_step == 3
    assert len([log for log in trainer.state.log_history if "loss" in log]) == 3  # 2 restored + 1 new


def test_lora_adapter_trains(export, tiny_models, tmp_path):
    pytest.importorskip("peft")
    out = tmp_path / "lora"
    sft.main(*_args(export, tiny_models["llava"], out, "--train_configs", "subset_26", "--max_steps", "2",
                    "--use_peft", "--lora_r", "4", "--lora_alpha", "8", "--lora_target_modules", "q_proj", "v_proj"))
    assert (out / "adapter_config.json").is_file() and (out / "adapter_model.safetensors").is_file()


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


def test_tiny_recipe_creates_its_model(export, tmp_path):
    model_dir = tmp_path / "created-tiny"
    sft.main(*_args(export, model_dir, tmp_path / "run", "--max_steps", "1"))
    assert (model_dir / "config.json").is_file() and (tmp_path / "run" / "model.safetensors").is_file()


# --------------------------------------------------------------------------------------------------
# multi-process runs on CPU (gloo): slower, marked
# --------------------------------------------------------------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _launch(accelerate_config: str, export: Path, model: Path, out: Path, tmp_path: Path) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_CACHE": str(tmp_path / "hf_cache"),
           "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent)) or "accelerate"
    cmd = [accelerate, "launch", "--config_file", str(REPO / "training" / "accelerate" / accelerate_config),
           "--num_processes", "2", "--mixed_precision", "no", "--main_process_port", str(_free_port()),
           str(SFT), "--config", str(TINY_RECIPE), "--dataset_name", str(export),
           "--model_name_or_path", str(model), "--output_dir", str(out), "--use_cpu", "true", "--bf16", "false",
           "--max_steps", "2", "--per_device_train_batch_size", "2"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return json.loads((out / sft.DATA_MANIFEST).read_text())


@pytest.mark.multiprocess
@pytest.mark.xdist_group("multiprocess")
def test_two_process_ddp_on_cpu(export, tiny_models, tmp_path):
    from transformers import AutoModelForImageTextToText

    out = tmp_path / "ddp"
    manifest = _launch("multi_gpu.yaml", export, tiny_models["llava"], out, tmp_path)
    assert manifest["world_size"] == 2 and manifest["distributed_type"] == "MULTI_CPU"
    AutoModelForImageTextToText.from_pretrained(out)


@pytest.mark.multiprocess
@pytest.mark.xdist_group("multiprocess")
def test_two_process_deepspeed_zero3_on_cpu(export, tiny_models, tmp_path):
    pytest.importorskip("deepspeed", reason="DS_BUILD_OPS=0 pip install deepspeed")
    from transformers import AutoModelForImageTextToText

    out = tmp_path / "zero3"
    manifest = _launch("deepspeed_zero3.yaml", export, tiny_models["llava"], out, tmp_path)
    assert manifest["world_size"] == 2 and manifest["distributed_type"] == "DEEPSPEED"
    model = AutoModelForImageTextToText.from_pretrained(out)  # ZeRO-3 shards were gathered into one checkpoint
    before = _state_dict(tiny_models["llava"])
    after = dict(model.state_dict())
    assert _lm_head(after).shape == _lm_head(before).shape
    assert not np.array_equal(_lm_head(before), _lm_head(after))
