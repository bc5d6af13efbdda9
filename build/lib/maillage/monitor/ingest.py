"""What the monitor reads: the gateway's audit records, status reports and every dead letter — metadata only.

Each record is reduced to the fields an operator may see before it is stored: the subject, the
categories' names and any value of a dead letter never reach the monitor's database.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import ConsumerRecord
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from maillage.core.messaging.bus import header
from maillage.core.messaging.envelope import SOURCE_PREFIX
from maillage.core.messaging.topics import DISPATCHER, Topics
from maillage.core.storage.db import unit_of_work
from maillage.domain.status import OncallReport, StatusReport
from maillage.monitor.models import DeadLetter, Decision, OncallOutcome, Rejection, Review

log = logging.getLogger(__name__)
Record = ConsumerRecord[bytes, bytes]


def _when(record: Record) -> datetime:
    return datetime.fromtimestamp(record.timestamp / 1000, UTC)


class Ingest:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], topics: Topics) -> None:
        self.sessions = sessions
        self.topics = topics

    async def handle(self, records: list[Record]) -> None:
        async with unit_of_work(self.sessions) as session:
            for record in records:
                try:
                    if record.topic == self.topics.audit:
                        await self._audit(session, record)
                    elif record.topic == self.topics.oncall:
                        await self._oncall(session, OncallReport.model_validate_json(record.value or b""))
                    elif self.topics.writer_of_dead_letters(record.topic) is not None:
                        await self._dead_letter(session, record)
                    else:
                        await self._status(session, record)
                except (orjson.JSONDecodeError, ValidationError, KeyError, TypeError, ValueError) as exc:
                    # A record the monitor cannot read is counted, never fatal: it only watches.
                    log.warning(
                        "record not understood",
                        extra={"topic": record.topic, "offset": record.offset, "error": type(exc).__name__},
                    )

    async def _audit(self, session: AsyncSession, record: Record) -> None:
        raw: dict[str, Any] = orjson.loads(record.value or b"")
        seq = int(raw["seq"])
        if await session.get(Decision, seq) is not None:
            return  # redelivered
        recorded_at = datetime.fromisoformat(raw["recorded_at"])
        session.add(
            Decision(
                seq=seq,
                event_id=str(raw["event_id"]),
                event_type=str(raw["event_type"]),
                source=str(raw["source"]),
                recipient=str(raw["recipient"]),
                sector=str(raw["sector"]),
                legal_basis=str(raw["legal_basis"]),
                outcome=str(raw["outcome"]),
                removed=len(raw.get("removed") or {}),
                review=bool(raw.get("review")),
                recorded_at=recorded_at,
            )
        )
        if raw.get("review"):
            session.add(
                Review(
                    event_id=str(raw["event_id"]),
                    recipient=str(raw["recipient"]),
                    sector=str(raw["sector"]),
                    source=str(raw["source"]),
                    raised_by=raw.get("raised_by"),
                    recorded_at=recorded_at,
                )
            )

    async def _status(self, session: AsyncSession, record: Record) -> None:
        report = StatusReport.model_validate_json(record.value or b"")
        rejected = next((line for line in report.recipients if line.outcome == "rejected"), None)
        if rejected is not None and await session.get(Rejection, report.event_id) is None:
            session.add(
                Rejection(
                    event_id=report.event_id,
                    source=report.source,
                    event_type=report.type,
                    reason=rejected.reason,
                    at=report.decided_at,
                )
            )

    async def _oncall(self, session: AsyncSession, report: OncallReport) -> None:
        row = (
            await session.exec(
                select(OncallOutcome).where(
                    OncallOutcome.agency == report.agency, OncallOutcome.alert_id == report.alert_id
                )
            )
        ).first()
        if row is None:
            row = OncallOutcome(
                agency=report.agency,
                alert_id=report.alert_id,
                severity=report.severity,
                state=report.state,
                levels_paged=report.levels_paged,
                received_at=report.received_at,
                updated_at=report.at,
            )
        elif row.state == "acknowledged" or row.updated_at > report.at:
            return  # acknowledged is final; an older report changes nothing
        row.state, row.levels_paged, row.updated_at = report.state, report.levels_paged, report.at
        if report.state == "acknowledged":
            row.acknowledged_after_s = (report.at - report.received_at).total_seconds()
        session.add(row)

    async def _dead_letter(self, session: AsyncSession, record: Record) -> None:
        found = await session.exec(
            select(DeadLetter.id).where(
                DeadLetter.dlq_topic == record.topic,
                DeadLetter.dlq_partition == record.partition,
                DeadLetter.dlq_offset == record.offset,
            )
        )
        if found.first() is not None:
            return
        headers = list(record.headers)

        def read(name: str) -> str | None:
            return header(headers, name)

        topic = read("dlq_topic") or "?"
        partition, offset = read("dlq_partition"), read("dlq_offset")
        source = read("ce_source")
        session.add(
            DeadLetter(
                dlq_topic=record.topic,
                dlq_partition=record.partition,
                dlq_offset=record.offset,
                reason=read("dlq_reason") or "unknown",
                detail=(read("dlq_detail") or "")[:300],
                service=_service_of(record.topic, self.topics),
                topic=topic,
                partition=int(partition) if partition and partition.isdigit() else None,
                offset=int(offset) if offset and offset.isdigit() else None,
                event_id=read("ce_id"),
                event_type=read("ce_type"),
                source=source.removeprefix(SOURCE_PREFIX) if source and source.startswith(SOURCE_PREFIX) else None,
                at=_when(record),
            )
        )


def _service_of(dlq_topic: str, topics: Topics) -> str:
    """Who refused the record: the writer of the dead-letter topic it lies on (only that writer's principal
    may write there), never what the record's headers claim."""
    writer = topics.writer_of_dead_letters(dlq_topic) or "unknown"
    return writer if writer in ("gateway", DISPATCHER) else f"agency:{writer}"
