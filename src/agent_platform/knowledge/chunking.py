"""Split a document's text into passages small enough to search and to give a model.

Sections start at Markdown headings (`# Title` … `###### Title`), and a chunk never spans
two, so each knows its heading. Inside a section a chunk holds up to `target_chars`
characters and ends, by preference, at a paragraph break, else at a sentence's end, else
between two words; a chunk never cuts a word (a single word longer than the target is a chunk
of its own). Consecutive chunks of a section overlap by up to `overlap_chars`, so a sentence
cut at a boundary is still whole in one of them.

A chunk is an exact slice of the text (`text[start:end]`), and the slices leave out nothing
but whitespace.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

TARGET_CHUNK_CHARS = 800
OVERLAP_CHARS = 150

_HEADING = re.compile(r"^#{1,6}[ \t]+(\S.*?)[ \t#]*$", re.MULTILINE)
_WORD = re.compile(r"\S+")
_PARAGRAPH_BREAK = re.compile(r"\n[ \t\r\f\v]*\n")
_SENTENCE_ENDS = (".", "!", "?", "…", ":", ";")


@dataclass(frozen=True)
class Chunk:
    text: str
    heading: str | None
    start: int
    end: int


@dataclass(frozen=True)
class _Section:
    heading: str | None
    start: int
    end: int


def split_into_chunks(
    text: str, *, target_chars: int = TARGET_CHUNK_CHARS, overlap_chars: int = OVERLAP_CHARS
) -> list[Chunk]:
    if overlap_chars >= target_chars:
        raise ValueError("the overlap must be smaller than the chunk")
    chunks: list[Chunk] = []
    for section in _sections(text):
        chunks.extend(_chunk_section(text, section, target_chars, overlap_chars))
    return chunks


def _sections(text: str) -> list[_Section]:
    headings = list(_HEADING.finditer(text))
    starts = [0, *(match.start() for match in headings)]
    titles = [None, *(match.group(1) for match in headings)]
    ends = [*starts[1:], len(text)]
    return [
        _Section(title, start, end)
        for title, start, end in zip(titles, starts, ends, strict=True)
        if start < end
    ]


def _chunk_section(text: str, section: _Section, target: int, overlap: int) -> list[Chunk]:
    words = [match.span() for match in _WORD.finditer(text, section.start, section.end)]
    ends = [end for _, end in words]
    chunks: list[Chunk] = []
    first = 0
    while first < len(words):
        start = words[first][0]
        # The last word that ends within the target; at least the first word, however long.
        last = max(first, bisect.bisect_right(ends, start + target) - 1)
        last = _preferred_break(text, words, first, last, target)
        end = words[last][1]
        chunks.append(Chunk(text[start:end], section.heading, start, end))
        if last == len(words) - 1:
            break
        first = _next_first_word(words, first, last, target, overlap)
    return chunks


def _preferred_break(
    text: str, words: list[tuple[int, int]], first: int, last: int, target: int
) -> int:
    """The word to end the chunk on: the last one before a paragraph break, else the last
    one ending a sentence, provided the chunk stays at least half the target; else `last`."""
    if last == len(words) - 1:
        return last
    shortest_end = words[first][0] + target // 2
    candidates = [i for i in range(last, first - 1, -1) if words[i][1] >= shortest_end]
    for candidate in candidates:
        gap = text[words[candidate][1] : words[candidate + 1][0]]
        if _PARAGRAPH_BREAK.search(gap):
            return candidate
    for candidate in candidates:
        if text[words[candidate][1] - 1] in _SENTENCE_ENDS:
            return candidate
    return last


def _next_first_word(
    words: list[tuple[int, int]], first: int, last: int, target: int, overlap: int
) -> int:
    """Where the next chunk starts: a few words back, so the two overlap by at most
    `overlap` characters, when that still leaves it room for a word past this chunk."""
    following = last + 1
    for candidate in range(first + 1, last + 1):
        repeated = words[last][1] - words[candidate][0]
        fits = words[following][1] - words[candidate][0] <= target
        if repeated <= overlap and fits:
            return candidate
    return following
