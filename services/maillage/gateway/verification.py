"""The audit chains verified for data-protection officers.

A verification walks on from each chain's last checkpoint — the link the previous verification found
intact, signed by the gateway — so it costs what was appended since, not the whole history (a chain kept
for ever grows without end: 112,388 records took 15 to 20 s to re-hash on a loaded machine, at every request).
It first checks the checkpoint's signature and that its link is still there, unchanged: whoever rewrites
records before it (recomputing the hashes, to hide an edit) changes that link, and cannot sign a new
checkpoint without the gateway's key. An edit that leaves the hashes as they were shows only to a walk
from the first record: the gateway runs one in the background (on request, and on a schedule), and every
verification reports the last one's result with its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from maillage.core.audit import repository as audit
from maillage.core.audit.models import AuditCheckpoint, AuditWalk
from maillage.core.clock import Clock, SystemClock, as_utc
from maillage.core.crypto.keys import GATEWAY
from maillage.core.crypto.signing import SignatureError, sign, verify
from maillage.core.crypto.trust import Trust
from maillage.core.storage.db import unit_of_work
from maillage.domain.audit import ChainWalk, holds
from maillage.gateway.contracts import BrokenRecord, ChainReport, FullWalkSummary, WalkState, WalkStatus

log = logging.getLogger(__name__)
Progress = Callable[[int, int], None]

# What a checkpoint's signature covers besides its fields: never mistaken for an event's signature.
CHECKPOINT_PURPOSE = b"maillage audit checkpoint 1"
# What one verification over the API hashes at most: a few seconds, so that no answer waits on a long chain.
VERIFY_LIMIT = 20_000
# A running walk writes its progress this often; one silent for STALE was interrupted (its gateway stopped).
HEARTBEAT_SECONDS = 2.0
STALE = timedelta(seconds=60)


@dataclass(frozen=True)
class Checkpoints:
    """Signs the checkpoints a verification leaves and checks those it starts from, with the gateway's
    signing key: a checkpoint signed by anything else is ignored (the chain is then walked from its start)."""

    trust: Trust

    def sign(self, chain: int, walk: ChainWalk, *, at: datetime) -> AuditCheckpoint:
        last = walk.last
        assert last is not None, "a checkpoint marks a record walked"
        checkpoint = AuditCheckpoint(
            chain=chain,
            seq=int(last["seq"]),
            hash=str(last["hash"]),
            event_id=str(last["event_id"]),
            recorded_at=str(last["recorded_at"]),
            records=walk.records,
            policy_sha256s=list(walk.policy_sha256s),
            verified_at=at.isoformat(),
            sigkid=self.trust.own.signing_kid,
            sig="",
        )
        checkpoint.sig = sign(_signed(checkpoint), CHECKPOINT_PURPOSE, key=self.trust.own.signing)
        return checkpoint

    def holds(self, checkpoint: AuditCheckpoint) -> bool:
        attributes = {**_signed(checkpoint), "sig": checkpoint.sig}
        try:
            verify(attributes, CHECKPOINT_PURPOSE, keys=self.trust.public, signer=GATEWAY)
        except SignatureError:
            if not self.trust.refresh():  # a key rotated elsewhere since the keys were read
                return False
            try:
                verify(attributes, CHECKPOINT_PURPOSE, keys=self.trust.public, signer=GATEWAY)
            except SignatureError:
                return False
        return True


def _signed(checkpoint: AuditCheckpoint) -> dict[str, str]:
    fields = checkpoint.model_dump(exclude={"sig"})
    fields["policy_sha256s"] = " ".join(checkpoint.policy_sha256s)
    return {name: str(value) for name, value in fields.items()}


async def verify_chain(
    sessions: async_sessionmaker[AsyncSession],
    *,
    checkpoints: Checkpoints | None = None,
    full: bool = False,
    chunk: int = audit.CHUNK,
    limit: int | None = None,
    progress: Progress | None = None,
    clock: Clock | None = None,
) -> ChainReport:
    """Walk every audit record written before the walk began, chain by chain (one per input partition) in seq
    order, and name the first broken one. With `checkpoints`, each chain is walked on from its last signed
    checkpoint (from its first record if `full`), and an intact chain's checkpoint is moved to its last record.
    Without, every chain from its first record and nothing written: what `maillage audit verify --database`
    runs on a copy of the gateways' database. `limit`: hash at most this many records (a request's answer
    must come in seconds, however long the chains): the report says whether it reached every chain's end, and
    the checkpoints moved as far as it got, so the next verification walks on from there."""
    async with sessions() as session:
        ends = await audit.chain_ends(session)
        stored = await audit.checkpoints(session) if checkpoints is not None and not full else {}
    marks = {chain: mark for chain, mark in stored.items() if checkpoints is not None and checkpoints.holds(mark)}
    for chain in stored.keys() - marks.keys():
        log.warning("audit checkpoint not signed by the gateway, chain walked from its start", extra={"chain": chain})
    total = max(0, sum(count for _, count in ends.values()) - sum(m.records for m in marks.values()))
    walks: dict[int, ChainWalk] = {}
    walked, complete = 0, True
    for chain in sorted(ends.keys() | marks.keys()):
        mark = marks.get(chain)
        walks[chain] = walk = ChainWalk() if mark is None else await _resume(sessions, mark)
        end, after = ends.get(chain, (0, 0))[0], mark.seq if mark else 0
        if limit is not None and walked >= limit:
            complete = complete and after >= end
            continue
        budget = chunk if limit is None else max(1, min(chunk, limit - walked))
        async with contextlib.aclosing(audit.walk_chain(sessions, chain, after=after, end=end, chunk=budget)) as chunks:
            async for records in chunks:
                walk.feed(records)
                walked += len(records)
                if progress is not None:
                    progress(walked, total)
                if limit is not None and walked >= limit:
                    break
        reached = int(walk.last["seq"]) if walk.last is not None else after
        complete = complete and reached >= end
    if checkpoints is not None:
        now = (clock or SystemClock()).now()
        moved = [checkpoints.sign(c, w, at=now) for c, w in walks.items() if w.intact and w.last is not None]
        if moved:
            async with unit_of_work(sessions) as session:
                for checkpoint in moved:
                    await audit.save_checkpoint(session, checkpoint)
    return _report(walks, walked=walked, complete=complete)


async def _resume(sessions: async_sessionmaker[AsyncSession], mark: AuditCheckpoint) -> ChainWalk:
    """A chain's walk as its checkpoint left it, broken at once if the checkpoint's link was changed or removed."""
    async with sessions() as session:
        link = await audit.record_at(session, mark.chain, mark.seq)
    walk = ChainWalk(records=mark.records, policy_sha256s=list(mark.policy_sha256s), last_hash=mark.hash)
    if link is None or link["hash"] != mark.hash or not holds(link, prev_hash=str(link["prev_hash"])):
        # Removed, edited, or rewritten with the records before it: none of them can be trusted now.
        walk.broken = link or {**mark.model_dump(include={"chain", "seq", "event_id", "recorded_at"})}
    return walk


def _report(walks: Mapping[int, ChainWalk], *, walked: int, complete: bool = True) -> ChainReport:
    broken = next((w.broken for _, w in sorted(walks.items()) if w.broken is not None), None)
    policies = list(dict.fromkeys(p for w in walks.values() for p in w.policy_sha256s))
    return ChainReport(
        records=sum(w.records for w in walks.values()),
        walked=walked,
        complete=complete,
        chains=len(walks),
        intact=broken is None,
        first_broken=None if broken is None else _broken(broken),
        policy_sha256s=policies,
    )


def _broken(record: Mapping[str, Any]) -> BrokenRecord:
    return BrokenRecord(
        chain=int(record["chain"]),
        seq=int(record["seq"]),
        event_id=str(record["event_id"]),
        recorded_at=str(record["recorded_at"]),
    )


def with_last_full_walk(report: ChainReport, walk: AuditWalk | None) -> ChainReport:
    """A verification's report with the last full walk's result: an edit that kept the hashes shows only there,
    and stays shown until a later full walk finds the chains intact."""
    if walk is None or walk.report is None or walk.finished_at is None:
        return report
    full = ChainReport.model_validate(walk.report)
    summary = FullWalkSummary(
        id=walk.id,
        started_at=as_utc(walk.started_at),
        finished_at=as_utc(walk.finished_at),
        records=full.records,
        intact=full.intact,
    )
    return report.model_copy(
        update={
            "intact": report.intact and full.intact,
            "first_broken": report.first_broken or full.first_broken,
            "last_full_walk": summary,
        }
    )


def walk_status(walk: AuditWalk, *, now: datetime) -> WalkStatus:
    if walk.finished_at is not None:
        state = WalkState.DONE
    elif now - as_utc(walk.updated_at) > STALE:
        state = WalkState.INTERRUPTED
    else:
        state = WalkState.RUNNING
    return WalkStatus(
        id=walk.id,
        state=state,
        started_at=as_utc(walk.started_at),
        finished_at=None if walk.finished_at is None else as_utc(walk.finished_at),
        records_done=walk.records_done,
        records_total=walk.records_total,
        report=None if walk.report is None else ChainReport.model_validate(walk.report),
    )


@dataclass
class FullWalks:
    """Full walks of every chain from its first record, in the background: asked for while one runs, the
    running one answers (two gateways on one database may each run one)."""

    sessions: async_sessionmaker[AsyncSession]
    checkpoints: Checkpoints
    clock: Clock = field(default_factory=SystemClock)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self) -> WalkStatus:
        now = self.clock.now()
        async with unit_of_work(self.sessions) as session:
            latest = await audit.latest_walk(session)
            if latest is not None and walk_status(latest, now=now).state is WalkState.RUNNING:
                return walk_status(latest, now=now)
            walk = AuditWalk(id=str(uuid.uuid4()), started_at=now, updated_at=now)
            audit.add_walk(session, walk)
        task = asyncio.create_task(self._run(walk.id), name=f"audit-walk-{walk.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return walk_status(walk, now=now)

    async def status(self, walk_id: str) -> WalkStatus | None:
        async with self.sessions() as session:
            walk = await audit.walk_of(session, walk_id)
        return None if walk is None else walk_status(walk, now=self.clock.now())

    async def last_finished(self) -> AuditWalk | None:
        async with self.sessions() as session:
            return await audit.latest_finished_walk(session)

    async def every(self, interval: timedelta, *, check: float = 3600.0) -> None:
        """Start a full walk whenever the last one started `interval` ago or more (checked every `check`
        seconds, the first time one `check` after start-up)."""
        while True:
            await asyncio.sleep(min(check, interval.total_seconds()))
            try:
                async with self.sessions() as session:
                    latest = await audit.latest_walk(session)
                if latest is None or self.clock.now() - as_utc(latest.started_at) >= interval:
                    await self.start()
            except (SQLAlchemyError, OSError) as error:  # the database away: asked again at the next check
                log.error("full walk not started", extra={"error": type(error).__name__})

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _run(self, walk_id: str) -> None:
        seen = [0, 0]

        def progress(done: int, total: int) -> None:
            seen[:] = [done, total]

        walking = asyncio.create_task(
            verify_chain(self.sessions, checkpoints=self.checkpoints, full=True, progress=progress, clock=self.clock)
        )
        try:
            while not walking.done():
                await asyncio.wait({walking}, timeout=HEARTBEAT_SECONDS)
                await self._save(walk_id, done=seen[0], total=seen[1])
            report = walking.result()
            await self._save(walk_id, done=report.walked, total=report.walked, report=report)
        except asyncio.CancelledError:
            walking.cancel()
            raise
        except Exception as exc:  # the database gone, say: the walk shows as interrupted, ask again
            walking.cancel()
            log.error("audit full walk failed", extra={"walk": walk_id, "error": type(exc).__name__})
            return
        log.info(
            "audit full walk done",
            extra={"walk": walk_id, "records": report.records, "chains": report.chains, "intact": report.intact},
        )
        if not report.intact:
            log.error("audit chain broken", extra={"walk": walk_id, **_where(report.first_broken)})

    async def _save(self, walk_id: str, *, done: int, total: int, report: ChainReport | None = None) -> None:
        async with unit_of_work(self.sessions) as session:
            await audit.walk_progressed(
                session,
                walk_id,
                at=self.clock.now(),
                done=done,
                total=total,
                report=None if report is None else report.model_dump(mode="json"),
            )


def _where(broken: BrokenRecord | None) -> dict[str, Any]:
    return {} if broken is None else {"chain": broken.chain, "seq": broken.seq}
