"""Finding whole words and phrases in a customer's text: stop words and handoff keywords.

Both sides are reduced to a sequence of words before comparing, so case, punctuation and
spacing do not matter ("СТОП!!!", "stop." and "Не  пишите, мне" all match), while a word
never matches inside a longer one ("stop" is not in "nonstop").
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

# \w is Unicode-aware: Cyrillic, accented Latin and digits are word characters; everything
# else (punctuation, spaces, emoji, hyphens, apostrophes) separates words.
_WORD = re.compile(r"\w+")


def matching_phrases(text: str, phrases: Iterable[str]) -> tuple[str, ...]:
    """The phrases found in `text` as whole words, as the admin spelled them, each once."""
    words = _words(text)
    found: list[str] = []
    for phrase in phrases:
        needle = _words(phrase)
        if needle and phrase not in found and _contains(words, needle):
            found.append(phrase)
    return tuple(found)


def _words(text: str) -> tuple[str, ...]:
    # NFKC composes letters typed with combining marks (и + ◌̆ → й) and folds look-alike
    # forms (full-width letters); casefold is the Unicode case-insensitive form.
    folded = unicodedata.normalize("NFKC", text).casefold()
    # Russian writers commonly type е for ё: the two must not decide whether a phrase matches.
    return tuple(_WORD.findall(folded.replace("ё", "е")))


def _contains(words: tuple[str, ...], needle: tuple[str, ...]) -> bool:
    width = len(needle)
    return any(words[start : start + width] == needle for start in range(len(words) - width + 1))
