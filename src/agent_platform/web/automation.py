"""Pages: automation — triggers, sequences and rules with their switches, the visual rule
editor with its dry run, sequences with their enrollments, and the run log."""

from __future__ import annotations

from fastapi import APIRouter

from agent_platform.web.automation_pages import editor, lists, runs, sequences
from agent_platform.web.routing import PageRoute

router = APIRouter(route_class=PageRoute, include_in_schema=False)
# The editor's fixed paths (…/triggers/new, …/triggers/test) before the lists' {kind}/{id}.
router.include_router(editor.router)
router.include_router(runs.router)
router.include_router(sequences.router)
router.include_router(lists.router)
