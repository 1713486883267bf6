"""What the team pages share: form fields, object ids from paths, errors shown on a form."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Form, Request

from agent_platform.kit.errors import NotFoundError
from agent_platform.services import Services

# Form fields default to empty: a form posted without one is answered on the page, not with
# the API's JSON validation error.
FormText = Annotated[str, Form()]
FormChoices = Annotated[list[str] | None, Form()]


@dataclass(frozen=True)
class FormError:
    """A refusal shown above a form: a catalog key with its values."""

    key: str
    values: dict[str, str] = field(default_factory=dict)


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def object_id(value: str) -> uuid.UUID:
    """A path's object id; one that is not even an id is as absent as another's (404)."""
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise NotFoundError("No such object.") from exc
