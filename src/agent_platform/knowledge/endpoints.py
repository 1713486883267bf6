"""The knowledge base over HTTP (API key): documents, search, FAQ pairs.

`POST /documents` takes JSON (a text, or a URL to fetch) or a multipart upload (PDF,
Markdown, plain text) on the one path, so it reads its body itself, by content type, and
within the size limit before anything is parsed.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile

from agent_platform.kit.pagination import Page, PageCursor, PageLimit, PageRequest
from agent_platform.knowledge import service
from agent_platform.knowledge.extract import UnsupportedMediaTypeError
from agent_platform.knowledge.models import MAX_TITLE_CHARS, DocumentKind
from agent_platform.knowledge.repository import DocumentRecord
from agent_platform.knowledge.schemas import (
    DocumentIn,
    DocumentOut,
    FaqIn,
    FaqOut,
    FaqPatch,
    SearchOut,
    UploadFields,
)
from agent_platform.organization.auth import CurrentPrincipal, Principal
from agent_platform.services import Services

ModelT = TypeVar("ModelT", bound=BaseModel)

router = APIRouter(prefix="/api/v1/knowledge", tags=["knowledge base"])

# A JSON string can spell one byte of text in six ("\u0001"), so a body this many times the
# document limit may still hold an acceptable document; beyond it, none can.
JSON_ESCAPE_FACTOR = 6
# Room for the other fields and, in a multipart body, the part headers and boundaries.
ENVELOPE_BYTES = 64 * 1024
MAX_SEARCH_RESULTS = 50

AgentFilter = Annotated[
    uuid.UUID | None, Query(description="Only what this agent uses (its own and shared).")
]

_UPLOAD_SCHEMA = {
    "type": "object",
    "required": ["file"],
    "properties": {
        "file": {"type": "string", "format": "binary", "description": "PDF, .md or .txt"},
        "title": {"type": "string", "maxLength": MAX_TITLE_CHARS},
        "agent_id": {"type": "string", "format": "uuid"},
    },
}
_DOCUMENT_REQUEST_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": DocumentIn.model_json_schema()},
            "multipart/form-data": {"schema": _UPLOAD_SCHEMA},
        },
    }
}


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def _parsed(model: type[ModelT], data: bytes | dict[str, Any]) -> ModelT:
    """`data` validated by `model`; a failure is the same 422 as FastAPI's own bodies give."""
    try:
        if isinstance(data, bytes):
            return model.model_validate_json(data)
        return model.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]
        ) from exc


async def _read_body(request: Request, max_bytes: int) -> bytes:
    """The body, refused as soon as it passes `max_bytes` (declared or not)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise service.DocumentTooLargeError(f"The request body is over {max_bytes} bytes.")
    body = bytearray()
    async for piece in request.stream():
        body += piece
        if len(body) > max_bytes:
            raise service.DocumentTooLargeError(f"The request body is over {max_bytes} bytes.")
    return bytes(body)


@router.post(
    "/documents",
    status_code=201,
    summary="Add a document: JSON text or URL, or a multipart upload (PDF, Markdown, text)",
    openapi_extra=_DOCUMENT_REQUEST_BODY,
)
async def create_document(request: Request, principal: CurrentPrincipal) -> DocumentOut:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type == "application/json":
        record = await _create_from_json(request, principal)
    elif media_type == "multipart/form-data":
        record = await _create_from_upload(request, principal)
    else:
        raise UnsupportedMediaTypeError(
            "Send application/json ({title, kind, content} or {url}) or a multipart/form-data "
            "upload with a `file`."
        )
    return DocumentOut.of(record)


async def _create_from_json(request: Request, principal: Principal) -> DocumentRecord:
    services = _services(request)
    limit = services.settings.knowledge_max_document_bytes
    raw = await _read_body(request, limit * JSON_ESCAPE_FACTOR + ENVELOPE_BYTES)
    body = _parsed(DocumentIn, raw)
    if body.url is not None:
        return await service.add_web_document(
            services,
            principal.organization_id,
            url=body.url,
            title=body.title,
            agent_id=body.agent_id,
        )
    assert body.content is not None, "DocumentIn requires content or url"
    assert body.title is not None, "DocumentIn requires a title with content"
    new = service.NewDocument(body.title, DocumentKind(body.kind), body.content, body.agent_id)
    return await service.add_text_document(services, principal.organization_id, new)


async def _create_from_upload(request: Request, principal: Principal) -> DocumentRecord:
    services = _services(request)
    declared = request.headers.get("content-length", "")
    limit = services.settings.knowledge_max_document_bytes
    if declared.isdigit() and int(declared) > limit + ENVELOPE_BYTES:
        raise service.DocumentTooLargeError(f"The upload is over the {limit}-byte limit.")
    form = await request.form(max_files=1, max_fields=2)
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise RequestValidationError(
                [{"loc": ("body", "file"), "msg": "A file is required.", "type": "missing"}]
            )
        fields = _parsed(
            UploadFields, {"title": form.get("title"), "agent_id": form.get("agent_id")}
        )
        service.check_document_size(services.settings, upload.size or 0)
        data = await upload.read()
    finally:
        await form.close()
    return await service.add_uploaded_document(
        services,
        principal.organization_id,
        filename=upload.filename or "",
        media_type=(upload.content_type or "").split(";")[0].strip().lower(),
        data=data,
        title=fields.title,
        agent_id=fields.agent_id,
    )


@router.get("/documents", summary="The organization's documents, newest first")
async def list_documents(
    request: Request,
    principal: CurrentPrincipal,
    agent_id: AgentFilter = None,
    limit: PageLimit = 50,
    cursor: PageCursor = None,
) -> Page[DocumentOut]:
    found = await service.list_documents(
        _services(request), principal.organization_id, PageRequest.parse(limit, cursor), agent_id
    )
    return Page[DocumentOut](
        items=[DocumentOut.of(record) for record in found.items], next_cursor=found.next_cursor
    )


@router.get("/documents/{document_id}", summary="A document, with its number of chunks")
async def get_document(
    request: Request, principal: CurrentPrincipal, document_id: uuid.UUID
) -> DocumentOut:
    record = await service.get_document(_services(request), principal.organization_id, document_id)
    return DocumentOut.of(record)


@router.delete(
    "/documents/{document_id}", status_code=204, summary="Delete a document and its chunks"
)
async def delete_document(
    request: Request, principal: CurrentPrincipal, document_id: uuid.UUID
) -> Response:
    await service.delete_document(_services(request), principal.organization_id, document_id)
    return Response(status_code=204)


@router.get("/search", summary="Passages matching a query, with their sources")
async def search(
    request: Request,
    principal: CurrentPrincipal,
    q: Annotated[str, Query(min_length=1, max_length=1000, description="Web-search syntax.")],
    agent_id: AgentFilter = None,
    limit: Annotated[int, Query(ge=1, le=MAX_SEARCH_RESULTS)] = 5,
) -> SearchOut:
    result = await service.search(
        _services(request), principal.organization_id, q, agent_id=agent_id, limit=limit
    )
    return SearchOut.of(q, result)


@router.post("/faqs", status_code=201, summary="Add a question and its answer")
async def create_faq(request: Request, principal: CurrentPrincipal, body: FaqIn) -> FaqOut:
    faq = await service.add_faq(
        _services(request),
        principal.organization_id,
        question=body.question,
        answer=body.answer,
        enabled=body.enabled,
        agent_id=body.agent_id,
    )
    return FaqOut.of(faq)


@router.get("/faqs", summary="The organization's FAQ pairs, newest first")
async def list_faqs(
    request: Request,
    principal: CurrentPrincipal,
    agent_id: AgentFilter = None,
    limit: PageLimit = 50,
    cursor: PageCursor = None,
) -> Page[FaqOut]:
    found = await service.list_faqs(
        _services(request), principal.organization_id, PageRequest.parse(limit, cursor), agent_id
    )
    return Page[FaqOut](
        items=[FaqOut.of(faq) for faq in found.items], next_cursor=found.next_cursor
    )


@router.get("/faqs/{faq_id}", summary="An FAQ pair")
async def get_faq(request: Request, principal: CurrentPrincipal, faq_id: uuid.UUID) -> FaqOut:
    return FaqOut.of(await service.get_faq(_services(request), principal.organization_id, faq_id))


@router.patch("/faqs/{faq_id}", summary="Change an FAQ pair")
async def change_faq(
    request: Request, principal: CurrentPrincipal, faq_id: uuid.UUID, body: FaqPatch
) -> FaqOut:
    faq = await service.change_faq(
        _services(request), principal.organization_id, faq_id, body.model_dump(exclude_unset=True)
    )
    return FaqOut.of(faq)


@router.delete("/faqs/{faq_id}", status_code=204, summary="Delete an FAQ pair")
async def delete_faq(request: Request, principal: CurrentPrincipal, faq_id: uuid.UUID) -> Response:
    await service.delete_faq(_services(request), principal.organization_id, faq_id)
    return Response(status_code=204)
