"""The audit chain is tamper-evident: altering, removing or reordering a record shows at that record."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
import rfc8785
from hypothesis import example, given
from hypothesis import strategies as st

from maillage.domain.audit import GENESIS, ChainWalk, audit_record, chain_hash, first_broken, linked
from maillage.domain.disclosure import Disclosure, Outcome, Recipient, Removal
from maillage.domain.vocabulary import Category, LegalBasis, Role, Sector

pytestmark = pytest.mark.unit


def audit_chain(length: int) -> list[dict[str, Any]]:
    """Records shaped like the gateway's: metadata only, each linked to the previous hash."""
    records: list[dict[str, Any]] = []
    prev = GENESIS
    for seq in range(1, length + 1):
        record: dict[str, Any] = {
            "seq": seq,
            "event_id": f"0190-{seq:04d}",
            "event_type": "maillage.referral.created.v1",
            "source": "refuge-liege",
            "recipient": "cpas-seraing",
            "sector": "social",
            "subject_ref": f"s-{seq:08d}",
            "subject_role": "victim",
            "legal_basis": "consent",
            "outcome": "filtered",
            "delivered": ["identity", "narrative"],
            "removed": {"location": "above_ceiling"},
            "reason": None,
            "review": False,
            "policy_sha256": "ab" * 32,
            "recorded_at": f"2026-11-25T12:00:{seq % 60:02d}+00:00",
            "prev_hash": prev,
        }
        record["hash"] = chain_hash(record, prev_hash=prev)
        prev = record["hash"]
        records.append(record)
    return records


ALTERATIONS = {
    "delivered": ["identity", "narrative", "location"],
    "outcome": "delivered",
    "recipient": "praxis-meuse",
    "legal_basis": "danger",
    "review": True,
    "removed": {},
    "policy_sha256": "cd" * 32,
}


def test_an_untouched_chain_is_whole() -> None:
    assert first_broken(audit_chain(12)) is None
    assert first_broken([]) is None


@given(length=st.integers(1, 12), data=st.data())
def test_first_broken_finds_an_altered_record(length: int, data: st.DataObject) -> None:
    records = audit_chain(length)
    victim = data.draw(st.integers(0, length - 1))
    field = data.draw(st.sampled_from(sorted(ALTERATIONS)))
    records[victim] = {**records[victim], field: ALTERATIONS[field]}

    assert first_broken(records) == records[victim]["seq"]


def test_rehashing_an_altered_record_breaks_the_link_to_the_next() -> None:
    records = audit_chain(5)
    forged = {**records[2], "delivered": ["identity", "location"]}
    forged["hash"] = chain_hash(forged, prev_hash=forged["prev_hash"])
    records[2] = forged

    assert first_broken(records) == 4


def test_a_removed_record_shows_at_the_one_after_it() -> None:
    records = audit_chain(5)
    del records[1]

    assert first_broken(records) == 3


def test_reordered_records_are_detected() -> None:
    records = audit_chain(5)
    records[1], records[2] = records[2], records[1]

    assert first_broken(records) == 3


@given(length=st.integers(0, 12), chunk=st.integers(1, 5), data=st.data())
def test_walking_in_chunks_finds_what_walking_at_once_finds(length: int, chunk: int, data: st.DataObject) -> None:
    """The gateway walks millions of records a chunk at a time; the answer must not depend on the chunks."""
    records = audit_chain(length)
    if length and data.draw(st.booleans()):
        victim = data.draw(st.integers(0, length - 1))
        records[victim] = {**records[victim], "outcome": "delivered"}
    walk = ChainWalk()
    for start in range(0, length, chunk):
        walk.feed(records[start : start + chunk])

    assert walk.records == length
    assert (None if walk.broken is None else walk.broken["seq"]) == first_broken(records)
    assert walk.intact == (first_broken(records) is None)
    assert walk.policy_sha256s == (["ab" * 32] if length else [])


json_leaves = (
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(alphabet=st.characters(codec="utf-8"))
)
json_values = st.recursive(
    json_leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@given(record=st.dictionaries(st.text(max_size=12), json_values, max_size=8))
@example(record={"chain": 1, "seq": 2})
def test_record_hash_is_sha256_of_previous_hash_and_rfc8785_form(record: dict[str, Any]) -> None:
    """Anyone can re-verify the chain with any RFC 8785 implementation, whatever text the records hold (all but
    the hash itself, the previous one, and the chain's number: README "Data-protection officers")."""
    body = {k: v for k, v in record.items() if k not in ("hash", "prev_hash", "chain")}
    expected = hashlib.sha256(GENESIS.encode() + rfc8785.dumps(body)).hexdigest()

    assert chain_hash(record, prev_hash=GENESIS) == expected


def decision_records(raisers: list[str | None]) -> list[dict[str, Any]]:
    """Records as the gateway builds them, one per decision, linked one after the other."""
    decision = Disclosure(
        recipient=Recipient(agency_id="zp-meuse", sector=Sector.POLICE),
        basis=LegalBasis.DANGER,
        outcome=Outcome.FILTERED,
        delivered=frozenset({Category.IDENTITY, Category.RISK}),
        removed={Category.HEALTH: Removal.OUTSIDE_DANGER_RULE},
    )
    records: list[dict[str, Any]] = []
    prev = GENESIS
    for seq, raiser in enumerate(raisers, start=1):
        content = audit_record(
            decision,
            event_id=f"0190-{seq:04d}",
            event_type="maillage.alert.raised.v1",
            source="refuge-liege",
            subject_role=Role.VICTIM,
            subject_ref=f"s-{seq:032x}",
            policy_sha256="ab" * 32,
            recorded_at="2026-11-25T12:00:00+00:00",
            raised_by=raiser,
        )
        records.append(linked(content, seq=seq, prev_hash=prev))
        prev = records[-1]["hash"]
    return records


def test_decision_records_chain_and_cover_the_raiser_only_when_known() -> None:
    records = decision_records([None, "0123456789abcdef", None])

    assert first_broken(records) is None
    assert "raised_by" not in records[0] and records[1]["raised_by"] == "0123456789abcdef"
    assert records[1]["review"] is True and records[1]["removed"] == {"health": "outside_danger_rule"}
    assert first_broken([records[0], {**records[1], "raised_by": "fedcba9876543210"}, records[2]]) == 2


def test_a_record_moved_to_another_partitions_chain_breaks_that_chain() -> None:
    # One chain per partition of the submitted topic; the chain a record belongs to is not hashed (records
    # written before there were several hash as they did), so moving one shows where it no longer links.
    first, second = audit_chain(3), audit_chain(3)
    for chain, records in ((0, first), (1, second)):
        for record in records:
            record["chain"] = chain
    assert first_broken(first) is None and first_broken(second) is None
    moved = {**first[2], "chain": 1}
    assert first_broken([*second, moved]) == moved["seq"]


def test_linked_records_carry_their_chain_outside_the_hash() -> None:
    content = {k: v for k, v in audit_chain(1)[0].items() if k not in ("seq", "prev_hash", "hash")}
    in_chain_0 = linked(content, seq=1, prev_hash=GENESIS, chain=0)
    in_chain_2 = linked(content, seq=1, prev_hash=GENESIS, chain=2)
    assert (in_chain_0["chain"], in_chain_2["chain"]) == (0, 2)
    assert in_chain_0["hash"] == in_chain_2["hash"] == audit_chain(1)[0]["hash"]
