"""The CloudEvents 1.0 envelope in Kafka binary content mode (`ce_*` headers, `content-type`, the data as the value).

Written and read here rather than through the CloudEvents SDK, whose generic event object, attribute validation
and date parser cost three times the rest of the codec on every record of every hop; what the SDK writes and
reads, this writes and reads the same (`tests/unit/test_envelope_codec.py` holds the SDK to it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from enum import Enum
from typing import Any, TypeVar

import uuid_utils

from maillage.domain.errors import Unacceptable
from maillage.domain.events import EventType
from maillage.domain.vocabulary import LegalBasis, Purpose, Role

SOURCE_PREFIX = "urn:maillage:agency:"
CONTENT_TYPE = "application/json"
SEALED_CONTENT_TYPE = "application/vnd.maillage.sealed"
# "s-" and 128 random bits in hex, as `new_subject_ref` mints them: no room for a name, a birth date or any
# other free text outside the categories the gateway filters.
SUBJECT_REF = re.compile(r"^s-[0-9a-f]{32}$")
# What an envelope is about, and its Kafka key: a person (s-), an anonymous consultation (c-) or a case
# conference (k-), each 128 random bits; which kind fits which event type is the gateway's check.
ENVELOPE_SUBJECT = re.compile(r"^[sck]-[0-9a-f]{32}$")
POLE = re.compile(r"^[a-z][a-z0-9_-]{1,40}$")
CE_PREFIX = "ce_"
CONTENT_TYPE_HEADER = "content-type"  # the binding's header for the `datacontenttype` attribute
SPECVERSION = "1.0"
REQUIRED = ("id", "source", "type", "specversion")
# An extension attribute's name (CloudEvents 1.0: lower-case letters and digits); `data` is reserved.
EXTENSION_NAME = re.compile(r"^[a-z0-9]+$")
_CORE = frozenset({*REQUIRED, "time", "subject", "datacontenttype", "dataschema"})
_OURS = frozenset(
    {"subjectrole", "legalbasis", "purpose", "recipient", "traceparent", "pole", "sigkid", "sig", "sigpath"}
)
_CHECKED = _CORE | _OURS  # names known to be valid: only another one is matched against the pattern

Headers = list[tuple[str, bytes]]


class EnvelopeError(Unacceptable, ValueError):
    """A record is not a valid Maillage envelope."""


def _timestamp(moment: datetime) -> str:
    text = moment.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def new_event_id() -> str:
    return str(uuid_utils.uuid7())


def new_subject_ref() -> str:
    return "s-" + uuid_utils.uuid4().hex


def new_consultation_ref() -> str:
    """What an anonymous consultation's envelope is about (and keyed by) instead of a person."""
    return "c-" + uuid_utils.uuid4().hex


def conference_ref(conference_id: str) -> str:
    """What a case conference's own events are about (and keyed by), so that they stay in order."""
    return "k-" + conference_id.replace("-", "")


def source_of(agency_id: str) -> str:
    return SOURCE_PREFIX + agency_id


@dataclass(frozen=True)
class Envelope:
    id: str
    source: str
    type: EventType
    time: datetime
    subject: str
    subjectrole: Role
    legalbasis: LegalBasis
    purpose: Purpose
    recipient: str
    data: bytes
    traceparent: str | None = None
    # The Pôle of the event: a referral or an alert to a sector reaches that sector's agencies of this Pôle.
    pole: str | None = None
    sigkid: str | None = None
    sig: str | None = None
    # Set when `sig` signs a batch (signature version 2): the event's place in the batch's hash tree and the
    # hashes that lead from it to the signed root (core/crypto/signing.py). Absent: `sig` signs this event alone.
    sigpath: str | None = None

    @property
    def agency_id(self) -> str:
        return self.source.removeprefix(SOURCE_PREFIX)

    @property
    def recipients(self) -> tuple[str, ...]:
        return tuple(r for r in self.recipient.split(",") if r)

    def changed(self, **changes: Any) -> Envelope:
        """This envelope with `changes`, as `dataclasses.replace` makes it, some eight times faster: replace reads
        the class's fields and calls `__init__` again each time (9 µs against 1.2 on the README's machine), and a
        share is copied four times on its way out of the gateway (addressed, sealed, named, signed)."""
        if not _FIELDS.issuperset(changes):
            raise TypeError(f"not fields of an envelope: {sorted(set(changes) - _FIELDS)}")
        copy = object.__new__(Envelope)
        copy.__dict__.update(self.__dict__)
        copy.__dict__.update(changes)
        return copy

    def readdressed(self, *, recipient: str, legalbasis: LegalBasis, data: bytes) -> Envelope:
        """A recipient's copy, unsigned."""
        return self.changed(recipient=recipient, legalbasis=legalbasis, data=data, sigkid=None, sig=None, sigpath=None)

    @property
    def content_type(self) -> str:
        return SEALED_CONTENT_TYPE if self.sigkid else CONTENT_TYPE

    def attributes(self) -> dict[str, str]:
        """Every CloudEvents attribute as it travels (strings), the signature included when present."""
        attributes = {
            "id": self.id,
            "source": self.source,
            "type": self.type.value,
            "specversion": "1.0",
            "time": _timestamp(self.time),
            "subject": self.subject,
            "datacontenttype": SEALED_CONTENT_TYPE if self.sigkid else CONTENT_TYPE,
            "subjectrole": self.subjectrole.value,
            "legalbasis": self.legalbasis.value,
            "purpose": self.purpose.value,
            "recipient": self.recipient,
        }
        # The optional ones when present, in this order (a few times per record at each hop: no dict of them).
        if self.traceparent:
            attributes["traceparent"] = self.traceparent
        if self.pole:
            attributes["pole"] = self.pole
        if self.sigkid:
            attributes["sigkid"] = self.sigkid
        if self.sig:
            attributes["sig"] = self.sig
        if self.sigpath:
            attributes["sigpath"] = self.sigpath
        return attributes

    def to_kafka(self) -> tuple[bytes, bytes, Headers]:
        """The record's key (the subject), value (the data) and headers (every attribute, UTF-8)."""
        headers = [
            (CONTENT_TYPE_HEADER if name == "datacontenttype" else CE_PREFIX + name, text.encode())
            for name, text in self.attributes().items()
        ]
        return self.subject.encode(), self.data, headers

    @classmethod
    def from_kafka(cls, *, key: bytes | None, value: bytes | None, headers: Headers) -> Envelope:
        attributes = _attributes(headers)
        get = attributes.get
        time = get("time")
        try:
            envelope = cls(
                id=attributes["id"],
                source=attributes["source"],
                type=_member(EventType, _EVENT_TYPES, attributes["type"]),
                time=datetime.fromisoformat(time) if time else datetime.now(UTC),
                subject=get("subject") or "",
                subjectrole=_member(Role, _ROLES, get("subjectrole", "")),
                legalbasis=_member(LegalBasis, _BASES, get("legalbasis", "")),
                purpose=_member(Purpose, _PURPOSES, get("purpose", "")),
                recipient=get("recipient") or "",
                data=value or b"",
                traceparent=get("traceparent"),
                pole=get("pole"),
                sigkid=get("sigkid"),
                sig=get("sig"),
                sigpath=get("sigpath"),
            )
        except ValueError as exc:
            raise EnvelopeError("envelope", f"missing or unknown attribute ({exc})") from exc
        if not envelope.source.startswith(SOURCE_PREFIX):
            raise EnvelopeError("envelope", "source is not a Maillage agency")
        if envelope.pole is not None and not POLE.match(envelope.pole):
            raise EnvelopeError("envelope", "pole is not a Pôle's name")
        if not ENVELOPE_SUBJECT.match(envelope.subject):
            raise EnvelopeError("envelope", "subject is not a pseudonymous subject_ref")
        if key != envelope.subject.encode():
            # One subject's events are totally ordered only if they share a partition: a record keyed
            # otherwise could overtake a consent withdrawal about the same person.
            raise EnvelopeError("key", "the record's key is not its subject")
        return envelope


_FIELDS = frozenset(f.name for f in fields(Envelope))


def _attribute_of(header: str) -> str | None:
    """The attribute a header carries (its name in any case), or None for another header."""
    name = header.lower()
    if name.startswith(CE_PREFIX):
        return name[len(CE_PREFIX) :]
    return "datacontenttype" if name == CONTENT_TYPE_HEADER else None


_ATTRIBUTE_OF = {CE_PREFIX + name: name for name in _CHECKED if name != "datacontenttype"} | {
    CONTENT_TYPE_HEADER: "datacontenttype"
}
_EVENT_TYPES: dict[str, EventType] = {m.value: m for m in EventType}
_ROLES: dict[str, Role] = {m.value: m for m in Role}
_BASES: dict[str, LegalBasis] = {m.value: m for m in LegalBasis}
_PURPOSES: dict[str, Purpose] = {m.value: m for m in Purpose}
E = TypeVar("E", bound=Enum)


def _member(kind: type[E], members: dict[str, E], value: str) -> E:
    """`kind(value)` by a plain look-up (an Enum's call is ~0.5 µs, four per record); its ValueError otherwise."""
    member = members.get(value)
    return kind(value) if member is None else member


def _attributes(headers: Headers) -> dict[str, str]:
    """The CloudEvent's attributes in a record's headers; EnvelopeError unless it is one (CloudEvents 1.0)."""
    attributes: dict[str, str] = {}
    try:
        for header, raw in headers:
            name = _ATTRIBUTE_OF.get(header)  # the headers as they are written, known at once
            if name is None:
                name = _attribute_of(header)
                if name is None:
                    continue
            attributes[name] = raw.decode()
    except (UnicodeDecodeError, AttributeError):
        raise EnvelopeError("envelope", "not a CloudEvent in binary mode (a header is not UTF-8 text)") from None
    missing = [name for name in REQUIRED if not attributes.get(name)]
    if missing:
        raise EnvelopeError("envelope", f"not a CloudEvent in binary mode (missing {', '.join(missing)})")
    if attributes["specversion"] != SPECVERSION:
        raise EnvelopeError("envelope", "not a CloudEvent in binary mode (specversion is not 1.0)")
    if not _CHECKED.issuperset(attributes) and any(
        n not in _CHECKED and (n == "data" or not EXTENSION_NAME.match(n)) for n in attributes
    ):
        raise EnvelopeError("envelope", "not a CloudEvent in binary mode (an extension attribute's name)")
    return attributes
