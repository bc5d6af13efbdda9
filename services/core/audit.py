"""The tamper-evident audit chain: each record's hash covers its content and the previous record's hash."""

from __future__ import annotations

import hashlib
from typing import Any

from maillage.core.canonical import canonical_json

GENESIS = "0" * 64


def chain_hash(record: dict[str, Any], *, prev_hash: str) -> str:
    """SHA-256 over the previous hash and the RFC 8785 canonical form of the record (without its hash)."""
    body = {k: v for k, v in record.items() if k not in ("hash", "prev_hash")}
    return hashlib.sha256(prev_hash.encode() + canonical_json(body)).hexdigest()


def first_broken(records: list[dict[str, Any]]) -> int | None:
    """The seq of the first record whose hash or link does not hold, or None if the chain is whole."""
    prev = GENESIS
    for record in records:
        if record["prev_hash"] != prev or chain_hash(record, prev_hash=prev) != record["hash"]:
            return int(record["seq"])
        prev = record["hash"]
    return None
