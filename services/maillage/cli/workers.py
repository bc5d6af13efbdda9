"""`maillage workers` and `maillage operators`: people signed in on a page with an invitation (on-call workers
at the dispatcher, operators at the monitor), and signed out."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.console import Console
from rich.markup import escape

from maillage.cli.words import phrase
from maillage.core.config.network import NetworkError, load_network
from maillage.core.config.settings import DEFAULT_NETWORK
from maillage.core.crypto.keys import KeyDirs, KeyUse, OwnKeys, PublicKeys
from maillage.core.crypto.network_ca import client_context
from maillage.core.crypto.tokens import DISPATCHER_AUDIENCE, MONITOR_AUDIENCE, Scope, mint

workers_app = typer.Typer(help="On-call workers: sign-in invitations, and ending their sessions.", no_args_is_help=True)
operators_app = typer.Typer(
    help="Operators: dashboard sign-in invitations (from the operators' issuer), and ending their sessions.",
    no_args_is_help=True,
)
console = Console()

INVITATION_MINUTES = 15
AgencyOption = Annotated[str, typer.Option("--agency", help="The worker's agency (its token key signs).")]
WorkerOption = Annotated[str, typer.Option("--worker", help="The worker's id, as the agency's on-call rota names it.")]
NetworkOption = Annotated[Path, typer.Option("--network", envvar="MAILLAGE_NETWORK_FILE", help="The network file.")]
DataDirOption = Annotated[Path, typer.Option("--data-dir", envvar="MAILLAGE_DATA_DIR", help="Where the keys are.")]
DispatcherOption = Annotated[
    str | None,
    typer.Option(
        "--dispatcher",
        envvar="MAILLAGE_DISPATCHER_URL",
        show_default=False,
        help="The dispatcher's base URL (default: http://127.0.0.1:PORT, PORT from the network file).",
    ),
]


def _token_keys(data_dir: Path, agency: str) -> OwnKeys:
    dirs = KeyDirs(private=data_dir / "keys" / "private", public=data_dir / "keys" / "public")
    try:
        return OwnKeys.load(dirs, agency, PublicKeys.load(dirs), uses=frozenset({KeyUse.TOKENS}))
    except LookupError as exc:
        console.print(f"[red]{escape(phrase('cli.keys-needed', error=str(exc)))}[/]", highlight=False)
        raise typer.Exit(2) from None


MonitorOption = Annotated[
    str | None,
    typer.Option(
        "--monitor",
        envvar="MAILLAGE_MONITOR_URL",
        show_default=False,
        help="The monitor's base URL (default: http://127.0.0.1:PORT, PORT from the network file).",
    ),
]
OperatorOption = Annotated[str, typer.Option("--operator", help="The operator's name, as the operators know them.")]


def _dispatcher_url(dispatcher: str | None, network: Path) -> str:
    return (dispatcher or load_network(network).dispatcher.base_url).rstrip("/")


def _monitor_url(monitor: str | None, network: Path) -> str:
    return (monitor or load_network(network).monitor.base_url).rstrip("/")


def _invitation(keys: OwnKeys, *, subject: str, scopes: list[Scope], audience: str) -> str:
    """A one-time sign-in token: 15 minutes, for one service, with an id the service records when it is used."""
    return mint(
        keys,
        subject=subject,
        scopes=scopes,
        lifetime=timedelta(minutes=INVITATION_MINUTES),
        audience=audience,
        token_id=str(uuid.uuid4()),
    )


def _end_sessions(url: str, token: str, *, who: str, network: Path) -> None:
    try:
        ca_file = load_network(network).ca_file
    except NetworkError:
        ca_file = None  # a URL given without a network file: the system's CAs
    verify = client_context(ca_file)
    try:
        response = httpx.delete(
            url, headers={"Authorization": f"Bearer {token}"}, timeout=10.0, trust_env=False, verify=verify
        )
    except httpx.HTTPError as exc:
        console.print(f"[red]{phrase('cli.unreachable', error=type(exc).__name__)}[/]")
        raise typer.Exit(2) from None
    if not response.is_success:
        console.print(f"[red]{phrase('cli.service-refused', status=response.status_code)}[/]")
        raise typer.Exit(2)
    console.print(escape(phrase("cli.sessions-ended", count=response.json()["ended"], who=who)), highlight=False)


@workers_app.command("invite")
def invite(
    agency: AgencyOption,
    worker: WorkerOption,
    dispatcher: DispatcherOption = None,
    network: NetworkOption = DEFAULT_NETWORK,
    data_dir: DataDirOption = Path("var"),
) -> None:
    """A sign-in link for one worker, good once and for 15 minutes: opened on their phone, it signs them in on
    the on-call page for their shift. Send it over a channel you trust (it is as good as a password until used)."""
    keys = _token_keys(data_dir, agency)
    invitation = _invitation(keys, subject=worker, scopes=[Scope.ALERTS_ACK], audience=DISPATCHER_AUDIENCE)
    console.print(f"{_dispatcher_url(dispatcher, network)}/oncall#invitation={invitation}", soft_wrap=True)


@workers_app.command("revoke")
def revoke(
    agency: AgencyOption,
    worker: WorkerOption,
    dispatcher: DispatcherOption = None,
    network: NetworkOption = DEFAULT_NETWORK,
    data_dir: DataDirOption = Path("var"),
) -> None:
    """End every session of one worker now: their page signs out, their streams close."""
    token = mint(_token_keys(data_dir, agency), subject="maillage-workers", scopes=[Scope.ONCALL_MANAGE])
    _end_sessions(
        f"{_dispatcher_url(dispatcher, network)}/v1/workers/{worker}/sessions", token, who=worker, network=network
    )


@operators_app.command("invite")
def invite_operator(
    operator: OperatorOption,
    act: Annotated[
        bool, typer.Option("--act", help="Also replay dead letters (monitor:act); reading only without it.")
    ] = False,
    monitor: MonitorOption = None,
    network: NetworkOption = DEFAULT_NETWORK,
    data_dir: DataDirOption = Path("var"),
) -> None:
    """A dashboard sign-in link for one operator, good once and for 15 minutes (signed by the operators' issuer)."""
    keys = _token_keys(data_dir, load_network(network).operators.issuer)
    scopes = [Scope.MONITOR_READ, *([Scope.MONITOR_ACT] if act else [])]
    invitation = _invitation(keys, subject=operator, scopes=scopes, audience=MONITOR_AUDIENCE)
    console.print(f"{_monitor_url(monitor, network)}/dashboard#invitation={invitation}", soft_wrap=True)


@operators_app.command("revoke")
def revoke_operator(
    operator: OperatorOption,
    monitor: MonitorOption = None,
    network: NetworkOption = DEFAULT_NETWORK,
    data_dir: DataDirOption = Path("var"),
) -> None:
    """End every dashboard session of one operator now."""
    keys = _token_keys(data_dir, load_network(network).operators.issuer)
    token = mint(keys, subject="maillage-operators", scopes=[Scope.MONITOR_READ, Scope.MONITOR_ACT])
    _end_sessions(
        f"{_monitor_url(monitor, network)}/v1/operators/{operator}/sessions", token, who=operator, network=network
    )
