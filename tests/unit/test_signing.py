"""Batch signatures (version 2): one signature over a batch's hash tree, each event verifiable alone from what it
carries; single signatures (version 1) still read; nothing else verifies."""

from __future__ import annotations

import base64
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from maillage.core.crypto.keys import GATEWAY, KeyDirs, KeyUse, ensure_keys
from maillage.core.crypto.signing import SignatureError
from maillage.core.crypto.trust import Trust
from maillage.core.messaging.envelope import Envelope, new_event_id, new_subject_ref, source_of
from maillage.domain.events import EventType
from maillage.domain.vocabulary import LegalBasis, Purpose, Role

CPAS = "cpas-seraing"


@pytest.fixture
def trusts(tmp_path: Path) -> tuple[Trust, Trust]:
    dirs = KeyDirs(private=tmp_path / "private", public=tmp_path / "public")
    ensure_keys(dirs, {owner: tuple(KeyUse) for owner in (GATEWAY, CPAS)})
    return Trust.load(dirs, GATEWAY), Trust.load(dirs, CPAS)


def share(text: str) -> Envelope:
    return Envelope(
        id=new_event_id(),
        source=source_of("refuge-liege"),
        type=EventType.REFERRAL_CREATED,
        time=datetime.now(UTC),
        subject=new_subject_ref(),
        subjectrole=Role.VICTIM,
        legalbasis=LegalBasis.CONSENT,
        purpose=Purpose.REFERRAL,
        recipient=CPAS,
        data=text.encode(),
    )


def signed_batch(gateway: Trust, size: int) -> list[Envelope]:
    return gateway.sign_batch([gateway.seal(share(f"{i}"), f'{{"n": {i}}}'.encode(), to=CPAS) for i in range(size)])


def as_received(envelope: Envelope) -> Envelope:
    """The event as a consumer reads it from its Kafka record alone."""
    key, value, headers = envelope.to_kafka()
    return Envelope.from_kafka(key=key, value=value, headers=headers)


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 13, 100])
def test_every_event_of_a_batch_verifies_alone_from_its_record(trusts: tuple[Trust, Trust], size: int) -> None:
    gateway, cpas = trusts
    batch = signed_batch(gateway, size)

    assert len({e.sig for e in batch}) == 1, "one signature for the batch"
    assert all(e.sigpath and e.sigpath.split(".")[:2] == [str(i), str(size)] for i, e in enumerate(batch))
    for envelope in reversed(batch):
        cpas.verify(as_received(envelope), signer=GATEWAY)


def test_an_event_altered_or_given_another_events_path_does_not_verify(trusts: tuple[Trust, Trust]) -> None:
    gateway, cpas = trusts
    batch = [as_received(e) for e in signed_batch(gateway, 5)]
    cpas.verify(batch[0], signer=GATEWAY)  # the root is known now: what follows must still be refused
    assert batch[0].sigpath and batch[1].sigpath
    index, size, hashes = batch[1].sigpath.split(".")

    forged = [
        replace(batch[0], data=batch[0].data + b"x"),
        replace(batch[0], recipient="refuge-liege"),
        replace(batch[0], sigpath=batch[1].sigpath),
        replace(batch[1], sigpath=f"{int(index) + 1}.{size}.{hashes}"),  # another place in the tree
        replace(batch[1], sigpath=f"{index}.{size}.{hashes[:-43]}"),
        replace(batch[1], sigpath=f"{index}.{size}.{hashes}AAAA"),
        replace(batch[1], sigpath="not a path"),
        replace(batch[1], sigpath=None),  # a batch signature read as a single one
    ]
    for envelope in forged:
        with pytest.raises(SignatureError):
            cpas.verify(envelope, signer=GATEWAY)
    with pytest.raises(SignatureError):  # the gateway's signature, but someone else claimed as the signer
        cpas.verify(batch[2], signer="refuge-liege")


def test_a_path_altered_above_the_nodes_a_verifier_already_climbed_through_does_not_verify(
    trusts: tuple[Trust, Trust],
) -> None:
    """A verifier keeps the ways up it took (signing.py: the events of a batch share their upper nodes); an
    event whose own path is altered above such a node is refused all the same, whichever hash is altered."""
    gateway, cpas = trusts
    batch = [as_received(e) for e in signed_batch(gateway, 64)]
    for envelope in batch[:-1]:
        cpas.verify(envelope, signer=GATEWAY)
    last = batch[-1]
    assert last.sigpath is not None
    index, size, hashes = last.sigpath.split(".")
    raw = base64.urlsafe_b64decode(hashes + "=")
    assert len(raw) == 6 * 32
    for level in range(6):
        altered = raw[: 32 * level] + bytes(32) + raw[32 * (level + 1) :]
        path = f"{index}.{size}.{base64.urlsafe_b64encode(altered).decode().rstrip('=')}"
        with pytest.raises(SignatureError):
            cpas.verify(replace(last, sigpath=path), signer=GATEWAY)
    cpas.verify(last, signer=GATEWAY)


def test_single_signatures_are_still_read_beside_batch_signatures(trusts: tuple[Trust, Trust]) -> None:
    gateway, cpas = trusts
    single = as_received(gateway.seal_and_sign(share("one"), b'{"n": 1}', to=CPAS))
    batched = as_received(signed_batch(gateway, 3)[2])

    assert single.sigpath is None and batched.sigpath is not None
    for envelope in (single, batched):
        cpas.verify(envelope, signer=GATEWAY)
        assert cpas.open(envelope).startswith(b'{"n": ')
    with pytest.raises(SignatureError):  # a single signature given a path is no batch signature
        cpas.verify(replace(single, sigpath=batched.sigpath), signer=GATEWAY)


def test_a_gateway_reads_an_agencys_batch_signature_as_it_reads_its_single_ones(trusts: tuple[Trust, Trust]) -> None:
    gateway, cpas = trusts  # here the CPAS sends: its relay may sign per batch once every gateway reads both
    to_gateway = [cpas.seal(share(f"{i}"), b'{"n": 0}', to=GATEWAY) for i in range(4)]
    for envelope in [*cpas.sign_batch(to_gateway), cpas.seal_and_sign(share("one"), b'{"n": 0}', to=GATEWAY)]:
        received = as_received(envelope)
        gateway.verify(received, signer=CPAS)
        assert gateway.open(received) == b'{"n": 0}'
