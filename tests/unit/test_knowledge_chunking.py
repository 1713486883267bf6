"""Chunking: no text lost, chunks within their size, no word cut, sections kept apart."""

from __future__ import annotations

import itertools
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from agent_platform.knowledge.chunking import Chunk, split_into_chunks

TARGET = 120
OVERLAP = 30

# Words of every length (some longer than a chunk), spaces, line and paragraph breaks,
# sentence ends and Markdown headings: what documents are made of.
words = st.text(alphabet="abcyzабвя0.,!?-", min_size=1, max_size=20) | st.text(
    alphabet="xyz", min_size=TARGET + 1, max_size=TARGET + 40
)
separators = st.sampled_from([" ", " ", " ", "  ", "\n", "\n\n", "\n\n# Heading\n", "\n## Sub\n"])
documents = st.lists(st.tuples(words, separators), max_size=120).map(
    lambda pairs: "".join(word + separator for word, separator in pairs)
)


def chunks_of(text: str) -> list[Chunk]:
    return split_into_chunks(text, target_chars=TARGET, overlap_chars=OVERLAP)


@settings(max_examples=300)
@given(documents)
def test_chunks_are_slices_that_leave_out_only_whitespace(text: str) -> None:
    chunks = chunks_of(text)
    covered = 0
    for chunk in chunks:
        assert chunk.text == text[chunk.start : chunk.end]
        assert not text[covered : chunk.start].strip(), "text between chunks was lost"
        covered = max(covered, chunk.end)
    assert not text[covered:].strip(), "the end of the text was lost"


@settings(max_examples=300)
@given(documents)
def test_no_chunk_cuts_a_word(text: str) -> None:
    for chunk in chunks_of(text):
        assert chunk.text.strip() == chunk.text
        assert chunk.start == 0 or text[chunk.start - 1].isspace()
        assert chunk.end == len(text) or text[chunk.end].isspace()


@settings(max_examples=300)
@given(documents)
def test_chunks_keep_to_the_target_size_unless_one_word_is_longer(text: str) -> None:
    for chunk in chunks_of(text):
        assert len(chunk.text) <= TARGET or not re.search(r"\s", chunk.text)


@settings(max_examples=300)
@given(documents)
def test_chunks_go_forward_and_overlap_by_at_most_the_overlap(text: str) -> None:
    chunks = chunks_of(text)
    for previous, following in itertools.pairwise(chunks):
        assert following.start > previous.start
        assert previous.end - following.start <= OVERLAP


def test_sections_start_at_headings_and_chunks_name_theirs() -> None:
    text = "Intro line.\n\n# Prices\n\nFrom 100 USD.\n\n## Delivery ##\n\nFree in Moscow."
    chunks = split_into_chunks(text)
    assert [(chunk.heading, chunk.text) for chunk in chunks] == [
        (None, "Intro line."),
        ("Prices", "# Prices\n\nFrom 100 USD."),
        ("Delivery", "## Delivery ##\n\nFree in Moscow."),
    ]


def test_a_hash_without_a_space_is_not_a_heading() -> None:
    assert [chunk.heading for chunk in split_into_chunks("#hashtag and text")] == [None]


def test_a_chunk_ends_at_a_paragraph_break_rather_than_mid_paragraph() -> None:
    first = "First paragraph has several words in it and ends here."
    second = "Second paragraph is long enough that both cannot share one chunk at all."
    chunks = split_into_chunks(f"{first}\n\n{second}", target_chars=90, overlap_chars=20)
    assert chunks[0].text == first


def test_a_chunk_ends_at_a_sentence_end_when_a_paragraph_is_too_long() -> None:
    text = "One sentence of moderate length is here. Another sentence continues the same paragraph."
    chunks = split_into_chunks(text, target_chars=60, overlap_chars=10)
    assert chunks[0].text == "One sentence of moderate length is here."


def test_the_overlap_repeats_the_end_of_the_previous_chunk() -> None:
    text = " ".join(f"word{number}" for number in range(40))
    chunks = split_into_chunks(text, target_chars=60, overlap_chars=15)
    for previous, following in itertools.pairwise(chunks):
        repeated = text[following.start : previous.end]
        assert repeated
        assert previous.text.endswith(repeated)


def test_empty_and_blank_texts_have_no_chunks() -> None:
    assert split_into_chunks("") == []
    assert split_into_chunks(" \n\n\t ") == []
