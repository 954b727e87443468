"""The best-epoch rule (App. D: each seed reported at its best validation epoch), in one place
for every job that evaluates after each epoch.

best = the epoch with the largest finite `key`; an epoch whose value is NaN, infinite or not a
number never wins (max() over NaN keeps whichever epoch came first). Ties go to the earliest.
"""
from __future__ import annotations

import math


def _finite(value) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def best_epoch(history: list[dict], key: str) -> dict | None:
    """The history entry with the best finite `key`, or None when no epoch has one (the caller
    then reports the last scored epoch, whose value the tables skip as not a number)."""
    scored = [h for h in history if _finite(h.get(key))]
    if not scored:
        return None
    return max(scored, key=lambda h: h[key])  # max keeps the first of equal values
