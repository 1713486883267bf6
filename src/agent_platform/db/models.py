"""Every mapped table, imported in one place so metadata (and Alembic) sees them all."""

from agent_platform.activity.models import ActivityLog
from agent_platform.agent.models import Agent
from agent_platform.conversation.models import Conversation, Message
from agent_platform.crm.models import CrmCall, CrmConnection, CrmDelivery, CrmTask, InboxEvent
from agent_platform.db.base import Base
from agent_platform.organization.models import ApiKey, Membership, Organization, User

__all__ = [
    "ActivityLog",
    "Agent",
    "ApiKey",
    "Base",
    "Conversation",
    "CrmCall",
    "CrmConnection",
    "CrmDelivery",
    "CrmTask",
    "InboxEvent",
    "Membership",
    "Message",
    "Organization",
    "User",
]
