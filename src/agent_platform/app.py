"""The api process: create_app() builds the FastAPI application; nothing happens at import."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from agent_platform import __version__
from agent_platform.agent.conversation_control import router as conversation_control_router
from agent_platform.agent.endpoints import router as agents_router
from agent_platform.agent.eval_endpoints import router as agent_eval_router
from agent_platform.automation.rules.endpoints import router as rules_router
from agent_platform.automation.runs.endpoints import router as automation_runs_router
from agent_platform.automation.sequences.endpoints import enrollments_router
from agent_platform.automation.sequences.endpoints import router as sequences_router
from agent_platform.automation.triggers.endpoints import router as triggers_router
from agent_platform.automation.triggers.endpoints import webhook_secret_router
from agent_platform.config import Settings
from agent_platform.conversation.chat_endpoints import router as chat_router
from agent_platform.conversation.endpoints import router as conversations_router
from agent_platform.crm.kommo.connection_endpoints import router as kommo_connections_router
from agent_platform.crm.kommo.endpoints import router as kommo_router
from agent_platform.crm.records.endpoints import router as crm_records_router
from agent_platform.kit.errors import install_error_handlers
from agent_platform.knowledge.endpoints import router as knowledge_router
from agent_platform.llm.endpoints import router as llm_router
from agent_platform.ops.endpoints import router as ops_router
from agent_platform.ops.request_context import RequestContextMiddleware
from agent_platform.services import Services, open_services
from agent_platform.web.app import STATIC_PATH, static_files
from agent_platform.web.app import router as web_router
from agent_platform.web.security import ApiCorsMiddleware, SecurityHeadersMiddleware


def create_app(settings: Settings, database_url: str, services: Services | None = None) -> FastAPI:
    """The api. With `services` given (as `up` does) it shares them; else it opens its own."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if services is not None:
            app.state.services = services
            yield
            return
        async with open_services(settings, database_url) as opened:
            app.state.services = opened
            yield

    app = FastAPI(
        title="GPT Agent Platform",
        version=__version__,
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.add_middleware(ApiCorsMiddleware, allowed_origins=settings.cors_allowed_origins)
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(RequestContextMiddleware)
    app.include_router(ops_router)
    app.include_router(agents_router)
    app.include_router(agent_eval_router)
    app.include_router(conversation_control_router)
    app.include_router(chat_router)
    app.include_router(conversations_router)
    app.include_router(llm_router)
    # Before the webhook router: its /webhooks/kommo/{token} would take /webhooks/kommo/uninstall.
    app.include_router(kommo_connections_router)
    app.include_router(kommo_router)
    app.include_router(crm_records_router)
    app.include_router(knowledge_router)
    app.include_router(rules_router)
    app.include_router(triggers_router)
    app.include_router(webhook_secret_router)
    app.include_router(sequences_router)
    app.include_router(enrollments_router)
    app.include_router(automation_runs_router)
    app.include_router(web_router)
    app.mount(STATIC_PATH, static_files(), name="static")
    return app
