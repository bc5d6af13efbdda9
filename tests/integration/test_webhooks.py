"""Webhooks: a partner system's receiver gets each arrival, signed; failures are retried and every attempt shows."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from maillage.core.envelope import new_subject_ref
from maillage.core.kafka_local import free_port
from maillage.core.webhooks import SIGNATURE_HEADER, verify_signature
from tests.support import Pole, consent, eventually, refer

pytestmark = pytest.mark.integration


@dataclass
class Receiver:
    """A partner system's endpoint that verifies every signature and fails the first `failures` attempts."""

    secret: str = ""
    failures: int = 2
    attempts: list[tuple[int, bool]] = field(default_factory=list)  # (status answered, signature valid)
    accepted: list[bytes] = field(default_factory=list)

    async def endpoint(self, request: Request) -> Response:
        body = await request.body()
        valid = verify_signature(self.secret, request.headers.get(SIGNATURE_HEADER, ""), body,
                                 now=int(time.time()))
        status = 503 if len(self.attempts) < self.failures else (200 if valid else 401)
        self.attempts.append((status, valid))
        if status == 200:
            self.accepted.append(body)
        return Response(status_code=status)


@asynccontextmanager
async def serve(receiver: Receiver) -> AsyncIterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(Starlette(routes=[Route("/hook", receiver.endpoint, methods=["POST"])]),
                                           host="127.0.0.1", port=port, log_config=None))
    task = asyncio.create_task(server.serve())
    await eventually(lambda: asyncio.sleep(0, server.started), what="the receiver to listen")
    try:
        yield f"http://127.0.0.1:{port}/hook"
    finally:
        server.should_exit = True
        await task


async def test_webhook_delivery_is_signed_retried_with_backoff_and_traced(pole: Pole) -> None:
    receiver = Receiver()
    await pole.start_gateway()
    await pole.start_agency("refuge-liege")
    cpas = await pole.start_agency("cpas-seraing", webhook_backoff_seconds=0.2)
    async with serve(receiver) as url:
        created = await cpas.post("/v1/webhooks", json={"url": url})
        assert created.status_code == 201, created.text
        hook = created.json()
        receiver.secret = hook["secret"]
        subject = new_subject_ref()
        await consent(pole, "refuge-liege", subject, to=["cpas-seraing"], categories=["identity"])

        event_id = await refer(pole, "refuge-liege", subject, to="cpas-seraing")

        async def delivered() -> list | None:  # type: ignore[type-arg]
            deliveries = (await cpas.get(f"/v1/webhooks/{hook['id']}/deliveries")).json()
            return deliveries if deliveries and deliveries[0]["state"] == "delivered" else None
        [delivery] = await eventually(delivered, timeout=30, what="the webhook delivery")

    assert delivery["event_id"] == event_id
    assert [a["status_code"] for a in delivery["attempts"]] == [503, 503, 200]
    assert [a["attempt"] for a in delivery["attempts"]] == [1, 2, 3]
    first, second, third = (datetime.fromisoformat(a["at"]) for a in delivery["attempts"])
    assert (second - first).total_seconds() >= 0.2, "the first retry waits the base delay"
    assert (third - second).total_seconds() >= 0.4, "the next one waits twice as long"
    assert all(valid for _, valid in receiver.attempts), "every attempt carries a valid signature"
    assert b'"event_id":"' + event_id.encode() in receiver.accepted[0]


async def test_unknown_webhook_has_no_deliveries(pole: Pole) -> None:
    await pole.start_gateway()
    cpas = await pole.start_agency("cpas-seraing")
    response = await cpas.get("/v1/webhooks/nope/deliveries")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    refused = await cpas.post("/v1/webhooks", json={"url": "ftp://example"})
    assert refused.status_code == 422
