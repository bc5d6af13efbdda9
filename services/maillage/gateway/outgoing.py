"""What a batch publishes, in the order it was decided: shares to seal, status reports, audit records, dead letters."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from maillage.core.crypto.trust import Refused
from maillage.core.messaging.bus import Record, dead_letter_headers, dead_letter_id
from maillage.core.messaging.envelope import Envelope, Headers
from maillage.core.messaging.topics import Topics
from maillage.core.observability.metrics import DEAD_LETTERS
from maillage.domain.status import SOURCE_HEADER, status_json

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outgoing:
    """A record ready to publish."""

    topic: str
    key: bytes
    value: bytes
    headers: Headers = field(default_factory=list)


@dataclass(frozen=True)
class Share:
    """A recipient's share of an event, addressed to it: sealed to its key and signed before it leaves."""

    topic: str
    envelope: Envelope
    plaintext: bytes


@dataclass
class Outbound:
    """One batch's records to publish, kept in decision order: per partition, Kafka keeps it too."""

    topics: Topics
    records: list[Outgoing | Share] = field(default_factory=list)

    def share(self, envelope: Envelope, plaintext: bytes) -> None:
        self.records.append(Share(self.topics.deliver(envelope.recipient), envelope, plaintext))

    def status(self, envelope: Envelope, lines: list[dict[str, Any]], *, at: datetime) -> None:
        """Tell the sender what became of its event, recipient by recipient (metadata only): `lines` are
        `recipient_line`'s."""
        source = envelope.agency_id
        value = status_json(
            event_id=envelope.id, source=source, type=envelope.type.value, decided_at=at, recipients=lines
        )
        self.records.append(
            Outgoing(self.topics.status(source), envelope.id.encode(), value, [(SOURCE_HEADER, source.encode())])
        )

    def audit(self, event_id: str, record: Mapping[str, Any]) -> None:
        self.records.append(Outgoing(self.topics.audit, event_id.encode(), orjson.dumps(record)))

    def dead_letter(self, record: Record, refused: Refused) -> None:
        """The record as it came, with why it was refused: nothing is silently dropped."""
        headers = dead_letter_headers(record, reason=refused.reason, detail=refused.detail)
        key = dead_letter_id(record)
        self.records.append(Outgoing(self.topics.dlq, key.encode(), record.value or b"", headers))
        DEAD_LETTERS.labels("gateway", refused.reason).inc()
        log.warning(
            "dead letter", extra={"reason": refused.reason, "partition": record.partition, "offset": record.offset}
        )
