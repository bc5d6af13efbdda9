"""One real Kafka broker for the whole session; a fresh topic prefix and data directory per test. Tests marked
`postgresql` run on SQLite and on one PostgreSQL server of the session too, with fresh databases per test."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from maillage.cli.kafka_local import LocalKafka
from maillage.cli.postgres_local import LocalPostgres
from maillage.cli.supervision import launch
from tests.support import Pole

DATABASES = ("sqlite", "postgresql")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--databases",
        default=",".join(DATABASES),
        help="Which databases the tests marked `postgresql` run on (comma-separated: sqlite,postgresql).",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "database" in metafunc.fixturenames and metafunc.definition.get_closest_marker("postgresql"):
        chosen = [d for d in metafunc.config.getoption("databases").split(",") if d]
        unknown = set(chosen) - set(DATABASES)
        if unknown:
            raise pytest.UsageError(f"--databases: unknown {sorted(unknown)}; choose among {DATABASES}")
        metafunc.parametrize("database", chosen, indirect=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[LocalPostgres]:
    # Not under pytest's temporary directory: that one is root's alone (0700), and the server runs as `postgres`.
    data_dir = Path(tempfile.mkdtemp(prefix="maillage-postgres-"))
    server = LocalPostgres(data_dir=data_dir, durable=False)
    # A child of this session that dies with it (as `maillage up` starts it): a session killed by a timeout
    # leaves no server behind.
    process = server.launch(launch)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()
        process.wait(timeout=60)
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def database(request: pytest.FixtureRequest) -> str:
    """The database the test's services run on: SQLite unless the test is marked `postgresql`."""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture
def databases(
    request: pytest.FixtureRequest, database: str, topic_prefix: str
) -> Iterator[Callable[[str], str | None]]:
    """Each service's database URL (None: SQLite in the data directory), created on PostgreSQL when first asked."""
    if database == "sqlite":
        yield lambda _service: None
        return
    server: LocalPostgres = request.getfixturevalue("postgres")
    created: dict[str, str] = {}

    def url(service: str) -> str:
        if service not in created:
            created[service] = server.create_database(f"{topic_prefix}{service}")
        return created[service]

    yield url
    for service in created:
        server.psql(f'DROP DATABASE "{topic_prefix}{service}" WITH (FORCE)')


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get("MAILLAGE_TEST_KAFKA_BOOTSTRAP")
    if external:
        yield external
        return
    broker = LocalKafka(data_dir=tmp_path_factory.mktemp("kafka"), popen=launch)  # dies with the session
    broker.start()
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


@pytest.fixture
def topic_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}."


@pytest.fixture
async def producer(pole: Pole) -> AsyncIterator[AIOKafkaProducer]:
    """A plain client of the test broker: what a misbehaving sender, or an agency's compromised principal,
    writes straight onto a topic."""
    client = AIOKafkaProducer(bootstrap_servers=pole.bootstrap, acks="all", enable_idempotence=True)
    await client.start()
    try:
        yield client
    finally:
        await client.stop()


@pytest.fixture
async def pole(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, databases: Callable[[str], str | None]
) -> AsyncIterator[Pole]:
    """The demo network's topics under a unique prefix; tests start the gateway and the agencies they need."""
    network = Pole(bootstrap=kafka_bootstrap, prefix=topic_prefix, data_dir=tmp_path / "var", databases=databases)
    network.create_keys()
    await network.create_topics()
    try:
        async with network.stack:
            yield network
    finally:
        await delete_topics(kafka_bootstrap, prefix=topic_prefix)


async def delete_topics(bootstrap: str, *, prefix: str) -> None:
    """A test's topics, gone when it ends: the session's broker keeps three files open per partition, and the
    suite's some 20,000 partitions passed the open-file limit ("Too many open files": the broker stopped
    accepting connections)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        await admin.start()
        ours = [name for name in await admin.list_topics() if name.startswith(prefix)]
        if ours:
            await admin.delete_topics(ours)
    except KafkaError:
        pass  # a test that stopped the broker: nothing left to tidy
    finally:
        await admin.close()
