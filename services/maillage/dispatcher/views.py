"""The dispatcher's rows as the escalation rule sees them (plain domain values) and as workers and operators
see them (the contracts)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from maillage.core.config.network import Network
from maillage.dispatcher import contracts as c
from maillage.dispatcher.models import OncallAlert
from maillage.domain.escalation import Alert, current_level
from maillage.domain.rota import Rota
from maillage.domain.vocabulary import Severity


def alert_of(row: OncallAlert, *, paged: frozenset[str]) -> Alert:
    """The alert as the rules see it; `paged`: every worker paged for it so far."""
    return Alert(
        alert_id=row.alert_id,
        agency=row.agency_id,
        subject_ref=row.subject_ref,
        severity=Severity(row.severity),
        state=row.state,
        received_at=row.received_at,
        level_started_at=row.level_started_at,
        level=row.level,
        deadline=row.deadline,
        grouped=row.grouped,
        paged=paged,
        acknowledged_by=row.acknowledged_by,
    )


def view_of(row: OncallAlert, *, rota: Rota, network: Network, members: list[OncallAlert] | None = None) -> c.AlertView:
    """What a worker sees of an alert, with every alert grouped under it (each acknowledged with it)."""
    level = current_level(alert_of(row, paged=frozenset()), rota=rota)
    return c.AlertView(
        alert_id=row.alert_id,
        agency=row.agency_id,
        source_agency=row.source_agency,
        source_name=_name(row.source_agency, network=network),
        severity=Severity(row.severity),
        kind=row.kind,
        state=row.state,
        level=level,
        level_name=rota.level_name(level),
        levels=rota.depth,
        raised_at=row.raised_at,
        received_at=row.received_at,
        deadline=row.deadline,
        grouped=row.grouped,
        subject_ref=row.subject_ref,
        subject_role=row.subject_role,
        data=row.data,
        acknowledged_at=row.acknowledged_at,
        acknowledged_by=row.acknowledged_by,
        group=[_member_of(m, network=network) for m in members or ()],
    )


def _member_of(row: OncallAlert, *, network: Network) -> c.GroupMember:
    return c.GroupMember(
        alert_id=row.alert_id,
        severity=Severity(row.severity),
        kind=row.kind,
        source_agency=row.source_agency,
        source_name=_name(row.source_agency, network=network),
        raised_at=row.raised_at,
        received_at=row.received_at,
        data=row.data,
    )


def unanswered(row: OncallAlert) -> c.UnacknowledgedAlert:
    """An alert every level let pass, for operators: metadata only."""
    return c.UnacknowledgedAlert(**_metadata(row), source_agency=row.source_agency)


def fallback_call(row: OncallAlert, *, exhausted_at: datetime) -> c.FallbackCall:
    """What an agency's fallback webhook is told of an alert every level let pass: metadata only."""
    return c.FallbackCall(**_metadata(row), exhausted_at=exhausted_at)


def _metadata(row: OncallAlert) -> dict[str, Any]:
    # Neither the subject nor the content: what may be told of an alert outside the on-call page.
    return {
        "alert_id": row.alert_id,
        "agency": row.agency_id,
        "severity": Severity(row.severity),
        "kind": row.kind,
        "levels_paged": row.level,
        "grouped": row.grouped,
        "received_at": row.received_at,
    }


def _name(agency_id: str, *, network: Network) -> str:
    # An agency since removed from the network file is still named, by its id.
    agency = network.by_id.get(agency_id)
    return agency.name if agency else agency_id
