"""On-call workers sign in with their agency's invitation and stay signed in for a shift — by a cookie that is
never readable by the page, replaced at every refresh, and ended by the agency whenever it wants — on a real
broker, the real gateway and agencies, the dispatcher on a real port."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner, Result
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from maillage.cli.main import app as cli
from maillage.core.clock import ManualClock
from maillage.core.sessions.service import ROTATION_GRACE, SignInSessions
from maillage.dispatcher.app import COOKIE
from tests.oncall import LEVEL_1, POLICE, WEDNESDAY_10H, Running, Socket, dispatcher, start_pole, worker_token
from tests.support import Pole, assert_problem

pytestmark = pytest.mark.integration


async def run_cli(*args: str) -> Result:
    return await asyncio.to_thread(CliRunner().invoke, cli, list(args), env={"COLUMNS": "400"})


async def invitation(pole: Pole, running: Running, worker: str) -> str:
    """`maillage workers invite`: the link the agency sends the worker; its code."""
    made = await run_cli(
        "workers", "invite", "--agency", POLICE, "--worker", worker, "--dispatcher", running.url,
        "--network", str(pole.network_file), "--data-dir", str(pole.data_dir),
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    link = "".join(made.output.split())
    assert link.startswith(f"{running.url}/oncall#invitation="), link
    return link.split("#invitation=", 1)[1]


def sessions_of(running: Running) -> SignInSessions:
    sessions: SignInSessions = running.app.state.signin_sessions
    return sessions


async def sign_in(client: httpx.AsyncClient, code: str) -> httpx.Response:
    return await client.post("/v1/session", json={"invitation": code})


def cookie_in(response: httpx.Response) -> str:
    [header] = [v for k, v in response.headers.multi_items() if k == "set-cookie"]
    found = re.match(rf"{COOKIE}=([^;]+)", header)
    assert found, header
    return found.group(1)


async def test_a_worker_signs_in_with_an_invitation_once_and_stays_signed_in_by_cookie(
    pole: Pole, tmp_path: Path
) -> None:
    await start_pole(pole, tmp_path)
    async with dispatcher(pole, ManualClock(WEDNESDAY_10H)) as running:
        clock = ManualClock(datetime.now(UTC))
        sessions_of(running).clock = clock
        code = await invitation(pole, running, LEVEL_1[0])
        async with httpx.AsyncClient(base_url=running.url) as browser:
            signed = await sign_in(browser, code)
            assert signed.status_code == 201, signed.text
            header = signed.headers["set-cookie"]
            assert "HttpOnly" in header and "SameSite=strict" in header and "Path=/" in header
            assert "Secure" not in header, "plain HTTP on loopback; Secure behind TLS"
            body = signed.json()
            assert (body["issuer"], body["subject"], body["scopes"]) == (POLICE, LEVEL_1[0], ["alerts:ack"])
            shift = datetime.fromisoformat(body["expires_at"]) - clock.now()
            assert timedelta(hours=11, minutes=59) < shift <= timedelta(hours=12)
            assert code not in signed.text and cookie_in(signed) not in signed.text

            me = await browser.get("/v1/me")
            assert me.status_code == 200 and me.json()["worker"] == LEVEL_1[0]

            again = await sign_in(httpx.AsyncClient(base_url=running.url), code)
            assert "used already" in assert_problem(again, 401)["detail"]
            as_bearer = await browser.get("/v1/me", headers={"Authorization": f"Bearer {code}"})
            assert "no bearer token" in assert_problem(as_bearer, 401)["detail"]
            not_an_invitation = await sign_in(browser, worker_token(pole, LEVEL_1[1]))
            assert "not an invitation" in assert_problem(not_an_invitation, 401)["detail"]

            # The socket is signed in by the cookie at its handshake: no token ever reaches the page.
            cookie = {"Cookie": f"{COOKIE}={browser.cookies[COOKIE]}"}
            async with connect(running.url.replace("http", "ws", 1) + "/v1/ws", additional_headers=cookie) as ws:
                hello = await Socket(ws).next("hello")
                assert hello["worker"] == LEVEL_1[0]

            # Twelve hours on, the shift is over: refreshing kept it alive until then, never beyond.
            first = browser.cookies[COOKIE]
            refreshed = await browser.post("/v1/session/refresh")
            assert refreshed.status_code == 200 and browser.cookies[COOKIE] != first
            clock.advance(timedelta(hours=12))
            assert_problem(await browser.post("/v1/session/refresh"), 401)
            assert_problem(await browser.get("/v1/me"), 401)


async def test_a_cookie_played_again_after_its_rotation_ends_the_session(pole: Pole, tmp_path: Path) -> None:
    await start_pole(pole, tmp_path)
    async with dispatcher(pole, ManualClock(WEDNESDAY_10H)) as running:
        clock = ManualClock(datetime.now(UTC))
        sessions_of(running).clock = clock
        async with httpx.AsyncClient(base_url=running.url) as browser:
            stolen = cookie_in(await sign_in(browser, await invitation(pole, running, LEVEL_1[0])))
            assert (await browser.post("/v1/session/refresh")).status_code == 200
            thief = {"Cookie": f"{COOKIE}={stolen}"}

            # A second tab a moment late still gets in, and is given nothing new.
            late = await browser.post("/v1/session/refresh", headers=thief)
            assert late.status_code == 200 and "set-cookie" not in late.headers
            clock.advance(ROTATION_GRACE + timedelta(seconds=1))
            async with connect(
                running.url.replace("http", "ws", 1) + "/v1/ws",
                additional_headers={"Cookie": f"{COOKIE}={browser.cookies[COOKIE]}"},
            ) as ws:
                worker = Socket(ws)
                await worker.next("hello")
                # Later, the replaced secret played again: someone copied the cookie. The session ends for both.
                assert_problem(await browser.get("/v1/me", headers=thief), 401)
                assert_problem(await browser.get("/v1/me"), 401)
                with pytest.raises(ConnectionClosed) as closed:
                    await worker.next("never", timeout=10)
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


async def test_the_agency_ends_its_workers_sessions_and_a_worker_signs_out(pole: Pole, tmp_path: Path) -> None:
    await start_pole(pole, tmp_path)
    async with (
        dispatcher(pole, ManualClock(WEDNESDAY_10H)) as running,
        httpx.AsyncClient(base_url=running.url) as phone,
        httpx.AsyncClient(base_url=running.url) as desk,
        httpx.AsyncClient(base_url=running.url) as colleague,
    ):
        for client in (phone, desk):
            assert (await sign_in(client, await invitation(pole, running, LEVEL_1[0]))).status_code == 201
        assert (await sign_in(colleague, await invitation(pole, running, LEVEL_1[1]))).status_code == 201

        async with connect(
            running.url.replace("http", "ws", 1) + "/v1/ws",
            additional_headers={"Cookie": f"{COOKIE}={phone.cookies[COOKIE]}"},
        ) as ws:
            worker = Socket(ws)
            await worker.next("hello")
            ended = await run_cli(
                "workers", "revoke", "--agency", POLICE, "--worker", LEVEL_1[0], "--dispatcher", running.url,
                "--network", str(pole.network_file), "--data-dir", str(pole.data_dir),
            )  # fmt: skip
            assert ended.exit_code == 0 and "2 session(s)" in ended.output, ended.output
            with pytest.raises(ConnectionClosed) as closed:
                await worker.next("never", timeout=10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
        for client in (phone, desk):
            assert_problem(await client.get("/v1/me"), 401)
        assert (await colleague.get("/v1/me")).status_code == 200, "another worker's session stays"

        # Only the worker's own agency, with the scope to manage its on-call workers.
        wrong = worker_token(pole, LEVEL_1[1])
        assert_problem(
            await colleague.delete(f"/v1/workers/{LEVEL_1[1]}/sessions", headers={"Authorization": f"Bearer {wrong}"}),
            403,
        )

        out = await colleague.delete("/v1/session")
        assert out.status_code == 204 and COOKIE not in colleague.cookies
        assert_problem(await colleague.get("/v1/me"), 401)


async def test_operators_sign_in_on_the_dashboard_with_an_invitation_of_their_issuer(pole: Pole) -> None:
    from maillage.monitor.app import COOKIE as OPERATOR_COOKIE
    from tests.monitor import monitor

    async with monitor(pole) as running, httpx.AsyncClient(base_url=running.url) as browser:

        async def invite(*extra: str) -> str:
            made = await run_cli(
                "operators", "invite", "--operator", "anne", *extra, "--monitor", running.url,
                "--network", str(pole.network_file), "--data-dir", str(pole.data_dir),
            )  # fmt: skip
            assert made.exit_code == 0, made.output
            return "".join(made.output.split()).split("/dashboard#invitation=", 1)[1]

        signed = await sign_in(browser, await invite())
        assert signed.status_code == 201, signed.text
        assert signed.json()["scopes"] == ["monitor:read"] and OPERATOR_COOKIE in signed.headers["set-cookie"]
        assert (await browser.get("/v1/overview")).status_code == 200
        replay = await browser.post("/v1/dead-letters/1/replay")
        assert "monitor:act" in assert_problem(replay, 403)["detail"], "reading only: no replay"

        # An agency's invitation opens nothing here: operators' powers come from operators.
        agency_made = await run_cli(
            "workers", "invite", "--agency", POLICE, "--worker", "anne", "--dispatcher", running.url,
            "--network", str(pole.network_file), "--data-dir", str(pole.data_dir),
        )  # fmt: skip
        forged = "".join(agency_made.output.split()).split("#invitation=", 1)[1]
        assert_problem(await sign_in(httpx.AsyncClient(base_url=running.url), forged), 401)

        ended = await run_cli(
            "operators", "revoke", "--operator", "anne", "--monitor", running.url,
            "--network", str(pole.network_file), "--data-dir", str(pole.data_dir),
        )  # fmt: skip
        assert ended.exit_code == 0 and "1 session(s)" in ended.output, ended.output
        assert_problem(await browser.get("/v1/overview"), 401)
