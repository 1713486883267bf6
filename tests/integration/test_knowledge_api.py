"""The knowledge-base REST API over real HTTP with an API key: documents as JSON text, as
uploads (PDF, Markdown) and as web pages fetched from a local site; search; FAQ pairs.

Every refusal is a 4xx with the contract's error body and writes nothing; another
organization's documents and FAQ pairs are not found.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from agent_platform.app import create_app
from agent_platform.config import Settings
from agent_platform.db.session import transaction
from agent_platform.knowledge.models import KnowledgeChunk, KnowledgeDocument, KnowledgeFaq
from agent_platform.services import Services
from tests.conftest import free_port
from tests.support.agents import assert_error
from tests.support.knowledge import Tenant, create_tenant
from tests.support.pdf import pdf_with_text
from tests.support.servers import serve_app

DOCUMENTS = "/api/v1/knowledge/documents"
SEARCH = "/api/v1/knowledge/search"
FAQS = "/api/v1/knowledge/faqs"
# The limits of the `small_limits_api` platform.
MAX_DOCUMENT_BYTES = 3_000
MAX_PAGE_BYTES = 5_000

SHOP_PAGE = """<html><head><title>Acme furniture</title><script>var tracking = "zebra";</script>
<style>.sofa { color: red }</style></head><body><nav>Home Catalogue</nav>
<h1>Sofas</h1><p>The Oslo sofa costs 900 USD.</p><h2>Delivery</h2><p>Free in Moscow.</p>
</body></html>"""


async def shop_page(request: Request) -> Response:
    return Response(SHOP_PAGE, media_type="text/html; charset=utf-8")


async def old_address(request: Request) -> Response:
    return RedirectResponse("/shop", status_code=301)


async def huge_page(request: Request) -> Response:
    return Response("<p>" + "word " * MAX_PAGE_BYTES + "</p>", media_type="text/html")


async def image(request: Request) -> Response:
    return Response(b"GIF89a", media_type="image/gif")


@pytest.fixture
def local_site() -> Iterator[str]:
    app = Starlette(
        routes=[
            Route("/shop", shop_page),
            Route("/old-shop", old_address),
            Route("/huge", huge_page),
            Route("/logo.gif", image),
        ]
    )
    with serve_app(app) as url:
        yield url


@pytest.fixture
async def api(api_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api_url) as client:
        yield client


@pytest.fixture
async def small_limits_api(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A platform that may fetch from private networks (the local site), with small limits."""
    assert settings.database_url
    permissive = settings.model_copy(
        update={
            "allow_private_network_fetch": True,
            "knowledge_max_document_bytes": MAX_DOCUMENT_BYTES,
            "web_fetch_max_bytes": MAX_PAGE_BYTES,
        }
    )
    with serve_app(create_app(permissive, settings.database_url)) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            yield client


@pytest.fixture
async def tenant(services: Services) -> Tenant:
    return await create_tenant(services)


async def stored_rows(services: Services) -> tuple[int, int, int]:
    """How many documents, chunks and FAQ pairs exist, in every organization."""
    async with transaction(services.sessions) as session:
        counts = [
            await session.scalar(select(func.count()).select_from(model))
            for model in (KnowledgeDocument, KnowledgeChunk, KnowledgeFaq)
        ]
    return (counts[0] or 0, counts[1] or 0, counts[2] or 0)


async def created(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def search_texts(
    api: httpx.AsyncClient, tenant: Tenant, query: str, **params: str
) -> list[str]:
    response = await api.get(SEARCH, params={"q": query, **params}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return [passage["text"] for passage in response.json()["passages"]]


def upload(name: str, data: bytes, media_type: str, **fields: str) -> dict[str, Any]:
    return {"files": {"file": (name, data, media_type)}, "data": fields}


async def test_a_text_document_is_added_listed_read_searched_and_deleted(
    api: httpx.AsyncClient, tenant: Tenant
) -> None:
    content = "# Prices\n\nThe Oslo sofa costs 900 USD.\n\n# Delivery\n\nFree in Moscow."
    document = await created(
        await api.post(
            DOCUMENTS,
            json={"title": "Price list", "kind": "markdown", "content": content},
            headers=tenant.headers,
        )
    )
    assert (document["title"], document["kind"], document["source_url"]) == (
        "Price list",
        "markdown",
        None,
    )
    assert (document["chunk_count"], document["characters"]) == (2, len(content))

    listed = (await api.get(DOCUMENTS, headers=tenant.headers)).json()
    assert [item["id"] for item in listed["items"]] == [document["id"]]
    assert listed["next_cursor"] is None
    read = await api.get(f"{DOCUMENTS}/{document['id']}", headers=tenant.headers)
    assert read.json() == document

    response = await api.get(SEARCH, params={"q": "sofas"}, headers=tenant.headers)
    found = response.json()
    assert found["query"] == "sofas"
    assert found["every_word_matched"] is True
    assert found["vector_search"] == {
        "enabled": False,
        "reason": "EMBEDDINGS_BASE_URL is not set",
    }
    (passage,) = found["passages"]
    assert passage["text"] == "# Prices\n\nThe Oslo sofa costs 900 USD."
    assert (passage["heading"], passage["document_title"], passage["matched_by"]) == (
        "Prices",
        "Price list",
        ["text"],
    )

    deleted = await api.delete(f"{DOCUMENTS}/{document['id']}", headers=tenant.headers)
    assert deleted.status_code == 204
    gone = await api.get(f"{DOCUMENTS}/{document['id']}", headers=tenant.headers)
    assert_error(gone, 404, "document_not_found")
    assert await search_texts(api, tenant, "sofa") == []


async def test_an_uploaded_pdf_is_read_and_searchable(
    api: httpx.AsyncClient, tenant: Tenant
) -> None:
    pdf = pdf_with_text("Oslo sofa: 900 USD.", "Warranty: two years.")
    document = await created(
        await api.post(
            DOCUMENTS,
            headers=tenant.headers,
            **upload("price-list.pdf", pdf, "application/pdf", agent_id=str(tenant.agent_id)),
        )
    )
    assert (document["title"], document["kind"], document["agent_id"]) == (
        "price-list",
        "pdf",
        str(tenant.agent_id),
    )
    assert await search_texts(api, tenant, "warranty", agent_id=str(tenant.agent_id)) == [
        "Oslo sofa: 900 USD.\n\nWarranty: two years."
    ]
    assert await search_texts(api, tenant, "warranty", agent_id=str(tenant.other_agent_id)) == []


async def test_an_uploaded_markdown_file_keeps_its_sections(
    api: httpx.AsyncClient, tenant: Tenant
) -> None:
    markdown = "# Доставка\n\nПо Москве бесплатно.\n\n# Оплата\n\nКартой или наличными."
    document = await created(
        await api.post(
            DOCUMENTS,
            headers=tenant.headers,
            **upload("faq.md", markdown.encode(), "application/octet-stream", title="Условия"),
        )
    )
    assert (document["title"], document["kind"], document["chunk_count"]) == (
        "Условия",
        "markdown",
        2,
    )
    response = await api.get(SEARCH, params={"q": "оплатить картой"}, headers=tenant.headers)
    assert [passage["heading"] for passage in response.json()["passages"]] == ["Оплата"]


async def test_a_web_page_is_fetched_read_and_searchable(
    small_limits_api: httpx.AsyncClient, tenant: Tenant, local_site: str
) -> None:
    document = await created(
        await small_limits_api.post(
            DOCUMENTS, json={"url": f"{local_site}/old-shop"}, headers=tenant.headers
        )
    )
    assert (document["title"], document["kind"], document["source_url"]) == (
        "Acme furniture",
        "web",
        f"{local_site}/shop",
    )
    passages = (
        await small_limits_api.get(SEARCH, params={"q": "sofa"}, headers=tenant.headers)
    ).json()["passages"]
    assert [(passage["heading"], passage["source_url"]) for passage in passages] == [
        ("Sofas", f"{local_site}/shop")
    ]
    for hidden in ["zebra", "color", "catalogue"]:
        assert await search_texts(small_limits_api, tenant, hidden) == [], hidden


async def test_bad_documents_are_refused_and_nothing_is_written(
    api: httpx.AsyncClient,
    small_limits_api: httpx.AsyncClient,
    services: Services,
    tenant: Tenant,
    local_site: str,
) -> None:
    headers = tenant.headers
    text = {"title": "Notes", "content": "Some text."}
    refusals: list[tuple[httpx.Response, int, str]] = [
        (await api.post(DOCUMENTS, json={**text, "content": " \n "}, headers=headers), 422,
         "empty_document"),
        (await api.post(DOCUMENTS, json={"content": "No title"}, headers=headers), 422,
         "validation_error"),
        (await api.post(DOCUMENTS, json={**text, "url": local_site}, headers=headers), 422,
         "validation_error"),
        (await api.post(DOCUMENTS, json={"url": local_site, "kind": "text"}, headers=headers),
         422, "validation_error"),
        (await api.post(DOCUMENTS, json={**text, "kind": "pdf"}, headers=headers), 422,
         "validation_error"),
        (await api.post(DOCUMENTS, json={**text, "color": "red"}, headers=headers), 422,
         "validation_error"),
        (await api.post(DOCUMENTS, content=b"{not json", headers=headers | {
            "content-type": "application/json"}), 422, "validation_error"),
        (await api.post(DOCUMENTS, json={**text, "agent_id": "not-a-uuid"}, headers=headers),
         422, "validation_error"),
        (await api.post(DOCUMENTS, json={**text, "agent_id": str(tenant.organization_id)},
                        headers=headers), 404, "agent_not_found"),
        (await api.post(DOCUMENTS, content=b"title=x", headers=headers | {
            "content-type": "application/x-www-form-urlencoded"}), 415, "unsupported_media_type"),
        (await api.post(DOCUMENTS, headers=headers, data={"title": "No file"},
                        files={"other": ("x.txt", b"x", "text/plain")}), 422, "validation_error"),
        (await api.post(DOCUMENTS, headers=headers,
                        **upload("fake.pdf", b"just text", "application/pdf")), 415,
         "unsupported_media_type"),
        (await api.post(DOCUMENTS, headers=headers,
                        **upload("broken.pdf", pdf_with_text("Half")[:150], "application/pdf")),
         422, "unreadable_document"),
        (await api.post(DOCUMENTS, headers=headers,
                        **upload("photo.jpg", b"\xff\xd8\xff", "image/jpeg")), 415,
         "unsupported_media_type"),
        (await api.post(DOCUMENTS, headers=headers,
                        **upload("cp1251.txt", "Цены".encode("cp1251"), "text/plain")), 422,
         "unreadable_document"),
        (await api.post(DOCUMENTS, headers=headers,
                        **upload("empty.txt", b"   ", "text/plain")), 422, "empty_document"),
        # Private networks are not allowed on the default platform.
        (await api.post(DOCUMENTS, json={"url": f"{local_site}/shop"}, headers=headers), 422,
         "unsafe_url"),
        (await api.post(DOCUMENTS, json={"url": "file:///etc/passwd"}, headers=headers), 422,
         "unsafe_url"),
        (await api.post(DOCUMENTS, json={"url": "http://169.254.169.254/latest/"},
                        headers=headers), 422, "unsafe_url"),
        (await small_limits_api.post(DOCUMENTS, json={"url": f"http://127.0.0.1:{free_port()}/"},
                                     headers=headers), 422, "fetch_failed"),
        (await small_limits_api.post(DOCUMENTS, json={"url": f"{local_site}/missing"},
                                     headers=headers), 422, "fetch_failed"),
        (await small_limits_api.post(DOCUMENTS, json={"url": f"{local_site}/huge"},
                                     headers=headers), 422, "fetched_content_too_large"),
        (await small_limits_api.post(DOCUMENTS, json={"url": f"{local_site}/logo.gif"},
                                     headers=headers), 415, "unsupported_media_type"),
        (await small_limits_api.post(DOCUMENTS, headers=headers,
                                     **upload("big.txt", b"x " * MAX_DOCUMENT_BYTES, "text/plain")),
         413, "payload_too_large"),
        (await small_limits_api.post(
            DOCUMENTS, json={**text, "content": "word " * MAX_DOCUMENT_BYTES}, headers=headers),
         413, "payload_too_large"),
        (await small_limits_api.post(
            DOCUMENTS, content=json.dumps({**text, "content": "\u0001" * 6 * MAX_DOCUMENT_BYTES}),
            headers=headers | {"content-type": "application/json"}), 413, "payload_too_large"),
    ]  # fmt: skip
    for response, status, code in refusals:
        assert_error(response, status, code)
    assert await stored_rows(services) == (0, 0, 0)


async def test_nul_characters_and_long_headings_never_fail_a_request(
    api: httpx.AsyncClient, tenant: Tenant
) -> None:
    headers = tenant.headers
    long_heading = "Heading " * 100
    document = await created(
        await api.post(
            DOCUMENTS,
            json={"title": "Odd", "content": f"# {long_heading}\n\nSofa\u0000 prices."},
            headers=headers,
        )
    )
    assert document["characters"] == len(f"# {long_heading}\n\nSofa prices.")
    response = await api.get(SEARCH, params={"q": "sofa\u0000"}, headers=headers)
    (passage,) = response.json()["passages"]
    assert passage["heading"] == long_heading.strip()[:500]
    refused = [
        await api.post(DOCUMENTS, json={"title": "a\u0000b", "content": "x"}, headers=headers),
        await api.post(FAQS, json={"question": "Sofa\u0000?", "answer": "Yes."}, headers=headers),
    ]
    for response in refused:
        assert_error(response, 422, "validation_error")


async def test_search_refuses_bad_queries(api: httpx.AsyncClient, tenant: Tenant) -> None:
    headers = tenant.headers
    assert_error(await api.get(SEARCH, headers=headers), 422, "validation_error")
    assert_error(await api.get(SEARCH, params={"q": ""}, headers=headers), 422, "validation_error")
    assert_error(await api.get(SEARCH, params={"q": "?! …"}, headers=headers), 422, "empty_query")
    for limit in ["0", "51", "many"]:
        response = await api.get(SEARCH, params={"q": "sofa", "limit": limit}, headers=headers)
        assert_error(response, 422, "validation_error")
    unknown_agent = {"q": "sofa", "agent_id": str(tenant.organization_id)}
    assert_error(
        await api.get(SEARCH, params=unknown_agent, headers=headers), 404, "agent_not_found"
    )


async def test_faq_pairs_are_added_listed_changed_and_deleted(
    api: httpx.AsyncClient, tenant: Tenant
) -> None:
    headers = tenant.headers
    faqs = [
        await created(
            await api.post(
                FAQS, json={"question": f"Question {n}?", "answer": f"Answer {n}."}, headers=headers
            )
        )
        for n in range(3)
    ]
    assert (faqs[0]["enabled"], faqs[0]["agent_id"]) == (True, None)

    first_page = (await api.get(FAQS, params={"limit": 2}, headers=headers)).json()
    assert [faq["id"] for faq in first_page["items"]] == [faqs[2]["id"], faqs[1]["id"]]
    second_page = (
        await api.get(
            FAQS, params={"limit": 2, "cursor": first_page["next_cursor"]}, headers=headers
        )
    ).json()
    assert ([faq["id"] for faq in second_page["items"]], second_page["next_cursor"]) == (
        [faqs[0]["id"]],
        None,
    )

    path = f"{FAQS}/{faqs[0]['id']}"
    changed = await api.patch(
        path,
        json={"answer": "  Better answer.  ", "enabled": False, "agent_id": str(tenant.agent_id)},
        headers=headers,
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["answer"], changed.json()["enabled"], changed.json()["agent_id"]) == (
        "Better answer.",
        False,
        str(tenant.agent_id),
    )
    assert (await api.get(path, headers=headers)).json() == changed.json()
    assert [faq["id"] for faq in (
        await api.get(FAQS, params={"agent_id": str(tenant.other_agent_id)}, headers=headers)
    ).json()["items"]] == [faqs[2]["id"], faqs[1]["id"]]  # fmt: skip

    assert (await api.delete(path, headers=headers)).status_code == 204
    assert_error(await api.get(path, headers=headers), 404, "faq_not_found")
    assert_error(await api.delete(path, headers=headers), 404, "faq_not_found")


async def test_bad_faq_requests_are_refused_and_change_nothing(
    api: httpx.AsyncClient, services: Services, tenant: Tenant
) -> None:
    headers = tenant.headers
    faq = await created(
        await api.post(
            FAQS, json={"question": "Do you deliver?", "answer": "Yes."}, headers=headers
        )
    )
    path = f"{FAQS}/{faq['id']}"
    refusals = [
        (await api.post(FAQS, json={"question": "  ", "answer": "Yes."}, headers=headers), 422,
         "validation_error"),
        (await api.post(FAQS, json={"question": "Q?"}, headers=headers), 422, "validation_error"),
        (await api.post(FAQS, json={"question": "Q?", "answer": "A.", "agent_id":
                                    str(tenant.organization_id)}, headers=headers), 404,
         "agent_not_found"),
        (await api.patch(path, json={}, headers=headers), 422, "validation_error"),
        (await api.patch(path, json={"question": None}, headers=headers), 422, "validation_error"),
        (await api.patch(path, json={"enabled": "sometimes"}, headers=headers), 422,
         "validation_error"),
        (await api.patch(path, json={"agent_id": str(tenant.organization_id)}, headers=headers),
         404, "agent_not_found"),
        (await api.get(f"{FAQS}/not-a-uuid", headers=headers), 422, "validation_error"),
        (await api.get(FAQS, params={"cursor": "forged"}, headers=headers), 400, "invalid_cursor"),
        (await api.get(FAQS), 401, "unauthorized"),
        (await api.get(DOCUMENTS, headers={"Authorization": "Bearer ap_x_y"}), 401,
         "unauthorized"),
    ]  # fmt: skip
    for response, status, code in refusals:
        assert_error(response, status, code)
    assert (await api.get(path, headers=headers)).json() == faq
    assert await stored_rows(services) == (0, 0, 1)


async def test_another_organizations_knowledge_is_not_found(
    api: httpx.AsyncClient, services: Services, tenant: Tenant
) -> None:
    document = await created(
        await api.post(
            DOCUMENTS, json={"title": "Prices", "content": "Sofa 900 USD."}, headers=tenant.headers
        )
    )
    faq = await created(
        await api.post(FAQS, json={"question": "Sofa?", "answer": "Yes."}, headers=tenant.headers)
    )
    rival = await create_tenant(services, "Rival")
    theirs = rival.headers
    for response in [
        await api.get(f"{DOCUMENTS}/{document['id']}", headers=theirs),
        await api.delete(f"{DOCUMENTS}/{document['id']}", headers=theirs),
        await api.get(f"{FAQS}/{faq['id']}", headers=theirs),
        await api.patch(f"{FAQS}/{faq['id']}", json={"answer": "No."}, headers=theirs),
        await api.delete(f"{FAQS}/{faq['id']}", headers=theirs),
    ]:
        assert response.status_code == 404, response.text
    assert_error(
        await api.get(DOCUMENTS, params={"agent_id": str(tenant.agent_id)}, headers=theirs),
        404,
        "agent_not_found",
    )
    assert (await api.get(DOCUMENTS, headers=theirs)).json()["items"] == []
    assert (await api.get(FAQS, headers=theirs)).json()["items"] == []
    assert await search_texts(api, rival, "sofa") == []
    assert (await api.get(f"{FAQS}/{faq['id']}", headers=tenant.headers)).json() == faq
    assert await search_texts(api, tenant, "sofa") == ["Sofa 900 USD."]
