"""Statistics for accuracies over a few hundred items: intervals, reference levels, paired tests.

* :func:`wilson_interval`: the Wilson score interval of a proportion (scipy's ``binomtest``);
* :func:`chance_level` / :func:`circular_chance_level`: the expected accuracy of uniform guessing;
* :func:`majority_level`: the accuracy of always answering the most common correct letter;
* :func:`paired_comparison`: two models on the same items, paired by item id, exact McNemar test.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

CONFIDENCE = 0.95
DEFAULT_ALPHA = 0.05
LETTER_BIAS_SHARE = 0.9  # warn when more than this share of the answers is one letter


def wilson_interval(correct: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval of ``correct / n``; ``(0.0, 1.0)`` when there is no item."""
    from scipy.stats import binomtest

    if n == 0:
        return (0.0, 1.0)
    if not 0 <= correct <= n:
        raise ValueError(f"correct must lie in 0..n, got {correct} of {n}")
    ci = binomtest(correct, n).proportion_ci(confidence_level=confidence, method="wilson")
    return (float(ci.low), float(ci.high))


def chance_level(option_counts: Sequence[int]) -> float | None:
    """Mean of 1/k over the items, k the number of options of each; None without items."""
    counts = [k for k in option_counts if k > 0]
    return sum(1 / k for k in counts) / len(counts) if counts else None


def circular_chance_level(option_counts: Sequence[int]) -> float | None:
    """Uniform guessing under circular evaluation: all k rotations right, mean of (1/k)^k."""
    counts = [k for k in option_counts if k > 0]
    return sum((1 / k) ** k for k in counts) / len(counts) if counts else None


def majority_level(golds: Sequence[str]) -> tuple[str | None, float | None]:
    """The most common correct letter (earliest letter on ties) and the accuracy of always answering it."""
    if not golds:
        return None, None
    counts = Counter(golds)
    letter = min(counts, key=lambda g: (-counts[g], g))
    return letter, counts[letter] / len(golds)


def top_answer_share(answers: Sequence[str | None]) -> tuple[str | None, float]:
    """The most frequent parsed answer (unparseable ones excluded) and its share of all answers."""
    counts = Counter(a for a in answers if a is not None)
    if not counts:
        return None, 0.0
    letter = min(counts, key=lambda a: (-counts[a], a))
    return letter, counts[letter] / len(answers)


def mcnemar_exact(a_only: int, b_only: int) -> float:
    """Two-sided exact McNemar p-value: a binomial test of the discordant pairs at 1/2 (1.0 when none)."""
    from scipy.stats import binomtest

    n = a_only + b_only
    if n == 0:
        return 1.0
    return float(binomtest(min(a_only, b_only), n, 0.5, alternative="two-sided").pvalue)


@dataclass(frozen=True)
class PairedComparison:
    """Model A vs model B on the items both answered (paired by item id)."""

    n: int  # paired items
    a_correct: int
    b_correct: int
    a_only: int  # items A got right and B wrong
    b_only: int
    p_value: float  # exact McNemar, two-sided
    unpaired: int = 0  # items only one of the two answered (left out of the test)

    @property
    def difference(self) -> float:
        """Accuracy of A minus accuracy of B on the paired items."""
        return (self.a_correct - self.b_correct) / self.n if self.n else 0.0

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "difference": self.difference, "test": "exact McNemar"}


def paired_comparison(a: Mapping[str, bool], b: Mapping[str, bool]) -> PairedComparison:
    """Compare per-item correctness maps (item id -> right) of two models on their common items."""
    common = sorted(set(a) & set(b))
    a_only = sum(a[i] and not b[i] for i in common)
    b_only = sum(b[i] and not a[i] for i in common)
    return PairedComparison(
        n=len(common), a_correct=sum(a[i] for i in common), b_correct=sum(b[i] for i in common),
        a_only=a_only, b_only=b_only, p_value=mcnemar_exact(a_only, b_only),
        unpaired=len(set(a) ^ set(b)),
    )
