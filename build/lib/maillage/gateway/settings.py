"""Settings of the gateway process."""

from __future__ import annotations

from maillage.core.config.settings import ServiceSettings


class GatewaySettings(ServiceSettings):
    transactional_id: str = "maillage.gateway.1"

    def db_url(self) -> str:
        return self.database_url or self.network.gateway.database_url or self.sqlite_url("gateway")

    @property
    def group_id(self) -> str:
        return f"{self.topics.prefix}maillage.gateway"
