"""The operators' monitor: the flow of events, lag, dead letters with replay, counts of reviews, unanswered alerts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from maillage.core.clock import ManualClock
from maillage.core.messaging.envelope import new_subject_ref
from maillage.domain.status import OncallReport
from tests.monitor import agency_minted_operator_token, as_operator, monitor, operator_token
from tests.oncall import IMMINENT_DELAY, WEDNESDAY_10H, dispatcher, oncall_network, raise_alert
from tests.support import ALL_EIGHT, Pole, assert_problem, consent, decided, eventually, received, refer

pytestmark = pytest.mark.integration


@asynccontextmanager
async def raw_producer(pole: Pole) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(bootstrap_servers=pole.bootstrap)
    await producer.start()
    try:
        yield producer
    finally:
        await producer.stop()


async def items(client: httpx.AsyncClient, path: str) -> list[dict[str, Any]]:
    response = await client.get(path)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["items"]
    return found


async def test_operators_see_flow_decisions_lag_and_dead_letters(pole: Pole) -> None:
    await pole.start_gateway()
    await pole.start_agency("refuge-liege")
    await pole.start_agency("cpas-seraing")
    subject = new_subject_ref()
    await consent(pole, "refuge-liege", subject, to=["cpas-seraing"], categories=["identity", "contact"])
    await refer(pole, "refuge-liege", subject, to="cpas-seraing")
    denied = await refer(pole, "refuge-liege", new_subject_ref(), to="cpas-seraing")
    await decided(pole, "refuge-liege", denied)
    async with raw_producer(pole) as producer:  # a record without any envelope
        await producer.send_and_wait(pole.topics.submitted, b"not an event", key=b"s-nobodyatall")

    async with monitor(pole) as running, as_operator(running, operator_token(pole)) as client:

        async def seen() -> list[dict[str, Any]] | None:
            rows = await items(client, "/v1/decisions")
            dead = await items(client, "/v1/dead-letters")
            return rows if len(rows) >= 2 and dead else None

        rows = await eventually(seen, what="the decisions and the dead letter at the monitor")
        outcomes = {(r["type"], r["sector"], r["outcome"], r["legal_basis"]): r["count"] for r in rows}
        assert outcomes[("maillage.referral.created.v1", "social", "filtered", "consent")] == 1
        assert outcomes[("maillage.referral.created.v1", "social", "denied", "consent")] == 1
        assert next(r for r in rows if r["outcome"] == "filtered")["categories_removed"] > 0

        overview = (await client.get("/v1/overview")).json()
        assert (overview["decisions"]["filtered"], overview["decisions"]["denied"]) == (1, 1)
        assert overview["dead_letters_waiting"] == 1
        flow = (await client.get("/v1/flow?minutes=10&bucket_seconds=60")).json()
        social = next(s for s in flow["series"] if s["sector"] == "social")
        assert sum(social["filtered"]) == 1 and sum(social["denied"]) == 1
        assert len(flow["times"]) == 10

        [dead] = await items(client, "/v1/dead-letters")
        assert (dead["reason"], dead["service"], dead["topic"], dead["replayable"]) == (
            "envelope",
            "gateway",
            "maillage.submitted",
            True,
        )

        async def lag_known() -> list[dict[str, Any]] | None:
            groups = (await client.get("/v1/lag")).json()["groups"]
            gateway = [g for g in groups if g["group"] == "maillage.gateway"]
            return gateway if gateway and gateway[0]["lag"] == 0 else None

        [gateway] = await eventually(lag_known, what="the gateway's group at lag 0")
        assert gateway["topic"] == "maillage.submitted"

        async def all_caught_up() -> list[dict[str, Any]] | None:
            # Topics written in transactions included: their commit markers are not lag.
            groups = (await client.get("/v1/lag")).json()["groups"]
            return (
                groups
                if {g["topic"] for g in groups} >= {"maillage.audit", "maillage.status.refuge-liege"}
                and all(g["lag"] == 0 for g in groups)
                else None
            )

        await eventually(all_caught_up, what="every group at lag 0 once all is read")
        metrics = (await client.get("/metrics", headers={"Authorization": f"Bearer {pole.scrape_token()}"})).text
        assert 'maillage_consumer_lag_records{group="maillage.gateway",topic="maillage.submitted"} 0.0' in metrics
        assert "Testperson" not in str(overview) + str(rows) + str(flow) + str(dead)


async def test_a_dead_letter_replayed_needs_the_act_scope_and_goes_through_the_gateway_again(pole: Pole) -> None:
    await pole.start_gateway()
    async with raw_producer(pole) as producer:
        await producer.send_and_wait(
            pole.topics.submitted,
            b"still not an event",
            key=b"s-nobodyatall",
            headers=[("ce_id", b"0197a0a0-0000-7000-8000-00000000dead")],
        )
    async with (
        monitor(pole) as running,
        as_operator(running, operator_token(pole)) as reader,
        as_operator(running, operator_token(pole, "operator-ben", act=True)) as actor,
    ):
        [dead] = await eventually(lambda: items(reader, "/v1/dead-letters"), what="the dead letter")
        refused = await reader.post(f"/v1/dead-letters/{dead['id']}/replay")
        assert "monitor:act" in assert_problem(refused, 403)["detail"]

        replayed = await actor.post(f"/v1/dead-letters/{dead['id']}/replay")
        assert replayed.status_code == 202, replayed.text
        assert replayed.json()["replays"] == 1 and replayed.json()["replayed_at"]

        async def twice() -> list[dict[str, Any]] | None:
            rows = [
                d
                for d in await items(reader, "/v1/dead-letters")
                if d["event_id"] == "0197a0a0-0000-7000-8000-00000000dead"
            ]
            return rows if len(rows) == 2 else None

        # Republished as it was first sent, the gateway refuses it again, for the same reason.
        assert {d["reason"] for d in await eventually(twice, what="the replayed record refused again")} == {"envelope"}
        assert_problem(await actor.post("/v1/dead-letters/999999/replay"), 404)
        # Beyond a 64-bit row id: refused as the published schema says, never an error of the database driver.
        assert_problem(await actor.post(f"/v1/dead-letters/{2**64}/replay"), 422)


async def test_operators_count_danger_reviews_and_their_age_and_approve_nothing(pole: Pole) -> None:
    await pole.start_gateway()
    await pole.start_agency("refuge-liege")
    alert_id = await raise_alert(pole, new_subject_ref())
    await decided(pole, "refuge-liege", alert_id)
    # The attack of old: an agency mints the operators' powers for its own staff.
    raiser = agency_minted_operator_token(pole, "refuge-liege", "refuge-liege-case-system")
    async with (
        monitor(pole) as running,
        as_operator(running, raiser) as same_agency,
        as_operator(running, operator_token(pole, "operator-claire", act=True)) as operator,
    ):

        async def pending() -> dict[str, Any] | None:
            body: dict[str, Any] = (await operator.get("/v1/reviews")).json()
            return body if body["pending"] == 1 else None

        counts = await eventually(pending, what="the pending review counted")
        assert (counts["approved"], counts["rejected"]) == (0, 0)
        assert counts["oldest_pending_since"] and counts["oldest_pending_age_seconds"] >= 0
        assert alert_id not in str(counts)  # counts and ages: which alert, who, why stay at the agency
        assert (await operator.get("/v1/overview")).json()["reviews_pending"] == 1
        # Reviewing is the raising agency's: operators have nothing to approve, with any token.
        assert_problem(await operator.post(f"/v1/reviews/{alert_id}/approve"), 404)
        assert_problem(await same_agency.get("/v1/reviews"), 403)
        scrape = {"Authorization": f"Bearer {pole.scrape_token()}"}

        async def queue_shown() -> bool:
            return "maillage_review_queue_pending 1.0" in (await operator.get("/metrics", headers=scrape)).text

        await eventually(queue_shown, what="the review queue gauge at 1")


async def test_alerts_no_one_acknowledged_reach_the_operators(pole: Pole, tmp_path: Path) -> None:
    pole.network_file = oncall_network(tmp_path / "net")
    await pole.start_gateway()
    await pole.start_agency("refuge-liege")
    clock = ManualClock(WEDNESDAY_10H)
    async with (
        dispatcher(pole, clock) as on_call,
        monitor(pole) as running,
        as_operator(running, operator_token(pole)) as client,
    ):
        alert_id = await raise_alert(pole, new_subject_ref())
        await eventually(lambda: _stored(on_call, alert_id), what="the alert at the dispatcher")
        clock.advance(IMMINENT_DELAY)  # no worker connected anywhere: every level passes at once
        await on_call.dispatcher.run_due()
        [unanswered] = await eventually(
            lambda: items(client, "/v1/alerts/unacknowledged"), what="the unanswered alert at the monitor"
        )
        assert (unanswered["alert_id"], unanswered["agency"], unanswered["levels_paged"]) == (alert_id, "zp-meuse", 3)
        assert set(unanswered) == {"agency", "alert_id", "severity", "levels_paged", "received_at", "since"}


async def _stored(on_call: Any, alert_id: str) -> bool:
    from sqlmodel import select

    from maillage.dispatcher.models import OncallAlert

    async with on_call.dispatcher.sessions() as session:
        return (await session.exec(select(OncallAlert).where(OncallAlert.alert_id == alert_id))).first() is not None


async def test_every_route_needs_an_operators_token(pole: Pole) -> None:
    async with monitor(pole) as running, httpx.AsyncClient(base_url=running.url) as anonymous:
        for path in (
            "/v1/overview",
            "/v1/flow",
            "/v1/decisions",
            "/v1/lag",
            "/v1/dead-letters",
            "/v1/reviews",
            "/v1/alerts/unacknowledged",
        ):
            assert_problem(await anonymous.get(path), 401)
        agency_system = pole.token("refuge-liege")  # an agency's partner system is no operator
        assert_problem(
            await anonymous.get("/v1/overview", headers={"Authorization": f"Bearer {agency_system}"}), 401
        )  # not even meant for the monitor (its audience is the agency's own service)
        # Nor is an agency's token minted with the operators' scopes: operators' powers come from operators.
        forged = agency_minted_operator_token(pole, "cpas-seraing", "operator-anne")
        assert_problem(await anonymous.get("/v1/overview", headers={"Authorization": f"Bearer {forged}"}), 403)
        assert_problem(await anonymous.get("/metrics"), 401)
        assert_problem(await anonymous.get("/metrics", headers={"Authorization": f"Bearer {forged}"}), 401)
        assert (await anonymous.get("/healthz")).status_code == 200


async def test_the_command_line_lists_and_replays_dead_letters_and_shows_status(pole: Pole, tmp_path: Path) -> None:
    import asyncio

    from typer.testing import CliRunner

    from maillage.cli.main import app
    from tests.processes import network_copy

    await pole.start_gateway()
    async with raw_producer(pole) as producer:
        await producer.send_and_wait(pole.topics.submitted, b"not an event either", key=b"s-nobodyatall")
    runner = CliRunner()
    async with monitor(pole) as running, as_operator(running, operator_token(pole)) as client:
        await eventually(lambda: items(client, "/v1/dead-letters"), what="the dead letter")
        token = operator_token(pole, "operator-dan", act=True)

        def cli(*args: str) -> Any:
            # The token from the environment: a command line is visible to every user of the machine.
            return runner.invoke(app, [*args, "--monitor", running.url], env={"MAILLAGE_TOKEN": token})

        listed = await asyncio.to_thread(cli, "dlq", "list")
        assert listed.exit_code == 0, listed.output
        assert "envelope" in listed.output and "gateway" in listed.output
        replayed = await asyncio.to_thread(cli, "dlq", "replay", "--reason", "envelope")
        assert replayed.exit_code == 0 and "Replayed 1 of 1" in replayed.output, replayed.output
        no_token = await asyncio.to_thread(
            runner.invoke, app, ["dlq", "list", "--monitor", running.url], env={"MAILLAGE_TOKEN": ""}
        )
        assert no_token.exit_code == 2 and "token" in no_token.output
        on_command_line = await asyncio.to_thread(runner.invoke, app, ["dlq", "list", "--token", token])
        assert on_command_line.exit_code == 2 and "No such option" in on_command_line.output

        network = network_copy(tmp_path / "net", prefix=pole.prefix)
        shown = await asyncio.to_thread(
            runner.invoke, app, ["status", "--network", str(network), "--bootstrap", pole.bootstrap]
        )
        assert shown.exit_code == 0, shown.output
        assert "maillage.gateway" in shown.output and "consumer lag" in shown.output
        assert "down" in shown.output, "services of the copied network are not running: said so"


async def test_an_alert_acknowledged_after_every_level_passed_leaves_the_operators_list(pole: Pole) -> None:
    received = datetime.now(UTC)
    unanswered = OncallReport(
        agency="zp-meuse",
        alert_id="0197a0a0-0000-7000-8000-0000000a1e27",
        severity="imminent",
        state="unacknowledged",
        levels_paged=3,
        received_at=received,
        at=received + timedelta(minutes=5),
    )
    async with monitor(pole) as running, as_operator(running, operator_token(pole)) as client:
        async with raw_producer(pole) as producer:
            await producer.send_and_wait(pole.topics.oncall, unanswered.model_dump_json().encode())
        await eventually(lambda: items(client, "/v1/alerts/unacknowledged"), what="the unanswered alert")
        # A worker takes it in hand later, in another batch: the monitor reads it back from its database.
        late = unanswered.model_copy(update={"state": "acknowledged", "at": received + timedelta(minutes=7)})
        async with raw_producer(pole) as producer:
            await producer.send_and_wait(pole.topics.oncall, late.model_dump_json().encode())

        async def answered() -> bool:
            overview = (await client.get("/v1/overview")).json()
            return not await items(client, "/v1/alerts/unacknowledged") and overview["alerts_unacknowledged"] == 0

        await eventually(answered, what="the acknowledged alert off the operators' list")


async def test_operators_count_each_legal_basis_notice_and_receipt(pole: Pole) -> None:
    """Issue 11, point 9: every new basis, and the notices with their receipts, are counted for operators —
    as metadata, like every decision."""
    await pole.start_gateway()
    for agency in ("refuge-liege", "cpas-seraing", "parquet-liege", "pole-meuse"):
        await pole.start_agency(agency)
    refuge = pole["refuge-liege"]
    subject = new_subject_ref()

    # consent, then its withdrawal: a notice to the past recipient, and its receipt
    given = await consent(pole, "refuge-liege", subject, to=["cpas-seraing"], categories=["identity"])
    await received(pole, "cpas-seraing", await refer(pole, "refuge-liege", subject, to="cpas-seraing"))
    assert (await refuge.post(f"/v1/consents/{given['consent_id']}/withdraw")).status_code == 200
    # a legal obligation, to one named agency
    ordered = {"subject_ref": subject, "subject_role": "victim", "recipient": "parquet-liege"}
    ordered |= {"reason": "legal_advice", "legal_basis": "legal_obligation", "legal_reference": "C.i.cr. art. 29"}
    assert (await refuge.post("/v1/referrals", json=ordered | {"data": ALL_EIGHT})).status_code == 202
    # an anonymous consultation of the Pôle's desk
    asked = {"questions": ["dangerousness"], "risk": {"level": "high"}}
    assert (await refuge.post("/v1/consultations", json=asked)).status_code == 202
    # a case conference, and a disclosure under it
    conference = await pole["pole-meuse"].post(
        "/v1/case-conferences",
        json={
            "authorisation": "Code penal art. 458ter",
            "purpose": "risk_assessment",
            "participants": ["refuge-liege", "cpas-seraing"],
            "subjects": [subject],
            "ends_at": (datetime.now(UTC) + timedelta(days=7)).isoformat(),
        },
    )
    assert conference.status_code == 201, conference.text
    await received(pole, "refuge-liege", conference.json()["event_id"])
    shared = ordered | {"recipient": "cpas-seraing", "reason": "other", "reason_comment": "For the conference."}
    shared |= {"legal_basis": "case_conference", "conference_id": conference.json()["conference_id"]}
    shared.pop("legal_reference")
    assert (await refuge.post("/v1/referrals", json=shared | {"data": ALL_EIGHT})).status_code == 202

    wanted = {"consent", "legal_obligation", "anonymous", "case_conference", "notified", "acknowledged"}
    async with monitor(pole) as running, as_operator(running, operator_token(pole)) as client:

        async def counted() -> dict[str, int] | None:
            counts: dict[str, int] = {}
            for row in await items(client, "/v1/decisions"):
                for key in (row["legal_basis"], row["outcome"]):
                    counts[key] = counts.get(key, 0) + row["count"]
            return counts if wanted <= set(counts) else None

        counts = await eventually(counted, what="every basis, notice and receipt counted at the monitor")
    assert counts["notified"] == counts["acknowledged"] == 1
    assert counts["legal_obligation"] == 1 and counts["anonymous"] == 1
