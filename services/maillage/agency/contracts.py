"""Request and response bodies of the agency API (the OpenAPI contract partner systems code against)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AfterValidator, AnyHttpUrl, BaseModel, ConfigDict, Field

from maillage.core.messaging.envelope import SUBJECT_REF
from maillage.domain.events import (
    AlertKind,
    DeclineReason,
    Language,
    LongText,
    NoticeKind,
    NoticeVersion,
    PersonalData,
    RecipientId,
    ReferralDecision,
    ReferralReason,
)
from maillage.domain.vocabulary import Category, LegalBasis, Purpose, Role, Severity


def _subject_ref(value: str) -> str:
    if not SUBJECT_REF.match(value):
        raise ValueError("subject_ref must be 's-' and 32 lowercase hexadecimal digits (128 random bits)")
    return value


SubjectRef = Annotated[str, AfterValidator(_subject_ref)]


class Body(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ConsentIn(Body):
    subject_ref: SubjectRef
    categories: tuple[Category, ...] = Field(min_length=1)
    recipients: tuple[RecipientId, ...] = Field(min_length=1, description="Sectors or agency ids.")
    purposes: tuple[Purpose, ...] = Field(min_length=1)
    valid_until: datetime | None = None
    notice_version: NoticeVersion = Field(description="Version of the information notice the person received.")
    notice_language: Language = Field(description="Language of that notice.")
    disclosers: tuple[RecipientId, ...] = Field(
        default=(),
        description="Agency ids allowed to disclose under this consent besides this one (the person agreeing "
        "that these partners share with each other); by default this agency alone.",
    )


class ConsentOut(Body):
    consent_id: UUID
    subject_ref: str
    categories: list[Category]
    recipients: list[str]
    purposes: list[Purpose]
    valid_until: datetime | None
    granted_at: datetime
    withdrawn_at: datetime | None
    event_id: str
    obtained_by: str | None = Field(description="Pseudonymous reference of the professional who obtained it.")
    notice_version: str | None
    notice_language: str | None
    disclosers: list[str] = Field(description="Agencies allowed to disclose under it, this one first.")


class ReferralIn(Body):
    subject_ref: SubjectRef
    subject_role: Role
    recipient: RecipientId = Field(description="A sector, or a named agency id.")
    reason: ReferralReason = Field(description="What the person is referred for.")
    reason_comment: LongText | None = Field(
        default=None, description="More about the reason (with `other`); data category narrative."
    )
    purpose: Purpose = Purpose.REFERRAL
    categories_needed: tuple[Category, ...] = ()
    data: PersonalData


class AcceptedEvent(Body):
    event_id: str
    status_url: str


class ReferralAccepted(AcceptedEvent):
    referral_id: str


class ReferralResponseIn(Body):
    decision: ReferralDecision
    decline_reason: DeclineReason | None = None
    comment: LongText | None = None


class ReferralOut(Body):
    referral_id: str
    direction: str
    counterpart: str
    subject_ref: str
    subject_role: Role
    state: str
    decline_reason: str | None
    updated_at: datetime


class AlertIn(Body):
    subject_ref: SubjectRef
    subject_role: Role
    severity: Severity
    kind: AlertKind
    recipients: tuple[RecipientId, ...] = Field(min_length=1, description="Sectors or agency ids.")
    legal_basis: LegalBasis = LegalBasis.CONSENT
    purpose: Purpose = Purpose.SAFETY_PLANNING
    justification: LongText | None = Field(
        default=None, description="Required when legal_basis is `danger` (Penal Code art. 458bis)."
    )
    data: PersonalData


class AlertProgressOut(Body):
    state: str = Field(
        description="`escalated` (a further level was paged), `unacknowledged` (every level was "
        "paged in vain) or `acknowledged` (a worker took it in hand)."
    )
    level: int = Field(description="The escalation level reached, or of the worker who acknowledged.")
    escalated_at: datetime | None
    acknowledged_at: datetime | None


class RecipientOutcome(Body):
    recipient: str
    sector: str | None
    outcome: str
    legal_basis: str | None
    delivered: list[str]
    removed: dict[str, str]
    reason: str | None
    review: bool
    decided_at: datetime
    alert: AlertProgressOut | None = Field(
        default=None, description="For an alert: what the recipient's on-call workers did with it."
    )


class NoticeOut(Body):
    notice_id: str
    recipient: str = Field(description="An agency that had received data under what the event changed.")
    kind: NoticeKind
    events: list[str] = Field(description="The events it had received that the notice is about.")
    categories: list[Category] = Field(description="The categories it had received in them.")
    erase: bool = Field(description="It was asked to erase them, not only to stop using them.")
    delivered_at: datetime | None = Field(description="When the gateway sent it the notice.")
    acknowledged_at: datetime | None = Field(description="When its service stored the notice (and erased).")
    erased: int | None = Field(description="How many of the events it erased, once acknowledged.")


class EventFate(Body):
    event_id: str
    type: str
    subject_ref: str
    created_at: datetime
    state: str = Field(description="`pending` until the gateway has decided, then `decided` or `rejected`.")
    recipients: list[RecipientOutcome]
    notices: list[NoticeOut] = Field(
        default=[], description="The notices this event caused to past recipients (a withdrawal's), and receipts."
    )


class InboxEntry(Body):
    event_id: str
    type: str
    source_agency: str
    subject_ref: str
    subject_role: str
    legal_basis: str
    purpose: str
    sent_at: datetime
    received_at: datetime
    data: dict[str, Any]


class InboxPage(Body):
    items: list[InboxEntry]
    next_cursor: str | None


Lifetime = Annotated[
    int | None,
    Field(
        ge=1,
        description=(
            "Seconds it receives pushes from now; at most the service's maximum (30 days unless configured), "
            "which is also the default."
        ),
    ),
]


class WebhookIn(Body):
    url: AnyHttpUrl = Field(
        description="Where each arrival in the inbox is POSTed, signed: https, a public "
        "address, no credentials in the URL."
    )
    lifetime_seconds: Lifetime = None


class WebhookRenewal(Body):
    lifetime_seconds: Lifetime = None


class WebhookOut(Body):
    id: str
    url: str
    created_at: datetime
    expires_at: datetime = Field(description="After this it receives nothing more, unless renewed.")
    expired: bool
    registered_by: str | None = Field(description="Pseudonymous reference of the token that registered it.")


class WebhookCreated(WebhookOut):
    secret: str = Field(description="HMAC-SHA256 key of the Maillage-Signature header; shown only once.")


class WebhookSecret(Body):
    id: str
    secret: str = Field(description="The new HMAC-SHA256 key, signing every call from now on; shown only once.")


class WebhookAttemptOut(Body):
    attempt: int
    at: datetime
    outcome: Literal["delivered", "failed"]
    status_code: int | None = Field(
        description="The receiver's HTTP status; null when no answer came in time (why is not told)."
    )


class WebhookDeliveryOut(Body):
    id: int
    event_id: str
    state: str
    attempts: list[WebhookAttemptOut]
    next_attempt_at: datetime | None


class WebhookDeliveryPage(Body):
    items: list[WebhookDeliveryOut]
    next_cursor: str | None = Field(description="Pass it as `cursor` for the next page; none after the last.")
