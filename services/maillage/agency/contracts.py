"""Request and response bodies of the agency API (the OpenAPI contract partner systems code against)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)

from maillage.core.messaging.envelope import POLE, SUBJECT_REF
from maillage.domain.consultations import NEVER_ASKED, identifying_fields
from maillage.domain.errors import NotAnonymous
from maillage.domain.events import (
    Advice,
    AlertKind,
    ConferencePurpose,
    ConsultationQuestion,
    CorrectionReason,
    DeclineReason,
    ErasureGround,
    Health,
    Holder,
    HoldReason,
    Language,
    LegalReference,
    Level,
    LongText,
    NoticeKind,
    NoticeVersion,
    PersonalData,
    RecipientId,
    ReferralDecision,
    ReferralReason,
    ReportLanguage,
    ReviewDecision,
    Risk,
)
from maillage.domain.vocabulary import Category, LegalBasis, Purpose, Role, Sector, Severity


def _subject_ref(value: str) -> str:
    if not SUBJECT_REF.match(value):
        raise ValueError("subject_ref must be 's-' and 32 lowercase hexadecimal digits (128 random bits)")
    return value


# The pattern is published, so that a partner system (or a generated client) knows the check before it is made.
SubjectRef = Annotated[
    str,
    AfterValidator(_subject_ref),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": SUBJECT_REF.pattern,
            "description": "A person's pseudonymous reference: 's-' and 32 lowercase hexadecimal digits.",
        }
    ),
]
PoleName = Annotated[str, StringConstraints(pattern=POLE.pattern)]


class Body(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def required_when(field: str, value: str, *, needed: str) -> dict[str, Any]:
    """JSON Schema (published in the OpenAPI) for a rule the service checks: when `field` is `value`,
    `needed` is given and not null. A client generated from the schema then knows it before a 422 tells it."""
    return {
        "if": {"properties": {field: {"const": value}}, "required": [field]},
        "then": {"required": [needed], "properties": {needed: {"not": {"type": "null"}}}},
    }


GROUNDS_RULES = [
    required_when("legal_basis", LegalBasis.LEGAL_OBLIGATION.value, needed="legal_reference"),
    required_when("legal_basis", LegalBasis.CASE_CONFERENCE.value, needed="conference_id"),
]


EventPole = Annotated[
    str | None,
    Field(
        default=None,
        pattern=POLE.pattern,
        description="The Pôle the event belongs to, one this agency serves (as the network file names it): a "
        "sector among the recipients means that sector's agencies of this Pôle only. Default: the agency's only "
        "Pôle; an agency serving several must name one whenever it addresses a sector. Agencies named by id are "
        "reached wherever they work.",
    ),
]


class GroundsIn(Body):
    """What a disclosure rests on when it is not the person's consent (nor, for an alert, danger)."""

    legal_reference: LegalReference | None = Field(
        default=None,
        description="With `legal_obligation` (required): the court order or the article of law that obliges the "
        "disclosure, e.g. `C.i.cr. art. 46quater` or a court order's number. Recorded in the audit chain.",
    )
    conference_id: UUID | None = Field(
        default=None,
        description="With `case_conference` (required): the case conference (art. 458ter) it is disclosed under. "
        "Only its participants receive, only about its subjects, until it is closed or ends.",
    )


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


class ReferralIn(GroundsIn):
    model_config = ConfigDict(
        json_schema_extra={
            "allOf": [required_when("reason", ReferralReason.OTHER.value, needed="reason_comment"), *GROUNDS_RULES]
        }
    )

    subject_ref: SubjectRef
    subject_role: Role
    recipient: RecipientId = Field(description="A sector, or a named agency id.")
    reason: ReferralReason = Field(
        description="What the person is referred for: shelter, psychological support, perpetrator programme, "
        "legal advice, medical care, financial aid, child protection assessment, or `other` (then say what in "
        "`reason_comment`)."
    )
    reason_comment: LongText | None = Field(
        default=None,
        description="More about the reason; required with `other`. Data category narrative: the recipient gets it "
        "only when the consents and its sector's ceiling allow narrative.",
    )
    purpose: Purpose = Purpose.REFERRAL
    categories_needed: tuple[Category, ...] = ()
    legal_basis: LegalBasis = Field(
        default=LegalBasis.CONSENT,
        description="`consent` (the consents this agency obtained), `legal_obligation` (with legal_reference, to "
        "one agency named by id) or `case_conference` (with conference_id). Neither of the last two needs consent; "
        "the recipient sector's ceiling always applies.",
    )
    pole: EventPole = None
    data: PersonalData


class CaseConferenceIn(Body):
    """A case conference (art. 458ter, *concertation de cas*) to convene: only agencies the network file
    authorises may (the Pôle's own service, a prosecutor's office)."""

    authorisation: LegalReference = Field(
        description="The authority it is convened on: the law setting it up, or the prosecutor's authorisation "
        "(a reference, e.g. `Decret 2024 art. 12` or `PG Liege 2026/88`)."
    )
    purpose: ConferencePurpose = Field(description="What it is convened for.")
    participants: tuple[RecipientId, ...] = Field(
        min_length=1,
        max_length=30,
        description="The participating agencies, by id (not sectors). They, and the convener, are the only ones "
        "that may send and receive under it.",
    )
    subjects: tuple[SubjectRef, ...] = Field(
        min_length=1, max_length=20, description="The persons it is about (pseudonymous references)."
    )
    ends_at: datetime = Field(description="When it ends unless closed before; must be in the future.")


class CaseConferenceOut(Body):
    conference_id: UUID = Field(description="Give it as `conference_id` with `legal_basis: case_conference`.")
    convener: str
    authorisation: str
    purpose: ConferencePurpose
    participants: list[str]
    subjects: list[str]
    ends_at: datetime
    closed_at: datetime | None
    state: Literal["open", "closed", "ended"] = Field(
        description="`open` until closed by its convener (`closed`) or past its end (`ended`)."
    )
    event_id: str = Field(description="The convening event.")


class AcceptedEvent(Body):
    event_id: str
    status_url: str


class ReferralAccepted(AcceptedEvent):
    referral_id: str


class ReferralResponseIn(Body):
    model_config = ConfigDict(
        json_schema_extra=required_when("decision", ReferralDecision.DECLINED.value, needed="decline_reason")
    )

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
    reason: ReferralReason | None = Field(default=None, description="What the person is referred for.")
    reason_comment: str | None = Field(
        default=None, description="More about the reason, when the recipient was allowed to receive it (narrative)."
    )


class AlertIn(GroundsIn):
    model_config = ConfigDict(
        json_schema_extra={
            "allOf": [required_when("legal_basis", LegalBasis.DANGER.value, needed="justification"), *GROUNDS_RULES]
        }
    )

    subject_ref: SubjectRef
    subject_role: Role
    severity: Severity
    kind: AlertKind
    recipients: tuple[RecipientId, ...] = Field(min_length=1, description="Sectors or agency ids.")
    legal_basis: LegalBasis = Field(
        default=LegalBasis.CONSENT,
        description="`consent`, `danger` (art. 458bis, with justification), `legal_obligation` (with "
        "legal_reference, to one agency named by id) or `case_conference` (with conference_id).",
    )
    purpose: Purpose = Purpose.SAFETY_PLANNING
    justification: LongText | None = Field(
        default=None, description="Required when legal_basis is `danger` (Penal Code art. 458bis)."
    )
    pole: EventPole = None
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
    holder: Holder = Field(
        default=Holder.AGENCY, description="The recipient's own service, or the dispatcher answering for its on-call."
    )
    misrouted: list[str] = Field(
        default=[],
        description="A role correction's: the events it received under the wrong role that the right role would "
        "not have allowed it (`POST /v1/subjects/{subject_ref}/role-corrections/{event_id}/erasure` erases them).",
    )
    disallowed: list[Category] = Field(default=[], description="The categories in them the right role does not allow.")


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


class EventFatePage(Body):
    items: list[EventFate]
    next_cursor: str | None


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
            raise NotAnonymous("problem.not-anonymous.remove", names=", ".join(found), extensions={"fields": found})
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
    model_config = ConfigDict(
        json_schema_extra={
            "if": {"properties": {"advice": {"contains": {"const": Advice.REFERRAL.value}}}, "required": ["advice"]},
            "then": {"required": ["refer_to"], "properties": {"refer_to": {"not": {"type": "null"}}}},
            "else": {"properties": {"refer_to": {"type": "null"}}},
        }
    )

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


# --- a person's rights: erasure and role correction ---------------------------------------------------------


class ErasureIn(Body):
    ground: ErasureGround = Field(description="The legal ground (GDPR art. 17(1)) the erasure rests on.")


class ErasureHolder(Body):
    agency: str = Field(description="An agency that held something about the person.")
    holder: Holder = Field(description="Its own service, or the dispatcher answering for its on-call.")
    state: Literal["pending", "confirmed"]
    confirmed_at: datetime | None = None
    erased: int | None = Field(default=None, description="How many events it erased, once confirmed.")


class ErasureOut(Body):
    erasure_id: str
    subject_ref: str
    requested_at: datetime
    state: Literal["sent", "pending", "confirmed", "rejected"] = Field(
        description="`sent` until the gateway has decided; `pending` while a holder has not confirmed; `confirmed` "
        "once every holder has (or none held anything); `rejected` when the gateway refused it."
    )
    holders: list[ErasureHolder]


class RoleCorrectionIn(Body):
    role: Role = Field(description="The person's role, corrected.")
    previous: Role = Field(description="The role recorded wrongly; not the corrected one.")
    reason: CorrectionReason

    @model_validator(mode="after")
    def _changes_the_role(self) -> RoleCorrectionIn:
        if self.role == self.previous:
            raise ValueError("a correction changes the role")
        return self


# --- the person's disclosure report -------------------------------------------------------------------


class ReportRequestIn(Body):
    """The person asks who received what about them across the network: registered here, answered by the
    gateway with a document for the person."""

    language: ReportLanguage = Field(description="The language the person reads: fr, nl or de.")


class ReportRequestOut(Body):
    request_id: str
    subject_ref: str
    language: str
    state: Literal["pending", "issued", "held", "refused"] = Field(
        description="`issued`: the document is ready; `held`: an agency that holds the person postponed it until "
        "`held_until`; `refused`: this agency holds no data about the person in the network."
    )
    requested_at: datetime
    answered_at: datetime | None = None
    disclosures: int | None = Field(default=None, description="How many disclosures the document lists.")
    held_until: datetime | None = None
    hold_reasons: list[HoldReason] = []
    refusal: str | None = Field(default=None, description="Why the gateway refused the request.")
    status_url: str = Field(description="This request.")
    pdf_url: str | None = None
    html_url: str | None = None


class ReportHoldIn(Body):
    until: datetime = Field(description="When the hold ends: at most 180 days from now.")
    reason: HoldReason = Field(description="Why telling the person now would endanger them.")


class ReportHoldOut(Body):
    hold_id: str
    event_id: str = Field(
        description="Its fate at `/v1/events/{event_id}`: refused unless this agency holds the person."
    )
    subject_ref: str
    until: datetime
    reason: HoldReason
    placed_by: str = Field(description="Pseudonymous reference of the professional who placed it.")
    placed_at: datetime
