"""Turn a selected image-label pair into one Med-MAT question (the paper's Figure 8 template).

Classification: one of the subset's 6 instructions, then at most 4 lettered options (the answer plus
distractors drawn from the subset's other labels), then the answer directive. Multi-label subsets
answer with the comma-joined label set as one option; their distractors are other label sets seen
in the subset (and single labels). Detection/segmentation: an instruction to locate the structure
and a box answer (see :mod:`medmat_builder.build.boxes`). All randomness comes from a per-record RNG
seeded by (seed, config, record id), so a record's question never depends on build order.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from medmat_builder.records import ANSWER_DIRECTIVE, BOX_DIRECTIVE, LETTERS, MAX_OPTIONS


@dataclass(frozen=True)
class Question:
    question: str
    options: list[str]
    answer: str
    answer_label: str


def record_rng(seed: int, config: str, record_id: str) -> random.Random:
    """A deterministic RNG for one record, independent of build order and process count."""
    return random.Random(f"{seed}:{config}:{record_id}")


def label_set_text(labels: Sequence[str], order: Sequence[str]) -> str:
    """Canonical text of a label set: labels in the subset's declared order, comma-separated."""
    rank = {lab: i for i, lab in enumerate(order)}
    return ", ".join(sorted(dict.fromkeys(labels), key=lambda x: (rank.get(x, len(rank)), x)))


def choose_options(answer: str, pool: Sequence[str], rng: random.Random, max_options: int = MAX_OPTIONS) -> list[str]:
    """The answer plus up to ``max_options - 1`` distinct distractors from ``pool``, shuffled."""
    candidates = sorted({p for p in pool if p != answer})
    distractors = rng.sample(candidates, k=min(max_options - 1, len(candidates)))
    options = [answer, *distractors]
    rng.shuffle(options)
    return options


def format_question(instruction: str, options: Sequence[str]) -> str:
    """Figure 8: the instruction, one ``X. option`` line per option, then the answer directive."""
    lines = [instruction.strip()]
    lines += [f"{LETTERS[i]}. {opt}" for i, opt in enumerate(options)]
    lines.append(ANSWER_DIRECTIVE)
    return "\n".join(lines)


def classification_question(
    instructions: Sequence[str], answer_text: str, pool: Sequence[str], rng: random.Random
) -> Question:
    """Build a single-choice question whose correct option is ``answer_text``."""
    instruction = rng.choice(list(instructions))
    options = choose_options(answer_text, pool, rng)
    letter = LETTERS[options.index(answer_text)]
    return Question(format_question(instruction, options), options, letter, answer_text)


def detection_question(instructions: Sequence[str], box_answer: str, label_text: str, rng: random.Random) -> Question:
    """A locate-the-structure question; the answer is the box text, no options."""
    instruction = rng.choice(list(instructions))
    return Question(f"{instruction.strip()}\n{BOX_DIRECTIVE}", [], box_answer, label_text)
