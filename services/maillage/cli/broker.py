"""`maillage broker` and `maillage database-server`: the network's infrastructure, one process in the foreground.

`broker` is one node of the network's KRaft cluster (broker and controller): what a compose service or a
system unit runs on each Kafka machine. The node formats its storage on its first
start — with the cluster id and the super user's SCRAM credential kept in the private key folder, the same
for every node that shares that folder (or a copy of it) — and then *becomes* the JVM (exec), so the signals
of whoever supervises it reach Kafka directly.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import signal
import subprocess
from pathlib import Path
from typing import Annotated

import typer

from maillage.cli.kafka_local import (
    ADMIN_PASSWORD_FILE,
    LOG4J_CONSOLE,
    BrokerTls,
    LocalKafka,
    Quorum,
    ScramSetup,
    new_cluster_id,
)
from maillage.cli.postgres_local import LocalPostgres
from maillage.core.crypto.keys import ensure_secret, write_private
from maillage.core.crypto.network_ca import TlsDirs

CLUSTER_ID_FILE = "kafka.cluster-id"


def broker(
    node_id: Annotated[int, typer.Option(min=1, envvar="MAILLAGE_BROKER_NODE_ID", help="This node's id (1, 2, 3…).")],
    voters: Annotated[
        str,
        typer.Option(
            envvar="MAILLAGE_BROKER_VOTERS", help="Every controller of the cluster: 1@host:port,2@host:port,…"
        ),
    ],
    port: Annotated[int, typer.Option(envvar="MAILLAGE_BROKER_PORT", help="The clients' listener.")],
    controller_port: Annotated[int, typer.Option(envvar="MAILLAGE_BROKER_CONTROLLER_PORT")],
    data_dir: Annotated[Path, typer.Option(envvar="MAILLAGE_DATA_DIR", help="This node's storage.")],
    keys_dir: Annotated[
        Path, typer.Option(envvar="MAILLAGE_KEYS_DIR", help="The folder holding private/ and public/ keys.")
    ],
    host: Annotated[str, typer.Option(envvar="MAILLAGE_BROKER_HOST", help="Listen and be reached at.")] = "127.0.0.1",
    tls: Annotated[bool, typer.Option(help="SASL_SSL listeners, with the certificate kafka-<node id>.")] = True,
    heap: Annotated[str, typer.Option(envvar="MAILLAGE_BROKER_HEAP")] = "512m",
    optimising_compiler: Annotated[
        bool,
        typer.Option(
            envvar="MAILLAGE_BROKER_OPTIMISING_COMPILER",
            help="The JVM's C2 compiler: the cheapest code for a broker that runs for weeks, after minutes of "
            "compiling; without it (C1 alone) the code is ready within seconds.",
        ),
    ] = True,
) -> None:
    """Run one node of the network's Kafka cluster (SASL/SCRAM, ACLs, TLS) in the foreground."""
    private, public = keys_dir / "private", keys_dir / "public"
    shared = [private / CLUSTER_ID_FILE, private / ADMIN_PASSWORD_FILE]
    if "," in voters and not all(path.exists() for path in shared):
        # Made here, each node of a cluster would have its own id and password, and no quorum would form.
        typer.echo(f"{' and '.join(map(str, shared))} are missing: `maillage keys init` makes them once.", err=True)
        raise typer.Exit(2)
    sasl = ScramSetup.kept_in(private)
    if tls:
        sasl = dataclasses.replace(sasl, tls=BrokerTls.issued(private, public, f"kafka-{node_id}"))
    cluster_id = ensure_secret(private / CLUSTER_ID_FILE, new_cluster_id)
    node = LocalKafka(
        data_dir=data_dir,
        heap=heap,
        port=port,
        controller_port=controller_port,
        sasl=sasl,
        quorum=Quorum(node_id=node_id, voters=voters, cluster_id=cluster_id),
        host=host,
        log_config=LOG4J_CONSOLE,
        optimising_compiler=optimising_compiler,
    )
    node.prepare()
    command = node.java_command()
    os.execvp(command[0], command)


POSTGRES_PASSWORD_FILE = "postgres.password"
DATABASES_READY = "databases.ready"
# Over TCP only TLS, and only with a password (SCRAM); the superuser's socket is the data directory's.
HBA = """local all all scram-sha-256
hostssl all all 0.0.0.0/0 scram-sha-256
hostssl all all ::/0 scram-sha-256
hostnossl all all 0.0.0.0/0 reject
hostnossl all all ::/0 reject
"""


def service_passfile(private_dir: Path, database: str) -> Path:
    """The libpq password file of the service whose database this is (what its PGPASSFILE names)."""
    return private_dir / "postgres" / f"{database}.pgpass"


def database_server(
    data_dir: Annotated[Path, typer.Option(envvar="MAILLAGE_DATA_DIR", help="The server's cluster lives here.")],
    keys_dir: Annotated[
        Path, typer.Option(envvar="MAILLAGE_KEYS_DIR", help="The folder holding private/ and public/ keys.")
    ],
    port: Annotated[int, typer.Option(envvar="MAILLAGE_DATABASE_PORT")] = 5432,
    listen: Annotated[str, typer.Option(help="Listen on this address (`*`: every one).")] = "127.0.0.1",
    database: Annotated[
        list[str] | None,
        typer.Option(help="A service's database, created with a role of its own unless it exists (repeatable)."),
    ] = None,
    tls: Annotated[bool, typer.Option(help="Serve TLS with the certificate `postgres`; refuse TCP without it.")] = True,
) -> None:
    """Run the network's PostgreSQL server in the foreground (Debian's binaries), with its databases.

    Each database is owned by a login role of the same name, the only one (besides the superuser) that may
    connect to it: a service reaches its own database only. Passwords are made once and kept in the private
    key folder; each service's libpq password file is `postgres/<database>.pgpass` there (its PGPASSFILE):
    database URLs carry no password. `databases.ready` in the data directory says every database is there.
    """
    private = keys_dir / "private"
    password = ensure_secret(private / POSTGRES_PASSWORD_FILE, lambda: secrets.token_urlsafe(24))
    issued = TlsDirs.under(private, keys_dir / "public")
    ready = data_dir / DATABASES_READY
    ready.unlink(missing_ok=True)
    hba = data_dir / "pg_hba.conf" if tls else None
    if hba is not None:
        hba.write_text(HBA)
    server = LocalPostgres(
        data_dir=data_dir,
        port=port,
        password=password,
        tls=(issued.cert("postgres"), issued.key("postgres")) if tls else None,
        listen=listen,
        hba_file=hba,
    )
    process = server.launch(popen=subprocess.Popen)
    # SIGINT is PostgreSQL's fast shutdown (SIGTERM's smart one would wait for every client to leave).
    signal.signal(signal.SIGTERM, lambda *_: process.send_signal(signal.SIGINT))
    signal.signal(signal.SIGINT, lambda *_: process.send_signal(signal.SIGINT))
    try:
        server.wait_ready()
        for name in database or ():
            server.ensure_database(name)
            own = ensure_secret(private / "postgres" / f"{name}.password", lambda: secrets.token_urlsafe(24))
            server.ensure_owner_role(name, own)
            write_private(service_passfile(private, name), f"*:{port}:{name}:{name}:{own}\n".encode())
        ready.touch()
        typer.echo(f"PostgreSQL ready on port {port}: {', '.join(database or ()) or 'no database asked'}")
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        detail = exc.stderr.decode(errors="replace")[-500:] if isinstance(exc, subprocess.CalledProcessError) else exc
        typer.echo(f"PostgreSQL could not be prepared: {detail}", err=True)
        process.send_signal(signal.SIGINT)
    raise typer.Exit(process.wait())
