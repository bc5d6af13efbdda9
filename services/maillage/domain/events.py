"""Event payload models, one frozen pydantic model per event type and version: the single source of schemas/.

Every field of a payload is either personal data, tagged with its data category
(`categorised(...)`), or routing metadata, tagged `metadata(...)`: closed vocabularies,
ids and dates only, so no free text can hide outside the categories the gateway filters.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from enum import StrEnum
from functools import cache
from types import MappingProxyType
from typing import Annotated, Any, ClassVar, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from maillage.domain.vocabulary import Category, Purpose, Role, Sector, Severity

CATEGORY_KEY = "x-maillage-category"
METADATA_KEY = "x-maillage-metadata"

# Blank text (Unicode White_Space only, what the validator strips) is refused: the published schema says so with
# this pattern, since its minLength counts the characters before they are stripped.
NOT_BLANK = r"[^\t\n\x0b\f\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=NOT_BLANK)]
LongText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=8000, pattern=NOT_BLANK)]
RecipientId = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{1,62}$")]
StaffRef = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{16}$")]
# A person's pseudonymous reference, as `new_subject_ref` mints it: no room for a name or a birth date.
SubjectRefText = Annotated[str, StringConstraints(pattern=r"^s-[0-9a-f]{32}$")]
# A court order's or an article of law's reference: letters, digits and the signs such references use,
# nothing that could carry a sentence about a person.
LegalReference = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9 ./:§()-]{0,99}$")]
NoticeVersion = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,40}$")]
Language = Literal["fr", "nl", "de", "en"]


def categorised(category: Category, description: str) -> Any:
    return Field(default=None, description=description, json_schema_extra={CATEGORY_KEY: category.value})


def metadata(description: str, **kwargs: Any) -> Any:
    return Field(description=description, json_schema_extra={METADATA_KEY: True}, **kwargs)


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Identity(Frozen):
    given_name: ShortText | None = None
    family_name: ShortText | None = None
    birth_date: date | None = None
    national_number: Annotated[str, StringConstraints(pattern=r"^\d{11}$")] | None = None
    language: Literal["fr", "nl", "de", "en"] | None = None


class Contact(Frozen):
    phone: ShortText | None = None
    email: ShortText | None = None
    safe_contact_times: ShortText | None = None


class Location(Frozen):
    address: ShortText | None = None
    municipality: ShortText | None = None
    in_shelter: bool | None = None


class Child(Frozen):
    given_name: ShortText | None = None
    birth_year: int | None = Field(default=None, ge=1900, le=2100)
    lives_with_subject: bool | None = None


class Risk(Frozen):
    level: Literal["low", "moderate", "high", "severe"] | None = None
    factors: tuple[ShortText, ...] = ()


class Judicial(Frozen):
    protection_order: bool | None = None
    case_reference: ShortText | None = None
    custody_release_date: date | None = None


class Health(Frozen):
    notes: LongText | None = None


class PersonalData(Frozen):
    """The eight categorised parts that any event about a person may carry."""

    identity: Identity | None = categorised(Category.IDENTITY, "Who the person is.")
    contact: Contact | None = categorised(Category.CONTACT, "How to reach the person safely.")
    location: Location | None = categorised(Category.LOCATION, "Where the person lives or shelters.")
    children: tuple[Child, ...] | None = categorised(Category.CHILDREN, "Children concerned.")
    risk: Risk | None = categorised(Category.RISK, "Risk assessment.")
    judicial: Judicial | None = categorised(Category.JUDICIAL, "Judicial measures.")
    health: Health | None = categorised(Category.HEALTH, "Health information.")
    narrative: LongText | None = categorised(Category.NARRATIVE, "Free text about the situation.")


class EventType(StrEnum):
    CONSENT_GRANTED = "maillage.consent.granted.v1"
    CONSENT_WITHDRAWN = "maillage.consent.withdrawn.v1"
    REFERRAL_CREATED = "maillage.referral.created.v1"
    REFERRAL_RESPONDED = "maillage.referral.responded.v1"
    ALERT_RAISED = "maillage.alert.raised.v1"
    ALERT_ACKNOWLEDGED = "maillage.alert.acknowledged.v1"
    ALERT_ESCALATED = "maillage.alert.escalated.v1"
    DISCLOSURE_REVIEWED = "maillage.disclosure.reviewed.v1"
    NOTICE_ISSUED = "maillage.notice.issued.v1"
    NOTICE_ACKNOWLEDGED = "maillage.notice.acknowledged.v1"
    CASE_CONFERENCE_CONVENED = "maillage.case_conference.convened.v1"
    CASE_CONFERENCE_CLOSED = "maillage.case_conference.closed.v1"
    CONSULTATION_REQUESTED = "maillage.consultation.requested.v1"
    CONSULTATION_ANSWERED = "maillage.consultation.answered.v1"
    SUBJECT_ERASURE_REQUESTED = "maillage.subject.erasure_requested.v1"
    SUBJECT_ERASURE_CONFIRMED = "maillage.subject.erasure_confirmed.v1"
    SUBJECT_ROLE_CORRECTED = "maillage.subject.role_corrected.v1"
    SUBJECT_REPORT_REQUESTED = "maillage.subject.report_requested.v1"
    SUBJECT_REPORT_HELD = "maillage.subject.report_held.v1"
    SUBJECT_REPORT_ISSUED = "maillage.subject.report_issued.v1"


class EventPayload(Frozen):
    event_type: ClassVar[EventType]


class ConsentGranted(EventPayload):
    """A person allows categories of their data to go to named sectors or agencies, for named purposes."""

    event_type: ClassVar[EventType] = EventType.CONSENT_GRANTED
    consent_id: UUID = metadata("Id of this consent, used to withdraw it.")
    categories: tuple[Category, ...] = metadata("Categories the person allows to share.", min_length=1)
    recipients: tuple[RecipientId, ...] = metadata("Sectors or agency ids allowed to receive.", min_length=1)
    purposes: tuple[Purpose, ...] = metadata("Purposes the data may be used for.", min_length=1)
    valid_until: datetime | None = metadata("End of validity; none means until withdrawn.", default=None)
    # A consent is given to the professional who obtained it, after an information notice: the record of
    # both is what a data-protection officer asks for first (GDPR art. 7(1): the controller must be able
    # to demonstrate consent).
    obtained_by: StaffRef | None = metadata("Pseudonymous reference of the professional who obtained it.", default=None)
    notice_version: NoticeVersion | None = metadata(
        "Version of the information notice the person received.", default=None
    )
    notice_language: Language | None = metadata("Language of that notice.", default=None)
    disclosers: tuple[RecipientId, ...] = metadata(
        "Agencies, besides the one that obtained it, the person allows to disclose under this consent "
        '("the Pôle\'s partners share with each other"); none: only the registering agency.',
        default=(),
    )


class ConsentWithdrawn(EventPayload):
    event_type: ClassVar[EventType] = EventType.CONSENT_WITHDRAWN
    consent_id: UUID = metadata("The consent that stops.")


class ReferralReason(StrEnum):
    SHELTER = "shelter"
    PSYCHOLOGICAL_SUPPORT = "psychological_support"
    PERPETRATOR_PROGRAMME = "perpetrator_programme"
    LEGAL_ADVICE = "legal_advice"
    MEDICAL_CARE = "medical_care"
    FINANCIAL_AID = "financial_aid"
    CHILD_PROTECTION_ASSESSMENT = "child_protection_assessment"
    OTHER = "other"


class Grounds(Frozen):
    """What a disclosure rests on besides consent or danger: a court order or an article of law
    (`legal_obligation`), or a case conference's reference (`case_conference`, art. 458ter)."""

    legal_reference: LegalReference | None = metadata(
        "Under `legal_obligation`: the court order or the article of law.", default=None
    )
    conference_id: UUID | None = metadata("Under `case_conference`: the conference's reference.", default=None)


class ReferralCreated(PersonalData, Grounds, EventPayload):
    """Orient a person to a sector or a named agency, for a reason, with the categories of data needed."""

    event_type: ClassVar[EventType] = EventType.REFERRAL_CREATED
    reason: ReferralReason = metadata("What the person is referred for.")
    reason_comment: LongText | None = categorised(Category.NARRATIVE, "More about the reason (with `other`).")
    categories_needed: tuple[Category, ...] = metadata("Categories the recipient needs.", default=())


class ReferralDecision(StrEnum):
    ACCEPTED = "accepted"
    DECLINED = "declined"
    CLOSED = "closed"


class DeclineReason(StrEnum):
    NO_CAPACITY = "no_capacity"
    OUT_OF_MANDATE = "out_of_mandate"
    PERSON_REFUSED = "person_refused"
    UNREACHABLE = "unreachable"
    OTHER = "other"


class ReferralResponded(EventPayload):
    """The recipient of a referral accepts, declines (with a reason) or closes it."""

    event_type: ClassVar[EventType] = EventType.REFERRAL_RESPONDED
    referral_id: UUID = metadata("Event id of the referral answered.")
    decision: ReferralDecision = metadata("What the recipient decided.")
    decline_reason: DeclineReason | None = metadata("Why it was declined.", default=None)
    narrative: LongText | None = categorised(Category.NARRATIVE, "A comment for the sender.")


class AlertKind(StrEnum):
    THREAT = "threat"
    CUSTODY_RELEASE = "custody_release"
    WEAPON = "weapon"
    PROTECTION_ORDER_BREACH = "protection_order_breach"
    OTHER = "other"


class AlertRaised(PersonalData, Grounds, EventPayload):
    """A safety alert; under the `danger` basis it carries a written justification (art. 458bis)."""

    event_type: ClassVar[EventType] = EventType.ALERT_RAISED
    severity: Severity = metadata("How urgent the danger is.")
    kind: AlertKind = metadata("What happened.")
    justification: LongText | None = categorised(
        Category.NARRATIVE, "Why the danger is serious and imminent (required under `danger`)."
    )
    raised_by: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{16}$")] | None = metadata(
        "Pseudonymous reference of who raised it: a danger disclosure's reviewer must be someone else.", default=None
    )


class AlertAcknowledged(EventPayload):
    """A worker of a recipient agency read the alert and took it in hand (emitted by the dispatcher)."""

    event_type: ClassVar[EventType] = EventType.ALERT_ACKNOWLEDGED
    alert_id: UUID = metadata("Event id of the alert acknowledged.")
    acknowledged_at: datetime = metadata("When a worker acknowledged it.")
    level: int = metadata("The escalation level of the worker who acknowledged it (1 is the first).", ge=1)


class AlertEscalated(EventPayload):
    """No one acknowledged the alert in time: the next level was paged, or every level was exhausted."""

    event_type: ClassVar[EventType] = EventType.ALERT_ESCALATED
    alert_id: UUID = metadata("Event id of the alert escalated.")
    escalated_at: datetime = metadata("When the time of the previous level ran out.")
    level: int = metadata("The level now paged; the last level again when every level is exhausted.", ge=1)
    exhausted: bool = metadata("Every level was paged and no one acknowledged: the fallback was called.", default=False)


class ReviewDecision(StrEnum):
    APPROVED = "approved"
    REJECTED = "rejected"


class DisclosureReviewed(EventPayload):
    """A second professional of the raising agency approved or rejected a disclosure made under `danger`
    (art. 458bis): a rejection has every recipient erase what it received under it."""

    event_type: ClassVar[EventType] = EventType.DISCLOSURE_REVIEWED
    alert_id: UUID = metadata("Event id of the alert whose danger disclosures are reviewed.")
    decision: ReviewDecision = metadata("Approved, or rejected.")
    reviewer: StaffRef = metadata("Pseudonymous reference of the reviewer: never the one who raised the alert.")


class NoticeKind(StrEnum):
    CONSENT_WITHDRAWN = "consent_withdrawn"  # stop using it: the person withdrew the consent it came under
    DISCLOSURE_REJECTED = "disclosure_rejected"  # erase it: a danger disclosure was rejected on review
    SUBJECT_ERASED = "subject_erased"  # erase everything held about the person, and confirm
    ROLE_CORRECTED = "role_corrected"  # the person's role was recorded wrongly: what was received under it
    EVENTS_ERASED = "events_erased"  # erase these events (received under a wrong role), and confirm


class Holder(StrEnum):
    """Which of an agency's services holds what a notice is about: its own service, or the on-call dispatcher
    that receives its alerts with its key (and answers for it)."""

    AGENCY = "agency"
    DISPATCHER = "dispatcher"


class NoticeIssued(EventPayload):
    """A notice to an agency that received data about a person: which events, which categories, and what
    it must now do (stop using, or erase). Built by the gateway from its own records; no payload value."""

    event_type: ClassVar[EventType] = EventType.NOTICE_ISSUED
    notice_id: UUID = metadata("Id of this notice, acknowledged by the recipient's service.")
    kind: NoticeKind = metadata("Why it is sent.")
    cause: UUID = metadata("The event that caused it: the withdrawal, or the review.")
    events: tuple[UUID, ...] = metadata(
        "The events the recipient received that the notice is about (none: an erasure of a person it only sent).",
        default=(),
    )
    categories: tuple[Category, ...] = metadata("The categories the recipient received in them.", default=())
    erase: bool = metadata("Erase what was received under them (not only stop using it).", default=False)
    holder: Holder = metadata("Which service of the recipient it is for.", default=Holder.AGENCY)
    role: Role | None = metadata("With `role_corrected`: the person's role from now on.", default=None)
    misrouted: tuple[UUID, ...] = metadata(
        "With `role_corrected`: the events received under the wrong role whose categories the right role would "
        "not have allowed this recipient.",
        default=(),
    )
    disallowed: tuple[Category, ...] = metadata(
        "With `role_corrected`: the categories received in them that the right role does not allow.", default=()
    )


class NoticeAcknowledged(EventPayload):
    """A recipient's service stored a notice (and erased what it asked to erase): the receipt."""

    event_type: ClassVar[EventType] = EventType.NOTICE_ACKNOWLEDGED
    notice_id: UUID = metadata("The notice acknowledged.")
    acknowledged_at: datetime = metadata("When the recipient's service stored it.")
    erased: int = metadata("How many of the events concerned it erased.", ge=0, default=0)


class SubjectErasureConfirmed(NoticeAcknowledged):
    """A holder's confirmation that it erased what an erasure notice asked (the person, or some events)."""

    event_type: ClassVar[EventType] = EventType.SUBJECT_ERASURE_CONFIRMED


class ErasureGround(StrEnum):
    """Why a person's data is erased (GDPR art. 17(1), and the network's own case)."""

    NO_LONGER_NECESSARY = "no_longer_necessary"  # 17(1)(a)
    CONSENT_WITHDRAWN = "consent_withdrawn"  # 17(1)(b)
    OBJECTION = "objection"  # 17(1)(c)
    UNLAWFUL_PROCESSING = "unlawful_processing"  # 17(1)(d)
    LEGAL_OBLIGATION = "legal_obligation"  # 17(1)(e), a court order
    WRONG_ROLE = "wrong_role"  # received under a role the person never had


class SubjectErasureRequested(EventPayload):
    """Erase a person everywhere (no `events`), or, after a role correction, exactly the events each recipient
    received under the wrong role that the right one would not have allowed it (`correction`)."""

    event_type: ClassVar[EventType] = EventType.SUBJECT_ERASURE_REQUESTED
    erasure_id: UUID = metadata("Id of the request, as the requesting agency registered it.")
    ground: ErasureGround = metadata("The legal ground of the erasure.")
    correction: UUID | None = metadata(
        "The role correction (its event id) whose misrouted deliveries are to be erased; none: the whole person.",
        default=None,
    )


class CorrectionReason(StrEnum):
    RECORDING_ERROR = "recording_error"  # entered wrongly
    ASSESSMENT_REVISED = "assessment_revised"  # a professional assessment (e.g. of mutual violence) revised it
    COURT_DECISION = "court_decision"  # a judgment or the prosecutor established otherwise
    PERSON_CONTESTED = "person_contested"  # the person contested it, and was found right


class SubjectRoleCorrected(EventPayload):
    """The role recorded for a person was wrong: from now on this role wins over what later events state."""

    event_type: ClassVar[EventType] = EventType.SUBJECT_ROLE_CORRECTED
    role: Role = metadata("The person's role, corrected.")
    previous: Role = metadata("The role recorded wrongly.")
    reason: CorrectionReason = metadata("Why it is corrected.")


class ConferencePurpose(StrEnum):
    RISK_ASSESSMENT = "risk_assessment"
    SAFETY_PLANNING = "safety_planning"
    COORDINATION = "coordination"
    CHILD_PROTECTION = "child_protection"


class CaseConferenceConvened(EventPayload):
    """A case conference (*concertation de cas*, art. 458ter) convened by an agency the network file
    authorises, on the authority its reference names: only its participants receive under it, only about
    its subjects, until it is closed or ends."""

    event_type: ClassVar[EventType] = EventType.CASE_CONFERENCE_CONVENED
    conference_id: UUID = metadata("The conference's reference in Maillage.")
    authorisation: LegalReference = metadata("The law setting it up, or the prosecutor's authorisation.")
    purpose: ConferencePurpose = metadata("What it is convened for.")
    participants: tuple[RecipientId, ...] = metadata("The participating agencies.", min_length=1)
    subjects: tuple[SubjectRefText, ...] = metadata("The persons it is about (pseudonymous).", min_length=1)
    ends_at: datetime = metadata("When it ends, unless closed before.")


class CaseConferenceClosed(EventPayload):
    event_type: ClassVar[EventType] = EventType.CASE_CONFERENCE_CLOSED
    conference_id: UUID = metadata("The conference closed.")


class Level(StrEnum):
    LOW = "low"
    MODERATE = "moderate"
    HIGH = "high"
    SEVERE = "severe"


class ConsultationQuestion(StrEnum):
    SEVERITY = "severity"
    DANGEROUSNESS = "dangerousness"
    CASE_CONFERENCE = "case_conference"
    ORIENTATION = "orientation"


class ConsultationRequested(EventPayload):
    """An anonymous situation put to the Pôle's consultation desk for advice. It never carries identity,
    contact or location, whatever the consent: the gateway refuses it whole if it does."""

    event_type: ClassVar[EventType] = EventType.CONSULTATION_REQUESTED
    questions: tuple[ConsultationQuestion, ...] = metadata("What the asker wants to know.", min_length=1)
    identity: Identity | None = categorised(Category.IDENTITY, "Never allowed: refused whole.")
    contact: Contact | None = categorised(Category.CONTACT, "Never allowed: refused whole.")
    location: Location | None = categorised(Category.LOCATION, "Never allowed: refused whole.")
    children: tuple[Child, ...] | None = categorised(Category.CHILDREN, "Children concerned (no names).")
    risk: Risk | None = categorised(Category.RISK, "Risk factors observed.")
    judicial: Judicial | None = categorised(Category.JUDICIAL, "Judicial measures known.")
    health: Health | None = categorised(Category.HEALTH, "Health information.")
    narrative: LongText | None = categorised(Category.NARRATIVE, "The situation, told without names.")


class Advice(StrEnum):
    CASE_CONFERENCE = "case_conference"
    REFERRAL = "referral"
    SAFETY_PLAN = "safety_plan"
    RISK_ASSESSMENT = "risk_assessment"
    DANGER_ALERT = "danger_alert"
    NO_FURTHER_ACTION = "no_further_action"


class ConsultationAnswered(EventPayload):
    """The consultation desk's assessment, back to the asker."""

    event_type: ClassVar[EventType] = EventType.CONSULTATION_ANSWERED
    consultation_id: UUID = metadata("Event id of the consultation answered.")
    severity: Level = metadata("How severe the situation is.")
    dangerousness: Level = metadata("How dangerous it is.")
    advice: tuple[Advice, ...] = metadata("What the desk advises.", min_length=1)
    refer_to: Sector | None = metadata("With `referral`: the sector to refer to.", default=None)
    comment: LongText | None = categorised(Category.NARRATIVE, "The desk's comment.")


ReportLanguage = Literal["fr", "nl", "de"]  # the languages of Belgium a person is told in
# A hold lasts at most this long: telling the person is postponed, never refused for good (GDPR art. 23(2)).
MAX_HOLD_DAYS = 180
REPORT_MAX_CHARS = 300_000  # each of html and pdf (some 1,200 lines): the event stays well under Kafka's 1 MB


class HoldReason(StrEnum):
    """Why telling the person now would endanger someone: the restriction's documented ground."""

    RISK_OF_RETALIATION = "risk_of_retaliation"  # the other party could learn of it and retaliate
    ONGOING_SAFETY_PLANNING = "ongoing_safety_planning"  # a departure or a shelter is being prepared
    CHILD_AT_RISK = "child_at_risk"
    JUDICIAL_INVESTIGATION = "judicial_investigation"  # telling would compromise an investigation


class ReportState(StrEnum):
    ISSUED = "issued"
    HELD = "held"


class SubjectReportRequested(EventPayload):
    """The person asked an agency that holds them who received what about them across the network (GDPR
    art. 15): the gateway alone can answer, in a document for the person, sealed to that agency."""

    event_type: ClassVar[EventType] = EventType.SUBJECT_REPORT_REQUESTED
    request_id: UUID = metadata("The request as the agency registered it.")
    language: ReportLanguage = metadata("The language the person reads the report in.")


class SubjectReportHeld(EventPayload):
    """An agency that holds the person postpones any report to them until a date: telling the person now
    would endanger them or someone else. Who placed it is recorded, pseudonymously, in the audit chain."""

    event_type: ClassVar[EventType] = EventType.SUBJECT_REPORT_HELD
    hold_id: UUID = metadata("The hold as the agency registered it.")
    until: datetime = metadata(f"When it ends: at most {MAX_HOLD_DAYS} days after it is placed.")
    reason: HoldReason = metadata("Why telling the person now would endanger them.")
    placed_by: StaffRef = metadata("Pseudonymous reference of the professional who placed it.")


class SubjectReportIssued(EventPayload):
    """The gateway's answer to a report request, to the requesting agency only: the document (rendered from
    the audit chain's metadata, no payload value), or the date until which it is held and why."""

    event_type: ClassVar[EventType] = EventType.SUBJECT_REPORT_ISSUED
    request_id: UUID = metadata("The request answered.")
    state: ReportState = metadata("Issued, or held.")
    language: ReportLanguage = metadata("The language of the document.")
    disclosures: int = metadata("How many disclosures the document lists.", ge=0, default=0)
    held_until: datetime | None = metadata("While held: when the last hold ends.", default=None)
    hold_reasons: tuple[HoldReason, ...] = metadata("While held: the holds' reasons.", default=())
    html: str | None = metadata("The document as HTML (escaped, no script).", default=None, max_length=REPORT_MAX_CHARS)
    pdf: str | None = metadata(
        "The document as PDF, base64.", default=None, max_length=REPORT_MAX_CHARS, pattern=r"^[A-Za-z0-9+/]*={0,2}$"
    )


PAYLOAD_MODELS: dict[EventType, type[EventPayload]] = {
    model.event_type: model
    for model in (
        ConsentGranted,
        ConsentWithdrawn,
        ReferralCreated,
        ReferralResponded,
        AlertRaised,
        AlertAcknowledged,
        AlertEscalated,
        DisclosureReviewed,
        NoticeIssued,
        NoticeAcknowledged,
        CaseConferenceConvened,
        CaseConferenceClosed,
        ConsultationRequested,
        ConsultationAnswered,
        SubjectErasureRequested,
        SubjectErasureConfirmed,
        SubjectRoleCorrected,
        SubjectReportRequested,
        SubjectReportHeld,
        SubjectReportIssued,
    )
}


@cache  # models are frozen classes: read their annotations once, not for every event
def field_categories(model: type[BaseModel]) -> Mapping[str, Category]:
    """Read each personal field's data category from the model's schema annotations."""
    found: dict[str, Category] = {}
    for name, info in model.model_fields.items():
        extra = info.json_schema_extra
        if isinstance(extra, dict) and CATEGORY_KEY in extra:
            found[name] = Category(str(extra[CATEGORY_KEY]))
    return MappingProxyType(found)


def present_categories(payload: EventPayload) -> frozenset[Category]:
    """The categories this payload actually carries (fields set and not empty)."""
    return frozenset(
        category for name, category in field_categories(type(payload)).items() if _carried(getattr(payload, name))
    )


def _carried(value: object) -> bool:
    """Not None, not an empty string or tuple. Told by type, not by `value in (None, (), "")`, which compares
    a nested model with `==` to each of the three, for every field of every recipient's decision."""
    if value is None:
        return False
    if isinstance(value, str | tuple):
        return len(value) > 0
    return True


def restrict(payload: EventPayload, allowed: frozenset[Category]) -> EventPayload:
    """The same payload with every personal field outside `allowed` removed."""
    removed = {name: None for name, cat in field_categories(type(payload)).items() if cat not in allowed}
    return payload.model_copy(update=removed)


__all__ = [
    "PAYLOAD_MODELS",
    "AlertAcknowledged",
    "AlertEscalated",
    "AlertRaised",
    "ConsentGranted",
    "ConsentWithdrawn",
    "EventPayload",
    "EventType",
    "PersonalData",
    "ReferralCreated",
    "ReferralResponded",
    "Sector",
    "field_categories",
    "present_categories",
    "restrict",
]
