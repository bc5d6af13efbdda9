"""The referral life cycle: received → accepted | declined | closed; accepted → closed; nothing else."""

from __future__ import annotations

import pytest

from maillage.domain.events import ReferralDecision
from maillage.domain.referrals import InvalidTransition, ReferralState, next_state, state_after_response

pytestmark = pytest.mark.unit

ALLOWED = {
    (ReferralState.RECEIVED, ReferralDecision.ACCEPTED): ReferralState.ACCEPTED,
    (ReferralState.RECEIVED, ReferralDecision.DECLINED): ReferralState.DECLINED,
    (ReferralState.RECEIVED, ReferralDecision.CLOSED): ReferralState.CLOSED,
    (ReferralState.ACCEPTED, ReferralDecision.CLOSED): ReferralState.CLOSED,
}
REFUSED = [
    (state, decision) for state in ReferralState for decision in ReferralDecision if (state, decision) not in ALLOWED
]


@pytest.mark.parametrize(("current", "decision"), list(ALLOWED))
def test_a_received_or_accepted_referral_moves_on(current: ReferralState, decision: ReferralDecision) -> None:
    assert next_state(current, decision) is ALLOWED[(current, decision)]


@pytest.mark.parametrize(("current", "decision"), REFUSED)
def test_a_referral_cannot_go_back_nor_be_answered_twice(
    current: ReferralState,
    decision: ReferralDecision,
) -> None:
    with pytest.raises(InvalidTransition, match=f"{current.value} cannot be {decision.value}"):
        next_state(current, decision)


def test_closed_and_declined_referrals_are_final() -> None:
    for final in (ReferralState.CLOSED, ReferralState.DECLINED):
        for decision in ReferralDecision:
            with pytest.raises(InvalidTransition):
                next_state(final, decision)


@pytest.mark.parametrize("decision", list(ReferralDecision))
def test_the_sender_records_the_answer_it_receives(decision: ReferralDecision) -> None:
    assert state_after_response(decision).value == decision.value
