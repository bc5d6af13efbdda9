"""Settings of the dispatcher process."""

from __future__ import annotations

from pydantic import Field, SecretStr

from maillage.core.config.settings import ServiceSettings


class DispatcherSettings(ServiceSettings):
    # The HMAC secret of the fallback webhooks; empty: one is made on first start and kept in the key dir.
    fallback_secret: SecretStr = SecretStr("")
    # Each fallback call is cut after this long, whatever the receiver sends.
    webhook_attempt_seconds: float = Field(default=10.0, gt=0)
    # A socket must sign in (Authorization header or an `auth` message) within this, or it is closed.
    sign_in_seconds: float = Field(default=10.0, gt=0)
    # How long an on-call worker stays signed in on the page after accepting their agency's invitation: a
    # shift. Refreshing keeps the session alive within it, never beyond.
    oncall_shift_hours: float = Field(default=12.0, gt=0, le=24)
    # Live streams (WebSocket and SSE together) one worker may hold: a phone, a desktop, a few tabs.
    max_streams_per_worker: int = Field(default=5, gt=0)
    # Live streams of one agency's workers together: room for the on-call benchmark's 1,000 workers.
    max_streams_per_agency: int = Field(default=2000, gt=0)

    def db_url(self) -> str:
        return self.database_url or self.network.dispatcher.database_url or self.sqlite_url("dispatcher")

    @property
    def group_id(self) -> str:
        return f"{self.topics.prefix}maillage.dispatcher"
