"""Annotated dependencies of the gateway's API."""

from __future__ import annotations

from collections.abc import Collection
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from maillage.core.config.network import Network
from maillage.core.crypto.tokens import Principal, Scope
from maillage.core.web.auth import require
from maillage.gateway.verification import FullWalks


def _sessions(request: Request) -> async_sessionmaker[AsyncSession]:
    sessions: async_sessionmaker[AsyncSession] = request.app.state.sessions
    return sessions


def _network(request: Request) -> Network:
    network: Network = request.app.state.network
    return network


def _network_agencies(request: Request) -> Collection[str]:
    return _network(request).by_id.keys()


def _walks(request: Request) -> FullWalks:
    walks: FullWalks = request.app.state.walks
    return walks


Walks = Annotated[FullWalks, Depends(_walks)]
Sessions = Annotated[async_sessionmaker[AsyncSession], Depends(_sessions)]
NetworkDep = Annotated[Network, Depends(_network)]


def AnyAgency(scope: Scope) -> Any:
    """A valid token carrying `scope`, issued by any agency of the network (the gateway serves them all)."""
    return require(scope, issuers=_network_agencies)


AuditReader = Annotated[Principal, AnyAgency(Scope.AUDIT_READ)]
