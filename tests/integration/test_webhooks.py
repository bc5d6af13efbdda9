"""Webhooks: a partner system's receiver gets each arrival over https, signed; failures are retried and every
attempt shows; destinations are public unless the network file allow-lists them, checked at registration and at
every connect; registrations expire and can be listed, deleted and re-keyed; a slow receiver delays only its own.

Every receiver listens on 127.0.0.1 with a certificate from a CA the test makes; names resolve from the test's
own table (TableResolver): no query ever leaves this machine.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from maillage.core.crypto.tokens import agency_audience, staff_ref, verify_token
from maillage.core.messaging.envelope import new_subject_ref
from maillage.core.web.problems import PROBLEM_TYPE_BASE
from maillage.core.webhooks.delivery import verify_signature
from maillage.core.webhooks.egress import TableResolver
from tests.support import Pole, consent, eventually, refer
from tests.webhooks import (
    RawReceiver,
    Receiver,
    bound_socket,
    deliveries,
    make_certificates,
    manager,
    port_of,
    register,
    serve_https,
    serve_raw,
    webhook_network,
    webhooks_table,
)

pytestmark = pytest.mark.integration

DESTINATION_PROBLEM = PROBLEM_TYPE_BASE + "webhook-destination"
# An address that is public on the Internet: only ever *named* by the test's resolver table, at registration;
# the name is rebound to loopback before anything is sent, and the client connects only to what it resolves then.
PUBLIC = "192.0.43.10"


async def start(
    pole: Pole, tmp_path: Path, webhooks: dict[str, Any], *, resolver: TableResolver | None = None, **settings: Any
) -> None:
    """The test network (its [webhooks] table), the gateway, the sender and the receiving agency (cpas-seraing)."""
    pole.network_file = webhook_network(tmp_path / "net", webhooks)
    await pole.start_gateway()
    await pole.start_agency("refuge-liege")
    await pole.start_agency("cpas-seraing", resolver=resolver or TableResolver(), **settings)


async def send_referral(pole: Pole) -> str:
    """refuge-liege refers a person to cpas-seraing, with her consent: one more arrival in cpas' inbox."""
    subject = new_subject_ref()
    await consent(pole, "refuge-liege", subject, to=["cpas-seraing"], categories=["identity"])
    return await refer(pole, "refuge-liege", subject, to="cpas-seraing")


async def attempted(pole: Pole, hook_id: str, *, count: int = 1) -> list[dict[str, Any]]:
    """The webhook's deliveries, once the first has `count` attempts recorded."""

    async def probe() -> list[dict[str, Any]] | None:
        found = await deliveries(pole, "cpas-seraing", hook_id)
        return found if found and len(found[0]["attempts"]) >= count else None

    return await eventually(probe, timeout=30, what=f"{count} attempt(s) of webhook {hook_id}")


async def delivered(pole: Pole, hook_id: str, event_id: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        return next(
            (
                d
                for d in await deliveries(pole, "cpas-seraing", hook_id)
                if d["event_id"] == event_id and d["state"] == "delivered"
            ),
            None,
        )

    return await eventually(probe, timeout=30, what=f"{event_id} delivered to webhook {hook_id}")


async def test_webhook_delivery_is_signed_retried_with_backoff_and_traced(pole: Pole, tmp_path: Path) -> None:
    certs = make_certificates(tmp_path / "certs")
    receiver, sock = Receiver(failures=2), bound_socket()
    await start(pole, tmp_path, webhooks_table(certs, sock), webhook_backoff_seconds=0.2)
    async with serve_https(receiver, certs, sock) as url:
        hook = await register(pole, "cpas-seraing", url)
        receiver.secret = hook["secret"]
        event_id = await send_referral(pole)
        delivery = await delivered(pole, hook["id"], event_id)

    assert [(a["outcome"], a["status_code"]) for a in delivery["attempts"]] == [
        ("failed", 503),
        ("failed", 503),
        ("delivered", 200),
    ]
    assert [a["attempt"] for a in delivery["attempts"]] == [1, 2, 3]
    first, second, third = (datetime.fromisoformat(a["at"]) for a in delivery["attempts"])
    assert (second - first).total_seconds() >= 0.2, "the first retry waits the base delay"
    assert (third - second).total_seconds() >= 0.4, "the next one waits twice as long"
    assert all(valid for _, valid in receiver.attempts), "every attempt carries a valid signature"
    assert b'"event_id":"' + event_id.encode() in receiver.accepted[0]


async def test_managing_webhooks_needs_the_webhooks_manage_scope(pole: Pole, tmp_path: Path) -> None:
    certs = make_certificates(tmp_path / "certs")
    sock = bound_socket()
    await start(pole, tmp_path, webhooks_table(certs, sock))
    url = f"https://127.0.0.1:{port_of(sock)}/hook"
    cpas = pole["cpas-seraing"]  # its token: events:write, inbox:read, consent:write, as partner systems have
    hook = await register(pole, "cpas-seraing", url)

    for method, path, body in [
        ("POST", "/v1/webhooks", {"url": url}),
        ("GET", "/v1/webhooks", None),
        ("GET", f"/v1/webhooks/{hook['id']}/deliveries", None),
        ("POST", f"/v1/webhooks/{hook['id']}/secret", None),
        ("POST", f"/v1/webhooks/{hook['id']}/renew", {}),
        ("DELETE", f"/v1/webhooks/{hook['id']}", None),
    ]:
        refused = await cpas.request(method, path, json=body)
        assert refused.status_code == 403, (method, path, refused.text)
        assert refused.headers["content-type"] == "application/problem+json"
    listed = (await cpas.get("/v1/webhooks", headers=manager(pole, "cpas-seraing"))).json()
    assert [h["id"] for h in listed] == [hook["id"]], "nothing was registered nor deleted without the scope"


async def test_destinations_that_are_not_public_https_are_refused_without_saying_why(
    pole: Pole, tmp_path: Path
) -> None:
    certs = make_certificates(tmp_path / "certs")
    allowed = bound_socket()
    port = port_of(allowed)
    resolver = TableResolver(
        {
            "intranet.partner.test": ["10.1.2.3"],
            "localhost": ["127.0.0.1"],
            "mixed.partner.test": [PUBLIC, "192.168.1.20"],
            "partner.test": [PUBLIC],
        }
    )
    await start(pole, tmp_path, webhooks_table(certs, allowed), resolver=resolver)
    cpas, headers = pole["cpas-seraing"], manager(pole, "cpas-seraing")

    async def refused(url: str) -> str:
        response = await cpas.post("/v1/webhooks", json={"url": url}, headers=headers)
        assert response.status_code == 422, (url, response.text)
        body = response.json()
        assert body["type"] == DESTINATION_PROBLEM, (url, body)
        return str(body["detail"])

    cleartext = await refused(f"http://127.0.0.1:{port}/hook")  # even allow-listed: never in clear
    assert "https" in cleartext
    for url in ("https://user:secret@partner.test/hook", "https://token@partner.test/hook"):
        assert "credentials" in await refused(url)

    not_public = [
        "https://127.0.0.1/hook",
        "https://localhost/hook",
        "https://localhost./hook",
        "https://[::1]/hook",
        "https://10.0.0.1/",
        "https://172.16.0.1/",
        "https://192.168.1.1/",
        "https://100.64.0.1/",
        "https://169.254.169.254/latest/meta-data/",
        "https://[fe80::1]/",
        "https://[fd00::1]/",
        "https://0.0.0.0/",
        "https://[::]/",
        "https://224.0.0.1/",
        "https://198.18.0.1/",
        "https://240.0.0.1/",
        # the same places in other notations
        "https://2130706433/",
        "https://0x7f.1/",
        "https://127.1/",
        "https://0177.0.0.1/",
        "https://0x7f000001/",
        "https://0/",
        "https://[::ffff:127.0.0.1]/",
        "https://[::ffff:169.254.169.254]/",
        "https://[0:0:0:0:0:ffff:7f00:1]/",
        "https://[::127.0.0.1]/",
        "https://[64:ff9b::a9fe:a9fe]/",
        "https://[2002:7f00:1::]/",
        "https://%31%32%37.0.0.1/",
        # names: one leading inside, one with an inside address among public ones, one the resolver does not know
        "https://intranet.partner.test/",
        "https://mixed.partner.test/",
        "https://nowhere.partner.test/",
        # the allow-listed address, on another port
        f"https://127.0.0.1:{port + 1 if port < 65535 else port - 1}/hook",
    ]
    details = {url: await refused(url) for url in not_public}
    assert len(set(details.values())) == 1, "one answer for every reason: it tells nothing of the network"
    detail = next(iter(details.values()))
    for hint in ("10.1.2.3", "192.168", "127.0.0.1", "loopback", "private", "resolve", "listen", "connect"):
        assert hint not in detail

    french = await cpas.post(
        "/v1/webhooks", json={"url": "https://10.0.0.1/"}, headers={**headers, "Accept-Language": "fr"}
    )
    assert french.json()["title"] == "Cette destination de webhook n'est pas acceptée"
    assert (await cpas.get("/v1/webhooks", headers=headers)).json() == [], "none of them was registered"
    assert (await cpas.post("/v1/webhooks", json={"url": "ftp://example"}, headers=headers)).status_code == 422
    await register(pole, "cpas-seraing", "https://partner.test/hook")  # a public one is accepted (never called)


async def test_a_name_rebound_to_loopback_after_registration_is_never_connected_to(pole: Pole, tmp_path: Path) -> None:
    certs = make_certificates(tmp_path / "certs")
    listener, control = RawReceiver(certs), Receiver()
    sock, control_sock = bound_socket(), bound_socket()
    resolver = TableResolver({"partner.test": [PUBLIC]})
    # 127.0.0.1 on that port is allow-listed, but as a literal: a name that resolves there is not
    await start(pole, tmp_path, webhooks_table(certs, sock, control_sock), resolver=resolver)
    async with serve_raw(listener, sock), serve_https(control, certs, control_sock) as control_url:
        rebound = await register(pole, "cpas-seraing", f"https://partner.test:{port_of(sock)}/hook")
        allowed = await register(pole, "cpas-seraing", control_url)
        control.secret = allowed["secret"]
        resolver.table["partner.test"] = ["127.0.0.1"]  # the DNS answer changes after the check

        event_id = await send_referral(pole)
        await delivered(pole, allowed["id"], event_id)
        [delivery] = await attempted(pole, rebound["id"])

    assert delivery["event_id"] == event_id
    assert [(a["outcome"], a["status_code"]) for a in delivery["attempts"]] == [("failed", None)]
    assert listener.connections == [], "no connection was ever opened to the rebound address"


async def test_webhooks_are_listed_rotated_and_deleted(pole: Pole, tmp_path: Path) -> None:
    certs = make_certificates(tmp_path / "certs")
    kept, deleted = Receiver(), Receiver()
    kept_sock, deleted_sock = bound_socket(), bound_socket()
    await start(pole, tmp_path, webhooks_table(certs, kept_sock, deleted_sock))
    cpas, headers = pole["cpas-seraing"], manager(pole, "cpas-seraing")
    async with (
        serve_https(kept, certs, kept_sock) as kept_url,
        serve_https(deleted, certs, deleted_sock) as deleted_url,
    ):
        before = datetime.now(UTC)
        first = await register(pole, "cpas-seraing", kept_url, lifetime_seconds=10**9)  # asks for 31 years
        second = await register(pole, "cpas-seraing", deleted_url)
        listed = (await cpas.get("/v1/webhooks", headers=headers)).json()
        assert [h["id"] for h in listed] == [first["id"], second["id"]]
        assert all("secret" not in h for h in listed), "a secret is shown once, at registration"
        caller = verify_token(
            headers["Authorization"].removeprefix("Bearer "),
            keys=pole.trust("cpas-seraing").public,
            audience=agency_audience("cpas-seraing"),
        )
        assert {h["registered_by"] for h in listed} == {staff_ref(caller)}
        for hook in listed:
            expires = datetime.fromisoformat(hook["expires_at"])
            assert not hook["expired"] and expires <= before + timedelta(days=30, minutes=1), "capped at 30 days"

        rotated = (await cpas.post(f"/v1/webhooks/{first['id']}/secret", headers=headers)).json()
        assert rotated["id"] == first["id"] and rotated["secret"] not in (first["secret"], second["secret"])
        kept.secret, deleted.secret = rotated["secret"], second["secret"]
        event_id = await send_referral(pole)
        await delivered(pole, first["id"], event_id)
        await delivered(pole, second["id"], event_id)
        body, header = kept.accepted[0], kept.signatures[0]
        assert verify_signature(rotated["secret"], header, body, now=int(time.time()))
        assert not verify_signature(first["secret"], header, body, now=int(time.time())), "the old secret is gone"

        gone = await cpas.delete(f"/v1/webhooks/{second['id']}", headers=headers)
        assert gone.status_code == 204
        assert [h["id"] for h in (await cpas.get("/v1/webhooks", headers=headers)).json()] == [first["id"]]
        assert (await cpas.get(f"/v1/webhooks/{second['id']}/deliveries", headers=headers)).status_code == 404
        assert (await cpas.delete(f"/v1/webhooks/{second['id']}", headers=headers)).status_code == 404

        later = await send_referral(pole)
        await delivered(pole, first["id"], later)  # enqueued in the same transaction as for every live webhook
    assert len(kept.accepted) == 2 and len(deleted.attempts) == 1, "the deleted webhook got nothing more"


async def test_an_expired_webhook_receives_nothing_until_renewed(pole: Pole, tmp_path: Path) -> None:
    certs = make_certificates(tmp_path / "certs")
    short, control = Receiver(), Receiver()
    short_sock, control_sock = bound_socket(), bound_socket()
    await start(pole, tmp_path, webhooks_table(certs, short_sock, control_sock))
    cpas, headers = pole["cpas-seraing"], manager(pole, "cpas-seraing")
    async with (
        serve_https(short, certs, short_sock) as short_url,
        serve_https(control, certs, control_sock) as control_url,
    ):
        brief = await register(pole, "cpas-seraing", short_url, lifetime_seconds=1)
        short.secret = brief["secret"]
        control.secret = (await register(pole, "cpas-seraing", control_url))["secret"]
        control_id = next(
            h["id"] for h in (await cpas.get("/v1/webhooks", headers=headers)).json() if h["id"] != brief["id"]
        )

        async def expired() -> bool:
            listed = (await cpas.get("/v1/webhooks", headers=headers)).json()
            return any(h["id"] == brief["id"] and h["expired"] for h in listed)

        await eventually(expired, what="the one-second webhook to expire")

        event_id = await send_referral(pole)
        await delivered(pole, control_id, event_id)  # the same transaction would have queued the expired one's
        assert await deliveries(pole, "cpas-seraing", brief["id"]) == []
        assert short.attempts == []

        renewed = (await cpas.post(f"/v1/webhooks/{brief['id']}/renew", json={}, headers=headers)).json()
        assert not renewed["expired"]
        again = await send_referral(pole)
        await delivered(pole, brief["id"], again)
    assert len(short.accepted) == 1 and again.encode() in short.accepted[0]


async def test_the_delivery_log_never_tells_why_a_connection_failed(pole: Pole, tmp_path: Path) -> None:
    certs, strangers = make_certificates(tmp_path / "certs"), make_certificates(tmp_path / "other")  # a CA of its own
    closed, silent_sock, untrusted_sock = bound_socket(), bound_socket(), bound_socket()  # `closed` never listens
    silent, untrusted = RawReceiver(certs, silent=True), RawReceiver(strangers)
    await start(
        pole,
        tmp_path,
        webhooks_table(certs, closed, silent_sock, untrusted_sock),
        webhook_attempt_seconds=1.0,
        webhook_backoff_seconds=60,
    )
    async with serve_raw(silent, silent_sock) as silent_url, serve_raw(untrusted, untrusted_sock) as untrusted_url:
        hooks = [
            await register(pole, "cpas-seraing", url)
            for url in (f"https://127.0.0.1:{port_of(closed)}/hook", silent_url, untrusted_url)
        ]
        await send_referral(pole)
        logs = [await attempted(pole, hook["id"]) for hook in hooks]
    assert silent.connections and untrusted.connections, "the listening ones were reached"
    shapes = [[{k: v for k, v in a.items() if k != "at"} for a in log[0]["attempts"]] for log in logs]
    assert shapes == [[{"attempt": 1, "outcome": "failed", "status_code": None}]] * 3, (
        "refused, no answer and a bad certificate look the same"
    )
    text = str(logs)
    for telltale in ("Error", "Timeout", "refused", "certificate", "SSL", "reset"):
        assert telltale not in text


async def test_a_trickling_receiver_delays_only_its_own_webhook(pole: Pole, tmp_path: Path) -> None:
    deadline = 6.0
    certs = make_certificates(tmp_path / "certs")
    slow, fast = RawReceiver(certs, trickle=0.5), Receiver()  # one byte every half second: 30 s for a response
    slow_sock, fast_sock = bound_socket(), bound_socket()
    await start(
        pole,
        tmp_path,
        webhooks_table(certs, slow_sock, fast_sock),
        webhook_attempt_seconds=deadline,
        webhook_backoff_seconds=60,
    )
    async with serve_raw(slow, slow_sock) as slow_url, serve_https(fast, certs, fast_sock) as fast_url:
        slow_hook = await register(pole, "cpas-seraing", slow_url)
        fast_hook = await register(pole, "cpas-seraing", fast_url)
        fast.secret = fast_hook["secret"]
        first = await send_referral(pole)
        await delivered(pole, fast_hook["id"], first)
        await eventually(lambda: _started(slow), what="the slow receiver to start trickling")
        slow_started = slow.connections[0].accepted

        second = await send_referral(pole)  # while the slow receiver still holds its first call
        await delivered(pole, fast_hook["id"], second)
        assert fast.received_at[1] < slow_started + deadline, "the fast webhook did not wait for the slow one"
        assert slow.connections[0].ended is None or fast.received_at[1] < slow.connections[0].ended

        [cut, *_] = await attempted(pole, slow_hook["id"])
    attempt = cut["attempts"][0]
    assert (cut["event_id"], attempt["outcome"], attempt["status_code"]) == (first, "failed", None)
    held = datetime.fromisoformat(attempt["at"]).replace(tzinfo=UTC) - slow.connections[0].accepted_at
    assert deadline - 0.5 <= held.total_seconds() < deadline + 3, "cut at the deadline, not waited out"


async def _started(receiver: RawReceiver) -> bool:
    return bool(receiver.connections)


async def test_unknown_webhook_has_no_deliveries(pole: Pole, tmp_path: Path) -> None:
    await pole.start_gateway()
    cpas = await pole.start_agency("cpas-seraing")
    response = await cpas.get("/v1/webhooks/nope/deliveries", headers=manager(pole, "cpas-seraing"))
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


async def test_a_lifetime_beyond_the_maximum_is_cut_to_it_whatever_its_size(pole: Pole, tmp_path: Path) -> None:
    certs, sock = make_certificates(tmp_path / "certs"), bound_socket()
    await start(pole, tmp_path, webhooks_table(certs, sock))
    async with serve_https(Receiver(), certs, sock) as url:
        before = datetime.now(UTC)
        hook = await register(pole, "cpas-seraing", url, lifetime_seconds=10**15)  # overflowed a timedelta

    expires = datetime.fromisoformat(hook["expires_at"])
    assert before + timedelta(days=30) <= expires <= datetime.now(UTC) + timedelta(days=30)
