"""Settings of one agency process."""

from __future__ import annotations

from pydantic import Field

from maillage.core.config.settings import ServiceSettings


class AgencySettings(ServiceSettings):
    agency_id: str
    max_body_bytes: int = 64 * 1024
    webhook_backoff_seconds: float = 1.0
    # Each call to a receiver is cut after this long, whatever it sends: a trickle cannot hold a lane.
    webhook_attempt_seconds: float = Field(default=10.0, gt=0)
    # Calls to receivers in flight at once, over all webhooks.
    webhook_concurrency: int = Field(default=8, ge=1)
    # The longest a registration lasts, and its default: a forgotten one stops receiving by itself.
    webhook_max_lifetime_days: float = Field(default=30, gt=0)

    def db_url(self) -> str:
        configured = self.database_url or self.network.agency(self.agency_id).database_url
        return configured or self.sqlite_url(f"agency-{self.agency_id}")
