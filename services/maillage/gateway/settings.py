"""Settings of the gateway process."""

from __future__ import annotations

from pydantic import Field

from maillage.core.config.settings import ServiceSettings


class GatewaySettings(ServiceSettings):
    # The prefix of the transactional ids: one per partition of the submitted topic (`<prefix>.p<N>`), shared by
    # every gateway, so that a partition's new owner fences its previous one. Unset: the topics' prefix and
    # `maillage.gateway`.
    transactional_id: str | None = None
    # A full walk of the audit chains from their first records (the only check that sees an edit which kept the
    # hashes) starts when the last one started this long ago; verifications in between walk on from checkpoints.
    audit_full_walk_hours: float = Field(default=24.0, gt=0)

    @property
    def transactional_prefix(self) -> str:
        return self.transactional_id or f"{self.topics.prefix}maillage.gateway"

    def db_url(self) -> str:
        return self.database_url or self.network.gateway.database_url or self.sqlite_url("gateway")

    @property
    def group_id(self) -> str:
        return f"{self.topics.prefix}maillage.gateway"
