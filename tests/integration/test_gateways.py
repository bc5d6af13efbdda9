"""Several gateways share the submitted topic's partitions: one joining, one SIGKILLed, nothing lost, nothing twice."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import InvalidProducerEpoch, ProducerFenced

from maillage.cli.kafka_local import free_port
from maillage.core.messaging import bus
from maillage.core.messaging.envelope import new_subject_ref
from maillage.domain.events import ConsentGranted, ReferralCreated, ReferralReason
from maillage.domain.vocabulary import Category, Purpose
from maillage.gateway.handlers import partition_transactional_id
from tests.integration.test_gateway_crash import count_ids, submitted
from tests.processes import maillage, wait_ready
from tests.support import Pole, eventually

pytestmark = pytest.mark.integration

RECIPIENTS = ("cpas-seraing", "ecoute-namur")
SENDER = "refuge-liege"
SUBJECTS = 60  # spread over the topic's three partitions
START = 180.0  # seconds for a gateway process to be ready: its imports alone take 40 s on a loaded machine
WAVE = 800  # referrals per wave: before the second gateway joins, while it joins, while one is killed


class Stream:
    """Consents for SUBJECTS subjects, then referrals alternating between two recipients, sent in waves."""

    def __init__(self, pole: Pole) -> None:
        self.pole = pole
        self.sender = pole.trust(SENDER)
        self.subjects = [new_subject_ref() for _ in range(SUBJECTS)]
        self.referrals: set[str] = set()
        self.producer = AIOKafkaProducer(bootstrap_servers=pole.bootstrap, acks="all", enable_idempotence=True)

    async def consents(self) -> None:
        for subject in self.subjects:
            consent = ConsentGranted(
                consent_id=uuid.uuid4(),
                categories=(Category.IDENTITY, Category.CONTACT),
                recipients=RECIPIENTS,
                purposes=(Purpose.REFERRAL,),
            )
            await self._send(submitted(self.sender, consent, subject=subject).to_kafka())

    async def wave(self, count: int = WAVE) -> None:
        for i in range(count):
            referral = ReferralCreated(
                identity={"given_name": f"P{i}"}, contact={"phone": "+32 4 000"}, reason=ReferralReason.SHELTER
            )
            n = len(self.referrals)
            envelope = submitted(
                self.sender, referral, subject=self.subjects[n % SUBJECTS], recipient=RECIPIENTS[n % 2]
            )
            self.referrals.add(envelope.id)
            await self._send(envelope.to_kafka())
            if i % 100 == 0:
                await asyncio.sleep(0.01)  # partner systems post over time, not all at once
        await self.producer.flush()

    async def _send(self, record: tuple[bytes, bytes, Any]) -> None:
        key, value, headers = record
        await self.producer.send(self.pole.topics.submitted, value, key=key, headers=headers)


def gateway_env(pole: Pole, tmp_path: Path) -> dict[str, str]:
    """What `maillage up --gateways 2` gives every gateway: one data directory (one database), one group."""
    return {
        "MAILLAGE_KAFKA_BOOTSTRAP": pole.bootstrap,
        "MAILLAGE_TOPIC_PREFIX": pole.prefix,
        "MAILLAGE_DATA_DIR": str(pole.data_dir),
        "MAILLAGE_TRANSACTIONAL_ID": f"{pole.prefix}gateway",
    }


async def delivered_count(pole: Pole) -> int:
    """What the recipients' delivery topics hold now, each partition read to its end. (Read for a second at
    most, as it once was, the count fell short while the broker was busy deleting earlier tests' topics, and
    the gateways seemed to stop deciding.)"""
    records = 0
    for recipient in RECIPIENTS:
        records += len(await pole.read_until(pole.topics.deliver(recipient), lambda _: True, timeout=60))
    return records


async def test_two_gateways_lose_nothing_and_duplicate_nothing_when_one_joins_and_one_is_killed(
    pole: Pole, tmp_path: Path
) -> None:
    stream = Stream(pole)
    await stream.producer.start()
    env = gateway_env(pole, tmp_path)
    first_port, second_port = free_port(), free_port()
    log = tmp_path / "gateways.log"
    first = maillage("serve", "gateway", "--port", str(first_port), env=env, log=log)
    second: subprocess.Popen[bytes] | None = None
    try:
        await stream.consents()
        await asyncio.to_thread(wait_ready, f"http://127.0.0.1:{first_port}", first, timeout=START)
        await stream.wave()

        # The second gateway joins while referrals keep coming: the group rebalances under load.
        second = maillage("serve", "gateway", "--port", str(second_port), env=env, log=log)
        await asyncio.gather(
            stream.wave(), asyncio.to_thread(wait_ready, f"http://127.0.0.1:{second_port}", second, timeout=START)
        )

        # The first one is killed mid-stream: its partitions go to the second, whose producers fence it.
        sending = asyncio.create_task(stream.wave(2 * WAVE))
        target = await delivered_count(pole) + 300

        async def mid_stream() -> bool:
            return await delivered_count(pole) >= target

        await eventually(mid_stream, timeout=60, what="the gateways to be deciding the third wave")
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        await sending

        per_recipient = {
            r: await pole.read_topic(pole.topics.deliver(r), expect=len(stream.referrals) // 2, timeout=180)
            for r in RECIPIENTS
        }
        statuses = await pole.read_topic(
            pole.topics.status(SENDER), expect=len(stream.referrals) + SUBJECTS, timeout=60
        )
        audit = await pole.read_topic(pole.topics.audit, expect=len(stream.referrals), timeout=60)
    finally:
        await stream.producer.stop()
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=30)

    delivered = Counter[str]()
    for records in per_recipient.values():
        delivered.update(count_ids(records))
    assert set(delivered) == stream.referrals, "every referral reaches its recipient"
    assert max(delivered.values()) == 1, "no referral is delivered twice"
    reported = Counter(r.key.decode() for r in statuses)
    assert stream.referrals <= set(reported) and max(reported.values()) == 1, "the sender sees each status once"
    assert_chains_published_once(audit, partitions=3)

    verified = subprocess.run(
        [sys.executable, "-m", "maillage.cli.main", "audit", "verify", "--database", gateway_db(pole)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    said = " ".join(verified.stdout.split())
    assert f"{len(stream.referrals)} audit records: intact, every one of 3 chain(s)" in said


def assert_chains_published_once(records: list[Any], *, partitions: int) -> None:
    """Each input partition's chain on the audit topic: every link once, none missing, each after the one before."""
    chains: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        audit = orjson.loads(record.value)
        chains[audit["chain"]].append(audit)
    assert sorted(chains) == list(range(partitions)), "one chain per partition, each written to"
    for chain in chains.values():
        chain.sort(key=lambda r: r["seq"])
        assert [r["seq"] for r in chain] == list(range(1, len(chain) + 1)), "every link once"
        assert all(b["prev_hash"] == a["hash"] for a, b in itertools.pairwise(chain))


def gateway_db(pole: Pole) -> str:
    return f"sqlite+aiosqlite:///{pole.data_dir / 'gateway.db'}"


async def test_a_gateway_that_lost_its_partition_cannot_commit(pole: Pole) -> None:
    """A zombie: an owner of partition 0 that went quiet (a long pause, a network split) mid-transaction while
    another gateway took the partition over. Its commit is refused, and no consumer ever sees what it sent."""
    settings = pole.gateway_settings()
    zombie = bus.producer(pole.bootstrap, transactional_id=partition_transactional_id(settings.transactional_prefix, 0))
    await zombie.start()
    try:
        await zombie.begin_transaction()
        await zombie.send_and_wait(pole.topics.deliver(RECIPIENTS[0]), b"from a zombie", key=b"k")
        await zombie.send_offsets_to_transaction({TopicPartition(pole.topics.submitted, 0): 10**6}, settings.group_id)

        gateway = await pole.start_gateway()  # takes every partition: its producer for partition 0 fences the zombie

        async def deciding() -> bool:
            return (await gateway.get("/readyz")).status_code == 200

        await eventually(deciding, timeout=60, what="the gateway to own its partitions")
        with pytest.raises((ProducerFenced, InvalidProducerEpoch)):
            await zombie.commit_transaction()
    finally:
        await zombie.stop()

    stream = Stream(pole)
    await stream.producer.start()
    try:
        await stream.consents()
        await stream.wave(30)
    finally:
        await stream.producer.stop()
    deliveries = await pole.read_topic(pole.topics.deliver(RECIPIENTS[0]), expect=15, timeout=60)
    assert b"from a zombie" not in {r.value for r in deliveries}
    assert len(deliveries) == 15, "the referrals sent to partition 0 are decided: its offsets did not jump"


async def test_the_survivor_decides_every_partition_soon_after_a_sigkill(pole: Pole, tmp_path: Path) -> None:
    """Prints the figures for the README (with -s): the survivor's rebalance is in its log."""
    env = gateway_env(pole, tmp_path)
    ports = free_port(), free_port()
    log = tmp_path / "gateways.log"
    gateways = [maillage("serve", "gateway", "--port", str(p), env=env, log=log) for p in ports]
    stream = Stream(pole)
    await stream.producer.start()
    try:
        for port, process in zip(ports, gateways, strict=True):
            await asyncio.to_thread(wait_ready, f"http://127.0.0.1:{port}", process, timeout=START)
        await stream.consents()
        await stream.wave(200)
        await pole.read_topic(pole.topics.deliver(RECIPIENTS[0]), expect=100, timeout=60)
        os.kill(gateways[0].pid, signal.SIGKILL)
        killed = time.monotonic()
        print(f"\nSIGKILL at {datetime.now(UTC).isoformat()} (the survivor logs its rebalance in {log})")
        gateways[0].wait()
        await stream.wave(300)  # keys on every partition, the dead gateway's too

        async def all_decided() -> bool:
            return await delivered_count(pole) >= len(stream.referrals)

        await eventually(all_decided, timeout=120, what="the survivor to decide every partition")
        print(f"every referral delivered {time.monotonic() - killed:.1f} s after the SIGKILL")
        assert await delivered_count(pole) == len(stream.referrals), "none twice"
    finally:
        await stream.producer.stop()
        for process in gateways:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=30)
