"""Text out of documents: PDFs (made here by hand), uploads by type or extension, HTML pages
without scripts, styles or menus, and pages fetched by URL in their declared encoding."""

from __future__ import annotations

import pytest
import respx

from agent_platform.kit.safe_fetch import FetchLimits
from agent_platform.knowledge.extract import (
    UnreadableDocumentError,
    UnsupportedMediaTypeError,
    decode_text,
    pdf_text,
    text_of_upload,
)
from agent_platform.knowledge.fetch import fetch_document
from agent_platform.knowledge.html_text import html_to_text
from agent_platform.knowledge.models import DocumentKind
from tests.support.pdf import encrypted, pdf_with_text

PUBLIC_PAGE = "http://93.184.216.34/page"  # answered by respx


def test_a_pdfs_pages_are_read_in_order() -> None:
    pdf = pdf_with_text("Our prices start at 100 USD.\nDelivery (free) in Moscow.", "Page two")
    assert pdf_text(pdf) == ("Our prices start at 100 USD.\nDelivery (free) in Moscow.\n\nPage two")


def test_a_file_that_is_not_a_pdf_is_refused_as_such() -> None:
    with pytest.raises(UnsupportedMediaTypeError, match="not a PDF"):
        pdf_text(b"<html>surely a pdf</html>")


def test_a_damaged_or_password_protected_pdf_is_unreadable() -> None:
    pdf = pdf_with_text("Secret prices")
    with pytest.raises(UnreadableDocumentError, match="damaged"):
        pdf_text(pdf[: len(pdf) // 2])
    with pytest.raises(UnreadableDocumentError, match="password"):
        pdf_text(encrypted(pdf, "letmein"))


@pytest.mark.parametrize(
    ("filename", "media_type", "kind"),
    [
        ("prices.pdf", "application/octet-stream", DocumentKind.PDF),
        ("prices", "application/pdf", DocumentKind.PDF),
        ("README.md", "application/octet-stream", DocumentKind.MARKDOWN),
        ("notes", "text/markdown", DocumentKind.MARKDOWN),
        ("notes.TXT", "", DocumentKind.TEXT),
        ("notes", "text/plain", DocumentKind.TEXT),
    ],
)
def test_an_uploads_kind_comes_from_its_type_or_extension(
    filename: str, media_type: str, kind: DocumentKind
) -> None:
    data = pdf_with_text("Hello") if kind is DocumentKind.PDF else b"# Hello"
    assert text_of_upload(filename, media_type, data)[0] is kind


def test_other_uploads_are_unsupported() -> None:
    with pytest.raises(UnsupportedMediaTypeError):
        text_of_upload("photo.jpg", "image/jpeg", b"\xff\xd8\xff")
    with pytest.raises(UnsupportedMediaTypeError, match="not a PDF"):
        text_of_upload("fake.pdf", "application/pdf", b"plain text pretending")


def test_text_is_utf8_with_one_newline_convention_and_no_nul() -> None:
    assert decode_text("\ufeffЦены\r\nprices\rok\x00!".encode()) == "Цены\nprices\nok!"
    with pytest.raises(UnreadableDocumentError, match="not UTF-8"):
        decode_text("Цены".encode("cp1251"))
    assert decode_text("Цены".encode("cp1251"), "cp1251") == "Цены"
    with pytest.raises(UnreadableDocumentError, match="Unknown text encoding"):
        decode_text(b"x", "no-such-charset")


def test_html_text_leaves_out_scripts_styles_and_menus_and_keeps_headings() -> None:
    page = html_to_text(
        "<html><head><title>Acme &amp; Co</title><style>p {color: red}</style></head><body>"
        "<nav><a href='/'>Home</a><h2>Menu</h2></nav><script>track('visit')</script>"
        "<h1>Prices</h1><p>From   100&nbsp;USD,\n per month.</p><noscript>Enable JS</noscript>"
        "<div>Delivery<br>is free</div><h2>Contacts</h2><p>Call us</p></body></html>"
    )
    assert page.title == "Acme & Co"
    assert page.text == (
        "# Prices\n\nFrom 100 USD, per month.\n\nDelivery\nis free\n\n## Contacts\n\nCall us"
    )


async def test_a_fetched_page_is_decoded_by_its_meta_charset() -> None:
    html = '<html><head><meta charset="windows-1251"><title>Цены</title></head>'
    html += "<body><p>Доставка бесплатно</p></body></html>"
    with respx.mock:
        respx.get(PUBLIC_PAGE).respond(
            200, content=html.encode("cp1251"), headers={"Content-Type": "text/html"}
        )
        document = await fetch_document(PUBLIC_PAGE, FetchLimits(10_000, 5))
    assert (document.kind, document.title, document.text) == (
        DocumentKind.WEB,
        "Цены",
        "Доставка бесплатно",
    )


@pytest.mark.parametrize(
    ("media_type", "body", "kind", "text"),
    [
        ("application/pdf", pdf_with_text("Price list"), DocumentKind.PDF, "Price list"),
        ("text/markdown; charset=utf-8", "# Цены".encode(), DocumentKind.MARKDOWN, "# Цены"),
        ("text/plain", b"Prices", DocumentKind.TEXT, "Prices"),
    ],
)
async def test_a_fetched_document_is_read_by_its_media_type(
    media_type: str, body: bytes, kind: DocumentKind, text: str
) -> None:
    with respx.mock:
        respx.get(PUBLIC_PAGE).respond(200, content=body, headers={"Content-Type": media_type})
        document = await fetch_document(PUBLIC_PAGE, FetchLimits(10_000, 5))
    assert (document.kind, document.text) == (kind, text)


async def test_a_fetched_image_is_unsupported() -> None:
    with respx.mock:
        respx.get(PUBLIC_PAGE).respond(
            200, content=b"GIF89a", headers={"Content-Type": "image/gif"}
        )
        with pytest.raises(UnsupportedMediaTypeError, match="image/gif"):
            await fetch_document(PUBLIC_PAGE, FetchLimits(10_000, 5))
