"""Disclosures on grounds other than consent or danger: a legal obligation, a case conference (art. 458ter).

Pure functions over plain values. Neither basis needs the person's consent; both keep the recipient
sector's ceiling, and both are narrow: a legal obligation names its reference and one agency, a case
conference reaches its participants only, about its subjects only, while it is open.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from maillage.domain.disclosure import DenialReason, Disclosure, Outcome, Recipient, decide
from maillage.domain.errors import Unacceptable
from maillage.domain.events import AlertRaised, EventPayload, ReferralCreated, present_categories
from maillage.domain.policy import Policy
from maillage.domain.vocabulary import LegalBasis, Role

GROUNDED = frozenset({LegalBasis.LEGAL_OBLIGATION, LegalBasis.CASE_CONFERENCE})
GroundedEvent = ReferralCreated | AlertRaised  # the events that carry `Grounds`


class Ungrounded(Unacceptable):
    """An event invoking a basis without what that basis requires: refused whole, never half-delivered."""


def legal_reference_of(payload: EventPayload, *, basis: LegalBasis) -> str | None:
    """The court order or article of law a `legal_obligation` disclosure rests on (metadata)."""
    if basis is LegalBasis.LEGAL_OBLIGATION and isinstance(payload, GroundedEvent):
        return payload.legal_reference
    return None


def conference_id_of(payload: EventPayload, *, basis: LegalBasis) -> str | None:
    if basis is LegalBasis.CASE_CONFERENCE and isinstance(payload, GroundedEvent) and payload.conference_id:
        return str(payload.conference_id)
    return None


def check_legal_obligation(payload: EventPayload, *, recipients: tuple[str, ...], agencies: Collection[str]) -> None:
    """A legal obligation is to one body, named in the order or the law: never a sector, never several.
    Without its reference nobody could check later that the obligation existed."""
    if legal_reference_of(payload, basis=LegalBasis.LEGAL_OBLIGATION) is None:
        raise Ungrounded("legal_obligation", "a legal obligation needs its legal_reference (court order or article)")
    if len(recipients) != 1 or recipients[0] not in agencies:
        raise Ungrounded("legal_obligation", "a legal obligation goes to exactly one agency named by id")


def check_conference_grounds(payload: EventPayload) -> str:
    conference_id = conference_id_of(payload, basis=LegalBasis.CASE_CONFERENCE)
    if conference_id is None:
        raise Ungrounded("case_conference", "a disclosure under a case conference needs its conference_id")
    return conference_id


@dataclass(frozen=True)
class Conference:
    """A case conference as the gateway holds it: who takes part, about whom, until when."""

    conference_id: str
    convener: str
    participants: frozenset[str]
    subjects: frozenset[str]
    ends_at: datetime
    closed: bool = False

    def open_at(self, at: datetime) -> bool:
        return not self.closed and at < self.ends_at

    @property
    def members(self) -> frozenset[str]:
        """Who may speak and hear in it: the participants and the agency that convened it."""
        return self.participants | {self.convener}


def conference_denial(
    conference: Conference | None, *, sender: str, recipient: str, subject_ref: str, at: datetime
) -> DenialReason | None:
    """Why a disclosure under a case conference may not reach `recipient`, or None when it may.
    Art. 458ter lifts professional secrecy only inside the conference: its members, its subjects, its time."""
    if conference is None:
        return DenialReason.UNKNOWN_CONFERENCE
    if not conference.open_at(at):
        return DenialReason.CONFERENCE_CLOSED
    if sender not in conference.members:
        return DenialReason.SENDER_NOT_A_PARTICIPANT
    if recipient not in conference.members:
        return DenialReason.NOT_A_PARTICIPANT
    if subject_ref not in conference.subjects:
        return DenialReason.SUBJECT_NOT_IN_CONFERENCE
    return None


def disclose_on_grounds(
    payload: EventPayload,
    *,
    recipient: Recipient,
    policy: Policy,
    role: Role,
    basis: LegalBasis,
    denial: DenialReason | None = None,
) -> Disclosure:
    """One recipient's share under `legal_obligation` or `case_conference`: what the payload carries,
    within the recipient sector's ceiling; nothing at all when `denial` says why not."""
    if denial is not None:
        return Disclosure(
            recipient=recipient, basis=basis, outcome=Outcome.DENIED, delivered=frozenset(), reason=denial
        )
    present = present_categories(payload)
    # The basis, not a consent, opens what the payload carries: only the ceiling still narrows it.
    return decide(policy=policy, role=role, present=present, recipient=recipient, basis=basis, consented=present)
