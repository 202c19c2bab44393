"""Errors that carry their HTTP status and a stable machine-readable code.

Services raise these; the API renders every one of them the same way
(``{"error": code, "detail": ...}``) and the CLI prints ``detail`` and exits non-zero.
"""

from __future__ import annotations

from typing import Any


class MDMError(Exception):
    status_code: int = 500
    code: str = "internal_error"

    def __init__(self, detail: Any = None, *, code: str | None = None) -> None:
        self.detail = detail if detail is not None else self.__class__.__doc__
        if code is not None:
            self.code = code
        super().__init__(str(self.detail))


class BadRequest(MDMError):
    """The request is malformed."""

    status_code = 400
    code = "bad_request"


class MalformedId(BadRequest):
    """The canonical ID is malformed (wrong shape or check character)."""

    code = "malformed_id"


class Unauthorized(MDMError):
    """Authentication is missing or invalid."""

    status_code = 401
    code = "unauthorized"


class Forbidden(MDMError):
    """The caller lacks the scope for this action."""

    status_code = 403
    code = "forbidden"


class NotFound(MDMError):
    """The resource does not exist."""

    status_code = 404
    code = "not_found"


class EntityNotFound(NotFound):
    """No entity has this canonical ID."""

    code = "entity_not_found"


class Conflict(MDMError):
    """The request conflicts with the current state."""

    status_code = 409
    code = "conflict"


class AlreadyMerged(Conflict):
    """The entity has already been merged into another one."""

    code = "already_merged"


class ConfigError(MDMError):
    """A configuration file (mapping, matching rules) is invalid."""

    status_code = 500
    code = "config_error"


class DatabaseUnavailable(MDMError):
    """The database cannot be reached; retry later."""

    status_code = 503
    code = "database_unavailable"


class UnknownEntityType(NotFound):
    """No such entity type (``citizen``, ``organization``, ``dossier``)."""

    code = "unknown_entity_type"


class UnknownSourceSystem(NotFound):
    """The source system is not registered."""

    code = "unknown_source_system"


class RecordRejected(MDMError):
    """The record cannot be used: its standardization found errors.

    ``detail`` is ``{"message": ..., "issues": [{"field", "pointer", "code",
    "severity", "message"}, ...]}``; ``reject`` is the ``rejects`` row to keep (the
    caller writes it after rolling back, see ``mdm.services.registration``).
    """

    status_code = 422
    code = "record_rejected"

    def __init__(self, detail: Any = None, *, reject: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.reject = reject


class IdempotencyKeyReused(Conflict):
    """The Idempotency-Key was already used for a different request."""

    code = "idempotency_key_reused"


class SourceKeyTypeMismatch(Conflict):
    """The source key is already registered for another entity type."""

    code = "source_key_type_mismatch"


class RegistrationContended(Conflict):
    """Concurrent registrations kept colliding; retry the request."""

    code = "registration_contended"


class MatchingUnavailable(MDMError):
    """The entity type has no trained matching model yet; records cannot be placed."""

    status_code = 503
    code = "matching_unavailable"
