"""Errors as types. A request's carry their HTTP status and a stable problem code, which the edge renders as an
RFC 9457 problem body (maillage.core.web.problems); a record's carry the stable reason its dead letter gives.
Nothing here knows of HTTP frameworks or Kafka."""

from __future__ import annotations

from typing import Any, ClassVar


class MaillageError(Exception):
    """Base of every error a client may see; subclasses fix the status and the problem type."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "validation"

    def __init__(self, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extensions = extensions


class NotFound(MaillageError):
    status, code = 404, "not-found"


class Conflict(MaillageError):
    status, code = 409, "conflict"


class UnknownRecipient(MaillageError):
    status, code = 422, "unknown-recipient"


class UnknownDiscloser(MaillageError):
    status, code = 422, "unknown-discloser"


class InvalidRequest(MaillageError):
    status, code = 422, "validation"


class WebhookDestinationRefused(MaillageError):
    status, code = 422, "webhook-destination"


class IdempotencyKeyReused(MaillageError):
    status, code = 422, "idempotency-key-reused"


class Unauthorized(MaillageError):
    status, code = 401, "unauthorized"


class Forbidden(MaillageError):
    status, code = 403, "forbidden"


class TooManyStreams(MaillageError):
    status, code = 429, "too-many-streams"


class NotReady(MaillageError):
    status, code = 503, "not-ready"


# --- records -----------------------------------------------------------------------------------------


class Unacceptable(Exception):
    """What makes a record unacceptable: `reason` is a stable machine-readable word (its dead letter's),
    `detail` tells a person more."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
