"""The person's disclosure report at the gateway: holds placed by the agencies that hold the person, and
requests answered with a document for the person (gateway/rendering.py), sealed to the requesting agency alone.

Only the gateway sees every disclosure about a person, in its audit chain; it gives that view to no agency as
a listing. An agency that holds the person (it sent or received something about them) may ask for the report,
or hold it back for a while. Every step is an audit record, metadata only: the request and its hold check,
each hold, and each report issued or held.

Who placed a hold is not told to the requester: it learns until when the report is held and why (the reason
codes), which is what it needs to plan with the person. Naming the agency would tell one agency which others
hold the person, the very network-wide view the report is guarded for (and a police zone's or a prosecutor's
hold would be no secret to whoever the person then speaks to).
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson

from maillage.core.audit import repository as audit
from maillage.core.clock import as_utc
from maillage.core.crypto.trust import Received, Refused
from maillage.core.messaging.envelope import Envelope, new_event_id, source_of
from maillage.domain.events import (
    REPORT_MAX_CHARS,
    EventType,
    HoldReason,
    ReportState,
    SubjectReportHeld,
    SubjectReportIssued,
    SubjectReportRequested,
)
from maillage.domain.subject_report import Hold, active_holds, hold_refusal, holds_person, report_lines
from maillage.domain.vocabulary import Role
from maillage.gateway import repository
from maillage.gateway.batch import Batch, Parts
from maillage.gateway.models import IssuedReportRow, ReportHoldRow
from maillage.gateway.rendering import Agency, ReportRequest, render

GATEWAY = "gateway"
RECORDED = "recorded"  # a request's audit outcome: its hold check, nothing disclosed
HOLD_PLACED = "hold_placed"


async def _records_about(batch: Batch, subject_ref: str) -> list[dict[str, Any]]:
    """Every disclosure about the person in the audit chain, this batch's included."""
    stored = await audit.disclosed_about(batch.session, subject_ref)
    return [*stored, *(r for r in batch.audit if r.get("subject_ref") == subject_ref)]


def _check_holder(records: list[dict[str, Any]], envelope: Envelope) -> None:
    if not holds_person(records, agency_id=envelope.agency_id):
        # The same answer whether the person is unknown to the network or known to others only.
        raise Refused("not_holder", "this agency neither sent nor received anything about this person")


async def place_hold(gateway: Parts, batch: Batch, envelope: Envelope, payload: SubjectReportHeld) -> None:
    """A hold, from an agency that holds the person, until a date at most MAX_HOLD_DAYS away."""
    _check_holder(await _records_about(batch, envelope.subject), envelope)
    refusal = hold_refusal(placed_at=envelope.time, until=as_utc(payload.until))
    if refusal is not None:
        raise Refused("hold_period", refusal)
    hold_id = str(payload.hold_id)
    if await repository.report_hold(batch.session, hold_id) is None:
        batch.session.add(
            ReportHoldRow(
                hold_id=hold_id,
                event_id=envelope.id,
                subject_ref=envelope.subject,
                agency_id=envelope.agency_id,
                until=as_utc(payload.until),
                reason=payload.reason.value,
                placed_at=gateway.clock.now(),  # when the gateway recorded it: what a report read again goes by
            )
        )
    report = {"hold_id": hold_id, "until": as_utc(payload.until).isoformat(), "placed_by": payload.placed_by}
    record = _record(gateway, envelope, outcome=HOLD_PLACED, reason=payload.reason.value, report=report)
    _chain(gateway, batch, envelope.id, record)


async def answer_request(gateway: Parts, batch: Batch, envelope: Envelope, payload: SubjectReportRequested) -> None:
    """The request checked (the requester holds the person, no hold runs), recorded, and answered."""
    records = await _records_about(batch, envelope.subject)
    _check_holder(records, envelope)
    now = gateway.clock.now()
    holds = active_holds(await _holds(batch, envelope.subject), at=now)
    row = IssuedReportRow(
        issued_id=new_event_id(),
        request_event_id=envelope.id,
        request_id=str(payload.request_id),
        requester=envelope.agency_id,
        subject_ref=envelope.subject,
        subject_role=envelope.subjectrole.value,
        language=payload.language,
        state=(ReportState.HELD if holds else ReportState.ISSUED).value,
        issued_at=now,
    )
    issued = _issued(gateway, row, records=records, holds=holds)  # may refuse: before anything is recorded
    check = {
        "request_id": row.request_id,
        "language": row.language,
        "hold_check": "held" if holds else "clear",
        "holds": [h.hold_id for h in holds],
    }
    _chain(gateway, batch, envelope.id, _record(gateway, envelope, outcome=RECORDED, report=check))
    batch.session.add(row)
    _send(batch, envelope, row, issued)
    _chain(gateway, batch, row.issued_id, _issued_record(gateway, envelope, row, issued))


async def replay(gateway: Parts, batch: Batch, event: Received) -> None:
    """The same request again after a crash (its Kafka transaction aborted): the same report, drawn up again
    from the chain and the holds as they stood when it was first answered, with the same id."""
    if not isinstance(event.payload, SubjectReportRequested):
        return
    for row in await repository.issued_reports_of(batch.session, event.envelope.id):
        at = as_utc(row.issued_at)
        records = await audit.disclosed_about(batch.session, row.subject_ref)
        holds = active_holds(await _holds(batch, row.subject_ref, as_of=at), at=at)
        issued = _issued(gateway, row, records=records, holds=holds, until=at.isoformat())
        _send(batch, event.envelope, row, issued)
        for record in await audit.of_event(batch.session, row.issued_id):
            batch.out.audit(row.issued_id, record)


async def _holds(batch: Batch, subject_ref: str, *, as_of: datetime | None = None) -> list[Hold]:
    """The person's holds; with `as_of`, only those the gateway had recorded by then."""
    rows = await repository.report_holds(batch.session, subject_ref)
    return [
        Hold(hold_id=r.hold_id, agency_id=r.agency_id, until=as_utc(r.until), reason=HoldReason(r.reason))
        for r in rows
        if as_of is None or as_utc(r.placed_at) <= as_of
    ]


def _issued(
    gateway: Parts,
    row: IssuedReportRow,
    *,
    records: list[dict[str, Any]],
    holds: list[Hold],
    until: str | None = None,
) -> SubjectReportIssued:
    common: dict[str, Any] = {"request_id": UUID(row.request_id), "language": row.language}
    if holds:
        reasons = tuple(sorted({h.reason for h in holds}))
        return SubjectReportIssued(**common, state=ReportState.HELD, held_until=holds[0].until, hold_reasons=reasons)
    lines = report_lines(records, until=until)
    agencies = {a.id: Agency(name=a.name, sector=a.sector.value) for a in gateway.network.agencies}
    requester = agencies.get(row.requester, Agency(name=row.requester, sector=""))
    request = ReportRequest(
        language=row.language, request_id=row.request_id, agency=requester, drawn_up_at=as_utc(row.issued_at)
    )
    html, pdf = render(request, lines, agencies=agencies)
    encoded = base64.b64encode(pdf).decode("ascii")
    if max(len(html), len(encoded)) > REPORT_MAX_CHARS:
        # Refused rather than failing the batch (which would stop the partition): a data-protection officer
        # then answers the person from the chain (`maillage disclosures`, agency by agency).
        raise Refused("report_too_large", f"{len(lines)} disclosures: more than one event can carry")
    return SubjectReportIssued(**common, state=ReportState.ISSUED, disclosures=len(lines), html=html, pdf=encoded)


def _send(batch: Batch, cause: Envelope, row: IssuedReportRow, issued: SubjectReportIssued) -> None:
    """To the requesting agency alone, sealed to its key and signed by the gateway as it leaves."""
    envelope = Envelope(
        id=row.issued_id,
        source=source_of(row.requester),
        type=EventType.SUBJECT_REPORT_ISSUED,
        time=as_utc(row.issued_at),
        subject=row.subject_ref,
        subjectrole=Role(row.subject_role),
        legalbasis=cause.legalbasis,
        purpose=cause.purpose,
        recipient=row.requester,
        data=b"",
    )
    batch.out.share(envelope, orjson.dumps(issued.model_dump(mode="json")))


def _record(
    gateway: Parts, envelope: Envelope, *, outcome: str, report: dict[str, Any], reason: str | None = None
) -> dict[str, Any]:
    """A request's or a hold's audit record: recorded at the gateway, nothing disclosed."""
    return {
        "event_id": envelope.id,
        "event_type": envelope.type.value,
        "source": envelope.agency_id,
        "recipient": GATEWAY,
        "sector": GATEWAY,
        "subject_ref": envelope.subject,
        "subject_role": envelope.subjectrole.value,
        "legal_basis": envelope.legalbasis.value,
        "outcome": outcome,
        "delivered": [],
        "removed": {},
        "reason": reason,
        "review": False,
        "policy_sha256": gateway.policy.sha256,
        "recorded_at": gateway.clock.now().isoformat(),
        "report": report,
    }


def _issued_record(
    gateway: Parts, cause: Envelope, row: IssuedReportRow, issued: SubjectReportIssued
) -> dict[str, Any]:
    """The report sent to the requester: how many disclosures it lists, or until when it is held and why."""
    requester = gateway.network.by_id.get(row.requester)
    report: dict[str, Any] = {"request_id": row.request_id, "language": row.language, "state": row.state}
    if issued.state is ReportState.ISSUED:
        report["disclosures"] = issued.disclosures
    else:
        report["held_until"] = as_utc(issued.held_until or row.issued_at).isoformat()
        report["reasons"] = [r.value for r in issued.hold_reasons]
    return {
        **_record(gateway, cause, outcome=row.state, report=report),
        "event_id": row.issued_id,
        "event_type": EventType.SUBJECT_REPORT_ISSUED.value,
        "source": GATEWAY,
        "recipient": row.requester,
        "sector": requester.sector.value if requester else "",
    }


def _chain(gateway: Parts, batch: Batch, event_id: str, content: dict[str, Any]) -> None:
    record = gateway.state.link(content, chain=batch.chain)
    batch.audit.append(record)
    batch.out.audit(event_id, record)
