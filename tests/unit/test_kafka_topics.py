"""What the network file's `[kafka]` table gives every topic: replicas in sync and retention per kind."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from maillage.core.config.network import KafkaConfig, NetworkError, load_network
from maillage.core.config.settings import DEFAULT_NETWORK
from maillage.core.messaging.topics import TopicKind, Topics

pytestmark = pytest.mark.unit

DAY_MS = 24 * 3600 * 1000


def test_audit_topic_is_kept_forever_by_default() -> None:
    network = load_network(DEFAULT_NETWORK)
    configs = network.topic_configs(Topics())
    assert configs["maillage.audit"]["retention.ms"] == "-1"
    assert configs["maillage.submitted"]["retention.ms"] == str(7 * DAY_MS)
    # A record outlives its retention by one day at most: the segment holding it closes within a day.
    assert configs["maillage.submitted"]["segment.ms"] == str(DAY_MS)
    assert "segment.ms" not in configs["maillage.audit"], "kept for good: no need to roll it daily"
    assert configs["maillage.deliver.refuge-liege"]["retention.ms"] == str(14 * DAY_MS)
    assert configs["maillage.status.refuge-liege"]["retention.ms"] == str(14 * DAY_MS)
    assert configs["maillage.dlq"]["retention.ms"] == str(30 * DAY_MS)
    assert configs["maillage.dlq.dispatcher"]["retention.ms"] == str(30 * DAY_MS)


def test_every_topic_of_the_network_has_a_kind_and_its_configs() -> None:
    network = load_network(DEFAULT_NETWORK)
    topics = Topics(prefix="p.")
    configs = network.topic_configs(topics)
    assert list(configs) == topics.all_for([a.id for a in network.agencies])
    assert {c["min.insync.replicas"] for c in configs.values()} == {"1"}


def test_retention_as_the_file_says() -> None:
    kafka = KafkaConfig.model_validate(
        {"replication_factor": 3, "min_insync_replicas": 2, "retention": {"audit": 3650, "deliveries": 2}}
    )
    configs = kafka.topic_configs({"a": TopicKind.AUDIT, "d": TopicKind.DELIVERIES, "s": TopicKind.SUBMITTED})
    assert configs == {
        "a": {"min.insync.replicas": "2", "retention.ms": str(3650 * DAY_MS), "segment.ms": str(DAY_MS)},
        "d": {"min.insync.replicas": "2", "retention.ms": str(2 * DAY_MS), "segment.ms": str(DAY_MS)},
        "s": {"min.insync.replicas": "2", "retention.ms": str(7 * DAY_MS), "segment.ms": str(DAY_MS)},
    }


@pytest.mark.parametrize(
    ("table", "complaint"),
    [
        ({"replication_factor": 1, "min_insync_replicas": 2}, "must not exceed replication_factor"),
        ({"retention": {"audit": 0}}, "retention of 0 days"),
        ({"retention": {"deliveries": -2}}, "greater than or equal to -1"),
        ({"retention": {"audits": 10}}, "Extra inputs are not permitted"),
    ],
)
def test_a_kafka_table_that_would_lose_or_refuse_records_is_refused(table: dict[str, object], complaint: str) -> None:
    with pytest.raises(ValidationError, match=complaint):
        KafkaConfig.model_validate(table)


def test_three_brokers_give_three_replicas_two_in_sync_when_the_file_says_nothing() -> None:
    kafka = load_network(DEFAULT_NETWORK).kafka
    assert (kafka.replication_factor, kafka.min_insync_replicas) == (1, 1)
    on_three = kafka.on_brokers(3)
    assert (on_three.replication_factor, on_three.min_insync_replicas) == (3, 2)
    assert on_three.retention == kafka.retention


def test_the_files_replication_is_obeyed_on_a_cluster() -> None:
    told = KafkaConfig.model_validate({"replication_factor": 2, "min_insync_replicas": 2}).on_brokers(3)
    assert (told.replication_factor, told.min_insync_replicas) == (2, 2)
    # Replicas alone: one fewer must hold a write, so one replica may be away.
    assert KafkaConfig.model_validate({"replication_factor": 3}).min_insync_replicas == 2


def test_more_replicas_than_local_brokers_is_refused() -> None:
    with pytest.raises(NetworkError, match="3 replicas of each topic, but 1 broker"):
        KafkaConfig.model_validate({"replication_factor": 3}).on_brokers(1)
