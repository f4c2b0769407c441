"""Tiny fixtures for tests and benchmarks: a random tiny LLaVA and a tiny export on disk.

Nothing here downloads anything. The model comes from :mod:`medmat_builder.tiny_models` (seeded
random weights, a tokenizer trained locally), and the export follows the layout ``medmat build``
writes (``DIR/subset_NN/{train,test}-00000-of-00001.parquet`` plus a README with a ``configs:`` block).

The numbers such models produce mean nothing medically: they are random networks on synthetic images.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

_LABELS = ["Normal", "Pneumonia", "COVID-19", "Tuberculosis", "Fibrosis", "Nodule"]


def tiny_model(path: str | Path, seed: int = 0) -> Path:
    """A tiny random LLaVA at ``path`` (:func:`medmat_builder.tiny_models.create_tiny_model`); an
    existing model at ``path`` is reused."""
    from medmat_builder.tiny_models import create_tiny_model

    path = Path(path)
    if (path / "config.json").exists():
        return path
    return create_tiny_model("llava", path, seed=seed)


def _box_row(rng: random.Random) -> tuple[str, list[str], str, str, list[dict]]:
    """Question, options, answer, answer label and boxes of a grounding item (1-2 boxes, 0-1000 grid)."""
    from medmat_builder.build.boxes import format_box_answer
    from medmat_builder.records import BOX_DIRECTIVE

    boxes = []
    for _ in range(rng.choice([1, 2])):
        x1, y1 = rng.randrange(0, 600), rng.randrange(0, 600)
        boxes.append({"label": "Lesion", "x1": x1, "y1": y1, "x2": x1 + rng.randrange(50, 400),
                      "y2": y1 + rng.randrange(50, 400)})
    answer = format_box_answer([(b["label"], b["x1"], b["y1"], b["x2"], b["y2"]) for b in boxes])
    return f"Locate the lesion in this image.\n{BOX_DIRECTIVE}", [], answer, "Lesion", boxes


def make_tiny_export(
    root: str | Path, configs: Sequence[str] = ("subset_28",), n_train: int = 8, n_test: int = 10, seed: int = 0,
    grounding_configs: Sequence[str] = (),
) -> Path:
    """Write a tiny export in the ``medmat build`` layout with random images and 2-4 options per item.

    Configs in ``grounding_configs`` get grounding items instead: no options, a box answer and ``boxes``.
    """
    import datasets
    from PIL import Image

    from medmat_builder.evaluate.parsing import LETTERS
    from medmat_builder.records import ANSWER_DIRECTIVE

    root = Path(root)
    rng = random.Random(seed)
    lines = ["---", "configs:"]
    for config in [*configs, *grounding_configs]:
        lines += [f"- config_name: {config}", "  data_files:"]
        for split, n in (("train", n_train), ("test", n_test)):
            rows: dict[str, list] = {k: [] for k in (
                "id", "image", "question", "options", "answer", "answer_label", "labels", "boxes",
                "modality", "area", "task", "subset", "source", "license")}
            for i in range(n):
                if config in grounding_configs:
                    q, options, answer, label, boxes = _box_row(rng)
                else:
                    k = rng.choice([2, 3, 4])
                    options = rng.sample(_LABELS, k)
                    gold = rng.randrange(k)
                    q = "Which condition does this chest X-ray show?\n" + "\n".join(
                        f"{LETTERS[j]}. {o}" for j, o in enumerate(options)
                    ) + "\n" + ANSWER_DIRECTIVE
                    answer, label, boxes = LETTERS[gold], options[gold], []
                # random blocks, not a flat colour: distinct perceptual hashes, as real images have
                img = Image.frombytes("RGB", (8, 8), bytes(rng.randrange(256) for _ in range(192)))
                img = img.resize((32, 32), Image.Resampling.NEAREST)
                rows["id"].append(f"{config}-{split}-{i:04d}")
                rows["image"].append(img)
                rows["question"].append(q)
                rows["options"].append(options)
                rows["answer"].append(answer)
                rows["answer_label"].append(label)
                rows["labels"].append([label])
                rows["boxes"].append(boxes)
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
