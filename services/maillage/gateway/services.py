"""The consent gateway's use cases: decide a batch of submitted events; answer the data-protection officers."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from maillage.core.audit import repository as audit
from maillage.core.audit.models import AuditRow
from maillage.core.clock import Clock, SystemClock
from maillage.core.config.network import Network, NetworkError
from maillage.core.crypto.trust import Received, Refused
from maillage.core.messaging.bus import Record
from maillage.core.messaging.envelope import Envelope
from maillage.core.messaging.topics import Topics
from maillage.core.observability.metrics import DECISIONS, REVIEW_QUEUE
from maillage.core.storage.db import unit_of_work
from maillage.core.storage.retention import Purge
from maillage.core.web.paging import MAX_PAGE, decode_cursor, next_cursor
from maillage.domain.answers import Question, Unanswerable, answer_goes_to, opens_route, question_of, route_of
from maillage.domain.audit import audit_record, counted_fields
from maillage.domain.disclosure import (
    DenialReason,
    Disclosure,
    Outcome,
    Recipient,
    Removal,
    Shares,
    disclose,
)
from maillage.domain.events import (
    AlertRaised,
    CaseConferenceClosed,
    CaseConferenceConvened,
    ConsentGranted,
    ConsentWithdrawn,
    ConsultationAnswered,
    ConsultationRequested,
    DisclosureReviewed,
    EventPayload,
    NoticeAcknowledged,
    ReviewDecision,
    SubjectErasureRequested,
    SubjectReportHeld,
    SubjectReportRequested,
    SubjectRoleCorrected,
)
from maillage.domain.grounds import GROUNDED
from maillage.domain.policy import Policy
from maillage.domain.retention import Stored
from maillage.domain.status import recipient_line
from maillage.domain.vocabulary import Category, LegalBasis, Sector
from maillage.gateway import consultations, erasure, grounds, notices, reports, repository, reviews
from maillage.gateway.batch import Batch, Decided, State
from maillage.gateway.contracts import DisclosureLine, DisclosureReport
from maillage.gateway.models import GrantRow
from maillage.gateway.outgoing import Outbound, Outgoing, Share


@dataclass(frozen=True)
class Arrival:
    """A consumed record as decoding left it: the event it holds, or why it is refused."""

    record: Record
    event: Received | Refused

    @property
    def envelope(self) -> Envelope | None:
        """Set once the signature held: the sender can then be told."""
        return self.event.envelope


class Gateway:
    """Decides each submitted event for each recipient, and keeps the trace of it."""

    def __init__(
        self,
        *,
        network: Network,
        policy: Policy,
        topics: Topics,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock | None = None,
    ) -> None:
        self.network = network
        self.policy = policy
        self.topics = topics
        self.sessions = sessions
        self.clock: Clock = clock or SystemClock()
        self.state = State()

    async def start(self) -> None:
        async with self.sessions() as session:
            self.state = await State.load(session)

    async def process(self, arrivals: Sequence[Arrival], *, chain: int = 0) -> list[Outgoing | Share]:
        """Decide a batch of one input partition (`chain`, whose audit chain it extends) in one unit of work,
        committed when this returns. What it returns must leave together with the batch's offsets, in one
        Kafka transaction of that partition's producer (handlers.py)."""
        try:
            async with unit_of_work(self.sessions) as session:
                batch = Batch(
                    session=session, decided=await _decided(session, arrivals), out=Outbound(self.topics), chain=chain
                )
                await self._catch_up(session, arrivals, batch.decided)
                for arrival in arrivals:
                    await self._process_one(batch, arrival)
                await repository.insert_new(session, batch.rows)
                await audit.append(session, batch.audit)
        except Exception:
            # The transaction rolled back: forget what was applied in memory before the batch is read again.
            await self.start()
            raise
        for labels, count in batch.decisions.items():
            DECISIONS.labels(*labels).inc(count)
        for sector, count in batch.reviews.items():
            REVIEW_QUEUE.labels(sector).inc(count)
        return batch.out.records

    async def _catch_up(self, session: AsyncSession, arrivals: Sequence[Arrival], decided: dict[str, Decided]) -> None:
        """Another gateway's decisions this one's memory may lack. A conference may have been convened or closed
        by the gateway of another partition (it names subjects of any): each one the batch's events name is read
        again — only those, so that a batch's cost does not grow with every conference ever held. And a record
        already decided at its very place was decided by a gateway whose Kafka transaction did not commit — this
        one after a crash, or an owner fenced since: what it stored (consents, chain heads) is read again."""
        named = {c for a in arrivals if (c := _conference_named(a)) is not None}
        if named:
            found = await repository.conferences(session, ids=named)
            for conference_id in named:
                if conference_id in found:
                    self.state.conferences[conference_id] = found[conference_id]
                else:  # never convened, or purged since
                    self.state.conferences.pop(conference_id, None)
        if any(_decided_here(a, decided) for a in arrivals):
            self.state = await State.load(session)

    async def _process_one(self, batch: Batch, arrival: Arrival) -> None:
        record, event, envelope = arrival.record, arrival.event, arrival.envelope
        if envelope is None:
            # Before anything else: an unsigned or forged record is neither decided nor answered.
            assert isinstance(event, Refused)
            batch.out.dead_letter(record, event)
            return
        digest = record_digest(record)
        before = batch.decided.get(envelope.id)
        if before is not None:
            await self._seen_before(batch, arrival, before, digest=digest)
            return
        if isinstance(event, Refused):
            self._reject(batch, record, envelope, event)
            return
        event = self._as_corrected(event)
        envelope = event.envelope
        try:
            disclosures = await self._decide(batch, envelope, event.payload)
        except Refused as refused:
            self._reject(batch, record, envelope, refused)
            return
        self._record(batch, record, event, disclosures, digest=digest)

    def _as_corrected(self, event: Received) -> Received:
        """The event with the person's role as an agency corrected it, whatever the event states: every later
        decision (ceilings, audit, what recipients are told) rests on the right role, until corrected again."""
        corrected = self.state.roles.get(event.envelope.subject)
        if (
            corrected is None
            or corrected is event.envelope.subjectrole
            or isinstance(event.payload, SubjectRoleCorrected)
        ):
            return event
        return replace(event, envelope=replace(event.envelope, subjectrole=corrected))

    def _reject(self, batch: Batch, record: Record, envelope: Envelope, refused: Refused) -> None:
        """A signed event the gateway will not decide: a dead letter, and its sender is told why."""
        batch.out.dead_letter(record, refused)
        self._report(batch, envelope, [recipient_line(recipient="gateway", outcome="rejected", reason=refused.reason)])

    async def _seen_before(self, batch: Batch, arrival: Arrival, before: Decided, *, digest: str) -> None:
        record, event = arrival.record, arrival.event
        if before.digest != digest and before.digest != record_digest(record, signature=True):
            batch.out.dead_letter(record, Refused("replay", "an event with this id and other content was seen"))
        elif (before.partition, before.offset) == (record.partition, record.offset):
            # The same record again after a crash: its Kafka transaction was aborted, so emit the
            # decisions already taken (and audited) again, rather than deciding anew.
            if isinstance(event, Refused):
                raise event
            self._emit(batch, event, [_disclosure_from_json(d) for d in before.disclosures])
            for row in await audit.of_event(batch.session, event.envelope.id):
                batch.out.audit(row.get("alert_id") or event.envelope.id, row)  # a review: keyed as its alert
            await notices.replay(self, batch, event)
            await reports.replay(self, batch, event)
        # else: the same event published twice (an outbox retry): already delivered, nothing to do.

    # --- decisions ------------------------------------------------------------------------------

    async def _decide(self, batch: Batch, envelope: Envelope, payload: EventPayload) -> list[Disclosure]:
        match payload:
            case ConsentGranted():
                await self._grant(batch.session, envelope, payload)
                return []
            case ConsentWithdrawn():
                withdrawn = await self._withdraw(batch.session, envelope, payload)
                if withdrawn is not None:
                    await notices.notify_withdrawal(self, batch, cause=envelope, consent_id=withdrawn)
                return []
            case NoticeAcknowledged():  # a receipt, or an erasure confirmed
                await notices.acknowledge(self, batch, envelope, payload)
                return []
            case SubjectErasureRequested():
                await erasure.request(self, batch, envelope, payload)
                return []
            case SubjectRoleCorrected():
                await erasure.correct_role(self, batch, envelope, payload)
                return []
            case ConsultationRequested():
                return [self._consult(batch, envelope, payload)]
            case ConsultationAnswered():
                routes = self.state.routes
                return [
                    consultations.to_asker(envelope, payload, network=self.network, policy=self.policy, routes=routes)
                ]
            case DisclosureReviewed():
                await self._reviewed(batch, envelope, payload)
                return []
            case CaseConferenceConvened():
                return await grounds.convene(
                    batch.session, envelope, payload, network=self.network, conferences=self.state.conferences
                )
            case CaseConferenceClosed():
                return await grounds.close(
                    batch.session, envelope, payload, network=self.network, conferences=self.state.conferences
                )
            case SubjectReportRequested():
                await reports.answer_request(self, batch, envelope, payload)
                return []
            case SubjectReportHeld():
                await reports.place_hold(self, batch, envelope, payload)
                return []
        question = question_of(payload)
        if question is not None:
            return [self._answer(envelope, payload, question)]
        if opens_route(payload):
            return self._send(batch, envelope, payload)
        raise Refused("schema", f"no rule for {envelope.type.value}")

    def _send(self, batch: Batch, envelope: Envelope, payload: EventPayload) -> list[Disclosure]:
        grounds.check_grounds(envelope, payload, network=self.network)
        pole = self._pole(envelope)
        recipients = self.network.resolve(envelope.recipients, sender=envelope.agency_id, pole=pole)
        if not recipients:
            raise Refused("unroutable", "no agency matches the recipients")
        disclosures = [self._disclose(envelope, payload, r) for r in recipients]
        route = route_of(sender=envelope.agency_id, disclosures=disclosures)
        self.state.routes[envelope.id] = route
        batch.rows.routes.append(
            {
                "event_id": envelope.id,
                "sender": route.sender,
                "subject_ref": envelope.subject,
                "recipients": list(route.recipients),
            }
        )
        return disclosures

    def _consult(self, batch: Batch, envelope: Envelope, payload: ConsultationRequested) -> Disclosure:
        """An anonymous consultation to its Pôle's desk, which alone may answer it (gateway/consultations.py)."""
        disclosure = consultations.to_desk(envelope, payload, network=self.network, policy=self.policy)
        route = route_of(sender=envelope.agency_id, disclosures=[disclosure])
        self.state.routes[envelope.id] = route
        batch.rows.routes.append(
            {
                "event_id": envelope.id,
                "sender": route.sender,
                "subject_ref": envelope.subject,
                "recipients": [*route.recipients],
            }
        )
        return disclosure

    def _pole(self, envelope: Envelope) -> str | None:
        """The event's Pôle; none needed when only agencies named by id are addressed, and none named."""
        try:
            return self.network.pole_of(envelope.agency_id, asked=envelope.pole)
        except NetworkError as exc:
            if envelope.pole is None and not any(r in set(Sector) for r in envelope.recipients):
                return None
            raise Refused("pole", str(exc)) from None

    def _audited_pole(self, envelope: Envelope) -> str | None:
        """The Pôle the figures count the event in: the one it names, else its sender's only one."""
        try:
            return self.network.pole_of(envelope.agency_id, asked=envelope.pole)
        except NetworkError:
            return None

    def _answer(self, envelope: Envelope, payload: EventPayload, question: Question) -> Disclosure:
        route = self.state.routes.get(question.event_id)
        try:
            sender_id = answer_goes_to(route, question=question, answerer=envelope.agency_id)
        except Unanswerable as exc:
            raise Refused(exc.reason, exc.detail) from None
        sender = self.network.by_id.get(sender_id)
        if sender is None:
            raise Refused("unroutable", f"the {question.what}'s sender left the network")
        recipient = Recipient(agency_id=sender.id, sector=sender.sector)
        return self._disclose(envelope, payload, recipient, closed_loop=True)

    def _disclose(
        self, envelope: Envelope, payload: EventPayload, recipient: Recipient, *, closed_loop: bool = False
    ) -> Disclosure:
        if envelope.legalbasis in GROUNDED and not closed_loop:
            conferences, at = self.state.conferences, self.clock.now()
            return grounds.disclose(envelope, payload, recipient, policy=self.policy, conferences=conferences, at=at)
        return disclose(
            payload,
            recipient=recipient,
            policy=self.policy,
            grants=self.state.grants.get(envelope.subject, {}).values(),
            sender=envelope.agency_id,
            role=envelope.subjectrole,
            purpose=envelope.purpose,
            at=envelope.time,
            requested=envelope.legalbasis,
            closed_loop=closed_loop,
        )

    async def _grant(self, session: AsyncSession, envelope: Envelope, payload: ConsentGranted) -> None:
        row = GrantRow(
            consent_id=str(payload.consent_id),
            subject_ref=envelope.subject,
            categories=list(payload.categories),
            recipients=list(payload.recipients),
            purposes=list(payload.purposes),
            valid_until=payload.valid_until,
            granted_by=envelope.agency_id,
            disclosers=list(payload.disclosers) or None,
        )
        grant = await repository.add_grant(session, row)
        if grant is not None:
            self.state.grants.setdefault(envelope.subject, {})[grant.consent_id] = grant

    async def _withdraw(self, session: AsyncSession, envelope: Envelope, payload: ConsentWithdrawn) -> str | None:
        """The consent withdrawn now, None when it was already: its past recipients were told then."""
        row = await repository.grant_row(session, str(payload.consent_id))
        # Only the agency that registered a consent withdraws it; to any other, it does not exist.
        if row is None or row.subject_ref != envelope.subject or row.granted_by != envelope.agency_id:
            raise Refused("unknown_consent", "no consent with this id registered by this agency for this subject")
        first = row.withdrawn_at is None
        repository.withdraw(session, row, at=envelope.time)
        self.state.grants.get(envelope.subject, {}).pop(row.consent_id, None)
        return row.consent_id if first else None

    async def _reviewed(self, batch: Batch, envelope: Envelope, payload: DisclosureReviewed) -> None:
        """A second professional's decision on a danger alert (art. 458bis): an audit record, nothing more
        here; the justification it rests on stays at the raising agency."""
        review = await reviews.accept(
            batch.session,
            envelope,
            payload,
            unsaved=batch.audit,
            policy_sha256=self.policy.sha256,
            recorded_at=self.clock.now().isoformat(),
        )
        record = self.state.link(review.record, chain=batch.chain)
        batch.audit.append(record)
        batch.out.audit(review.alert_id, record)  # keyed as the alert's records: read after them
        if payload.decision is ReviewDecision.REJECTED:
            # Each recipient erases what it received under the alert, and confirms (gateway/notices.py).
            await notices.notify_rejected_disclosure(self, batch, cause=envelope, alert_id=review.alert_id)

    # --- the trace of a decision, and what leaves the gateway -----------------------------------

    def _record(
        self, batch: Batch, record: Record, event: Received, disclosures: list[Disclosure], *, digest: str
    ) -> None:
        decided = Decided(
            digest=digest,
            partition=record.partition,
            offset=record.offset,
            disclosures=[_disclosure_to_json(d) for d in disclosures],
        )
        now = self.clock.now()
        batch.decided[event.envelope.id] = decided
        batch.rows.processed.append(
            {
                "event_id": event.envelope.id,
                "digest": digest,
                "decided_at": now,
                "partition": record.partition,
                "offset": record.offset,
                "disclosures": decided.disclosures,
            }
        )
        self._audit(batch, event, disclosures, at=now)
        self._emit(batch, event, disclosures)

    def _audit(self, batch: Batch, event: Received, disclosures: list[Disclosure], *, at: datetime) -> None:
        envelope, payload = event.envelope, event.payload
        alert = payload if isinstance(payload, AlertRaised) else None
        on_grounds = grounds.audit_fields(payload, basis=envelope.legalbasis)
        pole, counted = self._audited_pole(envelope), counted_fields(payload)
        for d, subject_ref in grounds.audited(envelope, payload, disclosures, conferences=self.state.conferences):
            content = audit_record(
                d,
                event_id=envelope.id,
                event_type=envelope.type.value,
                source=envelope.agency_id,
                subject_role=envelope.subjectrole,
                subject_ref=subject_ref,
                policy_sha256=self.policy.sha256,
                recorded_at=at.isoformat(),
                raised_by=alert.raised_by if alert else None,
                pole=pole,
                counted=counted,
                **on_grounds,
            )
            record = self.state.link(content, chain=batch.chain)
            batch.audit.append(record)
            batch.out.audit(envelope.id, record)

    def _emit(self, batch: Batch, event: Received, disclosures: list[Disclosure]) -> None:
        envelope, shares = event.envelope, None
        for d in disclosures:
            if d.outcome is not Outcome.DENIED:
                if shares is None:  # dumped once, for the first recipient given anything
                    shares = Shares(event.payload)
                readdressed = envelope.readdressed(recipient=d.recipient.agency_id, legalbasis=d.basis, data=b"")
                batch.out.share(readdressed, orjson.dumps(shares.of(d.delivered)))
            batch.decisions[envelope.type.value, d.recipient.sector.value, d.outcome.value, d.basis.value] += 1
            if d.needs_review:
                batch.reviews[d.recipient.sector.value] += 1
        lines = [_line(d) for d in disclosures] or [recipient_line(recipient="gateway", outcome="recorded")]
        self._report(batch, envelope, lines)

    def _report(self, batch: Batch, envelope: Envelope, lines: list[dict[str, Any]]) -> None:
        if envelope.agency_id in self.network.by_id:
            batch.out.status(envelope, lines, at=self.clock.now())
        # else: a sender no longer in the network has no status topic; the audit chain keeps the decision.


async def _decided(session: AsyncSession, arrivals: Sequence[Arrival]) -> dict[str, Decided]:
    ids = [a.envelope.id for a in arrivals if a.envelope is not None]
    return {
        p["event_id"]: Decided(
            digest=p["digest"], partition=p["partition"], offset=p["offset"], disclosures=p["disclosures"]
        )
        for p in await repository.processed(session, ids)
    }


def _conference_named(arrival: Arrival) -> str | None:
    """The case conference an event names: convened, closed, or disclosed under (`case_conference`)."""
    if not isinstance(arrival.event, Received):
        return None
    conference_id = getattr(arrival.event.payload, "conference_id", None)
    return str(conference_id) if conference_id is not None else None


def _decided_here(arrival: Arrival, decided: dict[str, Decided]) -> bool:
    before = decided.get(arrival.envelope.id) if arrival.envelope is not None else None
    return before is not None and (before.partition, before.offset) == (arrival.record.partition, arrival.record.offset)


_SIGNATURE = frozenset({"ce_sigkid", "ce_sig", "ce_sigpath"})


def record_digest(record: Record, *, signature: bool = False) -> str:
    """The record's exact content, its signature aside: the same event id with other content is a replay, while
    an event its relay published again, signed in another batch, is the same event. `signature`: as digests were
    made before relays signed per batch (decisions taken then still compare)."""
    digest = hashlib.sha256(record.value or b"")
    for name, value in sorted(record.headers):
        if signature or name not in _SIGNATURE:
            digest.update(name.encode() + b"\0" + value + b"\0")
    return digest.hexdigest()


def _line(d: Disclosure) -> dict[str, Any]:
    return recipient_line(
        recipient=d.recipient.agency_id,
        sector=d.recipient.sector.value,
        outcome=d.outcome.value,
        legal_basis=d.basis.value,
        delivered=[c.value for c in sorted(d.delivered)],
        removed={k.value: v.value for k, v in d.removed.items()},
        reason=d.reason.value if d.reason else None,
        review=d.needs_review,
    )


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


# --- the data-protection officers' reports (read-only) -------------------------------------------


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
    which agencies (a shelter, say) hold the person's data. About a consultation, which identifies no one,
    each party also sees what it received: the asker, the desk's answer."""
    async with sessions() as session:
        rows = await audit.disclosures_about(
            session,
            subject_ref,
            source=by,
            after=decode_cursor(cursor),
            limit=limit,
            or_received=subject_ref.startswith(consultations.CONSULTATION_PREFIX),
        )
    return DisclosureReport(
        subject_ref=subject_ref,
        disclosures=[_disclosure_line(row, network) for row in rows],
        next_cursor=next_cursor([row.id or 0 for row in rows], limit=limit),
    )


def _disclosure_line(row: AuditRow, network: Network) -> DisclosureLine:
    agency = network.by_id.get(row.recipient)
    # The line's own fields only: the record also holds the subject, the raiser and the chain's hashes.
    recorded = row.model_dump(include=set(DisclosureLine.model_fields))
    return DisclosureLine(**recorded, recipient_name=agency.name if agency else None)


def retention(sessions: async_sessionmaker[AsyncSession], network: Network) -> Purge:
    """The gateway's purge: its dedup records and the consents that ended. Its audit chain is never purged:
    the legal record of every disclosure, hash-chained (a row gone would break every later link)."""
    steps = {
        Stored.DEDUP_RECORDS: (repository.purge_processed,),
        Stored.ENDED_CONSENTS: (repository.purge_ended_grants,),
    }
    return Purge(service="gateway", sessions=sessions, retention=network.retention, steps=steps)
