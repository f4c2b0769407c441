"""Scoring items with a vision-language model: generation or option likelihood, sharded over processes.

Both modes build the same prompt: the processor's chat template with one user turn holding the image
and the question, plus the generation prompt (LLaVA / Idefics3 / Qwen2-VL style templates).

* ``generate``: greedy decoding (left padding), the output parsed by :func:`.parsing.parse_letter`
  (choice) or :func:`.grounding.parse_boxes` (grounding; decoded with the box-style special tokens
  kept, e.g. Qwen2-VL's ``<|box_start|>``).
* ``likelihood``: no generation. Each option letter's continuation (as the chat template writes an
  assistant turn, e.g. ``" B"``) is scored by its summed log-probability in batched forwards with
  right padding, so a row's numbers do not depend on what it was batched with. When every letter is a
  single token, one forward per item scores all letters at once. Grounding items have no options
  to score: they are always generated.

Under ``accelerate launch`` each process scores items ``index % world_size == rank`` and
:func:`gather_predictions` collects all of them once, checks that every item came back exactly once
and restores the original order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from .items import EvalItem
from .parsing import LETTERS
from .scoring import Prediction, parse_answer

MODES = ("generate", "likelihood")
GROUNDING_MAX_NEW_TOKENS = 128
# special tokens that carry box answers (Qwen2-VL, MiniGPT-v2 style); kept when decoding grounding answers
BOX_TOKENS = frozenset({"<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>", "<|box_end|>",
                        "<p>", "</p>", "<delim>"})


@dataclass
class Scorer:
    """A loaded model and processor with the prompt logic shared by both modes."""

    model: Any
    processor: Any
    device: Any

    @property
    def tokenizer(self) -> Any:
        return getattr(self.processor, "tokenizer", self.processor)

    def prompt(self, question: str) -> str:
        """The chat-templated prompt text (image placeholder + question + generation prompt)."""
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
        if getattr(self.processor, "chat_template", None) is None and getattr(self.tokenizer, "chat_template", None) is None:
            raise ValueError(
                "the processor has no chat template; save one with the model "
                "(processor.chat_template = ...; processor.save_pretrained(PATH))"
            )
        return self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def continuation(self, prompt: str, letter: str) -> str:
        """The text an assistant turn answering ``letter`` adds after ``prompt`` (e.g. ``" B"``)."""
        messages = [
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Q"}]},
            {"role": "assistant", "content": [{"type": "text", "text": letter}]},
        ]
        try:
            head = self.processor.apply_chat_template(messages[:1], add_generation_prompt=True, tokenize=False)
            full = self.processor.apply_chat_template(messages, tokenize=False)
        except Exception:  # templates that reject list content for the assistant
            return letter
        if not full.startswith(head):
            return letter
        rest = full[len(head):]
        at = rest.find(letter)
        return rest[: at + len(letter)] if at >= 0 else letter

    def encode(self, texts: Sequence[str], images: Sequence[Any], padding_side: str) -> Any:
        self.tokenizer.padding_side = padding_side
        batch = self.processor(
            text=list(texts), images=[[im] for im in images], return_tensors="pt", padding=True
        )
        return batch.to(self.device)


def load_scorer(model_name_or_path: str, device: Any = None, dtype: str = "auto") -> Scorer:
    """Load ``AutoProcessor`` + ``AutoModelForImageTextToText`` in eval mode on ``device``."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    torch_dtype = "auto" if dtype == "auto" else getattr(torch, dtype)
    processor = AutoProcessor.from_pretrained(model_name_or_path)
    model = AutoModelForImageTextToText.from_pretrained(model_name_or_path, dtype=torch_dtype)
    device = device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device).eval()
    return Scorer(model=model, processor=processor, device=device)


def _rgb(image: Any) -> Any:
    return image.convert("RGB") if getattr(image, "mode", "RGB") != "RGB" else image


def batched(seq: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(seq), size):
        yield seq[i : i + size]


def _prediction(it: EvalItem, prompt: str, raw: str, scores: dict[str, float] | None = None) -> Prediction:
    """The record of one answer; likelihood answers (``scores``) are letters already."""
    return Prediction(
        id=it.id, config=it.config, prompt=prompt, raw_output=raw,
        parsed=raw if scores is not None else parse_answer(raw, it.task, it.options),
        gold=it.gold, gold_label=it.gold_label, options=it.options, scores=scores, task=it.task,
        boxes=it.boxes if it.task == "grounding" else None, rotation=it.rotation,
    )


def decode(tokenizer: Any, ids: Any, keep: frozenset[str] = frozenset()) -> list[str]:
    """Decode generated ids without special tokens, except those in ``keep``."""
    if not keep:
        return tokenizer.batch_decode(ids, skip_special_tokens=True)
    drop = sorted(set(getattr(tokenizer, "all_special_tokens", [])) - keep, key=len, reverse=True)
    texts = tokenizer.batch_decode(ids, skip_special_tokens=False)
    for tok in drop:
        texts = [t.replace(tok, "") for t in texts]
    return texts


def generate_batch(scorer: Scorer, items: Sequence[EvalItem], max_new_tokens: int = 16) -> list[Prediction]:
    """Greedy answers for a batch (all choice or all grounding), parsed deterministically."""
    import torch

    prompts = [scorer.prompt(it.question) for it in items]
    batch = scorer.encode(prompts, [_rgb(it.image) for it in items], padding_side="left")
    tok = scorer.tokenizer
    with torch.inference_mode():
        out = scorer.model.generate(
            **batch, max_new_tokens=max_new_tokens, do_sample=False,
            pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
        )
    grounding = any(it.task == "grounding" for it in items)
    texts = decode(tok, out[:, batch["input_ids"].shape[1] :], BOX_TOKENS if grounding else frozenset())
    return [_prediction(it, p, t) for it, p, t in zip(items, prompts, texts)]


def _continuation_ids(scorer: Scorer, prompt: str, cont: str) -> list[int]:
    tok = scorer.tokenizer
    base = tok(prompt, add_special_tokens=False)["input_ids"]
    full = tok(prompt + cont, add_special_tokens=False)["input_ids"]
    if full[: len(base)] == base and len(full) > len(base):
        return full[len(base) :]
    return tok(cont, add_special_tokens=False)["input_ids"]


def likelihood_batch(scorer: Scorer, items: Sequence[EvalItem], per_option: bool = False) -> list[Prediction]:
    """Score every option letter of each item by log-probability; the best letter is the answer.

    ``per_option`` forces one sequence per (item, option) even when letters are single tokens (the
    general path, used for multi-token continuations; tests check both paths agree).
    """
    import torch

    prompts = [scorer.prompt(it.question) for it in items]
    conts = [[scorer.continuation(p, L) for L in LETTERS[: len(it.options)]] for it, p in zip(items, prompts)]
    cont_ids = [[_continuation_ids(scorer, p, c) for c in cs] for p, cs in zip(prompts, conts)]
    scores: list[dict[str, float]] = []
    single = not per_option and all(len(ids) == 1 for row in cont_ids for ids in row)
    with torch.inference_mode():
        if single:  # one forward per item; next-token distribution at the last prompt token
            batch = scorer.encode(prompts, [_rgb(it.image) for it in items], padding_side="right")
            logits = scorer.model(**batch).logits.float()
            last = batch["attention_mask"].sum(dim=1) - 1
            logp = torch.log_softmax(logits[torch.arange(len(items)), last], dim=-1)
            for r, row in enumerate(cont_ids):
                scores.append({LETTERS[j]: float(logp[r, ids[0]]) for j, ids in enumerate(row)})
        else:  # one sequence per (item, option); sum log-probs of the continuation tokens
            texts, images, lens = [], [], []
            for it, p, cs, ids in zip(items, prompts, conts, cont_ids):
                for c, i in zip(cs, ids):
                    texts.append(p + c)
                    images.append(_rgb(it.image))
                    lens.append(len(i))
            batch = scorer.encode(texts, images, padding_side="right")
            logp = torch.log_softmax(scorer.model(**batch).logits.float(), dim=-1)
            ends = batch["attention_mask"].sum(dim=1)
            flat: list[float] = []
            for r, m in enumerate(lens):
                end = int(ends[r])
                targets = batch["input_ids"][r, end - m : end]
                flat.append(float(logp[r, end - m - 1 : end - 1].gather(-1, targets[:, None]).sum()))
            k = 0
            for it in items:
                scores.append({LETTERS[j]: flat[k + j] for j in range(len(it.options))})
                k += len(it.options)
    preds = []
    for it, p, sc in zip(items, prompts, scores):
        best = max(sc, key=lambda L: (sc[L], -LETTERS.index(L)))  # ties -> earliest letter, deterministic
        preds.append(_prediction(it, p, best, scores=sc))
    return preds


def score_items(
    scorer: Scorer,
    items: Sequence[EvalItem],
    mode: str = "generate",
    batch_size: int = 8,
    max_new_tokens: int = 16,
    progress: Callable[[int], None] | None = None,
    grounding_max_new_tokens: int = GROUNDING_MAX_NEW_TOKENS,
) -> list[tuple[int, Prediction]]:
    """Score ``items`` in batches of one task each; returns ``(item.index, prediction)`` pairs.

    Grounding items are generated in either mode, with ``grounding_max_new_tokens``.
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {MODES}")
    if batch_size < 1:
        raise ValueError("--batch_size must be at least 1")
    out: list[tuple[int, Prediction]] = []
    for task in ("choice", "grounding"):
        for chunk in batched([it for it in items if it.task == task], batch_size):
            if task == "grounding":
                preds = generate_batch(scorer, chunk, grounding_max_new_tokens)
            elif mode == "generate":
                preds = generate_batch(scorer, chunk, max_new_tokens)
            else:
                preds = likelihood_batch(scorer, chunk)
            out.extend((it.index, p) for it, p in zip(chunk, preds))
            if progress:
                progress(len(chunk))
    return out


def shard(items: Sequence[EvalItem], rank: int, world_size: int) -> list[EvalItem]:
    """This process's items: every ``world_size``-th item starting at ``rank`` (balanced across configs)."""
    return [it for it in items if it.index % world_size == rank]


def gather_predictions(local: list[tuple[int, Prediction]], total: int, state: Any = None) -> list[Prediction]:
    """Gather every process's ``(index, prediction)`` pairs once; check none is lost or duplicated."""
    pairs = local
    if state is not None and state.num_processes > 1:
        from accelerate.utils import gather_object

        pairs = gather_object(local)
    indices = sorted(i for i, _ in pairs)
    if indices != list(range(total)):
        seen = set(indices)
        lost = [i for i in range(total) if i not in seen]
        raise RuntimeError(
            f"gathered {len(indices)} predictions for {total} items "
            f"(lost: {lost[:5]}, duplicated: {len(indices) - len(seen)}); refusing to write partial results"
        )
    return [p for _, p in sorted(pairs, key=lambda x: x[0])]
