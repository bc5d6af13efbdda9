"""The gateway's decision counts (`maillage_gateway_decisions_total`): what a batch decided is counted once its unit
of work is committed, one count per recipient; a batch whose unit of work rolls back is read again, and counted
then, not twice."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest
from prometheus_client import REGISTRY

from maillage.core.audit import repository as audit_repository
from maillage.core.messaging.envelope import new_subject_ref
from maillage.domain.events import ConsentGranted, EventType, Identity, ReferralCreated, ReferralReason
from maillage.domain.vocabulary import Category, LegalBasis, Purpose, Role, Sector
from tests.support import Pole, deciding

pytestmark = [pytest.mark.integration]

REFUGE, CPAS = "refuge-liege", "cpas-seraing"
DELIVERED = {
    "type": EventType.REFERRAL_CREATED.value,
    "sector": Sector.SOCIAL.value,
    "outcome": "delivered",
    "legal_basis": "consent",
}


def delivered_count() -> float:
    return REGISTRY.get_sample_value("maillage_gateway_decisions_total", DELIVERED) or 0.0


@pytest.fixture
def failing_once(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The batch's audit records fail to be stored once (a database gone for a moment)."""
    append = audit_repository.append
    calls = 0

    async def flaky(*args: Any, **kwargs: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("database gone for a moment")
        await append(*args, **kwargs)

    monkeypatch.setattr(audit_repository, "append", flaky)
    yield


async def test_a_batch_is_counted_once_committed_and_not_when_it_rolled_back(pole: Pole, failing_once: None) -> None:
    refuge, subject = pole.trust(REFUGE), new_subject_ref()
    common: dict[str, Any] = {"subject_ref": subject, "basis": LegalBasis.CONSENT, "purpose": Purpose.REFERRAL}
    granted = ConsentGranted(
        consent_id=uuid4(), categories=(Category.IDENTITY,), recipients=(CPAS,), purposes=(Purpose.REFERRAL,)
    )
    referral = ReferralCreated(identity=Identity(given_name="Amina"), reason=ReferralReason.SHELTER)
    now = datetime.now(UTC)
    envelopes = [
        refuge.sealed_event(granted, role=Role.OTHER, at=now, **common),
        *(
            refuge.sealed_event(referral, role=Role.VICTIM, recipients=(CPAS,), pole="liege", at=now, **common)
            for _ in range(3)
        ),
    ]
    before = delivered_count()
    async with deciding(pole) as gateway:
        records = gateway.records(envelopes)
        with pytest.raises(OSError):
            await gateway.process(records)
        assert delivered_count() == before, "a batch rolled back is not counted"

        await gateway.process(records)  # read again, as after a failed transaction

    assert delivered_count() == before + 3, "each referral's one recipient, counted once"
