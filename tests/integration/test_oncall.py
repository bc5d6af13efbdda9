"""On-call: a safety alert reaches a worker live, is acknowledged, climbs the ladder when no one does.

A real broker, the real gateway and agencies, the dispatcher on a real port; time moves only when a
test advances the dispatcher's clock.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from maillage.core.clock import ManualClock
from maillage.core.crypto.tokens import DISPATCHER_AUDIENCE, Scope, mint
from maillage.core.messaging.envelope import new_subject_ref
from tests.monitor import agency_minted_operator_token, operator_token
from tests.oncall import (
    IMMINENT_DELAY,
    LEVEL_1,
    LEVEL_2,
    POLICE,
    WEDNESDAY_10H,
    alert_progress,
    dispatcher,
    raise_alert,
    socket,
    start_pole,
    worker_token,
)
from tests.support import Pole, assert_problem, eventually

pytestmark = pytest.mark.integration
SECOND = IMMINENT_DELAY / 120


async def test_alert_reaches_level_one_live_and_the_sender_sees_it_acknowledged(pole: Pole, tmp_path: Path) -> None:
    await start_pole(pole, tmp_path)
    clock = ManualClock(WEDNESDAY_10H)
    async with dispatcher(pole, clock) as running:
        async with (
            socket(running, worker_token(pole, LEVEL_1[0])) as dubois,
            httpx.AsyncClient(base_url=running.url, timeout=30) as client,
            client.stream(
                "GET", "/v1/stream", headers={"Authorization": f"Bearer {worker_token(pole, LEVEL_1[1])}"}
            ) as sse,
        ):
            assert (await dubois.next("snapshot"))["alerts"] == []
            assert sse.status_code == 200 and sse.headers["content-type"].startswith("text/event-stream")
            martin = sse.aiter_lines()

            alert_id = await raise_alert(pole, new_subject_ref())

            paged = (await dubois.next("alert"))["alert"]
            assert (paged["alert_id"], paged["severity"], paged["level"], paged["state"]) == (
                alert_id,
                "imminent",
                1,
                "open",
            )
            assert paged["data"]["identity"]["family_name"] == "Testperson"  # who is in danger
            assert await _sse_event(martin, "alert") == paged | {"deadline": paged["deadline"]}

            await dubois.send({"type": "ack", "alert_id": alert_id})
            acked = (await dubois.next("acked"))["alert"]
            assert (acked["state"], acked["acknowledged_by"]) == ("acknowledged", LEVEL_1[0])
            told = await _sse_event(martin, "acknowledged")
            assert (told["alert_id"], told["by_you"]) == (alert_id, False)

        progress = await alert_progress(pole, "refuge-liege", alert_id, state="acknowledged")
        assert progress["level"] == 1 and progress["acknowledged_at"]


async def _sse_event(lines: object, kind: str) -> dict:  # type: ignore[type-arg]
    event = None
    async for line in lines:  # type: ignore[attr-defined]
        if line.startswith("event: "):
            event = line[len("event: ") :]
        elif line.startswith("data: ") and event == kind:
            body: dict = orjson.loads(line[len("data: ") :])  # type: ignore[type-arg]
            return body["alert"] if "alert" in body and kind == "alert" else body
    raise AssertionError(f"the stream ended before a {kind} event")


async def test_unacknowledged_alert_climbs_to_the_next_level_when_its_time_runs_out(pole: Pole, tmp_path: Path) -> None:
    await start_pole(pole, tmp_path)
    clock = ManualClock(WEDNESDAY_10H)
    async with (
        dispatcher(pole, clock) as running,
        socket(running, worker_token(pole, LEVEL_1[0])) as first,
        socket(running, worker_token(pole, LEVEL_2)) as officer,
    ):
        alert_id = await raise_alert(pole, new_subject_ref())
        await first.next("alert")
        assert [m["type"] for m in await officer.drain()] == ["snapshot"], "level 2 is not paged yet"

        clock.advance(IMMINENT_DELAY - SECOND)
        await running.dispatcher.run_due()
        assert await officer.drain() == [], "one second before the deadline, nothing moves"

        clock.advance(2 * SECOND)
        await running.dispatcher.run_due()
        paged = (await officer.next("alert"))["alert"]
        assert (paged["alert_id"], paged["level"], paged["level_name"]) == (alert_id, 2, "Officier de garde")
        assert (await first.next("update"))["alert"]["level"] == 2, "level 1 still sees it, now at level 2"
        escalated = await alert_progress(pole, "refuge-liege", alert_id, state="escalated")
        assert escalated["level"] == 2

        await officer.send({"type": "ack", "alert_id": alert_id})
        assert (await officer.next("acked"))["alert"]["state"] == "acknowledged"
        assert (await alert_progress(pole, "refuge-liege", alert_id, state="acknowledged"))["level"] == 2


async def test_no_worker_connected_at_a_level_escalates_at_once(pole: Pole, tmp_path: Path) -> None:
    await start_pole(pole, tmp_path)
    async with (
        dispatcher(pole, ManualClock(WEDNESDAY_10H)) as running,
        socket(running, worker_token(pole, LEVEL_2)) as officer,
    ):
        alert_id = await raise_alert(pole, new_subject_ref())
        paged = (await officer.next("alert"))["alert"]
        assert (paged["alert_id"], paged["level"]) == (alert_id, 2)
        assert (await alert_progress(pole, "refuge-liege", alert_id, state="escalated"))["level"] == 2


async def test_every_level_exhausted_calls_the_fallback_and_operators_see_it(pole: Pole, tmp_path: Path) -> None:
    from tests.webhooks import Receiver, make_certificates, serve_https

    certs = make_certificates(tmp_path / "certs")
    receiver = Receiver(failures=0)
    # The fallback URL is not in the allow-list: named by the network operator, its own host and port are.
    async with serve_https(receiver, certs) as fallback_url:
        await start_pole(pole, tmp_path, fallback_url=fallback_url, webhooks={"ca_file": str(certs.ca_file)})
        clock = ManualClock(WEDNESDAY_10H)
        async with dispatcher(pole, clock) as running, socket(running, worker_token(pole, LEVEL_1[0])) as first:
            receiver.secret = (pole.data_dir / "keys" / "private" / "dispatcher-fallback.secret").read_text()
            alert_id = await raise_alert(pole, new_subject_ref(), severity="high")
            await first.next("alert")

            clock.advance(IMMINENT_DELAY * 5)  # `high`: 600 s for level 1; levels 2 and 3 have no one
            await running.dispatcher.run_due()
            update = (await first.next("update"))["alert"]
            assert (update["state"], update["level"]) == ("unacknowledged", 3)

            async def called() -> list[bytes]:
                return receiver.accepted

            from tests.support import eventually

            [body] = await eventually(called, what="the fallback webhook")
            assert receiver.attempts == [(200, True)], "signed with the fallback secret"
            call = orjson.loads(body)
            assert (call["type"], call["alert_id"], call["levels_paged"]) == (
                "maillage.oncall.unacknowledged",
                alert_id,
                3,
            )
            assert "Testperson" not in body.decode(), "the fallback carries no personal data"
            assert (await alert_progress(pole, "refuge-liege", alert_id, state="unacknowledged"))["level"] == 3

            operator = operator_token(pole)
            async with httpx.AsyncClient(base_url=running.url) as client:
                listed = (
                    await client.get("/v1/alerts/unacknowledged", headers={"Authorization": f"Bearer {operator}"})
                ).json()["items"]
                forged = agency_minted_operator_token(pole, "cpas-seraing", "operator")
                assert_problem(
                    await client.get("/v1/alerts/unacknowledged", headers={"Authorization": f"Bearer {forged}"}), 403
                )
            assert [(a["alert_id"], a["agency"]) for a in listed] == [(alert_id, POLICE)]
            assert "data" not in listed[0] and "subject_ref" not in listed[0]

            await first.send({"type": "ack", "alert_id": alert_id})  # late, but still taken in hand
            assert (await first.next("acked"))["alert"]["state"] == "acknowledged"


async def test_the_same_persons_alerts_are_grouped_not_paged_again(pole: Pole, tmp_path: Path) -> None:
    await start_pole(pole, tmp_path)
    await pole.start_agency("ecoute-namur")
    subject = new_subject_ref()
    async with (
        dispatcher(pole, ManualClock(WEDNESDAY_10H)) as running,
        socket(running, worker_token(pole, LEVEL_1[0])) as first,
    ):
        first_id = await raise_alert(pole, subject, severity="high")
        assert (await first.next("alert"))["alert"]["alert_id"] == first_id
        second_id = await raise_alert(pole, subject, severity="high", sender="ecoute-namur")
        update = (await first.next("update"))["alert"]
        assert (update["alert_id"], update["grouped"], update["severity"]) == (first_id, 2, "high")
        assert [(m["alert_id"], m["source_agency"]) for m in update["group"]] == [(second_id, "ecoute-namur")]
        assert update["group"][0]["data"]["identity"]["family_name"] == "Testperson", "its content is shown too"
        assert not [m for m in await first.drain() if m["type"] == "alert"], "not paged a second time"

        third_id = await raise_alert(pole, subject, severity="imminent")
        graver = (await first.next("alert"))["alert"]  # a graver alert about the same person rings again
        assert (graver["alert_id"], graver["grouped"], graver["severity"]) == (first_id, 3, "imminent")

        await first.send({"type": "ack", "alert_id": first_id})
        await first.next("acked")
    for sender, alert_id in (("refuge-liege", first_id), ("ecoute-namur", second_id), ("refuge-liege", third_id)):
        await alert_progress(pole, sender, alert_id, state="acknowledged")


async def test_grouped_alerts_stay_shown_when_every_level_let_them_pass_and_when_taken_in_hand(
    pole: Pole, tmp_path: Path
) -> None:
    await start_pole(pole, tmp_path)
    subject = new_subject_ref()
    clock = ManualClock(WEDNESDAY_10H)
    async with dispatcher(pole, clock) as running, socket(running, worker_token(pole, LEVEL_1[0])) as first:
        first_id = await raise_alert(pole, subject, severity="high")
        await first.next("alert")
        second_id = await raise_alert(pole, subject, severity="high")
        await first.next("update")

        # Every level lets it pass (levels 2 and 3 have no one connected): still shown, with what is grouped.
        clock.advance(timedelta(seconds=600))
        await running.dispatcher.run_due()
        passed = (await first.next("update"))["alert"]
        assert (passed["alert_id"], passed["state"]) == (first_id, "unacknowledged")
        assert [m["alert_id"] for m in passed["group"]] == [second_id], "the grouped alert's content is still shown"

        await first.send({"type": "ack", "alert_id": first_id})
        acked = (await first.next("acked"))["alert"]
        assert [m["alert_id"] for m in acked["group"]] == [second_id], "what was taken in hand, all of it"


async def test_an_alert_after_one_no_one_answered_is_paged_afresh(pole: Pole, tmp_path: Path) -> None:
    await start_pole(pole, tmp_path)
    subject = new_subject_ref()
    clock = ManualClock(WEDNESDAY_10H)
    async with dispatcher(pole, clock) as running:
        unanswered = await raise_alert(pole, subject, severity="high")  # no one connected: every level passes
        await alert_progress(pole, "refuge-liege", unanswered, state="unacknowledged")
        async with socket(running, worker_token(pole, LEVEL_1[0])) as first:
            snapshot = (await first.next("snapshot"))["alerts"]
            assert [(a["alert_id"], a["state"]) for a in snapshot] == [(unanswered, "unacknowledged")]
            again = await raise_alert(pole, subject)
            paged = (await first.next("alert"))["alert"]
            assert (paged["alert_id"], paged["level"], paged["grouped"]) == (again, 1, 1)


async def test_a_worker_coming_on_call_is_paged_for_the_alert_at_their_level(pole: Pole, tmp_path: Path) -> None:
    await start_pole(pole, tmp_path)
    async with (
        dispatcher(pole, ManualClock(WEDNESDAY_10H)) as running,
        socket(running, worker_token(pole, LEVEL_1[0])) as first,
    ):
        alert_id = await raise_alert(pole, new_subject_ref())
        await first.next("alert")
        async with socket(running, worker_token(pole, LEVEL_1[1])) as colleague:
            assert [a["alert_id"] for a in (await colleague.next("snapshot"))["alerts"]] == [alert_id]
            await running.dispatcher.run_due()
            assert (await colleague.next("alert"))["alert"]["alert_id"] == alert_id, "paged, not only listed"
            await running.dispatcher.run_due()
            assert not [m for m in await colleague.drain() if m["type"] == "alert"], "and only once"


async def test_a_restart_loses_no_alert_and_pages_no_one_twice(pole: Pole, tmp_path: Path) -> None:
    await start_pole(pole, tmp_path, grace=60)
    clock = ManualClock(WEDNESDAY_10H)
    token = worker_token(pole, LEVEL_1[0])
    async with dispatcher(pole, clock) as running, socket(running, token) as first:
        alert_id = await raise_alert(pole, new_subject_ref())
        await first.next("alert")

    clock.advance(SECOND * 30)
    async with (
        dispatcher(pole, clock) as running,
        socket(running, token) as first,
        socket(running, worker_token(pole, LEVEL_2)) as officer,
    ):
        snapshot = (await first.next("snapshot"))["alerts"]
        assert [(a["alert_id"], a["level"]) for a in snapshot] == [(alert_id, 1)], "still open, same level"
        assert not [m for m in await first.drain() if m["type"] == "alert"], "not paged again for level 1"

        clock.advance(IMMINENT_DELAY)  # the deadline set before the restart
        await running.dispatcher.run_due()
        assert (await officer.next("alert"))["alert"]["level"] == 2
        await running.dispatcher.run_due()
        assert not [m for m in await officer.drain() if m["type"] == "alert"], "level 2 paged once"


async def test_bad_tokens_unknown_alerts_and_malformed_messages_get_clear_errors(pole: Pole, tmp_path: Path) -> None:
    await start_pole(pole, tmp_path)
    async with dispatcher(pole, ManualClock(WEDNESDAY_10H)) as running:
        async with socket(running, None, hello=False) as ws:
            await ws.send({"type": "auth", "token": "not-a-token"})
            refused = await ws.next("error")
            assert refused["status"] == 401 and refused["title"]
            await ws.send({"type": "auth", "token": worker_token(pole, "w", agency="cpas-seraing")})
            assert (await ws.next("error"))["status"] == 403, "cpas-seraing is not served here"
            await ws.send({"type": "auth", "token": worker_token(pole, LEVEL_1[0])})
            await ws.next("hello")  # the same connection, signed in at last

            for message, status in (
                ("{not json", 400),
                ({"type": "launch"}, 422),
                ({"type": "ack", "alert_id": "x"}, 422),
                ({"type": "ack", "alert_id": "0197a0a0-0000-7000-8000-000000000000"}, 404),
            ):
                await ws.send(message)
                error = await ws.next("error")
                assert error["status"] == status and error["detail"], message
            other = await raise_alert(pole, new_subject_ref(), to="sos-enfants")
            await ws.send({"type": "ack", "alert_id": other})
            assert (await ws.next("error"))["status"] == 404, "another agency's alert"
            assert await ws.drain() == [], "the socket is still up"

        async with httpx.AsyncClient(base_url=running.url) as client:

            def auth(token: str) -> dict[str, str]:
                return {"Authorization": f"Bearer {token}"}

            ack = "/v1/alerts/0197a0a0-0000-7000-8000-000000000000/ack"
            assert (await client.post(ack)).status_code == 401
            assert (await client.get("/v1/stream", headers=auth("x.y.z"))).status_code == 401
            elsewhere = worker_token(pole, LEVEL_1[0], scopes=(Scope.INBOX_READ,))  # for the agency's own service
            assert (await client.post(ack, headers=auth(elsewhere))).status_code == 401
            no_scope = mint(
                pole.trust(POLICE).own, subject=LEVEL_1[0], scopes=(Scope.INBOX_READ,), audience=DISPATCHER_AUDIENCE
            )
            assert (await client.post(ack, headers=auth(no_scope))).status_code == 403
            bad = await client.post("/v1/alerts/not-an-id/ack", headers=auth(worker_token(pole, LEVEL_1[0])))
            assert bad.status_code == 422 and bad.headers["content-type"].startswith("application/problem+json")
            unknown = await client.post(ack, headers=auth(worker_token(pole, LEVEL_1[0])))
            assert unknown.status_code == 404 and unknown.json()["detail"]
            assert (await client.get("/healthz")).status_code == 200


async def test_a_socket_whose_token_expires_is_told_and_closed(pole: Pole, tmp_path: Path) -> None:
    from datetime import timedelta

    from websockets.exceptions import ConnectionClosed

    from maillage.core.crypto.tokens import mint

    await start_pole(pole, tmp_path)
    short = mint(pole.trust(POLICE).own, subject=LEVEL_1[0], scopes=(Scope.ALERTS_ACK,), lifetime=timedelta(seconds=2))
    async with dispatcher(pole, ManualClock(WEDNESDAY_10H)) as running, socket(running, short) as ws:
        expired = await ws.next("error", timeout=10)
        assert expired["status"] == 401 and "sign in again" in expired["detail"]
        with pytest.raises(ConnectionClosed) as closed:
            await ws.next(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


async def test_a_danger_disclosure_rejected_on_review_is_erased_from_the_on_call_pages(
    pole: Pole, tmp_path: Path
) -> None:
    await start_pole(pole, tmp_path)
    clock = ManualClock(WEDNESDAY_10H)
    async with (
        dispatcher(pole, clock) as running,
        socket(running, worker_token(pole, LEVEL_1[0])) as dubois,
        httpx.AsyncClient(base_url=running.url, timeout=30) as client,
    ):
        alert_id = await raise_alert(pole, new_subject_ref())
        assert (await dubois.next("alert"))["alert"]["data"]["identity"]["family_name"] == "Testperson"

        reviewer = mint(
            pole.trust("refuge-liege").own, subject="second-social-worker", scopes=(Scope.DISCLOSURE_REVIEW,)
        )
        rejected = await pole["refuge-liege"].post(
            f"/v1/reviews/{alert_id}",
            json={"decision": "rejected"},
            headers={"Authorization": f"Bearer {reviewer}"},
        )
        assert rejected.status_code == 200, rejected.text

        headers = {"Authorization": f"Bearer {worker_token(pole, LEVEL_1[0])}"}

        async def erased() -> dict[str, Any] | None:
            shown = (await client.get("/v1/alerts", headers=headers)).json()
            alert: dict[str, Any] = next(a for a in shown["items"] if a["alert_id"] == alert_id)
            return alert if alert["data"] == {} else None

        alert = await eventually(erased, what="the rejected alert's data erased from the pages")
        assert alert["state"] == "open", "who is paged stays: only what the disclosure carried goes"
