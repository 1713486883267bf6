"""The dashboard's catalogs: one per language and page, merged; a gap or a clash is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent_platform.web.i18n import (
    CatalogMismatchError,
    accepted_language,
    catalogs,
    merged_catalogs,
)


def write(folder: Path, language: str, catalog: dict[str, str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{language}.json").write_text(json.dumps(catalog), encoding="utf-8")


def test_page_catalogs_merge_into_each_language(tmp_path: Path) -> None:
    write(tmp_path, "en", {"nav.home": "Home"})
    write(tmp_path, "ru", {"nav.home": "Главная"})
    write(tmp_path / "team", "en", {"team.title": "Team"})
    write(tmp_path / "team", "ru", {"team.title": "Команда"})

    merged = merged_catalogs(tmp_path)

    assert merged["ru"] == {"nav.home": "Главная", "team.title": "Команда"}


def test_a_key_missing_in_one_language_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "en", {"nav.home": "Home", "nav.exit": "Exit"})
    write(tmp_path, "ru", {"nav.home": "Главная"})

    with pytest.raises(CatalogMismatchError, match=r"ru catalogs .* missing \['nav.exit'\]"):
        merged_catalogs(tmp_path)


def test_a_key_two_pages_define_is_refused(tmp_path: Path) -> None:
    for language in ("en", "ru"):
        write(tmp_path, language, {"nav.home": "x"})
        write(tmp_path / "team", language, {"nav.home": "y"})

    with pytest.raises(CatalogMismatchError, match="defines again"):
        merged_catalogs(tmp_path)


def test_the_shipped_catalogs_agree() -> None:
    shipped = catalogs()
    assert set(shipped["en"]) == set(shipped["ru"])


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("ru-RU,ru;q=0.9,en;q=0.8", "ru"),
        ("de-DE,en;q=0.5,ru;q=0.7", "ru"),
        ("fr", "en"),
        ("", "en"),
        ("ru;q=abc,en", "en"),
    ],
)
def test_the_browsers_preferred_supported_language(header: str, expected: str) -> None:
    assert accepted_language(header) == expected
