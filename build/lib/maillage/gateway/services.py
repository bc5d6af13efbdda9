"""The consent gateway's decisions: for each submitted record, what each recipient receives, and the trace of it.

`Gateway.process` turns a batch of consumed records into the records to publish, after writing the
consent state, the decisions and the audit chain to the gateway's database in one transaction.
Publishing them, with the consumed offsets, in one Kafka transaction is the caller's job (handlers.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
from aiokafka import ConsumerRecord
from pydantic import ValidationError
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from maillage.core.clock import Clock, SystemClock
from maillage.core.config.network import Network
from maillage.core.crypto.trust import SealError, SignatureError, Trust
from maillage.core.messaging.bus import dead_letter_headers, header
from maillage.core.messaging.envelope import Envelope, EnvelopeError, Headers
from maillage.core.messaging.topics import Topics
from maillage.core.observability.metrics import DEAD_LETTERS, DECISIONS, REVIEW_QUEUE
from maillage.core.storage.db import unit_of_work
from maillage.domain.audit import GENESIS, chain_hash
from maillage.domain.disclosure import (
    DenialReason,
    Disclosure,
    Grant,
    Outcome,
    Recipient,
    Removal,
    basis_for,
    consented_categories,
    decide,
)
from maillage.domain.events import (
    PAYLOAD_MODELS,
    AlertAcknowledged,
    AlertEscalated,
    AlertRaised,
    ConsentGranted,
    ConsentWithdrawn,
    EventPayload,
    ReferralCreated,
    ReferralResponded,
    present_categories,
    restrict,
)
from maillage.domain.policy import Policy
from maillage.domain.status import SOURCE_HEADER, RecipientLine, StatusReport
from maillage.domain.vocabulary import Category, LegalBasis, Purpose, Sector
from maillage.gateway.models import AuditRow, GrantRow, ProcessedEvent, ReturnRoute, ReviewItem

log = logging.getLogger(__name__)
Record = ConsumerRecord[bytes, bytes]
T = TypeVar("T")
U = TypeVar("U")
CRYPTO_THREADS = 2


def _apply(work: Callable[[T], U], items: list[T]) -> list[U]:
    return [work(item) for item in items]


@dataclass(frozen=True)
class Outgoing:
    topic: str
    key: bytes
    value: bytes
    headers: Headers = field(default_factory=list)


class Rejected(Exception):
    """A record the gateway will not process; it goes to the dead-letter topic with `reason`."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def record_digest(record: Record) -> str:
    digest = hashlib.sha256(record.value or b"")
    for name, value in sorted(record.headers):
        digest.update(name.encode() + b"\0" + value + b"\0")
    return digest.hexdigest()


def _disclosure_to_json(d: Disclosure) -> dict[str, Any]:
    return {
        "agency_id": d.recipient.agency_id,
        "sector": d.recipient.sector.value,
        "basis": d.basis.value,
        "outcome": d.outcome.value,
        "delivered": sorted(d.delivered),
        "removed": {k.value: v.value for k, v in d.removed.items()},
        "reason": d.reason.value if d.reason else None,
    }


def _disclosure_from_json(raw: dict[str, Any]) -> Disclosure:
    return Disclosure(
        recipient=Recipient(agency_id=raw["agency_id"], sector=Sector(raw["sector"])),
        basis=LegalBasis(raw["basis"]),
        outcome=Outcome(raw["outcome"]),
        delivered=frozenset(Category(c) for c in raw["delivered"]),
        removed={Category(k): Removal(v) for k, v in raw["removed"].items()},
        reason=DenialReason(raw["reason"]) if raw["reason"] else None,
    )


@dataclass(frozen=True)
class Route:
    """Where a referral or an alert went: who may answer it, and to whom the answer goes back."""

    sender: str
    recipients: tuple[str, ...]


@dataclass(frozen=True)
class Decided:
    """A submitted event already decided (a `ProcessedEvent` row), as the duplicate checks need it."""

    digest: str
    partition: int
    offset: int
    disclosures: list[dict[str, Any]]


class State:
    """What the gateway must remember between records, mirrored from its database."""

    def __init__(self) -> None:
        self.grants: dict[str, dict[str, Grant]] = {}
        self.routes: dict[str, Route] = {}
        self.last_seq = 0
        self.last_hash = GENESIS

    async def load(self, session: AsyncSession) -> None:
        self.__init__()  # type: ignore[misc]
        for row in (await session.exec(select(GrantRow).where(col(GrantRow.withdrawn_at).is_(None)))).all():
            self.grants.setdefault(row.subject_ref, {})[row.consent_id] = _grant(row)
        for route in (await session.exec(select(ReturnRoute))).all():
            self.routes[route.event_id] = Route(sender=route.sender, recipients=tuple(route.recipients))
        last = (await session.exec(select(AuditRow).order_by(col(AuditRow.seq).desc()).limit(1))).first()
        if last is not None:
            self.last_seq, self.last_hash = last.seq, last.hash


def _grant(row: GrantRow) -> Grant:
    return Grant(
        consent_id=row.consent_id,
        obtained_by=row.granted_by,
        categories=frozenset(Category(c) for c in row.categories),
        recipients=frozenset(row.recipients),
        purposes=frozenset(Purpose(p) for p in row.purposes),
        valid_until=row.valid_until,
    )


@dataclass(frozen=True)
class Opened:
    """A record as the crypto threads left it: its envelope once the signature holds, and its plaintext."""

    envelope: Envelope | None = None
    refusal: tuple[str, str] | None = None  # (reason, detail) when it is no valid signed envelope
    plaintext: bytes | None = None
    seal_error: str | None = None


@dataclass(frozen=True)
class ToSeal:
    """A recipient's share, waiting for the crypto threads to seal and sign it into `outgoing[index]`."""

    index: int
    envelope: Envelope
    plaintext: bytes
    recipient: str


@dataclass
class Batch:
    """What one batch produces: rows for the database, records for Kafka."""

    session: AsyncSession
    outgoing: list[Outgoing | None] = field(default_factory=list)
    to_seal: list[ToSeal] = field(default_factory=list)
    memo: dict[str, Decided] = field(default_factory=dict)
    # New rows of the append-only tables, inserted in bulk when the batch ends: building an ORM
    # object per row cost more than the rest of a decision.
    rows: dict[type[SQLModel], list[dict[str, Any]]] = field(default_factory=dict)

    def insert(self, table: type[SQLModel], row: dict[str, Any]) -> None:
        self.rows.setdefault(table, []).append(row)

    async def write_rows(self) -> None:
        for table, rows in self.rows.items():
            await self.session.exec(insert(table.__table__), params=rows)  # type: ignore[attr-defined]
        self.rows.clear()


class Gateway:
    def __init__(
        self,
        *,
        network: Network,
        policy: Policy,
        topics: Topics,
        sessions: async_sessionmaker[AsyncSession],
        trust: Trust,
        clock: Clock | None = None,
    ) -> None:
        self.trust = trust
        self.network = network
        self.policy = policy
        self.topics = topics
        self.sessions = sessions
        self.clock: Clock = clock or SystemClock()
        self.state = State()
        # pyca/cryptography releases the GIL: checking, opening and sealing a batch's records in
        # threads runs on both cores while the decisions themselves stay in order on the event loop.
        self.crypto = ThreadPoolExecutor(max_workers=CRYPTO_THREADS, thread_name_prefix="gateway-crypto")

    async def start(self) -> None:
        async with self.sessions() as session:
            await self.state.load(session)

    def close(self) -> None:
        self.crypto.shutdown(wait=True)

    async def _in_threads(self, work: Callable[[T], U], items: list[T]) -> list[U]:
        loop = asyncio.get_running_loop()
        size = max(1, -(-len(items) // CRYPTO_THREADS))
        chunks = [items[i : i + size] for i in range(0, len(items), size)]
        done = await asyncio.gather(*(loop.run_in_executor(self.crypto, _apply, work, c) for c in chunks))
        return [result for chunk in done for result in chunk]

    def _open(self, record: Record) -> Opened:
        try:
            envelope = Envelope.from_kafka(key=record.key, value=record.value, headers=list(record.headers))
            self.trust.verify(envelope, signer=envelope.agency_id)
        except EnvelopeError as exc:
            return Opened(refusal=(exc.reason, exc.detail))
        except SignatureError as exc:
            return Opened(refusal=("signature", str(exc)))
        try:
            return Opened(envelope=envelope, plaintext=self.trust.open(envelope))
        except SealError as exc:
            return Opened(envelope=envelope, seal_error=str(exc))

    def _seal(self, job: ToSeal) -> tuple[int, Outgoing]:
        delivered = self.trust.seal_and_sign(job.envelope, job.plaintext, to=job.recipient)
        key, value, headers = delivered.to_kafka()
        return job.index, Outgoing(self.topics.deliver(job.recipient), key, value, headers)

    async def process(self, records: list[Record]) -> list[Outgoing]:
        """Decide a batch; its database effects are committed when this returns."""
        opened = await self._in_threads(self._open, records)
        try:
            async with unit_of_work(self.sessions) as session:
                batch = Batch(session=session)
                ids = [header(list(r.headers), "ce_id") or "" for r in records]
                found = await session.exec(select(ProcessedEvent).where(col(ProcessedEvent.event_id).in_(ids)))
                batch.memo = {
                    p.event_id: Decided(
                        digest=p.digest, partition=p.partition, offset=p.offset, disclosures=p.disclosures
                    )
                    for p in found.all()
                }
                for record, state in zip(records, opened, strict=True):
                    await self._process_one(batch, record, state)
                await batch.write_rows()
            for index, sealed in await self._in_threads(self._seal, batch.to_seal):
                batch.outgoing[index] = sealed
            return [o for o in batch.outgoing if o is not None]
        except Exception:
            # The transaction rolled back: forget what was applied in memory before retrying.
            await self.start()
            raise

    async def _process_one(self, batch: Batch, record: Record, opened: Opened) -> None:
        if opened.envelope is None:
            # Before anything else: an unsigned or forged record is neither decided nor answered.
            reason, detail = opened.refusal or ("envelope", "unreadable")
            self._dead_letter(batch, record, reason, detail)
            return
        envelope = opened.envelope
        digest = record_digest(record)
        memo = batch.memo.get(envelope.id)
        if memo is not None:
            await self._seen_before(batch, record, opened, memo, digest)
            return
        try:
            payload = self._payload(opened)
            disclosures = await self._decide(batch, envelope, payload)
        except Rejected as exc:
            self._dead_letter(batch, record, exc.reason, exc.detail)
            self._report_rejection(batch, envelope, exc.reason)
            return
        decided = Decided(
            digest=digest,
            partition=record.partition,
            offset=record.offset,
            disclosures=[_disclosure_to_json(d) for d in disclosures],
        )
        batch.insert(
            ProcessedEvent,
            {
                "event_id": envelope.id,
                "digest": digest,
                "decided_at": self.clock.now(),
                "partition": record.partition,
                "offset": record.offset,
                "disclosures": decided.disclosures,
            },
        )
        batch.memo[envelope.id] = decided
        self._record_audit(batch, envelope, disclosures, payload)
        self._emit(batch, envelope, payload, disclosures)

    async def _seen_before(self, batch: Batch, record: Record, opened: Opened, memo: Decided, digest: str) -> None:
        envelope = opened.envelope
        assert envelope is not None
        if memo.digest != digest:
            self._dead_letter(batch, record, "replay", "an event with this id and other content was seen")
        elif (memo.partition, memo.offset) == (record.partition, record.offset):
            # The same record again after a crash: its Kafka transaction was aborted, so emit the
            # decisions already taken (and audited) again, rather than deciding anew.
            payload = self._payload(opened)
            self._emit(batch, envelope, payload, [_disclosure_from_json(d) for d in memo.disclosures])
            await batch.write_rows()
            rows = await batch.session.exec(
                select(AuditRow).where(AuditRow.event_id == envelope.id).order_by(col(AuditRow.seq))
            )
            for row in rows.all():
                unset = {"raised_by"} if row.raised_by is None else None  # as it was hashed
                batch.outgoing.append(
                    Outgoing(self.topics.audit, envelope.id.encode(), orjson.dumps(row.model_dump(exclude=unset)))
                )
        # else: the same event published twice (an outbox retry): already delivered, nothing to do.

    def _payload(self, opened: Opened) -> EventPayload:
        if opened.envelope is None or opened.plaintext is None:
            raise Rejected("sealing", opened.seal_error or "not sealed to the gateway")
        try:
            return PAYLOAD_MODELS[opened.envelope.type].model_validate(orjson.loads(opened.plaintext))
        except orjson.JSONDecodeError:
            raise Rejected("schema", "data is not JSON") from None
        except ValidationError as exc:
            fields = sorted({".".join(str(p) for p in e["loc"]) for e in exc.errors()})
            raise Rejected("schema", f"invalid fields: {', '.join(fields)[:300]}") from None

    # --- decisions ------------------------------------------------------------------------------

    async def _decide(self, batch: Batch, envelope: Envelope, payload: EventPayload) -> list[Disclosure]:
        match payload:
            case ConsentGranted():
                await self._grant(batch.session, envelope, payload)
                return []
            case ConsentWithdrawn():
                await self._withdraw(batch.session, envelope, payload)
                return []
            case ReferralResponded():
                return self._decide_answer(envelope, payload, str(payload.referral_id), what="referral")
            case AlertAcknowledged() | AlertEscalated():
                return self._decide_answer(envelope, payload, str(payload.alert_id), what="alert")
            case ReferralCreated() | AlertRaised():
                recipients = self.network.resolve(envelope.recipients, sender=envelope.agency_id)
                if not recipients:
                    raise Rejected("unroutable", "no agency matches the recipients")
                disclosures = [self._decide_for(envelope, payload, r) for r in recipients]
                self._remember_route(batch, envelope, disclosures)
                return disclosures
        raise Rejected("schema", f"no rule for {envelope.type.value}")

    def _decide_for(
        self, envelope: Envelope, payload: EventPayload, recipient: Recipient, *, closed_loop: bool = False
    ) -> Disclosure:
        present = present_categories(payload)
        basis = LegalBasis.CONSENT
        if isinstance(payload, AlertRaised):
            basis = basis_for(
                policy=self.policy,
                requested=envelope.legalbasis,
                recipient=recipient,
                has_children=Category.CHILDREN in present,
            )
        grants = self.state.grants.get(envelope.subject, {}).values()
        consented = consented_categories(
            grants, discloser=envelope.agency_id, recipient=recipient, purpose=envelope.purpose, at=envelope.time
        )
        return decide(
            policy=self.policy,
            role=envelope.subjectrole,
            present=present,
            recipient=recipient,
            basis=basis,
            consented=consented,
            closed_loop=closed_loop,
        )

    def _decide_answer(
        self, envelope: Envelope, payload: EventPayload, answered: str, *, what: str
    ) -> list[Disclosure]:
        """An answer (a referral's response, an alert's acknowledgement) goes back to the sender only."""
        route = self.state.routes.get(answered)
        if route is None:
            raise Rejected(f"unknown_{what}", f"no {what} with this id went through the gateway")
        if envelope.agency_id not in route.recipients:
            raise Rejected("not_a_recipient", f"only an agency that received the {what} may answer it")
        sender = self.network.by_id.get(route.sender)
        if sender is None:
            raise Rejected("unroutable", f"the {what}'s sender left the network")
        recipient = Recipient(agency_id=sender.id, sector=sender.sector)
        return [self._decide_for(envelope, payload, recipient, closed_loop=True)]

    def _remember_route(self, batch: Batch, envelope: Envelope, disclosures: list[Disclosure]) -> None:
        delivered = [d.recipient.agency_id for d in disclosures if d.outcome is not Outcome.DENIED]
        batch.insert(
            ReturnRoute,
            {
                "event_id": envelope.id,
                "sender": envelope.agency_id,
                "subject_ref": envelope.subject,
                "recipients": delivered,
            },
        )
        self.state.routes[envelope.id] = Route(sender=envelope.agency_id, recipients=tuple(delivered))

    async def _grant(self, session: AsyncSession, envelope: Envelope, payload: ConsentGranted) -> None:
        row = GrantRow(
            consent_id=str(payload.consent_id),
            subject_ref=envelope.subject,
            categories=list(payload.categories),
            recipients=list(payload.recipients),
            purposes=list(payload.purposes),
            valid_until=payload.valid_until,
            granted_by=envelope.agency_id,
        )
        if await session.get(GrantRow, row.consent_id) is None:
            session.add(row)
            self.state.grants.setdefault(envelope.subject, {})[row.consent_id] = _grant(row)

    async def _withdraw(self, session: AsyncSession, envelope: Envelope, payload: ConsentWithdrawn) -> None:
        row = await session.get(GrantRow, str(payload.consent_id))
        # Only the agency that registered a consent withdraws it; to any other, it does not exist.
        if row is None or row.subject_ref != envelope.subject or row.granted_by != envelope.agency_id:
            raise Rejected("unknown_consent", "no consent with this id registered by this agency for this subject")
        if row.withdrawn_at is None:
            row.withdrawn_at = envelope.time
            session.add(row)
        self.state.grants.get(envelope.subject, {}).pop(row.consent_id, None)

    # --- what leaves the gateway ----------------------------------------------------------------

    def _emit(self, batch: Batch, envelope: Envelope, payload: EventPayload, disclosures: list[Disclosure]) -> None:
        for d in disclosures:
            if d.outcome is Outcome.DENIED:
                continue
            share = restrict(payload, d.delivered).model_dump(mode="json", exclude_none=True)
            share.pop("raised_by", None)  # for the four-eyes review (in the audit record), not for recipients
            readdressed = envelope.readdressed(recipient=d.recipient.agency_id, legalbasis=d.basis, data=b"")
            batch.to_seal.append(
                ToSeal(
                    index=len(batch.outgoing),
                    envelope=readdressed,
                    plaintext=orjson.dumps(share),
                    recipient=d.recipient.agency_id,
                )
            )
            batch.outgoing.append(None)
        for d in disclosures:
            DECISIONS.labels(envelope.type.value, d.recipient.sector.value, d.outcome.value, d.basis.value).inc()
            if d.needs_review:
                REVIEW_QUEUE.labels(d.recipient.sector.value).inc()
        lines = [
            RecipientLine(
                recipient=d.recipient.agency_id,
                sector=d.recipient.sector.value,
                outcome=d.outcome.value,
                legal_basis=d.basis.value,
                delivered=sorted(d.delivered),
                removed={k.value: v.value for k, v in d.removed.items()},
                reason=d.reason.value if d.reason else None,
                review=d.needs_review,
            )
            for d in disclosures
        ]
        if not disclosures:
            lines = [RecipientLine(recipient="gateway", outcome="recorded")]
        self._report(batch, envelope.id, envelope.agency_id, envelope.type.value, lines)

    def _report(
        self, batch: Batch, event_id: str, source: str, event_type: str | None, lines: list[RecipientLine]
    ) -> None:
        if source not in self.network.by_id:
            return  # a sender no longer in the network has no status topic; the audit chain keeps the decision
        report = StatusReport(
            event_id=event_id, source=source, type=event_type, decided_at=self.clock.now(), recipients=lines
        )
        batch.outgoing.append(
            Outgoing(
                self.topics.status(source),
                event_id.encode(),
                report.model_dump_json().encode(),
                [(SOURCE_HEADER, source.encode())],
            )
        )

    def _report_rejection(self, batch: Batch, envelope: Envelope, reason: str) -> None:
        self._report(
            batch,
            envelope.id,
            envelope.agency_id,
            envelope.type.value,
            [RecipientLine(recipient="gateway", outcome="rejected", reason=reason)],
        )

    def _record_audit(
        self, batch: Batch, envelope: Envelope, disclosures: list[Disclosure], payload: EventPayload
    ) -> None:
        for d in disclosures:
            self.state.last_seq += 1
            record: dict[str, Any] = {
                "seq": self.state.last_seq,
                "event_id": envelope.id,
                "event_type": envelope.type.value,
                "source": envelope.agency_id,
                "recipient": d.recipient.agency_id,
                "sector": d.recipient.sector.value,
                "subject_ref": envelope.subject,
                "subject_role": envelope.subjectrole.value,
                "legal_basis": d.basis.value,
                "outcome": d.outcome.value,
                "delivered": sorted(d.delivered),
                "removed": {k.value: v.value for k, v in d.removed.items()},
                "reason": d.reason.value if d.reason else None,
                "review": d.needs_review,
                "policy_sha256": self.policy.sha256,
                "recorded_at": self.clock.now().isoformat(),
            }
            if isinstance(payload, AlertRaised) and payload.raised_by:
                # Only when known, so that records without it hash as they always did.
                record["raised_by"] = payload.raised_by
            record["prev_hash"] = self.state.last_hash
            record["hash"] = chain_hash(record, prev_hash=self.state.last_hash)
            self.state.last_hash = record["hash"]
            batch.insert(AuditRow, record)
            batch.outgoing.append(Outgoing(self.topics.audit, envelope.id.encode(), orjson.dumps(record)))
            if d.needs_review:
                justification = payload.justification if isinstance(payload, AlertRaised) else None
                batch.insert(
                    ReviewItem,
                    {
                        "event_id": envelope.id,
                        "recipient": d.recipient.agency_id,
                        "source": envelope.agency_id,
                        "justification": justification,
                        "raised_at": self.clock.now(),
                        "status": "pending",
                    },
                )

    def _dead_letter(self, batch: Batch, record: Record, reason: str, detail: str) -> None:
        headers = dead_letter_headers(
            reason=reason,
            detail=detail,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            original=list(record.headers),
        )
        key = (header(list(record.headers), "ce_id") or f"{record.topic}:{record.partition}:{record.offset}").encode()
        batch.outgoing.append(Outgoing(self.topics.dlq, key, record.value or b"", headers))
        DEAD_LETTERS.labels("gateway", reason).inc()
        log.warning("dead letter", extra={"reason": reason, "partition": record.partition, "offset": record.offset})
