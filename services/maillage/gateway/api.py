"""The gateway's routes for data-protection officers: verify the audit chain, list disclosures about a person."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Path

from maillage.core.crypto.tokens import staff_ref
from maillage.core.messaging.envelope import ENVELOPE_SUBJECT
from maillage.core.web.paging import Cursor, Limit
from maillage.core.web.problems import PROBLEM_JSON
from maillage.gateway import services
from maillage.gateway.contracts import ChainReport, DisclosureReport
from maillage.gateway.deps import AuditReader, NetworkDep, Sessions

log = logging.getLogger(__name__)
PROBLEM = {"content": {PROBLEM_JSON: {}}, "description": "RFC 9457 problem"}
ERRORS = {401: PROBLEM, 403: PROBLEM, 422: PROBLEM}

router = APIRouter(prefix="/v1", responses=ERRORS, tags=["audit"])  # type: ignore[arg-type]


@router.get("/audit/verify", summary="Walk the audit chain and name the first broken record")
async def verify_audit_chain(principal: AuditReader, sessions: Sessions) -> ChainReport:
    report = await services.verify_chain(sessions)
    log.info(
        "audit chain verified", extra={"agency": principal.agency, "records": report.records, "intact": report.intact}
    )
    return report


@router.get(
    "/disclosures/{subject_ref}",
    summary="Who received which categories about a person, when, on which basis (metadata only)",
)
async def list_disclosures(
    subject_ref: Annotated[str, Path(pattern=ENVELOPE_SUBJECT.pattern)],  # a person's, or a consultation's
    principal: AuditReader,
    sessions: Sessions,
    network: NetworkDep,
    cursor: Cursor = None,
    limit: Limit = 200,
) -> DisclosureReport:
    report = await services.disclosures_about(
        sessions, subject_ref, network=network, by=principal.agency, cursor=cursor, limit=limit
    )
    # Who looked at whom: a disclosure report is itself sensitive, so each reading leaves a trace.
    log.info(
        "disclosure report read",
        extra={
            "agency": principal.agency,
            "by": staff_ref(principal),
            "subject_ref": subject_ref,
            "records": len(report.disclosures),
        },
    )
    return report
