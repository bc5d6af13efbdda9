"""Trust for one owner (an agency or the gateway): seal and sign what it sends, verify and open what it gets."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

import orjson
from pydantic import ValidationError

from maillage.core.crypto.keys import GATEWAY, KeyDirs, KeyUse, OwnKeys, PublicKeys
from maillage.core.crypto.sealing import SealError, open_sealed, seal, sealed_kid
from maillage.core.crypto.signing import SignatureError, sign, verify
from maillage.core.messaging.bus import Record
from maillage.core.messaging.envelope import Envelope, EnvelopeError, new_event_id, source_of
from maillage.domain.errors import Unacceptable
from maillage.domain.events import PAYLOAD_MODELS, EventPayload, EventType
from maillage.domain.vocabulary import LegalBasis, Purpose, Role

__all__ = ["PublicTrust", "Received", "Refused", "SealError", "SignatureError", "Trust", "watch_keys"]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Received:
    """An event as it arrived: signed by whom it should be, opened, and valid for its type."""

    envelope: Envelope
    payload: EventPayload


class Refused(Unacceptable):
    """A record that is no acceptable event: it becomes a dead letter with `reason` (a stable word).
    `envelope` is set once the signature held: its sender can then be told."""

    def __init__(self, reason: str, detail: str, *, envelope: Envelope | None = None) -> None:
        super().__init__(reason, detail)
        self.envelope = envelope


def _stamp(dirs: KeyDirs) -> tuple[tuple[str, int], ...]:
    """Names and modification times of the public key files: cheap to read, changes with any rotation."""
    if not dirs.public.exists():
        return ()
    return tuple(sorted((p.name, p.stat().st_mtime_ns) for p in dirs.public.glob("*.json")))


@dataclass(kw_only=True)
class _KeyFiles:
    """The key directories as last read, and read again when a key file is added or retired."""

    dirs: KeyDirs
    public: PublicKeys
    _seen: tuple[tuple[str, int], ...] = ()

    def refresh(self) -> bool:
        """Reload the key directories if a key was added or retired since (a rotation elsewhere); true if so."""
        stamp = _stamp(self.dirs)
        if stamp == self._seen:
            return False
        self._seen = stamp
        self.public = PublicKeys.load(self.dirs)
        self._reload_own()
        return True

    def _reload_own(self) -> None:
        """The owner's private keys, read again after the public ones (none here)."""


@dataclass(kw_only=True)
class Trust(_KeyFiles):
    own: OwnKeys
    uses: frozenset[KeyUse] = frozenset(KeyUse)

    @classmethod
    def load(cls, dirs: KeyDirs, owner: str, *, uses: frozenset[KeyUse] = frozenset(KeyUse)) -> Trust:
        public = PublicKeys.load(dirs)
        return cls(
            dirs=dirs, own=OwnKeys.load(dirs, owner, public, uses=uses), public=public, _seen=_stamp(dirs), uses=uses
        )

    @property
    def owner(self) -> str:
        return self.own.owner

    def _reload_own(self) -> None:
        self.own = OwnKeys.load(self.dirs, self.owner, self.public, uses=self.uses)

    def seal_and_sign(self, envelope: Envelope, plaintext: bytes, *, to: str) -> Envelope:
        sealed = seal(plaintext, to=self.public.current(to, KeyUse.SEALING), event_id=envelope.id)
        unsigned = replace(envelope, data=sealed, sigkid=self.own.signing_kid, sig=None)
        return replace(unsigned, sig=sign(unsigned.attributes(), sealed, key=self.own.signing))

    def verify(self, envelope: Envelope, *, signer: str) -> None:
        """Raises SignatureError unless `signer` signed exactly these attributes and this data."""
        if envelope.sigkid and self.public.get(envelope.sigkid, use=KeyUse.SIGNING) is None:
            self.refresh()
        verify(envelope.attributes(), envelope.data, keys=self.public, signer=signer)

    def open(self, envelope: Envelope) -> bytes:
        """The plaintext sealed to this owner; raises SealError."""
        if sealed_kid(envelope.data) not in self.own.opening:
            self.refresh()
        return open_sealed(envelope.data, keys=self.own.opening, owner=self.owner, event_id=envelope.id)

    def verify_and_open(self, envelope: Envelope, *, signer: str) -> bytes:
        self.verify(envelope, signer=signer)
        return self.open(envelope)

    def sealed_event(
        self,
        payload: EventPayload,
        *,
        subject_ref: str,
        role: Role,
        basis: LegalBasis,
        purpose: Purpose,
        at: datetime,
        recipients: tuple[str, ...] = (),
        pole: str | None = None,
    ) -> Envelope:
        """An event of this owner's about `subject_ref`, in `pole`, sealed to the gateway and signed: what an
        outbox publishes (an agency's, or the dispatcher's for an agency it speaks for)."""
        envelope = Envelope(
            id=new_event_id(),
            source=source_of(self.owner),
            type=payload.event_type,
            time=at,
            subject=subject_ref,
            subjectrole=role,
            legalbasis=basis,
            purpose=purpose,
            recipient=",".join(recipients),
            data=b"",
            pole=pole,
        )
        plaintext = orjson.dumps(payload.model_dump(mode="json", exclude_none=True))
        return self.seal_and_sign(envelope, plaintext, to=GATEWAY)

    def receive(
        self, record: Record, *, signer: str | None = None, only: frozenset[EventType] | None = None
    ) -> Received | None:
        """The event in `record`, verified (signed by `signer`, else by its own source), opened and validated;
        None when its type is not among `only`. Raises Refused, with the dead letter's reason, otherwise."""
        try:
            envelope = Envelope.from_kafka(key=record.key, value=record.value, headers=list(record.headers))
        except EnvelopeError as exc:
            raise Refused(exc.reason, exc.detail) from None
        if only is not None and envelope.type not in only:
            return None
        try:
            self.verify(envelope, signer=signer or envelope.agency_id)
        except SignatureError as exc:
            raise Refused("signature", str(exc)) from None
        try:
            plaintext = self.open(envelope)
        except SealError as exc:
            raise Refused("sealing", str(exc), envelope=envelope) from None
        try:
            return Received(envelope, PAYLOAD_MODELS[envelope.type].model_validate(orjson.loads(plaintext)))
        except orjson.JSONDecodeError:
            raise Refused("schema", "data is not JSON", envelope=envelope) from None
        except ValidationError as exc:
            fields = sorted({".".join(str(p) for p in e["loc"]) for e in exc.errors()})
            raise Refused("schema", f"invalid fields: {', '.join(fields)[:300]}", envelope=envelope) from None


@dataclass(kw_only=True)
class PublicTrust(_KeyFiles):
    """The public keys alone, for a service that checks tokens but holds no keys of its own (the monitor)."""

    owner: str = ""

    @classmethod
    def load(cls, dirs: KeyDirs) -> PublicTrust:
        return cls(dirs=dirs, public=PublicKeys.load(dirs), _seen=_stamp(dirs))


async def watch_keys(
    trusts: Sequence[Trust | PublicTrust], *, every: float, on_change: Callable[[], None] | None = None
) -> None:
    """Reload the keys every `every` seconds: a key retired with `maillage keys retire` is refused by this
    running service within that bound (its tokens, cached or not, and its signatures), and `on_change`
    may close what was opened with it (the dispatcher's live streams)."""
    while True:
        await asyncio.sleep(every)
        try:
            changed = [trust.refresh() for trust in trusts]
        except (OSError, ValueError, LookupError) as exc:  # a key file half-written by a rotation: next turn
            log.warning("keys not reloaded, trying again", extra={"error": type(exc).__name__})
            continue
        if any(changed) and on_change is not None:
            on_change()
