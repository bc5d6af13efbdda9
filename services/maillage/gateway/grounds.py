"""The gateway's side of the bases beyond consent and danger: legal obligations, and case conferences
(art. 458ter) — convened, closed, and each disclosure under one decided against the conference's state."""

from __future__ import annotations

from datetime import datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from maillage.core.config.network import Network
from maillage.core.crypto.trust import Refused
from maillage.core.messaging.envelope import Envelope, conference_ref
from maillage.domain.disclosure import Disclosure, Outcome, Recipient
from maillage.domain.events import CaseConferenceClosed, CaseConferenceConvened, EventPayload
from maillage.domain.grounds import (
    Conference,
    Ungrounded,
    check_conference_grounds,
    check_legal_obligation,
    conference_denial,
    conference_id_of,
    disclose_on_grounds,
    legal_reference_of,
)
from maillage.domain.policy import Policy
from maillage.domain.vocabulary import LegalBasis
from maillage.gateway import repository
from maillage.gateway.models import ConferenceRow

ConferenceEvent = CaseConferenceConvened | CaseConferenceClosed


def check_grounds(envelope: Envelope, payload: EventPayload, *, network: Network) -> None:
    """Refuse whole (a dead letter, the sender told why) an event whose basis lacks what it requires."""
    try:
        if envelope.legalbasis is LegalBasis.LEGAL_OBLIGATION:
            check_legal_obligation(payload, recipients=envelope.recipients, agencies=network.by_id)
        elif envelope.legalbasis is LegalBasis.CASE_CONFERENCE:
            check_conference_grounds(payload)
    except Ungrounded as exc:
        raise Refused(exc.reason, exc.detail) from None


def disclose(
    envelope: Envelope,
    payload: EventPayload,
    recipient: Recipient,
    *,
    policy: Policy,
    conferences: dict[str, Conference],
    at: datetime,
) -> Disclosure:
    """One recipient's share under `legal_obligation` or `case_conference` (checked by `check_grounds`)."""
    denial = None
    conference_id = conference_id_of(payload, basis=envelope.legalbasis)
    if conference_id is not None:
        denial = conference_denial(
            conferences.get(conference_id),
            sender=envelope.agency_id,
            recipient=recipient.agency_id,
            subject_ref=envelope.subject,
            at=at,
        )
    return disclose_on_grounds(
        payload, recipient=recipient, policy=policy, role=envelope.subjectrole, basis=envelope.legalbasis, denial=denial
    )


def audit_fields(payload: EventPayload, *, basis: LegalBasis) -> dict[str, str | None]:
    """What the audit record keeps of the grounds: the legal reference, the conference."""
    if isinstance(payload, ConferenceEvent):
        return {"conference_id": str(payload.conference_id)}
    return {
        "legal_reference": legal_reference_of(payload, basis=basis),
        "conference_id": conference_id_of(payload, basis=basis),
    }


def audited(
    envelope: Envelope, payload: EventPayload, disclosures: list[Disclosure], *, conferences: dict[str, Conference]
) -> list[tuple[Disclosure, str]]:
    """Each disclosure with whom its audit record is about: the event's subject, except for a conference's
    own events — they disclose to its participants that its subjects are discussed there, so each is
    recorded under every subject (and shows in that person's disclosure report)."""
    subjects = [envelope.subject]
    if isinstance(payload, ConferenceEvent) and str(payload.conference_id) in conferences:
        subjects = sorted(conferences[str(payload.conference_id)].subjects)
    return [(d, subject_ref) for d in disclosures for subject_ref in subjects]


async def convene(
    session: AsyncSession,
    envelope: Envelope,
    payload: CaseConferenceConvened,
    *,
    network: Network,
    conferences: dict[str, Conference],
) -> list[Disclosure]:
    """Only an agency the network file authorises convenes; its participants are told, and from now on
    receive what is disclosed under it."""
    conference_id = str(payload.conference_id)
    convener = network.by_id.get(envelope.agency_id)
    if convener is None or not convener.convenes_case_conferences:
        raise Refused("case_conference", "this agency is not authorised to convene case conferences")
    unknown = sorted(set(payload.participants) - set(network.by_id))
    if unknown:
        raise Refused("case_conference", f"participants not in the network: {', '.join(unknown)}")
    _check_subject(envelope, conference_id)
    if conference_id in conferences:
        raise Refused("case_conference", "a conference with this id was convened already")
    row = ConferenceRow(
        conference_id=conference_id,
        convener=envelope.agency_id,
        participants=list(payload.participants),
        subjects=list(payload.subjects),
        ends_at=payload.ends_at,
    )
    session.add(row)
    conferences[conference_id] = repository.conference_of(row)
    return _told(conferences[conference_id], network=network)


async def close(
    session: AsyncSession,
    envelope: Envelope,
    payload: CaseConferenceClosed,
    *,
    network: Network,
    conferences: dict[str, Conference],
) -> list[Disclosure]:
    """Only its convener closes a conference; nothing is disclosed under it afterwards."""
    conference_id = str(payload.conference_id)
    _check_subject(envelope, conference_id)
    row = await repository.conference_row(session, conference_id)
    if row is None or row.convener != envelope.agency_id:
        raise Refused("case_conference", "no conference with this id convened by this agency")
    if row.closed_at is None:
        row.closed_at = envelope.time  # when its convener closed it; the gateway denies from the moment it knows
        session.add(row)
    conferences[conference_id] = repository.conference_of(row)
    return _told(conferences[conference_id], network=network)


def _check_subject(envelope: Envelope, conference_id: str) -> None:
    # A conference's events share its key, so that its closing can never overtake its convening.
    if envelope.subject != conference_ref(conference_id):
        raise Refused("case_conference", "a conference's events are about the conference itself")


def _told(conference: Conference, *, network: Network) -> list[Disclosure]:
    """The participants (not the convener) learn of it: metadata only, nothing but the conference's terms."""
    return [
        Disclosure(
            recipient=Recipient(agency_id=agency.id, sector=agency.sector),
            basis=LegalBasis.CASE_CONFERENCE,
            outcome=Outcome.DELIVERED,
            delivered=frozenset(),
        )
        for agency in (network.by_id[p] for p in sorted(conference.participants))
        if agency.id != conference.convener
    ]
