"""A document from a URL: fetched through kit.safe_fetch (no reaching into our own network),
then its text extracted by what the server says it is."""

from __future__ import annotations

import re
from dataclasses import dataclass

from agent_platform.kit.safe_fetch import FetchedResource, FetchLimits, fetch
from agent_platform.knowledge.extract import (
    UnsupportedMediaTypeError,
    clean_text,
    decode_text,
    pdf_text,
)
from agent_platform.knowledge.html_text import html_to_text
from agent_platform.knowledge.models import DocumentKind

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
# Where a page declares its encoding when the Content-Type header does not.
_META_CHARSET = re.compile(rb"""<meta[^>]+charset=["']?([A-Za-z0-9_.:-]+)""", re.IGNORECASE)


@dataclass(frozen=True)
class FetchedDocument:
    url: str  # after redirects
    kind: DocumentKind
    title: str | None
    text: str


async def fetch_document(url: str, limits: FetchLimits) -> FetchedDocument:
    resource = await fetch(url, limits)
    if resource.media_type in HTML_TYPES:
        page = html_to_text(_decode_page(resource))
        return FetchedDocument(resource.url, DocumentKind.WEB, page.title, page.text)
    if resource.media_type == "application/pdf":
        return FetchedDocument(resource.url, DocumentKind.PDF, None, pdf_text(resource.body))
    if resource.media_type == "text/markdown":
        text = decode_text(resource.body, resource.charset)
        return FetchedDocument(resource.url, DocumentKind.MARKDOWN, None, text)
    if resource.media_type == "text/plain":
        text = decode_text(resource.body, resource.charset)
        return FetchedDocument(resource.url, DocumentKind.TEXT, None, text)
    raise UnsupportedMediaTypeError(
        f"{resource.url} is {resource.media_type or 'of no stated type'}; "
        "a web page, PDF, Markdown or plain text was expected."
    )


def _decode_page(resource: FetchedResource) -> str:
    declared = _META_CHARSET.search(resource.body[:4096])
    charset = resource.charset or (declared.group(1).decode() if declared else "utf-8")
    try:
        # Lenient: one badly encoded byte should not cost the whole page.
        return clean_text(resource.body.decode(charset, errors="replace"))
    except LookupError:
        return clean_text(resource.body.decode("utf-8", errors="replace"))
