"""The envelope's own Kafka binary-mode codec, held to the CloudEvents SDK's: the same records written, the same
events read, and every record the SDK refuses refused."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest
from cloudevents.core.bindings.kafka import KafkaMessage, from_binary, to_binary
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from hypothesis import given
from hypothesis import strategies as st

from maillage.core.messaging.envelope import Envelope, EnvelopeError, Headers, source_of
from maillage.domain.events import EventType
from maillage.domain.vocabulary import LegalBasis, Purpose, Role

FORMAT = JSONFormat()
TEXT = st.text(alphabet=st.characters(exclude_categories=("Cs",)), min_size=1, max_size=40)
HEX32 = st.text(alphabet="0123456789abcdef", min_size=32, max_size=32)

envelopes = st.builds(
    Envelope,
    id=st.uuids().map(str),
    source=st.from_regex(r"[a-z][a-z-]{2,30}", fullmatch=True).map(source_of),
    type=st.sampled_from(EventType),
    time=st.datetimes(timezones=st.just(UTC)),
    subject=st.tuples(st.sampled_from("sck"), HEX32).map(lambda p: f"{p[0]}-{p[1]}"),
    subjectrole=st.sampled_from(Role),
    legalbasis=st.sampled_from(LegalBasis),
    purpose=st.sampled_from(Purpose),
    recipient=st.one_of(st.just(""), TEXT),
    data=st.binary(max_size=200),
    traceparent=st.none() | TEXT,
    pole=st.none() | st.from_regex(r"[a-z][a-z0-9_-]{1,40}", fullmatch=True),
    sigkid=st.none() | TEXT,
    sig=st.none() | TEXT,
    sigpath=st.none() | TEXT,
)


def sdk_to_kafka(envelope: Envelope) -> tuple[bytes, bytes, Headers]:
    event = CloudEvent(attributes={**envelope.attributes(), "time": envelope.time}, data=envelope.data)
    message = to_binary(event, FORMAT, key_mapper=lambda _: envelope.subject.encode())
    assert isinstance(message.key, bytes)
    return message.key, message.value, list(message.headers.items())


def sdk_reads(key: bytes, value: bytes, headers: Headers) -> CloudEvent:
    event = from_binary(KafkaMessage(headers=dict(headers), key=key, value=value), FORMAT, CloudEvent)
    assert isinstance(event, CloudEvent)
    return event


@given(envelopes)
def test_an_envelope_is_written_as_the_sdk_writes_it(envelope: Envelope) -> None:
    assert envelope.to_kafka() == sdk_to_kafka(envelope)


@given(envelopes)
def test_what_the_sdk_writes_is_read_back_as_the_same_envelope(envelope: Envelope) -> None:
    key, value, headers = sdk_to_kafka(envelope)

    assert Envelope.from_kafka(key=key, value=value, headers=headers) == envelope


@given(envelopes)
def test_each_attribute_is_read_as_the_sdk_reads_it(envelope: Envelope) -> None:
    key, value, headers = envelope.to_kafka()
    event = sdk_reads(key, value, headers)
    read = Envelope.from_kafka(key=key, value=value, headers=headers)

    assert read.attributes() == {
        name: event.get_time().isoformat().replace("+00:00", "Z") if name == "time" else str(text)  # type: ignore[union-attr]
        for name, text in event.get_attributes().items()
        if name != "partitionkey"  # the SDK's name for the record's key, which is the subject
    }


def an_envelope() -> Envelope:
    return Envelope(
        id="01935c1e-0000-7000-8000-000000000001",
        source=source_of("refuge-liege"),
        type=EventType.REFERRAL_CREATED,
        time=datetime(2026, 12, 2, 1, 0, tzinfo=UTC),
        subject="s-" + "0" * 32,
        subjectrole=Role.VICTIM,
        legalbasis=LegalBasis.CONSENT,
        purpose=Purpose.REFERRAL,
        recipient="cpas-seraing",
        data=b"{}",
    )


def a_record() -> tuple[bytes, bytes, Headers]:
    return an_envelope().to_kafka()


def without(headers: Headers, name: str) -> Headers:
    return [(n, v) for n, v in headers if n != name]


def with_header(headers: Headers, name: str, value: bytes) -> Headers:
    return [*without(headers, name), (name, value)]


REFUSED_BY_BOTH = {
    "no headers": lambda h: [],
    "no source": lambda h: without(h, "ce_source"),
    "no type": lambda h: without(h, "ce_type"),
    "an empty source": lambda h: with_header(h, "ce_source", b""),
    "a time that is not one": lambda h: with_header(h, "ce_time", b"yesterday"),
    "a header that is not UTF-8": lambda h: with_header(h, "ce_recipient", b"\xff\xfe"),
    "an extension named with capitals": lambda h: with_header(h, "ce_Sig-Kid", b"x"),
    "the reserved extension data": lambda h: with_header(h, "ce_data", b"x"),
}


@pytest.mark.parametrize("mutation", REFUSED_BY_BOTH)
def test_a_record_the_sdk_refuses_is_refused(mutation: str) -> None:
    key, value, headers = a_record()
    broken = REFUSED_BY_BOTH[mutation](headers)

    with pytest.raises(Exception):  # noqa: B017  # the SDK's errors vary with the fault
        sdk_reads(key, value, broken)
    with pytest.raises(EnvelopeError) as refused:
        Envelope.from_kafka(key=key, value=value, headers=broken)
    assert refused.value.reason == "envelope"


@pytest.mark.parametrize(
    "broken",
    [
        pytest.param(lambda h: without(h, "ce_id"), id="no id (the SDK makes one up)"),
        pytest.param(lambda h: without(h, "ce_specversion"), id="no specversion (the SDK assumes 1.0)"),
        pytest.param(lambda h: with_header(h, "ce_specversion", b"0.3"), id="another specversion"),
    ],
)
def test_a_record_that_is_not_a_cloudevent_1_0_is_refused_where_the_sdk_would_guess(broken: object) -> None:
    key, value, headers = a_record()

    with pytest.raises(EnvelopeError) as refused:
        Envelope.from_kafka(key=key, value=value, headers=broken(headers))  # type: ignore[operator]
    assert refused.value.reason == "envelope"


def test_an_extension_the_envelope_does_not_know_is_read_past_as_the_sdk_does() -> None:
    key, value, headers = a_record()
    extended = [*headers, ("ce_partnerref", b"x-42")]

    assert sdk_reads(key, value, extended).get_extension("partnerref") == "x-42"
    assert Envelope.from_kafka(key=key, value=value, headers=extended) == Envelope.from_kafka(
        key=key, value=value, headers=headers
    )


FIELDS = [f.name for f in dataclasses.fields(Envelope)]


@given(envelopes, envelopes, st.sets(st.sampled_from(FIELDS)))
def test_an_envelope_changed_is_the_envelope_replace_would_make(
    envelope: Envelope, other: Envelope, names: set[str]
) -> None:
    changes = {name: getattr(other, name) for name in names}

    changed = envelope.changed(**changes)

    assert changed == dataclasses.replace(envelope, **changes)
    assert envelope == dataclasses.replace(envelope)  # the original untouched
    assert changed.to_kafka() == dataclasses.replace(envelope, **changes).to_kafka()


def test_an_envelope_changed_in_a_field_it_does_not_have_is_refused() -> None:
    with pytest.raises(TypeError, match="signature"):
        an_envelope().changed(signature="forged")
