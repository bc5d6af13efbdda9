"""The bench's switch for sealing and signing: its "off" run really carries events unsealed and unsigned, and the
gateway takes them as they are, while the real trust refuses such an event (so "on" can only be the real thing)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from maillage.cli.bench.plain import PlainTrust
from maillage.core.crypto.keys import GATEWAY, KeyDirs, KeyUse, ensure_keys
from maillage.core.crypto.trust import Refused, Trust
from maillage.core.messaging.envelope import Envelope, new_subject_ref
from maillage.domain.events import ConsentGranted
from maillage.domain.vocabulary import LegalBasis, Purpose, Role

SENDER = "refuge-liege"


class Consumed:
    """A record as the gateway's consumer hands it over."""

    def __init__(self, key: bytes, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        self.topic, self.partition, self.offset, self.timestamp = "submitted", 0, 0, 0
        self.key, self.value, self.headers = key, value, headers


def test_unsealed_events_travel_in_clear_and_only_the_bench_trust_takes_them(tmp_path: Path) -> None:
    dirs = KeyDirs(private=tmp_path / "private", public=tmp_path / "public")
    ensure_keys(dirs, {owner: tuple(KeyUse) for owner in (SENDER, GATEWAY)})
    payload = ConsentGranted(
        consent_id="0197a0a0-0000-7000-8000-000000000001",
        categories=("contact",),
        recipients=("cpas-seraing",),
        purposes=(Purpose.REFERRAL,),
    )
    subject_ref = new_subject_ref()

    def event(trust: Trust) -> Envelope:
        return trust.sealed_event(
            payload,
            subject_ref=subject_ref,
            role=Role.VICTIM,
            basis=LegalBasis.CONSENT,
            purpose=Purpose.REFERRAL,
            at=datetime.now(UTC),
        )

    plain = event(PlainTrust.load(dirs, SENDER))
    assert plain.sig is None and plain.sigkid is None and b'"contact"' in plain.data
    record = Consumed(*plain.to_kafka())
    received = PlainTrust.load(dirs, GATEWAY).receive(record)
    assert received is not None and received.payload == payload
    with pytest.raises(Refused) as refused:
        Trust.load(dirs, GATEWAY).receive(record)
    assert refused.value.reason == "signature"

    sealed = event(Trust.load(dirs, SENDER))
    assert sealed.sig and b'"contact"' not in sealed.data
    assert Trust.load(dirs, GATEWAY).receive(Consumed(*sealed.to_kafka())) is not None
