"""What a receiver makes of a signed, sealed event's data: the payload, or the dead letter's reason and detail."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from maillage.core.crypto.keys import GATEWAY, KeyDirs, KeyUse, ensure_keys
from maillage.core.crypto.trust import Refused, Trust
from maillage.core.messaging.bus import Consumed
from maillage.core.messaging.envelope import new_subject_ref
from maillage.domain.events import ReferralCreated
from maillage.domain.vocabulary import LegalBasis, Purpose, Role

REFUGE = "refuge-liege"


@pytest.fixture
def dirs(tmp_path: Path) -> KeyDirs:
    dirs = KeyDirs(private=tmp_path / "private", public=tmp_path / "public")
    ensure_keys(dirs, {owner: tuple(KeyUse) for owner in (GATEWAY, REFUGE)})
    return dirs


def submitted(dirs: KeyDirs, data: bytes) -> Consumed:
    """A referral whose data is `data`, sealed to the gateway and signed by its sender."""
    refuge = Trust.load(dirs, REFUGE)
    envelope = refuge.sealed(
        ReferralCreated(reason="shelter", narrative="placeholder"),
        subject_ref=new_subject_ref(),
        role=Role.VICTIM,
        basis=LegalBasis.CONSENT,
        purpose=Purpose.REFERRAL,
        at=datetime.now(UTC),
        recipients=("cpas-seraing",),
    )
    return Consumed("maillage.submitted", 0, 7, *refuge.seal_and_sign(envelope, data, to=GATEWAY).to_kafka())


def refusal(dirs: KeyDirs, data: bytes) -> tuple[str, str]:
    with pytest.raises(Refused) as refused:
        Trust.load(dirs, GATEWAY).receive(submitted(dirs, data))
    assert refused.value.envelope is not None, "signed: its sender can be told"
    return refused.value.reason, refused.value.detail


def test_the_payload_is_read_as_its_sender_wrote_it(dirs: KeyDirs) -> None:
    data = {"reason": "shelter", "narrative": "Needs a place tonight.", "children": [{"birth_year": 2021}]}
    received = Trust.load(dirs, GATEWAY).receive(submitted(dirs, orjson.dumps(data)))

    assert received is not None
    assert received.payload == ReferralCreated.model_validate(data)
    assert received.payload.model_dump(mode="json", exclude_none=True, exclude_defaults=True) == data


@pytest.mark.parametrize(
    "data",
    [b"{reason: shelter", b"", b'{"reason": "shelter"', b"\xff\xfe", b'{"reason": "shelter"} trailing'],
    ids=["unquoted", "empty", "unterminated", "not UTF-8", "trailing text"],
)
def test_data_that_is_not_json_is_refused_as_such(dirs: KeyDirs, data: bytes) -> None:
    assert refusal(dirs, data) == ("schema", "data is not JSON")


def test_data_against_the_schema_names_the_fields_and_never_their_values(dirs: KeyDirs) -> None:
    data = {"reason": "apocalypse", "religion": "Secret Faith", "children": [{"birth_year": "four"}]}
    reason, detail = refusal(dirs, orjson.dumps(data))

    assert reason == "schema"
    assert detail == "invalid fields: children.0.birth_year, reason, religion"
    assert "Secret" not in detail and "apocalypse" not in detail and "four" not in detail


@pytest.mark.parametrize("data", [b"[]", b'"shelter"', b"null", b"42"])
def test_json_that_is_not_an_object_is_refused_against_the_schema(dirs: KeyDirs, data: bytes) -> None:
    assert refusal(dirs, data) == ("schema", "invalid fields: ")
