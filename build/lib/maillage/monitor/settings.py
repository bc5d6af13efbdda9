"""Settings of the monitor process."""

from __future__ import annotations

from maillage.core.config.settings import ServiceSettings


class MonitorSettings(ServiceSettings):
    lag_interval_seconds: float = 5.0

    def db_url(self) -> str:
        return self.database_url or self.network.monitor.database_url or self.sqlite_url("monitor")

    @property
    def group_id(self) -> str:
        return f"{self.topics.prefix}maillage.monitor"
