"""A failure a partner cannot fix — the database away, a bug — answers a 503 problem that says when to retry."""

from __future__ import annotations

import httpx
import pytest
import sqlalchemy.exc
from aiokafka.errors import KafkaConnectionError
from fastapi import FastAPI

from maillage.core.web.http import install_common
from maillage.core.web.problems import PROBLEM_JSON, RETRY_AFTER_SECONDS, install_problem_handlers
from maillage.domain.errors import NotReady

pytestmark = pytest.mark.unit


def failing_app() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)

    @app.post("/v1/referrals")
    async def refer() -> None:
        raise ConnectionResetError("the database went away mid-transaction")

    @app.get("/readyz")
    async def ready() -> None:
        raise NotReady("Kafka or the database is not reachable yet.")

    return app


async def test_an_unexpected_failure_is_a_503_problem_with_retry_after_never_a_500() -> None:
    transport = httpx.ASGITransport(app=failing_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        answer = await client.post("/v1/referrals", json={})

    assert answer.status_code == 503
    assert answer.headers["content-type"] == PROBLEM_JSON
    assert answer.headers["retry-after"] == str(RETRY_AFTER_SECONDS)
    assert answer.json()["detail"] == "Temporarily unavailable; retry with the same Idempotency-Key."
    assert "database" not in answer.text  # what failed inside stays inside


async def test_not_ready_says_when_to_ask_again() -> None:
    transport = httpx.ASGITransport(app=failing_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        answer = await client.get("/readyz")

    assert answer.status_code == 503
    assert answer.headers["retry-after"] == str(RETRY_AFTER_SECONDS)


async def test_a_database_gone_is_answered_by_the_app_itself_not_raised_to_the_server() -> None:
    """Raised past the app, the server would drop the connection after the 503 (seen in `maillage chaos`'s
    PostgreSQL restart: partners got no answer at all); answered by the app, the connection stays usable."""
    transport = httpx.ASGITransport(app=failing_app())  # raises whatever escapes the app
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        answer = await client.post("/v1/referrals", json={})

    assert answer.status_code == 503
    assert answer.headers["retry-after"] == str(RETRY_AFTER_SECONDS)


@pytest.mark.parametrize(
    "failure",
    [
        sqlalchemy.exc.TimeoutError("QueuePool limit of size 5 overflow 10 reached"),  # the pool exhausted
        KafkaConnectionError("no broker answers"),
        RuntimeError("a bug"),
    ],
    ids=["pool-exhausted", "kafka-away", "bug"],
)
async def test_any_failure_a_handler_lets_escape_is_answered_by_the_service_itself(failure: Exception) -> None:
    """Nothing reaches the server raised (which would close a partner's keep-alive connection): a 503 problem
    with Retry-After and the usual security headers, whatever escaped the handler."""
    app = FastAPI()
    install_common(app, max_body_bytes=1024, audience="agency:test", scrape_token="scrape")

    @app.post("/v1/referrals")
    async def refer() -> None:
        raise failure

    transport = httpx.ASGITransport(app=app)  # raises whatever escapes the app
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        answer = await client.post("/v1/referrals", json={})

    assert answer.status_code == 503
    assert answer.headers["content-type"] == PROBLEM_JSON
    assert answer.headers["retry-after"] == str(RETRY_AFTER_SECONDS)
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert str(failure) not in answer.text
