"""The tamper-evident audit chain: each record's hash covers its content and the previous record's hash."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from maillage.domain.canonical import canonical_json

GENESIS = "0" * 64


def chain_hash(record: Mapping[str, Any], *, prev_hash: str) -> str:
    """SHA-256 over the previous hash and the RFC 8785 canonical form of the record (without its hash)."""
    body = {k: v for k, v in record.items() if k not in ("hash", "prev_hash")}
    return hashlib.sha256(prev_hash.encode() + canonical_json(body)).hexdigest()


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


def first_broken(records: Iterable[Mapping[str, Any]]) -> int | None:
    """The seq of the first record whose hash or link does not hold, or None if the chain is whole."""
    walk = ChainWalk()
    walk.feed(records)
    return None if walk.broken is None else int(walk.broken["seq"])
