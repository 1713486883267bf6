"""Reciprocal rank fusion: one ranking out of several whose scores are not comparable
(a full-text rank and a vector distance), by the positions alone."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TypeVar

KeyT = TypeVar("KeyT", bound=Hashable)

# The constant of Cormack et al. (2009): it damps the weight of the very first places, so an
# item ranked well by both lists beats one ranked first by a single list.
RRF_K = 60


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[KeyT]], *, k: int = RRF_K
) -> list[tuple[KeyT, float]]:
    """Every item of the rankings with its fused score, best first (ties: first seen first)."""
    scores: dict[KeyT, float] = {}
    for ranking in rankings:
        for rank, key in enumerate(ranking, start=1):
            scores[key] = scores.get(key, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda item: item[1], reverse=True)
