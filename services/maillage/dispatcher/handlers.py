"""The dispatcher's Kafka side: alert deliveries of the agencies it serves, verified and opened with their keys."""

from __future__ import annotations

from maillage.core.crypto.keys import GATEWAY
from maillage.core.crypto.trust import Refused, with_keys
from maillage.core.messaging.bus import Record
from maillage.core.messaging.topics import Topics
from maillage.dispatcher.services import Arrival, Corrected, Dispatcher, Erasure, Unreadable
from maillage.domain.events import AlertRaised, EventType, Holder, NoticeIssued, NoticeKind

# Referrals and answers are the agency service's business; a notice matters here when it asks to erase an alert.
READ = frozenset({EventType.ALERT_RAISED, EventType.NOTICE_ISSUED})


class DeliveryHandler:
    def __init__(self, dispatcher: Dispatcher, topics: Topics) -> None:
        self.dispatcher = dispatcher
        self.agency_of = {topics.deliver(agency): agency for agency in dispatcher.served}

    async def handle(self, records: list[Record]) -> None:
        deliveries = await with_keys(
            [served.trust for served in self.dispatcher.served.values()],
            lambda: [
                decoded
                for record in records
                if record.topic in self.agency_of
                and (decoded := self._decode(self.agency_of[record.topic], record)) is not None
            ],
        )
        if deliveries:
            await self.dispatcher.receive(deliveries)

    def _decode(self, agency: str, record: Record) -> Arrival | Erasure | Corrected | Unreadable | None:
        """The alert in `record`; Unreadable (a dead letter) if it is none; None for another event type."""
        try:
            received = self.dispatcher.served[agency].trust.receive(record, signer=GATEWAY, only=READ)
        except Refused as refused:
            return Unreadable(record, reason=refused.reason, detail=refused.detail)
        if received is None:
            return None
        if isinstance(received.payload, NoticeIssued):
            notice, events = received.payload, tuple(str(e) for e in received.payload.events)
            if notice.holder is Holder.DISPATCHER:  # an erasure this dispatcher confirms, for the agency
                return Erasure(agency, events, envelope=received.envelope, notice=notice)
            if notice.kind is NoticeKind.ROLE_CORRECTED and notice.role is not None:
                return Corrected(agency, received.envelope.subject, notice.role)
            rejected = notice.kind is NoticeKind.DISCLOSURE_REJECTED
            return Erasure(agency, events) if rejected else None  # the agency's service confirms that one
        assert isinstance(received.payload, AlertRaised)
        return Arrival(agency, received.envelope, received.payload)
