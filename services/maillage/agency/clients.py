"""Partner systems registered at an agency: they get its tokens with the client-credentials grant, so that no
partner ever holds the agency's private token key."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from maillage.core.clients import repository
from maillage.core.clients.models import ClientRow
from maillage.core.crypto.secrets import hash_secret, new_secret
from maillage.core.crypto.tokens import Scope, mint
from maillage.core.crypto.trust import Trust
from maillage.core.storage.db import unit_of_work
from maillage.core.web.oauth import TokenEndpoint
from maillage.domain.errors import InvalidRequest

# What a system may be registered for: an agency's own scopes (the operators' come from their own issuer).
CLIENT_SCOPES = frozenset(Scope) - {Scope.MONITOR_READ, Scope.MONITOR_ACT}


def token_endpoint(sessions: async_sessionmaker[AsyncSession], trust: Trust) -> TokenEndpoint:
    """The agency's `/oauth/token`: its registered clients, its token key."""

    async def load(client_id: str) -> ClientRow | None:
        async with sessions() as session:
            return await repository.get(session, client_id)

    def make(client_id: str, scopes: list[Scope]) -> str:
        return mint(trust.own, subject=client_id, scopes=scopes, client_id=client_id)

    return TokenEndpoint(load=load, mint=make)


async def register(
    sessions: async_sessionmaker[AsyncSession], *, agency: str, name: str, scopes: Sequence[Scope], now: datetime
) -> tuple[ClientRow, str]:
    """A new client and its secret — shown this once, kept only hashed."""
    refused = sorted(s.value for s in set(scopes) - CLIENT_SCOPES)
    if refused or not scopes:
        raise InvalidRequest(
            "problem.validation.client-scopes", scopes=", ".join(sorted(s.value for s in CLIENT_SCOPES))
        )
    secret = new_secret()
    row = ClientRow(
        client_id=f"{agency}.{secrets.token_hex(6)}",
        name=name,
        secret_hash=hash_secret(secret),
        scopes=sorted(s.value for s in set(scopes)),
        created_at=now,
    )
    async with unit_of_work(sessions) as session:
        repository.add(session, row)
    return row, secret


async def listed(sessions: async_sessionmaker[AsyncSession]) -> Sequence[ClientRow]:
    async with sessions() as session:
        return await repository.listed(session)


async def revoke(sessions: async_sessionmaker[AsyncSession], client_id: str, *, now: datetime) -> bool:
    """The client gets no token from now on; those it holds expire within the hour (or at once, with a rotation
    of the agency's token key)."""
    async with unit_of_work(sessions) as session:
        return await repository.revoke(session, client_id, at=now)
