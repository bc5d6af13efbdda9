"""The chaos run's checker: from what the sender was answered and what the recipient's inbox lists, it finds the
referral lost, the one delivered twice, and the answer a partner could not act on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from maillage.cli.chaos.checks import Answer, Fault, tally

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def accepted(event_id: str, *, posted: float) -> Answer:
    return Answer(posted_at=at(posted), status=202, event_id=event_id)


def test_a_referral_missing_from_the_inbox_is_lost_and_one_listed_twice_is_a_duplicate() -> None:
    answers = [accepted("e1", posted=0), accepted("e2", posted=1), accepted("e3", posted=2)]
    inbox = [("e1", at(0.5)), ("e3", at(4)), ("other-scenario", at(5)), ("e3", at(6))]

    figures = tally("kills", answers=answers, inbox=inbox, fates={"e1": "decided", "e2": "decided", "e3": "decided"})

    assert (figures.sent, figures.accepted, figures.delivered) == (3, 3, 2)
    assert figures.lost == 1
    assert figures.duplicated == 1
    assert figures.max_delay_s == 2.0  # e3: posted at 2 s, first listed at 4 s
    assert not figures.holds


def test_every_referral_listed_once_and_decided_holds() -> None:
    answers = [accepted("e1", posted=0), accepted("e2", posted=1)]
    inbox = [("e2", at(1.2)), ("e1", at(1.5))]

    figures = tally("kills", answers=answers, inbox=inbox, fates={"e1": "decided", "e2": "decided"})

    assert (figures.lost, figures.duplicated, figures.failed, figures.missing_statuses) == (0, 0, 0, 0)
    assert figures.statuses == {"decided": 2}
    assert figures.holds


def test_a_status_the_sender_never_sees_fails_the_scenario() -> None:
    answers = [accepted("e1", posted=0), accepted("e2", posted=1)]
    inbox = [("e1", at(1)), ("e2", at(2))]

    figures = tally("kills", answers=answers, inbox=inbox, fates={"e1": "decided", "e2": "pending"})

    assert figures.missing_statuses == 1
    assert figures.statuses == {"decided": 1, "pending": 1}
    assert not figures.holds


def test_a_503_with_retry_after_and_a_problem_body_is_a_clear_refusal_anything_else_fails() -> None:
    clear = Answer(posted_at=at(0), status=503, retry_after=True, problem=True)
    bare = Answer(posted_at=at(0), status=503, retry_after=False, problem=True)
    server_error = Answer(posted_at=at(0), status=500, problem=True)
    hang = Answer(posted_at=at(0), status=None, error="ReadTimeout")

    figures = tally("outage", answers=[clear, bare, server_error, hang], inbox=[], fates={})

    assert (figures.accepted, figures.refused, figures.failed, figures.lost) == (0, 1, 3, 0)
    assert figures.answers == {
        "503 + Retry-After": 1,
        "503 without Retry-After or problem body": 1,
        "500": 1,
        "no answer (ReadTimeout)": 1,
    }
    assert not figures.holds


def test_recovery_runs_from_the_fault_s_end_to_the_first_arrival_of_a_referral_posted_since_it_began() -> None:
    outage = Fault(what="cluster stopped", began=at(10), ended=at(30))
    answers = [accepted("before", posted=5), accepted("during", posted=15), accepted("after", posted=31)]
    inbox = [("before", at(33)), ("during", at(42)), ("after", at(40))]

    figures = tally("outage", answers=answers, inbox=inbox, fates={}, faults=[outage])

    assert figures.recovery_s == 10.0  # "after" arrived at 40 s; "before" was posted before the stop
    assert figures.max_delay_s == 28.0  # "before", posted at 5 s, arrived at 33 s
