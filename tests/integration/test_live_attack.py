"""The security review's live attack on the demo Pôle, replayed: each attempt now fails.

The attacker is a hostile insider at one agency: a compromised partner system holding a valid token, or
the agency's own Kafka principal and keys. (Webhooks: test_webhooks.py; Kafka ACLs: test_kafka_acls.py;
connection limits: test_limits.py; operators' powers: test_monitor.py; the local broker and files at rest:
e2e/test_up.py.)
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from websockets.exceptions import ConnectionClosed

from maillage.core.clock import ManualClock
from maillage.core.crypto.keys import KeyUse, add_keys, retire_key
from maillage.core.crypto.tokens import Scope, mint
from maillage.core.messaging.envelope import Envelope, new_subject_ref
from maillage.domain.events import ConsentWithdrawn, EventPayload
from maillage.domain.vocabulary import LegalBasis, Purpose, Role
from tests.oncall import LEVEL_1, POLICE, WEDNESDAY_10H, dispatcher, socket, start_pole, worker_token
from tests.support import (
    ALL_EIGHT,
    CATEGORIES,
    Pole,
    assert_problem,
    categories_in,
    consent,
    decided,
    eventually,
    header_of,
    received,
    refer,
)

pytestmark = pytest.mark.integration

REFUGE, POLICE_ZONE = "refuge-liege", "zp-meuse"


def signed_by(pole: Pole, agency: str, payload: EventPayload, *, subject: str) -> Envelope:
    """An event sealed to the gateway and validly signed by `agency`, as its outbox (or its attacker) writes it."""
    return pole.trust(agency).sealed_event(
        payload,
        subject_ref=subject,
        role=Role.VICTIM,
        basis=LegalBasis.CONSENT,
        purpose=Purpose.REFERRAL,
        at=datetime.now(UTC),
    )


async def test_a_recipients_own_consent_never_unlocks_what_the_person_refused_the_sender(
    pole: Pole,
    producer: AIOKafkaProducer,
) -> None:
    await pole.start_gateway()
    await pole.start_agency(REFUGE)
    await pole.start_agency(POLICE_ZONE)
    subject = new_subject_ref()
    # The person allowed the refuge to tell the police who she is: not where she shelters, nor her phone.
    refused = await consent(pole, REFUGE, subject, to=[POLICE_ZONE], categories=["identity"])
    first = await refer(pole, REFUGE, subject, to=POLICE_ZONE)
    assert categories_in((await received(pole, POLICE_ZONE, first))["data"]) == {"identity"}

    # The attack, two calls: the police zone registers its own "consent" for her, all eight categories ...
    forged = await consent(pole, POLICE_ZONE, subject, to=[POLICE_ZONE, "police"], categories=CATEGORIES)
    await decided(pole, POLICE_ZONE, forged["event_id"])
    # ... and the refuge's next referral would have delivered the shelter's address.
    second = await refer(pole, REFUGE, subject, to=POLICE_ZONE)

    assert categories_in((await received(pole, POLICE_ZONE, second))["data"]) == {"identity"}
    [line] = (await decided(pole, REFUGE, second))["recipients"]
    assert (line["removed"]["location"], line["removed"]["contact"]) == ("not_consented", "not_consented")
    listed = (await pole[REFUGE].get("/v1/consents", params={"subject_ref": subject})).json()
    assert [c["consent_id"] for c in listed] == [refused["consent_id"]], "the refuge sees its own consents only"

    # Nor can the police zone withdraw the refuge's consent: not through its API ...
    url = f"/v1/consents/{refused['consent_id']}/withdraw"
    assert_problem(await pole[POLICE_ZONE].post(url), 404)
    # ... nor by writing a withdrawal, signed with its own keys, straight onto the broker.
    withdrawal = signed_by(
        pole,
        POLICE_ZONE,
        ConsentWithdrawn(consent_id=uuid.UUID(refused["consent_id"])),
        subject=subject,
    )
    key, value, headers = withdrawal.to_kafka()
    await producer.send_and_wait(pole.topics.submitted, value, key=key, headers=headers)
    [letter] = await pole.read_until(pole.topics.dlq, lambda records: len(records) >= 1)
    assert (header_of(letter, "dlq_reason"), header_of(letter, "ce_id")) == ("unknown_consent", withdrawal.id)
    third = await refer(pole, REFUGE, subject, to=POLICE_ZONE)
    assert categories_in((await received(pole, POLICE_ZONE, third))["data"]) == {"identity"}, "still in force"


async def test_a_record_keyed_by_another_subject_cannot_overtake_a_withdrawal(
    pole: Pole,
    producer: AIOKafkaProducer,
) -> None:
    await pole.start_gateway()
    subject, elsewhere = new_subject_ref(), new_subject_ref()
    withdrawal = signed_by(pole, REFUGE, ConsentWithdrawn(consent_id=uuid.uuid4()), subject=subject)
    _, value, headers = withdrawal.to_kafka()

    # Keyed by someone else, it would land on another partition than the subject's other events.
    await producer.send_and_wait(pole.topics.submitted, value, key=elsewhere.encode(), headers=headers)

    [letter] = await pole.read_until(pole.topics.dlq, lambda records: len(records) >= 1)
    assert header_of(letter, "dlq_reason") == "key"


async def test_a_subject_ref_is_random_never_free_text(pole: Pole) -> None:
    client = await pole.start_agency(REFUGE)
    for smuggled in ("Amina_Testperson_1985-01-01_Liege", "s-12345678", "s-" + "A" * 32, "s-" + "0" * 31):
        refused = await client.post(
            "/v1/referrals",
            json={
                "subject_ref": smuggled,
                "subject_role": "victim",
                "recipient": "social",
                "reason": "financial_aid",
                "data": ALL_EIGHT,
            },
        )
        assert assert_problem(refused, 422)["errors"][0]["loc"] == ["body", "subject_ref"]
        assert smuggled not in refused.text, "the value is never echoed"
    assert_problem(await client.get("/v1/consents", params={"subject_ref": "Amina Testperson"}), 422)


async def test_a_retired_token_key_is_refused_by_the_running_service_within_the_interval(pole: Pole) -> None:
    client = await pole.start_agency(REFUGE, key_refresh_seconds=0.2)
    old = pole.token(REFUGE)
    old_kid = pole.trust(REFUGE).own.token_kid
    assert (await client.get("/v1/inbox", headers={"Authorization": f"Bearer {old}"})).status_code == 200

    dirs = pole.gateway_settings().key_dirs
    add_keys(dirs, REFUGE)
    new = pole.token(REFUGE)
    retire_key(dirs, REFUGE, old_kid)  # what `maillage keys retire` does

    async def refused() -> bool:
        return (await client.get("/v1/inbox", headers={"Authorization": f"Bearer {old}"})).status_code == 401

    await eventually(refused, timeout=5, what="the retired key's token to be refused")  # cached one included
    assert (await client.get("/v1/inbox", headers={"Authorization": f"Bearer {new}"})).status_code == 200


async def test_a_stream_opened_with_a_retired_key_is_closed(pole: Pole, tmp_path: Path) -> None:
    await start_pole(pole, tmp_path)
    old_kid = pole.trust(POLICE).own.token_kid
    old = worker_token(pole, LEVEL_1[0])
    async with (
        dispatcher(pole, ManualClock(WEDNESDAY_10H), key_refresh_seconds=0.2) as running,
        socket(running, old) as ws,
    ):
        await ws.next("snapshot")
        dirs = pole.gateway_settings().key_dirs
        add_keys(dirs, POLICE)
        retire_key(dirs, POLICE, old_kid)

        told = await ws.next("error", timeout=10)
        assert told["status"] == 401 and "retired" in told["detail"]
        with pytest.raises(ConnectionClosed) as closed:
            await ws.next(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
        async with httpx.AsyncClient(base_url=running.url) as client:
            stream = await client.get("/v1/alerts", headers={"Authorization": f"Bearer {old}"})
            assert_problem(stream, 401)


async def test_a_token_expired_a_moment_ago_opens_nothing(pole: Pole, tmp_path: Path) -> None:
    await start_pole(pole, tmp_path)
    # Well within the 30 s leeway pyjwt allows for clocks that disagree: an end is an end all the same.
    expired = mint(
        pole.trust(POLICE).own,
        subject=LEVEL_1[0],
        scopes=(Scope.ALERTS_ACK,),
        lifetime=timedelta(seconds=40),
        now=datetime.now(UTC) - timedelta(seconds=60),
    )
    async with dispatcher(pole, ManualClock(WEDNESDAY_10H)) as running:
        async with socket(running, expired, hello=False) as ws:
            refused = await ws.next(timeout=10)
            assert (refused["type"], refused["status"]) == ("error", 401), "no hello, no snapshot of alerts"
        async with httpx.AsyncClient(base_url=running.url) as client:
            assert_problem(await client.get("/v1/alerts", headers={"Authorization": f"Bearer {expired}"}), 401)


async def test_the_dispatcher_needs_no_token_key_of_the_agencies_it_serves(pole: Pole, tmp_path: Path) -> None:
    await start_pole(pole, tmp_path)
    private = pole.gateway_settings().key_dirs.private
    for path in private.glob(f"*/*.{KeyUse.TOKENS.value}.*.key"):
        if path.parent.name == POLICE:
            path.unlink()  # the dispatcher's machine holds no key that could mint the police zone's tokens
    async with dispatcher(pole, ManualClock(WEDNESDAY_10H)) as running:
        served = running.dispatcher.served[POLICE].trust.own
        assert served.signing_kid and served.opening and not served.token_kid
        with pytest.raises(LookupError):
            served.token  # noqa: B018


async def test_every_answer_has_security_headers_and_trusts_no_host_header(pole: Pole) -> None:
    gateway = await pole.start_gateway()
    client = await pole.start_agency(REFUGE)
    answer = await client.get("/v1/inbox")
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["cache-control"] == "no-store"
    assert answer.headers["referrer-policy"] == "no-referrer"
    # The trailing-slash redirect used to build its Location from the Host header: an open redirect.
    slashed = await client.get("/v1/inbox/", headers={"Host": "attacker.invalid"})
    assert_problem(slashed, 404)
    assert "location" not in slashed.headers
    for service in (client, gateway):
        assert (await service.get("/docs")).status_code == 404, "no page loading scripts from a CDN"
        assert (await service.get("/openapi.json")).status_code == 200
        assert_problem(await service.get("/metrics", headers={"Authorization": ""}), 401)
