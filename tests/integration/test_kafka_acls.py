"""Kafka least privilege for real: a SASL/SCRAM broker, the KRaft authorizer, ACLs from `maillage acl apply`.

This module starts its own broker (the session's is plaintext and open) and provisions the demo network
through the real command; agency refuge-liege then talks to it with aiokafka clients.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import (
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
)

from maillage.cli.acl import agency_group, load_kafka_auth, password_file
from maillage.cli.kafka_local import LocalKafka, ScramSetup
from maillage.cli.supervision import launch
from maillage.core.config.network import load_network
from maillage.core.config.settings import DEFAULT_NETWORK
from maillage.core.messaging import bus
from maillage.core.messaging.kafka_auth import KafkaAuth
from maillage.core.messaging.topics import Topics
from maillage.gateway.handlers import partition_transactional_id
from maillage.gateway.settings import GatewaySettings

pytestmark = pytest.mark.integration

A, B = "refuge-liege", "cpas-seraing"
TOPICS = Topics()  # this broker is the module's own: the production names, unprefixed


@dataclass(frozen=True)
class SecureKafka:
    bootstrap: str
    keys: Path

    def auth(self, principal: str) -> KafkaAuth:
        return load_kafka_auth(self.keys, principal)


@pytest.fixture(scope="module")
def secure_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureKafka]:
    root = tmp_path_factory.mktemp("secure-kafka")
    broker = LocalKafka(data_dir=root / "kafka", sasl=ScramSetup(), popen=launch)
    broker.start()
    try:
        network = load_network(DEFAULT_NETWORK)
        asyncio.run(
            bus.ensure_topics(
                broker.bootstrap,
                TOPICS.all_for([a.id for a in network.agencies]),
                partitions=1,
                replication_factor=1,
                min_insync_replicas=1,
                auth=broker.admin_auth,
            )
        )
        keys = root / "keys" / "private"
        assert broker.admin_auth is not None
        _acl_apply(bootstrap=broker.bootstrap, admin=broker.admin_auth, keys=keys)
        yield SecureKafka(bootstrap=broker.bootstrap, keys=keys)
    finally:
        broker.stop()


def _acl_apply(*, bootstrap: str, admin: KafkaAuth, keys: Path) -> None:
    """`maillage acl apply` as an operator runs it: the admin password in the environment only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILLAGE_")}
    env |= {"MAILLAGE_KAFKA_ADMIN_PASSWORD": admin.password}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "maillage.cli.main",
            "acl",
            "apply",
            "--bootstrap",
            bootstrap,
            "--admin-user",
            admin.username,
            "--keys-dir",
            str(keys),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert admin.password not in done.stdout + done.stderr


@asynccontextmanager
async def started(client: AIOKafkaProducer | AIOKafkaConsumer) -> AsyncIterator[None]:
    await client.start()
    try:
        yield
    finally:
        await client.stop()


async def test_each_principal_gets_a_private_password_file(secure_kafka: SecureKafka) -> None:
    for principal in (A, B, "gateway"):
        path = password_file(secure_kafka.keys, principal)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert secure_kafka.auth(A).password != secure_kafka.auth(B).password


async def test_agency_submits_and_reads_its_own_deliveries(secure_kafka: SecureKafka) -> None:
    agency = secure_kafka.auth(A)
    submitter = bus.producer(secure_kafka.bootstrap, auth=agency)
    async with started(submitter):
        await submitter.send_and_wait(TOPICS.submitted, b"sealed", key=b"subject-1")

    # What the gateway does: deliver inside its transaction, under its own principal and transactional id.
    transactional_id = partition_transactional_id(GatewaySettings().transactional_prefix, 0)
    gateway = bus.producer(secure_kafka.bootstrap, auth=secure_kafka.auth("gateway"), transactional_id=transactional_id)
    async with started(gateway), gateway.transaction():
        await gateway.send(TOPICS.deliver(A), b"sealed-for-a", key=b"subject-1")

    # What the agency service does: its delivery topic and the status topic, in its own group.
    inbox = bus.consumer(
        secure_kafka.bootstrap, TOPICS.deliver(A), TOPICS.status(A), group_id=agency_group(TOPICS, A), auth=agency
    )
    async with started(inbox):
        record = await asyncio.wait_for(inbox.getone(), timeout=15)
    assert (record.topic, record.value) == (TOPICS.deliver(A), b"sealed-for-a")


async def test_agency_is_refused_another_agencys_deliveries(secure_kafka: SecureKafka) -> None:
    snoop = bus.consumer(
        secure_kafka.bootstrap, TOPICS.deliver(B), group_id=agency_group(TOPICS, A), auth=secure_kafka.auth(A)
    )
    # The subscription's metadata request is refused, so the consumer never joins.
    with pytest.raises(TopicAuthorizationFailedError, match=TOPICS.deliver(B)):
        await snoop.start()
    await snoop.stop()


async def test_agency_is_refused_another_agencys_statuses(secure_kafka: SecureKafka) -> None:
    # The attack: with an event id from its own inbox, a perpetrator programme read which other agencies
    # (a shelter) received what about the same person from the shared status topic.
    snoop = bus.consumer(
        secure_kafka.bootstrap, TOPICS.status(A), group_id=agency_group(TOPICS, B), auth=secure_kafka.auth(B)
    )
    with pytest.raises(TopicAuthorizationFailedError, match=TOPICS.status(A)):
        await snoop.start()
    await snoop.stop()


@pytest.mark.parametrize("topic", [TOPICS.dlq, TOPICS.dead_letters_of(B)])
async def test_agency_cannot_pass_a_dead_letter_off_as_the_gateways_or_another_agencys(
    secure_kafka: SecureKafka, topic: str
) -> None:
    forger = bus.producer(secure_kafka.bootstrap, auth=secure_kafka.auth(A))
    async with started(forger):
        with pytest.raises(TopicAuthorizationFailedError, match=topic):
            await forger.send_and_wait(topic, b"forged refusal", key=b"event-1")
        await forger.send_and_wait(TOPICS.dead_letters_of(A), b"its own refusal", key=b"event-1")


async def test_agency_is_refused_another_agencys_consumer_group(secure_kafka: SecureKafka) -> None:
    borrowed = bus.consumer(
        secure_kafka.bootstrap, TOPICS.deliver(A), group_id=agency_group(TOPICS, B), auth=secure_kafka.auth(A)
    )
    with pytest.raises(GroupAuthorizationFailedError, match=agency_group(TOPICS, B)):
        await borrowed.start()
    await borrowed.stop()


async def test_agency_cannot_fence_the_gateway_with_its_transactional_id(secure_kafka: SecureKafka) -> None:
    # Taking a partition's transactional id would fence the gateway deciding that partition.
    transactional_id = partition_transactional_id(GatewaySettings().transactional_prefix, 0)
    usurper = bus.producer(secure_kafka.bootstrap, auth=secure_kafka.auth(A), transactional_id=transactional_id)
    with pytest.raises(TransactionalIdAuthorizationFailed):
        await usurper.start()
    await usurper.stop()


@pytest.mark.parametrize("recipient", [B, A])
async def test_agency_is_refused_writing_any_delivery_topic(secure_kafka: SecureKafka, recipient: str) -> None:
    forger = bus.producer(secure_kafka.bootstrap, auth=secure_kafka.auth(A))
    async with started(forger):
        with pytest.raises(TopicAuthorizationFailedError, match=TOPICS.deliver(recipient)):
            await forger.send_and_wait(TOPICS.deliver(recipient), b"forged", key=b"subject-1")


async def test_wrong_password_is_refused_authentication(
    secure_kafka: SecureKafka, caplog: pytest.LogCaptureFixture
) -> None:
    impostor = bus.producer(secure_kafka.bootstrap, auth=KafkaAuth(username=A, password="not-the-password"))
    # aiokafka reports a failed bootstrap; the broker's reason is in the connection error it logs.
    with caplog.at_level(logging.ERROR, logger="aiokafka"), pytest.raises(KafkaConnectionError):
        await impostor.start()
    await impostor.stop()
    assert "SaslAuthenticationFailed" in caplog.text
    assert "invalid credentials" in caplog.text
