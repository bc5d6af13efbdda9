"""Who a notice goes to: the past recipients of a consent's disclosures, or of given events, read from the audit
records alone (denials, notices and receipts carried no data, so they make no recipient)."""

from __future__ import annotations

from typing import Any

import pytest

from maillage.domain.notices import PastRecipient, past_recipients
from maillage.domain.vocabulary import Category, Role, Sector

pytestmark = pytest.mark.unit

WITHDRAWN, KEPT = "c-withdrawn", "c-kept"
SECTORS = {"cpas-seraing": "social", "chr-citadelle": "health", "sos-enfants": "child_protection", "zp-meuse": "police"}


def record(event_id: str, recipient: str, *, outcome: str = "delivered", **fields: Any) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "recipient": recipient,
        "sector": SECTORS[recipient],
        "subject_role": "victim",
        "outcome": outcome,
        "delivered": fields.pop("delivered", ["identity"]),
        **fields,
    }


RECORDS = [
    record("e1", "cpas-seraing", consents=[WITHDRAWN], delivered=["identity", "contact"]),
    record("e2", "chr-citadelle", outcome="filtered", consents=[WITHDRAWN, KEPT], delivered=["health"]),
    record("e3", "cpas-seraing", consents=[WITHDRAWN], delivered=["identity"]),
    record("e4", "sos-enfants", consents=[KEPT]),
    record("e5", "zp-meuse", outcome="denied", delivered=[]),
    record("n1", "cpas-seraing", outcome="notified", consents=[WITHDRAWN], delivered=[]),
    record("e6", "zp-meuse", legal_basis="danger"),  # a danger disclosure: no consent
]


def test_a_withdrawals_notices_go_to_every_recipient_of_data_under_that_consent_only() -> None:
    found = {r.agency_id: r for r in past_recipients(RECORDS, consent_id=WITHDRAWN)}

    assert set(found) == {"cpas-seraing", "chr-citadelle"}
    assert found["cpas-seraing"] == PastRecipient(
        agency_id="cpas-seraing",
        sector=Sector.SOCIAL,
        role=Role.VICTIM,
        events=("e1", "e3"),
        categories=frozenset({Category.IDENTITY, Category.CONTACT}),
        consents=frozenset({WITHDRAWN}),
    )
    assert found["chr-citadelle"].events == ("e2",)
    assert found["chr-citadelle"].categories == {Category.HEALTH}


def test_notices_about_given_events_go_to_whoever_received_them_whatever_the_basis() -> None:
    [police] = past_recipients(RECORDS, event_ids={"e5", "e6"})

    assert (police.agency_id, police.events) == ("zp-meuse", ("e6",)), "the denied recipient received nothing"


def test_no_record_under_a_consent_means_no_notice() -> None:
    assert past_recipients(RECORDS, consent_id="c-never-used") == []
