"""Tiny, randomly initialised vision-language models of real architectures, made offline.

The demo, the tests and CI need a model that goes through exactly the code a real backbone goes
through (processor, chat template, ``SFTTrainer``, ``from_pretrained``) but trains in seconds on a
CPU. :func:`create_tiny_model` builds one from scratch: a byte-level BPE tokenizer trained locally
on a fixed corpus, a chat template in the style of the real checkpoint, an image processor sized to
the tiny vision tower, and random weights drawn from a fixed seed. Nothing is downloaded, and the
same arguments give the same weights.

Architectures:

- ``llava``: :class:`~transformers.LlavaForConditionalGeneration` (CLIP vision tower + Llama),
  the family of the paper's LLaVA-1.5-7B, with a ``USER: ... ASSISTANT:`` template;
- ``idefics3``: :class:`~transformers.Idefics3ForConditionalGeneration` (SigLIP-like tower +
  Llama), the SmolVLM / Idefics3 family;
- ``qwen2_vl``: :class:`~transformers.Qwen2VLForConditionalGeneration`; its processor needs
  ``torchvision``, so this one is only offered where ``torchvision`` imports.

The models are useless for anything but plumbing: they have a few hundred thousand parameters.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Literal

Arch = Literal["llava", "idefics3", "qwen2_vl"]
ARCHS: tuple[str, ...] = ("llava", "idefics3", "qwen2_vl")
IMAGE_SIZE = 32
"""Side of the (square) images the tiny vision towers see; inputs of any size are resized to it."""

MARKER_FILE = "medmat_tiny_model.json"
"""Written next to the weights so that tools can tell a tiny model from a real one."""

_CORPUS_WORDS = """
the a an of and or in on to is are was with which what this that these image images scan shows show
picture photo figure medical patient tissue organ lesion tumor tumour cancer benign malignant normal
abnormal disease healthy class classify identify determine diagnose diagnosis finding findings present
absent category type grade stage level severity x-ray xray ct mri ultrasound dermoscopy fundus oct
endoscopy pathology histology microscopy cell cells blood skin eye retina lung lungs chest brain breast
colon kidney liver heart bone knee hand cervix oral dental covid pneumonia tuberculosis glaucoma
cataract melanoma nevus keratosis carcinoma adenoma polyp ulcer hemorrhage edema fracture nodule mass
answer option options choice choices letter given from directly following best describes please
question user assistant system yes no none other unknown left right upper lower
A B C D E . , : ; ? ! ( ) [ ] - _ / 0 1 2 3 4 5 6 7 8 9 10 100 1000
"""


def _corpus() -> list[str]:
    """Fixed training text for the tokenizer: vocabulary words plus Med-MAT-style questions."""
    words = _CORPUS_WORDS.split()
    lines = [" ".join(words[i : i + 12]) for i in range(0, len(words), 12)]
    question = (
        "What does this image show?\nA. normal\nB. abnormal\nC. benign\nD. malignant\n"
        "Answer with the option's letter from the given choices directly."
    )
    boxes = "[12, 40, 388, 901]; [0, 0, 1000, 1000]"
    return lines * 4 + [question] * 8 + [boxes] * 4 + ["USER: ASSISTANT: User: Assistant:"] * 4


def _train_tokenizer(special_tokens: list[str], bos: str, eos: str, pad: str, unk: str, vocab_size: int = 640):
    """Train a byte-level BPE tokenizer on the fixed corpus and wrap it as a transformers tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token=unk))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_corpus(), trainer=trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token=bos, eos_token=eos, pad_token=pad, unk_token=unk
    )
    wrapped.model_max_length = 2048
    return wrapped


# Jinja chat templates. Content may be a plain string or a list of {"type": "image"|"text"} blocks.
_LLAVA_TEMPLATE = (
    "{% for message in messages %}{% if not loop.first %} {% endif %}"
    "{% if message['role'] == 'user' %}USER: {% elif message['role'] == 'assistant' %}ASSISTANT: {% endif %}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for block in message['content'] %}"
    "{% if block['type'] == 'image' %}<image>\n{% elif block['type'] == 'text' %}{{ block['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{% if message['role'] == 'assistant' %}</s>{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %} ASSISTANT:{% endif %}"
)

_IDEFICS3_TEMPLATE = (
    "<|im_start|>"
    "{% for message in messages %}"
    "{{ message['role'] | capitalize }}:"
    "{% if message['content'] is string %}{% if message['role'] == 'assistant' %} {% endif %}{{ message['content'] }}"
    "{% else %}{% for block in message['content'] %}"
    "{% if block['type'] == 'image' %}<image>"
    "{% elif block['type'] == 'text' %}{% if message['role'] == 'assistant' %} {% endif %}{{ block['text'] }}"
    "{% endif %}{% endfor %}{% endif %}"
    "<end_of_utterance>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)

_QWEN2_VL_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for block in message['content'] %}"
    "{% if block['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif block['type'] == 'text' %}{{ block['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


#: The size of every tiny tower (text and vision alike).
_TOWER = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4)


def _text_config_kwargs(vocab_size: int, pad_id: int, bos_id: int, eos_id: int) -> dict:
    return dict(
        vocab_size=vocab_size,
        **_TOWER,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        pad_token_id=pad_id,
        bos_token_id=bos_id,
        eos_token_id=eos_id,
        tie_word_embeddings=False,
    )


def _build_llava():
    from transformers import (
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    tokenizer = _train_tokenizer(["<unk>", "<s>", "</s>", "<pad>", "<image>"], "<s>", "</s>", "<pad>", "<unk>")
    ids = tokenizer.convert_tokens_to_ids
    vision = CLIPVisionConfig(
        **_TOWER,
        image_size=IMAGE_SIZE,
        patch_size=8,
        projection_dim=32,
    )
    text = LlamaConfig(**_text_config_kwargs(len(tokenizer), ids("<pad>"), ids("<s>"), ids("</s>")))
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=ids("<image>"),
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
        projector_hidden_act="gelu",
    )
    config.pad_token_id = ids("<pad>")
    model = LlavaForConditionalGeneration(config)
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": IMAGE_SIZE},
        crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
    )
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=8,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,  # CLIP's CLS token, dropped by the "default" strategy
        chat_template=_LLAVA_TEMPLATE,
    )
    return model, processor


def _build_idefics3():
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration, Idefics3Processor
    from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil

    grid_tokens = [f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)]
    specials = ["<unk>", "<|im_start|>", "<end_of_utterance>", "<pad>", "<image>", "<fake_token_around_image>",
                "<global-img>", *grid_tokens]
    tokenizer = _train_tokenizer(specials, "<|im_start|>", "<end_of_utterance>", "<pad>", "<unk>")
    ids = tokenizer.convert_tokens_to_ids
    patch_size, scale_factor = 8, 2
    config = Idefics3Config(
        vision_config=dict(
            **_TOWER,
            image_size=IMAGE_SIZE,
            patch_size=patch_size,
        ),
        text_config=_text_config_kwargs(len(tokenizer), ids("<pad>"), ids("<|im_start|>"), ids("<end_of_utterance>")),
        image_token_id=ids("<image>"),
        scale_factor=scale_factor,
        tie_word_embeddings=False,
        pad_token_id=ids("<pad>"),
    )
    model = Idefics3ForConditionalGeneration(config)
    image_processor = Idefics3ImageProcessorPil(
        size={"longest_edge": IMAGE_SIZE},
        max_image_size={"longest_edge": IMAGE_SIZE},
        do_image_splitting=False,
    )
    image_seq_len = (IMAGE_SIZE // patch_size) ** 2 // scale_factor**2
    processor = Idefics3Processor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        image_seq_len=image_seq_len,
        chat_template=_IDEFICS3_TEMPLATE,
    )
    return model, processor


def _build_qwen2_vl():
    if importlib.util.find_spec("torchvision") is None:
        raise RuntimeError(
            "A tiny Qwen2-VL needs torchvision (its processor imports it). Install torchvision matching your torch "
            "build, or use --arch llava / --arch idefics3, which do not need it."
        )
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLProcessor
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    try:
        from transformers import Qwen2VLVideoProcessor
    except ImportError:  # pragma: no cover - depends on the transformers build
        Qwen2VLVideoProcessor = None  # noqa: N806

    specials = ["<unk>", "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                "<|image_pad|>", "<|video_pad|>"]
    tokenizer = _train_tokenizer(specials, "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<unk>")
    ids = tokenizer.convert_tokens_to_ids
    text = _text_config_kwargs(len(tokenizer), ids("<|endoftext|>"), ids("<|im_start|>"), ids("<|im_end|>"))
    head_dim = text["hidden_size"] // text["num_attention_heads"]
    text["rope_parameters"] = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 1, 1]}
    assert sum(text["rope_parameters"]["mrope_section"]) * 2 == head_dim
    config = Qwen2VLConfig(
        text_config=text,
        vision_config=dict(depth=2, embed_dim=32, hidden_size=32, num_heads=4, mlp_ratio=2, patch_size=8,
                           spatial_merge_size=2, temporal_patch_size=2, in_channels=3),
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
        tie_word_embeddings=False,
    )
    model = Qwen2VLForConditionalGeneration(config)
    pixels = IMAGE_SIZE * IMAGE_SIZE
    image_processor = Qwen2VLImageProcessorPil(
        min_pixels=pixels, max_pixels=pixels, patch_size=8, merge_size=2, temporal_patch_size=2
    )
    kwargs = {"chat_template": _QWEN2_VL_TEMPLATE}
    if Qwen2VLVideoProcessor is not None:
        kwargs["video_processor"] = Qwen2VLVideoProcessor(patch_size=8, merge_size=2, temporal_patch_size=2)
    processor = Qwen2VLProcessor(image_processor=image_processor, tokenizer=tokenizer, **kwargs)
    return model, processor


_BUILDERS = {"llava": _build_llava, "idefics3": _build_idefics3, "qwen2_vl": _build_qwen2_vl}


def available_archs() -> list[str]:
    """The architectures :func:`create_tiny_model` can build in this environment."""
    found = ["llava", "idefics3"]
    if importlib.util.find_spec("torchvision") is not None:
        found.append("qwen2_vl")
    return found


def is_tiny_model(path: str | Path) -> bool:
    """True if ``path`` holds a model written by :func:`create_tiny_model`."""
    return (Path(path) / MARKER_FILE).is_file()


def create_tiny_model(arch: Arch, out_dir: str | Path, seed: int = 0, overwrite: bool = False) -> Path:
    """Build a tiny random ``arch`` model with its processor and save both with ``save_pretrained``.

    Args:
        arch: one of ``llava``, ``idefics3``, ``qwen2_vl`` (the last needs torchvision).
        out_dir: folder to write; ``from_pretrained(out_dir)`` loads the model and the processor.
        seed: weights are drawn from ``torch.manual_seed(seed)``; same seed, same weights.
        overwrite: replace an existing tiny model in ``out_dir`` (a folder holding anything else is
            never overwritten).

    Returns:
        ``out_dir`` as a :class:`~pathlib.Path`.
    """
    import torch

    if arch not in _BUILDERS:
        raise ValueError(f"Unknown tiny architecture {arch!r}; choose one of {', '.join(ARCHS)}.")
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        if not is_tiny_model(out):
            raise FileExistsError(f"{out} exists and is not a tiny model made by medmat; choose another --out.")
        if not overwrite:
            return out
    fork_devices: list = []
    with torch.random.fork_rng(devices=fork_devices):
        torch.manual_seed(seed)
        model, processor = _BUILDERS[arch]()
    model.eval()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    n_params = sum(p.numel() for p in model.parameters())
    marker = {"arch": arch, "seed": seed, "parameters": n_params, "image_size": IMAGE_SIZE,
              "model_class": type(model).__name__}
    (out / MARKER_FILE).write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n")
    return out
