"""The dashboard's languages: catalogs in web/locales/<lang>.json (and one folder per page,
web/locales/<page>/<lang>.json), chosen per request.

The `lang` cookie (set by POST /lang) wins; else the browser's Accept-Language; else English.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable

from starlette.requests import Request

LANGUAGES = ("en", "ru")
DEFAULT_LANGUAGE = "en"
LANGUAGE_COOKIE = "lang"
# The name of each language in itself, for the switch.
LANGUAGE_NAMES = {"en": "English", "ru": "Русский"}

Translate = Callable[..., str]


class CatalogMismatchError(Exception):
    """A catalog lacks keys that English has (or has keys English lacks): a page would show a
    raw key to some of its readers, so the dashboard refuses to start instead."""


@cache
def catalogs() -> Mapping[str, Mapping[str, str]]:
    """Every language's catalog, read once."""
    return merged_catalogs(resources.files("agent_platform.web") / "locales")


def merged_catalogs(folder: Traversable) -> dict[str, dict[str, str]]:
    """<folder>/<lang>.json and each page's own <folder>/<page>/<lang>.json, merged; a key
    defined twice, or missing in some language, is refused (CatalogMismatchError)."""
    pages = sorted((entry for entry in folder.iterdir() if entry.is_dir()), key=lambda e: e.name)
    loaded: dict[str, dict[str, str]] = {language: {} for language in LANGUAGES}
    for language in LANGUAGES:
        for place in [folder, *pages]:
            catalog = json.loads((place / f"{language}.json").read_text(encoding="utf-8"))
            twice = sorted(set(catalog) & set(loaded[language]))
            if twice:
                raise CatalogMismatchError(f"{place.name}/{language}.json defines again {twice}")
            loaded[language].update(catalog)
    english = set(loaded[DEFAULT_LANGUAGE])
    for language, merged in loaded.items():
        if set(merged) != english:
            missing = sorted(english - set(merged))
            extra = sorted(set(merged) - english)
            raise CatalogMismatchError(
                f"the {language} catalogs differ from English: missing {missing}, extra {extra}"
            )
    return loaded


def translator(language: str) -> Translate:
    """`t(key, **values)` for one language; values fill `{name}` placeholders."""
    catalog = catalogs()[language]

    def translate(key: str, **values: object) -> str:
        text = catalog[key]
        return text.format(**values) if values else text

    return translate


def request_language(request: Request) -> str:
    chosen = request.cookies.get(LANGUAGE_COOKIE)
    if chosen in LANGUAGES:
        return chosen
    return accepted_language(request.headers.get("accept-language", ""))


def accepted_language(header: str) -> str:
    """The supported language the browser prefers most (RFC 9110 quality values)."""
    best, best_quality = DEFAULT_LANGUAGE, 0.0
    for item in header.split(","):
        tag, _, parameters = item.strip().partition(";")
        primary = tag.strip().lower().split("-")[0]
        if primary not in LANGUAGES:
            continue
        quality = 1.0
        name, _, value = parameters.strip().partition("=")
        if name.strip() == "q":
            try:
                quality = float(value)
            except ValueError:
                continue
        # Strictly greater: of equal qualities the browser's first choice stays.
        if quality > best_quality:
            best, best_quality = primary, quality
    return best
