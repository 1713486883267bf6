"""Key rotation: every encrypted column is rotated, and a rotated value is recognised."""

from __future__ import annotations

from agent_platform.db import models
from agent_platform.kit.crypto import SecretBox
from agent_platform.ops.key_rotation.registry import ENCRYPTED_COLUMNS

OLD, NEW = "o" * 40, "n" * 40


def test_every_encrypted_column_of_the_models_is_rotated() -> None:
    mapped = {
        f"{table.name}.{column.name}"
        for table in models.Base.metadata.tables.values()
        for column in table.columns
        if column.name.endswith("_encrypted")
    }
    registered = [encrypted.name for encrypted in ENCRYPTED_COLUMNS]
    assert "users.totp_secret_encrypted" in mapped
    assert sorted(registered) == sorted(mapped)


def test_only_values_under_the_current_key_count_as_rotated() -> None:
    box = SecretBox(NEW, previous_key=OLD)
    assert box.is_current(box.encrypt("secret"))
    assert not box.is_current(SecretBox(OLD).encrypt("secret"))
    assert not box.is_current(SecretBox("x" * 40).encrypt("secret"))
    assert not box.is_current("not a token")
