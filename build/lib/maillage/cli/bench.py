"""`maillage bench`: gateway throughput beside a bare Kafka passthrough, and referral latency end to end.

A benchmark, not a test. It starts its own broker (unless a bootstrap server is given), uses a fresh
topic prefix and a temporary data directory, and leaves nothing behind but its JSON report.

- Throughput: referral.created records are pre-produced onto `maillage.submitted` exactly as an agency's
  outbox relay would (`Envelope.to_kafka`), then the real gateway (`running_gateway`) decides them; the
  same records then go through a bare consume→produce passthrough with the same consumer settings.
  Both are warmed up on the consent records first, so neither timing includes a group join.
- Latency: the gateway and two agencies run as real uvicorn servers (`maillage serve ...` subprocesses);
  referrals are POSTed at a fixed rate on an open-loop schedule (each at its own time, whatever the
  previous answers), and each one's latency runs from the clock read just before its request to the
  `received_at` the recipient stored in its own database (same machine, same clock).
- On-call (`--only oncall`, not run by default): the gateway, the sender and the dispatcher run as real
  servers on a copy of the network file in which the police zone's level 1 is 500 workers on call at all
  times (no escalation, no grouping during a run). The workers' WebSockets are spread over a few child
  processes (`bench_sockets.py`) so that one client event loop does not become the queue being measured;
  danger alerts are POSTed at a fixed rate, open loop, and each (alert, worker) latency runs from the
  clock read just before the POST to the moment that worker's socket handed over the `alert` message.
  The CPU of every process involved is read from /proc, so the report says how busy the machine was and
  how much of it the bench's own sockets took.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import platform
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
import tomllib
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from rich.console import Console
from rich.table import Table

from maillage.cli.bench_sockets import Arrivals, SocketFleet, lags_within
from maillage.cli.kafka_local import KAFKA_VERSION, LocalKafka, free_port
from maillage.core.config.network import Network, NetworkError, load_network
from maillage.core.config.settings import DEFAULT_NETWORK
from maillage.core.crypto.keys import KeyDirs, ensure_keys
from maillage.core.crypto.tokens import ALL_AGENCY_SCOPES, Scope, mint
from maillage.core.crypto.trust import Trust
from maillage.core.messaging import bus
from maillage.core.messaging.envelope import Envelope, new_subject_ref
from maillage.core.messaging.topics import Topics
from maillage.core.polling import eventually
from maillage.domain.events import ConsentGranted, EventPayload, PersonalData, ReferralCreated
from maillage.domain.vocabulary import Category, LegalBasis, Purpose, Role, Severity
from maillage.gateway.app import running_gateway
from maillage.gateway.handlers import TransactionalLoop
from maillage.gateway.settings import GatewaySettings

TARGET_GATEWAY_EVENTS_PER_S = 2000.0
TARGET_RATIO = 0.3
TARGET_P99_MS = 100.0
TARGET_ONCALL_P99_MS = 250.0

# A victim-support association orients a woman to a CPAS: the consent opens five categories; the
# social sector's ceiling then removes her location, and her risk assessment was never consented,
# so every event exercises both kinds of removal and is still delivered.
CONSENTED = (Category.IDENTITY, Category.CONTACT, Category.LOCATION, Category.CHILDREN, Category.NARRATIVE)
NEEDED = (Category.IDENTITY, Category.CONTACT, Category.CHILDREN)


@dataclass(frozen=True)
class BenchOptions:
    events: int = 20_000
    subjects: int = 300
    rate: float = 200.0
    duration: float = 10.0
    warmup: float = 2.0
    sender: str = "refuge-liege"
    recipient: str = "cpas-seraing"
    network_file: Path = DEFAULT_NETWORK
    bootstrap: str = ""
    out_dir: Path = Path("bench-results")
    parts: tuple[str, ...] = ("throughput", "latency")
    # The on-call part (`--only oncall`): alerts POSTed to the sender, pushed to this many workers' sockets.
    workers: int = 500
    alert_rate: float = 20.0
    oncall_duration: float = 10.0
    socket_processes: int = 2
    ws_compression: bool = True  # the workers offer permessage-deflate, as browsers do


PARTS = ("throughput", "latency", "oncall")


@dataclass(frozen=True)
class Throughput:
    records: int
    seconds: float

    @property
    def events_per_s(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class Spread:
    p50_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, values_ms: list[float]) -> Spread:
        return cls(
            p50_ms=round(percentile(values_ms, 0.50), 1),
            p99_ms=round(percentile(values_ms, 0.99), 1),
            max_ms=round(max(values_ms, default=math.nan), 1),
        )


@dataclass(frozen=True)
class Latency:
    rate: float
    duration: float
    warmup: float
    sent: int
    accepted: int
    arrived: int
    total: Spread
    # The same arrivals measured from each request's scheduled time rather than from its actual start;
    # the two agree when the load generator kept to its schedule (see send_lag_max_ms).
    total_from_schedule: Spread
    send_lag_max_ms: float
    # Where the time went, from the timestamps each service stored (all on this machine's clock).
    stages: dict[str, Spread]
    failures: dict[str, int]

    @property
    def complete(self) -> bool:
        return self.sent == self.accepted == self.arrived


@dataclass(frozen=True)
class Oncall:
    """POST /v1/alerts on the sender → the `alert` message on each on-call worker's WebSocket."""

    workers: int
    connected: int
    socket_processes: int
    ws_compression: bool
    rate: float
    duration: float
    warmup: float
    sent: int
    accepted: int
    stored: int  # alerts in the dispatcher's database
    reached_some: int  # alerts at least one worker got
    reached_all: int  # alerts every connected worker got
    pairs_expected: int  # accepted alerts x connected workers
    pairs_missing: int
    every_pair: Spread  # one figure per (alert, worker): the requirement's measure
    first_worker: Spread  # per alert, the first worker to get it
    last_worker: Spread  # per alert, the last worker to get it
    every_pair_from_schedule: Spread
    send_lag_max_ms: float
    # Each stage from the end of the one before, from the timestamps each service stored.
    stages: dict[str, Spread]
    failures: dict[str, int]
    # Where the CPU went while the alerts were sent: % of one core per process, and the machine's busy %.
    cpu_percent: dict[str, float]
    machine_busy_percent: float
    # The machine's busy time that none of the processes above account for (% of one core): other work on
    # the machine during the run, which takes cores from the services and skews every figure.
    others_percent: float
    # CPU ms per alert and process, from the first POST until the last alert reached every socket, and how
    # long after the last POST that was (a dispatcher that keeps up drains within a fraction of a second).
    cpu_ms_per_alert: dict[str, float]
    drain_seconds: float
    # How late a 10 ms timer fired in the socket processes while the alerts were sent: whether the
    # client kept up (a late client stamps arrivals late, so it can only make the figures worse).
    client_loop_lag: Spread
    sockets_closed: int
    other_messages: int
    connect_seconds: float

    @property
    def complete(self) -> bool:
        return self.sent == self.accepted == self.stored and self.connected == self.workers and self.pairs_missing == 0


@dataclass
class Report:
    started_at: str
    options: dict[str, Any]
    machine: dict[str, Any]
    gateway: Throughput | None = None
    passthrough: Throughput | None = None
    gateway_outcomes: dict[str, int] = field(default_factory=dict)
    latency: Latency | None = None
    oncall: Oncall | None = None

    @property
    def ratio(self) -> float:
        if self.gateway is None or self.passthrough is None or not self.passthrough.events_per_s:
            return 0.0
        return self.gateway.events_per_s / self.passthrough.events_per_s

    def verdicts(self) -> dict[str, bool]:
        return {
            "gateway_events_per_s": bool(self.gateway and self.gateway.events_per_s >= TARGET_GATEWAY_EVENTS_PER_S),
            "ratio": self.ratio >= TARGET_RATIO,
            "latency_p99_ms": bool(
                self.latency and self.latency.complete and self.latency.total.p99_ms <= TARGET_P99_MS
            ),
            "oncall_p99_ms": bool(
                self.oncall and self.oncall.complete and self.oncall.every_pair.p99_ms <= TARGET_ONCALL_P99_MS
            ),
        }

    def to_json(self) -> bytes:
        doc = asdict(self)
        for name in ("gateway", "passthrough"):
            part = getattr(self, name)
            if part is not None:
                doc[name]["events_per_s"] = round(part.events_per_s, 1)
        doc["ratio"] = round(self.ratio, 3)
        doc["targets"] = {
            "gateway_events_per_s": TARGET_GATEWAY_EVENTS_PER_S,
            "ratio": TARGET_RATIO,
            "latency_p99_ms": TARGET_P99_MS,
            "oncall_p99_ms": TARGET_ONCALL_P99_MS,
        }
        doc["pass"] = self.verdicts()
        return orjson.dumps(doc, option=orjson.OPT_INDENT_2, default=str)


# --- the workload -------------------------------------------------------------------------------

GIVEN = (
    "Amina",
    "Sophie",
    "Nathalie",
    "Fatima",
    "Julie",
    "Sarah",
    "Marie",
    "Laura",
    "Inès",
    "Chloé",
    "Aïcha",
    "Valérie",
    "Elif",
    "Joëlle",
    "Nadia",
    "Catherine",
)
FAMILY = (
    "Dubois",
    "Lambert",
    "Martin",
    "Peeters",
    "El Amrani",
    "Janssens",
    "Leclercq",
    "Renard",
    "Mertens",
    "Yilmaz",
    "Lejeune",
    "Collard",
    "Bensaïd",
    "Lemaire",
    "Wouters",
    "Dumont",
)
CHILDREN = ("Lucas", "Emma", "Adam", "Louise", "Noah", "Lina", "Yanis", "Alice", "Mohamed", "Olivia")
MUNICIPALITIES = ("Liège", "Seraing", "Herstal", "Flémalle", "Ans", "Namur", "Huy", "Jambes")
STREETS = (
    "rue Saint-Gilles",
    "boulevard de la Sauvenière",
    "rue des Vennes",
    "quai de Rome",
    "rue de Fragnée",
    "avenue de la Closeraie",
    "rue Haute",
    "rue du Pont",
)
FACTORS = (
    "escalating threats",
    "recent separation",
    "access to a weapon",
    "strangulation attempt",
    "stalking",
    "children exposed to violence",
    "financial control",
    "threats to kill",
)
NARRATIVES = (
    "Left the family home after a violent episode; needs financial support and help finding housing.",
    "Staying with her sister for now; her income stopped when she left and she cannot pay the rent.",
    "Wants to start an independent life with the children; asks for help with social benefits.",
    "Was isolated and under financial control for years; has no bank account of her own yet.",
    "Recently moved into a shelter; needs a social worker to follow up on housing and daycare.",
)


@dataclass(frozen=True)
class Subject:
    """One fictional person, with the parts of her file that stay the same from referral to referral."""

    ref: str
    data: dict[str, Any]


def make_subjects(count: int, rng: random.Random) -> list[Subject]:
    return [_subject(rng) for _ in range(count)]


def _subject(rng: random.Random) -> Subject:
    children = [
        {"given_name": rng.choice(CHILDREN), "birth_year": rng.randint(2010, 2023), "lives_with_subject": True}
        for _ in range(rng.randint(0, 3))
    ]
    data: dict[str, Any] = {
        "identity": {
            "given_name": rng.choice(GIVEN),
            "family_name": rng.choice(FAMILY),
            "birth_date": f"{rng.randint(1965, 2003)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
            "language": rng.choice(("fr", "fr", "nl", "de")),
        },
        "contact": {
            "phone": f"+32 4{rng.randint(70, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)}",
            "safe_contact_times": rng.choice(("weekdays 9-12", "after 18h, text first", "mornings")),
        },
        "location": {
            "address": f"{rng.choice(STREETS)} {rng.randint(1, 200)}",
            "municipality": rng.choice(MUNICIPALITIES),
            "in_shelter": rng.random() < 0.3,
        },
    }
    if children:
        data["children"] = children
    return Subject(ref=new_subject_ref(), data=data)


def referral_data(subject: Subject, rng: random.Random) -> dict[str, Any]:
    """A partner system's `data` for one referral: the person's file plus this referral's own parts."""
    return {
        **subject.data,
        "risk": {
            "level": rng.choice(("moderate", "high", "severe")),
            "factors": rng.sample(FACTORS, k=rng.randint(1, 3)),
        },
        "narrative": rng.choice(NARRATIVES),
    }


def referral_body(subject: Subject, rng: random.Random, *, recipient: str) -> dict[str, Any]:
    return {
        "subject_ref": subject.ref,
        "subject_role": Role.VICTIM.value,
        "recipient": recipient,
        "purpose": Purpose.REFERRAL.value,
        "categories_needed": [c.value for c in NEEDED],
        "data": referral_data(subject, rng),
    }


def consent_body(subject: Subject, *, recipient: str) -> dict[str, Any]:
    return {
        "subject_ref": subject.ref,
        "categories": [c.value for c in CONSENTED],
        "recipients": [recipient],
        "purposes": [Purpose.REFERRAL.value],
    }


def _envelope(
    payload: EventPayload, *, sender: Trust, subject_ref: str, role: Role, recipients: tuple[str, ...]
) -> Envelope:
    # Exactly as an agency's outbox gets it: sealed to the gateway, signed by the sender.
    return sender.sealed_event(
        payload,
        subject_ref=subject_ref,
        role=role,
        basis=LegalBasis.CONSENT,
        purpose=Purpose.REFERRAL,
        at=datetime.now(UTC),
        recipients=recipients,
    )


def consent_envelopes(subjects: list[Subject], *, sender: Trust, recipient: str) -> list[Envelope]:
    return [
        _envelope(
            ConsentGranted(
                consent_id=uuid.uuid4(), categories=CONSENTED, recipients=(recipient,), purposes=(Purpose.REFERRAL,)
            ),
            sender=sender,
            subject_ref=s.ref,
            role=Role.OTHER,
            recipients=(),
        )
        for s in subjects
    ]


def referral_envelopes(
    subjects: list[Subject], count: int, rng: random.Random, *, sender: Trust, recipient: str
) -> list[Envelope]:
    envelopes = []
    for _ in range(count):
        subject = rng.choice(subjects)
        data = PersonalData.model_validate(referral_data(subject, rng))
        payload = ReferralCreated(**data.model_dump(), categories_needed=NEEDED)
        envelopes.append(
            _envelope(payload, sender=sender, subject_ref=subject.ref, role=Role.VICTIM, recipients=(recipient,))
        )
    return envelopes


# --- throughput ---------------------------------------------------------------------------------


async def produce(producer: AIOKafkaProducer, topic: str, envelopes: list[Envelope], *, chunk: int = 1000) -> None:
    """Publish as the outbox relay does; awaiting chunk by chunk rather than thousands of sends at once."""
    for start in range(0, len(envelopes), chunk):
        futures = []
        for envelope in envelopes[start : start + chunk]:
            key, value, headers = envelope.to_kafka()
            futures.append(await producer.send(topic, value, key=key, headers=headers))
        await asyncio.gather(*futures)


class Passthrough:
    """A bare consume→produce relay: the gateway's consumer settings, an idempotent producer, no
    transaction, no decision. The floor the gateway's throughput is compared with."""

    def __init__(self, consumer: AIOKafkaConsumer, producer: AIOKafkaProducer, *, topic: str) -> None:
        self.consumer = consumer
        self.producer = producer
        self.topic = topic
        self.processed = 0

    async def run_once(self, timeout_ms: int = 500) -> int:
        batches = await self.consumer.getmany(timeout_ms=timeout_ms, max_records=1000)
        records = [r for part in batches.values() for r in part]
        if not records:
            return 0
        futures = [await self.producer.send(self.topic, r.value, key=r.key, headers=list(r.headers)) for r in records]
        await asyncio.gather(*futures)
        await self.consumer.commit({tp: recs[-1].offset + 1 for tp, recs in batches.items()})
        self.processed += len(records)
        return len(records)


Runner = TransactionalLoop | Passthrough


async def drain(runner: Runner, *, until: int, stall: float = 60.0) -> float:
    """Run batches until `until` records are done; the seconds from the first poll to the last commit."""
    started = last_progress = time.perf_counter()
    while runner.processed < until:
        if await runner.run_once():
            last_progress = time.perf_counter()
        elif time.perf_counter() - last_progress > stall:
            raise RuntimeError(f"{type(runner).__name__} stalled at {runner.processed}/{until} records")
    return time.perf_counter() - started


def _outcomes(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("select outcome, count(*) from gateway_audit group by outcome").fetchall()
    return {str(outcome): int(count) for outcome, count in rows}


async def measure_throughput(
    opts: BenchOptions, network: Network, *, bootstrap: str, prefix: str, data_dir: Path, console: Console
) -> tuple[Throughput, Throughput, dict[str, int]]:
    settings = GatewaySettings(
        network_file=opts.network_file,
        kafka_bootstrap=bootstrap,
        topic_prefix=prefix,
        data_dir=data_dir,
        transactional_id=f"{prefix}gateway",
    )
    topics = settings.topics
    scratch = f"{prefix}bench.passthrough"
    await _create_topics(bootstrap, network, topics, extra=(scratch,))
    sender = Trust.load(_ensure_keys(settings), opts.sender)
    rng = random.Random(20_000)
    subjects = make_subjects(opts.subjects, rng)
    warm, total = len(subjects), len(subjects) + opts.events
    async with _producer(bootstrap) as producer, passthrough(bootstrap, topics.submitted, scratch) as relay:
        await produce(producer, topics.submitted, consent_envelopes(subjects, sender=sender, recipient=opts.recipient))
        async with running_gateway(settings, serve=False) as started:
            loop = started.loop
            console.log(f"warming up on {warm} consents: the gateway and the passthrough join their groups")
            await drain(loop, until=warm)
            await drain(relay, until=warm)
            relay.consumer.pause(*relay.consumer.assignment())
            console.log(f"pre-producing {opts.events:,} referral.created records")
            await produce(
                producer,
                topics.submitted,
                referral_envelopes(subjects, opts.events, rng, sender=sender, recipient=opts.recipient),
            )
            console.log("gateway: deciding them")
            gateway_s = await drain(loop, until=total)
        relay.consumer.resume(*relay.consumer.assignment())
        console.log("passthrough: relaying the same records")
        passthrough_s = await drain(relay, until=total)
    return (
        Throughput(records=opts.events, seconds=gateway_s),
        Throughput(records=opts.events, seconds=passthrough_s),
        _outcomes(data_dir / "gateway.db"),
    )


@asynccontextmanager
async def _producer(bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    producer = bus.producer(bootstrap)
    await producer.start()
    try:
        yield producer
    finally:
        await producer.stop()


@asynccontextmanager
async def passthrough(bootstrap: str, source: str, target: str) -> AsyncIterator[Passthrough]:
    consumer = bus.consumer(bootstrap, source, group_id=f"{source}.bench-passthrough")
    await consumer.start()
    try:
        async with _producer(bootstrap) as producer:
            yield Passthrough(consumer, producer, topic=target)
    finally:
        await consumer.stop()


def _ensure_keys(settings: GatewaySettings) -> KeyDirs:
    """Every owner's keys, where the services of this run will look for them (as `maillage up` does)."""
    ensure_keys(settings.key_dirs, settings.network.key_owners)
    return settings.key_dirs


async def _create_topics(bootstrap: str, network: Network, topics: Topics, *, extra: tuple[str, ...] = ()) -> None:
    k = network.kafka
    await bus.ensure_topics(
        bootstrap,
        [*topics.all_for([a.id for a in network.agencies]), *extra],
        partitions=k.partitions,
        replication_factor=k.replication_factor,
        min_insync_replicas=k.min_insync_replicas,
    )


# --- latency ------------------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextmanager
def servers(names: list[tuple[str, list[str]]], *, env: dict[str, str], data_dir: Path) -> Iterator[dict[str, Server]]:
    """`maillage serve ...` subprocesses on free ports; all of them stopped on exit, whatever happened."""
    started: dict[str, Server] = {}
    try:
        for name, args in names:
            port = free_port()
            log = data_dir / f"{name}.log"
            with log.open("wb") as out:
                process = subprocess.Popen(
                    [sys.executable, "-m", "maillage.cli.main", "serve", *args, "--port", str(port)],
                    env={**os.environ, **env},
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            started[name] = Server(name=name, port=port, process=process, log=log)
        yield started
    finally:
        for server in started.values():
            if server.process.poll() is None:
                server.process.terminate()
        for server in started.values():
            try:
                server.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.process.kill()
                server.process.wait()


async def wait_ready(client: httpx.AsyncClient, server: Server, *, timeout: float = 60.0) -> None:
    async def ready() -> bool:
        if server.process.poll() is not None:
            tail = server.log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{server.name} exited:\n{tail}")
        try:
            return (await client.get(server.url + "/readyz")).status_code == 200
        except httpx.HTTPError:
            return False

    await eventually(ready, timeout=timeout, what=f"{server.name} to be ready")


@dataclass(frozen=True)
class Sent:
    event_id: str | None
    sent_at: datetime
    due_at: datetime
    lag_s: float
    error: str | None = None


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class KeepAliveClient:
    """The load generator's HTTP/1.1 client: keep-alive connections, a new one whenever all are busy.

    httpx's pool scans every connection for every request, so at a few hundred requests in flight the
    client itself became the bottleneck (and ate the CPU the services needed). This does one thing: POST
    a JSON body and read a Content-Length response, as uvicorn sends them."""

    # uvicorn closes a connection idle for 5 s; never reuse one idle for that long.
    MAX_IDLE = 2.0

    def __init__(self, url: str, *, headers: dict[str, str]) -> None:
        parsed = httpx.URL(url)
        self.host, self.port = parsed.host, parsed.port or 80
        self._headers = b"".join(f"{k}: {v}\r\n".encode() for k, v in headers.items())
        self._idle: list[tuple[float, Connection]] = []

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        reader, writer = await self._connection()
        try:
            writer.write(
                b"POST %s HTTP/1.1\r\nhost: %s:%d\r\n%scontent-type: application/json\r\n"
                b"content-length: %d\r\n\r\n%s"
                % (path.encode(), self.host.encode(), self.port, self._headers, len(body), body)
            )
            head = (await reader.readuntil(b"\r\n\r\n")).lower()
            length = int(head.split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
            payload = await reader.readexactly(length)
        except BaseException:
            writer.close()
            raise
        if b"connection: close" in head:
            writer.close()
        else:
            self._idle.append((time.monotonic(), (reader, writer)))
        return int(head[9:12]), payload

    async def _connection(self) -> Connection:
        while self._idle:
            since, connection = self._idle.pop()
            if time.monotonic() - since < self.MAX_IDLE:
                return connection
            connection[1].close()
        return await asyncio.open_connection(self.host, self.port)

    def close(self) -> None:
        for _, (_, writer) in self._idle:
            writer.close()
        self._idle.clear()


async def open_loop(
    client: KeepAliveClient, bodies: list[bytes], *, rate: float, path: str = "/v1/referrals"
) -> list[Sent]:
    """POST each body at its own scheduled time, whatever earlier answers do (no coordinated omission)."""
    loop = asyncio.get_running_loop()
    start_mono = loop.time() + 0.05
    start_wall = time.time() + 0.05
    tasks: list[asyncio.Task[Sent]] = []
    for i, body in enumerate(bodies):
        due = start_mono + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        due_at = datetime.fromtimestamp(start_wall + i / rate, UTC)
        tasks.append(asyncio.create_task(_post(client, path, body, due=due, due_at=due_at)))
    return list(await asyncio.gather(*tasks))


async def _post(client: KeepAliveClient, path: str, body: bytes, *, due: float, due_at: datetime) -> Sent:
    lag = asyncio.get_running_loop().time() - due
    sent_at = datetime.now(UTC)
    try:
        status, answer = await client.post(path, body)
    except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as exc:
        return Sent(event_id=None, sent_at=sent_at, due_at=due_at, lag_s=lag, error=type(exc).__name__)
    if status != 202:
        return Sent(event_id=None, sent_at=sent_at, due_at=due_at, lag_s=lag, error=f"HTTP {status}")
    return Sent(event_id=orjson.loads(answer)["event_id"], sent_at=sent_at, due_at=due_at, lag_s=lag)


def stored_times(db: Path, table: str, column: str, *, key: str = "event_id") -> dict[str, datetime]:
    """event_id → a timestamp a service stored in its own database (read-only, while it runs)."""
    if not db.exists():
        return {}
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute(f"select {key}, {column} from {table}").fetchall()
    return {event_id: _utc(value) for event_id, value in rows}


def _utc(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


async def measure_latency(
    opts: BenchOptions, network: Network, *, bootstrap: str, prefix: str, data_dir: Path, console: Console
) -> Latency:
    await _create_topics(bootstrap, network, Topics(prefix=prefix))
    keys = _ensure_keys(GatewaySettings(network_file=opts.network_file, data_dir=data_dir))
    # The bench plays the sender's case-management system, with the token such a system holds.
    token = mint(Trust.load(keys, opts.sender).own, subject="maillage-bench", scopes=ALL_AGENCY_SCOPES)
    auth = {"authorization": f"Bearer {token}"}
    env = {
        "MAILLAGE_KAFKA_BOOTSTRAP": bootstrap,
        "MAILLAGE_NETWORK_FILE": str(opts.network_file.resolve()),
        "MAILLAGE_DATA_DIR": str(data_dir),
        "MAILLAGE_TOPIC_PREFIX": prefix,
        "MAILLAGE_TRANSACTIONAL_ID": f"{prefix}gateway",
        "MAILLAGE_LOG_LEVEL": "WARNING",
    }
    wanted = [
        ("gateway", ["gateway"]),
        (opts.sender, ["agency", opts.sender]),
        (opts.recipient, ["agency", opts.recipient]),
    ]
    rng = random.Random(200)
    subjects = make_subjects(min(opts.subjects, 50), rng)
    console.log("starting the gateway and two agencies as uvicorn servers")
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=200)
    with servers(wanted, env=env, data_dir=data_dir) as running:
        async with httpx.AsyncClient(
            base_url=running[opts.sender].url, limits=limits, timeout=30, headers=auth
        ) as client:
            for server in running.values():
                await wait_ready(client, server)
            await _grant_consents(client, subjects, recipient=opts.recipient)
        load = KeepAliveClient(running[opts.sender].url, headers=auth)
        try:
            latency = await _latency_run(opts, load, subjects, rng, data_dir=data_dir, console=console)
        finally:
            load.close()
    return latency


async def _latency_run(
    opts: BenchOptions,
    client: KeepAliveClient,
    subjects: list[Subject],
    rng: random.Random,
    *,
    data_dir: Path,
    console: Console,
) -> Latency:
    inbox = data_dir / f"agency-{opts.recipient}.db"
    console.log(f"warming up: {opts.warmup:g}s at {opts.rate:g} referrals/s")
    warm = await open_loop(client, _bodies(subjects, rng, opts, seconds=opts.warmup), rate=opts.rate)
    await _arrivals(warm, inbox, timeout=30)
    console.log(f"measuring: {opts.duration:g}s at {opts.rate:g} referrals/s, open loop")
    sent = await open_loop(client, _bodies(subjects, rng, opts, seconds=opts.duration), rate=opts.rate)
    arrived = await _arrivals(sent, inbox, timeout=30)
    done = [s for s in sent if s.event_id is not None and s.event_id in arrived]
    return Latency(
        rate=opts.rate,
        duration=opts.duration,
        warmup=opts.warmup,
        sent=len(sent),
        accepted=sum(s.event_id is not None for s in sent),
        arrived=len(done),
        total=Spread.of([_ms(arrived[s.event_id], s.sent_at) for s in done if s.event_id]),
        total_from_schedule=Spread.of([_ms(arrived[s.event_id], s.due_at) for s in done if s.event_id]),
        send_lag_max_ms=round(max((s.lag_s for s in sent), default=0.0) * 1000, 1),
        stages=_stages(
            done, arrived, sender_db=data_dir / f"agency-{opts.sender}.db", gateway_db=data_dir / "gateway.db"
        ),
        failures=dict(Counter(s.error for s in sent if s.error)),
    )


def _stages(done: list[Sent], arrived: dict[str, datetime], *, sender_db: Path, gateway_db: Path) -> dict[str, Spread]:
    accepted = stored_times(sender_db, "sent_event", "created_at")
    decided = stored_times(gateway_db, "gateway_processed", "decided_at")
    ids = [s.event_id for s in done if s.event_id in accepted and s.event_id in decided]
    sent_at = {s.event_id: s.sent_at for s in done}
    return {
        "sender stored it": Spread.of([_ms(accepted[i], sent_at[i]) for i in ids if i]),
        "gateway decided it": Spread.of([_ms(decided[i], accepted[i]) for i in ids if i]),
        "recipient stored it": Spread.of([_ms(arrived[i], decided[i]) for i in ids if i]),
    }


def _ms(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds() * 1000


def _bodies(subjects: list[Subject], rng: random.Random, opts: BenchOptions, *, seconds: float) -> list[bytes]:
    return [
        orjson.dumps(referral_body(rng.choice(subjects), rng, recipient=opts.recipient))
        for _ in range(round(seconds * opts.rate))
    ]


async def _grant_consents(client: httpx.AsyncClient, subjects: list[Subject], *, recipient: str) -> None:
    event_ids = []
    for subject in subjects:
        response = await client.post("/v1/consents", json=consent_body(subject, recipient=recipient))
        response.raise_for_status()
        event_ids.append(response.json()["event_id"])

    async def all_decided() -> bool:
        for event_id in event_ids:
            if (await client.get(f"/v1/events/{event_id}")).json()["state"] == "pending":
                return False
        return True

    await eventually(all_decided, timeout=60, what="the gateway to record the consents", every=0.2)


async def _arrivals(sent: list[Sent], inbox: Path, *, timeout: float) -> dict[str, datetime]:
    """Wait until every accepted referral is in the recipient's inbox (or `timeout`); their received_at."""
    wanted = {s.event_id for s in sent if s.event_id is not None}
    deadline = time.monotonic() + timeout
    while True:
        found = stored_times(inbox, "inbox", "received_at")
        if wanted <= found.keys() or time.monotonic() > deadline:
            return {k: v for k, v in found.items() if k in wanted}
        await asyncio.sleep(0.2)


# --- on-call: POST /v1/alerts → a worker's WebSocket -------------------------------------------

ONCALL_AGENCY = "zp-meuse"
NEVER_ESCALATE = 86_400  # seconds: nothing escalates (nor pages anyone else) during a run
JUSTIFICATION = "He announced he would come to the shelter tonight with a knife."


def worker_ids(count: int) -> list[str]:
    width = max(3, len(str(count)))
    return [f"bench-w{i:0{width}d}" for i in range(1, count + 1)]


def oncall_network(source: Path, directory: Path, *, workers: list[str]) -> Path:
    """A copy of the network file in which the police zone's level 1 is `workers`, all on call at all
    times, with no escalation and no grouping during a run, and no reconnect grace."""
    import tomli_w

    doc = tomllib.loads(source.read_text())
    doc["policy"] = str(load_network(source).policy)
    dispatcher = doc.setdefault("dispatcher", {})
    dispatcher["group_window_seconds"] = 0
    dispatcher["reconnect_grace_seconds"] = 0
    dispatcher.pop("database_url", None)
    police = doc.get("oncall", {}).get(ONCALL_AGENCY)
    if police is None:
        raise NetworkError(f"{source}: the on-call bench needs an on-call policy for {ONCALL_AGENCY!r}")
    if dispatcher.get("agencies") and ONCALL_AGENCY not in dispatcher["agencies"]:
        dispatcher["agencies"] = [*dispatcher["agencies"], ONCALL_AGENCY]
    police["escalate_after"] = {severity.value: NEVER_ESCALATE for severity in Severity}
    police.pop("fallback_url", None)
    police["levels"][0]["shifts"] = [{"workers": workers}]  # every day, 00:00 to midnight
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "network.toml"
    path.write_bytes(tomli_w.dumps(doc).encode())
    return path


def alert_body(subject: Subject, rng: random.Random) -> dict[str, Any]:
    """A victim-support association's danger alert (art. 458bis) to the police zone; each about a new
    person (a fresh subject_ref), so the dispatcher pages every one rather than grouping them."""
    data = {
        "identity": subject.data["identity"],
        "location": subject.data["location"],
        "risk": {"level": "severe", "factors": rng.sample(FACTORS, k=rng.randint(1, 3))},
    }
    return {
        "subject_ref": new_subject_ref(),
        "subject_role": Role.VICTIM.value,
        "severity": "imminent",
        "kind": "threat",
        "recipients": [ONCALL_AGENCY],
        "legal_basis": LegalBasis.DANGER.value,
        "justification": JUSTIFICATION,
        "data": data,
    }


@dataclass(frozen=True)
class CpuSample:
    at: float  # time.monotonic()
    seconds: dict[str, float]  # CPU seconds used so far, per process
    machine: tuple[float, float]  # (busy, total) jiffies over every core


class CpuMeter:
    """CPU seconds of named processes and of the whole machine (Linux /proc), sampled when asked."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        self.pids = {name: pid for name, pid in pids.items() if pid}

    def sample(self) -> CpuSample:
        return CpuSample(
            at=time.monotonic(),
            seconds={name: _cpu_seconds(pid) for name, pid in self.pids.items()},
            machine=_machine_ticks(),
        )

    @staticmethod
    def percent(a: CpuSample, b: CpuSample) -> tuple[dict[str, float], float]:
        """% of one core per process, and % of all cores busy, from `a` to `b`."""
        wall = max(b.at - a.at, 1e-9)
        used = {name: round(100 * (b.seconds[name] - a.seconds[name]) / wall, 1) for name in a.seconds}
        machine = 100 * (b.machine[0] - a.machine[0]) / max(b.machine[1] - a.machine[1], 1e-9)
        return used, round(machine, 1)

    @staticmethod
    def used(a: CpuSample, b: CpuSample) -> dict[str, float]:
        return {name: b.seconds[name] - a.seconds[name] for name in a.seconds}


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _machine_ticks() -> tuple[float, float]:
    """(busy, total) jiffies over every core, from /proc/stat."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return (math.nan, math.nan)
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])  # without guest time, already counted in user
    return (total - idle, total)


async def measure_oncall(
    opts: BenchOptions, *, bootstrap: str, prefix: str, data_dir: Path, console: Console, kafka_pid: int | None = None
) -> Oncall:
    workers = worker_ids(opts.workers)
    network_file = oncall_network(opts.network_file, data_dir / "network", workers=workers)
    network = load_network(network_file)
    network.agency(opts.sender)
    await _create_topics(bootstrap, network, Topics(prefix=prefix))
    keys = _ensure_keys(GatewaySettings(network_file=network_file, data_dir=data_dir))
    token = mint(Trust.load(keys, opts.sender).own, subject="maillage-bench", scopes=ALL_AGENCY_SCOPES)
    auth = {"authorization": f"Bearer {token}"}
    police = Trust.load(keys, ONCALL_AGENCY).own
    tokens = [(w, mint(police, subject=w, scopes=(Scope.ALERTS_ACK,))) for w in workers]
    env = {
        "MAILLAGE_KAFKA_BOOTSTRAP": bootstrap,
        "MAILLAGE_NETWORK_FILE": str(network_file.resolve()),
        "MAILLAGE_DATA_DIR": str(data_dir),
        "MAILLAGE_TOPIC_PREFIX": prefix,
        "MAILLAGE_TRANSACTIONAL_ID": f"{prefix}gateway",
        "MAILLAGE_LOG_LEVEL": "WARNING",
    }
    wanted = [("gateway", ["gateway"]), (opts.sender, ["agency", opts.sender]), ("dispatcher", ["dispatcher"])]
    console.log(f"starting the gateway, {opts.sender} and the dispatcher as uvicorn servers")
    with servers(wanted, env=env, data_dir=data_dir) as running:
        async with httpx.AsyncClient(timeout=30) as client:
            for server in running.values():
                await wait_ready(client, server)
        url = running["dispatcher"].url.replace("http", "ws", 1) + "/v1/ws"
        processes = max(1, min(opts.socket_processes, len(workers)))
        console.log(f"connecting {len(workers)} workers' WebSockets from {processes} processes")
        connect_started = time.monotonic()
        fleet = SocketFleet(url, tokens, processes=processes, compression=opts.ws_compression)
        load = KeepAliveClient(running[opts.sender].url, headers=auth)
        try:
            connected, errors = await fleet.ready()
            connect_s = time.monotonic() - connect_started
            if errors:
                console.log(f"[yellow]{len(errors)} workers could not sign in[/], e.g. {errors[0]}")
            pids = {
                "bench (load generator)": os.getpid(),
                "kafka": kafka_pid,
                **{f"sockets {i}": pid for i, pid in enumerate(fleet.pids)},
                **{name: s.process.pid for name, s in running.items()},
            }
            return await _oncall_run(
                opts,
                load,
                fleet,
                connected=connected,
                connect_s=connect_s,
                meter=CpuMeter(pids),
                data_dir=data_dir,
                console=console,
            )
        finally:
            load.close()
            fleet.close()


async def _oncall_run(
    opts: BenchOptions,
    load: KeepAliveClient,
    fleet: SocketFleet,
    *,
    connected: int,
    connect_s: float,
    meter: CpuMeter,
    data_dir: Path,
    console: Console,
) -> Oncall:
    rng = random.Random(500)
    people = make_subjects(50, rng)

    def bodies(seconds: float) -> list[bytes]:
        return [orjson.dumps(alert_body(rng.choice(people), rng)) for _ in range(round(seconds * opts.alert_rate))]

    console.log(f"warming up: {opts.warmup:g}s at {opts.alert_rate:g} alerts/s to {connected} workers")
    warm = await open_loop(load, bodies(opts.warmup), rate=opts.alert_rate, path="/v1/alerts")
    before = await fleet.wait_for(sum(s.event_id is not None for s in warm) * connected, timeout=60)
    console.log(f"measuring: {opts.oncall_duration:g}s at {opts.alert_rate:g} alerts/s, open loop")
    measured = bodies(opts.oncall_duration)
    sending = meter.sample()
    started = time.time()
    sent = await open_loop(load, measured, rate=opts.alert_rate, path="/v1/alerts")
    ended = time.time()
    sent_all = meter.sample()
    accepted = [s for s in sent if s.event_id is not None]
    got = await fleet.wait_for(before + len(accepted) * connected, timeout=60)
    drained = meter.sample()
    if got < before + len(accepted) * connected:
        console.log(f"[yellow]{before + len(accepted) * connected - got} (alert, worker) pairs never arrived[/]")
    seen = await fleet.stop()
    cpu, busy = CpuMeter.percent(sending, sent_all)
    # From the first POST until the last alert reached every socket: the work these alerts cost.
    per_alert = {
        name: round(1000 * seconds / max(len(accepted), 1), 1)
        for name, seconds in CpuMeter.used(sending, drained).items()
    }
    return _oncall_figures(
        opts,
        sent,
        seen,
        connected=connected,
        connect_s=connect_s,
        cpu=cpu,
        busy=busy,
        cpu_ms_per_alert=per_alert,
        drain_s=drained.at - sent_all.at,
        window=(started, ended),
        data_dir=data_dir,
    )


def _oncall_figures(
    opts: BenchOptions,
    sent: list[Sent],
    seen: Arrivals,
    *,
    connected: int,
    connect_s: float,
    cpu: dict[str, float],
    busy: float,
    cpu_ms_per_alert: dict[str, float],
    drain_s: float,
    window: tuple[float, float],
    data_dir: Path,
) -> Oncall:
    accepted = {s.event_id: s for s in sent if s.event_id is not None}
    per_alert: dict[str, list[float]] = {event_id: [] for event_id in accepted}
    for arrivals in seen.by_worker.values():
        for alert_id, at in arrivals.items():
            if alert_id in per_alert:
                per_alert[alert_id].append(at)
    pairs, from_schedule = [], []
    for event_id, times in per_alert.items():
        start, due = accepted[event_id].sent_at.timestamp(), accepted[event_id].due_at.timestamp()
        pairs += [(at - start) * 1000 for at in times]
        from_schedule += [(at - due) * 1000 for at in times]
    reached = {event_id: times for event_id, times in per_alert.items() if times}
    received = stored_times(data_dir / "dispatcher.db", "oncall_alert", "received_at", key="alert_id")
    return Oncall(
        workers=opts.workers,
        connected=connected,
        socket_processes=opts.socket_processes,
        ws_compression=opts.ws_compression,
        rate=opts.alert_rate,
        duration=opts.oncall_duration,
        warmup=opts.warmup,
        sent=len(sent),
        accepted=len(accepted),
        stored=sum(event_id in received for event_id in accepted),
        reached_some=len(reached),
        reached_all=sum(len(times) == connected for times in per_alert.values()),
        pairs_expected=len(accepted) * connected,
        pairs_missing=len(accepted) * connected - len(pairs),
        every_pair=Spread.of(pairs),
        first_worker=Spread.of([(min(t) - accepted[i].sent_at.timestamp()) * 1000 for i, t in reached.items()]),
        last_worker=Spread.of([(max(t) - accepted[i].sent_at.timestamp()) * 1000 for i, t in reached.items()]),
        every_pair_from_schedule=Spread.of(from_schedule),
        send_lag_max_ms=round(max((s.lag_s for s in sent), default=0.0) * 1000, 1),
        stages=_oncall_stages(accepted, reached, received, data_dir=data_dir, sender=opts.sender),
        failures=dict(Counter(s.error for s in sent if s.error)),
        cpu_percent=cpu,
        machine_busy_percent=busy,
        others_percent=round(busy * (os.cpu_count() or 1) - sum(cpu.values()), 1),
        cpu_ms_per_alert=cpu_ms_per_alert,
        drain_seconds=round(drain_s, 2),
        client_loop_lag=Spread.of([lag * 1000 for lag in lags_within(seen.lags, *window)]),
        sockets_closed=len(seen.closed),
        other_messages=seen.other,
        connect_seconds=round(connect_s, 1),
    )


def _oncall_stages(
    accepted: dict[str, Sent],
    reached: dict[str, list[float]],
    received: dict[str, datetime],
    *,
    data_dir: Path,
    sender: str,
) -> dict[str, Spread]:
    stored = stored_times(data_dir / f"agency-{sender}.db", "sent_event", "created_at")
    decided = stored_times(data_dir / "gateway.db", "gateway_processed", "decided_at")
    ids = [i for i in reached if i in stored and i in decided and i in received]
    at = {i: datetime.fromtimestamp(min(reached[i]), UTC) for i in ids}
    last = {i: datetime.fromtimestamp(max(reached[i]), UTC) for i in ids}
    return {
        "sender stored it": Spread.of([_ms(stored[i], accepted[i].sent_at) for i in ids]),
        "gateway decided it": Spread.of([_ms(decided[i], stored[i]) for i in ids]),
        "dispatcher received it": Spread.of([_ms(received[i], decided[i]) for i in ids]),
        "first worker got it": Spread.of([_ms(at[i], received[i]) for i in ids]),
        "last worker got it": Spread.of([_ms(last[i], at[i]) for i in ids]),
    }


# --- the machine and the report -----------------------------------------------------------------


def describe_machine(*, kafka: str) -> dict[str, Any]:
    # Other work on the machine during the run skews every figure: the load average says how much.
    return {
        "cores": os.cpu_count(),
        "ram_gib": round(_ram_bytes() / 2**30, 1),
        "cpu": _cpu_model(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "kafka": kafka,
        "load_before": _load(),
    }


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _ram_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def print_report(report: Report, console: Console) -> None:
    verdicts = report.verdicts()
    table = Table(title="maillage bench")
    for column, justify in (("measure", "left"), ("value", "right"), ("target", "right"), ("", "left")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    g, p, lat = report.gateway, report.passthrough, report.latency
    if g and p:
        table.add_row(
            "gateway throughput",
            f"{g.events_per_s:,.0f} events/s",
            f">= {TARGET_GATEWAY_EVENTS_PER_S:,.0f}",
            _mark(verdicts["gateway_events_per_s"]),
        )
        table.add_row("  referral.created events", f"{g.records:,} in {g.seconds:.2f} s", "", "")
        outcomes = ", ".join(f"{n:,} {outcome}" for outcome, n in sorted(report.gateway_outcomes.items()))
        table.add_row("  decisions recorded", outcomes, "", "")
        table.add_row("bare passthrough throughput", f"{p.events_per_s:,.0f} events/s", "", "")
        table.add_row(
            "ratio gateway / passthrough", f"{report.ratio:.2f}", f">= {TARGET_RATIO}", _mark(verdicts["ratio"])
        )
    if lat:
        table.add_row(f"POST → inbox at {lat.rate:g}/s for {lat.duration:g} s", "", "", "")
        table.add_row("  p50", f"{lat.total.p50_ms:,.1f} ms", "", "")
        table.add_row(
            "  p99", f"{lat.total.p99_ms:,.1f} ms", f"<= {TARGET_P99_MS:g} ms", _mark(verdicts["latency_p99_ms"])
        )
        table.add_row("  max", f"{lat.total.max_ms:,.1f} ms", "", "")
        table.add_row("  sent / accepted / arrived", f"{lat.sent} / {lat.accepted} / {lat.arrived}", "", "")
        if lat.failures:
            failed = ", ".join(f"{n} {why}" for why, n in lat.failures.items())
            table.add_row("  refused or failed", failed, "", "")
        for stage, spread in lat.stages.items():  # each stage from the end of the one before
            table.add_row(f"  then {stage}", f"p50 {spread.p50_ms:,.0f}, p99 {spread.p99_ms:,.0f} ms", "", "")
    if report.oncall:
        _oncall_rows(table, report.oncall, verdicts["oncall_p99_ms"])
    console.print(table)
    m = report.machine
    console.print(
        f"Machine: {m['cores']} cores, {m['ram_gib']} GiB RAM, {m['cpu']}; Python {m['python']}; "
        f"Kafka {m['kafka']}; {m['platform']}; load average {m['load_before']} before, "
        f"{m.get('load_after', '?')} after"
    )


def _oncall_rows(table: Table, o: Oncall, ok: bool) -> None:
    table.add_row(
        f"POST /v1/alerts → worker's socket, {o.connected} workers, {o.rate:g} alerts/s for "
        f"{o.duration:g} s" + ("" if o.ws_compression else " (no permessage-deflate)"),
        "",
        "",
        "",
    )
    table.add_row("  p50, every (alert, worker)", f"{o.every_pair.p50_ms:,.1f} ms", "", "")
    table.add_row(
        "  p99, every (alert, worker)", f"{o.every_pair.p99_ms:,.1f} ms", f"<= {TARGET_ONCALL_P99_MS:g} ms", _mark(ok)
    )
    table.add_row("  max, every (alert, worker)", f"{o.every_pair.max_ms:,.1f} ms", "", "")
    table.add_row(
        "  first worker per alert", f"p50 {o.first_worker.p50_ms:,.1f}, p99 {o.first_worker.p99_ms:,.1f} ms", "", ""
    )
    table.add_row(
        "  last worker per alert", f"p50 {o.last_worker.p50_ms:,.1f}, p99 {o.last_worker.p99_ms:,.1f} ms", "", ""
    )
    table.add_row("  sent / accepted / in the dispatcher", f"{o.sent} / {o.accepted} / {o.stored}", "", "")
    table.add_row("  alerts that reached every / some worker", f"{o.reached_all} / {o.reached_some}", "", "")
    table.add_row(
        "  (alert, worker) pairs missing",
        f"{o.pairs_missing:,} of {o.pairs_expected:,}",
        "0",
        _mark(o.pairs_missing == 0),
    )
    if o.connected != o.workers or o.sockets_closed:
        table.add_row(
            "  workers connected / sockets closed early",
            f"{o.connected} / {o.sockets_closed}",
            str(o.workers),
            _mark(False),
        )
    if o.failures:
        table.add_row("  refused or failed", ", ".join(f"{n} {why}" for why, n in o.failures.items()), "", "")
    for stage, spread in o.stages.items():
        table.add_row(f"  then {stage}", f"p50 {spread.p50_ms:,.0f}, p99 {spread.p99_ms:,.0f} ms", "", "")
    table.add_row("  load generator: send lag max", f"{o.send_lag_max_ms:,.1f} ms", "", "")
    table.add_row(
        f"  socket clients ({o.socket_processes} processes): loop lag",
        f"p99 {o.client_loop_lag.p99_ms:,.1f}, max {o.client_loop_lag.max_ms:,.1f} ms",
        "",
        "",
    )
    cpu = ", ".join(f"{name} {pct:.0f}%" for name, pct in sorted(o.cpu_percent.items(), key=lambda kv: -kv[1]))
    table.add_row("  CPU while sending (% of one core)", cpu, "", "")
    table.add_row(
        "  machine busy while sending",
        f"{o.machine_busy_percent:.0f}% of all cores, of which other "
        f"processes {max(o.others_percent, 0):.0f}% of one core",
        "",
        "",
    )
    per_alert = ", ".join(f"{name} {ms:.0f}" for name, ms in sorted(o.cpu_ms_per_alert.items(), key=lambda kv: -kv[1]))
    table.add_row("  CPU ms per alert (until all delivered)", per_alert, "", "")
    table.add_row("  last POST → last alert on every socket", f"{o.drain_seconds:.2f} s", "", "")


def _mark(ok: bool) -> str:
    return "[green]PASS[/]" if ok else "[red]MISS[/]"


def write_report(report: Report, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_bytes(report.to_json() + b"\n")
    return path


# --- the whole run ------------------------------------------------------------------------------


def run_bench(opts: BenchOptions, *, console: Console) -> tuple[Report, Path]:
    # aiokafka logs its retries (a coordinator still loading, a new partition's replica not yet in sync)
    # as warnings; they are expected while the bench creates its topics, and only clutter the figures.
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    network = load_network(opts.network_file)
    for agency_id in (opts.sender, opts.recipient):
        network.agency(agency_id)
    with tempfile.TemporaryDirectory(prefix="maillage-bench-") as tmp:
        data_dir = Path(tmp)
        kafka = None if opts.bootstrap else LocalKafka(data_dir=data_dir / "kafka")
        try:
            if kafka is not None:
                with console.status("Starting a local Kafka broker…"):
                    kafka.start()
            bootstrap = opts.bootstrap or (kafka.bootstrap if kafka else "")
            kafka_version = KAFKA_VERSION if kafka else f"external ({bootstrap})"
            report = Report(
                started_at=datetime.now(UTC).isoformat(timespec="seconds"),
                options=_options_json(opts),
                machine=describe_machine(kafka=kafka_version),
            )
            _run(
                _measure(
                    report,
                    opts,
                    network,
                    bootstrap=bootstrap,
                    data_dir=data_dir,
                    console=console,
                    kafka_pid=kafka.process.pid if kafka and kafka.process else None,
                )
            )
            report.machine["load_after"] = _load()
        finally:
            if kafka is not None:
                kafka.stop()
    print_report(report, console)
    return report, write_report(report, opts.out_dir)


async def _measure(
    report: Report,
    opts: BenchOptions,
    network: Network,
    *,
    bootstrap: str,
    data_dir: Path,
    console: Console,
    kafka_pid: int | None = None,
) -> None:
    prefix = f"bench{uuid.uuid4().hex[:8]}."
    report.options["topic_prefix"] = prefix
    (data_dir / "throughput").mkdir()
    (data_dir / "latency").mkdir()
    (data_dir / "oncall").mkdir()
    try:
        if "throughput" in opts.parts:
            report.gateway, report.passthrough, report.gateway_outcomes = await measure_throughput(
                opts, network, bootstrap=bootstrap, prefix=prefix, data_dir=data_dir / "throughput", console=console
            )
        if "latency" in opts.parts:
            report.latency = await measure_latency(
                opts,
                network,
                bootstrap=bootstrap,
                prefix=f"{prefix}lat.",
                data_dir=data_dir / "latency",
                console=console,
            )
        if "oncall" in opts.parts:
            report.oncall = await measure_oncall(
                opts,
                bootstrap=bootstrap,
                prefix=f"{prefix}oncall.",
                data_dir=data_dir / "oncall",
                console=console,
                kafka_pid=kafka_pid,
            )
    finally:
        if opts.bootstrap:  # someone else's broker: leave no bench topics behind
            await _delete_topics(bootstrap, prefix=prefix)


async def _delete_topics(bootstrap: str, *, prefix: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        ours = [name for name in await admin.list_topics() if name.startswith(prefix)]
        if ours:
            await admin.delete_topics(ours)
    finally:
        await admin.close()


def _run(coro: Coroutine[Any, Any, None]) -> None:
    # uvicorn runs the services on uvloop when it is installed; the in-process runs use the same loop.
    try:
        import uvloop
    except ImportError:
        asyncio.run(coro)
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(coro)


def _options_json(opts: BenchOptions) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(opts).items()}
