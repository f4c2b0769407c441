"""Tiny fixtures for tests and benchmarks: a random tiny LLaVA and a tiny export on disk.

Nothing here downloads anything. The model is randomly initialised (seeded), its tokenizer is trained
locally with the ``tokenizers`` library, and the export follows the layout ``medmat build`` writes
(``DIR/subset_NN/{train,test}-00000-of-00001.parquet`` plus a README with a ``configs:`` block).
When :mod:`medmat_builder.tiny_models` is available, :func:`tiny_model` uses it instead of the local
LLaVA builder, so tests follow the project's own tiny models.

The numbers such models produce mean nothing medically: they are random networks on synthetic images.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}USER: {% else %}ASSISTANT: {% endif %}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}<image>{{ '\\n' }}{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ '\\n' }}{% else %}</s>{{ '\\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)

_LABELS = ["Normal", "Pneumonia", "COVID-19", "Tuberculosis", "Fibrosis", "Nodule"]


def _train_tokenizer(corpus: Sequence[str]):
    from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<unk>", "<s>", "</s>", "<pad>", "<image>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        extra_special_tokens={"image_token": "<image>"},
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def make_tiny_llava(path: str | Path, seed: int = 0) -> Path:
    """Save a tiny random LLaVA (CLIP vision tower + Llama text model) with processor to ``path``."""
    import torch
    from transformers import (
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )
    from transformers.models.llava.image_processing_pil_llava import LlavaImageProcessorPil

    path = Path(path)
    corpus = [f"{c}. {lab}" for lab in _LABELS for c in "ABCD"]
    corpus += ["USER: ASSISTANT: Answer with the option's letter from the given choices directly."]
    corpus += ["Which condition does this chest X-ray show? What is shown in this image?"] * 3
    tokenizer = _train_tokenizer(corpus)
    image_size, patch = 28, 14
    vision = CLIPVisionConfig(
        hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        image_size=image_size, patch_size=patch, projection_dim=16,
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    config = LlavaConfig(
        vision_config=vision, text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        image_seq_length=(image_size // patch) ** 2 + 1, vision_feature_select_strategy="full",
        vision_feature_layer=-1,
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    image_processor = LlavaImageProcessorPil(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size},
        do_pad=False,
    )
    processor = LlavaProcessor(
        image_processor=image_processor, tokenizer=tokenizer, patch_size=patch,
        vision_feature_select_strategy="full", num_additional_image_tokens=1,
        chat_template=CHAT_TEMPLATE,
    )
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def tiny_model(path: str | Path, seed: int = 0) -> Path:
    """A tiny LLaVA at ``path``: :func:`medmat_builder.tiny_models.create_tiny_model` if available,
    else the local :func:`make_tiny_llava`. An existing model at ``path`` is reused."""
    path = Path(path)
    if (path / "config.json").exists():
        return path
    try:
        from medmat_builder.tiny_models import create_tiny_model
    except ImportError:
        return make_tiny_llava(path, seed=seed)
    return create_tiny_model("llava", path, seed=seed)


def make_tiny_export(
    root: str | Path, configs: Sequence[str] = ("subset_28",), n_train: int = 8, n_test: int = 10, seed: int = 0
) -> Path:
    """Write a tiny export in the ``medmat build`` layout with random images and 2-4 options per item."""
    import datasets
    from PIL import Image

    root = Path(root)
    rng = random.Random(seed)
    lines = ["---", "configs:"]
    for config in configs:
        lines += [f"- config_name: {config}", "  data_files:"]
        for split, n in (("train", n_train), ("test", n_test)):
            rows: dict[str, list] = {k: [] for k in (
                "id", "image", "question", "options", "answer", "answer_label", "labels", "boxes",
                "modality", "area", "task", "subset", "source", "license")}
            for i in range(n):
                k = rng.choice([2, 3, 4])
                options = rng.sample(_LABELS, k)
                gold = rng.randrange(k)
                # random blocks, not a flat colour: distinct perceptual hashes, as real images have
                img = Image.frombytes("RGB", (8, 8), bytes(rng.randrange(256) for _ in range(192)))
                img = img.resize((32, 32), Image.Resampling.NEAREST)
                q = "Which condition does this chest X-ray show?\n" + "\n".join(
                    f"{'ABCD'[j]}. {o}" for j, o in enumerate(options)
                ) + "\nAnswer with the option's letter from the given choices directly."
                rows["id"].append(f"{config}-{split}-{i:04d}")
                rows["image"].append(img)
                rows["question"].append(q)
                rows["options"].append(options)
                rows["answer"].append("ABCD"[gold])
                rows["answer_label"].append(options[gold])
                rows["labels"].append([options[gold]])
                rows["boxes"].append([])
                rows["modality"].append("X-ray")
                rows["area"].append("Lung")
                rows["task"].append("Diseases")
                rows["subset"].append(config)
                rows["source"].append("demo")
                rows["license"].append("CC-BY-4.0")
            features = datasets.Features({
                "id": datasets.Value("string"), "image": datasets.Image(), "question": datasets.Value("string"),
                "options": datasets.List(datasets.Value("string")), "answer": datasets.Value("string"),
                "answer_label": datasets.Value("string"), "labels": datasets.List(datasets.Value("string")),
                "boxes": datasets.List({"label": datasets.Value("string"), "x1": datasets.Value("int32"),
                                        "y1": datasets.Value("int32"), "x2": datasets.Value("int32"),
                                        "y2": datasets.Value("int32")}),
                **{k: datasets.Value("string") for k in
                   ("modality", "area", "task", "subset", "source", "license")},
            })
            ds = datasets.Dataset.from_dict(rows, features=features)
            out = root / config / f"{split}-00000-of-00001.parquet"
            out.parent.mkdir(parents=True, exist_ok=True)
            ds.to_parquet(str(out))
            if split == "train":
                lines += ["  - split: train", f"    path: {config}/train-*.parquet"]
            else:
                lines += ["  - split: test", f"    path: {config}/test-*.parquet"]
    lines += ["---", "", "Tiny synthetic export for tests (random images; means nothing medically).", ""]
    (root / "README.md").write_text("\n".join(lines))
    return root
