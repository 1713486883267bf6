"""Encrypted backup files, written and read as streams so that no dump is held in memory.

Layout: a header, then the dump in chunks of CHUNK_SIZE bytes, each sealed with AES-256-GCM.

    header = MAGIC (8) | FORMAT (1) | salt (16) | nonce prefix (7) | key check (16)
    chunk  = AES-GCM(key, nonce = prefix | chunk number (4) | last? (1), data, aad = header)

The key comes from BACKUP_ENCRYPTION_KEY by scrypt with the file's own salt, so one passphrase
never gives two files the same key. Numbering the chunks and marking the last one (the STREAM
construction) means a file cut short, chunks swapped or dropped, fail to decrypt instead of
restoring a shorter dump. The key check (more scrypt output, not the key) tells a wrong key
apart from a damaged file before anything is decrypted.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import BinaryIO, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from agent_platform.ops.backups.model import BackupError, BackupFailedError

MAGIC = b"APBACKUP"
FORMAT = b"\x01"
CHUNK_SIZE = 1024 * 1024
MINIMUM_KEY_LENGTH = 32
_SALT_BYTES = 16
_PREFIX_BYTES = 7
_CHECK_BYTES = 16
_TAG_BYTES = 16
HEADER_BYTES = len(MAGIC) + len(FORMAT) + _SALT_BYTES + _PREFIX_BYTES + _CHECK_BYTES
# scrypt's cost: about 0.1 s and 32 MiB once per file, nothing next to a dump.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**15, 8, 1


def check_new_key(passphrase: str) -> None:
    if len(passphrase) < MINIMUM_KEY_LENGTH:
        raise BackupError(
            f"BACKUP_ENCRYPTION_KEY must be at least {MINIMUM_KEY_LENGTH} characters "
            f"(it has {len(passphrase)})"
        )


class Sink(Protocol):
    def write(self, data: bytes, /) -> int: ...


class EncryptingWriter:
    """Writes what it is given to `sink`, encrypted; `close()` seals the last chunk."""

    def __init__(self, sink: Sink, passphrase: str) -> None:
        salt = secrets.token_bytes(_SALT_BYTES)
        self._prefix = secrets.token_bytes(_PREFIX_BYTES)
        key, check = _derive(passphrase, salt)
        self._header = MAGIC + FORMAT + salt + self._prefix + check
        self._cipher = AESGCM(key)
        self._sink = sink
        self._pending = bytearray()
        self._number = 0
        sink.write(self._header)

    def write(self, data: bytes, /) -> int:
        self._pending += data
        # A full chunk is sealed only once more data follows it: the last one must say so.
        while len(self._pending) > CHUNK_SIZE:
            self._seal(bytes(self._pending[:CHUNK_SIZE]), last=False)
            del self._pending[:CHUNK_SIZE]
        return len(data)

    def close(self) -> None:
        self._seal(bytes(self._pending), last=True)
        self._pending.clear()

    def _seal(self, chunk: bytes, *, last: bool) -> None:
        nonce = _nonce(self._prefix, self._number, last=last)
        self._sink.write(self._cipher.encrypt(nonce, chunk, self._header))
        self._number += 1


def decrypted_chunks(source: BinaryIO, passphrase: str) -> Iterator[bytes]:
    """The plaintext of an encrypted backup, chunk by chunk.

    The header and the key are checked at once (BackupError when the key is wrong), before a
    single chunk is asked for; BackupFailedError when the file is not a backup we wrote, or
    was cut short or altered.
    """
    header = source.read(HEADER_BYTES)
    if len(header) < HEADER_BYTES or not header.startswith(MAGIC + FORMAT):
        raise BackupFailedError("decryption failed: the file is not an encrypted backup")
    salt_at = len(MAGIC) + len(FORMAT)
    salt = header[salt_at : salt_at + _SALT_BYTES]
    prefix = header[salt_at + _SALT_BYTES : salt_at + _SALT_BYTES + _PREFIX_BYTES]
    key, check = _derive(passphrase, salt)
    if not secrets.compare_digest(check, header[-_CHECK_BYTES:]):
        raise BackupError("wrong backup key: BACKUP_ENCRYPTION_KEY is not the one it was made with")
    return _opened_chunks(source, AESGCM(key), header, prefix)


def _opened_chunks(
    source: BinaryIO, cipher: AESGCM, header: bytes, prefix: bytes
) -> Iterator[bytes]:
    number = 0
    sealed = source.read(CHUNK_SIZE + _TAG_BYTES)
    while True:
        following = source.read(CHUNK_SIZE + _TAG_BYTES) if sealed else b""
        last = not following
        try:
            yield cipher.decrypt(_nonce(prefix, number, last=last), sealed, header)
        except InvalidTag:
            raise BackupFailedError(
                f"decryption failed: chunk {number + 1} is damaged or the file was cut short"
            ) from None
        if last:
            return
        sealed, number = following, number + 1


def _derive(passphrase: str, salt: bytes) -> tuple[bytes, bytes]:
    material = Scrypt(
        salt=salt, length=32 + _CHECK_BYTES, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P
    ).derive(passphrase.encode())
    return material[:32], material[32:]


def _nonce(prefix: bytes, number: int, *, last: bool) -> bytes:
    return prefix + number.to_bytes(4, "big") + (b"\x01" if last else b"\x00")
