"""A legal obligation: one named agency, a court order's or an article's reference, no consent; the ceiling holds
and the reference is kept in the audit chain and in the disclosure report."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from typer.testing import CliRunner, Result

from maillage.cli.main import app as cli
from maillage.core.crypto.tokens import Scope
from maillage.core.messaging.envelope import new_subject_ref
from maillage.domain.events import ReferralCreated, ReferralReason
from maillage.domain.vocabulary import LegalBasis, Purpose, Role
from maillage.gateway.app import create_app as create_gateway_app
from tests.support import (
    ALL_EIGHT,
    Pole,
    assert_problem,
    categories_in,
    decided,
    has_event,
    header_of,
    inbox_of,
    listening,
    received,
)

pytestmark = pytest.mark.integration

REFERENCE = "Tribunal Liege ord. 2026/4711"
JUSTICE_FOR_A_VICTIM = {"identity", "children", "risk", "judicial"}  # the justice sector's ceiling


def ordered(subject: str, **fields: Any) -> dict[str, Any]:
    return {
        "subject_ref": subject,
        "subject_role": "victim",
        "recipient": "parquet-liege",
        "reason": "legal_advice",
        "legal_basis": "legal_obligation",
        "legal_reference": REFERENCE,
        "data": ALL_EIGHT,
        **fields,
    }


async def run_cli(*args: str, env: dict[str, str]) -> Result:
    return await asyncio.to_thread(CliRunner().invoke, cli, list(args), env={"COLUMNS": "250", **env})


async def test_legal_obligation_reaches_one_named_agency_with_its_reference(pole: Pole) -> None:
    url = await pole.stack.enter_async_context(listening(create_gateway_app(pole.gateway_settings())))
    await pole.start_agency("refuge-liege")
    await pole.start_agency("parquet-liege")
    subject = new_subject_ref()  # no consent registered for this person

    response = await pole["refuge-liege"].post("/v1/referrals", json=ordered(subject))

    assert response.status_code == 202, response.text
    event_id = response.json()["event_id"]
    item = await received(pole, "parquet-liege", event_id)
    assert item["legal_basis"] == "legal_obligation"
    assert categories_in(item["data"]) == JUSTICE_FOR_A_VICTIM  # no consent needed, the ceiling still holds
    [line] = (await decided(pole, "refuge-liege", event_id))["recipients"]
    assert (line["recipient"], line["legal_basis"], line["outcome"]) == (
        "parquet-liege",
        "legal_obligation",
        "filtered",
    )
    assert line["removed"]["location"] == "above_ceiling"
    token = pole.token("refuge-liege", (Scope.AUDIT_READ,))
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}) as auditor:
        [disclosed] = (await auditor.get(f"/v1/disclosures/{subject}")).json()["disclosures"]
    assert (disclosed["legal_basis"], disclosed["legal_reference"]) == ("legal_obligation", REFERENCE)
    listed = await run_cli("disclosures", subject, "--gateway", url, env={"MAILLAGE_TOKEN": token})
    assert listed.exit_code == 0, listed.output
    assert REFERENCE in listed.output and "legal_obligation" in listed.output
    verified = await run_cli("audit", "verify", "--gateway", url, env={"MAILLAGE_TOKEN": token})
    assert verified.exit_code == 0 and "intact" in verified.output


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"legal_reference": None}, "no reference"),
        ({"recipient": "justice"}, "a sector, not one named agency"),
        ({"legal_reference": "see the file of Amina's husband"}, "a sentence, not a reference"),
    ],
)
async def test_legal_obligation_without_its_reference_or_to_a_sector_is_refused(
    pole: Pole, fields: dict[str, Any], why: str
) -> None:
    client = await pole.start_agency("refuge-liege")

    response = await client.post("/v1/referrals", json=ordered(new_subject_ref(), **fields))

    assert_problem(response, 422)
    assert "Amina" not in response.text, why


async def test_legal_obligation_alert_to_several_agencies_is_refused(pole: Pole) -> None:
    client = await pole.start_agency("refuge-liege")
    body = {
        "subject_ref": new_subject_ref(),
        "subject_role": "victim",
        "severity": "high",
        "kind": "threat",
        "recipients": ["parquet-liege", "zp-meuse"],
        "legal_basis": "legal_obligation",
        "legal_reference": REFERENCE,
        "data": ALL_EIGHT,
    }

    problem = assert_problem(await client.post("/v1/alerts", json=body), 422)

    assert problem["type"].endswith("/grounds-required")


async def test_legal_obligation_record_to_a_sector_is_dead_lettered_never_delivered(
    pole: Pole, producer: AIOKafkaProducer
) -> None:
    await pole.start_gateway()
    await pole.start_agency("zp-meuse")
    subject = new_subject_ref()
    payload = ReferralCreated(identity=ALL_EIGHT["identity"], reason=ReferralReason.LEGAL_ADVICE)
    # What a partner system writing straight to the topic (not through the API) would send.
    envelope = pole.trust("refuge-liege").sealed_event(
        payload,
        subject_ref=subject,
        role=Role.VICTIM,
        basis=LegalBasis.LEGAL_OBLIGATION,
        purpose=Purpose.REFERRAL,
        at=datetime.now(UTC),
        recipients=("police",),
        pole="liege",
    )
    key, value, headers = envelope.to_kafka()

    await producer.send_and_wait(pole.topics.submitted, value, key=key, headers=headers)

    [letter] = await pole.read_until(pole.topics.dlq, has_event(envelope.id))
    assert header_of(letter, "dlq_reason") == "legal_obligation"
    assert envelope.id not in {i["event_id"] for i in await inbox_of(pole["zp-meuse"])}
