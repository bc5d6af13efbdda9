"""Test support for the on-call dispatcher: a dispatcher on a real port with a manual clock, workers on sockets."""

from __future__ import annotations

import asyncio
import tomllib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import tomli_w
from websockets.asyncio.client import ClientConnection, connect

from maillage.core.clock import ManualClock
from maillage.core.config.network import load_network
from maillage.core.config.settings import DEFAULT_NETWORK
from maillage.core.crypto.tokens import Scope, mint
from maillage.dispatcher.app import UVICORN_OPTIONS, create_app
from maillage.dispatcher.services import Dispatcher
from maillage.dispatcher.settings import DispatcherSettings
from tests.support import ALL_EIGHT, Pole, Served, eventually, served_when_ready

# A Wednesday, 10:00 in Brussels: the demo police zone's day shift is on call at level 1.
WEDNESDAY_10H = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
POLICE = "zp-meuse"
LEVEL_1 = ("inp-dubois", "inp-martin")  # the day shift
LEVEL_2 = "cp-janssens"
LEVEL_3 = "ca-leclercq"
IMMINENT_DELAY = timedelta(seconds=120)


def oncall_network(
    directory: Path, *, grace: int = 0, fallback_url: str | None = None, webhooks: dict[str, Any] | None = None
) -> Path:
    """The demo network, with the dispatcher's reconnect grace, the police zone's fallback and the [webhooks]
    table (allow-list, CA) set for a test."""
    doc = tomllib.loads(DEFAULT_NETWORK.read_text())
    doc["policy"] = str(load_network(DEFAULT_NETWORK).policy)
    doc["dispatcher"]["reconnect_grace_seconds"] = grace
    if fallback_url is not None:
        doc["oncall"][POLICE]["fallback_url"] = fallback_url
    if webhooks is not None:
        doc["webhooks"] = webhooks
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "network.toml"
    path.write_bytes(tomli_w.dumps(doc).encode())
    return path


async def start_pole(pole: Pole, tmp_path: Path, **network: Any) -> None:
    """The on-call test network, its gateway and the agency that raises alerts (refuge-liege)."""
    pole.network_file = oncall_network(tmp_path / "net", **network)
    await pole.start_gateway()
    await pole.start_agency("refuge-liege")


class Running(Served):
    @property
    def dispatcher(self) -> Dispatcher:
        engine: Dispatcher = self.app.state.dispatcher
        return engine


@asynccontextmanager
async def dispatcher(pole: Pole, clock: ManualClock, **settings: Any) -> AsyncIterator[Running]:
    """The dispatcher as `maillage serve dispatcher` runs it, with `settings` changed for a test."""
    config = DispatcherSettings(**{**pole.common("dispatcher"), **settings})
    async with served_when_ready(create_app(config, clock=clock), settings=config, **UVICORN_OPTIONS) as served:
        yield Running(url=served.url, app=served.app)


def worker_token(
    pole: Pole, worker: str, *, agency: str = POLICE, scopes: tuple[Scope, ...] = (Scope.ALERTS_ACK,)
) -> str:
    """What an on-call worker signs in with: a token of their agency naming them."""
    return mint(pole.trust(agency).own, subject=worker, scopes=scopes)


@dataclass
class Socket:
    """A worker's WebSocket, with every message it got kept in order."""

    ws: ClientConnection
    seen: list[dict[str, Any]] = field(default_factory=list)

    async def next(self, kind: str | None = None, *, timeout: float = 15.0) -> dict[str, Any]:
        """The next message (of this type, skipping others)."""
        async with asyncio.timeout(timeout):
            while True:
                message = orjson.loads(await self.ws.recv())
                self.seen.append(message)
                if kind is None or message["type"] == kind:
                    return message  # type: ignore[no-any-return]

    async def send(self, message: dict[str, Any] | str) -> None:
        await self.ws.send(message if isinstance(message, str) else orjson.dumps(message).decode())

    async def drain(self) -> list[dict[str, Any]]:
        """Every message pushed so far: a ping's pong comes after all of them."""
        await self.send({"type": "ping"})
        before = len(self.seen)
        await self.next("pong")
        return [m for m in self.seen[before:] if m["type"] != "pong"]


@asynccontextmanager
async def socket(running: Running, token: str | None, *, hello: bool = True) -> AsyncIterator[Socket]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with connect(running.url.replace("http", "ws", 1) + "/v1/ws", additional_headers=headers) as ws:
        sock = Socket(ws)
        if hello:
            await sock.next("hello")
        yield sock


async def raise_alert(
    pole: Pole, subject_ref: str, *, severity: str = "imminent", to: str = POLICE, sender: str = "refuge-liege"
) -> str:
    """A victim-support association raises a danger alert (art. 458bis) to the police zone."""
    response = await pole[sender].post(
        "/v1/alerts",
        json={
            "subject_ref": subject_ref,
            "subject_role": "victim",
            "severity": severity,
            "kind": "threat",
            "recipients": [to],
            "legal_basis": "danger",
            "justification": "He announced he would come to the shelter tonight with a knife.",
            "data": {k: ALL_EIGHT[k] for k in ("identity", "location", "risk")},
        },
    )
    assert response.status_code == 202, response.text
    return str(response.json()["event_id"])


async def alert_progress(
    pole: Pole, sender: str, alert_id: str, *, state: str, recipient: str = POLICE
) -> dict[str, Any]:
    """What the sender sees of its alert at `recipient`, once it reaches `state`."""

    async def probe() -> dict[str, Any] | None:
        fate = (await pole[sender].get(f"/v1/events/{alert_id}")).json()
        line = next((r for r in fate.get("recipients", []) if r["recipient"] == recipient), None)
        progress = line and line.get("alert")
        return progress if progress and progress["state"] == state else None

    return await eventually(probe, what=f"the sender to see {alert_id} {state}")
