"""Settings of the monitor process."""

from __future__ import annotations

from pydantic import Field

from maillage.core.config.settings import ServiceSettings


class MonitorSettings(ServiceSettings):
    lag_interval_seconds: float = 5.0
    # How long an operator stays signed in on the dashboard after accepting an invitation of the operators'
    # issuer (`maillage operators invite`): a working day.
    operator_session_hours: float = Field(default=10.0, gt=0, le=24)

    def db_url(self) -> str:
        return self.database_url or self.network.monitor.database_url or self.sqlite_url("monitor")

    @property
    def group_id(self) -> str:
        return f"{self.topics.prefix}maillage.monitor"
