"""Sealing and signing switched off, for `maillage bench` alone: what they cost is the gateway's throughput with
them beside its throughput without them, in the same run (issue 15 asks for on ÷ off ≥ 0.7).

Nothing outside the bench can reach this: no setting, no command, no service builds a `PlainTrust`. The bench
gives one to the workload (its records leave unsealed and unsigned) and to the gateway's crypto threads (they
take records as they come and seal nothing), on topics and a database of their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from maillage.core.crypto.trust import Trust
from maillage.core.messaging.envelope import Envelope


@dataclass(kw_only=True)
class PlainTrust(Trust):
    """A `Trust` that neither seals nor signs, nor verifies nor opens: the payload travels as it is."""

    def seal(self, envelope: Envelope, plaintext: bytes, *, to: str) -> Envelope:
        return envelope.changed(data=plaintext, sigkid=None, sig=None, sigpath=None)

    def sign(self, envelope: Envelope) -> Envelope:
        return envelope

    def sign_batch(self, envelopes: Sequence[Envelope]) -> list[Envelope]:
        return list(envelopes)

    def verify(self, envelope: Envelope, *, signer: str) -> None:
        return None

    def open(self, envelope: Envelope) -> bytes:
        return envelope.data
