"""Trust for one owner (an agency or the gateway): seal and sign what it sends, verify and open what it gets."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import orjson
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import ValidationError

from maillage.core.crypto.jwks import JwksSource
from maillage.core.crypto.keys import GATEWAY, KeyDirs, KeyUse, OwnKeys, PublicKeys, read_private
from maillage.core.crypto.sealing import Sealer, SealError, open_sealed, sealed_kid
from maillage.core.crypto.signing import SignatureError, sign, sign_batch, verify
from maillage.core.messaging.bus import Record
from maillage.core.messaging.envelope import Envelope, EnvelopeError, new_event_id, source_of
from maillage.domain.errors import Unacceptable
from maillage.domain.events import PAYLOAD_MODELS, EventPayload, EventType
from maillage.domain.vocabulary import LegalBasis, Purpose, Role

__all__ = ["PublicTrust", "Received", "Refused", "SealError", "SignatureError", "Trust", "watch_keys"]
log = logging.getLogger(__name__)
T = TypeVar("T")


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


ROW_KEY_INFO = b"maillage outbox row tag v1"


def _stamp(dirs: KeyDirs) -> tuple[tuple[str, int], ...]:
    """Names and modification times of the public key files: cheap to read, changes with any rotation."""
    if not dirs.public.exists():
        return ()
    return tuple(sorted((p.name, p.stat().st_mtime_ns) for p in dirs.public.glob("*.json")))


@dataclass(kw_only=True)
class _KeyFiles:
    """The public keys as last read — from the key directories, and from the JWKS URLs of the owners the
    network file names with one — read again when a key file is added or retired, or a fetched set changed."""

    dirs: KeyDirs
    public: PublicKeys
    remote: JwksSource | None = None
    _seen: tuple[tuple[str, int], ...] = ()
    _fetched: int = -1  # the version of the fetched keys last assembled (several trusts may share one source)

    @property
    def fetches_keys(self) -> bool:
        """Some owner's keys come from its JWKS URL: checking or sealing may first fetch one not known yet
        (`refresh`), a blocking request that only a thread may wait for, never an event loop."""
        return self.remote is not None

    def refresh(self, *, owner: str | None = None, wait: bool = True) -> bool:
        """Reload the keys if one was added or retired since (a rotation elsewhere); true if so. `owner`: a key
        id of this owner's is unknown here, so its JWKS is asked again (at most every few seconds)."""
        fetched = -1
        if self.remote is not None:
            self.remote.refresh(owner=owner, wait=wait)
            fetched = self.remote.version
        stamp = _stamp(self.dirs)
        if stamp == self._seen and fetched == self._fetched:
            return False
        self._seen, self._fetched = stamp, fetched
        self.public = public_keys(self.dirs, self.remote)
        self._reload_own()
        return True

    def _reload_own(self) -> None:
        """The owner's private keys, read again after the public ones (none here)."""


def public_keys(dirs: KeyDirs, remote: JwksSource | None) -> PublicKeys:
    """The keys in the directories, but those of an owner with a JWKS URL: its own server's answer wins."""
    if remote is None:
        return PublicKeys.load(dirs)
    local = [k for k in PublicKeys.load(dirs).by_kid.values() if k.owner not in remote.urls]
    return PublicKeys([*local, *remote.keys()])


@dataclass(kw_only=True)
class Trust(_KeyFiles):
    own: OwnKeys
    uses: frozenset[KeyUse] = frozenset(KeyUse)
    sealer: Sealer = field(default_factory=Sealer)
    _row_keys: dict[str, bytes] = field(default_factory=dict, repr=False)

    @classmethod
    def load(
        cls,
        dirs: KeyDirs,
        owner: str,
        *,
        uses: frozenset[KeyUse] = frozenset(KeyUse),
        remote: JwksSource | None = None,
    ) -> Trust:
        """`owner`'s keys and everyone's public keys; `remote` must not name `owner` (its keys are here)."""
        assert remote is None or owner not in remote.urls, "an owner's own keys come from its own directory"
        public = public_keys(dirs, remote)
        return cls(
            dirs=dirs,
            own=OwnKeys.load(dirs, owner, public, uses=uses),
            public=public,
            remote=remote,
            _seen=_stamp(dirs),
            uses=uses,
        )

    @property
    def owner(self) -> str:
        return self.own.owner

    def _reload_own(self) -> None:
        self.own = OwnKeys.load(self.dirs, self.owner, self.public, uses=self.uses)

    def seal_and_sign(self, envelope: Envelope, plaintext: bytes, *, to: str) -> Envelope:
        """The event sealed to `to` and signed alone (signature version 1)."""
        return self.sign(self.seal(envelope, plaintext, to=to))

    def sign(self, envelope: Envelope) -> Envelope:
        """The event signed alone (signature version 1)."""
        named = envelope.changed(sigkid=self.own.signing_kid, sig=None, sigpath=None)
        return named.changed(sig=sign(named.attributes(), named.data, key=self.own.signing))

    async def knowing(self, owner: str) -> None:
        """`owner`'s keys fetched first, in a thread, when none is known here yet and it has a JWKS URL (its server
        was not up when this one started): sealing to it then makes no blocking request on the event loop."""
        if self.fetches_keys and not self.public.of(owner, KeyUse.SEALING):
            await asyncio.to_thread(self.refresh, owner=owner)

    def seal(self, envelope: Envelope, plaintext: bytes, *, to: str) -> Envelope:
        """The event sealed to `to`, named as this owner's to sign, not signed yet (`sign_batch`)."""
        if not self.public.of(to, KeyUse.SEALING):
            self.refresh(owner=to)  # its JWKS not fetched yet (its server was not up when this one started)
        sealed = self.sealer.seal(plaintext, to=self.public.current(to, KeyUse.SEALING), event_id=envelope.id)
        return envelope.changed(data=sealed, sigkid=self.own.signing_kid, sig=None, sigpath=None)

    def sign_batch(self, envelopes: Sequence[Envelope]) -> list[Envelope]:
        """These events (from `seal`) under one signature of their hash tree, each with its path (version 2).
        Each is named with the signing key of now: one sealed before a rotation is signed with the new key."""
        kid = self.own.signing_kid
        named = [e.changed(sigkid=kid, sig=None, sigpath=None) for e in envelopes]
        signed = sign_batch([(e.attributes(), e.data) for e in named], key=self.own.signing)
        return [e.changed(sig=sig, sigpath=path) for e, (sig, path) in zip(named, signed, strict=True)]

    def row_key(self, kid: str) -> bytes:
        """A secret of this owner's signing key `kid`, for its outbox rows' integrity tags (`core/outbox/signing.py`):
        whoever holds the owner's private keys has it, and no one else. KeyError_ if that key is not here."""
        if kid not in self._row_keys:  # a row written before a rotation names a key kept until it is retired
            raw = read_private(self.dirs, self.owner, kid)
            self._row_keys[kid] = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=ROW_KEY_INFO).derive(raw)
        return self._row_keys[kid]

    def verify(self, envelope: Envelope, *, signer: str) -> None:
        """Raises SignatureError unless `signer` signed exactly these attributes and this data."""
        if envelope.sigkid and self.public.get(envelope.sigkid, use=KeyUse.SIGNING) is None:
            self.refresh(owner=signer)
        verify(envelope.attributes(), envelope.data, keys=self.public, signer=signer)

    def open(self, envelope: Envelope) -> bytes:
        """The plaintext sealed to this owner; raises SealError."""
        if sealed_kid(envelope.data) not in self.own.opening:
            self.refresh()
        return open_sealed(envelope.data, keys=self.own.opening, owner=self.owner, event_id=envelope.id)

    def verify_and_open(self, envelope: Envelope, *, signer: str) -> bytes:
        self.verify(envelope, signer=signer)
        return self.open(envelope)

    def sealed_event(self, payload: EventPayload, **named: Any) -> Envelope:
        """`sealed`, and signed alone (signature version 1): an event produced straight onto Kafka."""
        return self.sign(self.sealed(payload, **named))

    def sealed(
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
        """An event of this owner's about `subject_ref`, in `pole`, sealed to the gateway, not signed yet: what an
        outbox keeps (an agency's, or the dispatcher's for an agency it speaks for), whose relay signs the events
        it publishes together under one signature (`core/outbox/signing.py`)."""
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
        return self.seal(envelope, plaintext, to=GATEWAY)

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
            # Parsed and validated in one pass by pydantic's own parser: no dict of the whole payload in between.
            return Received(envelope, PAYLOAD_MODELS[envelope.type].model_validate_json(plaintext))
        except ValidationError as exc:
            errors = exc.errors()
            if any(e["type"] == "json_invalid" for e in errors):
                raise Refused("schema", "data is not JSON", envelope=envelope) from None
            fields = sorted({".".join(str(p) for p in e["loc"]) for e in errors})
            raise Refused("schema", f"invalid fields: {', '.join(fields)[:300]}", envelope=envelope) from None


@dataclass(kw_only=True)
class PublicTrust(_KeyFiles):
    """The public keys alone, for a service that checks tokens but holds no keys of its own (the monitor)."""

    owner: str = ""

    @classmethod
    def load(cls, dirs: KeyDirs, *, remote: JwksSource | None = None) -> PublicTrust:
        return cls(dirs=dirs, public=public_keys(dirs, remote), remote=remote, _seen=_stamp(dirs))


async def with_keys(trusts: Sequence[Trust | PublicTrust], work: Callable[[], T]) -> T:
    """`work`, which verifies or opens records with `trusts`, on the event loop when every key is read from the
    key folders; in a thread when some owner's keys come from its JWKS URL. A key id not known yet (that owner
    rotated its keys) is then fetched before the record is checked (`Trust.refresh`): a blocking request, and a
    pause between two fetches of one owner's keys, that must not hold up the loop — its HTTP requests, its other
    consumers, the on-call sockets — nor wait on a server this very loop serves."""
    if not any(trust.fetches_keys for trust in trusts):
        return work()
    return await asyncio.to_thread(work)


async def watch_keys(
    trusts: Sequence[Trust | PublicTrust], *, every: float, on_change: Callable[[], None] | None = None
) -> None:
    """Reload the keys every `every` seconds: a key retired with `maillage keys retire` is refused by this
    running service within that bound (its tokens, cached or not, and its signatures), and `on_change`
    may close what was opened with it (the dispatcher's live streams)."""
    while True:
        await asyncio.sleep(every)
        try:
            # In a thread: fetching JWKS documents must not hold up the event loop.
            changed = await asyncio.to_thread(lambda: [trust.refresh() for trust in trusts])
        except (OSError, ValueError, LookupError) as exc:  # a key file half-written by a rotation: next turn
            log.warning("keys not reloaded, trying again", extra={"error": type(exc).__name__})
            continue
        if any(changed) and on_change is not None:
            on_change()
