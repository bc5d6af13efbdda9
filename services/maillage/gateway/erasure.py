"""A person's rights at the gateway: erasure across every copy, and the correction of a role recorded wrongly.

Both are told to the holders through the notices of gateway/notices.py, so each holder's receipt (its
`subject.erasure_confirmed`) goes back to the agency that asked, per holder. Who holds what is read from the
audit chain, which keeps its records (pseudonymous metadata, the legal record of disclosures) and records the
erasure and the correction themselves.
"""

from __future__ import annotations

from typing import Any

from maillage.core.audit import repository as audit
from maillage.core.crypto.trust import Refused
from maillage.core.messaging.envelope import Envelope
from maillage.domain import notices as rules
from maillage.domain.events import Holder, NoticeKind, SubjectErasureRequested, SubjectRoleCorrected
from maillage.domain.subject_report import holds_person
from maillage.gateway import notices, repository
from maillage.gateway.batch import Batch, Parts
from maillage.gateway.models import SubjectRoleRow

RECORDED = "recorded"  # the outcome of a request's audit record: nothing disclosed, a decision recorded


async def request(gateway: Parts, batch: Batch, envelope: Envelope, payload: SubjectErasureRequested) -> None:
    """An erasure asked for at an agency: the whole person, or what a role correction found misrouted."""
    if payload.correction is not None:
        await _erase_misrouted(gateway, batch, envelope, payload)
        return
    records = await _about(batch, envelope.subject)
    _check_holds(gateway, records, envelope)
    sectors = {a.id: a.sector for a in gateway.network.agencies}
    holders = rules.holders(records, sectors=sectors, dispatched=gateway.network.dispatched)
    if not any(h.agency_id == envelope.agency_id and h.holder is Holder.AGENCY for h in holders):
        holders.append(_requester(gateway, envelope))
    rows = await notices.issue_notices(
        gateway, batch, kind=NoticeKind.SUBJECT_ERASED, cause=envelope, recipients=holders, erase=True
    )
    forgotten = await repository.forget_subject(batch.session, envelope.subject)
    gateway.state.grants.pop(envelope.subject, None)
    gateway.state.roles.pop(envelope.subject, None)
    for event_id in forgotten:
        gateway.state.routes.pop(event_id, None)
    _record(gateway, batch, envelope, action={"erasure": payload.ground.value, "told": _holders(rows)})


async def _erase_misrouted(gateway: Parts, batch: Batch, envelope: Envelope, payload: SubjectErasureRequested) -> None:
    """After a role correction: exactly the recipients it flagged are asked to erase exactly the events they
    received under the wrong role that the right one would not have allowed them."""
    correction = str(payload.correction)
    flagged = [
        row
        for row in await repository.notices_of(batch.session, correction)
        if row.kind == NoticeKind.ROLE_CORRECTED.value and row.misrouted
    ]
    # Only the agency that made the correction asks for its consequences; to any other it does not exist.
    if not flagged or any(r.originator != envelope.agency_id or r.subject_ref != envelope.subject for r in flagged):
        raise Refused("unknown_correction", "no role correction of this agency's flagged deliveries to erase")
    recipients = [
        rules.PastRecipient(
            agency_id=row.recipient,
            sector=gateway.network.by_id[row.recipient].sector,
            role=gateway.state.roles.get(row.subject_ref, envelope.subjectrole),
            events=tuple(row.misrouted),
            categories=frozenset(),
            holder=holder,
        )
        for row in flagged
        if row.recipient in gateway.network.by_id
        for holder in _holders_of(gateway, row.recipient)
    ]
    rows = await notices.issue_notices(
        gateway, batch, kind=NoticeKind.EVENTS_ERASED, cause=envelope, recipients=recipients, erase=True
    )
    _record(
        gateway,
        batch,
        envelope,
        action={"erasure": payload.ground.value, "correction": correction, "told": _holders(rows)},
    )


def _holders_of(gateway: Parts, agency_id: str) -> list[Holder]:
    served = agency_id in gateway.network.dispatched
    return [Holder.AGENCY, *([Holder.DISPATCHER] if served else [])]


async def correct_role(gateway: Parts, batch: Batch, envelope: Envelope, payload: SubjectRoleCorrected) -> None:
    """A person's role corrected by an agency that holds them: it wins over the role later events state, and
    every past recipient that received something under another role is told which of its deliveries the right
    role would not have allowed (so that they can be erased: `_erase_misrouted`)."""
    records = await _about(batch, envelope.subject)
    _check_holds(gateway, records, envelope)
    if payload.role == payload.previous:
        raise Refused("schema", "a correction changes the role")
    await repository.correct_role(
        batch.session,
        SubjectRoleRow(
            subject_ref=envelope.subject,
            role=payload.role.value,
            previous=payload.previous.value,
            reason=payload.reason.value,
            corrected_by=envelope.agency_id,
            event_id=envelope.id,
            corrected_at=gateway.clock.now(),
        ),
    )
    gateway.state.roles[envelope.subject] = payload.role
    recipients = [
        r
        for r in rules.misrouted(records, role=payload.role, policy=gateway.policy)
        if r.agency_id in gateway.network.by_id
    ]
    rows = await notices.issue_notices(
        gateway, batch, kind=NoticeKind.ROLE_CORRECTED, cause=envelope, recipients=recipients, role=payload.role
    )
    _record(
        gateway,
        batch,
        envelope,
        action={
            "correction": payload.reason.value,
            "role": payload.role.value,
            "previous": payload.previous.value,
            "told": _holders(rows),
            "misrouted": sorted(r.recipient for r in rows if r.misrouted),
        },
    )


async def _about(batch: Batch, subject_ref: str) -> list[dict[str, Any]]:
    stored = await audit.recorded_about(batch.session, subject_ref)
    return [*stored, *(r for r in batch.audit if r.get("subject_ref") == subject_ref)]


def _check_holds(gateway: Parts, records: list[dict[str, Any]], envelope: Envelope) -> None:
    """Only an agency that holds the person (disclosed or received something about them, or obtained their
    consent) may act on their file: to any other, the person is unknown (which agencies do hold them is not
    for it to learn)."""
    agency = envelope.agency_id
    grants = gateway.state.grants.get(envelope.subject, {}).values()
    if not holds_person(records, agency_id=agency) and not any(g.obtained_by == agency for g in grants):
        raise Refused("unknown_subject", "this agency holds nothing about this subject")


def _requester(gateway: Parts, envelope: Envelope) -> rules.PastRecipient:
    """The requester too: its own service erases again what reached it after it asked (an event decided
    before the request, still on its way), and confirms like any holder."""
    return rules.PastRecipient(
        agency_id=envelope.agency_id,
        sector=gateway.network.by_id[envelope.agency_id].sector,
        role=envelope.subjectrole,
        events=(),
        categories=frozenset(),
    )


def _holders(rows: list[Any]) -> list[str]:
    return [f"{row.recipient}:{row.holder}" for row in rows]


def _record(gateway: Parts, batch: Batch, envelope: Envelope, *, action: dict[str, Any]) -> None:
    """The request in the audit chain: who asked, about whom (pseudonymously), on which ground, who was told."""
    content: dict[str, Any] = {
        "event_id": envelope.id,
        "event_type": envelope.type.value,
        "source": envelope.agency_id,
        "recipient": "gateway",
        "sector": "gateway",
        "subject_ref": envelope.subject,
        "subject_role": gateway.state.roles.get(envelope.subject, envelope.subjectrole).value,
        "legal_basis": envelope.legalbasis.value,
        "outcome": RECORDED,
        "delivered": [],
        "removed": {},
        "reason": None,
        "review": False,
        "policy_sha256": gateway.policy.sha256,
        "recorded_at": gateway.clock.now().isoformat(),
        "action": action,
    }
    notices.chain(gateway, batch, envelope.id, content)
