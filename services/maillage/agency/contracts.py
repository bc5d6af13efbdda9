"""Request and response bodies of the agency API (the OpenAPI contract partner systems code against)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AfterValidator, AnyHttpUrl, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from maillage.core.messaging.envelope import POLE, SUBJECT_REF
from maillage.domain.consultations import NEVER_ASKED, identifying_fields
from maillage.domain.errors import NotAnonymous
from maillage.domain.events import (
    Advice,
    AlertKind,
    ConsultationQuestion,
    DeclineReason,
    Health,
    Level,
    LongText,
    PersonalData,
    RecipientId,
    ReferralDecision,
    ReferralReason,
    ReviewDecision,
    Risk,
)
from maillage.domain.vocabulary import Category, LegalBasis, Purpose, Role, Sector, Severity


def _subject_ref(value: str) -> str:
    if not SUBJECT_REF.match(value):
        raise ValueError("subject_ref must be 's-' and 32 lowercase hexadecimal digits (128 random bits)")
    return value


SubjectRef = Annotated[str, AfterValidator(_subject_ref)]
PoleName = Annotated[str, StringConstraints(pattern=POLE.pattern)]


class Body(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ConsentIn(Body):
    subject_ref: SubjectRef
    categories: tuple[Category, ...] = Field(min_length=1)
    recipients: tuple[RecipientId, ...] = Field(min_length=1, description="Sectors or agency ids.")
    purposes: tuple[Purpose, ...] = Field(min_length=1)
    valid_until: datetime | None = None


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


class EventFate(Body):
    event_id: str
    type: str
    subject_ref: str
    created_at: datetime
    state: str = Field(description="`pending` until the gateway has decided, then `decided` or `rejected`.")
    recipients: list[RecipientOutcome]


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


# --- anonymous consultations ------------------------------------------------------------------------


def _anonymous(data: Any) -> Any:
    """Refuse, naming the fields, what would tell who a consultation is about — before any other check, so
    that a partner system learns the rule rather than a schema detail. Never the values."""
    if isinstance(data, dict):
        found = identifying_fields(data, never=NEVER_ASKED)
        if found:
            raise NotAnonymous(
                f"A consultation is anonymous: remove {', '.join(found)}. Describe the situation without names, "
                "contact details, addresses or references to a person or a court case.",
                fields=found,
            )
    return data


class AnonymousChild(Body):
    birth_year: int | None = Field(default=None, ge=1900, le=2100)
    lives_with_subject: bool | None = None


class AnonymousJudicial(Body):
    protection_order: bool | None = None
    custody_release_date: date | None = None


class ConsultationIn(Body):
    """A situation put to the Pôle's consultation desk for advice, without anyone's identity, contact or
    location, and without a person's reference: the envelope is about a random consultation reference."""

    questions: tuple[ConsultationQuestion, ...] = Field(min_length=1, description="What the asker wants to know.")
    subject_role: Role = Field(default=Role.VICTIM, description="Whom the situation is mostly about.")
    pole: PoleName | None = Field(
        default=None, description="The Pôle whose desk is asked; default: the sender's only Pôle."
    )
    children: tuple[AnonymousChild, ...] | None = Field(default=None, description="Children concerned, no names.")
    risk: Risk | None = None
    judicial: AnonymousJudicial | None = None
    health: Health | None = None
    narrative: LongText | None = Field(default=None, description="The situation, told without names.")

    @model_validator(mode="before")
    @classmethod
    def _refuse_identifying(cls, data: Any) -> Any:
        return _anonymous(data)


class ConsultationAccepted(AcceptedEvent):
    consultation_id: str
    consultation_ref: str = Field(description="What the consultation is about instead of a person (`c-…`).")
    desk: str = Field(description="The consultation desk it goes to.")


class ConsultationAnswerIn(Body):
    severity: Level
    dangerousness: Level
    advice: tuple[Advice, ...] = Field(min_length=1)
    refer_to: Sector | None = Field(default=None, description="With the `referral` advice: the sector to refer to.")
    comment: LongText | None = None

    @model_validator(mode="after")
    def _referral_names_a_sector(self) -> ConsultationAnswerIn:
        if (Advice.REFERRAL in self.advice) != (self.refer_to is not None):
            raise ValueError("refer_to goes with the referral advice, and the referral advice with refer_to")
        return self


class ConsultationAnswerOut(Body):
    severity: Level
    dangerousness: Level
    advice: list[Advice]
    refer_to: Sector | None = None
    comment: str | None = Field(default=None, description="Absent when the asker's ceiling excludes narrative.")


class ConsultationOut(Body):
    consultation_id: str
    consultation_ref: str
    direction: Literal["out", "in"] = Field(description="`out`: asked by this agency; `in`: put to its desk.")
    counterpart: str = Field(description="The desk asked (out), or the agency that asked (in).")
    pole: str
    subject_role: Role
    questions: list[ConsultationQuestion]
    state: Literal["pending", "answered"]
    asked_at: datetime
    answered_at: datetime | None
    answer: ConsultationAnswerOut | None


# --- reviews of danger alerts (art. 458bis) ------------------------------------------------------


class ReviewIn(Body):
    decision: ReviewDecision = Field(description="`rejected` has every recipient erase what it received.")
    comment: LongText | None = Field(default=None, description="Why; it stays at this agency.")


class ReviewLine(Body):
    alert_id: str
    severity: str
    kind: str
    raised_by: str | None = Field(description="Pseudonymous reference of the professional who raised it.")
    raised_at: datetime
    status: Literal["pending", "approved", "rejected"]
    decided_at: datetime | None


class ReviewOut(ReviewLine):
    """What a second professional weighs: the justification stays here, never leaves the agency."""

    subject_ref: str
    subject_role: str
    justification: str
    recipients: list[str] = Field(description="Sectors or agencies the alert was addressed to.")
    disclosed_to: list[str] = Field(description="Agencies the gateway disclosed it to under `danger`, once decided.")
    reviewer: str | None = Field(description="Pseudonymous reference of the reviewer.")
    comment: str | None
    review_event_id: str | None = Field(description="The decision's event: its fate at `/v1/events/{id}`.")


class ReviewPage(Body):
    items: list[ReviewLine]
    next_cursor: str | None
