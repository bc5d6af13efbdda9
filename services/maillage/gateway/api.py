"""The gateway's routes for data-protection officers: verify the audit chain, list disclosures about a person."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from maillage.core.crypto.tokens import staff_ref
from maillage.core.messaging.envelope import ENVELOPE_SUBJECT
from maillage.core.web.paging import Cursor, Limit
from maillage.core.web.problems import PROBLEM_JSON
from maillage.domain.errors import NotFound
from maillage.gateway import services, verification
from maillage.gateway.contracts import ChainReport, DisclosureReport, WalkStatus
from maillage.gateway.deps import AuditReader, NetworkDep, Sessions, Walks

log = logging.getLogger(__name__)
PROBLEM = {"content": {PROBLEM_JSON: {}}, "description": "RFC 9457 problem"}
ERRORS = {401: PROBLEM, 403: PROBLEM, 422: PROBLEM}
WALK_ID = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"

router = APIRouter(prefix="/v1", responses=ERRORS, tags=["audit"])  # type: ignore[arg-type]


@router.get(
    "/audit/verify",
    summary="Verify the audit chains on from their last signed checkpoint, with the last full walk's result",
)
async def verify_audit_chain(principal: AuditReader, sessions: Sessions, walks: Walks) -> ChainReport:
    walked = await verification.verify_chain(sessions, checkpoints=walks.checkpoints, limit=verification.VERIFY_LIMIT)
    report = verification.with_last_full_walk(walked, await walks.last_finished())
    log.info(
        "audit chain verified",
        extra={
            "agency": principal.agency,
            "records": report.records,
            "walked": walked.walked,
            "intact": report.intact,
        },
    )
    return report


@router.post(
    "/audit/walks",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Start a full walk of every audit chain from its first record (or join the one running)",
)
async def start_full_walk(principal: AuditReader, walks: Walks, response: Response) -> WalkStatus:
    walk = await walks.start()
    response.headers["Location"] = f"/v1/audit/walks/{walk.id}"
    log.info("audit full walk asked for", extra={"agency": principal.agency, "walk": walk.id})
    return walk


@router.get("/audit/walks/{walk_id}", responses={404: PROBLEM}, summary="A full walk's progress, then its report")
async def full_walk(walk_id: Annotated[str, Path(pattern=WALK_ID)], principal: AuditReader, walks: Walks) -> WalkStatus:
    walk = await walks.status(walk_id)
    if walk is None:
        raise NotFound("problem.not-found.audit-walk")
    return walk


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
