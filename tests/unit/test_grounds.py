"""Legal obligations and case conferences as pure rules: who may receive, about whom, until when."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from maillage.core.config.settings import DEFAULT_NETWORK
from maillage.domain.disclosure import DenialReason, Outcome, Recipient
from maillage.domain.events import Identity, Location, ReferralCreated, ReferralReason, Risk
from maillage.domain.grounds import (
    Conference,
    Ungrounded,
    check_legal_obligation,
    conference_denial,
    disclose_on_grounds,
)
from maillage.domain.policy import parse_policy
from maillage.domain.vocabulary import Category, LegalBasis, Role, Sector

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
POLICY = parse_policy((DEFAULT_NETWORK.parent / "policy.toml").read_bytes())
CONFERENCE = Conference(
    conference_id="c1",
    convener="pole-meuse",
    participants=frozenset({"refuge-liege", "zp-meuse"}),
    subjects=frozenset({"s-1"}),
    ends_at=NOW + timedelta(days=1),
)
MEMBERS = sorted(CONFERENCE.members)


def denial(
    conference: Conference | None = CONFERENCE,
    *,
    sender: str = "refuge-liege",
    recipient: str = "zp-meuse",
    subject_ref: str = "s-1",
    at: datetime = NOW,
) -> DenialReason | None:
    return conference_denial(conference, sender=sender, recipient=recipient, subject_ref=subject_ref, at=at)


@given(st.sampled_from(MEMBERS), st.sampled_from(MEMBERS))
def test_members_disclose_to_members_about_its_subjects_while_open(sender: str, recipient: str) -> None:
    assert denial(sender=sender, recipient=recipient) is None


@given(st.text(min_size=1).filter(lambda a: a not in MEMBERS))
def test_anyone_else_neither_sends_nor_receives(stranger: str) -> None:
    assert denial(recipient=stranger) is DenialReason.NOT_A_PARTICIPANT
    assert denial(sender=stranger) is DenialReason.SENDER_NOT_A_PARTICIPANT


def test_nothing_about_another_person_nor_after_the_end_nor_once_closed_nor_unknown() -> None:
    assert denial(subject_ref="s-2") is DenialReason.SUBJECT_NOT_IN_CONFERENCE
    assert denial(at=CONFERENCE.ends_at) is DenialReason.CONFERENCE_CLOSED
    assert denial(replace(CONFERENCE, closed=True)) is DenialReason.CONFERENCE_CLOSED
    assert denial(None) is DenialReason.UNKNOWN_CONFERENCE


def test_grounds_need_no_consent_but_keep_the_ceiling() -> None:
    payload = ReferralCreated(
        identity=Identity(given_name="A"),
        location=Location(municipality="Liège"),
        risk=Risk(level="high"),
        reason=ReferralReason.LEGAL_ADVICE,
    )
    justice = Recipient(agency_id="parquet-liege", sector=Sector.JUSTICE)

    shared = disclose_on_grounds(
        payload, recipient=justice, policy=POLICY, role=Role.VICTIM, basis=LegalBasis.LEGAL_OBLIGATION
    )
    denied = disclose_on_grounds(
        payload,
        recipient=justice,
        policy=POLICY,
        role=Role.VICTIM,
        basis=LegalBasis.CASE_CONFERENCE,
        denial=DenialReason.NOT_A_PARTICIPANT,
    )

    assert (shared.outcome, shared.delivered) == (Outcome.FILTERED, frozenset({Category.IDENTITY, Category.RISK}))
    assert shared.basis is LegalBasis.LEGAL_OBLIGATION and not shared.needs_review
    assert (denied.outcome, denied.delivered, denied.reason) == (
        Outcome.DENIED,
        frozenset(),
        DenialReason.NOT_A_PARTICIPANT,
    )


@pytest.mark.parametrize(
    ("reference", "recipients"),
    [(None, ("parquet-liege",)), ("Art. 46", ("justice",)), ("Art. 46", ("parquet-liege", "zp-meuse"))],
)
def test_legal_obligation_needs_a_reference_and_one_named_agency(
    reference: str | None, recipients: tuple[str, ...]
) -> None:
    payload = ReferralCreated(reason=ReferralReason.LEGAL_ADVICE, legal_reference=reference)

    with pytest.raises(Ungrounded):
        check_legal_obligation(payload, recipients=recipients, agencies={"parquet-liege", "zp-meuse"})
