"""How many records each label gets: test strictly balanced, train capped and balanced as far as possible.

Single-label test sets give every label the same count, at most ``test_max_per_label`` (the paper
balances test). Train (cap 3,000) and the test sets of multi-label and detection/segmentation subsets
(cap ``test_cap``) share their cap by water-filling (:func:`balanced_quotas`): labels with few records
keep all of them, the others share the rest evenly.
"""

from __future__ import annotations

from medmat_builder.build.settings import BuildSettings


def balanced_quotas(available: dict[str, int], cap: int) -> dict[str, int]:
    """Water-filling: share ``cap`` among keys as evenly as their availability allows."""
    quotas = {k: 0 for k in available}
    remaining = cap
    keys = sorted(available, key=lambda k: (available[k], k))
    for i, k in enumerate(keys):
        share = remaining // (len(keys) - i)
        quotas[k] = min(available[k], share)
        remaining -= quotas[k]
    for k in keys:  # hand out the rounding leftovers
        if remaining <= 0:
            break
        if quotas[k] < available[k]:
            quotas[k] += 1
            remaining -= 1
    return quotas


def quotas_for_test(available: dict[str, int], kind: str, settings: BuildSettings) -> dict[str, int]:
    """Test quota per balancing key (``available``: candidates per key in test)."""
    if kind == "single-label":
        per = min([*available.values(), settings.test_max_per_label]) if available else 0
        return {k: per for k in available}
    return balanced_quotas(available, settings.test_cap)


def quotas_for_train(available: dict[str, int], settings: BuildSettings) -> dict[str, int]:
    """Train quota per balancing key (``available``: candidates per key in train)."""
    return balanced_quotas(available, settings.train_cap)
