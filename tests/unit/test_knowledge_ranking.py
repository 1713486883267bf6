"""Reciprocal rank fusion: agreement between rankings beats one first place."""

from __future__ import annotations

import pytest

from agent_platform.knowledge.ranking import RRF_K, reciprocal_rank_fusion


def test_an_item_both_rankings_place_well_comes_first() -> None:
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["d", "b", "e"]])
    assert [key for key, _ in fused] == ["b", "a", "d", "c", "e"]
    assert fused[0][1] == pytest.approx(2 / (RRF_K + 2))


def test_one_ranking_keeps_its_order_and_ties_keep_first_seen() -> None:
    assert [key for key, _ in reciprocal_rank_fusion([["x", "y"], []])] == ["x", "y"]
    assert [key for key, _ in reciprocal_rank_fusion([["x"], ["y"]])] == ["x", "y"]
    assert reciprocal_rank_fusion([]) == []
