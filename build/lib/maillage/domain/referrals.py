"""The referral life cycle, as pure rules: received → accepted | declined | closed; accepted → closed."""

from __future__ import annotations

from enum import StrEnum

from maillage.domain.events import ReferralDecision


class ReferralState(StrEnum):
    SENT = "sent"
    RECEIVED = "received"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    CLOSED = "closed"


_ALLOWED: dict[ReferralState, dict[ReferralDecision, ReferralState]] = {
    ReferralState.RECEIVED: {
        ReferralDecision.ACCEPTED: ReferralState.ACCEPTED,
        ReferralDecision.DECLINED: ReferralState.DECLINED,
        ReferralDecision.CLOSED: ReferralState.CLOSED,
    },
    ReferralState.ACCEPTED: {ReferralDecision.CLOSED: ReferralState.CLOSED},
}


class InvalidTransition(ValueError):
    pass


def next_state(current: ReferralState, decision: ReferralDecision) -> ReferralState:
    try:
        return _ALLOWED[current][decision]
    except KeyError:
        raise InvalidTransition(f"a referral that is {current.value} cannot be {decision.value}") from None


def state_after_response(decision: ReferralDecision) -> ReferralState:
    """How the sender records the answer it receives."""
    return ReferralState(decision.value)
