"""What the monitor reads: the gateway's audit records, status reports, on-call reports and every dead letter.

Each record is reduced to the fields an operator may see before it goes further: the subject, the
categories' names and any value of a dead letter never reach the monitor's database.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import orjson

from maillage.core.messaging.bus import Record, header
from maillage.core.messaging.envelope import SOURCE_PREFIX
from maillage.core.messaging.topics import DISPATCHER, Topics
from maillage.domain.audit import COUNTED_FIELDS
from maillage.domain.status import OncallReport, StatusReport
from maillage.monitor import services
from maillage.monitor.contracts import AuditLine, DeadLetterSeen
from maillage.monitor.services import NOT_UNDERSTOOD, Fact, MonitorContext

log = logging.getLogger(__name__)
COUNTED = ("pole", *sorted(COUNTED_FIELDS))  # what the Pôles' figures count, when the record has it


class MonitorHandlers:
    def __init__(self, ctx: MonitorContext) -> None:
        self.ctx = ctx

    async def handle(self, records: list[Record]) -> None:
        await services.take_in(self.ctx, [fact for r in records if (fact := self._read(r)) is not None])

    def _read(self, record: Record) -> Fact | None:
        try:
            return self._decode(record)
        except NOT_UNDERSTOOD as exc:
            # A record the monitor cannot read is counted, never fatal: it only watches.
            log.warning(
                "record not understood",
                extra={"topic": record.topic, "offset": record.offset, "error": type(exc).__name__},
            )
            return None

    def _decode(self, record: Record) -> Fact:
        topics = self.ctx.topics
        if record.topic == topics.audit:
            return _audit_line(record)
        if record.topic == topics.oncall:
            return OncallReport.model_validate_json(record.value or b"")
        if topics.writer_of_dead_letters(record.topic) is not None:
            return _dead_letter(record, topics)
        return StatusReport.model_validate_json(record.value or b"")


def _audit_line(record: Record) -> AuditLine:
    raw: dict[str, Any] = orjson.loads(record.value or b"")
    return AuditLine(
        chain=int(raw.get("chain", 0)),
        seq=int(raw["seq"]),
        event_id=str(raw["event_id"]),
        event_type=str(raw["event_type"]),
        source=str(raw["source"]),
        recipient=str(raw["recipient"]),
        sector=str(raw["sector"]),
        legal_basis=str(raw["legal_basis"]),
        outcome=str(raw["outcome"]),
        removed=len(raw.get("removed") or {}),
        review=bool(raw.get("review")),
        alert_id=raw.get("alert_id"),
        decision=raw.get("decision"),
        recorded_at=datetime.fromisoformat(raw["recorded_at"]),
        **_notice_fields(raw.get("notice")),
        **{name: raw[name] for name in COUNTED if raw.get(name) is not None},
    )


def _notice_fields(notice: Any) -> dict[str, Any]:
    if not isinstance(notice, dict) or "id" not in notice:
        return {}
    return {"notice_id": str(notice["id"]), "notice_kind": notice.get("kind"), "holder": notice.get("holder")}


def _dead_letter(record: Record, topics: Topics) -> DeadLetterSeen:
    headers = list(record.headers)

    def read(name: str) -> str | None:
        return header(headers, name)

    partition, offset, source = read("dlq_partition"), read("dlq_offset"), read("ce_source")
    return DeadLetterSeen(
        dlq_topic=record.topic,
        dlq_partition=record.partition,
        dlq_offset=record.offset,
        reason=read("dlq_reason") or "unknown",
        detail=(read("dlq_detail") or "")[:300],
        service=_service_of(record.topic, topics),
        topic=read("dlq_topic") or "?",
        partition=int(partition) if partition and partition.isdigit() else None,
        offset=int(offset) if offset and offset.isdigit() else None,
        event_id=read("ce_id"),
        event_type=read("ce_type"),
        source=source.removeprefix(SOURCE_PREFIX) if source and source.startswith(SOURCE_PREFIX) else None,
        at=datetime.fromtimestamp(record.timestamp / 1000, UTC),
    )


def _service_of(dlq_topic: str, topics: Topics) -> str:
    """Who refused the record: the writer of the dead-letter topic it lies on (only that writer's principal
    may write there), never what the record's headers claim."""
    writer = topics.writer_of_dead_letters(dlq_topic) or "unknown"
    return writer if writer in ("gateway", DISPATCHER) else f"agency:{writer}"
