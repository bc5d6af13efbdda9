"""Test support for the operators' monitor: the monitor on a real port, operators' tokens."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from maillage.core.tokens import Scope, mint
from maillage.monitor.app import create_app
from maillage.monitor.service import Monitor
from maillage.monitor.settings import MonitorSettings
from tests.support import Pole, Served, served_when_ready

OPERATOR_AGENCY = "cpas-seraing"  # any agency of the network may issue an operator's token


class RunningMonitor(Served):
    @property
    def monitor(self) -> Monitor:
        monitor: Monitor = self.app.state.monitor
        return monitor


@asynccontextmanager
async def monitor(pole: Pole) -> AsyncIterator[RunningMonitor]:
    async with served_when_ready(create_app(MonitorSettings(**pole.common(), lag_interval_seconds=0.5))) as served:
        yield RunningMonitor(url=served.url, app=served.app)


def operator_token(pole: Pole, who: str = "operator-anne", *, act: bool = False, agency: str = OPERATOR_AGENCY
                   ) -> str:
    scopes = (Scope.MONITOR_READ, Scope.MONITOR_ACT) if act else (Scope.MONITOR_READ,)
    return mint(pole.trust(agency).own, subject=who, scopes=scopes)


def as_operator(running: RunningMonitor, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=running.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
