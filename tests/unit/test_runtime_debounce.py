"""Debounce: one reply per burst of customer messages, whatever order things arrive in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from agent_platform.agent.runtime.debounce import PendingMessage, debounce
from agent_platform.agent.runtime.decisions import (
    Answer,
    SilenceReason,
    StaySilent,
    WaitReason,
    WaitUntil,
)

T0 = datetime(2024, 6, 3, 12, tzinfo=UTC)
DEBOUNCE = 10


def message(id_: str, seconds: float) -> PendingMessage:
    return PendingMessage(id_, T0 + timedelta(seconds=seconds))


THREE_QUICK = [message("a", 0), message("b", 2), message("c", 5)]


def test_the_newest_message_waits_for_the_customer_to_stop_typing() -> None:
    at_arrival = T0 + timedelta(seconds=5)
    assert debounce(
        THREE_QUICK, replying_to="c", debounce_seconds=DEBOUNCE, now=at_arrival
    ) == WaitUntil(T0 + timedelta(seconds=15), WaitReason.DEBOUNCE)


def test_then_answers_the_burst_together_oldest_first() -> None:
    assert debounce(
        THREE_QUICK, replying_to="c", debounce_seconds=DEBOUNCE, now=T0 + timedelta(seconds=15)
    ) == Answer(("a", "b", "c"))


def test_older_messages_stand_down_for_the_newest() -> None:
    for older in ("a", "b"):
        assert debounce(
            THREE_QUICK, replying_to=older, debounce_seconds=DEBOUNCE, now=T0 + timedelta(hours=1)
        ) == StaySilent(SilenceReason.SUPERSEDED)


def test_a_message_no_longer_pending_was_answered() -> None:
    assert debounce(THREE_QUICK, replying_to="z", debounce_seconds=DEBOUNCE, now=T0) == StaySilent(
        SilenceReason.ALREADY_ANSWERED
    )


def test_without_debounce_the_newest_pending_message_is_answered_at_once() -> None:
    assert debounce(
        THREE_QUICK, replying_to="c", debounce_seconds=0, now=T0 + timedelta(seconds=5)
    ) == Answer(("a", "b", "c"))


def test_a_redelivered_message_counts_once_at_its_first_arrival() -> None:
    redelivered = [*THREE_QUICK, message("b", 2), message("b", 30)]
    assert debounce(
        redelivered, replying_to="c", debounce_seconds=DEBOUNCE, now=T0 + timedelta(seconds=15)
    ) == Answer(("a", "b", "c"))


def test_messages_arriving_at_the_same_moment_are_ordered_by_id() -> None:
    together = [message("m2", 0), message("m1", 0)]
    assert debounce(together, replying_to="m2", debounce_seconds=0, now=T0) == Answer(("m1", "m2"))
    assert debounce(together, replying_to="m1", debounce_seconds=0, now=T0) == StaySilent(
        SilenceReason.SUPERSEDED
    )


# --- properties -----------------------------------------------------------------------------

bursts = st.lists(
    st.builds(message, st.text("abcdef", min_size=1, max_size=3), st.integers(0, 120)),
    min_size=1,
    max_size=8,
    unique_by=lambda pending: pending.id,
)


def newest(burst: list[PendingMessage]) -> PendingMessage:
    return max(burst, key=lambda pending: (pending.received_at, pending.id))


@given(bursts, st.data(), st.integers(0, 30), st.integers(0, 200))
def test_the_order_messages_are_listed_in_changes_nothing(
    burst: list[PendingMessage], data: st.DataObject, seconds: int, now_offset: int
) -> None:
    shuffled = data.draw(st.permutations(burst))
    duplicated = [*shuffled, *data.draw(st.lists(st.sampled_from(burst), max_size=4))]
    now = T0 + timedelta(seconds=now_offset)
    for pending in burst:
        assert debounce(
            duplicated, replying_to=pending.id, debounce_seconds=seconds, now=now
        ) == debounce(burst, replying_to=pending.id, debounce_seconds=seconds, now=now)


@given(bursts, st.integers(0, 30), st.integers(0, 200))
def test_exactly_the_newest_message_answers_and_a_newer_one_always_supersedes(
    burst: list[PendingMessage], seconds: int, now_offset: int
) -> None:
    now = T0 + timedelta(seconds=now_offset)
    last = newest(burst)
    quiet_from = last.received_at + timedelta(seconds=seconds)
    for pending in burst:
        decision = debounce(burst, replying_to=pending.id, debounce_seconds=seconds, now=now)
        if pending is not last:
            assert decision == StaySilent(SilenceReason.SUPERSEDED)
        elif now < quiet_from:
            assert decision == WaitUntil(quiet_from, WaitReason.DEBOUNCE)
        else:
            assert decision == Answer(
                tuple(p.id for p in sorted(burst, key=lambda p: (p.received_at, p.id)))
            )
