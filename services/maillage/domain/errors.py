"""Errors as types. A request's carry their HTTP status and a stable problem code, which the edge renders as an
RFC 9457 problem body (maillage.core.web.problems); a record's carry the stable reason its dead letter gives.
Nothing here knows of HTTP frameworks or Kafka."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar


class MaillageError(Exception):
    """Base of every error a client may see; subclasses fix the status and the problem type.

    `key` names the detail's message in the catalogs (maillage.core.i18n, domain `maillage`), `fields` fill it
    in: the edge renders it in the language the client asks for, so neither may hold personal data.
    `extensions` are further members of the problem body (machine-readable, never translated)."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "validation"

    def __init__(self, key: str, /, *, extensions: Mapping[str, Any] | None = None, **fields: Any) -> None:
        super().__init__(key)
        self.key = key
        self.fields = fields
        self.extensions = dict(extensions or {})


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


class PoleRequired(MaillageError):
    """A sector is addressed and the event's Pôle is unclear: the sender serves several, or not the one named."""

    status, code = 422, "pole-required"

    @classmethod
    def of(cls, poles: Sequence[str], *, asked: str | None) -> PoleRequired:
        """Asked for a Pôle the agency does not serve, or for none while it serves several."""
        extensions = {"poles": list(poles)}
        if asked is not None:
            return cls("problem.pole-required.not-served", pole=asked, extensions=extensions)
        return cls("problem.pole-required.choose", count=len(poles), extensions=extensions)


class GroundsRequired(MaillageError):
    """A legal basis invoked without what it requires (a legal reference, one named agency, a conference)."""

    status, code = 422, "grounds-required"


class ActingStaffRequired(MaillageError):
    """A system's token (client credentials) on a request where a person is meant, without saying who."""

    status, code = 422, "acting-staff-required"


class NotAConvener(MaillageError):
    """Only agencies the network file authorises convene case conferences (art. 458ter)."""

    status, code = 403, "not-a-convener"


class WebhookDestinationRefused(MaillageError):
    status, code = 422, "webhook-destination"


class IdempotencyKeyReused(MaillageError):
    status, code = 422, "idempotency-key-reused"


class Unauthorized(MaillageError):
    status, code = 401, "unauthorized"


class Forbidden(MaillageError):
    status, code = 403, "forbidden"


class SelfReview(MaillageError):
    """Art. 458bis: the one who raised a danger alert never reviews it."""

    status, code = 403, "self-review"


class AlreadyReviewed(MaillageError):
    status, code = 409, "already-reviewed"


class TooManyStreams(MaillageError):
    status, code = 429, "too-many-streams"


class NotReady(MaillageError):
    status, code = 503, "not-ready"


# --- anonymous consultations ---------------------------------------------------------------------------


class NotAnonymous(MaillageError):
    """A consultation carrying a part that would tell who it is about; `fields` names them, never their values."""

    status, code = 422, "not-anonymous"


class NoConsultationDesk(MaillageError):
    status, code = 422, "no-consultation-desk"


# --- records -----------------------------------------------------------------------------------------


class Unacceptable(Exception):
    """What makes a record unacceptable: `reason` is a stable machine-readable word (its dead letter's),
    `detail` tells a person more."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
