"""Stop words and handoff keywords: whole words and phrases, in any case, through punctuation."""

from __future__ import annotations

import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from agent_platform.agent.runtime.phrases import matching_phrases

STOP_WORDS = ("стоп", "не пишите мне", "отписаться", "unsubscribe", "stop")


def test_russian_stop_words_in_any_case_and_through_punctuation() -> None:
    assert matching_phrases("СТОП!!!", STOP_WORDS) == ("стоп",)
    assert matching_phrases("Пожалуйста, НЕ пишите... мне больше", STOP_WORDS) == ("не пишите мне",)
    assert matching_phrases("Хочу\nотписаться.", STOP_WORDS) == ("отписаться",)


def test_a_word_inside_a_longer_word_does_not_match() -> None:
    assert matching_phrases("Стопка документов и nonstop delivery", STOP_WORDS) == ()
    assert matching_phrases("не пишите мнение", STOP_WORDS) == ()


def test_every_match_is_returned_once_as_the_admin_spelled_it() -> None:
    text = "Stop. STOP! Стоп, unsubscribe"
    assert matching_phrases(text, STOP_WORDS) == ("стоп", "unsubscribe", "stop")
    assert matching_phrases("please STOP", ("Stop!",)) == ("Stop!",)


def test_yo_and_ye_are_the_same_letter() -> None:
    assert matching_phrases("Всё, хватит", ("все хватит",)) == ("все хватит",)
    assert matching_phrases("все хватит", ("всё, хватит",)) == ("всё, хватит",)


def test_letters_typed_with_combining_marks_match_their_composed_form() -> None:
    decomposed = unicodedata.normalize("NFD", "Пришлите счёт, пожалуйста")
    assert matching_phrases(decomposed, ("счет",)) == ("счет",)
    assert matching_phrases("ＳＴＯＰ", ("stop",)) == ("stop",)  # full-width letters


def test_a_phrase_of_punctuation_alone_never_matches() -> None:
    assert matching_phrases("?!", ("?!", "", "  ")) == ()


WORD = st.text(alphabet="абвгдеёжзийклмнопрстуфхцчшщъыьэюяabcdefghijklmnopqrstuvwxyz", min_size=1)
SEPARATOR = st.text(alphabet=" ,.!?;:—-\n\t\"'()«»…", min_size=1)


@st.composite
def texts_holding_a_phrase(draw: st.DrawFn) -> tuple[str, str]:
    phrase_words = draw(st.lists(WORD, min_size=1, max_size=3))
    typed_words = ["".join(draw(st.sampled_from([c, c.upper()])) for c in w) for w in phrase_words]
    words = [*draw(st.lists(WORD, max_size=3)), *typed_words, *draw(st.lists(WORD, max_size=3))]
    text = "".join(draw(SEPARATOR) + word for word in words) + draw(SEPARATOR)
    return text, " ".join(phrase_words)


@given(texts_holding_a_phrase())
def test_a_phrase_among_other_words_is_found_whatever_the_case_and_punctuation(
    case: tuple[str, str],
) -> None:
    text, phrase = case
    assert matching_phrases(text, [phrase]) == (phrase,)


@given(WORD, st.text(alphabet="abя1_", min_size=1))
def test_a_word_glued_to_more_word_characters_is_not_found(word: str, glued: str) -> None:
    assert matching_phrases(f"{word}{glued}, {glued}{word}!", [word]) == ()
