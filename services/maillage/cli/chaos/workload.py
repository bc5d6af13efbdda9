"""The traffic of a chaos run, all over the agencies' HTTP API: a partner system posting referrals on an open-loop
schedule, the recipient reading its inbox, the sender reading what became of each event."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
import orjson

from maillage.cli.bench.fixtures import Subject, consent_body, make_subjects, referral_body
from maillage.cli.bench.load import KeepAliveClient
from maillage.cli.chaos.checks import Answer
from maillage.core.web.problems import PROBLEM_JSON

# A POST that has not answered in this time is a hang, counted as such rather than waited for.
POST_TIMEOUT = 30.0


def agency_client(url: str, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=url,
        headers={"authorization": f"Bearer {token}"},
        timeout=POST_TIMEOUT,
        # Below uvicorn's keep-alive (5 s): a connection the server is closing is never picked for a request.
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=50, keepalive_expiry=2.0),
    )


@dataclass
class Partner:
    """The sender's case-management system: referrals about people whose consent it registered first.

    `client` reads (consents, fates); `poster` sends the load: httpx's pool scans every connection for every
    request, so once a stalled service has a few hundred POSTs in flight the load generator itself stalls (seen:
    minutes without a request sent), while the bench's lean keep-alive client does not."""

    client: httpx.AsyncClient
    recipient: str
    rng: random.Random
    poster: KeepAliveClient | None = None
    subjects: list[Subject] = field(default_factory=list)

    async def register_consents(self, count: int, *, timeout: float) -> None:
        self.subjects = make_subjects(count, self.rng)
        ids = []
        for subject in self.subjects:
            response = await self.client.post("/v1/consents", json=consent_body(subject, recipient=self.recipient))
            response.raise_for_status()
            ids.append(str(response.json()["event_id"]))
        fates = await read_fates(self.client, ids, timeout=timeout)
        if sum(state == "decided" for state in fates.values()) < len(ids):
            raise RuntimeError(f"the gateway did not record the consents within {timeout:.0f}s")

    async def refer(self) -> Answer:
        assert self.poster is not None
        body = orjson.dumps(referral_body(self.rng.choice(self.subjects), self.rng, recipient=self.recipient))
        posted_at = datetime.now(UTC)
        try:
            status, head, payload = await asyncio.wait_for(self.poster.exchange("/v1/referrals", body), POST_TIMEOUT)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError, IndexError) as exc:
            return Answer(posted_at=posted_at, status=None, error=type(exc).__name__)
        return Answer(
            posted_at=posted_at,
            status=status,
            event_id=orjson.loads(payload).get("event_id") if status == 202 else None,
            retry_after=b"\r\nretry-after:" in head,
            problem=f"\r\ncontent-type: {PROBLEM_JSON}".encode() in head,
        )

    async def refer_at(self, rate: float, *, count: int) -> list[Answer]:
        """`count` referrals, each at its own scheduled time whatever the earlier answers (an open loop: a Pôle
        that stalls is not spared the requests a real partner would keep sending)."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        tasks = []
        for i in range(count):
            delay = start + i / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(self.refer()))
        return list(await asyncio.gather(*tasks))


@dataclass
class Inbox:
    """The recipient's inbox as its API lists it, read on from where the last read stopped."""

    client: httpx.AsyncClient
    items: list[tuple[str, datetime]] = field(default_factory=list)
    # Where the last, partial page began and how many of its items are already kept: it grows in place.
    _cursor: str | None = None
    _taken: int = 0

    async def read(self) -> list[tuple[str, datetime]]:
        while True:
            params = {"limit": "500", **({"cursor": self._cursor} if self._cursor else {})}
            response = await self.client.get("/v1/inbox", params=params)
            response.raise_for_status()
            page = response.json()
            entries = page["items"]
            self.items += [(e["event_id"], datetime.fromisoformat(e["received_at"])) for e in entries[self._taken :]]
            if page["next_cursor"] is None:
                self._taken = len(entries)
                return self.items
            self._cursor, self._taken = page["next_cursor"], 0

    async def wait_for(self, event_ids: set[str], *, timeout: float) -> bool:
        """Until every one of these is listed, or `timeout`: a bounded wait, whose failure the figures show."""
        deadline = time.monotonic() + timeout
        while True:
            missing = event_ids - {event_id for event_id, _ in await self.read()}
            if not missing:
                return True
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(1.0)


async def read_fates(
    client: httpx.AsyncClient, event_ids: list[str], *, timeout: float, concurrency: int = 16
) -> dict[str, str]:
    """The state the sender shows for each event, read again while `pending` until `timeout`; an event the sender
    cannot show at all is left out. The first round lists every event the sender sent (`GET /v1/events`, 500 a
    page: one `GET /v1/events/{id}` each took minutes for 100,000 events); later rounds list only those still
    pending, and read singly the few that left that list since."""
    wanted = set(event_ids)
    fates: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    gate = asyncio.Semaphore(concurrency)

    async def listed(*, pending: bool) -> set[str] | None:
        """The events of `wanted` on the sender's list (every state noted), or None if a page failed."""
        seen: set[str] = set()
        params: dict[str, str | int] = {"limit": 500} | ({"pending": "true"} if pending else {})
        while True:
            try:
                response = await client.get("/v1/events", params=params)
            except httpx.HTTPError:
                return None
            if response.status_code != 200:
                return None
            page = response.json()
            for item in page["items"]:
                if item["event_id"] in wanted:
                    fates[item["event_id"]] = str(item["state"])
                    seen.add(item["event_id"])
            if not page["next_cursor"]:
                return seen
            params["cursor"] = page["next_cursor"]

    async def one(event_id: str) -> None:
        async with gate:
            try:
                response = await client.get(f"/v1/events/{event_id}")
            except httpx.HTTPError:
                return  # asked again on the next round
        if response.status_code == 200:
            fates[event_id] = str(response.json()["state"])

    everything_listed = False
    while True:
        pending = {i for i in event_ids if fates.get(i, "pending") == "pending"}
        # A round never outlives the deadline, however slowly the sender answers: what it read so far counts.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(1.0, deadline - time.monotonic())):
                if not everything_listed:
                    everything_listed = await listed(pending=False) is not None
                else:
                    still = await listed(pending=True)
                    if still is not None:
                        await asyncio.gather(*(one(i) for i in pending - still))
        if not any(fates.get(i, "pending") == "pending" for i in event_ids) or time.monotonic() > deadline:
            return fates
        await asyncio.sleep(1.0)
