"""Every mapped table, imported in one place so metadata (and Alembic) sees them all."""

from agent_platform.activity.models import ActivityLog
from agent_platform.agent.models import Agent, AgentVersion
from agent_platform.automation.models import (
    AutomationRule,
    AutomationRun,
    Enrollment,
    ExpectedEcho,
    LeadSnapshot,
    Sequence,
    Trigger,
)
from agent_platform.conversation.models import Conversation, Message
from agent_platform.crm.models import CrmCall, CrmConnection, CrmDelivery, CrmTask, InboxEvent
from agent_platform.db.base import Base
from agent_platform.knowledge.models import KnowledgeChunk, KnowledgeDocument, KnowledgeFaq
from agent_platform.llm.models import LlmBudget, LlmCall
from agent_platform.organization.models import (
    ApiKey,
    Invitation,
    Membership,
    Organization,
    User,
    WebSession,
)

__all__ = [
    "ActivityLog",
    "Agent",
    "AgentVersion",
    "ApiKey",
    "AutomationRule",
    "AutomationRun",
    "Base",
    "Conversation",
    "CrmCall",
    "CrmConnection",
    "CrmDelivery",
    "CrmTask",
    "Enrollment",
    "ExpectedEcho",
    "InboxEvent",
    "Invitation",
    "KnowledgeChunk",
    "KnowledgeDocument",
    "KnowledgeFaq",
    "LeadSnapshot",
    "LlmBudget",
    "LlmCall",
    "Membership",
    "Message",
    "Organization",
    "Sequence",
    "Trigger",
    "User",
    "WebSession",
]
