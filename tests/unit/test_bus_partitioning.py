"""The gateway's batched sends pick each record's partition themselves: exactly as Kafka's default partitioner
would, or a subject's records would not all land on one partition (and one consumer) in order."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner, murmur2
from hypothesis import given
from hypothesis import strategies as st

from maillage.core.messaging.bus import _murmur2, _partition_of


@given(st.binary(max_size=300))
def test_murmur2_is_kafkas(key: bytes) -> None:
    assert _murmur2(key) == murmur2(key) & 0x7FFFFFFF


@given(st.binary(min_size=1, max_size=80), st.integers(min_value=1, max_value=64))
def test_a_keyed_record_goes_where_the_default_partitioner_sends_it(key: bytes, count: int) -> None:
    partitions = list(range(count))
    assert _partition_of(partitions, key) == DefaultPartitioner()(key, partitions, partitions)
