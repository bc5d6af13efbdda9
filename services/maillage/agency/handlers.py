"""Kafka handlers of the agency: what the gateway delivers to it, and the fate of what it sent."""

from __future__ import annotations

from collections.abc import Callable

from pydantic import ValidationError

from maillage.agency import services
from maillage.agency.sending import AgencyContext
from maillage.core.crypto.keys import GATEWAY
from maillage.core.crypto.trust import Received, Refused, with_keys
from maillage.core.messaging.bus import Record, header
from maillage.domain.status import SOURCE_HEADER, StatusReport

Refusals = list[tuple[Record, Refused]]


class AgencyHandlers:
    def __init__(self, ctx: AgencyContext, *, on_inbox: Callable[[], None] | None = None) -> None:
        self.ctx = ctx
        self.on_inbox = on_inbox

    async def handle(self, records: list[Record]) -> None:
        deliveries = [r for r in records if r.topic == self.ctx.topics.deliver(self.ctx.agency.id)]
        statuses = [r for r in records if self._own_status(r)]
        if not deliveries and not statuses:
            return  # only reports about other agencies' events: nothing to store
        refused: Refusals = []
        received = await with_keys(
            [self.ctx.trust], lambda: [e for r in deliveries if (e := self._open(r, refused)) is not None]
        )
        reports = [s for r in statuses if (s := _report(r, refused)) is not None]
        pushes = await services.take_in(self.ctx, deliveries=received, reports=reports, refused=refused)
        if pushes and self.on_inbox is not None:
            self.on_inbox()  # webhook deliveries are due now: no need to wait for the next poll

    def _own_status(self, record: Record) -> bool:
        """A status report about an event this agency sent (the topic carries other agencies' too)."""
        return (
            record.topic == self.ctx.topics.status(self.ctx.agency.id)
            and header(list(record.headers), SOURCE_HEADER) == self.ctx.agency.id
        )

    def _open(self, record: Record, refused: Refusals) -> Received | None:
        """Only what the gateway signed, sealed to this agency and valid is stored; the rest is dead-lettered."""
        try:
            received = self.ctx.trust.receive(record, signer=GATEWAY)
        except Refused as refusal:
            refused.append((record, refusal))
            return None
        assert received is not None  # every type is taken
        return received


def _report(record: Record, refused: Refusals) -> StatusReport | None:
    try:
        return StatusReport.model_validate_json(record.value or b"")
    except ValidationError:
        refused.append((record, Refused("schema", "status report")))
        return None
