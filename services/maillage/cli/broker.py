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

from maillage.cli.kafka_local import LOG4J_CONSOLE, BrokerTls, LocalKafka, Quorum, ScramSetup, new_cluster_id
from maillage.cli.postgres_local import SUPERUSER, LocalPostgres
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
) -> None:
    """Run one node of the network's Kafka cluster (SASL/SCRAM, ACLs, TLS) in the foreground."""
    private, public = keys_dir / "private", keys_dir / "public"
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
    )
    node.prepare()
    command = node.java_command()
    os.execvp(command[0], command)


POSTGRES_PASSWORD_FILE = "postgres.password"
POSTGRES_PASSFILE = "postgres.pgpass"


def database_server(
    data_dir: Annotated[Path, typer.Option(envvar="MAILLAGE_DATA_DIR", help="The server's cluster lives here.")],
    keys_dir: Annotated[
        Path, typer.Option(envvar="MAILLAGE_KEYS_DIR", help="The folder holding private/ and public/ keys.")
    ],
    port: Annotated[int, typer.Option(envvar="MAILLAGE_DATABASE_PORT")] = 5432,
    database: Annotated[
        list[str] | None, typer.Option(help="A database the services need, created unless it exists (repeatable).")
    ] = None,
    tls: Annotated[bool, typer.Option(help="Serve TLS with the certificate `postgres` of the network CA.")] = True,
) -> None:
    """Run the network's PostgreSQL server in the foreground (Debian's binaries), with its databases.

    The superuser's password is made once and kept in the private key folder, with a libpq password file
    (postgres.pgpass) the services name in PGPASSFILE: their database URLs carry no password.
    """
    private = keys_dir / "private"
    password = ensure_secret(private / POSTGRES_PASSWORD_FILE, lambda: secrets.token_urlsafe(24))
    write_private(private / POSTGRES_PASSFILE, f"*:{port}:*:{SUPERUSER}:{password}\n".encode())
    issued = TlsDirs.under(private, keys_dir / "public")
    server = LocalPostgres(
        data_dir=data_dir,
        port=port,
        password=password,
        tls=(issued.cert("postgres"), issued.key("postgres")) if tls else None,
    )
    process = server.launch(popen=subprocess.Popen)
    signal.signal(signal.SIGTERM, lambda *_: process.terminate())
    signal.signal(signal.SIGINT, lambda *_: process.terminate())
    try:
        server.wait_ready()
        for name in database or ():
            server.ensure_database(name)
        typer.echo(f"PostgreSQL ready on port {port}: {', '.join(database or ()) or 'no database asked'}")
    except RuntimeError as exc:
        typer.echo(str(exc), err=True)
        process.terminate()
    raise typer.Exit(process.wait())
