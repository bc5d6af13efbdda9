"""Notices to the past recipients of given events, with receipts: the one mechanism a withdrawal of consent,
a rejected danger disclosure (and later an erasure or a role correction) reuse.

Within a batch of the gateway, `issue_notices` sends each past recipient a `notice.issued` event (which
events, which categories, whether to erase: no payload value), sealed to it and signed by the gateway like
any delivery, in the batch's Kafka transaction; audits each notice; and tells the agency whose event caused
it, on its status topic. The recipient's service stores the notice and answers `notice.acknowledged`;
`acknowledge` audits the receipt and takes it back to that agency (the notice row is the return route).

A later capability calls, from `Gateway._decide`:

    recipients = await past_recipients(batch, subject_ref=envelope.subject, event_ids={alert_id})
    await issue_notices(gateway, batch, kind=NoticeKind.DISCLOSURE_REJECTED, cause=envelope,
                        recipients=recipients, erase=True)

(`notify_rejected_disclosure` does exactly that.)
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson

from maillage.core.audit import repository as audit
from maillage.core.clock import as_utc
from maillage.core.crypto.trust import Received, Refused
from maillage.core.messaging.envelope import Envelope, new_event_id, source_of
from maillage.domain.events import EventType, Holder, NoticeAcknowledged, NoticeIssued, NoticeKind
from maillage.domain.notices import ACKNOWLEDGED, NOTIFIED, NoticeLine, PastRecipient
from maillage.domain.notices import past_recipients as recipients_in
from maillage.domain.status import SOURCE_HEADER, StatusReport
from maillage.domain.vocabulary import Category, Role
from maillage.gateway import repository
from maillage.gateway.batch import Batch, Parts
from maillage.gateway.models import NoticeRow
from maillage.gateway.outgoing import Outgoing

DELIVERED = "delivered"  # a notice's state once the gateway has published it to its recipient


async def past_recipients(
    batch: Batch, *, subject_ref: str, consent_id: str | None = None, event_ids: Collection[str] | None = None
) -> list[PastRecipient]:
    """Every agency that received data about `subject_ref` under `consent_id`, or in one of `event_ids`: read
    from the audit chain, this batch's records included (a referral decided just before the withdrawal)."""
    stored = await audit.disclosed_about(batch.session, subject_ref)
    this_batch = [r for r in batch.audit if r.get("subject_ref") == subject_ref]
    return recipients_in([*stored, *this_batch], consent_id=consent_id, event_ids=event_ids)


async def issue_notices(
    gateway: Parts,
    batch: Batch,
    *,
    kind: NoticeKind,
    cause: Envelope,
    recipients: Sequence[PastRecipient],
    erase: bool = False,
    role: Role | None = None,
) -> list[NoticeRow]:
    """One notice to each of `recipients` about the events it received, caused by the event `cause` (whose
    sender is told, per recipient, that it was delivered and later acknowledged). `erase`: the recipient
    must delete what it received in those events, not only stop using it; `role`: a role correction's."""
    now = gateway.clock.now()
    rows = [_notice_row(kind=kind, cause=cause, recipient=r, erase=erase, role=role, at=now) for r in recipients]
    for row, recipient in zip(rows, recipients, strict=True):
        batch.session.add(row)
        _send(batch, cause, row)
        chain(gateway, batch, row.notice_id, _issued_record(gateway, cause, row, sector=recipient.sector.value))
    if rows:
        _tell(gateway, batch, cause=cause.id, originator=cause.agency_id, lines=[_line(r, DELIVERED) for r in rows])
    return rows


async def notify_withdrawal(gateway: Parts, batch: Batch, *, cause: Envelope, consent_id: str) -> list[NoticeRow]:
    """A consent was withdrawn: every agency that received data under it is told to stop using it."""
    recipients = await past_recipients(batch, subject_ref=cause.subject, consent_id=consent_id)
    return await issue_notices(gateway, batch, kind=NoticeKind.CONSENT_WITHDRAWN, cause=cause, recipients=recipients)


async def notify_rejected_disclosure(
    gateway: Parts, batch: Batch, *, cause: Envelope, alert_id: str
) -> list[NoticeRow]:
    """A danger disclosure (art. 458bis) was rejected on review (`cause`, the review event, about the alert's
    subject): every agency that received the alert is told to erase it, and its receipts go to the review's
    sender (`GET /v1/events/{review event id}` there)."""
    recipients = await past_recipients(batch, subject_ref=cause.subject, event_ids={alert_id})
    return await issue_notices(
        gateway, batch, kind=NoticeKind.DISCLOSURE_REJECTED, cause=cause, recipients=recipients, erase=True
    )


async def acknowledge(gateway: Parts, batch: Batch, envelope: Envelope, payload: NoticeAcknowledged) -> None:
    """A recipient's receipt: audited, and taken back to the agency whose event caused the notice. Only the
    agency the notice went to may acknowledge it; to any other it does not exist."""
    row = await repository.notice(batch.session, str(payload.notice_id))
    if row is None or row.recipient != envelope.agency_id or row.subject_ref != envelope.subject:
        raise Refused("unknown_notice", "no notice with this id was sent to this agency about this subject")
    if row.acknowledged_at is None:
        row.acknowledged_at, row.erased = payload.acknowledged_at, payload.erased
        batch.session.add(row)
    chain(gateway, batch, envelope.id, _receipt_record(gateway, envelope, row))
    _tell(gateway, batch, cause=row.cause, originator=row.originator, lines=[_line(row, ACKNOWLEDGED)])


async def replay(gateway: Parts, batch: Batch, event: Received) -> None:
    """The same record again after a crash (its Kafka transaction aborted): publish again what its notices
    and receipts published, as they were decided, rather than deciding anew."""
    if isinstance(event.payload, NoticeAcknowledged):
        row = await repository.notice(batch.session, str(event.payload.notice_id))
        if row is not None and row.acknowledged_at is not None:
            _tell(gateway, batch, cause=row.cause, originator=row.originator, lines=[_line(row, ACKNOWLEDGED)])
        return
    rows = await repository.notices_of(batch.session, event.envelope.id)
    for row in rows:
        _send(batch, event.envelope, row)
        for record in await audit.of_event(batch.session, row.notice_id):
            batch.out.audit(row.notice_id, record)
    if rows:
        lines = [_line(r, DELIVERED) for r in rows]
        _tell(gateway, batch, cause=event.envelope.id, originator=event.envelope.agency_id, lines=lines)


# --- what a notice is made of -------------------------------------------------------------------------


def _notice_row(
    *, kind: NoticeKind, cause: Envelope, recipient: PastRecipient, erase: bool, role: Role | None, at: datetime
) -> NoticeRow:
    return NoticeRow(
        notice_id=new_event_id(),
        cause=cause.id,
        kind=kind.value,
        originator=cause.agency_id,
        recipient=recipient.agency_id,
        subject_ref=cause.subject,
        subject_role=recipient.role.value,
        events=list(recipient.events),
        categories=sorted(recipient.categories),
        erase=erase,
        consents=sorted(recipient.consents),
        issued_at=at,
        holder=recipient.holder.value,
        role=role.value if role else None,
        misrouted=list(recipient.misrouted),
        disallowed=sorted(recipient.disallowed),
    )


def _payload(row: NoticeRow) -> NoticeIssued:
    return NoticeIssued(
        notice_id=UUID(row.notice_id),
        kind=NoticeKind(row.kind),
        cause=UUID(row.cause),
        events=tuple(UUID(e) for e in row.events),
        categories=tuple(row.categories),
        erase=row.erase,
        holder=Holder(row.holder),
        role=Role(row.role) if row.role else None,
        misrouted=tuple(UUID(e) for e in row.misrouted),
        disallowed=tuple(Category(c) for c in row.disallowed),
    )


def _send(batch: Batch, cause: Envelope, row: NoticeRow) -> None:
    """The notice, addressed to its recipient: sealed to its key and signed by the gateway as it leaves, like
    every delivery. It comes from the agency whose event caused it, about the same person."""
    envelope = Envelope(
        id=row.notice_id,
        source=source_of(row.originator),
        type=EventType.NOTICE_ISSUED,
        time=as_utc(row.issued_at),
        subject=row.subject_ref,
        subjectrole=Role(row.subject_role),
        legalbasis=cause.legalbasis,
        purpose=cause.purpose,
        recipient=row.recipient,
        data=b"",
    )
    batch.out.share(envelope, orjson.dumps(_payload(row).model_dump(mode="json")))


def _issued_record(gateway: Parts, cause: Envelope, row: NoticeRow, *, sector: str) -> dict[str, Any]:
    """A notice in the audit chain: to whom, about which events and categories (no value), why."""
    record: dict[str, Any] = {
        **_common(gateway, row),
        "event_id": row.notice_id,
        "event_type": EventType.NOTICE_ISSUED.value,
        "source": row.originator,
        "recipient": row.recipient,
        "sector": sector,
        "legal_basis": cause.legalbasis.value,
        "outcome": NOTIFIED,
        "notice": {
            "id": row.notice_id,
            "kind": row.kind,
            "cause": row.cause,
            "events": row.events,
            "categories": row.categories,
            "erase": row.erase,
            "holder": row.holder,
        },
    }
    if row.consents:
        record["consents"] = row.consents
    return record


def _receipt_record(gateway: Parts, envelope: Envelope, row: NoticeRow) -> dict[str, Any]:
    originator = gateway.network.by_id.get(row.originator)
    return {
        **_common(gateway, row),
        "event_id": envelope.id,
        "event_type": envelope.type.value,  # a receipt, or an erasure confirmed
        "source": row.recipient,
        "recipient": row.originator,
        "sector": originator.sector.value if originator else "",
        "legal_basis": envelope.legalbasis.value,
        "outcome": ACKNOWLEDGED,
        "notice": {
            "id": row.notice_id,
            "kind": row.kind,
            "cause": row.cause,
            "erased": row.erased or 0,
            "holder": row.holder,
        },
    }


def _common(gateway: Parts, row: NoticeRow) -> dict[str, Any]:
    return {
        "subject_ref": row.subject_ref,
        "subject_role": row.subject_role,
        "delivered": [],  # a notice carries no data
        "removed": {},
        "reason": None,
        "review": False,
        "policy_sha256": gateway.policy.sha256,
        "recorded_at": gateway.clock.now().isoformat(),
    }


def chain(gateway: Parts, batch: Batch, event_id: str, content: Mapping[str, Any]) -> None:
    record = gateway.state.link(content, chain=batch.chain)
    batch.audit.append(record)
    batch.out.audit(event_id, record)


def _line(row: NoticeRow, state: str) -> NoticeLine:
    acknowledged = state == ACKNOWLEDGED
    return NoticeLine(
        notice_id=row.notice_id,
        recipient=row.recipient,
        kind=NoticeKind(row.kind),
        state=state,
        events=row.events,
        categories=row.categories,
        erase=row.erase,
        at=row.acknowledged_at if acknowledged and row.acknowledged_at else row.issued_at,
        erased=row.erased if acknowledged else None,
        holder=Holder(row.holder),
        misrouted=row.misrouted,
        disallowed=[Category(c) for c in row.disallowed],
    )


def _tell(gateway: Parts, batch: Batch, *, cause: str, originator: str, lines: list[NoticeLine]) -> None:
    """The originator learns, per recipient, what became of the notices its event caused (metadata only)."""
    if originator not in gateway.network.by_id:
        return  # an agency no longer in the network has no status topic; the audit chain keeps the trace
    report = StatusReport(
        event_id=cause,
        source=originator,
        type=(EventType.NOTICE_ACKNOWLEDGED if lines[0].state == ACKNOWLEDGED else EventType.NOTICE_ISSUED).value,
        decided_at=gateway.clock.now(),
        recipients=[],
        notices=lines,
    )
    topic = gateway.topics.status(originator)
    headers = [(SOURCE_HEADER, originator.encode())]
    batch.out.records.append(Outgoing(topic, cause.encode(), report.model_dump_json().encode(), headers))
