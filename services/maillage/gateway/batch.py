"""What one batch of the gateway works with: the state it remembers between records, the batch's unit of work,
and the parts of the gateway that deciding modules (notices) need. Below the use cases: imported, imports none."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlmodel.ext.asyncio.session import AsyncSession

from maillage.core.audit import repository as audit
from maillage.core.clock import Clock
from maillage.core.config.network import Network
from maillage.core.messaging.topics import Topics
from maillage.domain.answers import Route
from maillage.domain.audit import GENESIS, linked
from maillage.domain.disclosure import Grant
from maillage.domain.grounds import Conference
from maillage.domain.policy import Policy
from maillage.domain.vocabulary import Role
from maillage.gateway import repository
from maillage.gateway.outgoing import Outbound


@dataclass(frozen=True)
class Decided:
    """A submitted event already decided (a `ProcessedEvent` row), as the duplicate checks need it."""

    digest: str
    partition: int
    offset: int
    disclosures: list[dict[str, Any]]


@dataclass
class State:
    """What the gateway must remember between records, mirrored from the database all gateways share.

    Read again whenever partitions are assigned: another gateway may have decided them meanwhile."""

    grants: dict[str, dict[str, Grant]] = field(default_factory=dict)
    routes: dict[str, Route] = field(default_factory=dict)
    conferences: dict[str, Conference] = field(default_factory=dict)
    roles: dict[str, Role] = field(default_factory=dict)  # a person's role as corrected: it wins
    heads: dict[int, tuple[int, str]] = field(default_factory=dict)  # chain → its tip's seq and hash

    @classmethod
    async def load(cls, session: AsyncSession) -> State:
        state = cls(routes=await repository.return_routes(session))
        state.conferences = await repository.conferences(session)
        state.roles = await repository.corrected_roles(session)
        for subject_ref, grant in await repository.active_grants(session):
            state.grants.setdefault(subject_ref, {})[grant.consent_id] = grant
        state.heads = await audit.heads(session)
        return state

    def link(self, content: Mapping[str, Any], *, chain: int) -> dict[str, Any]:
        """`content` as the next record of chain `chain` (one per input partition, so that each gateway
        appends only to the chains of the partitions it owns)."""
        seq, prev_hash = self.heads.get(chain, (0, GENESIS))
        record = linked(content, seq=seq + 1, prev_hash=prev_hash, chain=chain)
        self.heads[chain] = record["seq"], record["hash"]
        return record


@dataclass
class Batch:
    """One batch's unit of work, and what it produces: rows for the database, records for Kafka."""

    session: AsyncSession
    decided: dict[str, Decided]
    out: Outbound
    chain: int  # the input partition the batch was read from: its audit records go to that chain
    rows: repository.NewRows = field(default_factory=repository.NewRows)
    audit: list[dict[str, Any]] = field(default_factory=list)
    # Per-recipient decisions by type, sector, outcome and basis; and danger disclosures by sector: counted
    # in the metrics once the batch is committed, one increment per kind (not one per recipient).
    decisions: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)
    reviews: Counter[str] = field(default_factory=Counter)


class Parts(Protocol):
    """What a deciding module reads of the gateway: its network, policy, topics and clock, and its state."""

    network: Network
    policy: Policy
    topics: Topics
    clock: Clock
    state: State
