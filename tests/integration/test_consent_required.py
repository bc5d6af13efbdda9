"""Without a consent that covers the recipient, the purpose and the person, nothing is delivered."""

from __future__ import annotations

import pytest

from maillage.core.messaging.envelope import new_subject_ref
from tests.support import Pole, consent, decided, inbox_of, received, refer

pytestmark = pytest.mark.integration

SOME_DATA = {"identity": {"given_name": "Amina"}, "narrative": "Needs emergency housing support."}


async def start(pole: Pole) -> None:
    await pole.start_gateway()
    await pole.start_agency("refuge-liege")
    await pole.start_agency("cpas-seraing")


async def assert_denied_and_never_received(pole: Pole, denied_id: str, *, subject: str) -> None:
    """The sender sees the denial; a consented referral about the same person, sent after it and so
    decided after it (one partition per subject), arrives while the denied one never does."""
    [line] = (await decided(pole, "refuge-liege", denied_id))["recipients"]
    assert (line["recipient"], line["outcome"], line["reason"]) == ("cpas-seraing", "denied", "no_consent")
    assert line["delivered"] == []
    await consent(pole, "refuge-liege", subject, to=["cpas-seraing"], categories=["identity"])
    later_id = await refer(pole, "refuge-liege", subject, to="cpas-seraing", data=SOME_DATA)
    await received(pole, "cpas-seraing", later_id)
    assert denied_id not in {i["event_id"] for i in await inbox_of(pole["cpas-seraing"])}


async def test_referral_without_consent_is_denied_and_never_reaches_the_recipient(pole: Pole) -> None:
    await start(pole)
    subject = new_subject_ref()

    denied_id = await refer(pole, "refuge-liege", subject, to="cpas-seraing", data=SOME_DATA)

    await assert_denied_and_never_received(pole, denied_id, subject=subject)


async def test_consent_for_another_purpose_does_not_cover_a_referral(pole: Pole) -> None:
    await start(pole)
    subject = new_subject_ref()
    await consent(
        pole,
        "refuge-liege",
        subject,
        to=["cpas-seraing"],
        categories=["identity", "narrative"],
        purposes=["case_conference"],
    )

    denied_id = await refer(pole, "refuge-liege", subject, to="cpas-seraing", data=SOME_DATA)

    await assert_denied_and_never_received(pole, denied_id, subject=subject)


async def test_consent_of_one_person_does_not_cover_another(pole: Pole) -> None:
    await start(pole)
    consenting, other = new_subject_ref(), new_subject_ref()
    await consent(pole, "refuge-liege", consenting, to=["cpas-seraing"], categories=["identity", "narrative"])

    denied_id = await refer(pole, "refuge-liege", other, to="cpas-seraing", data=SOME_DATA)

    await assert_denied_and_never_received(pole, denied_id, subject=other)
