"""`maillage clients`: the partner systems registered at an agency for the client-credentials grant."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from maillage.cli.words import phrase, refusal
from maillage.core.crypto.tokens import Scope

clients_app = typer.Typer(
    help="Partner systems that get an agency's tokens with OAuth 2.0 client credentials (POST /oauth/token).",
    no_args_is_help=True,
)
console = Console()
T = TypeVar("T")

AgencyOption = Annotated[str, typer.Option("--agency", help="The agency the system works for.")]
DatabaseOption = Annotated[
    str | None, typer.Option("--database", help="The agency's database URL (default: as its service opens it).")
]


def _run(agency: str, database: str | None, work: Callable[..., Awaitable[T]]) -> T:
    """`work(sessions)` on the agency's database, brought to its latest revision first."""
    from maillage.cli.db import Service, configured_url, schema_of
    from maillage.core.storage.db import make_engine, session_factory
    from maillage.core.storage.migrations import upgrade

    url = database or configured_url(Service.AGENCY, agency=agency)

    async def run() -> T:
        engine = make_engine(url)
        try:
            await upgrade(engine, schema_of(Service.AGENCY))
            return await work(session_factory(engine))
        finally:
            await engine.dispose()

    return asyncio.run(run())


@clients_app.command("add")
def add(
    agency: AgencyOption,
    name: Annotated[str, typer.Option("--name", help="What the agency calls the system (never a person).")],
    scopes: Annotated[
        list[Scope], typer.Option("--scope", help="A scope it may ask for; repeat the option for several.")
    ],
    database: DatabaseOption = None,
) -> None:
    """Register a system: prints its client id and secret, once (only a hash of the secret is kept)."""
    from maillage.agency import clients
    from maillage.domain.errors import InvalidRequest

    try:
        row, secret = _run(
            agency,
            database,
            lambda sessions: clients.register(sessions, agency=agency, name=name, scopes=scopes, now=datetime.now(UTC)),
        )
    except InvalidRequest as exc:
        raise typer.BadParameter(refusal(exc), param_hint="--scope") from None
    console.print(escape(phrase("cli.clients.registered", name=name, scopes=", ".join(row.scopes))), highlight=False)
    console.print(f"client_id:     {row.client_id}", highlight=False)
    console.print(f"client_secret: {secret}", highlight=False)
    console.print(escape(phrase("cli.clients.secret-once", agency=agency)), highlight=False)


@clients_app.command("list")
def list_clients(agency: AgencyOption, database: DatabaseOption = None) -> None:
    """The systems registered at the agency, revoked ones included."""
    from maillage.agency import clients

    rows = _run(agency, database, clients.listed)
    table = Table(title=escape(phrase("cli.clients.table-title", agency=agency)))
    for column in ("client_id", "name", "scopes", "registered", "revoked"):
        table.add_column(column)
    for row in rows:
        revoked = f"{row.revoked_at:%Y-%m-%d %H:%M}" if row.revoked_at else ""
        table.add_row(
            row.client_id, escape(row.name), " ".join(row.scopes), f"{row.created_at:%Y-%m-%d %H:%M}", revoked
        )
    console.print(table)


@clients_app.command("revoke")
def revoke(
    agency: AgencyOption,
    client_id: Annotated[str, typer.Argument(help="The client to revoke.")],
    database: DatabaseOption = None,
) -> None:
    """The system gets no token from now on; the tokens it holds expire within the hour (rotate the agency's
    token key to void them at once: `maillage keys rotate`)."""
    from maillage.agency import clients

    done = _run(agency, database, lambda sessions: clients.revoke(sessions, client_id, now=datetime.now(UTC)))
    if not done:
        console.print(f"[red]{escape(phrase('cli.clients.not-found', client=client_id, agency=agency))}[/]")
        raise typer.Exit(1)
    console.print(escape(phrase("cli.clients.revoked", client=client_id)), highlight=False)
