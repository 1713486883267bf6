"""The knowledge base API's request and response bodies."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from agent_platform.knowledge.models import MAX_TITLE_CHARS, MAX_URL_CHARS, KnowledgeFaq
from agent_platform.knowledge.repository import DocumentRecord
from agent_platform.knowledge.results import MatchedBy, Passage, SearchResult


def _without_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL; refused here, it is a 422 rather than a failed insert.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


NoNul = AfterValidator(_without_nul)


def _bounds(max_length: int) -> StringConstraints:
    return StringConstraints(strip_whitespace=True, min_length=1, max_length=max_length)


Title = Annotated[str, _bounds(MAX_TITLE_CHARS), NoNul]
Url = Annotated[str, _bounds(MAX_URL_CHARS), NoNul]
Question = Annotated[str, _bounds(1000), NoNul]
Answer = Annotated[str, _bounds(10_000), NoNul]

AGENT_ID_DESCRIPTION = "Only this agent uses it; none: every agent of the organization."


class DocumentIn(BaseModel):
    """A text (`title`, `kind`, `content`) or a web page to fetch (`url`, `title` optional)."""

    model_config = ConfigDict(extra="forbid")

    title: Title | None = None
    kind: Literal["text", "markdown"] = "text"
    content: str | None = Field(default=None, description="The document's text.")
    url: Url | None = Field(default=None, description="An http(s) page, PDF or text to fetch.")
    agent_id: uuid.UUID | None = Field(default=None, description=AGENT_ID_DESCRIPTION)

    @model_validator(mode="after")
    def _text_or_url(self) -> DocumentIn:
        if (self.content is None) == (self.url is None):
            raise ValueError("Send either `content` (with `title`) or `url`.")
        if self.content is not None and self.title is None:
            raise ValueError("A text document needs a `title`.")
        if self.url is not None and "kind" in self.model_fields_set:
            raise ValueError("`kind` is for texts; a fetched document's is what its server says.")
        return self


class UploadFields(BaseModel):
    """The form fields that may come with an uploaded file."""

    title: Title | None = None
    agent_id: uuid.UUID | None = None


class DocumentOut(BaseModel):
    id: uuid.UUID
    title: str
    kind: str
    source_url: str | None
    agent_id: uuid.UUID | None
    characters: int
    chunk_count: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, record: DocumentRecord) -> DocumentOut:
        document = record.document
        return cls(
            id=document.id,
            title=document.title,
            kind=document.kind,
            source_url=document.source_url,
            agent_id=document.agent_id,
            characters=len(document.content),
            chunk_count=record.chunk_count,
            created_at=document.created_at,
            updated_at=document.updated_at,
        )


class PassageOut(BaseModel):
    chunk_id: uuid.UUID
    document_id: uuid.UUID
    document_title: str
    source_url: str | None
    heading: str | None
    text: str
    score: float = Field(description="Higher is better; comparable within one answer only.")
    matched_by: list[MatchedBy]

    @classmethod
    def of(cls, passage: Passage) -> PassageOut:
        return cls(
            chunk_id=passage.chunk_id,
            document_id=passage.document_id,
            document_title=passage.document_title,
            source_url=passage.source_url,
            heading=passage.heading,
            text=passage.text,
            score=passage.score,
            matched_by=sorted(passage.matched_by),
        )


class VectorSearchOut(BaseModel):
    enabled: bool
    reason: str | None = Field(description="Why vector search is off; null when it is on.")


class SearchOut(BaseModel):
    query: str
    every_word_matched: bool = Field(
        description="The passages found by text contain every word of the query; when false, "
        "none did, and these contain some of its words."
    )
    passages: list[PassageOut]
    vector_search: VectorSearchOut

    @classmethod
    def of(cls, query: str, result: SearchResult) -> SearchOut:
        return cls(
            query=query,
            every_word_matched=result.every_word_matched,
            passages=[PassageOut.of(passage) for passage in result.passages],
            vector_search=VectorSearchOut(
                enabled=result.vector_search.enabled, reason=result.vector_search.reason
            ),
        )


class FaqIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: Question
    answer: Answer
    enabled: bool = True
    agent_id: uuid.UUID | None = Field(default=None, description=AGENT_ID_DESCRIPTION)


class FaqPatch(BaseModel):
    """The fields to change; `agent_id: null` makes the pair shared by every agent."""

    model_config = ConfigDict(extra="forbid")

    question: Question | None = None
    answer: Answer | None = None
    enabled: bool | None = None
    agent_id: uuid.UUID | None = None

    @model_validator(mode="after")
    def _something_to_change(self) -> FaqPatch:
        if not self.model_fields_set:
            raise ValueError("Name at least one field to change.")
        for name in ("question", "answer", "enabled"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"`{name}` cannot be null.")
        return self


class FaqOut(BaseModel):
    id: uuid.UUID
    question: str
    answer: str
    enabled: bool
    agent_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, faq: KnowledgeFaq) -> FaqOut:
        return cls(
            id=faq.id,
            question=faq.question,
            answer=faq.answer,
            enabled=faq.enabled,
            agent_id=faq.agent_id,
            created_at=faq.created_at,
            updated_at=faq.updated_at,
        )
