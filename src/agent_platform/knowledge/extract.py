"""The text of a document from its bytes: a PDF's text layer, or decoded plain text and
Markdown. Untrusted input: anything unreadable is a 4xx, never an exception left to escape."""

from __future__ import annotations

import io
import logging
from pathlib import PurePath

from pypdf import PdfReader

from agent_platform.kit.errors import AppError
from agent_platform.knowledge.models import DocumentKind

PDF_SIGNATURE = b"%PDF-"

# pypdf logs every oddity of a damaged file as a warning; the 4xx already says it failed.
logging.getLogger("pypdf").setLevel(logging.ERROR)


class UnsupportedMediaTypeError(AppError):
    status_code = 415
    code = "unsupported_media_type"


class UnreadableDocumentError(AppError):
    status_code = 422
    code = "unreadable_document"


def text_of_upload(filename: str, media_type: str, data: bytes) -> tuple[DocumentKind, str]:
    """An uploaded file's kind and text, known by its media type or, as browsers often send
    application/octet-stream, by its name's extension."""
    extension = PurePath(filename).suffix.lower()
    if media_type == "application/pdf" or extension == ".pdf":
        return DocumentKind.PDF, pdf_text(data)
    if media_type == "text/markdown" or extension in {".md", ".markdown"}:
        return DocumentKind.MARKDOWN, decode_text(data)
    if media_type == "text/plain" or extension == ".txt":
        return DocumentKind.TEXT, decode_text(data)
    raise UnsupportedMediaTypeError(
        f"{filename or 'The file'} is not a PDF, Markdown (.md) or plain text (.txt) file."
    )


def clean_text(text: str) -> str:
    """One newline convention, and no NUL characters (PostgreSQL text cannot hold them)."""
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")


def decode_text(data: bytes, charset: str | None = None) -> str:
    """Text in `charset` (UTF-8 when none is declared, a byte-order mark allowed)."""
    encoding = charset or "utf-8-sig"
    try:
        return clean_text(data.decode(encoding))
    except LookupError as exc:
        raise UnreadableDocumentError(f"Unknown text encoding {charset!r}.") from exc
    except UnicodeDecodeError as exc:
        raise UnreadableDocumentError(
            f"The file is not {encoding.removesuffix('-sig').upper()} text."
        ) from exc


def pdf_text(data: bytes) -> str:
    """The text of every page, pages separated by a blank line."""
    if not data.startswith(PDF_SIGNATURE):
        raise UnsupportedMediaTypeError("The file is not a PDF.")
    try:
        reader = PdfReader(io.BytesIO(data))
        locked = reader.is_encrypted and not reader.decrypt("")
        pages = [] if locked else [page.extract_text() or "" for page in reader.pages]
    # A parser of untrusted files fails in many ways (its own errors, and KeyError, ValueError,
    # RecursionError ... on a damaged file); each means the same to the caller.
    except Exception as exc:
        raise UnreadableDocumentError("The PDF could not be read; it may be damaged.") from exc
    if locked:
        raise UnreadableDocumentError("The PDF is protected by a password.")
    return clean_text("\n\n".join(page.strip() for page in pages))
