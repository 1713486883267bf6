"""The keys of a rotation: the new ENCRYPTION_KEY and the ENCRYPTION_KEY_PREVIOUS it replaces."""

from __future__ import annotations

from agent_platform.config import Settings
from agent_platform.kit.crypto import SecretBox


class RotationRefusedError(Exception):
    """The keys given cannot make a rotation (one line, for the operator)."""


def rotation_box(settings: Settings) -> SecretBox:
    """The box that reads under either key and writes under the new one, or a refusal."""
    assert settings.encryption_key is not None, "ensure_secrets() provides it"
    new_key = settings.encryption_key.get_secret_value()
    if settings.encryption_key_previous is None:
        raise RotationRefusedError(
            "ENCRYPTION_KEY_PREVIOUS is not set: set it to the key the values are encrypted "
            "with now, and ENCRYPTION_KEY to the new key"
        )
    previous_key = settings.encryption_key_previous.get_secret_value()
    if previous_key == new_key:
        raise RotationRefusedError(
            "ENCRYPTION_KEY_PREVIOUS is the same as ENCRYPTION_KEY: set ENCRYPTION_KEY to the "
            "new key"
        )
    return SecretBox(new_key, previous_key)
