"""Adding records to the outbox, inside the caller's transaction: they leave with its business change."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from maillage.core.messaging.bus import Record, dead_letter_headers, dead_letter_id
from maillage.core.messaging.envelope import Envelope, Headers
from maillage.core.observability.metrics import DEAD_LETTERS
from maillage.core.outbox import repository
from maillage.core.outbox.signing import BatchSigner, row_tag, to_sign

log = logging.getLogger(__name__)


def outbox_row(envelope: Envelope, *, topic: str, signer: BatchSigner) -> dict[str, Any]:
    """An event's row (sealed) to `topic`: one not signed yet is tagged for `signer`, its owner, whose relay signs
    it (`signing.py`)."""
    key, value, headers = envelope.to_kafka()
    tag = row_tag(signer, key=key, value=value, headers=headers) if to_sign(headers) else None
    return repository.new_row(
        event_id=envelope.id, topic=topic, key=key, value=value, headers=headers, at=datetime.now(UTC), tag=tag
    )


async def enqueue(session: AsyncSession, envelope: Envelope, *, topic: str, signer: BatchSigner) -> None:
    """An event (sealed) to `topic` (`outbox_row`)."""
    await repository.add(session, outbox_row(envelope, topic=topic, signer=signer))


async def enqueue_record(
    session: AsyncSession, *, event_id: str, topic: str, key: bytes, value: bytes, headers: Headers
) -> None:
    """A plain record (metadata only, no envelope)."""
    row = repository.new_row(
        event_id=event_id, topic=topic, key=key, value=value, headers=headers, at=datetime.now(UTC)
    )
    await repository.add(session, row)


async def enqueue_dead_letter(
    session: AsyncSession, record: Record, *, topic: str, service: str, reason: str, detail: str
) -> None:
    """A record this service could not read, to its dead-letter `topic` with the reason, in the caller's
    transaction: it leaves with the batch's other effects, and is lost with none of them."""
    headers = dead_letter_headers(record, reason=reason, detail=detail)
    key = dead_letter_id(record)
    await enqueue_record(
        session, event_id=key, topic=topic, key=record.key or key.encode(), value=record.value or b"", headers=headers
    )
    DEAD_LETTERS.labels(service, reason).inc()
    log.warning("dead letter", extra={"reason": reason, "topic": record.topic, "offset": record.offset})
