"""Names of the Kafka topics, with the per-deployment (or per-test) prefix."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Topics:
    prefix: str = ""

    def _name(self, suffix: str) -> str:
        return f"{self.prefix}maillage.{suffix}"

    @property
    def submitted(self) -> str:
        return self._name("submitted")

    @property
    def status(self) -> str:
        return self._name("status")

    @property
    def audit(self) -> str:
        return self._name("audit")

    @property
    def dlq(self) -> str:
        return self._name("dlq")

    def deliver(self, agency_id: str) -> str:
        return self._name(f"deliver.{agency_id}")

    def all_for(self, agency_ids: list[str]) -> list[str]:
        return [self.submitted, self.status, self.audit, self.dlq, *(self.deliver(a) for a in agency_ids)]
