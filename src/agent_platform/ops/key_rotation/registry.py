"""Every column that holds a value encrypted with ENCRYPTION_KEY (kit.crypto.SecretBox).

A new encrypted column is one more line here; a unit test fails when a mapped column named
`*_encrypted` is missing, so a rotation can never leave one under the old key.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import Column, Table
from sqlalchemy.orm import InstrumentedAttribute

from agent_platform.crm.models import CrmConnection
from agent_platform.organization.models import User


@dataclass(frozen=True)
class EncryptedColumn:
    attribute: InstrumentedAttribute[str | None]

    @property
    def table(self) -> Table:
        table = self.attribute.class_.__table__
        assert isinstance(table, Table), "every encrypted column belongs to a mapped table"
        return table

    @property
    def column(self) -> Column[str | None]:
        return self.table.c[self.attribute.key]

    @property
    def row_id(self) -> Column[uuid.UUID]:
        """The row's primary key: batches walk the table in its order, and report by it."""
        (key,) = self.table.primary_key.columns
        return key

    @property
    def name(self) -> str:
        return f"{self.table.name}.{self.column.name}"


ENCRYPTED_COLUMNS: tuple[EncryptedColumn, ...] = (
    EncryptedColumn(CrmConnection.access_token_encrypted),
    EncryptedColumn(CrmConnection.refresh_token_encrypted),
    EncryptedColumn(CrmConnection.chats_secret_encrypted),
    EncryptedColumn(User.totp_secret_encrypted),
)
