"""The closed loop: an answer goes back to the event's sender alone, and only from an agency the event reached."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from maillage.domain.answers import Question, Unanswerable, answer_goes_to, opens_route, question_of, route_of
from maillage.domain.disclosure import DenialReason, Disclosure, Outcome, Recipient
from maillage.domain.events import (
    AlertAcknowledged,
    ReferralCreated,
    ReferralDecision,
    ReferralReason,
    ReferralResponded,
)
from maillage.domain.vocabulary import Category, LegalBasis, Sector

pytestmark = pytest.mark.unit

SENDER = "refuge-liege"
REFERRAL = Question("referral", str(uuid.uuid4()))


def disclosure(agency_id: str, outcome: Outcome) -> Disclosure:
    return Disclosure(
        recipient=Recipient(agency_id=agency_id, sector=Sector.SOCIAL),
        basis=LegalBasis.CONSENT,
        outcome=outcome,
        delivered=frozenset() if outcome is Outcome.DENIED else frozenset({Category.IDENTITY}),
        reason=DenialReason.NO_CONSENT if outcome is Outcome.DENIED else None,
    )


ROUTE = route_of(
    sender=SENDER,
    disclosures=[disclosure("cpas-seraing", Outcome.FILTERED), disclosure("cpas-namur", Outcome.DENIED)],
)


def test_an_answer_from_a_recipient_goes_back_to_the_sender() -> None:
    assert answer_goes_to(ROUTE, question=REFERRAL, answerer="cpas-seraing") == SENDER


def test_a_recipient_that_was_denied_the_event_cannot_answer_it() -> None:
    with pytest.raises(Unanswerable) as refused:
        answer_goes_to(ROUTE, question=REFERRAL, answerer="cpas-namur")

    assert refused.value.reason == "not_a_recipient"


def test_an_answer_to_an_event_that_never_went_through_the_gateway_is_refused() -> None:
    with pytest.raises(Unanswerable) as refused:
        answer_goes_to(None, question=REFERRAL, answerer="cpas-seraing")

    assert refused.value.reason == "unknown_referral"


def test_responses_and_acknowledgements_name_what_they_answer() -> None:
    referral_id, alert_id = uuid.uuid4(), uuid.uuid4()
    response = ReferralResponded(referral_id=referral_id, decision=ReferralDecision.ACCEPTED)
    acknowledgement = AlertAcknowledged(
        alert_id=alert_id, acknowledged_at=datetime(2026, 11, 25, 12, 0, tzinfo=UTC), level=1
    )

    assert question_of(response) == Question("referral", str(referral_id))
    assert question_of(acknowledgement) == Question("alert", str(alert_id))
    referral = ReferralCreated(reason=ReferralReason.LEGAL_ADVICE)
    assert question_of(referral) is None
    assert opens_route(referral) and not opens_route(response)
