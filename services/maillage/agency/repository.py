"""Every query of the agency's own tables (its webhooks' are in maillage.core.webhooks.repository)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, String, bindparam, cast, delete, or_
from sqlalchemy.orm import Mapped
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from maillage.agency.models import (
    AlertProgress,
    AlertReview,
    CaseConferenceRow,
    ConsentRow,
    ConsultationRow,
    IdempotencyRecord,
    InboxItem,
    NoticeReceipt,
    RecipientStatus,
    ReferralRow,
    ReportRequestRow,
    SentEvent,
)
from maillage.core.outbox.models import OutboxRecord
from maillage.core.storage.repository import delete_batch, read_rows
from maillage.domain.events import EventType
from maillage.domain.retention import FINISHED_REFERRALS
from maillage.domain.vocabulary import Role

# --- consents -----------------------------------------------------------------------------------


async def consent(session: AsyncSession, consent_id: str) -> ConsentRow | None:
    return await session.get(ConsentRow, consent_id)


async def consents_of(session: AsyncSession, subject_ref: str) -> Sequence[ConsentRow]:
    """The person's consents registered here, oldest first."""
    query = select(ConsentRow).where(ConsentRow.subject_ref == subject_ref).order_by(col(ConsentRow.granted_at))
    return (await session.exec(query)).all()


# --- what the agency sent, and its fate ---------------------------------------------------------


async def sent_event(session: AsyncSession, event_id: str) -> SentEvent | None:
    return await session.get(SentEvent, event_id)


async def sent_events_page(session: AsyncSession, *, after: str, limit: int, pending: bool) -> Sequence[SentEvent]:
    """Events this agency sent, oldest first (their ids are time-ordered); only those without a decision yet
    when `pending`."""
    query = select(SentEvent).where(col(SentEvent.event_id) > after)
    if pending:
        decided = select(RecipientStatus.event_id).where(RecipientStatus.event_id == SentEvent.event_id)
        query = query.where(~decided.exists())
    return (await session.exec(query.order_by(col(SentEvent.event_id)).limit(limit))).all()


async def statuses_of(session: AsyncSession, event_ids: list[str]) -> Sequence[RecipientStatus]:
    """What the gateway decided for each recipient of these events, by event and recipient."""
    query = (
        select(RecipientStatus)
        .where(col(RecipientStatus.event_id).in_(event_ids))
        .order_by(col(RecipientStatus.event_id), col(RecipientStatus.recipient))
    )
    return (await session.exec(query)).all()


async def alert_progress_of(session: AsyncSession, alert_ids: list[str]) -> Sequence[AlertProgress]:
    return (await session.exec(select(AlertProgress).where(col(AlertProgress.alert_id).in_(alert_ids)))).all()


# Built once, as every statement a batch of the consumer asks (its IN list most of all: building it cost more than
# SQLite's running it, README "A lean pipeline", eleventh round).
_STATUSES_KNOWN = select(RecipientStatus.event_id, RecipientStatus.recipient).where(
    col(RecipientStatus.event_id).in_(bindparam("ids", expanding=True))
)
_INBOX_KNOWN = select(InboxItem.event_id).where(col(InboxItem.event_id).in_(bindparam("ids", expanding=True)))


async def statuses_known(session: AsyncSession, event_ids: list[str]) -> set[tuple[str, str]]:
    """The (event, recipient) pairs already stored among these events."""
    rows = await read_rows(session, _STATUSES_KNOWN, {"ids": event_ids}) if event_ids else []
    return {(row["event_id"], row["recipient"]) for row in rows}


async def alert_progress(session: AsyncSession, alert_id: str, recipient: str) -> AlertProgress | None:
    return await session.get(AlertProgress, (alert_id, recipient))


# --- inbox and referrals ------------------------------------------------------------------------


async def inbox_page(session: AsyncSession, *, after: int, limit: int) -> Sequence[InboxItem]:
    query = select(InboxItem).where(col(InboxItem.seq) > after).order_by(col(InboxItem.seq)).limit(limit)
    return (await session.exec(query)).all()


async def inbox_known(session: AsyncSession, event_ids: list[str]) -> set[str]:
    """The events among these already in the inbox."""
    rows = await read_rows(session, _INBOX_KNOWN, {"ids": event_ids}) if event_ids else []
    return {row["event_id"] for row in rows}


async def erase_inbox_items(session: AsyncSession, event_ids: list[str]) -> int:
    """Delete these events from the inbox; how many were there."""
    await session.flush()  # an event stored earlier in this transaction is erased too
    result = await session.exec(delete(InboxItem).where(col(InboxItem.event_id).in_(event_ids)))
    return int(result.rowcount or 0)


# What this agency asked or answered about a person's rights: metadata only (no payload value), and what it
# shows the person — which holders confirmed their erasure — so an erasure keeps them.
RIGHTS_EXERCISED = [
    EventType.SUBJECT_ERASURE_REQUESTED.value,
    EventType.SUBJECT_ERASURE_CONFIRMED.value,
    EventType.SUBJECT_ROLE_CORRECTED.value,
    EventType.NOTICE_ACKNOWLEDGED.value,
]


async def erase_referrals(session: AsyncSession, referral_ids: list[str]) -> None:
    """These referrals (an event id is its referral's id), gone with what their sender wrote about them."""
    await session.exec(delete(ReferralRow).where(col(ReferralRow.referral_id).in_(referral_ids)))


async def erase_subject(session: AsyncSession, subject_ref: str, *, keep: Sequence[str] = ()) -> list[str]:
    """Everything this agency holds about a person, gone: what it received (inbox items, referrals), what it
    sent (its events, their fate, their published outbox records, sealed as they are), the consents it
    registered, the danger justifications written here, the answers kept for idempotent requests that name
    them; and the person taken out of the case conferences about them. Kept: the events in `keep` (the
    erasure itself, the notice asking it), the receipts of notices (metadata). Returns the events erased, whose
    webhook deliveries go too (core/webhooks)."""
    await session.flush()  # rows stored earlier in this transaction go too
    received = (
        await session.exec(
            select(InboxItem.event_id).where(InboxItem.subject_ref == subject_ref, col(InboxItem.event_id).not_in(keep))
        )
    ).all()
    sent = (
        await session.exec(
            select(SentEvent.event_id).where(
                SentEvent.subject_ref == subject_ref,
                col(SentEvent.event_id).not_in(keep),
                col(SentEvent.type).not_in(RIGHTS_EXERCISED),
            )
        )
    ).all()
    events = [*received, *sent]
    await session.exec(delete(InboxItem).where(col(InboxItem.event_id).in_(received)))
    await session.exec(delete(RecipientStatus).where(col(RecipientStatus.event_id).in_(sent)))
    await session.exec(delete(AlertProgress).where(col(AlertProgress.alert_id).in_(sent)))
    await session.exec(delete(SentEvent).where(col(SentEvent.event_id).in_(sent)))
    published = col(OutboxRecord.published_at).is_not(None)
    await session.exec(delete(OutboxRecord).where(col(OutboxRecord.event_id).in_(sent), published))
    for table, column in (
        (ReferralRow, ReferralRow.subject_ref),
        (ConsentRow, ConsentRow.subject_ref),
        (AlertReview, AlertReview.subject_ref),
        (ReportRequestRow, ReportRequestRow.subject_ref),  # the documents handed over to the person
    ):
        await session.exec(delete(table).where(col(column) == subject_ref))
    naming = cast(IdempotencyRecord.response, String).contains(subject_ref)
    await session.exec(delete(IdempotencyRecord).where(naming))
    conferences = await session.exec(select(CaseConferenceRow))
    for conference in conferences.all():
        if subject_ref in conference.subjects:
            conference.subjects = [s for s in conference.subjects if s != subject_ref]
            session.add(conference)
    return events


async def role_of(session: AsyncSession, subject_ref: str) -> Role | None:
    """The role this agency last recorded or received the person under."""
    for column, role in (
        (InboxItem.subject_ref, InboxItem.subject_role),
        (ReferralRow.subject_ref, ReferralRow.subject_role),
        (AlertReview.subject_ref, AlertReview.subject_role),
    ):
        found = (await session.exec(select(role).where(col(column) == subject_ref).limit(1))).first()
        if found:
            return Role(found)
    return None


async def correct_role(session: AsyncSession, subject_ref: str, role: str) -> None:
    """The person's referrals here carry the role as corrected."""
    for row in (await session.exec(select(ReferralRow).where(ReferralRow.subject_ref == subject_ref))).all():
        row.subject_role = role
        session.add(row)


async def notice_receipt(session: AsyncSession, notice_id: str) -> NoticeReceipt | None:
    return await session.get(NoticeReceipt, notice_id)


async def notice_receipts_of(session: AsyncSession, causes: list[str]) -> Sequence[NoticeReceipt]:
    query = (
        select(NoticeReceipt)
        .where(col(NoticeReceipt.cause).in_(causes))
        .order_by(col(NoticeReceipt.cause), col(NoticeReceipt.recipient))
    )
    return (await session.exec(query)).all()


async def referral(session: AsyncSession, referral_id: str) -> ReferralRow | None:
    return await session.get(ReferralRow, referral_id)


async def consultation(session: AsyncSession, consultation_id: str) -> ConsultationRow | None:
    return await session.get(ConsultationRow, consultation_id)


# --- reviews of danger alerts (art. 458bis) ----------------------------------------------------


async def review(session: AsyncSession, alert_id: str) -> AlertReview | None:
    return (await session.exec(select(AlertReview).where(AlertReview.alert_id == alert_id))).first()


async def reviews_page(session: AsyncSession, *, after: int, limit: int, pending: bool) -> Sequence[AlertReview]:
    """Oldest first; `pending`: only those no one decided yet."""
    query = select(AlertReview).where(col(AlertReview.seq) > after).order_by(col(AlertReview.seq)).limit(limit)
    if pending:
        query = query.where(col(AlertReview.decision).is_(None))
    return (await session.exec(query)).all()


async def disclosed_under_danger(session: AsyncSession, alert_id: str) -> list[str]:
    """The recipients the gateway disclosed the alert to under `danger`, as it reported them."""
    query = select(RecipientStatus.recipient).where(
        RecipientStatus.event_id == alert_id, col(RecipientStatus.review).is_(True)
    )
    return sorted((await session.exec(query)).all())


# --- idempotency --------------------------------------------------------------------------------


async def idempotency_record(session: AsyncSession, key: str) -> IdempotencyRecord | None:
    return await session.get(IdempotencyRecord, key)


# --- case conferences ---------------------------------------------------------------------------


async def case_conference(session: AsyncSession, conference_id: str) -> CaseConferenceRow | None:
    return await session.get(CaseConferenceRow, conference_id)


# --- the person's disclosure report ---------------------------------------------------------------


async def report_request(session: AsyncSession, request_id: str) -> ReportRequestRow | None:
    return await session.get(ReportRequestRow, request_id)


# --- retention: what finished before a cut-off, in batches (maillage.core.storage.retention) -----------


def _open_referral(event_id: Mapped[str]) -> ColumnElement[bool]:
    """A referral (its id is its event's) someone still works on, here or at its recipient."""
    return (
        select(ReferralRow.referral_id)
        .where(col(ReferralRow.referral_id) == event_id, col(ReferralRow.state).not_in(FINISHED_REFERRALS))
        .exists()
    )


async def purge_inbox(session: AsyncSession, before: datetime, limit: int) -> int:
    """Inbox items received before `before`, except a referral still open: its recipient still acts on it."""
    old = col(InboxItem.received_at) < before
    return await delete_batch(session, InboxItem.seq, old, ~_open_referral(col(InboxItem.event_id)), limit=limit)


async def purge_closed_referrals(session: AsyncSession, before: datetime, limit: int) -> int:
    """Referrals declined or closed, unchanged since before `before`."""
    finished = col(ReferralRow.state).in_(FINISHED_REFERRALS), col(ReferralRow.updated_at) < before
    return await delete_batch(session, ReferralRow.referral_id, *finished, limit=limit)


def _sent_past(before: datetime) -> Sequence[ColumnElement[bool]]:
    """Events sent before `before` whose loop is closed: no referral of theirs open, no alert of theirs that a
    recipient's on-call has not acknowledged yet."""
    unacknowledged = (
        select(AlertProgress.alert_id)
        .where(col(AlertProgress.alert_id) == SentEvent.event_id, col(AlertProgress.state) != "acknowledged")
        .correlate(SentEvent)
        .exists()
    )
    return (col(SentEvent.created_at) < before, ~_open_referral(col(SentEvent.event_id)), ~unacknowledged)


async def purge_sent_events(session: AsyncSession, before: datetime, limit: int) -> int:
    """Events sent before `before` whose loop is closed, with the gateway's decisions and the dispatcher's word
    on them, in one transaction: a decision is never left behind without its event."""
    chosen = (await session.exec(select(SentEvent.event_id).where(*_sent_past(before)).limit(limit))).all()
    if chosen:
        await session.exec(delete(RecipientStatus).where(col(RecipientStatus.event_id).in_(chosen)))
        await session.exec(delete(AlertProgress).where(col(AlertProgress.alert_id).in_(chosen)))
        await session.exec(delete(SentEvent).where(col(SentEvent.event_id).in_(chosen)))
    return len(chosen)


async def purge_ended_consents(session: AsyncSession, before: datetime, limit: int) -> int:
    """Consents withdrawn, or expired, before `before`; a consent in force always stays."""
    ended = or_(col(ConsentRow.withdrawn_at) < before, col(ConsentRow.valid_until) < before)
    return await delete_batch(session, ConsentRow.consent_id, ended, limit=limit)


async def purge_idempotency_keys(session: AsyncSession, before: datetime, limit: int) -> int:
    """Idempotency keys of requests made before `before`: a retry comes within minutes, not weeks."""
    old = col(IdempotencyRecord.created_at) < before
    return await delete_batch(session, IdempotencyRecord.key, old, limit=limit)
