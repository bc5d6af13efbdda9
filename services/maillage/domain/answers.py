"""The closed loop: an answer to a referral or an alert goes back to its sender, and only from those it reached."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

from maillage.domain.disclosure import Disclosure, Outcome
from maillage.domain.errors import Unacceptable
from maillage.domain.events import (
    AlertAcknowledged,
    AlertEscalated,
    AlertRaised,
    EventPayload,
    ReferralCreated,
    ReferralResponded,
)


@dataclass(frozen=True)
class Route:
    """Where a referral or an alert went: who may answer it, and to whom the answer goes back."""

    sender: str
    recipients: tuple[str, ...]


class Question(NamedTuple):
    """What an answer answers: a referral or an alert, by its event id."""

    what: str
    event_id: str


class Unanswerable(Unacceptable):
    """An answer with nowhere to go."""


def opens_route(payload: EventPayload) -> bool:
    """A referral or an alert: its recipients may answer it, and the sender always learns what became of it."""
    return isinstance(payload, ReferralCreated | AlertRaised)


def question_of(payload: EventPayload) -> Question | None:
    """The referral a response answers, the alert an acknowledgement or an escalation answers; None otherwise."""
    match payload:
        case ReferralResponded():
            return Question("referral", str(payload.referral_id))
        case AlertAcknowledged() | AlertEscalated():
            return Question("alert", str(payload.alert_id))
    return None


def route_of(*, sender: str, disclosures: Iterable[Disclosure]) -> Route:
    """Only a recipient that got something may answer: one that was denied never learnt of the event."""
    return Route(
        sender=sender, recipients=tuple(d.recipient.agency_id for d in disclosures if d.outcome is not Outcome.DENIED)
    )


def answer_goes_to(route: Route | None, *, question: Question, answerer: str) -> str:
    """The agency an answer goes back to: the sender alone. Raises Unanswerable when no such event went
    through the gateway, or when `answerer` did not receive it (it cannot answer what it never had)."""
    if route is None:
        what = question.what
        raise Unanswerable(f"unknown_{what}", f"no {what} with this id went through the gateway")
    if answerer not in route.recipients:
        raise Unanswerable("not_a_recipient", f"only an agency that received the {question.what} may answer it")
    return route.sender
