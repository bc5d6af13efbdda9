"""An outbox relay signs what it publishes: one signature per batch and owner, each event still verifiable alone
from its own record; records already signed, or that are no event, leave as they were written."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from maillage.core.crypto.keys import GATEWAY, KeyDirs, KeyUse, add_keys, ensure_keys
from maillage.core.crypto.trust import Trust
from maillage.core.messaging.envelope import Envelope, Headers, new_subject_ref
from maillage.core.outbox import repository
from maillage.core.outbox.enqueue import outbox_row
from maillage.core.outbox.models import OutboxRecord
from maillage.core.outbox.signing import signed_headers, to_sign
from maillage.domain.events import ConsentWithdrawn
from maillage.domain.vocabulary import LegalBasis, Purpose, Role

REFUGE, CPAS = "refuge-liege", "cpas-seraing"


@pytest.fixture
def dirs(tmp_path: Path) -> KeyDirs:
    dirs = KeyDirs(private=tmp_path / "private", public=tmp_path / "public")
    ensure_keys(dirs, {owner: tuple(KeyUse) for owner in (GATEWAY, REFUGE, CPAS)})
    return dirs


def kept(trust: Trust, n: int) -> OutboxRecord:
    """An event as an agency's outbox keeps it: sealed to the gateway, not signed, tagged."""
    envelope = trust.sealed(
        ConsentWithdrawn(consent_id=uuid.UUID(f"00000000-0000-4000-8000-{n:012d}")),
        subject_ref=new_subject_ref(),
        role=Role.OTHER,
        basis=LegalBasis.CONSENT,
        purpose=Purpose.REFERRAL,
        at=datetime.now(UTC),
    )
    row = OutboxRecord(**outbox_row(envelope, topic="maillage.submitted", signer=trust))
    row.id = n
    return row


def as_received(row: OutboxRecord, headers: Headers | None) -> Envelope:
    assert headers is not None, "refused"
    return Envelope.from_kafka(key=row.key, value=row.value, headers=headers)


def test_each_owners_events_leave_under_one_signature_and_each_verifies_alone(dirs: KeyDirs) -> None:
    refuge, cpas, gateway = Trust.load(dirs, REFUGE), Trust.load(dirs, CPAS), Trust.load(dirs, GATEWAY)
    rows = [kept(refuge, 0), kept(cpas, 1), kept(refuge, 2), kept(refuge, 3), kept(cpas, 4)]
    assert all(to_sign(repository.headers_of(row)) and row.tag for row in rows)

    headers = signed_headers(rows, {REFUGE: refuge, CPAS: cpas})

    events = [as_received(row, h) for row, h in zip(rows, headers, strict=True)]
    by_owner = {owner: [e for e in events if e.agency_id == owner] for owner in (REFUGE, CPAS)}
    assert [len({e.sig for e in batch}) for batch in by_owner.values()] == [1, 1]
    assert [[e.sigpath and e.sigpath.split(".")[:2] for e in batch] for batch in by_owner.values()] == [
        [["0", "3"], ["1", "3"], ["2", "3"]],
        [["0", "2"], ["1", "2"]],
    ]
    for event in reversed(events):  # each from its own record, with a verifier that has seen no other
        Trust.load(dirs, GATEWAY).verify(event, signer=event.agency_id)
        assert orjson.loads(gateway.open(event))["consent_id"].startswith("00000000-")
    assert [row.value for row in rows] == [e.data for e in events]  # the sealing is left as it was


def test_records_already_signed_or_no_event_leave_as_written(dirs: KeyDirs) -> None:
    refuge = Trust.load(dirs, REFUGE)
    row = kept(refuge, 0)
    signed = refuge.sign(as_received(row, repository.headers_of(row)))  # as written before relays signed
    single = OutboxRecord(
        **repository.new_row(
            event_id=signed.id, topic="t", key=row.key, value=row.value, headers=signed.to_kafka()[2], at=row.created_at
        )
    )
    plain = OutboxRecord(  # a dead letter
        **repository.new_row(
            event_id="x", topic="t", key=b"k", value=b"{}", headers=[("dlq_reason", b"schema")], at=row.created_at
        )
    )

    assert signed_headers([single, plain], {}) == [repository.headers_of(single), repository.headers_of(plain)]
    Trust.load(dirs, GATEWAY).verify(as_received(single, repository.headers_of(single)), signer=REFUGE)


def test_a_row_without_its_valid_tag_is_refused_and_the_others_still_leave(
    dirs: KeyDirs, caplog: pytest.LogCaptureFixture
) -> None:
    refuge, cpas = Trust.load(dirs, REFUGE), Trust.load(dirs, CPAS)
    # Written by someone who can write to the database but holds no key: no tag, a tag of another row, a
    # tag made with another owner's key, a tag over other content.
    untagged, borrowed, foreign, altered = (kept(refuge, n) for n in range(4))
    untagged.tag = None
    borrowed.tag = kept(refuge, 9).tag
    foreign.tag = kept(cpas, 3).tag
    altered.value = altered.value[:-1] + bytes([altered.value[-1] ^ 1])
    genuine = kept(refuge, 5)

    headers = signed_headers([untagged, borrowed, genuine, foreign, altered], {REFUGE: refuge})

    assert [h is None for h in headers] == [True, True, False, True, True]
    Trust.load(dirs, GATEWAY).verify(as_received(genuine, headers[2]), signer=REFUGE)
    assert [r.message for r in caplog.records].count("outbox row refused: no valid tag, not signed nor sent") == 4


def test_an_event_kept_before_a_rotation_leaves_signed_with_the_new_key(dirs: KeyDirs) -> None:
    refuge = Trust.load(dirs, REFUGE)
    row = kept(refuge, 0)
    old_kid = refuge.own.signing_kid
    add_keys(dirs, REFUGE)  # `maillage keys rotate` while the event waited in the outbox
    assert refuge.refresh() and refuge.own.signing_kid != old_kid

    [headers] = signed_headers([row], {REFUGE: refuge})

    event = as_received(row, headers)
    assert event.sigkid == refuge.own.signing_kid
    Trust.load(dirs, GATEWAY).verify(event, signer=REFUGE)


def test_an_event_of_an_owner_with_no_signer_here_is_refused_and_holds_nothing_back(dirs: KeyDirs) -> None:
    refuge = Trust.load(dirs, REFUGE)
    headers = signed_headers([kept(Trust.load(dirs, CPAS), 0), kept(refuge, 1)], {REFUGE: refuge})
    assert [h is None for h in headers] == [True, False]
