"""Settings of one agency process."""

from __future__ import annotations

from maillage.core.settings import ServiceSettings


class AgencySettings(ServiceSettings):
    agency_id: str
    database_url: str | None = None
    max_body_bytes: int = 64 * 1024
    webhook_backoff_seconds: float = 1.0

    def db_url(self) -> str:
        configured = self.database_url or self.network.agency(self.agency_id).database_url
        return configured or self.sqlite_url(f"agency-{self.agency_id}")
