"""The relay signs what it publishes: the events an outbox keeps sealed but unsigned leave under one signature
per batch and owner (signature version 2, `core/crypto/signing.py`), so their reader verifies one signature per
batch rather than one per event. A record already signed, or not an event (a dead letter, a plain record), goes
as it is.

A row to be signed carries a tag (HMAC-SHA256 under a key derived from its owner's signing key, which only that
owner's services hold), written with it: the relay signs no row without its valid tag, so whoever can write to
the database but holds no key cannot have an event signed as the agency. Such a row is refused: logged, counted
(`maillage_outbox_refused_total`) and never sent."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Mapping, Sequence
from typing import Protocol

from maillage.core.messaging.bus import header
from maillage.core.messaging.envelope import Envelope, Headers
from maillage.core.outbox import repository
from maillage.core.outbox.models import Unpublished

log = logging.getLogger(__name__)


class BatchSigner(Protocol):
    def sign_batch(self, envelopes: Sequence[Envelope]) -> list[Envelope]: ...

    def row_key(self, kid: str) -> bytes: ...


def to_sign(headers: Headers) -> bool:
    """An event sealed and named for a signature (`ce_sigkid`) that it does not carry yet."""
    names = {name for name, _ in headers}
    return "ce_sigkid" in names and "ce_sig" not in names


def row_tag(signer: BatchSigner, *, key: bytes, value: bytes, headers: Headers) -> str:
    """The integrity tag of a row to be signed: over its key, value and headers, under the key of the signing
    key it names."""
    mac = hmac.new(signer.row_key(header(headers, "ce_sigkid") or ""), digestmod="sha256")
    for part in (key, value, *(name.encode() + b"\0" + v for name, v in sorted(headers))):
        mac.update(len(part).to_bytes(8, "big") + part)
    return mac.hexdigest()


def signed_headers(rows: Sequence[Unpublished], signers: Mapping[str, BatchSigner]) -> list[Headers | None]:
    """Each row's headers, its event signed if it was kept unsigned — those of one owner together, in order —
    or None for a row refused: its tag is missing or wrong, or its owner has no signer here (the dispatcher no
    longer serves that agency): nothing here can sign it, and waiting for it would hold every later row back."""
    out: list[Headers | None] = []
    owned: dict[str, list[tuple[int, Envelope]]] = {}
    for index, row in enumerate(rows):
        headers = repository.headers_of(row)
        out.append(headers)
        if not to_sign(headers):
            continue
        envelope = Envelope.from_kafka(key=row.key, value=row.value, headers=headers)
        signer = signers.get(envelope.agency_id)
        if signer is None or not _tagged(row, signer, headers):
            out[index] = None
            continue
        owned.setdefault(envelope.agency_id, []).append((index, envelope))
    for owner, events in owned.items():
        signed = signers[owner].sign_batch([envelope for _, envelope in events])
        for (index, _), envelope in zip(events, signed, strict=True):
            out[index] = envelope.to_kafka()[2]
    return out


def _tagged(row: Unpublished, signer: BatchSigner, headers: Headers) -> bool:
    try:
        expected = row_tag(signer, key=row.key, value=row.value, headers=headers)
    except LookupError:  # the signing key it names is not here (retired): nothing can vouch for it
        expected = ""
    if row.tag and expected and hmac.compare_digest(row.tag, expected):
        return True
    log.error("outbox row refused: no valid tag, not signed nor sent", extra={"row": row.id})
    return False
