"""The dispatcher's Kafka side: alert deliveries of the agencies it serves, verified and opened with their keys."""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from maillage.core.crypto.keys import GATEWAY
from maillage.core.crypto.trust import Refused
from maillage.core.messaging.bus import Record
from maillage.core.messaging.envelope import Envelope
from maillage.core.messaging.topics import DISPATCHER, Topics
from maillage.core.outbox.enqueue import enqueue_dead_letter
from maillage.core.storage.db import unit_of_work
from maillage.dispatcher.escalation import Dispatcher, Notices
from maillage.domain.events import AlertRaised, EventType

ALERTS = frozenset({EventType.ALERT_RAISED})  # referrals and answers are the agency service's business


class DeliveryHandler:
    def __init__(self, dispatcher: Dispatcher, topics: Topics) -> None:
        self.dispatcher = dispatcher
        self.topics = topics
        self.agency_of = {topics.deliver(agency): agency for agency in dispatcher.served}

    async def handle(self, records: list[Record]) -> None:
        ours = [(self.agency_of[r.topic], r) for r in records if r.topic in self.agency_of]
        if not ours:
            return
        notices = Notices()
        async with unit_of_work(self.dispatcher.sessions) as session:
            for agency, record in ours:
                alert = self._parse(session, agency, record, notices)
                if alert is not None:
                    await self.dispatcher.receive(session, agency, alert[0], alert[1], notices)
        self.dispatcher.committed(notices)

    def _parse(
        self, session: AsyncSession, agency: str, record: Record, notices: Notices
    ) -> tuple[Envelope, AlertRaised] | None:
        try:
            received = self.dispatcher.served[agency].trust.receive(record, signer=GATEWAY, only=ALERTS)
        except Refused as refused:
            enqueue_dead_letter(
                session,
                record,
                topic=self.topics.dead_letters_of(DISPATCHER),
                service="dispatcher",
                reason=refused.reason,
                detail=refused.detail,
            )
            notices.events = True  # it leaves through the outbox, like the acknowledgements
            return None
        if received is None:
            return None
        assert isinstance(received.payload, AlertRaised)
        return received.envelope, received.payload
