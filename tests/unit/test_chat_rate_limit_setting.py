"""CHAT_RATE_LIMIT_PER_MINUTE means the same in Settings, .env.example and the docs."""

from __future__ import annotations

import re
from pathlib import Path

from agent_platform.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_the_chat_rate_limit_default_agrees_in_settings_env_example_and_docs() -> None:
    default = Settings.model_fields["chat_rate_limit_per_minute"].default
    env_example = (ROOT / ".env.example").read_text()
    docs = (ROOT / "docs/configuration.md").read_text()

    assert re.search(rf"^CHAT_RATE_LIMIT_PER_MINUTE={default}$", env_example, re.MULTILINE)
    assert f"| `CHAT_RATE_LIMIT_PER_MINUTE` | `{default}` |" in docs
    assert (
        f"`CHAT_RATE_LIMIT_PER_MINUTE` chat requests a minute ({default} by default)"
        in (ROOT / "docs/api.md").read_text()
    )
