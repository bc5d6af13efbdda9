"""Operators' commands: `maillage status` (services, backlog, lag), `maillage dlq list|replay` and `maillage stats`."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

from maillage.cli.credentials import TokenFileOption, bearer_token, scrape_secret
from maillage.cli.words import phrase
from maillage.core.config.network import Network, NetworkError, load_network
from maillage.core.config.settings import DEFAULT_NETWORK
from maillage.core.crypto.network_ca import client_context
from maillage.core.i18n import environment_language

console = Console()
NetworkOption = Annotated[
    Path, typer.Option("--network", envvar="MAILLAGE_NETWORK_FILE", help="The network file describing the Pôle.")
]
BACKLOG = re.compile(r'^maillage_outbox_backlog\{service="([^"]+)"\} ([0-9.e+]+)$', re.MULTILINE)

dlq_app = typer.Typer(help="Dead letters: what no service could process, and replaying them.")


def _services(network: Network) -> list[tuple[str, str, int, str]]:
    services = [("gateway", "", network.gateway.port, network.gateway.base_url)]
    services += [(a.id, a.sector.value, a.port, a.base_url) for a in network.agencies]
    if network.dispatched:
        services.append(("dispatcher", "", network.dispatcher.port, network.dispatcher.base_url))
    services.append(("monitor", "", network.monitor.port, network.monitor.base_url))
    return services


def _probe(client: httpx.Client, base: str, *, scrape: str | None) -> tuple[str, str]:
    try:
        ready = client.get(f"{base}/readyz").status_code == 200
        answer = client.get(f"{base}/metrics", headers={"Authorization": f"Bearer {scrape}"} if scrape else {})
        metrics = answer.text if answer.status_code == 200 else ""
    except httpx.HTTPError:
        return "[red]down[/]", ""
    backlog = sum(float(value) for _, value in BACKLOG.findall(metrics))
    return ("[green]ready[/]" if ready else "[yellow]starting[/]"), (
        f"{backlog:.0f}" if BACKLOG.search(metrics) else ""
    )


def status(
    network_file: NetworkOption = DEFAULT_NETWORK,
    bootstrap: Annotated[str, typer.Option(envvar="MAILLAGE_KAFKA_BOOTSTRAP", help="The network's Kafka.")] = "",
    data_dir: Annotated[
        Path,
        typer.Option(
            envvar="MAILLAGE_DATA_DIR",
            help="Where `maillage up` keeps the metrics' scrape secret and the monitor's Kafka password.",
        ),
    ] = Path("var"),
) -> None:
    """Every service (ready or not, outbox backlog) and every consumer group's lag, as tables."""
    from maillage.cli.acl import MONITOR_PRINCIPAL, load_kafka_auth, password_file
    from maillage.monitor.lag import consumer_lag

    network = load_network(network_file)
    table = Table(title=f"{network.name} — services")
    for column in ("service", "sector", "port", "state", "outbox backlog"):
        table.add_column(column, justify="right" if column in ("port", "outbox backlog") else "left")
    services = _services(network)
    client = httpx.Client(timeout=2, verify=client_context(network.ca_file))
    with Progress(console=console, transient=True) as progress, client:
        task = progress.add_task(phrase("cli.status.asking"), total=len(services))
        for name, sector, port, base in services:
            state, backlog = _probe(client, base, scrape=scrape_secret(data_dir))
            table.add_row(name, sector, str(port), state, backlog)
            progress.advance(task)
    console.print(table)
    broker = bootstrap or network.kafka.bootstrap
    if not broker:
        console.print(phrase("cli.status.no-broker"))
        return
    try:
        with console.status(phrase("cli.status.reading-lag")):
            private = data_dir / "keys" / "private"
            # On a secure broker, lag is read as the monitor reads it: its principal may describe every group.
            auth = (
                load_kafka_auth(private, MONITOR_PRINCIPAL, network=network)
                if password_file(private, MONITOR_PRINCIPAL).exists()
                else None
            )
            lags = asyncio.run(consumer_lag(broker, prefix=network.kafka.topic_prefix, auth=auth))
    except Exception as exc:  # an unreachable broker is an answer too
        console.print(f"[red]{phrase('cli.status.lag-unavailable', error=type(exc).__name__)}[/]")
        raise typer.Exit(1) from None
    lag_table = Table(title="consumer lag")
    for column in ("group", "topic", "partitions", "lag"):
        lag_table.add_column(column, justify="right" if column in ("partitions", "lag") else "left")
    prefix = network.kafka.topic_prefix
    for g in lags:
        lag_table.add_row(
            g.group.removeprefix(prefix),
            g.topic.removeprefix(prefix),
            str(g.partitions),
            f"[red]{g.lag}[/]" if g.lag else "0",
        )
    console.print(lag_table)


def _monitor_client(network_file: Path, monitor: str, token_file: Path | None) -> httpx.Client:
    token = bearer_token(token_file)
    if not token:
        console.print(f"[red]{escape(phrase('cli.operator-token-needed'))}[/]")
        raise typer.Exit(2)
    try:
        network: Network | None = load_network(network_file)
    except NetworkError:
        if not monitor:
            raise
        network = None  # the URL is given: the system's CAs are trusted
    base = monitor or (network.monitor.base_url if network else "")
    return httpx.Client(
        base_url=base,
        # The monitor's refusals are shown as they come: in the terminal's language.
        headers={"Authorization": f"Bearer {token}", "Accept-Language": environment_language()},
        timeout=30,
        verify=client_context(network.ca_file if network else None),
    )


def _refused(response: httpx.Response) -> str:
    try:
        body: dict[str, Any] = response.json()
        return f"{body.get('title', response.status_code)}: {body.get('detail', '')}"
    except ValueError:
        return f"HTTP {response.status_code}"


MonitorOption = Annotated[str, typer.Option(help="The monitor's URL (default: the network file's port).")]


@dlq_app.command("list")
def dlq_list(
    token_file: TokenFileOption = None,
    network_file: NetworkOption = DEFAULT_NETWORK,
    monitor: MonitorOption = "",
    waiting: Annotated[bool, typer.Option(help="Only those not replayed yet.")] = False,
) -> None:
    """The dead letters: when, which service refused what, and why (never their content)."""
    with _monitor_client(network_file, monitor, token_file) as client:
        response = client.get("/v1/dead-letters", params={"waiting": waiting})
    if response.status_code != 200:
        console.print(f"[red]{escape(_refused(response))}[/]")
        raise typer.Exit(1)
    rows = response.json()["items"]
    table = Table(title=phrase("cli.dlq.title", count=len(rows)))
    for column in ("id", "at", "refused by", "reason", "detail", "event type", "source", "replayed"):
        table.add_column(column)
    for d in rows:
        replayed = (
            phrase("cli.dlq.replayed-times", count=d["replays"])
            if d["replays"]
            else ("" if d["replayable"] else phrase("cli.dlq.at-the-source"))
        )
        table.add_row(
            str(d["id"]),
            d["at"][:19],
            d["service"],
            d["reason"],
            d["detail"][:60],
            d["event_type"] or "",
            d["source"] or "",
            replayed,
        )
    console.print(table)


@dlq_app.command("replay")
def dlq_replay(
    ids: Annotated[list[int] | None, typer.Argument(help="Dead letter ids (see `maillage dlq list`).")] = None,
    reason: Annotated[str, typer.Option(help="Or: every waiting dead letter with this reason.")] = "",
    token_file: TokenFileOption = None,
    network_file: NetworkOption = DEFAULT_NETWORK,
    monitor: MonitorOption = "",
) -> None:
    """Publish dead letters again to the topic they came from; the service decides them anew."""
    with _monitor_client(network_file, monitor, token_file) as client:
        chosen = list(ids or [])
        if reason:
            waiting = client.get("/v1/dead-letters", params={"waiting": True, "limit": 1000})
            if waiting.status_code != 200:
                console.print(f"[red]{escape(_refused(waiting))}[/]")
                raise typer.Exit(1)
            chosen += [d["id"] for d in waiting.json()["items"] if d["reason"] == reason and d["replayable"]]
        if not chosen:
            console.print(phrase("cli.dlq.nothing"))
            return
        failed = 0
        with Progress(console=console) as progress:
            task = progress.add_task(phrase("cli.dlq.replaying"), total=len(chosen))
            for dead_letter_id in chosen:
                response = client.post(f"/v1/dead-letters/{dead_letter_id}/replay")
                if response.status_code != 202:
                    failed += 1
                    progress.console.print(f"[red]{dead_letter_id}: {escape(_refused(response))}[/]")
                progress.advance(task)
    console.print(phrase("cli.dlq.replayed", done=len(chosen) - failed, total=len(chosen)))
    if failed:
        raise typer.Exit(1)


WITHHELD = "—"


def stats(
    quarter: Annotated[str, typer.Option(help="A closed quarter, as 2026-Q4 (default: the last closed one).")] = "",
    pole: Annotated[str, typer.Option(help="One Pôle (default: every Pôle).")] = "",
    csv_file: Annotated[
        Path | None, typer.Option("--csv", dir_okay=False, help="Write the figures to this CSV file instead.")
    ] = None,
    threshold: Annotated[
        int | None, typer.Option(min=2, help="Withhold counts below this (never below the network file's).")
    ] = None,
    language: Annotated[str, typer.Option(help="Words in en, fr, nl or de.")] = "en",
    token_file: TokenFileOption = None,
    network_file: NetworkOption = DEFAULT_NETWORK,
    monitor: MonitorOption = "",
) -> None:
    """The Pôles' figures for public policy, per Pôle and quarter, from the monitor (monitor:read): every count
    below the threshold withheld, and every figure from which one could be worked out."""
    params = {k: v for k, v in {"quarter": quarter, "pole": pole, "threshold": threshold}.items() if v}
    with _monitor_client(network_file, monitor, token_file) as client:
        response = client.get(
            "/v1/stats.csv" if csv_file else "/v1/stats", params=params, headers={"Accept-Language": language}
        )
    if response.status_code != 200:
        console.print(f"[red]{_refused(response)}[/]")
        raise typer.Exit(1)
    if csv_file is not None:
        csv_file.write_bytes(response.content)
        console.print(f"Written: {csv_file}")
        return
    _print_stats(response.json(), language=language)


def _print_stats(found: dict[str, Any], *, language: str) -> None:
    from maillage.core.i18n import translate

    def word(key: str, **fields: Any) -> str:
        return translate(language, key, domain="stats", **fields)

    def label(code: str) -> str:
        text = word(f"label.{code}")
        return code if text == f"label.{code}" else text

    def shown(value: float | None) -> str:
        return WITHHELD if value is None else f"{value:g}"

    def seconds(value: float | None) -> str:
        return WITHHELD if value is None else word("page.seconds", value=f"{value:g}")

    if not found["poles"]:
        console.print(word("page.empty"))
    for pole in found["poles"]:
        console.rule(word("page.pole-quarter", pole=pole["pole"], quarter=pole["quarter"]))
        for t in pole["tables"]:
            if not t["rows"]:
                continue
            table = Table(title=word(f"table.{t['name']}"), title_justify="left")
            table.add_column("")
            for column in [*t["columns"], "total"]:
                table.add_column(label(column), justify="right")
            for row, cells, total in zip(t["rows"], t["cells"], t["row_totals"], strict=True):
                table.add_row(label(row), *map(shown, cells), shown(total))
            table.add_row(label("total"), *map(shown, t["column_totals"]), shown(t["total"]), style="bold")
            console.print(table)
        if pole["acknowledgement"]:
            timing = Table(title=word("table.time_to_acknowledge"), title_justify="left")
            timing.add_column("")
            for column in ("acknowledged", "median_seconds", "p90_seconds"):
                timing.add_column(label(column), justify="right")
            for line in pole["acknowledgement"]:
                timing.add_row(
                    label(line["severity"]),
                    shown(line["acknowledged"]),
                    seconds(line["median_seconds"]),
                    seconds(line["p90_seconds"]),
                )
            console.print(timing)
    console.print(escape(word("page.legend", threshold=found["threshold"])))
