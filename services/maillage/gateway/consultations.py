"""The gateway's anonymous consultations: to the Pôle's consultation desk only, refused whole if not anonymous,
and the desk's answer back to the asker alone."""

from __future__ import annotations

from maillage.core.config.network import Network, NetworkError
from maillage.core.crypto.trust import Refused
from maillage.core.messaging.envelope import Envelope
from maillage.domain.answers import Question, Route, Unanswerable, answer_goes_to
from maillage.domain.consultations import anonymous_share, refused_parts
from maillage.domain.disclosure import Disclosure, Recipient
from maillage.domain.events import ConsultationAnswered, ConsultationRequested
from maillage.domain.policy import Policy

CONSULTATION_PREFIX = "c-"


def to_desk(envelope: Envelope, payload: ConsultationRequested, *, network: Network, policy: Policy) -> Disclosure:
    """The desk's share. Whatever recipients the envelope names, a consultation goes to the desk of its
    Pôle alone: it is a request for advice, not a disclosure to partners."""
    if not envelope.subject.startswith(CONSULTATION_PREFIX):
        # A person's reference would tie the advice to the person's file at every agency that holds it.
        raise Refused("not_anonymous", "a consultation is about a consultation reference (c-…), never a person")
    parts = refused_parts(payload, policy=policy)
    if parts:
        # Refused whole, never delivered stripped: its sender must learn it sent what it must not.
        raise Refused("not_anonymous", f"a consultation never carries {', '.join(parts)}: refused whole")
    try:
        pole = network.pole_of(envelope.agency_id, asked=envelope.pole)
    except NetworkError as exc:
        raise Refused("pole", str(exc)) from None
    desk = network.consultation_desk(pole)
    if desk is None or desk.id == envelope.agency_id:
        raise Refused("unroutable", f"the Pôle {pole!r} has no consultation desk but the sender")
    recipient = Recipient(agency_id=desk.id, sector=desk.sector)
    return anonymous_share(payload, recipient=recipient, policy=policy, role=envelope.subjectrole)


def to_asker(
    envelope: Envelope,
    payload: ConsultationAnswered,
    *,
    network: Network,
    policy: Policy,
    routes: dict[str, Route],
) -> Disclosure:
    """The asker's share of the desk's answer: the closed loop, to the consultation's sender alone, and only
    from the desk it reached."""
    if not envelope.subject.startswith(CONSULTATION_PREFIX):
        raise Refused("not_anonymous", "a consultation's answer is about its consultation reference (c-…)")
    question = Question("consultation", str(payload.consultation_id))
    try:
        asker_id = answer_goes_to(routes.get(question.event_id), question=question, answerer=envelope.agency_id)
    except Unanswerable as exc:
        raise Refused(exc.reason, exc.detail) from None
    asker = network.by_id.get(asker_id)
    if asker is None:
        raise Refused("unroutable", "the consultation's sender left the network")
    recipient = Recipient(agency_id=asker.id, sector=asker.sector)
    return anonymous_share(payload, recipient=recipient, policy=policy, role=envelope.subjectrole, closed_loop=True)
