"""The dispatcher's Kafka side: alert deliveries of the agencies it serves, verified and opened with their keys."""

from __future__ import annotations

import logging

import orjson
from aiokafka import AIOKafkaProducer, ConsumerRecord
from pydantic import ValidationError

from maillage.core.crypto.keys import GATEWAY
from maillage.core.crypto.trust import SealError, SignatureError
from maillage.core.messaging.bus import dead_letter_headers
from maillage.core.messaging.envelope import Envelope, EnvelopeError
from maillage.core.messaging.topics import DISPATCHER, Topics
from maillage.core.observability.metrics import DEAD_LETTERS
from maillage.core.storage.db import unit_of_work
from maillage.dispatcher.escalation import Dispatcher, Notices
from maillage.domain.events import AlertRaised, EventType

log = logging.getLogger(__name__)
Record = ConsumerRecord[bytes, bytes]


class DeliveryHandler:
    def __init__(self, dispatcher: Dispatcher, topics: Topics, dlq: AIOKafkaProducer) -> None:
        self.dispatcher = dispatcher
        self.topics = topics
        self.dlq = dlq
        self.agency_of = {topics.deliver(agency): agency for agency in dispatcher.served}

    async def handle(self, records: list[Record]) -> None:
        alerts = [parsed for r in records if (parsed := await self._parse(r)) is not None]
        if not alerts:
            return
        notices = Notices()
        async with unit_of_work(self.dispatcher.sessions) as session:
            for agency, envelope, payload in alerts:
                await self.dispatcher.receive(session, agency, envelope, payload, notices)
        self.dispatcher.committed(notices)

    async def _parse(self, record: Record) -> tuple[str, Envelope, AlertRaised] | None:
        agency = self.agency_of.get(record.topic)
        if agency is None:
            return None
        try:
            envelope = Envelope.from_kafka(key=record.key, value=record.value, headers=list(record.headers))
            if envelope.type is not EventType.ALERT_RAISED:
                return None  # referrals and answers are the agency service's business
            plaintext = self.dispatcher.served[agency].trust.verify_and_open(envelope, signer=GATEWAY)
            return agency, envelope, AlertRaised.model_validate(orjson.loads(plaintext))
        except EnvelopeError as exc:
            await self._dead_letter(record, exc.reason, exc.detail)
        except SignatureError as exc:
            await self._dead_letter(record, "signature", str(exc))
        except SealError as exc:
            await self._dead_letter(record, "sealing", str(exc))
        except (orjson.JSONDecodeError, ValidationError) as exc:
            await self._dead_letter(record, "schema", type(exc).__name__)
        return None

    async def _dead_letter(self, record: Record, reason: str, detail: str) -> None:
        headers = dead_letter_headers(
            reason=reason,
            detail=detail,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            original=list(record.headers),
        )
        await self.dlq.send_and_wait(
            self.topics.dead_letters_of(DISPATCHER), record.value, key=record.key, headers=headers
        )
        DEAD_LETTERS.labels("dispatcher", reason).inc()
        log.warning("dead letter", extra={"reason": reason, "topic": record.topic, "offset": record.offset})
