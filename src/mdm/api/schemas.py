"""Request and response bodies of the agency API (what its OpenAPI documents).

Responses are built as plain dicts and rendered with orjson on the hot paths; these
models describe them for the OpenAPI document (and schemathesis checks that every
response conforms).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

EntityType = Literal["citizen", "organization", "dossier"]

#: No NUL character: Postgres can store it neither in text nor in JSON.
NO_NUL = r"^[^\x00]*$"
Text = Annotated[str, Field(pattern=NO_NUL)]


class EntityOut(BaseModel):
    requested_id: str
    canonical_id: str
    entity_type: str
    status: str
    version: int
    attributes: dict[str, Any]
    provenance: dict[str, Any]
    valid_from: str | None = Field(description="When this version became valid (ISO 8601)")
    redirected_from: str | None = Field(
        description="The requested ID when it was merged into this entity; else null"
    )
    masked: list[str] = Field(description="Attributes masked or withheld for this client")


class HistoryVersion(BaseModel):
    version: int
    status: str
    change: str
    changed_by: str
    valid_from: str | None
    attributes: dict[str, Any]
    provenance: dict[str, Any]
    masked: list[str]


class HistoryOut(BaseModel):
    canonical_id: str
    entity_type: str
    versions: list[HistoryVersion]


class XrefOut(BaseModel):
    source_system: str
    source_key: str
    canonical_id: str
    entity_type: str
    status: str


class BatchItem(BaseModel):
    """A canonical ID, or a source system's own key."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(None, max_length=64, pattern=NO_NUL)
    source_system: str | None = Field(None, max_length=100, pattern=NO_NUL)
    source_key: str | None = Field(None, max_length=200, pattern=NO_NUL)

    @model_validator(mode="after")
    def _one_kind(self) -> BatchItem:
        by_id = self.id is not None
        by_ref = self.source_system is not None or self.source_key is not None
        if by_id == by_ref:
            raise ValueError("give either id, or source_system and source_key")
        if by_ref and (self.source_system is None or self.source_key is None):
            raise ValueError("source_system and source_key go together")
        return self


MAX_BATCH = 1000


class BatchGetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[BatchItem] = Field(max_length=MAX_BATCH, description="At most 1,000 items")
    as_of: datetime | None = None


class BatchResult(BaseModel):
    ok: bool
    entity: EntityOut | None = None
    error: str | None = None
    detail: str | None = None


class BatchGetOut(BaseModel):
    results: list[BatchResult]


class SearchIn(BaseModel):
    """Raw attributes as a source would send them (standard field names), e.g.
    ``{"full_name": "Nguyen Van An", "birth_year": 1990, "province_code": "01"}``."""

    model_config = ConfigDict(extra="forbid")

    attributes: dict[Text, Text | int | None] = Field(
        description="Standard field names; also birth_year and province_code"
    )
    limit: int = Field(10, ge=1, le=100)
    min_probability: float = Field(0.0, ge=0.0, le=1.0)


class IssueOut(BaseModel):
    field: str
    code: str
    severity: str
    message: str


class SearchCandidate(BaseModel):
    canonical_id: str
    entity_type: str
    status: str
    match_probability: float
    match_weight: float
    decision: str = Field(description="auto_link, review or none: what matching would do")
    weights: dict[str, float] = Field(description="Per comparison: its match weight")
    attributes: dict[str, Any]
    masked: list[str]


class SearchOut(BaseModel):
    entity_type: str
    candidates: list[SearchCandidate]
    issues: list[IssueOut]


class RecordIn(BaseModel):
    """One source record as its source system holds it (standard field names)."""

    model_config = ConfigDict(extra="forbid")

    source_system: str = Field(min_length=1, max_length=100, pattern=NO_NUL)
    source_key: str = Field(min_length=1, max_length=200, pattern=NO_NUL)
    attributes: dict[Text, Text | None]


class RecordCandidateOut(BaseModel):
    source_record_id: int
    canonical_id: str | None
    match_probability: float | None
    match_weight: float | None
    weights: dict[str, float]
    decision: str
    forbidden: str | None


class RecordOut(BaseModel):
    canonical_id: str
    entity_type: str
    decision: Literal["linked", "created", "review"]
    source_system: str
    source_key: str
    source_record_id: int
    record_version: int
    changed: bool
    replayed: bool = Field(description="Answered again from the Idempotency-Key")
    reason: str | None
    candidates: list[RecordCandidateOut]
    issues: list[dict[str, Any]]


class RejectedIssue(BaseModel):
    field: str
    code: str
    severity: str
    message: str
    pointer: str | None = None


class RejectedDetail(BaseModel):
    message: str
    issues: list[RejectedIssue]


class RejectedBody(BaseModel):
    """422 ``record_rejected``: the record is unusable (kept in ``rejects``)."""

    error: str
    detail: RejectedDetail
