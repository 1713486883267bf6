"""TOTP enrollment: a base32 secret, the otpauth URI apps scan, and a QR code safe to inline."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs, unquote, urlparse

import pyotp

from agent_platform.organization.totp import new_enrollment


def test_an_enrollment_carries_a_fresh_secret_in_its_uri() -> None:
    first = new_enrollment(email="ann@example.com")
    second = new_enrollment(email="ann@example.com")
    assert first.secret != second.secret
    assert len(base64.b32decode(first.secret)) >= 20  # 160 bits, as RFC 4226 recommends
    uri = urlparse(first.uri)
    assert uri.scheme == "otpauth"
    assert uri.netloc == "totp"
    assert unquote(uri.path) == "/GPT Agent Platform:ann@example.com"
    query = parse_qs(uri.query)
    assert query["secret"] == [first.secret]
    assert query["issuer"] == ["GPT Agent Platform"]
    assert pyotp.parse_uri(first.uri).secret == first.secret


def test_the_issuer_can_be_named() -> None:
    assert "issuer=Acme" in new_enrollment(email="a@example.com", issuer="Acme").uri


def test_the_qr_code_is_an_svg_without_script_or_style() -> None:
    svg = new_enrollment(email="ann@example.com").qr_svg
    assert svg.startswith("<svg")
    assert svg.rstrip().endswith("</svg>")
    lowered = svg.lower()
    for forbidden in ("<script", "<style", "style=", "javascript:", "<?xml", " on"):
        assert forbidden not in lowered, forbidden
