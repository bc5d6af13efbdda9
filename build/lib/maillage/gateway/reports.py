"""What data-protection officers ask of the gateway's database: is the audit chain whole, and who
received what about a person. Read-only; also used by `maillage audit verify --database` on a copy."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from sqlalchemy import JSON, Text, func, type_coerce
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from maillage.core.config.network import Network
from maillage.core.web.paging import MAX_PAGE, decode_cursor, next_cursor
from maillage.domain.audit import ChainWalk
from maillage.domain.disclosure import Outcome
from maillage.gateway.contracts import BrokenRecord, ChainReport, DisclosureLine, DisclosureReport
from maillage.gateway.models import AuditRow

CHUNK = 1000
AUDIT = AuditRow.__table__  # type: ignore[attr-defined]
# JSON columns read as their stored text: a tampered value that is no longer JSON must show as a
# broken record, not stop the walk.
_JSON_COLUMNS = {c.name for c in AUDIT.c if isinstance(c.type, JSON)}
_AS_STORED = [type_coerce(c, Text).label(c.name) if c.name in _JSON_COLUMNS else c for c in AUDIT.c]

Progress = Callable[[int, int], None]


def _as_hashed(row: Mapping[str, Any]) -> dict[str, Any]:
    record = dict(row)
    if record.get("raised_by") is None:
        record.pop("raised_by", None)  # hashed only when an alert's raiser was known
    for name in _JSON_COLUMNS:
        # Left as stored when it is no JSON: then it cannot hash as the original did.
        with contextlib.suppress(orjson.JSONDecodeError, TypeError):
            record[name] = orjson.loads(record[name])
    return record


async def verify_chain(
    sessions: async_sessionmaker[AsyncSession], *, chunk: int = CHUNK, progress: Progress | None = None
) -> ChainReport:
    """Walk every audit record written before the walk began, in seq order, `chunk` records at a time.

    A short read per chunk, not one long transaction: a reader holding SQLite's WAL snapshot for
    minutes would stop checkpoints while the gateway keeps writing.
    """
    async with sessions() as session:
        conn = await session.connection()
        last, total = (await conn.execute(select(func.max(AUDIT.c.seq), func.count()))).one()
    walk = ChainWalk()
    after = 0
    while last is not None and after < last:
        async with sessions() as session:
            conn = await session.connection()
            rows = (
                (
                    await conn.execute(
                        select(*_AS_STORED)
                        .where(AUDIT.c.seq > after, AUDIT.c.seq <= last)
                        .order_by(AUDIT.c.seq)
                        .limit(chunk)
                    )
                )
                .mappings()
                .all()
            )
        if not rows:
            break
        walk.feed(_as_hashed(row) for row in rows)
        after = rows[-1]["seq"]
        if progress is not None:
            progress(walk.records, total)
    return _chain_report(walk)


def _chain_report(walk: ChainWalk) -> ChainReport:
    broken = walk.broken
    first = (
        None
        if broken is None
        else BrokenRecord(seq=broken["seq"], event_id=str(broken["event_id"]), recorded_at=str(broken["recorded_at"]))
    )
    return ChainReport(records=walk.records, intact=walk.intact, first_broken=first, policy_sha256s=walk.policy_sha256s)


DISCLOSED = (Outcome.DELIVERED.value, Outcome.FILTERED.value)


async def disclosures_about(
    sessions: async_sessionmaker[AsyncSession],
    subject_ref: str,
    *,
    network: Network,
    by: str,
    cursor: str | None = None,
    limit: int = MAX_PAGE,
) -> DisclosureReport:
    """Every recipient that received something about `subject_ref` from agency `by`, oldest first; denials
    left out. Each agency answers for its own disclosures: another agency's report would tell the reader
    which agencies (a shelter, say) hold the person's data."""
    async with sessions() as session:
        rows = (
            await session.exec(
                select(AuditRow)
                .where(col(AuditRow.subject_ref) == subject_ref)
                .where(col(AuditRow.source) == by)
                .where(col(AuditRow.outcome).in_(DISCLOSED))
                .where(col(AuditRow.seq) > decode_cursor(cursor))
                .order_by(col(AuditRow.seq))
                .limit(limit)
            )
        ).all()
    return DisclosureReport(
        subject_ref=subject_ref,
        disclosures=[_line(row, network) for row in rows],
        next_cursor=next_cursor([row.seq for row in rows], limit=limit),
    )


def _line(row: AuditRow, network: Network) -> DisclosureLine:
    agency = network.by_id.get(row.recipient)
    return DisclosureLine(
        recorded_at=row.recorded_at,
        event_id=row.event_id,
        event_type=row.event_type,
        source=row.source,
        recipient=row.recipient,
        recipient_name=agency.name if agency else None,
        sector=row.sector,
        legal_basis=row.legal_basis,
        outcome=row.outcome,
        delivered=list(row.delivered),
        removed=dict(row.removed),
        review=row.review,
    )
