"""Encrypted backup files: a round trip across chunk boundaries; a wrong key is told apart
from damage; a file cut at a chunk boundary or with chunks swapped does not decrypt."""

from __future__ import annotations

import io
import secrets

import pytest

from agent_platform.ops.backups import BackupError, BackupFailedError
from agent_platform.ops.backups.encryption import (
    CHUNK_SIZE,
    HEADER_BYTES,
    EncryptingWriter,
    decrypted_chunks,
)

KEY = "a-backup-passphrase-of-forty-characters!"
SEALED_CHUNK = CHUNK_SIZE + 16


def encrypted(data: bytes, key: str = KEY) -> bytes:
    sink = io.BytesIO()
    writer = EncryptingWriter(sink, key)
    # Written in uneven pieces, as a pipe delivers them.
    for start in range(0, len(data), 300_000):
        writer.write(data[start : start + 300_000])
    writer.close()
    return sink.getvalue()


def decrypted(blob: bytes, key: str = KEY) -> bytes:
    return b"".join(decrypted_chunks(io.BytesIO(blob), key))


@pytest.fixture(scope="module")
def three_chunks() -> tuple[bytes, bytes]:
    data = secrets.token_bytes(2 * CHUNK_SIZE + 5)
    return data, encrypted(data)


def test_what_is_written_is_read_back(three_chunks: tuple[bytes, bytes]) -> None:
    data, blob = three_chunks

    assert decrypted(blob) == data
    assert data[:1000] not in blob
    assert decrypted(encrypted(b"")) == b""
    assert decrypted(encrypted(b"x" * CHUNK_SIZE)) == b"x" * CHUNK_SIZE


def test_a_wrong_key_is_said_to_be_wrong(three_chunks: tuple[bytes, bytes]) -> None:
    with pytest.raises(BackupError, match=r"^wrong backup key"):
        decrypted(three_chunks[1], "another-passphrase-of-forty-characters!!")


def test_a_file_cut_short_or_reordered_does_not_decrypt(three_chunks: tuple[bytes, bytes]) -> None:
    blob = three_chunks[1]
    header, first, second, rest = (
        blob[:HEADER_BYTES],
        blob[HEADER_BYTES : HEADER_BYTES + SEALED_CHUNK],
        blob[HEADER_BYTES + SEALED_CHUNK : HEADER_BYTES + 2 * SEALED_CHUNK],
        blob[HEADER_BYTES + 2 * SEALED_CHUNK :],
    )
    flipped = bytearray(blob)
    flipped[-1] ^= 1

    for damaged in (header + first + second, header + second + first + rest, bytes(flipped)):
        with pytest.raises(BackupFailedError, match=r"^decryption failed: chunk"):
            decrypted(damaged)
    with pytest.raises(BackupFailedError, match="not an encrypted backup"):
        decrypted(blob[: HEADER_BYTES - 1])
