"""`maillage db`: a service's database brought to its latest revision, and new revisions written."""

from __future__ import annotations

import asyncio
import tempfile
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from maillage.core.storage.migrations import Schema

db_app = typer.Typer(help="Each service's database: migrations (Alembic).", no_args_is_help=True)
console = Console()


class Service(StrEnum):
    AGENCY = "agency"
    GATEWAY = "gateway"
    DISPATCHER = "dispatcher"
    MONITOR = "monitor"


ServiceOption = Annotated[Service, typer.Option("--service", help="Whose database.")]


def schema_of(service: Service) -> Schema:
    if service is Service.AGENCY:
        from maillage.agency.models import SCHEMA
    elif service is Service.GATEWAY:
        from maillage.gateway.models import SCHEMA
    elif service is Service.DISPATCHER:
        from maillage.dispatcher.models import SCHEMA
    else:
        from maillage.monitor.models import SCHEMA
    return SCHEMA


def configured_url(service: Service, *, agency: str | None) -> str:
    """The database the service itself would open (its settings, the network file, else SQLite in data_dir)."""
    from maillage.core.config.settings import ServiceSettings

    settings: ServiceSettings
    if service is Service.AGENCY:
        from maillage.agency.settings import AgencySettings

        if agency is None:
            raise typer.BadParameter("which agency's database: --agency ID (or --database URL)", param_hint="--agency")
        settings = AgencySettings(agency_id=agency)
    elif service is Service.GATEWAY:
        from maillage.gateway.settings import GatewaySettings

        settings = GatewaySettings()
    elif service is Service.DISPATCHER:
        from maillage.dispatcher.settings import DispatcherSettings

        settings = DispatcherSettings()
    else:
        from maillage.monitor.settings import MonitorSettings

        settings = MonitorSettings()
    return settings.db_url()


@db_app.command("upgrade")
def upgrade(
    service: ServiceOption,
    database: Annotated[
        str | None,
        typer.Option(help="A SQLAlchemy async URL (default: the service's own, as it would open it)."),
    ] = None,
    agency: Annotated[str | None, typer.Option(help="The agency whose database (with --service agency).")] = None,
    revision: Annotated[str, typer.Option(help="The revision to reach.")] = "head",
) -> None:
    """Bring a service's database to the latest revision (services do so themselves when they start). A
    database made before migrations existed is recognised, completed and stamped, never recreated."""
    from maillage.core.storage.db import make_engine
    from maillage.core.storage.migrations import upgrade as run_upgrade

    url = database or configured_url(service, agency=agency)
    schema = schema_of(service)

    async def run() -> None:
        engine = make_engine(url)
        try:
            await run_upgrade(engine, schema, to=revision)
        finally:
            await engine.dispose()

    asyncio.run(run())
    reached = schema.head() if revision == "head" else revision
    console.print(f"The {service.value} database is at revision {reached}.")


@db_app.command("revision")
def revision(
    service: ServiceOption,
    message: Annotated[str, typer.Option("--message", "-m", help="What the revision does, in a sentence.")],
) -> None:
    """Write a new revision of a service's schema: what its models have that its latest revision lacks
    (Alembic's autogenerate, against an empty SQLite database brought to the latest revision). Review it."""
    from alembic import command
    from sqlalchemy import create_engine

    from maillage.core.storage.migrations import upgrade_connection

    schema = schema_of(service)
    with tempfile.TemporaryDirectory() as scratch:
        engine = create_engine(f"sqlite:///{Path(scratch) / 'head.db'}")
        with engine.begin() as conn:
            upgrade_connection(conn, schema, "head")
            config = schema.config()
            config.attributes["connection"] = conn
            script = command.revision(config, message=message, autogenerate=True)
        engine.dispose()
    console.print(f"Written: {getattr(script, 'path', script)}")
