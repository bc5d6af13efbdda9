"""Topics on the real broker carry the network file's configs: audit kept forever, the rest as the file says."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import tomli_w
from aiokafka.admin import AIOKafkaAdminClient

from maillage.cli.up import create_network_topics
from maillage.core.config.network import load_network
from maillage.core.config.settings import DEFAULT_NETWORK
from maillage.core.messaging import bus
from maillage.core.messaging.topics import Topics
from maillage.core.polling import eventually

pytestmark = pytest.mark.integration

DAY_MS = 24 * 3600 * 1000


def network_file(directory: Path, *, prefix: str, retention: dict[str, int]) -> Path:
    doc = tomllib.loads(DEFAULT_NETWORK.read_text())
    doc["policy"] = str(load_network(DEFAULT_NETWORK).policy)
    doc["kafka"] |= {"topic_prefix": prefix, "retention": retention}
    path = directory / "network.toml"
    path.write_bytes(tomli_w.dumps(doc).encode())
    return path


async def configs_on_broker(bootstrap: str, names: list[str]) -> dict[str, dict[str, str]]:
    """The topics' configs as the broker describes them, once it knows every one of them (a topic just made
    reaches the broker's metadata a moment after the controller has it)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()

    async def described() -> dict[str, dict[str, tuple[str, int]]] | None:
        try:
            return await bus.described_configs(admin, names)
        except bus.TopicConfigError:
            return None

    try:
        found = await eventually(described, what="the topics' configs")
    finally:
        await admin.close()
    return {topic: {key: value for key, (value, _) in configs.items()} for topic, configs in found.items()}


async def test_maillage_topics_gives_each_kind_of_topic_its_retention(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    path = network_file(tmp_path, prefix=topic_prefix, retention={"deliveries": 3, "dead_letters": 60})
    done = subprocess.run(
        [sys.executable, "-m", "maillage.cli.main", "topics", "--network", str(path), "--bootstrap", kafka_bootstrap],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr

    topics = Topics(prefix=topic_prefix)
    names = topics.all_for([a.id for a in load_network(path).agencies])
    found = await configs_on_broker(kafka_bootstrap, names)
    retention = {name: int(found[name]["retention.ms"]) for name in names}
    assert retention[topics.audit] == -1, "the audit topic keeps every record"
    assert retention[topics.submitted] == 7 * DAY_MS
    assert retention[topics.deliver("cpas-seraing")] == 3 * DAY_MS
    assert retention[topics.status("cpas-seraing")] == 14 * DAY_MS
    assert retention[topics.dlq] == retention[topics.dead_letters_of("refuge-liege")] == 60 * DAY_MS
    assert retention[topics.oncall] == 30 * DAY_MS
    assert {found[name]["min.insync.replicas"] for name in names} == {"1"}


async def test_an_audit_topic_made_with_kafkas_seven_days_is_kept_forever_after_an_upgrade(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    topics = Topics(prefix=topic_prefix)
    # What `maillage up` created before retention came from the network file, and an operator's own setting.
    await bus.ensure_topics(
        kafka_bootstrap,
        [topics.audit],
        partitions=1,
        replication_factor=1,
        min_insync_replicas=1,
        configs={topics.audit: {"max.message.bytes": "2000000"}},
    )
    assert (await configs_on_broker(kafka_bootstrap, [topics.audit]))[topics.audit]["retention.ms"] == str(7 * DAY_MS)

    network = load_network(network_file(tmp_path, prefix=topic_prefix, retention={}))
    await create_network_topics(network, bootstrap=kafka_bootstrap, auth=None)

    async def kept_forever() -> dict[str, str] | None:
        # The broker applies an altered config once its metadata catches up (seconds, behind new topics).
        audit = (await configs_on_broker(kafka_bootstrap, [topics.audit]))[topics.audit]
        return audit if audit["retention.ms"] == "-1" else None

    audit = await eventually(kept_forever, timeout=60, every=0.5, what="the audit topic kept forever")
    assert audit["max.message.bytes"] == "2000000", "a config the file does not speak of is left as it was"
