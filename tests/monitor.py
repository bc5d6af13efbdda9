"""Test support for the operators' monitor: the monitor on a real port, operators' tokens."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from maillage.core.crypto.tokens import Scope, mint
from maillage.monitor.app import create_app
from maillage.monitor.services import MonitorContext
from maillage.monitor.settings import MonitorSettings
from tests.support import Pole, Served, served_when_ready


class RunningMonitor(Served):
    @property
    def monitor(self) -> MonitorContext:
        monitor: MonitorContext = self.app.state.monitor
        return monitor


@asynccontextmanager
async def monitor(pole: Pole) -> AsyncIterator[RunningMonitor]:
    settings = MonitorSettings(**pole.common("monitor"), lag_interval_seconds=0.5)
    async with served_when_ready(create_app(settings)) as served:
        yield RunningMonitor(url=served.url, app=served.app)


def operator_token(pole: Pole, who: str = "operator-anne", *, act: bool = False) -> str:
    """What `maillage token --operator` mints: from the operators' issuer of the network file."""
    scopes = (Scope.MONITOR_READ, Scope.MONITOR_ACT) if act else (Scope.MONITOR_READ,)
    return mint(pole.trust(pole.operators).own, subject=who, scopes=scopes)


def agency_minted_operator_token(pole: Pole, agency: str, who: str) -> str:
    """The attack: an agency's token key minting the operators' powers for one of its own staff."""
    return mint(pole.trust(agency).own, subject=who, scopes=(Scope.MONITOR_READ, Scope.MONITOR_ACT))


def as_operator(running: RunningMonitor, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=running.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
