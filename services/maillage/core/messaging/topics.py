"""Names of the Kafka topics, with the per-deployment (or per-test) prefix.

Each topic has one writer principal or one reader principal, so that Kafka's ACLs keep every agency to
what is its own: its deliveries, the statuses of what it sent, the dead letters it wrote.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

DISPATCHER = "dispatcher"


class TopicKind(StrEnum):
    """What a topic holds, which decides how long it keeps it (the network file's `[kafka.retention]`)."""

    AUDIT = "audit"
    SUBMITTED = "submitted"
    DELIVERIES = "deliveries"
    STATUSES = "statuses"
    DEAD_LETTERS = "dead_letters"
    ONCALL = "oncall"


@dataclass(frozen=True)
class Topics:
    prefix: str = ""

    def _name(self, suffix: str) -> str:
        return f"{self.prefix}maillage.{suffix}"

    @property
    def submitted(self) -> str:
        return self._name("submitted")

    @property
    def audit(self) -> str:
        return self._name("audit")

    @property
    def dlq(self) -> str:
        """What the gateway refused: the only dead letters that may be replayed onto `submitted`."""
        return self._name("dlq")

    @property
    def oncall(self) -> str:
        """The dispatcher's reports of what became of each alert (metadata only), for operators."""
        return self._name("oncall")

    def deliver(self, agency_id: str) -> str:
        return self._name(f"deliver.{agency_id}")

    def status(self, agency_id: str) -> str:
        """The gateway's decisions about the events `agency_id` sent: for that agency's eyes only (and the
        monitor's): who received what about a person is itself sensitive."""
        return self._name(f"status.{agency_id}")

    def dead_letters_of(self, writer: str) -> str:
        """What an agency's service (or the dispatcher) could not read. One topic per writer: the monitor
        knows who refused a record from the topic it lies on, which no writer can forge."""
        return self._name(f"dlq.{writer}")

    def writer_of_dead_letters(self, topic: str) -> str | None:
        """The writer of a per-writer dead-letter topic, `gateway` for the gateway's own, None otherwise."""
        if topic == self.dlq:
            return "gateway"
        own = self.dead_letters_of("")
        return topic.removeprefix(own) if topic.startswith(own) and topic != own else None

    def dead_letter_topics(self, agency_ids: Iterable[str]) -> list[str]:
        return [self.dlq, *(self.dead_letters_of(w) for w in (*agency_ids, DISPATCHER))]

    def all_for(self, agency_ids: list[str]) -> list[str]:
        return list(self.kinds(agency_ids))

    def kinds(self, agency_ids: list[str]) -> dict[str, TopicKind]:
        """Every topic of a network of these agencies, and what it holds."""
        kinds = {self.submitted: TopicKind.SUBMITTED, self.audit: TopicKind.AUDIT, self.oncall: TopicKind.ONCALL}
        for agency_id in agency_ids:
            kinds |= {self.deliver(agency_id): TopicKind.DELIVERIES, self.status(agency_id): TopicKind.STATUSES}
        return kinds | dict.fromkeys(self.dead_letter_topics(agency_ids), TopicKind.DEAD_LETTERS)
