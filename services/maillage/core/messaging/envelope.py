"""The CloudEvents 1.0 envelope in Kafka binary content mode (`ce_*` headers), via the official SDK."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import uuid_utils
from cloudevents.core.bindings.kafka import KafkaMessage, from_binary, to_binary
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

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
_FORMAT = JSONFormat()

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

    def readdressed(self, *, recipient: str, legalbasis: LegalBasis, data: bytes) -> Envelope:
        return replace(self, recipient=recipient, legalbasis=legalbasis, data=data, sigkid=None, sig=None, sigpath=None)

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
            "datacontenttype": self.content_type,
            "subjectrole": self.subjectrole.value,
            "legalbasis": self.legalbasis.value,
            "purpose": self.purpose.value,
            "recipient": self.recipient,
        }
        optional = {
            "traceparent": self.traceparent,
            "pole": self.pole,
            "sigkid": self.sigkid,
            "sig": self.sig,
            "sigpath": self.sigpath,
        }
        attributes.update({k: v for k, v in optional.items() if v})
        return attributes

    def to_kafka(self) -> tuple[bytes, bytes, Headers]:
        attributes: dict[str, Any] = {**self.attributes(), "time": self.time}
        message = to_binary(
            CloudEvent(attributes=attributes, data=self.data), _FORMAT, key_mapper=lambda _: self.subject.encode()
        )
        key = message.key if isinstance(message.key, bytes) else str(message.key).encode()
        return key, message.value, list(message.headers.items())

    @classmethod
    def from_kafka(cls, *, key: bytes | None, value: bytes | None, headers: Headers) -> Envelope:
        try:
            event = from_binary(KafkaMessage(headers=dict(headers), key=key, value=value or b""), _FORMAT, CloudEvent)
        except Exception as exc:
            raise EnvelopeError("envelope", f"not a CloudEvent in binary mode ({type(exc).__name__})") from exc
        ext = event.get_extension
        try:
            envelope = cls(
                id=event.get_id(),
                source=event.get_source(),
                type=EventType(event.get_type()),
                time=event.get_time() or datetime.now(UTC),
                subject=event.get_subject() or "",
                subjectrole=Role(ext("subjectrole")),
                legalbasis=LegalBasis(ext("legalbasis")),
                purpose=Purpose(ext("purpose")),
                recipient=ext("recipient") or "",
                data=value or b"",
                traceparent=ext("traceparent"),
                pole=ext("pole"),
                sigkid=ext("sigkid"),
                sig=ext("sig"),
                sigpath=ext("sigpath"),
            )
        except (ValueError, TypeError) as exc:
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
