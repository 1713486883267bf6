"""Small PDFs made by hand for tests: one page per text, in the standard Helvetica font."""

from __future__ import annotations

import io

from pypdf import PdfWriter


def pdf_with_text(*page_texts: str) -> bytes:
    """A valid PDF whose pages show these texts (Latin-1 only: standard fonts have no
    Cyrillic), line by line."""
    page_ids = [4 + 2 * index for index in range(len(page_texts))]
    kids = b" ".join(b"%d 0 R" % page_id for page_id in page_ids)
    objects = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: b"<< /Type /Pages /Kids [%b] /Count %d >>" % (kids, len(page_ids)),
        3: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    }
    for page_id, text in zip(page_ids, page_texts, strict=True):
        content = _content_stream(text)
        objects[page_id] = (
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            b"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % (page_id + 1)
        )
        objects[page_id + 1] = b"<< /Length %d >>\nstream\n%b\nendstream" % (len(content), content)
    document = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number in sorted(objects):
        offsets.append(len(document))
        document += b"%d 0 obj\n%b\nendobj\n" % (number, objects[number])
    xref_at = len(document)
    document += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    document += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    document += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref_at,
    )
    return bytes(document)


def _content_stream(text: str) -> bytes:
    escaped = (
        line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        for line in text.split("\n")
    )
    operations = ["BT /F1 12 Tf 14 TL 72 720 Td", *(f"({line}) Tj T*" for line in escaped), "ET"]
    return "\n".join(operations).encode("latin-1")


def encrypted(pdf: bytes, password: str) -> bytes:
    writer = PdfWriter(clone_from=io.BytesIO(pdf))
    writer.encrypt(user_password=password, algorithm="AES-128")
    output = io.BytesIO()
    writer.write(output)
    return output.getvalue()
