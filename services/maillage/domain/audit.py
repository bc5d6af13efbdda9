"""The tamper-evident audit chain: each record's hash covers its content and the previous record's hash."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from maillage.domain.canonical import canonical_json
from maillage.domain.disclosure import Disclosure
from maillage.domain.events import AlertRaised, CaseConferenceConvened, EventPayload, ReferralResponded
from maillage.domain.vocabulary import LegalBasis, Role

GENESIS = "0" * 64


# Not hashed: the link itself, and which chain a record belongs to (one per input partition of the
# gateway). A record moved to another chain no longer links to that chain's records, so a walk shows it.
UNHASHED = frozenset({"hash", "prev_hash", "chain"})


def chain_hash(record: Mapping[str, Any], *, prev_hash: str) -> str:
    """SHA-256 over the previous hash and the RFC 8785 canonical form of the record (without its hash)."""
    body = {k: v for k, v in record.items() if k not in UNHASHED}
    return hashlib.sha256(prev_hash.encode() + canonical_json(body)).hexdigest()


# Fields a record carries only when they apply: a record without them hashes as records always did, so
# adding one never breaks the chain written before it.
OPTIONAL_FIELDS = frozenset(
    {
        "raised_by",
        "consents",  # the consents a disclosure rested on (ids): who received what under a consent
        "notice",  # a notice to a past recipient, or its receipt (gateway/notices.py)
        "legal_reference",
        "conference_id",
    }
)
OPTIONAL_FIELDS |= {"alert_id", "decision", "reviewer"}  # a danger alert's review (art. 458bis)
OPTIONAL_FIELDS |= {"action"}  # a person's erasure or role correction asked for (gateway/erasure.py)
OPTIONAL_FIELDS |= {"report"}  # a person's disclosure report: its request, a hold, its issuing
# What public figures count (domain/statistics.py): the Pôle, and an event's vocabulary values. Never free text.
COUNTED_FIELDS = frozenset({"severity", "kind", "referral_decision", "decline_reason", "conference_purpose"})
OPTIONAL_FIELDS |= {"pole", *COUNTED_FIELDS}


def counted_fields(payload: EventPayload) -> dict[str, str]:
    """The values of a closed vocabulary that the Pôles' figures count: an alert's severity and kind, a
    referral's answer and why it was declined, a case conference's purpose. No field a person could be
    recognised by: the same values appear in hundreds of events."""
    match payload:
        case AlertRaised():
            return {"severity": payload.severity.value, "kind": payload.kind.value}
        case ReferralResponded():
            reason = {"decline_reason": payload.decline_reason.value} if payload.decline_reason else {}
            return {"referral_decision": payload.decision.value, **reason}
        case CaseConferenceConvened():
            return {"conference_purpose": payload.purpose.value}
    return {}


def audit_record(
    disclosure: Disclosure,
    *,
    event_id: str,
    event_type: str,
    source: str,
    subject_role: Role,
    subject_ref: str,
    policy_sha256: str,
    recorded_at: str,
    raised_by: str | None = None,
    legal_reference: str | None = None,
    conference_id: str | None = None,
    pole: str | None = None,
    counted: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The record of one decision: which categories a recipient got about a pseudonymous subject, or why
    not, on which basis and under which policy. Metadata only: an audit trail must not become a second
    copy of the data it traces."""
    d = disclosure
    record: dict[str, Any] = {
        "event_id": event_id,
        "event_type": event_type,
        "source": source,
        "recipient": d.recipient.agency_id,
        "sector": d.recipient.sector.value,
        "subject_ref": subject_ref,
        "subject_role": subject_role.value,
        "legal_basis": d.basis.value,
        "outcome": d.outcome.value,
        "delivered": sorted(d.delivered),
        "removed": {k.value: v.value for k, v in d.removed.items()},
        "reason": d.reason.value if d.reason else None,
        "review": d.needs_review,
        "policy_sha256": policy_sha256,
        "recorded_at": recorded_at,
    }
    if raised_by:
        # Only when known, so that records without it hash as they always did.
        record["raised_by"] = raised_by
    if legal_reference:
        record["legal_reference"] = legal_reference  # the court order or article a legal obligation rests on
    if conference_id:
        record["conference_id"] = conference_id  # the case conference (art. 458ter) it was disclosed under
    if d.consents:
        record["consents"] = sorted(d.consents)
    if pole:
        record["pole"] = pole  # the Pôle the event belongs to: the figures are the Pôle's
    record.update({k: v for k, v in (counted or {}).items() if k in COUNTED_FIELDS})
    return record


def review_record(
    *,
    event_id: str,
    event_type: str,
    source: str,
    subject_ref: str,
    subject_role: Role,
    alert_id: str,
    decision: str,
    reviewer: str,
    policy_sha256: str,
    recorded_at: str,
) -> dict[str, Any]:
    """The record of a second professional's decision on an alert's danger disclosures (art. 458bis): it
    discloses nothing itself (recorded at the gateway, no categories), and names the alert, the decision and
    the pseudonymous reviewer. The justification it rests on stays at the raising agency."""
    return {
        "event_id": event_id,
        "event_type": event_type,
        "source": source,
        "recipient": "gateway",
        "sector": "gateway",
        "subject_ref": subject_ref,
        "subject_role": subject_role.value,
        "legal_basis": LegalBasis.DANGER.value,
        "outcome": "recorded",
        "delivered": [],
        "removed": {},
        "reason": None,
        "review": False,
        "policy_sha256": policy_sha256,
        "recorded_at": recorded_at,
        "alert_id": alert_id,
        "decision": decision,
        "reviewer": reviewer,
    }


def linked(record: Mapping[str, Any], *, seq: int, prev_hash: str, chain: int = 0) -> dict[str, Any]:
    """The record as chain `chain`'s next link, after the one whose hash is `prev_hash`."""
    body = {"seq": seq, **record, "prev_hash": prev_hash}
    return {**body, "hash": chain_hash(body, prev_hash=prev_hash), "chain": chain}


def holds(record: Mapping[str, Any], *, prev_hash: str) -> bool:
    """The record links to `prev_hash` and its own hash matches its content."""
    return bool(record["prev_hash"] == prev_hash and chain_hash(record, prev_hash=prev_hash) == record["hash"])


@dataclass
class ChainWalk:
    """Checks records one at a time, in seq order, so that a chain of millions need never be held at once.

    After the first broken record the walk only counts: the records after it cannot be trusted to
    link to anything, and the first break is what an auditor must look at.
    """

    records: int = 0
    broken: Mapping[str, Any] | None = None
    policy_sha256s: list[str] = field(default_factory=list)
    last_hash: str = GENESIS
    last: Mapping[str, Any] | None = None  # the last record fed

    @property
    def intact(self) -> bool:
        return self.broken is None

    def feed(self, records: Iterable[Mapping[str, Any]]) -> None:
        for record in records:
            self.records += 1
            if record.get("policy_sha256") not in self.policy_sha256s:
                self.policy_sha256s.append(record["policy_sha256"])
            if self.broken is None and not holds(record, prev_hash=self.last_hash):
                self.broken = record
            # Follow the stored hash: an altered record shows at itself, not at every record after it.
            self.last_hash = record["hash"]
            self.last = record


def first_broken(records: Iterable[Mapping[str, Any]]) -> int | None:
    """The seq of the first record whose hash or link does not hold, or None if the chain is whole."""
    walk = ChainWalk()
    walk.feed(records)
    return None if walk.broken is None else int(walk.broken["seq"])
