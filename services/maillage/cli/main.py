"""The `maillage` command."""

from __future__ import annotations

import logging
import os
import secrets
import signal
import sys
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from maillage.cli import schemas as schema_files
from maillage.cli.audit import audit_app, disclosures_app
from maillage.cli.broker import broker, database_server
from maillage.cli.clients import clients_app
from maillage.cli.db import db_app
from maillage.cli.operators import dlq_app
from maillage.cli.operators import stats as operator_stats
from maillage.cli.operators import status as operator_status
from maillage.cli.words import phrase
from maillage.cli.workers import operators_app, workers_app
from maillage.core.config.network import Network, load_network
from maillage.core.config.settings import DEFAULT_NETWORK
from maillage.core.crypto.keys import (
    KeyDirs,
    KeyUse,
    OwnKeys,
    PublicKeys,
    add_keys,
    ensure_keys,
    ensure_secret,
    retire_key,
)
from maillage.core.crypto.network_ca import CaError, TlsDirs, ensure_tls, request, sign_request
from maillage.core.crypto.tokens import Scope, mint
from maillage.core.storage.private import PRIVATE_UMASK

app = typer.Typer(no_args_is_help=True, help="Maillage: consented referrals and safety alerts between agencies.")
serve_app = typer.Typer(help="Run one service in the foreground (used by `maillage up`).")
app.add_typer(serve_app, name="serve")
app.add_typer(audit_app, name="audit")
app.add_typer(disclosures_app)
app.add_typer(dlq_app, name="dlq")
app.add_typer(db_app, name="db")
app.add_typer(clients_app, name="clients")
app.add_typer(workers_app, name="workers")
app.add_typer(operators_app, name="operators")
app.command("broker")(broker)
app.command("database-server")(database_server)
app.command("status")(operator_status)
app.command("stats")(operator_stats)
console = Console()


class UpDatabase(StrEnum):
    """Where `maillage up` keeps the services' databases."""

    SQLITE = "sqlite"
    POSTGRES = "postgres"


@app.callback()
def _private_by_default() -> None:
    # Whatever a command writes (keys, databases, logs, the local broker's segments) is its user's alone.
    os.umask(PRIVATE_UMASK)


NetworkOption = Annotated[
    Path, typer.Option("--network", envvar="MAILLAGE_NETWORK_FILE", help="The network file describing the Pôle.")
]
PortOption = Annotated[int | None, typer.Option("--port", help="Listen port (default: the network file's).")]
DataDirOption = Annotated[
    Path, typer.Option("--data-dir", envvar="MAILLAGE_DATA_DIR", help="Keys live in DATA_DIR/keys/{private,public}.")
]
HostOption = Annotated[str, typer.Option("--host", envvar="MAILLAGE_LISTEN_HOST", help="Listen address.")]


@serve_app.command("agency")
def serve_agency(agency_id: str, port: PortOption = None, host: HostOption = "127.0.0.1") -> None:
    """Run one agency's service."""
    from maillage.agency.app import create_app
    from maillage.agency.settings import AgencySettings
    from maillage.core.observability.logs import configure_logging
    from maillage.core.web.serving import serve

    settings = AgencySettings(agency_id=agency_id)
    configure_logging(settings.log_level, service=f"agency:{agency_id}")
    serve(create_app(settings), settings=settings, host=host, port=port or settings.network.agency(agency_id).port)


@serve_app.command("gateway")
def serve_gateway(port: PortOption = None, host: HostOption = "127.0.0.1") -> None:
    """Run the consent gateway."""
    from maillage.core.observability.logs import configure_logging
    from maillage.core.web.serving import serve
    from maillage.gateway.app import create_app
    from maillage.gateway.settings import GatewaySettings

    settings = GatewaySettings()
    configure_logging(settings.log_level, service="gateway")
    serve(create_app(settings), settings=settings, host=host, port=port or settings.network.gateway.port)


@serve_app.command("dispatcher")
def serve_dispatcher(port: PortOption = None, host: HostOption = "127.0.0.1") -> None:
    """Run the on-call dispatcher of the agencies with an on-call policy."""
    from maillage.core.observability.logs import configure_logging
    from maillage.core.web.serving import serve
    from maillage.dispatcher.app import UVICORN_OPTIONS, create_app
    from maillage.dispatcher.settings import DispatcherSettings

    settings = DispatcherSettings()
    configure_logging(settings.log_level, service="dispatcher")
    serve(
        create_app(settings),
        settings=settings,
        host=host,
        port=port or settings.network.dispatcher.port,
        **UVICORN_OPTIONS,
    )


@serve_app.command("monitor")
def serve_monitor(port: PortOption = None, host: HostOption = "127.0.0.1") -> None:
    """Run the operators' monitor (dashboard at /dashboard)."""
    from maillage.core.observability.logs import configure_logging
    from maillage.core.web.serving import serve
    from maillage.monitor.app import create_app
    from maillage.monitor.settings import MonitorSettings

    settings = MonitorSettings()
    configure_logging(settings.log_level, service="monitor")
    serve(create_app(settings), settings=settings, host=host, port=port or settings.network.monitor.port)


@app.command()
def topics(
    network: NetworkOption = DEFAULT_NETWORK,
    bootstrap: Annotated[str, typer.Option(envvar="MAILLAGE_KAFKA_BOOTSTRAP")] = "",
    admin_user: Annotated[
        str, typer.Option(envvar="MAILLAGE_KAFKA_ADMIN_USERNAME", help="A super user, on a cluster with ACLs.")
    ] = "admin",
) -> None:
    """Create the network's topics, or bring existing ones to the network file's configs: partitions and
    replication (new topics), min.insync.replicas and retention per topic kind (all of them).

    On a cluster with ACLs, the super user's password comes from MAILLAGE_KAFKA_ADMIN_PASSWORD.
    """
    import asyncio

    from maillage.cli.up import create_network_topics
    from maillage.core.messaging.kafka_auth import KafkaAuth

    net = load_network(network)
    password = os.environ.get("MAILLAGE_KAFKA_ADMIN_PASSWORD", "")
    auth = (
        KafkaAuth(username=admin_user, password=password, tls=net.kafka.tls, ca_file=net.ca_file) if password else None
    )
    names = asyncio.run(create_network_topics(net, bootstrap=bootstrap or net.kafka.bootstrap, auth=auth))
    console.print(f"{len(names)} topics present on {bootstrap or net.kafka.bootstrap}.")


@app.command()
def up(
    network: NetworkOption = DEFAULT_NETWORK,
    bootstrap: Annotated[
        str, typer.Option(envvar="MAILLAGE_KAFKA_BOOTSTRAP", help="Use this Kafka instead of starting a local one.")
    ] = "",
    data_dir: Annotated[Path, typer.Option(envvar="MAILLAGE_DATA_DIR")] = Path("var"),
    kafka_port: Annotated[int, typer.Option(help="Port of the local broker (of a cluster: its first port).")] = 19092,
    brokers: Annotated[
        int, typer.Option(min=1, help="Local brokers: 3 starts a KRaft cluster, topics replicated on all three.")
    ] = 1,
    gateways: Annotated[
        int,
        typer.Option(
            min=1,
            help="Gateway processes sharing the submitted topic's partitions (at most one per partition), "
            "one database; the first on the network file's port, the others on free ports.",
        ),
    ] = 1,
    shutdown_seconds: Annotated[
        float | None,
        typer.Option(
            min=0.1,
            help="Seconds from Ctrl-C to SIGKILL of what still runs (default: MAILLAGE_SHUTDOWN_SECONDS, else 10).",
        ),
    ] = None,
    database: Annotated[
        UpDatabase,
        typer.Option(
            envvar="MAILLAGE_UP_DATABASE",
            help="sqlite: a file per service in the data directory; postgres: a local PostgreSQL server under it, "
            "one database per service.",
        ),
    ] = UpDatabase.SQLITE,
) -> None:
    """Start the whole Pôle on this machine and keep it running (a crashed process is restarted);
    Ctrl-C stops everything it started."""
    from pydantic import ValidationError

    from maillage.cli.supervision import SupervisorSettings
    from maillage.cli.up import Supervisor
    from maillage.core.config.network import NetworkError
    from maillage.core.observability.logs import configure_logging
    from maillage.gateway.settings import GatewaySettings

    net = load_network(network)
    chosen = {"shutdown_seconds": shutdown_seconds} if shutdown_seconds is not None else {}
    try:
        settings = SupervisorSettings(**chosen)  # type: ignore[arg-type]
    except ValidationError as exc:
        console.print(f"Invalid setting: {exc}", markup=False, highlight=False)
        raise typer.Exit(2) from None
    if gateways > net.kafka.partitions:
        # A gateway without a partition would never be ready (readiness: every consumer has its partitions).
        console.print(f"[red]--gateways {gateways}: the submitted topic has {net.kafka.partitions} partitions.[/]")
        raise typer.Exit(2)
    if not (bootstrap or net.kafka.bootstrap):
        try:
            net = net.model_copy(update={"kafka": net.kafka.on_brokers(brokers)})
        except NetworkError as exc:
            console.print(f"[red]{exc}[/]")
            raise typer.Exit(2) from None
    supervisor = Supervisor(
        network=net,
        network_file=network.resolve(),
        data_dir=data_dir.resolve(),
        bootstrap=bootstrap or net.kafka.bootstrap,
        settings=settings,
        gateways=gateways,
    )
    configure_logging(service="up")
    logging.getLogger("httpx").setLevel("WARNING")  # not every readiness probe
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, supervisor.on_signal)
    try:
        with console.status("Starting Kafka…"):
            supervisor.start_kafka(port=kafka_port, brokers=brokers)
        if database is UpDatabase.POSTGRES:
            with console.status("Starting PostgreSQL…"):
                supervisor.start_postgres()
        with console.status("Creating topics, principals and ACLs, and starting services…"):
            supervisor.create_topics()
            supervisor.provision(gateway_transactional_id=GatewaySettings(network_file=network).transactional_prefix)
            supervisor.start_services()
            supervisor.wait_ready()
        _print_listening(supervisor)
        console.print(phrase("cli.up.ready", command="[bold]maillage demo[/]"))
        supervisor.supervise()
    except KeyboardInterrupt:
        pass
    except RuntimeError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None
    finally:
        with console.status("Stopping…"):
            killed = supervisor.stop()
        console.print(
            phrase("cli.up.stopped-killed", services=", ".join(killed)) if killed else phrase("cli.up.stopped")
        )


def _print_listening(supervisor: object) -> None:
    from maillage.cli.up import Supervisor

    assert isinstance(supervisor, Supervisor)
    table = Table(title=f"{supervisor.network.name} — listening")
    for column in ("service", "sector", "url", "pid"):
        table.add_column(column)
    table.add_row(
        "kafka",
        "",
        supervisor.bootstrap,
        " ".join(map(str, supervisor.kafka_pids)) or "external",
    )
    for service in supervisor.services:
        sector = supervisor.network.by_id[service.name].sector.value if service.name in supervisor.network.by_id else ""
        url = {
            "dispatcher": f"{service.url}/oncall (workers' page)",
            "monitor": f"{service.url}/dashboard (operators)",
        }.get(service.name, service.url)
        table.add_row(service.name, sector, url, str(service.process.pid if service.process else ""))
    console.print(table)


@app.command()
def demo(
    network: NetworkOption = DEFAULT_NETWORK,
    data_dir: DataDirOption = Path("var"),
    timeout: Annotated[
        float, typer.Option(min=1, help="Seconds each step may take (longer while a broker or gateway fails over).")
    ] = 20.0,
) -> None:
    """Play a short scenario against a running `maillage up` and show what each recipient received."""
    from maillage.cli.demo import Demo

    try:
        Demo(network=load_network(network), console=console, key_dirs=_key_dirs(data_dir), timeout=timeout).run()
    except Exception as exc:
        console.print(f"[red]{escape(phrase('cli.demo.failed', error=str(exc)))}[/]")
        raise typer.Exit(1) from None


@app.command()
def probe(
    url: Annotated[str, typer.Argument(help="A service's /readyz (or any GET), http:// or https://.")],
    network: NetworkOption = DEFAULT_NETWORK,
) -> None:
    """Exit 0 if the URL answers 200, trusting the network CA: a container's health check."""
    import httpx

    from maillage.core.crypto.network_ca import client_context

    try:
        answer = httpx.get(url, timeout=4.0, verify=client_context(load_network(network).ca_file), trust_env=False)
    except httpx.HTTPError as exc:
        console.print(f"{url}: {type(exc).__name__}")
        raise typer.Exit(1) from None
    console.print(f"{url}: {answer.status_code}")
    if answer.status_code != 200:
        raise typer.Exit(1)


@app.command()
def schemas(
    check: Annotated[bool, typer.Option(help="Only check that the folder is current.")] = False,
    directory: Annotated[Path, typer.Option("--dir", help="The schemas folder of a checkout.")] = Path("schemas"),
) -> None:
    """Write the JSON Schema of every event type, and the AsyncAPI document, generated from the models."""
    if check:
        stale = schema_files.stale(directory)
        if stale:
            console.print(f"[red]Stale schemas in {directory}:[/] {', '.join(stale)} — run `maillage schemas`.")
            raise typer.Exit(1)
        console.print(f"{directory} is current.")
        return
    for name in schema_files.write(directory):
        console.print(f"wrote {directory / name}")


@app.command()
def messages(
    check: Annotated[bool, typer.Option(help="Only check that the pages' messages files are current.")] = False,
) -> None:
    """Write the web pages' messages files (JSON) from the message catalogs, their single source."""
    from maillage.core.i18n import pages

    if check:
        outdated = pages.stale()
        if outdated:
            console.print(f"[red]{escape(phrase('cli.messages.stale', files=', '.join(map(str, outdated))))}[/]")
            raise typer.Exit(1)
        console.print(phrase("cli.messages.current"))
        return
    for path in pages.write():
        console.print(phrase("cli.messages.wrote", file=str(path)))


@app.command()
def bench(
    events: Annotated[int, typer.Option(help="Referral events for the throughput runs.")] = 20_000,
    rate: Annotated[
        list[float] | None,
        typer.Option(
            help="Referrals per second of a latency run and of the bare floor beside it (repeatable).", min=0.1
        ),
    ] = None,
    ladder: Annotated[
        list[float] | None,
        typer.Option(
            help="Rates climbed after the latency runs, until POST → inbox p99 exceeds 250 ms (repeatable). "
            "Default: 300, 400, 500, 600.",
            min=0.1,
        ),
    ] = None,
    climb: Annotated[
        bool, typer.Option(help="Climb the ladder of rates after the latency runs, to find where p99 exceeds 250 ms.")
    ] = True,
    duration: Annotated[float, typer.Option(help="Seconds of the latency run.")] = 10.0,
    warmup: Annotated[
        float, typer.Option(min=0, help="Seconds of referrals at each rate, not measured, before its latency run.")
    ] = 2.0,
    network: NetworkOption = DEFAULT_NETWORK,
    bootstrap: Annotated[
        str, typer.Option(envvar="MAILLAGE_KAFKA_BOOTSTRAP", help="Use this Kafka instead of starting a local one.")
    ] = "",
    out_dir: Annotated[Path, typer.Option(help="Where the JSON report goes.")] = Path("bench-results"),
    only: Annotated[
        list[str] | None,
        typer.Option(
            "--only",
            help="Run only these parts (repeatable): throughput, decision, floor, latency, oncall. "
            "Default: throughput, decision, floor and latency; oncall runs only when named.",
        ),
    ] = None,
    gateways: Annotated[
        int, typer.Option(min=1, help="Gateway processes deciding the records together (throughput).")
    ] = 2,
    workers: Annotated[int, typer.Option(min=1, help="On-call workers connected by WebSocket (oncall).")] = 500,
    alert_rate: Annotated[float, typer.Option(min=0.1, help="Alerts per second (oncall).")] = 20.0,
    oncall_duration: Annotated[
        float, typer.Option(min=1, help="Seconds of alerts measured (oncall), after a 2 s warm-up.")
    ] = 10.0,
    socket_processes: Annotated[
        int, typer.Option(min=1, help="Processes the workers' sockets are spread over (oncall).")
    ] = 2,
    ws_compression: Annotated[
        bool, typer.Option(help="Workers offer permessage-deflate, as browsers do (oncall).")
    ] = True,
    profile: Annotated[
        bool,
        typer.Option(
            "--profile", help="Also the CPU per referral of each process and the broker's requests per referral."
        ),
    ] = False,
) -> None:
    """Measure gateway throughput beside a bare Kafka passthrough, the gateway's own CPU per event without Kafka,
    referral latency beside the bare two-hop floor at each rate, and (--only oncall) alert latency to on-call
    workers' sockets."""
    from maillage.cli.bench.options import BenchOptions
    from maillage.cli.bench.run import PARTS, run_bench

    unknown = sorted(set(only or ()) - set(PARTS))
    if unknown:
        raise typer.BadParameter(
            f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}", param_hint="--only"
        )
    parts = tuple(p for p in PARTS if p in only) if only else BenchOptions.parts
    options = BenchOptions(
        events=events,
        rates=tuple(rate) if rate else BenchOptions.rates,
        ladder=(tuple(ladder) if ladder else BenchOptions.ladder) if climb else (),
        duration=duration,
        warmup=warmup,
        network_file=network,
        bootstrap=bootstrap,
        out_dir=out_dir,
        parts=parts,
        gateways=gateways,
        workers=workers,
        alert_rate=alert_rate,
        oncall_duration=oncall_duration,
        socket_processes=socket_processes,
        ws_compression=ws_compression,
        profile=profile,
    )
    _, path = run_bench(options, console=console)
    console.print(f"Report written to {path}")


@app.command()
def fuzz(
    network: NetworkOption = DEFAULT_NETWORK,
    data_dir: DataDirOption = Path("var"),
    requests: Annotated[int, typer.Option(min=1, help="Generated requests per service (at least).")] = 1000,
    seed: Annotated[int, typer.Option(help="Same seed, same requests (against the same data).")] = 0,
    agency: Annotated[
        list[str] | None, typer.Option(help="Fuzz only this agency's service (repeatable); default: every agency.")
    ] = None,
) -> None:
    """Send generated requests (schemathesis, from each service's published OpenAPI) to every service of a
    running `maillage up`, with a valid token; fail on any 5xx or any answer outside the published schema."""
    from maillage.cli.fuzz import fuzz_network, fuzz_table

    try:
        import schemathesis  # noqa: F401 — a test dependency, not the services'
    except ImportError:
        console.print("schemathesis is missing: pip install 'maillage[test]' (make installs it).")
        raise typer.Exit(2) from None
    net = load_network(network)
    for name in agency or ():
        if name not in net.by_id:
            raise typer.BadParameter(f"no agency {name!r} in the network file", param_hint="--agency")
    with console.status("Sending generated requests…") as status:
        reports = fuzz_network(
            net,
            _key_dirs(data_dir),
            requests=requests,
            seed=seed,
            agencies=tuple(agency or ()),
            on_report=lambda r: status.update(f"{r.service}: {r.requests} requests sent; next service…"),
        )
    console.print(fuzz_table(reports))
    for report in reports:
        if report.skipped:
            console.print(f"{report.service}: not fuzzed: {', '.join(report.skipped)}", markup=False)
        for line in report.samples:
            console.print(f"{report.service}: {line}", markup=False, highlight=False)
    if not all(r.ok for r in reports):
        raise typer.Exit(1)


@app.command()
def chaos(
    smoke: Annotated[
        bool,
        typer.Option(
            help="The short form CI runs: ~2,800 referrals, 3 gateway kills, a 20 s outage, a PostgreSQL restart, "
            "200 generated requests per service."
        ),
    ] = False,
    referrals: Annotated[
        int | None, typer.Option(min=1, help="Referrals over the gateway kills (default 100,000).")
    ] = None,
    kills: Annotated[int | None, typer.Option(min=0, help="Gateway SIGKILLs (default 20).")] = None,
    broker_referrals: Annotated[
        int | None, typer.Option(min=1, help="Referrals over the broker kill (default 10,000).")
    ] = None,
    outage_seconds: Annotated[
        float | None, typer.Option(min=1, help="How long the whole cluster stays stopped (default 60).")
    ] = None,
    rate: Annotated[float | None, typer.Option(min=0.1, help="Referrals per second (default 50).")] = None,
    drain_seconds: Annotated[
        float | None, typer.Option(min=1, help="Longest wait, after the last POST, for deliveries and statuses.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Chooses the people, the kill moments and the broker killed.")] = 12,
    data_dir: Annotated[
        Path, typer.Option(help="Each run's keys, databases, cluster and logs go in a folder under this.")
    ] = Path("var/chaos"),
    gateways: Annotated[
        int,
        typer.Option(min=1, help="Gateway processes; the kills hit the first while the others take its partitions."),
    ] = 1,
) -> None:
    """Fault the Pôle under load — a 3-node cluster, the gateway and two agencies — and print what held:
    referrals lost, duplicated, answered otherwise than 2xx or a 503 with Retry-After. Exits 1 if any."""
    import dataclasses

    from maillage.cli.chaos.run import run_chaos
    from maillage.cli.chaos.scenarios import Plan, scenarios

    base = Plan.smoke() if smoke else Plan()
    given: dict[str, Any] = {
        "gateway_referrals": referrals,
        "gateway_kills": kills,
        "broker_referrals": broker_referrals,
        "outage_seconds": outage_seconds,
        "rate": rate,
        "drain_seconds": drain_seconds,
    }
    plan = dataclasses.replace(base, **{k: v for k, v in given.items() if v is not None})
    try:
        figures = run_chaos(plan, scenarios(), data_dir=data_dir, seed=seed, console=console, gateways=gateways)
    except RuntimeError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None
    failing = [f.scenario for f in figures if f.ran and not f.holds]
    if failing:
        console.print(f"[red]Failed: {', '.join(failing)}[/]")
        raise typer.Exit(1)


acl_app = typer.Typer(help="Kafka principals and their least-privilege ACLs, from the network file.")
app.add_typer(acl_app, name="acl")


@acl_app.command("apply")
def acl_apply(
    admin_password: Annotated[
        str,
        typer.Option(
            envvar="MAILLAGE_KAFKA_ADMIN_PASSWORD",
            prompt=True,
            hide_input=True,
            help="The super user's password: from the environment or the prompt, not the command line.",
        ),
    ],
    admin_user: Annotated[
        str, typer.Option(envvar="MAILLAGE_KAFKA_ADMIN_USERNAME", help="A super user of the cluster.")
    ] = "admin",
    network: NetworkOption = DEFAULT_NETWORK,
    bootstrap: Annotated[str, typer.Option(envvar="MAILLAGE_KAFKA_BOOTSTRAP")] = "",
    keys_dir: Annotated[
        Path | None, typer.Option(help="Private key directory, outside git (default: $MAILLAGE_DATA_DIR/keys/private).")
    ] = None,
) -> None:
    """Create a SCRAM-SHA-512 principal per agency and for the gateway, and their ACLs. Idempotent.

    Passwords: generated on first use, kept (mode 0600) in KEYS_DIR/<principal>/kafka.password, never printed.

    A service connects as MAILLAGE_KAFKA_USERNAME=<principal>, MAILLAGE_KAFKA_PASSWORD=<that file's content>.
    """
    import asyncio

    from maillage.cli.acl import AccessError, apply_access
    from maillage.core.messaging.kafka_auth import KafkaAuth
    from maillage.gateway.settings import GatewaySettings

    settings = GatewaySettings(network_file=network)
    try:
        files = asyncio.run(
            apply_access(
                settings.network,
                settings.topics,
                bootstrap=bootstrap or settings.bootstrap,
                admin=KafkaAuth(
                    username=admin_user,
                    password=admin_password,
                    tls=settings.network.kafka.tls,
                    ca_file=settings.network.ca_file,
                ),
                private_dir=keys_dir or settings.data_dir / "keys" / "private",
                gateway_transactional_id=settings.transactional_prefix,
            )
        )
    except AccessError as exc:
        console.print(f"[red]Kafka refused the provisioning:[/] {exc}", markup=True, highlight=False)
        raise typer.Exit(1) from None
    table = Table("principal", "password file")
    for principal, path in files.items():
        table.add_row(f"User:{principal}", str(path))
    console.print(table)


keys_app = typer.Typer(help="Signing, sealing and token keys of the gateway and every agency.")
app.add_typer(keys_app, name="keys")


def _key_dirs(data_dir: Path) -> KeyDirs:
    return KeyDirs(private=data_dir / "keys" / "private", public=data_dir / "keys" / "public")


@keys_app.command("init")
def keys_init(
    network: NetworkOption = DEFAULT_NETWORK,
    data_dir: DataDirOption = Path("var"),
    tls_host: Annotated[
        list[str] | None,
        typer.Option(
            help="NAME=HOST: one more name a service, broker (kafka-1, …) or the database server (postgres) is "
            "reached at, besides those of its URLs in the network file (repeatable)."
        ),
    ] = None,
    brokers: Annotated[int, typer.Option(min=0, help="Kafka brokers to issue certificates for (kafka-1, …).")] = 3,
    ca_cert: Annotated[
        Path | None, typer.Option(help="The operator's CA certificate (PEM), instead of a new CA.")
    ] = None,
    ca_key: Annotated[Path | None, typer.Option(help="That CA's private key (PEM, unencrypted).")] = None,
    owner: Annotated[
        str | None,
        typer.Option(
            help="Only this agency's (or service's) keys, made on its own machine: its TLS key and a certificate "
            "request for the operator (`maillage keys sign`) when the CA is not here."
        ),
    ] = None,
) -> None:
    """Create keys for the gateway and every agency of the network that has none yet; the network's TLS — a
    CA (or the operator's) and a certificate for every service, broker and the database server, each valid for
    its own names only — and the Kafka cluster's id and super user's password, which every broker shares."""
    from maillage.cli.broker import CLUSTER_ID_FILE
    from maillage.cli.kafka_local import ADMIN_PASSWORD_FILE, new_cluster_id

    if (ca_cert is None) != (ca_key is None):
        console.print("[red]--ca-cert and --ca-key go together.[/]")
        raise typer.Exit(2)
    net = load_network(network)
    hosts = {name: list(names) for name, names in net.tls_hosts(brokers=brokers).items()}
    for extra in tls_host or ():
        name, _, host = extra.partition("=")
        if name not in hosts or not host:
            console.print(f"[red]--tls-host {escape(extra)}: NAME=HOST, NAME one of {', '.join(hosts)}.[/]")
            raise typer.Exit(2)
        hosts[name].append(host)
    dirs = _key_dirs(data_dir)
    if owner is not None:
        _keys_init_one(owner, net, dirs, hosts)
        return
    created = ensure_keys(dirs, net.key_owners)
    console.print(f"created keys for: {', '.join(created) or 'nobody (all present)'}")
    tls = TlsDirs.under(dirs.private, dirs.public)
    try:
        issued = ensure_tls(tls, hosts, ca=(ca_cert, ca_key) if ca_cert and ca_key else None)
    except CaError as exc:
        console.print(f"[red]{escape(str(exc))}[/]")
        raise typer.Exit(1) from None
    if brokers:
        ensure_secret(dirs.private / CLUSTER_ID_FILE, new_cluster_id)
        ensure_secret(dirs.private / ADMIN_PASSWORD_FILE, lambda: secrets.token_urlsafe(32))
    console.print(f"TLS certificates issued for: {', '.join(issued) or 'nobody (all present)'}")
    console.print(f"the network CA's certificate (the network file's ca_file): {tls.ca_cert}")
    console.print(f"private keys (mode 0600, keep out of git): {dirs.private}")


def _keys_init_one(owner: str, net: Network, dirs: KeyDirs, hosts: dict[str, list[str]]) -> None:
    if owner not in hosts:
        console.print(f"[red]{escape(owner)} is not a service of this network: one of {', '.join(hosts)}.[/]")
        raise typer.Exit(2)
    uses = net.key_owners.get(owner)
    created = ensure_keys(dirs, {owner: uses}) if uses else []
    console.print(f"created keys for: {', '.join(created) or 'nobody (all present)'}")
    tls = TlsDirs.under(dirs.private, dirs.public)
    if tls.ca_key.exists():
        issued = ensure_tls(tls, {owner: hosts[owner]})
        console.print(f"TLS certificate issued for: {', '.join(issued) or 'nobody (present)'}")
        return
    csr = request(tls, owner)
    console.print(
        f"Your TLS key stays here ({tls.key(owner)}). Send the request {csr} to the network's operator "
        f"(`maillage keys sign --csr {csr.name}`) and put the certificate chain it returns at {tls.cert(owner)}, "
        f"the network CA's certificate at {tls.ca_cert}. Your public keys are published by your service at its "
        "JWKS URL: nothing else to send."
    )


@keys_app.command("sign")
def keys_sign(
    csr: Annotated[Path, typer.Option(help="A certificate request made by `maillage keys init --owner ID`.")],
    network: NetworkOption = DEFAULT_NETWORK,
    data_dir: DataDirOption = Path("var"),
    brokers: Annotated[int, typer.Option(min=0, help="Kafka brokers of the network (kafka-1, …).")] = 3,
    out: Annotated[
        Path | None, typer.Option(help="Where the certificate chain goes (default: beside the request).")
    ] = None,
) -> None:
    """Issue, with the network CA, the certificate a service asked for: valid for the names the network file
    gives that service (whatever the request asks), 825 days at most."""
    dirs = _key_dirs(data_dir)
    tls = TlsDirs.under(dirs.private, dirs.public)
    hosts = load_network(network).tls_hosts(brokers=brokers)
    try:
        name, chain = sign_request(tls, csr.read_bytes(), hosts)
    except (CaError, OSError) as exc:
        console.print(f"[red]{escape(str(exc))}[/]")
        raise typer.Exit(1) from None
    target = out or csr.with_suffix(".pem")
    target.write_bytes(chain)
    console.print(f"certificate for {name} ({', '.join(hosts[name]) or 'loopback only'}): {target}")


@keys_app.command("rotate")
def keys_rotate(
    agency: Annotated[str, typer.Option(help="Agency id, `gateway`, or the operators' issuer.")],
    data_dir: DataDirOption = Path("var"),
) -> None:
    """Add a new key of each use; the old key ids stay accepted until retired."""
    for kid in add_keys(_key_dirs(data_dir), agency):
        console.print(f"added {kid}")


@keys_app.command("retire")
def keys_retire(
    agency: Annotated[str, typer.Option(help="Agency id, `gateway`, or the operators' issuer.")],
    kid: Annotated[str, typer.Option(help="The key id to stop accepting.")],
    data_dir: DataDirOption = Path("var"),
) -> None:
    """Stop accepting one key id (the newest key of each use cannot be retired). Running services refuse it,
    and close the live streams opened with it, within MAILLAGE_KEY_REFRESH_SECONDS (60 s by default)."""
    try:
        retire_key(_key_dirs(data_dir), agency, kid)
    except LookupError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None
    console.print(f"retired {kid}")


OPERATOR_SCOPES = frozenset({Scope.MONITOR_READ, Scope.MONITOR_ACT})


@app.command()
def token(
    scope: Annotated[list[Scope], typer.Option(help="Repeat for several scopes.")],
    agency: Annotated[str | None, typer.Option(help="The agency whose partner system (or worker) holds it.")] = None,
    operator: Annotated[
        bool,
        typer.Option(
            "--operator",
            help="An operator's token, from the operators' issuer of the network file (monitor scopes only).",
        ),
    ] = False,
    subject: Annotated[str, typer.Option(help="Who holds it (a system or worker id).")] = "dev",
    minutes: Annotated[int, typer.Option(min=1, max=60, help="Lifetime, one hour at most.")] = 60,
    network: NetworkOption = DEFAULT_NETWORK,
    data_dir: DataDirOption = Path("var"),
) -> None:
    """Mint a development token signed with the agency's (or the operators') token key, printed on stdout.

    Its audience is the services its scopes are used at: the agency's own service, the gateway (audit:read),
    the dispatcher (alerts:ack), the monitor (monitor:*)."""
    if operator == (agency is not None):
        raise typer.BadParameter("name one issuer: --agency ID or --operator", param_hint="--agency/--operator")
    if (set(scope) - OPERATOR_SCOPES) if operator else (set(scope) & OPERATOR_SCOPES):
        raise typer.BadParameter(
            "monitor scopes come from the operators' issuer only (--operator), and it grants nothing else",
            param_hint="--scope",
        )
    owner = load_network(network).operators.issuer if operator else str(agency)
    dirs = _key_dirs(data_dir)
    try:
        own = OwnKeys.load(dirs, owner, PublicKeys.load(dirs), uses=frozenset({KeyUse.TOKENS}))
    except LookupError as exc:
        console.print(f"[red]{escape(phrase('cli.token.keys-first', error=str(exc)))}[/]", highlight=False)
        raise typer.Exit(1) from None
    typer.echo(mint(own, subject=subject, scopes=scope, lifetime=timedelta(minutes=minutes)))


if __name__ == "__main__":
    sys.exit(app())
